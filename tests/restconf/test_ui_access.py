"""POST /restconf/ui/access: what the calling user may do with given nodes, from the
access control code that enforces it, and checked against what enforcement does."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from nfo.restconf.ui import MAX_ACCESS_PATHS
from tests.restconf.conftest import HIDE_B, Server, ops_rules, seed

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
