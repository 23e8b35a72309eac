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


async def test_an_internal_error_on_a_read_is_a_restconf_error(
        ds: Datastore, serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads of data resources skip Starlette's middleware: a failure still becomes
    a RESTCONF errors body (500, operation-failed), and other methods still route."""
    permit_everyone(ds)
    await seed(ds, {"nfo-test:top": {"item": [{"name": "a", "size": 1}]}})
    app = create_app(ds, auth=_user)
    base = await serve(app)

    async def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.state.restconf.data_resources, "read", broken)
    for path in (ITEM, "/restconf/ds/ietf-datastores:running/nfo-test:top"):
        r = await get(base, path)
        assert r.status_code == 500, r.text
        (err,) = r.json()["ietf-restconf:errors"]["error"]
        assert err["error-tag"] == "operation-failed"
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        r = await c.request("OPTIONS", ITEM, headers={"X-Test-User": "root"})
        assert r.status_code == 200 and "GET" in r.headers["Allow"]
        r = await c.get(ITEM, headers={"Accept": "text/plain", "X-Test-User": "root"})
        assert r.status_code == 406
        r = await c.get("/restconf/ds/", headers={"X-Test-User": "root"})
        assert r.status_code == 404
