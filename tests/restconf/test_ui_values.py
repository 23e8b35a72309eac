"""GET /restconf/ui/values: the values a leafref, identityref, enumeration or boolean
field may take now, as the calling user may read them, over a real server."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.restconf.conftest import HIDE_B, Server, ops_rules, seed

Client = Callable[[str], httpx.AsyncClient]
URL = "/restconf/ui/values"
SEED = {
    "nfo-uitest:servers": {"server": [
        {"name": "a", "protocol": "nfo-uitest-ids:tcp", "port": [{"number": 10}, {"number": 9}]},
        {"name": "b", "port": [{"number": 100}, {"number": 3}]}]},
    "nfo-uitest:links": {"link": [{"id": "l1", "server": "b"}]},
}
ADMIN_RULES = ops_rules(HIDE_B)


@pytest.fixture
async def seeded(ui_server: Server) -> Server:
    await seed(ui_server.ds, SEED, ADMIN_RULES)
    return ui_server


async def values(c: httpx.AsyncClient, path: str, **params: str) -> list[str]:
    r = await c.get(URL, params={"path": path, **params})
    assert r.status_code == 200, r.text
    return [v["value"] for v in r.json()["values"]]


async def test_leafrefs_absolute_relative_and_require_instance_false(
        seeded: Server, ui_client: Client) -> None:
    c = ui_client("root")
    assert await values(c, "nfo-uitest:types/t-leafref") == ["a", "b"]
    assert await values(c, "nfo-uitest:links/link=l1/server") == ["a", "b"]
    assert await values(c, "nfo-uitest:links/link=l1/backup") == ["a", "b"]
    # a leaf-list entry that is not there yet, and the whole leaf-list, alike
    assert await values(c, "nfo-uitest:links/link=l1/backup=zzz") == ["a", "b"]
    # a list entry being created in a form: the entry does not exist yet
    assert await values(c, "nfo-uitest:links/link=new/server") == ["a", "b"]
    r = await c.get(URL, params={"path": "nfo-uitest:types/t-leafref"})
    assert r.json() == {"values": [{"value": "a"}, {"value": "b"}], "remaining": 0}
    assert r.headers["cache-control"] == "no-store"


async def test_current_predicates_give_the_values_for_that_position(
        seeded: Server, ui_client: Client) -> None:
    c = ui_client("root")
    # l1 names server b: b's ports, sorted as numbers
    assert await values(c, "nfo-uitest:links/link=l1/port") == ["3", "100"]
    # a new link has no server yet: no port is valid
    assert await values(c, "nfo-uitest:links/link=l2/port") == []
    await seed(seeded.ds, {"nfo-uitest:links": {"link": [{"id": "l2", "server": "a"}]}})
    assert await values(c, "nfo-uitest:links/link=l2/port") == ["9", "10"]
    assert await values(c, "nfo-uitest:links/link=l1/port") == ["3", "100"]


async def test_access_control_hides_what_the_user_cannot_read(
        seeded: Server, ui_client: Client) -> None:
    alice = ui_client("alice")
    assert await values(alice, "nfo-uitest:types/t-leafref") == ["a"]
    assert await values(alice, "nfo-uitest:links/link=l1/server") == ["a"]
    # b's ports are hidden with b, even through the predicate
    assert await values(alice, "nfo-uitest:links/link=l1/port") == []
    assert await values(ui_client("root"), "nfo-uitest:links/link=l1/port") == ["3", "100"]
    # a plain read agrees
    r = await alice.get("/restconf/data/nfo-uitest:servers", headers={
        "Accept": "application/yang-data+json"})
    names = [s["name"] for s in r.json()["nfo-uitest:servers"]["server"]]
    assert names == ["a"]


async def test_identityref_enumeration_boolean(seeded: Server, ui_client: Client) -> None:
    c = ui_client("alice")
    r = await c.get(URL, params={"path": "nfo-uitest:servers/server=a/protocol"})
    assert r.json()["values"] == [
        {"value": "nfo-uitest-ids:tcp", "description": "TCP."},
        {"value": "nfo-uitest-ids:udp", "description": "UDP."},
        {"value": "nfo-uitest:sctp", "description": "SCTP, derived in another module than its "
                                                    "base."},
        {"value": "nfo-uitest:sctp-fast", "description": "Derived from a derived identity."}]
    assert await values(c, "nfo-uitest:types/t-identityref", prefix="sctp") == [
        "nfo-uitest:sctp", "nfo-uitest:sctp-fast"]
    assert await values(c, "nfo-uitest:types/t-identityref", prefix="nfo-uitest-ids:") == [
        "nfo-uitest-ids:tcp", "nfo-uitest-ids:udp"]
    r = await c.get(URL, params={"path": "nfo-uitest:types/t-enumeration"})
    assert r.json()["values"] == [{"value": "red", "description": "Red."}, {"value": "green"}]
    assert await values(c, "nfo-uitest:types/t-boolean") == ["false", "true"]


async def test_prefix_limit_and_remaining(ui_server: Server, ui_client: Client) -> None:
    await seed(ui_server.ds, {"nfo-uitest:servers": {"server": [
        {"name": f"s{i:02d}"} for i in range(30)] + [{"name": "other"}]}})
    c = ui_client("anyone")
    r = await c.get(URL, params={"path": "nfo-uitest:types/t-leafref", "limit": "10"})
    body = r.json()
    assert [v["value"] for v in body["values"]] == ["other"] + [f"s{i:02d}" for i in range(9)]
    assert body["remaining"] == 21
    r = await c.get(URL, params={"path": "nfo-uitest:types/t-leafref", "prefix": "s2"})
    assert [v["value"] for v in r.json()["values"]] == [f"s2{i}" for i in range(10)]
    assert r.json()["remaining"] == 0
    r = await c.get(URL, params={"path": "nfo-uitest:types/t-leafref"})
    assert len(r.json()["values"]) == 31 and r.json()["remaining"] == 0


async def test_datastores(seeded: Server, ui_client: Client) -> None:
    c = ui_client("root")
    async with seeded.ds.session("root") as s:
        await s.edit("candidate", json.dumps(
            {"nfo-uitest:servers": {"server": [{"name": "c"}]}}), "json")
    assert await values(c, "nfo-uitest:types/t-leafref") == ["a", "b"]
    assert await values(c, "nfo-uitest:types/t-leafref", datastore="candidate") == [
        "a", "b", "c"]
    assert await values(c, "nfo-uitest:types/t-leafref",
                        datastore="ietf-datastores:operational") == ["a", "b"]
    r = await c.get(URL, params={"path": "nfo-uitest:types/t-leafref", "datastore": "nowhere"})
    assert r.status_code == 400


async def test_keys_that_need_escaping(seeded: Server, ui_client: Client) -> None:
    """The path is a resource path as in a URL (keys percent-encoded), sent as one
    query parameter (encoded again, as httpx does)."""
    await seed(seeded.ds, {"nfo-uitest:servers": {"server": [{"name": "x/y,z"}]}},
               {"nfo-uitest:links": {"link": [{"id": "p/q,r", "server": "x/y,z"}]}})
    c = ui_client("root")
    assert await values(c, "nfo-uitest:links/link=p%2Fq%2Cr/server") == ["a", "b", "x/y,z"]
    got = await c.post("/restconf/ui/access", json={"paths": [
        "nfo-uitest:links/link=p%2Fq%2Cr/server"]})
    assert got.json()["access"][0]["read"] is True


async def test_an_entry_without_keys_yet(seeded: Server, ui_client: Client) -> None:
    """A new entry's form before its key is typed: a field whose values do not depend
    on the position still has them."""
    c = ui_client("root")
    assert await values(c, "nfo-uitest:links/link/backup") == ["a", "b"]
    assert await values(c, "nfo-uitest:links/link/transport", prefix="tcp") == [
        "nfo-uitest-ids:tcp"]
    r = await c.get(URL, params={"path": "nfo-uitest:links/link/port"})
    assert r.status_code == 400 and "position" in r.text


async def test_fields_of_operation_inputs(seeded: Server, ui_client: Client) -> None:
    c = ui_client("alice")
    assert await values(c, "nfo-uitest:reset/hard") == ["false", "true"]
    # an action's input: an absolute leafref has the values it has anywhere
    assert await values(c, "nfo-uitest:links/link=l1/probe/via") == ["a"]
    assert await values(ui_client("root"), "nfo-uitest:links/link=l1/probe/via") == ["a", "b"]
    for path in ("nfo-uitest:links/link=l1/probe/peer", "nfo-uitest:links/link=l1/probe/count",
                 "nfo-uitest:links/link=l1/probe/nothing", "nfo-uitest:reset/nothing"):
        r = await c.get(URL, params={"path": path})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["ietf-restconf:errors"]["error"][0]["error-tag"] == "invalid-value"


@pytest.mark.parametrize(("params", "status", "tag"), [
    ({"path": "nfo-uitest:nothing/here"}, 400, "invalid-value"),
    ({"path": "no-module:x"}, 400, "invalid-value"),
    ({"path": "nfo-uitest:links/link=l1"}, 400, "invalid-value"),
    ({"path": "nfo-uitest:types/t-string"}, 400, "invalid-value"),
    ({"path": "nfo-uitest:types/t-union"}, 400, "invalid-value"),
    ({"path": ""}, 400, "invalid-value"),
    ({}, 400, "invalid-value"),
    ({"path": "nfo-uitest:types/t-leafref", "limit": "0"}, 400, "invalid-value"),
    ({"path": "nfo-uitest:types/t-leafref", "limit": "x"}, 400, "invalid-value"),
    ({"path": "nfo-uitest:types/t-leafref", "depth": "1"}, 400, "invalid-value"),
    # a relative leafref needs the entry's position
    ({"path": "nfo-uitest:links/link/server"}, 400, "invalid-value"),
    ({"path": "nfo-uitest:links/link=%ZZ/server"}, 400, "malformed-message"),
])
async def test_errors(seeded: Server, ui_client: Client, params: dict[str, str], status: int,
                      tag: str) -> None:
    r = await ui_client("root").get(URL, params=params)
    assert r.status_code == status, r.text
    assert r.json()["ietf-restconf:errors"]["error"][0]["error-tag"] == tag


async def test_unknown_path_answers_as_a_data_read_does(seeded: Server,
                                                       ui_client: Client) -> None:
    c = ui_client("root")
    ui = await c.get(URL, params={"path": "nfo-uitest:nothing/here"})
    data = await c.get("/restconf/data/nfo-uitest:nothing/here")
    assert ui.status_code == data.status_code
    assert ui.json()["ietf-restconf:errors"]["error"][0]["error-tag"] == \
        data.json()["ietf-restconf:errors"]["error"][0]["error-tag"]


async def test_the_product_fields(ui_server: Server, ui_client: Client) -> None:
    """The brief's own example: a new instance's VIM, and redeploy's target VIM."""
    await seed(ui_server.ds, {"nfo-vim:vims": {"vim": [
        {"name": "east", "type": "nfo-vim:sim"}, {"name": "west", "type": "nfo-vim:sim"}]}})
    c = ui_client("anyone")
    assert await values(c, "nfo-instances:nf-instances/nf-instance=web1/vim") == [
        "east", "west"]
    assert await values(c, "nfo-instances:nf-instances/nf-instance=web1/redeploy/vim",
                        prefix="w") == ["west"]
    r = await c.get(URL, params={"path": "nfo-vim:vims/vim=east/type"})
    assert "nfo-vim:openstack" in [v["value"] for v in r.json()["values"]]
