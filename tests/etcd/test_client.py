"""nfo's etcd client against a real three-member cluster: reads at one revision,
guarded transactions, endpoint rotation when members die, watches that resume without
losing or repeating a change, compaction, leases, and the errors it turns failures into."""

from __future__ import annotations

import asyncio
import time

import pytest

from nfo.datastore.storage import etcd_client
from nfo.datastore.storage.etcd_client import (
    Compacted,
    Compare,
    Delete,
    EtcdClient,
    Put,
    Range,
    WatchBatch,
    parse_endpoints,
    parse_prefix,
    prefix_end,
)
from nfo.errors import InvalidValue, StorageUnavailable
from nfo.protocol.errors import http_status
from tests.etcd.cluster import EtcdCluster
from tests.netutil import free_port

pytestmark = pytest.mark.etcd


def test_endpoints_are_parsed_and_checked() -> None:
    assert parse_endpoints("etcd://127.0.0.1:2379,localhost:2380/") == [
        "127.0.0.1:2379", "localhost:2380"]
    for bad in ("etcd://127.0.0.1", "etcd://:2379", "etcd://h:0", "etcd://h:x"):
        with pytest.raises(InvalidValue):
            parse_endpoints(bad)
    assert parse_endpoints("etcd://h:1/t/x") == ["h:1"]
    assert parse_prefix("etcd://h:1/t/x") == "/t/x/"
    assert parse_prefix("etcd://h:1,h:2") == parse_prefix("etcd://h:1/") == "/nfo/"
    assert prefix_end(b"/a/") == b"/a0"
    assert prefix_end(b"a\xff") == b"b"


def test_unavailable_is_503() -> None:
    assert http_status(StorageUnavailable("no leader")) == 503


async def test_read_prefix_pages_at_one_revision(
        etcd: EtcdClient, prefix: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_client, "_PAGE", 7)
    for i in range(20):
        await etcd.put(prefix + b"k%02d" % i, b"v%d" % i)
    kvs, rev = await etcd.read_prefix(prefix)
    assert [kv.key for kv in kvs] == [prefix + b"k%02d" % i for i in range(20)]
    # a write after the first page is not seen by a read at that revision
    await etcd.put(prefix + b"k05", b"changed")
    old, rev2 = await etcd.read_prefix(prefix, revision=rev)
    assert rev2 == rev and old[5].value == b"v5"
    assert await etcd.count_prefix(prefix) == 20
    assert (await etcd.get(prefix + b"k05")) is not None
    assert await etcd.get(prefix + b"nothing") is None


async def test_a_guarded_transaction_applies_once(etcd: EtcdClient, prefix: bytes) -> None:
    head = prefix + b"head"
    first = await etcd.txn([Compare.absent(head)], [Put(head, b"1"), Put(prefix + b"a", b"x")])
    assert first.succeeded
    kv = await etcd.get(head)
    assert kv is not None and kv.mod_revision == first.revision
    # a writer that read before the first commit is refused, and reads what is there
    stale = await etcd.txn([Compare.absent(head)], [Put(head, b"2")], [Range(head)])
    assert not stale.succeeded and stale.ranges[0][0].value == b"1"
    second = await etcd.txn([Compare.mod_revision(head, first.revision)],
                            [Put(head, b"2"), Delete(prefix + b"a")])
    assert second.succeeded and second.revision > first.revision
    assert await etcd.get(prefix + b"a") is None
    again = await etcd.txn([Compare.mod_revision(head, first.revision)], [Put(head, b"3")])
    assert not again.succeeded
    assert (await etcd.get(head)) is not None
    assert (await etcd.txn([Compare.value_is(head, b"2")], [Delete(prefix, prefix=True)])
            ).succeeded
    assert await etcd.count_prefix(prefix) == 0


async def test_an_unreachable_endpoint_is_passed_over(etcd_shared: EtcdCluster,
                                                      prefix: bytes) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with EtcdClient([dead, *etcd_shared.endpoints], timeout=1.0) as c:
        await c.put(prefix + b"x", b"1")
        # a write that was never sent is tried elsewhere even when not marked retryable
        c._i = 0
        await c.close()
        r = await c.txn([Compare.absent(prefix + b"y")], [Put(prefix + b"y", b"1")])
        assert r.succeeded and c.endpoint != dead


async def test_nothing_answers(etcd_own: EtcdCluster) -> None:
    for i in range(3):
        etcd_own.kill(i)
    async with EtcdClient(etcd_own.endpoints, timeout=0.5, failover=1.0) as c:
        t = time.monotonic()
        with pytest.raises(StorageUnavailable) as e:
            await c.put(b"/k", b"v")
        assert time.monotonic() - t < 10
        assert not e.value.ambiguous
        assert "answered within" in e.value.message


