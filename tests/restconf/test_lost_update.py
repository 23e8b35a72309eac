"""No lost update between RESTCONF and NETCONF writers of the same datastore.

A real RESTCONF server (uvicorn) and a real NETCONF server (asyncssh) share one
Datastore.  RESTCONF clients (httpx) read a counter with its ETag and PUT it plus one
with If-Match, retrying on 412 and 409; NETCONF clients (ncclient, in threads) lock
running, get-config, edit-config the counter plus one and unlock, retrying while the
lock is denied or in use.  All run at once; every acknowledged increment must count.

A change subscriber that yields (as real ones do: they may ask a VIM) keeps each
commit holding the datastore's write lock across event-loop turns; without one a
commit never yields while it holds the lock and no writer could interleave.  The
second test moves the precondition check in front of the write lock, as RESTCONF
checked it before the check moved into the datastore, and shows updates being lost.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.transport import session as nc_session

from nfo.datastore import ChangeEvent, Datastore, Precondition
from nfo.datastore.transaction import Transactions, Writer
from nfo.netconf.protocol import NC_NS
from nfo.netconf.server import NetconfServer, start_netconf
from nfo.restconf.app import create_app
from nfo.restconf.server import build_app
from nfo.restconf.yangpatch import YANG_PATCH_JSON
from tests.access import admins, permit_everyone

from .conftest import Serve

nc_session.TICK = 0.001

PASSWORD = "correct horse battery staple"
JSON = "application/yang-data+json"
SIZE_URI = "/restconf/data/nfo-test:top/item=a/size"
SIZE_XPATH = "/nfo-test:top/item[name='a']/size"
TEST_NS = "urn:nfo:test"
RESTCONF_CLIENTS, NETCONF_CLIENTS, INCREMENTS = 3, 2, 8
STEP = 20.0  # bound on any one client call (seconds)


@pytest.fixture
async def servers(ds: Datastore, serve: Serve,
                  tmp_path: Path) -> AsyncIterator[tuple[str, NetconfServer]]:
    permit_everyone(ds)
    users = await admins(ds, ("alice", PASSWORD))
    async with ds.internal_session("seed") as s:
        await s.edit("running", json.dumps({"nfo-test:top": {"item": [
            {"name": "a", "size": 0}]}}), "json")

    async def yielding(ev: ChangeEvent) -> None:
        if ev.phase == "change":
            await asyncio.sleep(0.002)

    sub = ds.subscribe("nfo-test", yielding)
    base = await serve(create_app(ds))
    nc = await start_netconf(ds, users, "127.0.0.1", 0, tmp_path / "keys")
    try:
        yield base, nc
    finally:
        await nc.stop()
        await ds.unsubscribe(sub)


def current(ds: Datastore) -> int:
    with ds.get("running", SIZE_XPATH) as t:
        doc = json.loads(t.print("json"))
    return int(doc["nfo-test:top"]["item"][0]["size"])


async def restconf_client(base: str, increments: int) -> int:
    """Read-modify-write with If-Match; returns the number of acknowledged increments."""
    done = 0
    async with httpx.AsyncClient(base_url=base, timeout=STEP) as c:
        while done < increments:
            r = await c.get(SIZE_URI, params={"content": "config"}, headers={"Accept": JSON})
            assert r.status_code == 200, r.text
            value = r.json()["nfo-test:size"]
            r = await c.put(SIZE_URI, content=json.dumps({"nfo-test:size": value + 1}),
                            headers={"Content-Type": JSON, "Accept": JSON,
                                     "If-Match": r.headers["etag"]})
            if r.status_code in (409, 412):
                continue  # another writer got there first, or holds the lock: read again
            assert r.status_code == 204, r.text
            done += 1
    return done


def netconf_client(port: int, increments: int) -> int:
    """lock, get-config, edit-config, unlock; returns the acknowledged increments."""
    m = manager.connect(host="127.0.0.1", port=port, username="alice", password=PASSWORD,
                        hostkey_verify=False, look_for_keys=False, allow_agent=False,
                        timeout=STEP)
    done = 0
    try:
        while done < increments:
            try:
                m.lock("running")
            except RPCError as e:
                if e.tag in ("lock-denied", "in-use"):
                    time.sleep(0.001)
                    continue
                raise
            try:
                r = m.get_config(source="running", filter=("xpath", SIZE_XPATH))
                value = int(str(r.data_ele.findtext(f".//{{{TEST_NS}}}size")))
                m.edit_config(target="running", config=(
                    f'<config xmlns="{NC_NS}"><top xmlns="{TEST_NS}"><item><name>a</name>'
                    f"<size>{value + 1}</size></item></top></config>"))
                done += 1
            finally:
                m.unlock("running")
    finally:
        m.close_session()
    return done


async def hammer(base: str, nc: NetconfServer) -> int:
    """Every client at once; the number of acknowledged increments."""
    counts = await asyncio.wait_for(asyncio.gather(
        *(restconf_client(base, INCREMENTS) for _ in range(RESTCONF_CLIENTS)),
        *(asyncio.to_thread(netconf_client, nc.port, INCREMENTS)
          for _ in range(NETCONF_CLIENTS))), timeout=240)
    return sum(counts)


async def test_no_lost_update_between_restconf_and_netconf(
        ds: Datastore, servers: tuple[str, NetconfServer]) -> None:
    base, nc = servers
    total = await hammer(base, nc)
    assert total == (RESTCONF_CLIENTS + NETCONF_CLIENTS) * INCREMENTS
    assert current(ds) == total


async def test_precondition_checked_before_the_lock_loses_updates(
        ds: Datastore, servers: tuple[str, NetconfServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same clients with the check made non-atomic (the old RESTCONF write lock
    protected only RESTCONF writers, and here not even those): updates are lost, so
    the race the first test excludes is real."""
    transact = Transactions.transact

    async def check_then_transact(self: Transactions, writer: Writer, ds: str, edits: Any, *,
                                  if_revision: int | None = None,
                                  precondition: Precondition | None = None,
                                  **kw: Any) -> Any:
        self.check_precondition(ds, if_revision, precondition)  # not under the write lock
        return await transact(self, writer, ds, edits, **kw)

    monkeypatch.setattr(Transactions, "transact", check_then_transact)
    base, nc = servers
    total = await hammer(base, nc)
    assert total == (RESTCONF_CLIENTS + NETCONF_CLIENTS) * INCREMENTS
    assert current(ds) < total


