"""get-config of one entry printed from the live data (:meth:`Datastore.live_one`): over
real SSH sessions, the answer is the one a read through a private copy gives, for a
reader whose rules hide part of the entry and after a commit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import Datastore
from nfo.datastore.workers import Workers
from nfo.netconf.server import NetconfServer
from nfo.schema import Schema

from .test_costly_reads import serve
from .test_interop import PASSWORD, closed, nc

ITEM = '<top xmlns="urn:nfo:test"><item><name>a</name></item></top>'


@pytest.fixture
async def server(schema: Schema, tmp_path: Path) -> AsyncIterator[NetconfServer]:
    async for srv in serve(schema, tmp_path, Workers()):
        await srv.users.add("carol", PASSWORD, groups=["ops"])
        await seed(srv.ds, {"nfo-test:top": {"item": [{"name": "a", "size": 1}]}},
                   {"ietf-netconf-acm:nacm": {"rule-list": [{
                       "name": "ops", "group": ["ops"], "rule": [
                           {"name": "no-size", "module-name": "nfo-test",
                            "path": "/nfo-test:top/item/size", "access-operations": "read",
                            "action": "deny"},
                           {"name": "rest", "module-name": "*", "access-operations": "read",
                            "action": "permit"}]}]}})
        yield srv


async def seed(ds: Datastore, *docs: dict[str, Any]) -> None:
    async with ds.internal_session("seed") as s:
        for doc in docs:
            await s.edit("running", json.dumps(doc), "json")


async def item(m: Any) -> str:
    reply = await asyncio.to_thread(m.get_config, "running", filter=("subtree", ITEM))
    return str(reply.data_xml)


async def test_get_config_of_one_entry_follows_access_control_and_commits(
        server: NetconfServer) -> None:
    alice, carol = await nc(server, "alice"), await nc(server, "carol")
    try:
        assert "<size>1</size>" in await item(alice)
        hidden = await item(carol)
        assert "<name>a</name>" in hidden and "size" not in hidden
        await seed(server.ds, {"nfo-test:top": {"item": [{"name": "a", "size": 2}]}})
        assert "<size>2</size>" in await item(alice)
        # the rules change: carol reads everything
        await seed(server.ds, {"ietf-netconf-acm:nacm": {"rule-list": [{
            "name": "ops", "group": ["ops"], "rule": [
                {"name": "no-size", "action": "permit"}]}]}})
        assert "<size>2</size>" in await item(carol)
    finally:
        await closed(alice)
        await closed(carol)
