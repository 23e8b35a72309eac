"""The etcd storage backend on a real cluster, where it differs from SQLite: a key per
record and per snapshot entry, batches as guarded transactions (a second writer that
read an older state is refused, nothing stored), a write refused or failed leaves the
mirror as it was, snapshots torn by a crash are ignored and cleared."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest

from nfo.datastore.storage import etcd as etcd_storage
from nfo.datastore.storage.etcd import EtcdStorage
from nfo.datastore.storage.etcd_client import Put
from nfo.errors import StorageConflict, StorageUnavailable
from tests.etcd.cluster import EtcdCluster

pytestmark = pytest.mark.etcd


@pytest.fixture
def where(etcd_shared: EtcdCluster) -> Iterator[tuple[list[str], str]]:
    yield etcd_shared.endpoints, f"/s/{uuid.uuid4().hex}/"


def keys(st: EtcdStorage, under: str = "") -> list[str]:
    p = st.prefix + under.encode()
    kvs, _ = st._io.run(lambda c: c.read_prefix(p))
    return [kv.key[len(st.prefix):].decode() for kv in kvs]


def test_a_writer_that_read_an_older_state_is_refused(where: tuple[list[str], str]) -> None:
    eps, prefix = where
    with EtcdStorage(eps, prefix=prefix) as a, EtcdStorage(eps, prefix=prefix) as b:
        assert a.append_commit("running", 1.0, "alice", "edit", "[1]").revision == 1
        with pytest.raises(StorageConflict):
            b.append_commit("running", 2.0, "bob", "edit", "[2]")
        assert b.history("running") == []  # its mirror took nothing
        assert keys(a, "log/") == ["log/running/" + "1".zfill(16)]
        with EtcdStorage(eps, prefix=prefix) as c:  # read again: it goes on from there
            assert [r.payload for r in c.load().commits] == ["[1]"]
            assert c.append_commit("running", 3.0, "carol", "edit", "[3]").revision == 2


def test_a_batch_is_one_transaction_or_nothing(where: tuple[list[str], str]) -> None:
    eps, prefix = where
    with EtcdStorage(eps, prefix=prefix) as st:
        st.append_commit("running", 1.0, "u", "edit", "[0]")
        with pytest.raises(RuntimeError), st.batch():
            st.append_commit("running", 2.0, "u", "edit", "[1]")
            st.put_oper("mgr", "i1", "up")
            st.append_notification("m", 2.0, "n")
            raise RuntimeError("the caller fails")
        assert keys(st) == ["head", "log/running/" + "1".zfill(16)]
        assert st.oper_keys() == [] and list(st.notifications()) == []
        # the revision and the number it would have used are free again
        with st.batch():
            assert st.append_commit("running", 3.0, "u", "edit", "[2]").revision == 2
            st.put_oper("mgr", "i1", "up")
            st.put_oper("mgr", "i1", "down")  # one key written twice: the last wins
            st.put_oper("mgr", "i2", "x")
            st.put_oper("mgr", "i2", None)
            assert st.append_notification("m", 3.0, "n") == 1
    with EtcdStorage(eps, prefix=prefix) as again:
        assert again.oper_texts("mgr", ["i1", "i2"]) == ["down", None]
        assert [r.revision for r in again.load().commits] == [1, 2]
        assert [n.seq for n in again.notifications()] == [1]


def test_a_failed_write_in_a_nested_batch_is_undone_alone(
        where: tuple[list[str], str]) -> None:
    eps, prefix = where
    with EtcdStorage(eps, prefix=prefix) as st, st.batch():
        st.put_oper("mgr", "kept", "1")
        with pytest.raises(ValueError), st.batch():
            st.append_commit("running", 1.0, "u", "edit", "[]")
            st.put_oper("mgr", "gone", "2")
            raise ValueError
        assert st.append_commit("running", 2.0, "u", "edit", "[x]").revision == 1
    with EtcdStorage(eps, prefix=prefix) as again:
        assert again.oper_keys() == [("mgr", "kept")]
        assert [(r.revision, r.payload) for r in again.load().commits] == [(1, "[x]")]


def test_snapshots_are_stored_an_entry_a_key(where: tuple[list[str], str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    eps, prefix = where
    monkeypatch.setattr(etcd_storage, "_OPS_PER_TXN", 40)
    doc = {"m:top": {"entry": [{"k": i, "v": "x" * i} for i in range(250)],
                     "leaf": 5, "list-of-leaves": [1, 2]},
           "m:other": {}, "n:leaf": "a"}
    with EtcdStorage(eps, prefix=prefix, keep_snapshots=2) as st:
        for i in range(5):
            st.append_commit("running", float(i), "u", "edit", f"[{i}]")
        steps = sum(1 for _ in st.snapshot_steps("running", 2, json.dumps(doc)))
        assert steps >= 250 // 40
        pieces = keys(st, "snap/running/" + "2".zfill(16) + "/")
        assert len(pieces) == 250 + 4
        st.write_snapshot("running", 4, json.dumps({"n:leaf": "b"}))
        st.write_snapshot("running", 5, json.dumps({"n:leaf": "c"}))
        # two kept: the one at 2 and the commits before 4 are gone from etcd
        assert keys(st, "snapmeta/") == ["snapmeta/running/" + str(r).zfill(16)
                                         for r in (4, 5)]
        assert keys(st, "snap/running/" + "2".zfill(16)) == []
        assert keys(st, "log/") == ["log/running/" + str(r).zfill(16) for r in (4, 5)]
    with EtcdStorage(eps, prefix=prefix, keep_snapshots=2) as again:
        state = again.load()
        assert json.loads(state.snapshots["running"].content) == {"n:leaf": "c"}
        assert state.last_revision == 5 and state.commits == []
        assert json.loads(again.snapshot_at("running", 4).content) == {  # type: ignore[union-attr]
            "n:leaf": "b"}


def test_a_snapshot_round_trips_its_entries_in_order(where: tuple[list[str], str]) -> None:
    eps, prefix = where
    doc = {"a:x": {"l": [{"k": 3}, {"k": 1}, {"k": 2}], "c": {"d": 1}},
           "b:y": [1, 2], "c:z": {}}
    with EtcdStorage(eps, prefix=prefix) as st:
        st.append_commit("running", 1.0, "u", "edit", "[]")
        st.write_snapshot("running", 1, json.dumps(doc))
    with EtcdStorage(eps, prefix=prefix) as again:
        text = again.load().snapshots["running"].content
        assert json.loads(text) == doc
        assert [e["k"] for e in json.loads(text)["a:x"]["l"]] == [3, 1, 2]


def test_a_torn_snapshot_is_ignored_and_cleared(where: tuple[list[str], str]) -> None:
    eps, prefix = where
    with EtcdStorage(eps, prefix=prefix) as st:
        st.append_commit("running", 1.0, "u", "edit", "[]")
        st.write_snapshot("running", 1, json.dumps({"n:leaf": "whole"}))
        # a writer that died after some entries of the next one, before its mark
        st._write([Put(st._key("snap", "running", "2".zfill(16), "dead", "0".zfill(16)),
                       json.dumps(["n:leaf", None, "torn"]).encode())])
    with EtcdStorage(eps, prefix=prefix) as again:
        assert json.loads(again.load().snapshots["running"].content) == {"n:leaf": "whole"}
        assert keys(again, "snap/running/" + "2".zfill(16)) == []


def test_a_snapshot_being_written_survives_another_replica_opening(
        where: tuple[list[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    eps, prefix = where
    monkeypatch.setattr(etcd_storage, "_OPS_PER_TXN", 40)
    doc = {"m:top": {"entry": [{"k": i} for i in range(250)]}}
    with EtcdStorage(eps, prefix=prefix) as st:
        st.append_commit("running", 1.0, "u", "edit", "[]")
        steps = st.snapshot_steps("running", 1, json.dumps(doc))
        next(steps)
        next(steps)
        with EtcdStorage(eps, prefix=prefix) as other:  # opens while it is written
            assert "running" not in other.load().snapshots
        for _ in steps:
            pass
    with EtcdStorage(eps, prefix=prefix) as again:
        assert json.loads(again.load().snapshots["running"].content) == doc


def test_nothing_is_half_written_when_etcd_is_gone(etcd_own: EtcdCluster) -> None:
    st = EtcdStorage(etcd_own.endpoints, timeout=0.5, failover=1.0)
    try:
        st.append_commit("running", 1.0, "u", "edit", "[0]")
        for i in range(3):
            etcd_own.kill(i)
        with pytest.raises(StorageUnavailable):
            st.append_commit("running", 2.0, "u", "edit", "[1]")
        assert [r.revision for r in st.history("running")] == [1]
        for i in range(3):
            etcd_own.start_member(i)
        etcd_own.wait_ready()
        assert st.append_commit("running", 3.0, "u", "edit", "[2]").revision == 2
    finally:
        st.close()


async def test_keys_nfo_does_not_write_are_ignored_and_the_rest_taken(
        where: tuple[list[str], str]) -> None:
    """Keys under the prefix that nfo did not write (no UTF-8, no JSON, the wrong shape)
    are logged and ignored: the real change in the same revision is still taken, by a
    replica following and by one that starts over them."""
    eps, prefix = where
    junk = [(b"oper/x", b"\xff"), (b"log/running", b"{}"), (b"notif/m/zz", b"[1]"),
            (b"replicas/q", b"\xff"), (b"ask/rpc/q/1", b"\xff"), (b"lock/x/y", b"no"),
            (b"meta/\xff", b"x")]
    with EtcdStorage(eps, prefix=prefix, replica="a") as a:
        a.follow(lambda _: None)
        p = a.prefix
        ops = [Put(p + k, v) for k, v in junk] + [Put(p + b"oper/mgr/i1", b"up")]
        rev = a._io.run(lambda c: c.txn([], ops)).revision
        await asyncio.wait_for(a.caught_up(rev), 10)
        assert a.oper_texts("mgr", ["i1"]) == ["up"]
        with EtcdStorage(eps, prefix=prefix, replica="b") as b:
            assert b.oper_texts("mgr", ["i1"]) == ["up"]
            assert b.append_commit("running", 1.0, "u", "edit", "[1]").revision == 1
        await asyncio.wait_for(a.caught_up(rev + 1), 10)
        assert [r.payload for r in a.history("running")] == ["[1]"]


async def test_one_replica_leads_and_the_next_takes_over_on_release(
        where: tuple[list[str], str]) -> None:
    eps, prefix = where
    with EtcdStorage(eps, prefix=prefix, replica="a") as a, \
            EtcdStorage(eps, prefix=prefix, replica="b") as b:
        la = await a.lead("workload", ttl=2)
        assert la.valid()
        waiting = asyncio.create_task(b.lead("workload", ttl=2))
        await asyncio.sleep(1.0)
        assert not waiting.done()  # a leads
        await la.release()
        assert not la.valid() and la.lost.is_set()
        lb = await asyncio.wait_for(waiting, 10)
        assert lb.valid()
        await lb.release()


async def test_a_replica_that_lost_its_lease_stores_nothing_for_what_it_led(
        where: tuple[list[str], str]) -> None:
    eps, prefix = where
    with EtcdStorage(eps, prefix=prefix, replica="a") as a, \
            EtcdStorage(eps, prefix=prefix, replica="b") as b:
        la = await a.lead("workload", ttl=2, owner="mgr")
        a.put_oper("mgr", "i1", "a was here")
        # a's lease ends behind its back (as when a is paused past it); b takes over
        b._io.run(lambda c: c.revoke(la.lease))
        lb = await asyncio.wait_for(b.lead("workload", ttl=2, owner="mgr"), 10)
        with pytest.raises(StorageConflict):
            a.put_oper("mgr", "i1", "a, stale")
        assert a.oper_texts("mgr", ["i1"]) == ["a was here"]
        b.put_oper("mgr", "i1", "b now")
        # a notices at its next renewal, and says so before any VIM call
        await asyncio.wait_for(la.lost.wait(), 5)
        assert not la.valid()
        with EtcdStorage(eps, prefix=prefix) as c:
            assert c.oper_texts("mgr", ["i1"]) == ["b now"]
        # writes of other owners (and commits) are not a leader's: a still makes them
        a.put_oper("other", "x", "1")
        await lb.release()


async def test_a_lease_not_renewed_in_time_is_not_trusted(
        where: tuple[list[str], str]) -> None:
    eps, prefix = where
    with EtcdStorage(eps, prefix=prefix, replica="a") as a:
        la = await a.lead("workload", ttl=2)
        assert la._renewing is not None
        la._renewing.cancel()  # as if the process stood still: no renewal happens
        await asyncio.sleep(1.2)
        assert not la.valid()  # by its own clock, before etcd lets the key go
        await la.release()