async def _serving(c: EtcdClient, key: bytes) -> int:
    return await c.put(key, b"x")


async def test_writes_go_on_when_the_leader_is_killed(etcd_own: EtcdCluster) -> None:
    async with EtcdClient(etcd_own.endpoints) as c:
        before = await c.put(b"/k", b"1")
        leader = await c.leader()
        i = [m.name for m in etcd_own.members].index(leader)
        c._i = i  # talking to the leader itself
        await c.close()
        etcd_own.kill(i)
        after = await c.put(b"/k", b"2")
        assert after > before and c.endpoint != etcd_own.members[i].endpoint
        kv = await c.get(b"/k")
        assert kv is not None and kv.value == b"2"
        assert await c.leader() not in ("", leader)


async def _collect(it: object, n: int, into: list[WatchBatch]) -> None:
    assert hasattr(it, "__anext__")
    while sum(len(b.events) for b in into) < n:
        into.append(await it.__anext__())


async def test_a_watch_gives_every_change_once_across_a_member_kill(
        etcd_own: EtcdCluster) -> None:
    p = b"/w/"
    async with EtcdClient(etcd_own.endpoints) as w, EtcdClient(etcd_own.endpoints) as c:
        start = await c.put(b"/other", b"-") + 1
        first = await c.txn([], [Put(p + b"a", b"1"), Put(p + b"b", b"1"), Put(b"/x", b"1")])
        stream = w.watch(p, start)
        got: list[WatchBatch] = []
        await asyncio.wait_for(_collect(stream, 2, got), 10)
        # one transaction's changes come whole, at its revision
        assert [e.kv.key for e in got[0].events] == [p + b"a", p + b"b"]
        assert {e.kv.mod_revision for e in got[0].events} == {first.revision}
        # the member the watch reads from dies; the watch goes on from another
        c._i = (w._i + 1) % 3
        await c.close()
        etcd_own.kill(w._i)
        for i in range(5):
            await c.put(p + b"n%d" % i, b"%d" % i)
        await c.txn([], [Delete(p + b"a")])
        await asyncio.wait_for(_collect(stream, 8, got), 20)
        events = [e for b in got for e in b.events]
        assert [(e.kind, e.kv.key) for e in events] == [
            ("put", p + b"a"), ("put", p + b"b"),
            *[("put", p + b"n%d" % i) for i in range(5)], ("delete", p + b"a")]
        revs = [e.kv.mod_revision for e in events]
        assert revs == sorted(revs)
        await stream.aclose()  # type: ignore[attr-defined]


async def test_a_compacted_revision_is_said(etcd: EtcdClient, prefix: bytes) -> None:
    old = await etcd.put(prefix + b"a", b"1")
    for i in range(3):
        await etcd.put(prefix + b"a", b"%d" % i)
    now = await etcd.put(prefix + b"b", b"1")
    await etcd.compact(now)
    stream = etcd.watch(prefix, old)
    with pytest.raises(Compacted) as e:
        await asyncio.wait_for(stream.__anext__(), 10)
    assert e.value.revision >= now
    with pytest.raises(Compacted):
        await etcd.read_prefix(prefix, revision=old)
    # from the compaction on, the watch works
    stream = etcd.watch(prefix, now + 1)
    await etcd.put(prefix + b"c", b"1")
    batch = await asyncio.wait_for(stream.__anext__(), 10)
    assert [e.kv.key for e in batch.events] == [prefix + b"c"]
    await stream.aclose()


async def test_a_lease_keeps_its_keys_until_it_lapses(etcd: EtcdClient, prefix: bytes) -> None:
    lease = await etcd.grant(1)
    await etcd.put(prefix + b"owned", b"me", lease=lease)
    assert await etcd.refresh(lease) >= 1
    kv = await etcd.get(prefix + b"owned")
    assert kv is not None and kv.lease == lease
    deadline = time.monotonic() + 15
    while await etcd.get(prefix + b"owned") is not None:
        assert time.monotonic() < deadline, "the lease never lapsed"
        await asyncio.sleep(0.2)
    assert await etcd.refresh(lease) == 0
    other = await etcd.grant(30)
    await etcd.put(prefix + b"o2", b"me", lease=other)
    await etcd.revoke(other)
    assert await etcd.get(prefix + b"o2") is None
    await etcd.revoke(other)  # again: already gone, not an error
