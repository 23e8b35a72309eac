"""The etcd backend when etcd itself fails: the Raft leader killed (SIGKILL) under a stream
of acknowledged writes loses none of them, and only writes in flight see an error."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from nfo.datastore import Datastore
from nfo.datastore.storage.etcd import EtcdStorage
from nfo.errors import NfoError, StorageUnavailable
from nfo.schema import Schema
from tests.etcd.cluster import EtcdCluster

pytestmark = [pytest.mark.etcd, pytest.mark.slow]


def vim(name: str) -> str:
    return json.dumps({"nfo-vim:vims": {"vim": [{"name": name, "type": "nfo-vim:sim"}]}})


async def test_the_etcd_leader_killed_under_writes_loses_no_acknowledged_one(
        schema: Schema, etcd_own: EtcdCluster) -> None:
    ds = Datastore.open(schema, EtcdStorage(etcd_own.endpoints))
    await ds.start()
    acked: list[str] = []
    failed: list[tuple[str, str]] = []
    killed_at: float | None = None
    resumed: float | None = None
    try:
        s = ds.internal_session("writer")

        async def writer(w: int) -> None:
            nonlocal resumed
            for i in range(60):
                name = f"w{w}-{i}"
                try:
                    await s.edit("running", vim(name), "json")
                except NfoError as e:
                    assert isinstance(e, StorageUnavailable), e
                    failed.append((name, e.message))
                    continue
                acked.append(name)
                if killed_at is not None and resumed is None:
                    resumed = time.monotonic()
                await asyncio.sleep(0.01)

        async def kill_the_leader() -> None:
            nonlocal killed_at
            while len(acked) < 40:
                await asyncio.sleep(0.01)
            st = ds.storage
            assert isinstance(st, EtcdStorage)
            leader = await st._on_etcd(lambda c: c.leader())
            etcd_own.kill([m.name for m in etcd_own.members].index(leader))
            killed_at = time.monotonic()

        await asyncio.gather(kill_the_leader(), *(writer(w) for w in range(4)))
        assert killed_at is not None and resumed is not None
        assert resumed - killed_at < 10, "writes did not resume within a few seconds"
        assert len(failed) <= 4, f"more errors than writes in flight: {failed}"
    finally:
        await ds.close()
    again = Datastore.open(schema, EtcdStorage(etcd_own.endpoints))
    try:
        with again.get("running") as t:
            names = {v["name"] for v in json.loads(t.print("json"))["nfo-vim:vims"]["vim"]}
        assert set(acked) <= names
        # a write whose answer was lost may have been made; no other write was
        assert names - set(acked) <= {n for n, _ in failed} | {"local"}
    finally:
        await again.close()
