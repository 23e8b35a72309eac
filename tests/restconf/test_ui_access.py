"""POST /restconf/ui/access: what the calling user may do with given nodes, from the
access control code that enforces it, and checked against what enforcement does."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from nfo.datastore import Datastore
from nfo.restconf.app import create_app
from nfo.restconf.ui import MAX_ACCESS_PATHS
from tests.restconf.conftest import (
    HIDE_B,
    MAX_BODY,
    USER_HEADER,
    Serve,
    Server,
    _header_user,
    ops_rules,
    seed,
)
from tests.restconf.test_transactions import bind_sessions

Client = Callable[[str], httpx.AsyncClient]
URL = "/restconf/ui/access"
DATA = "application/yang-data+json"
SEED = {
    "nfo-uitest:servers": {"server": [{"name": "a", "secret": "s3"}, {"name": "b"}]},
    "nfo-uitest:links": {"link": [{"id": "l1", "server": "a"}]},
}
RULES = ops_rules(
    HIDE_B,
    {"name": "links", "module-name": "nfo-uitest", "path": "/nfo-uitest:links",
     "access-operations": "create update", "action": "permit"},
    {"name": "no-reset", "module-name": "nfo-uitest", "rpc-name": "reset",
     "access-operations": "exec", "action": "deny"})
PATHS = [
    "nfo-uitest:servers/server=a",
    "nfo-uitest:servers/server=b",
    "nfo-uitest:servers/server=a/secret",
    "nfo-uitest:links/link=l1/server",
    "nfo-uitest:links/link=new",
    "nfo-uitest:counters=1/id",
    "nfo-uitest:reset",
    "nfo-uitest:links/link=l1/probe",
]


@pytest.fixture
async def seeded(ui_server: Server) -> Server:
    await seed(ui_server.ds, SEED, RULES)
    return ui_server


async def ask(c: httpx.AsyncClient, paths: list[str]) -> dict[str, dict[str, bool]]:
    r = await c.post(URL, json={"paths": paths})
    assert r.status_code == 200, r.text
    out = {}
    for entry in r.json()["access"]:
        path = entry.pop("path")
        out[path] = entry
    assert list(out) == paths
    return out


ALL = {"read": True, "create": True, "update": True, "delete": True}


async def test_restricted_user(seeded: Server, ui_client: Client) -> None:
    got = await ask(ui_client("alice"), PATHS)
    nothing = {"create": False, "update": False, "delete": False}
    assert got["nfo-uitest:servers/server=a"] == {"read": True, **nothing}
    assert got["nfo-uitest:servers/server=b"] == {"read": False, **nothing}
    # a credential is read only through a rule that names it
    assert got["nfo-uitest:servers/server=a/secret"] == {"read": False, **nothing}
    assert got["nfo-uitest:links/link=l1/server"] == {
        "read": True, "create": True, "update": True, "delete": False}
    assert got["nfo-uitest:links/link=new"] == {
        "read": True, "create": True, "update": True, "delete": False}
    # state data is never written
    assert got["nfo-uitest:counters=1/id"] == {"read": True, **nothing}
    assert got["nfo-uitest:reset"] == {"exec": False}
    assert got["nfo-uitest:links/link=l1/probe"] == {"exec": True}


async def test_administrator(seeded: Server, ui_client: Client) -> None:
    got = await ask(ui_client("root"), PATHS)
    assert got["nfo-uitest:servers/server=b"] == ALL
    assert got["nfo-uitest:servers/server=a/secret"] == {**ALL, "read": False}
    assert got["nfo-uitest:counters=1/id"] == {
        "read": True, "create": False, "update": False, "delete": False}
    assert got["nfo-uitest:reset"] == {"exec": True}


async def test_nacm_disabled(seeded: Server, ui_client: Client) -> None:
    await seed(seeded.ds, {"ietf-netconf-acm:nacm": {"enable-nacm": False}})
    got = await ask(ui_client("alice"), PATHS)
    assert got["nfo-uitest:servers/server=b"] == ALL
    # credentials stay hidden from every reader, as reads hide them
    assert got["nfo-uitest:servers/server=a/secret"]["read"] is False
    assert got["nfo-uitest:reset"] == {"exec": True}
    r = await ui_client("alice").get("/restconf/data/nfo-uitest:servers/server=a",
                                     headers={"Accept": DATA})
    assert "secret" not in r.text


async def test_answers_agree_with_enforcement(seeded: Server, ui_client: Client) -> None:
    """Every verdict is the one the datastore enforces when the user tries."""
    c = ui_client("alice")
    c.headers["Accept"] = DATA
    got = await ask(c, ["nfo-uitest:links/link=l9", "nfo-uitest:servers/server=c",
                        "nfo-uitest:links/link=l1", "nfo-uitest:servers/server=b",
                        "nfo-uitest:reset"])
    made = await c.put("/restconf/data/nfo-uitest:links/link=l9",
                       json={"nfo-uitest:link": [{"id": "l9", "server": "a"}]})
    assert got["nfo-uitest:links/link=l9"]["create"] is True and made.status_code == 201
    refused = await c.put("/restconf/data/nfo-uitest:servers/server=c",
                          json={"nfo-uitest:server": [{"name": "c"}]})
    assert got["nfo-uitest:servers/server=c"]["create"] is False
    assert refused.status_code == 403
    gone = await c.delete("/restconf/data/nfo-uitest:links/link=l1")
    assert got["nfo-uitest:links/link=l1"]["delete"] is False and gone.status_code == 403
    hidden = await c.get("/restconf/data/nfo-uitest:servers/server=b")
    assert got["nfo-uitest:servers/server=b"]["read"] is False and hidden.status_code == 404
    ran = await c.post("/restconf/operations/nfo-uitest:reset", json={})
    assert got["nfo-uitest:reset"]["exec"] is False and ran.status_code == 403


async def test_asking_counts_nothing(seeded: Server, ui_client: Client) -> None:
    counters = seeded.ds.nacm.counters
    before = (counters.operations, counters.data_writes)
    await ask(ui_client("alice"), PATHS)
    assert (counters.operations, counters.data_writes) == before


@pytest.mark.parametrize(("body", "ctype", "status", "tag"), [
    (b"{", "application/json", 400, "malformed-message"),
    (b'{"paths": "x"}', "application/json", 400, "invalid-value"),
    (b'{"paths": [1]}', "application/json", 400, "invalid-value"),
    (b'[]', "application/json", 400, "invalid-value"),
    (b'{"paths": ["nfo-uitest:nothing"]}', "application/json", 400, "invalid-value"),
    (b'{"paths": [""]}', "application/json", 400, "invalid-value"),
    (json.dumps({"paths": ["nfo-uitest:links"] * (MAX_ACCESS_PATHS + 1)}).encode(),
     "application/json", 413, "too-big"),
    (b'{"paths": []}', "text/plain", 415, "invalid-value"),
])
async def test_errors(seeded: Server, ui_client: Client, body: bytes, ctype: str, status: int,
                      tag: str) -> None:
    r = await ui_client("alice").post(URL, content=body, headers={"Content-Type": ctype})
    assert r.status_code == status, r.text
    assert r.json()["ietf-restconf:errors"]["error"][0]["error-tag"] == tag


async def test_method_and_authentication(seeded: Server, ui_client: Client) -> None:
    assert (await ui_client("alice").get(URL)).status_code == 405
    async with httpx.AsyncClient(base_url=seeded.base) as anonymous:
        r = await anonymous.post(URL, json={"paths": []})
    assert r.status_code == 401


# -- when: whether a node's conditions hold (the page hides the field otherwise) ---------

W = "nfo-uiwhen:"
WHEN_SEED = {"nfo-uitest:links": {"link": [
    {"id": "l1", "server": "a", "transport": "nfo-uitest:sctp-fast"},
    {"id": "l2", "server": "a", "transport": "nfo-uitest-ids:udp"}]}}


async def whens_of(c: httpx.AsyncClient, paths: list[str], **params: str) -> dict[str, Any]:
    r = await c.post(URL, json={"paths": paths}, params=params)
    assert r.status_code == 200, r.text
    return {e["path"]: e.get("when") for e in r.json()["access"]}


async def test_when(seeded: Server, ui_client: Client) -> None:
    await seed(seeded.ds, WHEN_SEED)
    c = ui_client("root")
    r = await c.post(URL, json={"paths": ["nfo-uitest:links/link=l1/fast",
                                          "nfo-uitest:links/link=l1/transport"]})
    assert r.json() == {"access": [
        {"path": "nfo-uitest:links/link=l1/fast", "read": True, "create": True,
         "update": True, "delete": True, "when": True},
        {"path": "nfo-uitest:links/link=l1/transport", "read": True, "create": True,
         "update": True, "delete": True}]}  # no condition: no member
    got = await whens_of(c, [
        "nfo-uitest:links/link=l2/fast",
        "nfo-uitest:links/link=new/fast",  # a field of a new entry
        f"nfo-uitest:links/link=l2/{W}jitter", f"nfo-uitest:links/link=l1/{W}jitter",
        f"nfo-uitest:links/link=l2/{W}window", f"nfo-uitest:links/link=l2/{W}burst",
        f"nfo-uitest:links/link=new/{W}burst", f"{W}global", "nfo-uitest:reset",
        "/restconf/data/nfo-uitest:links/link=l1/fast"])
    assert got == {
        "nfo-uitest:links/link=l2/fast": False,
        "nfo-uitest:links/link=new/fast": False,
        f"nfo-uitest:links/link=l2/{W}jitter": True,  # an augment's
        f"nfo-uitest:links/link=l1/{W}jitter": False,
        f"nfo-uitest:links/link=l2/{W}window": True,  # a uses'
        f"nfo-uitest:links/link=l2/{W}burst": True,  # its own, its case's, the augment's
        f"nfo-uitest:links/link=new/{W}burst": False,
        f"{W}global": True,  # the root as context: servers exist
        "nfo-uitest:reset": None,
        "/restconf/data/nfo-uitest:links/link=l1/fast": True}
    # nothing the evaluation created is left behind
    r = await c.get("/restconf/data/nfo-uitest:links", headers={"Accept": DATA})
    assert r.json() == WHEN_SEED


async def test_when_reads_as_the_user_may(seeded: Server, ui_client: Client) -> None:
    """A condition reading what the user may not read evaluates as on data without it."""
    await seed(seeded.ds, WHEN_SEED, ops_rules(
        {"name": "no-transport", "module-name": "nfo-uitest",
         "path": "/nfo-uitest:links/link/transport", "access-operations": "read",
         "action": "deny"}))
    paths = ["nfo-uitest:links/link=l1/fast", f"nfo-uitest:links/link=l2/{W}jitter"]
    assert await whens_of(ui_client("root"), paths) == dict.fromkeys(paths, True)
    assert await whens_of(ui_client("alice"), paths) == dict.fromkeys(paths, False)


async def test_when_datastores(seeded: Server, ui_client: Client) -> None:
    await seed(seeded.ds, WHEN_SEED)
    async with seeded.ds.session("root") as s:
        await s.edit("candidate", json.dumps({"nfo-uitest:links": {"link": [
            {"id": "l1", "transport": "nfo-uitest-ids:udp"}]}}), "json")
    c = ui_client("root")
    paths = ["nfo-uitest:links/link=l1/fast", f"nfo-uitest:links/link=l1/{W}jitter"]
    assert list((await whens_of(c, paths)).values()) == [True, False]
    assert list((await whens_of(c, paths, datastore="candidate")).values()) == [False, True]
    assert list((await whens_of(c, paths, datastore="ietf-datastores:operational")
                 ).values()) == [True, False]
    for bad in ("nowhere", "ietf-datastores:nowhere"):
        r = await c.post(URL, json={"paths": paths}, params={"datastore": bad})
        assert r.status_code == 400, r.text
        assert r.json()["ietf-restconf:errors"]["error"][0]["error-tag"] == "invalid-value"
    r = await c.post(URL, json={"paths": paths}, params={"limit": "3"})
    assert r.status_code == 400, r.text


async def test_when_in_a_bound_session(ui_ds: Datastore, serve: Serve) -> None:
    """In the UI's login session, candidate is the session's own private candidate; a
    plain request's is the shared one."""
    await seed(ui_ds, SEED, WHEN_SEED, RULES)
    sessions = {"root": ui_ds.session("root", private_candidate=True)}
    app = create_app(ui_ds, auth=_header_user, max_body=MAX_BODY)
    base = await serve(bind_sessions(app, sessions))
    path = "nfo-uitest:links/link=l1/fast"
    try:
        await sessions["root"].edit("candidate", json.dumps({"nfo-uitest:links": {"link": [
            {"id": "l1", "transport": "nfo-uitest-ids:tcp"}]}}), "json")
        headers = {"Accept": "application/json", USER_HEADER: "root"}
        async with httpx.AsyncClient(base_url=base, timeout=10, headers={
                **headers, "X-Test-Session": "root"}) as bound, httpx.AsyncClient(
                base_url=base, timeout=10, headers=headers) as plain:
            assert await whens_of(bound, [path], datastore="candidate") == {path: False}
            assert await whens_of(bound, [path]) == {path: True}  # running
            assert await whens_of(plain, [path], datastore="candidate") == {path: True}
    finally:
        await sessions["root"].close()


