"""A costly filter does not stall other clients, and its bounds answer resource-denied
(issue 12, finding 1: a 95-character XPath over 10,000 nf-instances froze the whole
server for 116 s).  Real SSH sessions (ncclient) against a real server; the filter's
cost is quadratic in the entries, so it runs for seconds here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ncclient.operations.rpc import RPCError

from nfo.datastore import Datastore, SqliteStorage
from nfo.datastore.workers import Workers
from nfo.netconf.server import NetconfServer, start_netconf
from nfo.schema import Schema
from tests.access import admins

from .test_interop import CATALOG, PASSWORD, closed, nc

ENTRIES = 3000
COSTLY = ("/i:nf-instances/i:nf-instance[i:description = ../i:nf-instance/i:parameter/"
          "i:value]/i:name")
NS = {"i": "urn:nfo:instances"}


def instances(n: int) -> str:
    return ('{"nfo-instances:nf-instances": {"nf-instance": ['
            + ",".join(f'{{"name": "i{k}", "descriptor": "udp-echo", "description": "d{k}", '
                       f'"admin-state": "disabled", "parameter": [{{"name": "port", '
                       f'"value": "{20000 + k}"}}]}}' for k in range(n))
            + "]}}")


async def serve(schema: Schema, tmp_path: Path, workers: Workers
                ) -> AsyncIterator[NetconfServer]:
    ds = Datastore.open(schema, SqliteStorage(tmp_path / "nfo.db"), workers)
    await ds.start()
    try:
        users = await admins(ds, ("alice", PASSWORD), ("bob", PASSWORD))
        async with ds.internal_session("seed") as s:
            await s.edit("running", CATALOG, "json")
            await s.edit("running", instances(ENTRIES), "json")
        srv = await start_netconf(ds, users, "127.0.0.1", 0, tmp_path / "keys")
        try:
            yield srv
        finally:
            await srv.stop()
    finally:
        await ds.close()


@pytest.fixture
async def server(schema: Schema, tmp_path: Path) -> AsyncIterator[NetconfServer]:
    async for srv in serve(schema, tmp_path, Workers()):
        yield srv


@pytest.fixture
async def impatient(schema: Schema, tmp_path: Path) -> AsyncIterator[NetconfServer]:
    """Queries wait at most 0.2 s for their answer; one at a time per user."""
    async for srv in serve(schema, tmp_path, Workers(per_user=1, deadline=0.2)):
        yield srv


def costly(m: Any) -> Any:
    m.timeout = 300  # its own time is not the point (seconds here, more on a loaded machine)
    return m.get_config("running", filter=("xpath", (NS, COSTLY)))


def cheap(m: Any) -> Any:
    """A filter (not a plain data path: off the loop) that costs nothing."""
    return m.get_config("running", filter=(
        "xpath", (NS, "/i:nf-instances/i:nf-instance[i:description = 'd1']/i:name")))


async def until(cond: Any) -> None:
    for _ in range(6000):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")


async def test_other_clients_are_served_while_a_costly_filter_runs(
        server: NetconfServer) -> None:
    workers = server.ds.workers
    alice, bob = await nc(server, "alice"), await nc(server, "bob")
    try:
        slow = asyncio.create_task(asyncio.to_thread(costly, alice))
        await until(lambda: workers.busy("alice") == 1)
        # bob is answered, and writes, while alice's filter is still running (counted only
        # when her query was still busy after his answer: a loaded machine may let it end)
        served = 0
        while served < 3 and not slow.done():
            reply = await asyncio.to_thread(
                bob.get_config, "running",
                filter=("subtree", '<catalog xmlns="urn:nfo:catalog"/>'))
            assert "udp-echo" in reply.xml
            edit = await asyncio.to_thread(
                bob.edit_config, target="running",
                config=('<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
                        '<nf-instances xmlns="urn:nfo:instances"><nf-instance><name>i1</name>'
                        "<description>changed</description></nf-instance></nf-instances>"
                        "</config>"))
            assert edit.ok
            if workers.busy("alice") == 1 and not slow.done():
                served += 1
        assert served >= 1
        reply = await slow
        assert reply.ok and "<name>" not in reply.xml  # no description equals a port
    finally:
        await closed(alice)
        await closed(bob)


async def test_a_filter_past_the_deadline_is_resource_denied(impatient: NetconfServer) -> None:
    workers = impatient.ds.workers
    alice, bob = await nc(impatient, "alice"), await nc(impatient, "bob")
    try:
        with pytest.raises(RPCError) as e:
            await asyncio.to_thread(costly, alice)
        assert e.value.tag == "resource-denied"
        assert "did not finish within 0.2 s" in str(e.value.message)
        assert workers.overrun == 1
        # the runaway query still holds alice's one slot: her next filtered query is
        # refused at once; reads of plain paths (on the event loop) and everyone else
        # are served
        with pytest.raises(RPCError) as e:
            await asyncio.to_thread(cheap, alice)
        assert e.value.tag == "resource-denied" and "still running" in str(e.value.message)
        assert (await asyncio.to_thread(alice.get_config, "running")).ok
        assert "<name>i1</name>" in (await asyncio.to_thread(cheap, bob)).xml
        await until(lambda: workers.busy("alice") == 0)
        assert "<name>i1</name>" in (await asyncio.to_thread(cheap, alice)).xml
    finally:
        await closed(alice)
        await closed(bob)
