"""GET of one node printed from the live data (:meth:`Datastore.live_one`): the answers
stay those of a read through a private copy when operational data, access control or
a commit changes what the node shows."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from nfo.datastore import Datastore
from nfo.protocol.errors import HttpError
from nfo.restconf.app import create_app
from tests.access import permit_everyone
from tests.restconf.conftest import JSON, Serve, ops_rules, seed

ITEM = "/restconf/data/nfo-test:top/item=a"


async def _user(request: Request) -> str:
    user = request.headers.get("X-Test-User")
    if not user:
        raise HttpError(401, "no user", tag="access-denied")
    return user


async def get(base: str, path: str, user: str = "root", **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        return await c.get(path, headers={"Accept": JSON, "X-Test-User": user, **headers})


def item(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    (entry,) = r.json()["nfo-test:item"]
    return entry  # type: ignore[no-any-return]


async def test_an_entry_read_shows_operational_data_pushed_at_it(
        ds: Datastore, serve: Serve) -> None:
    permit_everyone(ds)
    await seed(ds, {"nfo-test:top": {"item": [{"name": "a", "size": 1}]}})
    base = await serve(create_app(ds, auth=_user))
    assert item(await get(base, ITEM)) == {"name": "a", "size": 1}
    # an operational value over the configured one (an owner's data wins the merge)
    async with ds.internal_session("probe") as s:
        s.set_oper(json.dumps({"nfo-test:top": {"item": [{"name": "a", "size": 5}]}}),
                   owner="probe")
    assert item(await get(base, ITEM))["size"] == 5
    config = await get(base, "/restconf/ds/ietf-datastores:running/nfo-test:top/item=a")
    assert item(config)["size"] == 1
    async with ds.internal_session("probe") as s:
        s.delete_oper("/nfo-test:top/item[name='a']", owner="probe")
    assert item(await get(base, ITEM))["size"] == 1


async def test_an_entry_read_follows_commits(ds: Datastore, serve: Serve) -> None:
    permit_everyone(ds)
    await seed(ds, {"nfo-test:top": {"item": [{"name": "a", "size": 1}]}})
    base = await serve(create_app(ds, auth=_user))
    first = await get(base, ITEM)
    await seed(ds, {"nfo-test:top": {"item": [{"name": "a", "size": 2}]}})
    second = await get(base, ITEM)
    assert item(second)["size"] == 2
    assert first.headers["ETag"] != second.headers["ETag"]
    r = await get(base, ITEM, **{"If-None-Match": second.headers["ETag"]})
    assert r.status_code == 304


async def test_a_reader_whose_rules_hide_part_of_the_entry_never_sees_it(
        ds: Datastore, serve: Serve) -> None:
    await seed(ds, {"nfo-test:top": {"item": [{"name": "a", "size": 1}]}},
               ops_rules({"name": "no-size", "module-name": "nfo-test",
                          "path": "/nfo-test:top/item/size", "access-operations": "read",
                          "action": "deny"},
                         {"name": "rest", "module-name": "*", "access-operations": "read",
                          "action": "permit"}))
    base = await serve(create_app(ds, auth=_user))
    assert item(await get(base, ITEM, "root")) == {"name": "a", "size": 1}
    assert item(await get(base, ITEM, "alice")) == {"name": "a"}
    r = await get(base, f"{ITEM}/size", "alice")
    assert r.status_code == 404, r.text
    # the rules change: alice reads everything, root's group no longer exists
    await seed(ds, {"ietf-netconf-acm:nacm": {"rule-list": [
        {"name": "ops", "group": ["ops"], "rule": [
            {"name": "no-size", "action": "permit"}]}]}})
    assert item(await get(base, ITEM, "alice")) == {"name": "a", "size": 1}


async def test_an_internal_error_on_a_data_resource_is_a_restconf_error(
        ds: Datastore, serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests for data resources skip Starlette's middleware: a failure of a read or
    a write still becomes a RESTCONF errors body (500, operation-failed), and other
    resources and methods still route."""
    permit_everyone(ds)
    await seed(ds, {"nfo-test:top": {"item": [{"name": "a", "size": 1}]}})
    app = create_app(ds, auth=_user)
    base = await serve(app)

    async def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.state.restconf.data_resources, "read", broken)
    monkeypatch.setattr(app.state.restconf.data_resources, "write", broken)
    for path in (ITEM, "/restconf/ds/ietf-datastores:running/nfo-test:top"):
        r = await get(base, path)
        assert r.status_code == 500, r.text
        (err,) = r.json()["ietf-restconf:errors"]["error"]
        assert err["error-tag"] == "operation-failed"
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        r = await c.post("/restconf/data/nfo-test:top", headers={
            "X-Test-User": "root", "Content-Type": "application/yang-data+json"},
            content=b'{"nfo-test:item": [{"name": "b"}]}')
        assert r.status_code == 500, r.text
        (err,) = r.json()["ietf-restconf:errors"]["error"]
        assert err["error-tag"] == "operation-failed"
        r = await c.request("TRACE", ITEM, headers={"X-Test-User": "root"})
        assert r.status_code == 405, r.text
        r = await c.request("OPTIONS", ITEM, headers={"X-Test-User": "root"})
        assert r.status_code == 200 and "GET" in r.headers["Allow"]
        r = await c.get(ITEM, headers={"Accept": "text/plain", "X-Test-User": "root"})
        assert r.status_code == 406
        r = await c.get("/restconf/ds/", headers={"X-Test-User": "root"})
        assert r.status_code == 404


async def test_a_plain_read_has_the_head_and_conditions_it_had(
        ds: Datastore, serve: Serve) -> None:
    """The plain GET's shortcuts (its head built directly, conditions checked only when a
    conditional header is sent, the reply encoding remembered per header value) answer as
    the general path does."""
    permit_everyone(ds)
    await seed(ds, {"nfo-test:top": {"item": [{"name": "a", "size": 1}]}})
    base = await serve(create_app(ds, auth=_user))
    running = "/restconf/ds/ietf-datastores:running/nfo-test:top/item=a"
    for path, state in ((ITEM, True), (running, False)):
        r = await get(base, path)
        assert r.status_code == 200
        assert r.headers.get_list("content-type") == [JSON]
        assert r.headers.get_list("content-length") == [str(len(r.content))]
        (tag,) = r.headers.get_list("etag")
        assert ("last-modified" in r.headers) is not state
        assert tag.startswith(f'"{ds.info("running").revision}' + ("-s" if state else '"'))
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            h = await c.head(path, headers={"Accept": JSON, "X-Test-User": "root"})
        assert h.status_code == 200 and h.content == b""
        assert {k: v for k, v in h.headers.items() if k != "date"} == {
            k: v for k, v in r.headers.items() if k != "date"}
        assert (await get(base, path, **{"IF-NONE-MATCH": tag})).status_code == 304
        assert (await get(base, path, **{"If-Match": '"0"'})).status_code == 412
        assert (await get(base, path, **{"If-Match": tag})).status_code == 200
    # a refused Accept, asked twice (the second answer remembered): 406 each time, the
    # error in the encoding of the request's Content-Type
    for _ in range(2):
        r = await get(base, ITEM, **{"Accept": "text/html",
                                     "Content-Type": "application/yang-data+xml"})
        assert r.status_code == 406
        assert r.headers["content-type"] == "application/yang-data+xml"
        assert b"<errors" in r.content
    # a query parameter takes the general path: still checked
    r = await get(base, ITEM + "?depth=0")
    assert r.status_code == 400