async def test_yang_patch_if_match(ds: Datastore, serve: Serve) -> None:
    """YANG Patch takes the same preconditions, checked atomically with the patch; a
    stale tag is refused (412) before the body is even looked at."""
    permit_everyone(ds)
    base = await serve(build_app(ds, users=None))

    def patch(value: int) -> bytes:
        return json.dumps({"ietf-yang-patch:yang-patch": {"patch-id": "p", "edit": [
            {"edit-id": "e", "operation": "merge", "target": "/item=a",
             "value": {"nfo-test:item": [{"name": "a", "size": value}]}}]}}).encode()

    async with httpx.AsyncClient(base_url=base, timeout=STEP) as c:
        r = await c.get("/restconf/data", params={"content": "config"},
                        headers={"Accept": JSON})
        assert r.status_code == 200, r.text
        tag = r.headers["etag"]
        headers = {"Content-Type": YANG_PATCH_JSON, "Accept": JSON}
        r = await c.patch("/restconf/data/nfo-test:top", content=patch(1),
                          headers={**headers, "If-Match": tag})
        assert r.status_code == 200, r.text
        new_tag = r.headers["etag"]
        for body in (patch(2), b"{not json"):
            r = await c.patch("/restconf/data/nfo-test:top", content=body,
                              headers={**headers, "If-Match": tag})
            assert r.status_code == 412, r.text
            error = r.json()["ietf-restconf:errors"]["error"][0]
            assert (error["error-tag"], error["error-type"]) == ("operation-failed",
                                                                 "protocol")
        r = await c.patch("/restconf/data/nfo-test:top", content=patch(3),
                          headers={**headers, "If-Match": new_tag})
        assert r.status_code == 200, r.text
    assert current(ds) == 3