async def test_when_at_the_limit(seeded: Server, ui_client: Client,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """As many paths as allowed, each a field of its own new entry: one read of the
    data, every answer from it; none when no path has a condition."""
    await seed(seeded.ds, WHEN_SEED)
    reads: list[str | None] = []
    query = seeded.ds.query

    async def counted(datastore: str, xpath: str | None, then: Any, **kw: Any) -> Any:
        reads.append(xpath)
        return await query(datastore, xpath, then, **kw)

    monkeypatch.setattr(seeded.ds, "query", counted)
    paths = [f"nfo-uitest:links/link=n{i}/fast" for i in range(MAX_ACCESS_PATHS - 1)]
    paths.append("nfo-uitest:links/link=l1/fast")
    got = await whens_of(ui_client("alice"), paths)
    assert list(got.values()) == [False] * (MAX_ACCESS_PATHS - 1) + [True]
    assert reads == ["/nfo-uitest:links"]
    await whens_of(ui_client("alice"), ["nfo-uitest:links/link=l1/transport"] * 10)
    assert reads == ["/nfo-uitest:links"]


async def test_when_of_a_list(seeded: Server, ui_client: Client) -> None:
    """A list named without keys (the page's list view) and an entry of it."""
    await seed(seeded.ds, {f"{W}global": {"level": 2}})
    paths = [f"{W}global/zone", f"{W}global/zone=z1"]
    c = ui_client("root")
    assert await whens_of(c, paths) == dict.fromkeys(paths, True)
    await seed(seeded.ds, {f"{W}global": {"level": 1}})
    assert await whens_of(c, paths) == dict.fromkeys(paths, False)
