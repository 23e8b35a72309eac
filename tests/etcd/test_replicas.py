"""Datastores of two replicas on one etcd prefix (in one process, each with its own
storage, trees and loop callbacks): a commit on either is applied on the other and its
subscribers told; writes racing on both are all committed, once each, in one order."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import Datastore
from nfo.datastore.storage.etcd import EtcdStorage
from nfo.datastore.storage.etcd_client import WatchBatch
from nfo.datastore.subscriptions import ChangeEvent
from nfo.datastore.users import UserStore
from nfo.errors import InUse, InvalidValue, LockDenied, NfoError, PreconditionFailed
from nfo.registry import DriverRegistry
from nfo.schema import Schema
from nfo.workload import WorkloadManager
from tests.etcd.cluster import EtcdCluster

pytestmark = pytest.mark.etcd


def vim(name: str, kind: str = "nfo-vim:sim") -> str:
    return json.dumps({"nfo-vim:vims": {"vim": [{"name": name, "type": kind}]}})


def content(ds: Datastore) -> Any:
    with ds.get("running") as t:
        return json.loads(t.print("json") or "{}")


async def converged(*replicas: Datastore, timeout: float = 10.0) -> None:
    async def wait() -> None:
        while len({r.info("running").revision for r in replicas}) > 1:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(wait(), timeout)


@pytest.fixture
async def pair(schema: Schema, etcd_shared: EtcdCluster
               ) -> AsyncIterator[tuple[Datastore, Datastore]]:
    prefix = f"/r/{uuid.uuid4().hex}/"
    a = Datastore.open(schema, EtcdStorage(etcd_shared.endpoints, prefix=prefix,
                                           replica="a"))
    await a.start()
    b = Datastore.open(schema, EtcdStorage(etcd_shared.endpoints, prefix=prefix,
                                           replica="b"))
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_a_commit_on_one_replica_is_applied_on_the_other(
        pair: tuple[Datastore, Datastore]) -> None:
    a, b = pair
    seen: list[ChangeEvent] = []

    async def on_change(ev: ChangeEvent) -> None:
        seen.append(ev)

    b.subscribe("nfo-vim", on_change)
    await a.internal_session("alice").edit("running", vim("v1"), "json")
    await converged(a, b)
    assert content(b) == content(a)
    assert b.info("running").user == "alice"
    await asyncio.sleep(0.05)
    assert [(ev.phase, ev.revision) for ev in seen] == [("done", a.info("running").revision)]
    assert seen[0].changes[0].path == "/nfo-vim:vims/vim[name='v1']"
    # and back: b writes on what it now holds, a follows
    await b.internal_session("bob").edit("running", vim("v2"), "json")
    await converged(a, b)
    assert {v["name"] for v in content(a)["nfo-vim:vims"]["vim"]} == {"v1", "v2"}
    assert [h.revision for h in b.storage.history("running")] == [
        h.revision for h in a.storage.history("running")]


async def test_writes_racing_on_both_replicas_are_all_committed(
        pair: tuple[Datastore, Datastore]) -> None:
    a, b = pair
    sa, sb = a.internal_session("alice"), b.internal_session("bob")
    await asyncio.gather(*(s.edit("running", vim(f"{tag}{i}"), "json")
                           for i in range(15) for tag, s in (("a", sa), ("b", sb))))
    await converged(a, b)
    names = sorted(v["name"] for v in content(a)["nfo-vim:vims"]["vim"])
    assert names == sorted([f"a{i}" for i in range(15)] + [f"b{i}" for i in range(15)])
    assert content(b) == content(a)
    revs = [h.revision for h in a.storage.history("running", limit=1000)]
    assert revs == sorted(revs, reverse=True) and len(revs) == len(set(revs)) == 30


async def test_a_refused_write_on_one_replica_leaves_both_as_they_were(
        pair: tuple[Datastore, Datastore]) -> None:
    a, b = pair
    await a.internal_session("alice").edit("running", vim("v1"), "json")
    await converged(a, b)
    before = b.info("running").revision
    with pytest.raises(NfoError):
        await b.internal_session("bob").edit("running", vim("v1", "nfo-vim:no-such"), "json")
    await asyncio.sleep(0.1)
    assert a.info("running").revision == b.info("running").revision == before


async def test_a_replica_behind_a_compaction_reads_everything_again(
        pair: tuple[Datastore, Datastore]) -> None:
    a, b = pair
    seen: list[ChangeEvent] = []

    async def on_change(ev: ChangeEvent) -> None:
        seen.append(ev)

    await a.internal_session("alice").edit("running", vim("v1"), "json")
    await a.internal_session("alice").edit("running", vim("v2"), "json")
    await converged(a, b)
    b.subscribe("nfo-vim", on_change)
    st = b.storage
    assert isinstance(st, EtcdStorage) and st._deliver is not None
    deliver = st._deliver
    await st.unfollow()  # b falls behind ...
    s = a.internal_session("alice")
    await s.edit("running", vim("v3"), "json")
    await s.edit("running", json.dumps({"nfo-vim:vims": {"vim": [
        {"name": "v1", "@": {"ietf-netconf:operation": "delete"}}]}}), "json")
    await s.edit("running", vim("v4"), "json")
    top = await st._on_etcd(lambda c: c.put(b"/elsewhere", b"x"))
    await st._on_etcd(lambda c: c.compact(top))  # ... past what etcd still keeps
    st.follow(deliver)
    await converged(a, b)
    assert content(b) == content(a)
    await asyncio.sleep(0.1)
    # told once, of exactly what differs (the entries, with what is below them)
    assert [ev.phase for ev in seen] == ["done"]
    changes = seen[0].changes
    assert not [c.path for c in changes if "'v2'" in c.path]
    assert sorted((type(c).__name__, c.path) for c in changes
                  if c.path.count("/") == 2) == [
        ("ChangeCreated", "/nfo-vim:vims/vim[name='v3']"),
        ("ChangeCreated", "/nfo-vim:vims/vim[name='v4']"),
        ("ChangeDeleted", "/nfo-vim:vims/vim[name='v1']"),
    ]
    # and it follows again, revision by revision
    await a.internal_session("alice").edit("running", vim("v5"), "json")
    await converged(a, b)
    assert content(b) == content(a)


async def test_a_lock_taken_on_one_replica_holds_on_the_other(
        pair: tuple[Datastore, Datastore]) -> None:
    a, b = pair
    sa, sb = a.internal_session("alice"), b.internal_session("bob")
    sa.lock("running")
    await asyncio.sleep(0.2)  # b has seen the lock
    with pytest.raises(InUse, match=r"locked by session .* of replica"):
        await sb.edit("running", vim("b1"), "json")
    with pytest.raises(LockDenied):
        sb.lock("running")
    await sa.edit("running", vim("a1"), "json")  # the holder writes
    sb.lock("startup")  # another datastore's lock is another lock
    sa.unlock("running")
    await asyncio.sleep(0.2)
    await sb.edit("running", vim("b1"), "json")
    await converged(a, b)
    assert {v["name"] for v in content(a)["nfo-vim:vims"]["vim"]} >= {"a1", "b1"}
    await sa.close()
    await sb.close()


def lagging(ds: Datastore, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """``ds`` hears nothing of the other replicas until the returned call, which
    delivers what it missed."""
    st = ds.storage
    assert isinstance(st, EtcdStorage)
    late: list[WatchBatch] = []
    monkeypatch.setattr(st, "_take", late.append)

    def catch_up() -> None:
        monkeypatch.undo()
        for batch in late:
            st._take(batch)

    return catch_up


async def test_a_write_that_has_not_seen_a_new_lock_is_refused_by_etcd(
        pair: tuple[Datastore, Datastore], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair
    catch_up = lagging(b, monkeypatch)  # b does not hear of the lock yet
    sa = a.internal_session("alice")
    sa.lock("running")
    write = asyncio.create_task(b.internal_session("bob").edit("running", vim("b1"), "json"))
    await asyncio.sleep(0.3)
    assert not write.done()  # refused by etcd; it waits to hear what changed
    catch_up()
    with pytest.raises(InUse):
        await write
    assert "b1" not in json.dumps(content(a))
    await sa.close()


async def test_a_notification_logged_on_one_replica_reaches_the_others_subscribers(
        pair: tuple[Datastore, Datastore]) -> None:
    a, b = pair
    sub = b.notifications.subscribe()
    try:
        await a.internal_session("alice").edit("running", vim("v1"), "json")
        got = await asyncio.wait_for(sub.__anext__(), 10)
        body = json.loads(getattr(got, "content", "{}"))
        change = body["ietf-netconf-notifications:netconf-config-change"]
        assert change["changed-by"]["username"] == "alice"
        assert change["edit"][0]["target"] == "/nfo-vim:vims/vim[name='v1']"
        # the same record, by the same number, on both
        [mine] = [n for n in a.storage.notifications() if n.seq == getattr(got, "seq", 0)]
        assert json.loads(mine.content)["data"] == getattr(got, "content", "")
    finally:
        await sub.aclose()


async def test_each_replica_and_what_it_leads_is_listed(
        pair: tuple[Datastore, Datastore]) -> None:
    a, b = pair
    sa, sb = a.storage, b.storage
    assert isinstance(sa, EtcdStorage) and isinstance(sb, EtcdStorage)

    def listed(st: EtcdStorage) -> list[tuple[str, bool, list[str]]]:
        doc = json.loads(st.replicas_json())["nfo-replicas:replicas"]["replica"]
        return [(r["name"], r["here"], r.get("leads", [])) for r in doc]

    async def until(st: EtcdStorage, want: list[tuple[str, bool, list[str]]]) -> None:
        for _ in range(200):
            if listed(st) == want:
                return
            await asyncio.sleep(0.05)
        assert listed(st) == want

    await until(sb, [("a", False, []), ("b", True, [])])
    held = await sa.lead("workload", ttl=2)
    await until(sb, [("a", False, ["workload"]), ("b", True, [])])
    await until(sa, [("a", True, ["workload"]), ("b", False, [])])
    await held.release()
    await until(sb, [("a", False, []), ("b", True, [])])


def names(ds: Datastore) -> set[str]:
    return {v["name"] for v in content(ds).get("nfo-vim:vims", {}).get("vim", [])}


async def test_a_persistent_confirmed_commit_is_confirmed_through_another_replica(
        pair: tuple[Datastore, Datastore]) -> None:
    a, b = pair
    sa, sb = a.internal_session("alice"), b.internal_session("bob")
    await sa.edit("candidate", vim("v1"), "json")
    await sa.commit(confirmed=True, timeout=1.5, persist="p1")
    await converged(a, b)
    await sb.edit("candidate", vim("v2"), "json")
    with pytest.raises(InvalidValue, match="persist-id"):
        await sb.commit()  # only with its persist-id
    await sb.commit(persist_id="p1")  # confirmed (with b's own change) through b
    await converged(a, b)
    await asyncio.sleep(2.5)  # a's timer has fired: it finds nothing left to revert
    assert names(a) == names(b) >= {"v1", "v2"}
    assert not a.storage.get_meta("confirmed-commit")


async def test_a_confirmed_commit_of_a_session_is_that_replicas(
        pair: tuple[Datastore, Datastore]) -> None:
    a, b = pair
    sa, sb = a.internal_session("alice"), b.internal_session("bob")
    await sa.edit("candidate", vim("v1"), "json")
    await sa.commit(confirmed=True, timeout=60)
    await converged(a, b)
    await sb.edit("candidate", vim("v2"), "json")
    with pytest.raises(InUse, match="another replica"):
        await sb.commit()
    with pytest.raises(InvalidValue):
        await sb.cancel_commit("nope")
    await sa.commit()  # its own session confirms it
    await converged(a, b)
    await sb.commit()
    await converged(a, b)
    assert names(b) >= {"v1", "v2"}


async def test_a_confirmed_commit_whose_replica_is_gone_is_reverted_by_another(
        pair: tuple[Datastore, Datastore]) -> None:
    a, b = pair
    sa = a.internal_session("alice")
    await sa.edit("running", vim("kept"), "json")
    await sa.edit("candidate", vim("unconfirmed"), "json")
    await sa.commit(confirmed=True, timeout=60, persist="p1")
    await converged(a, b)
    assert "unconfirmed" in names(b)
    await a.close()  # its timer goes with it; the commit stays pending in the store
    for _ in range(100):
        if "unconfirmed" not in names(b):
            break
        await asyncio.sleep(0.1)
    assert names(b) == {"kept"} | ({"local"} & names(b))
    assert not b.storage.get_meta("confirmed-commit")


async def test_a_revision_seen_on_one_replica_is_honoured_on_another(
        pair: tuple[Datastore, Datastore], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair
    catch_up = lagging(b, monkeypatch)  # b lags behind a
    await a.internal_session("alice").edit("running", vim("v1"), "json")
    seen = a.info("running").revision  # the ETag a client read on a
    assert b.info("running").revision < seen
    write = asyncio.create_task(b.internal_session("bob").edit(
        "running", vim("v2"), "json", if_revision=seen))
    await asyncio.sleep(0.3)
    assert not write.done()  # b first catches up with what the store holds ...
    catch_up()
    await write  # ... and then the revision holds
    await converged(a, b)
    assert names(a) >= {"v1", "v2"}
    with pytest.raises(PreconditionFailed):  # and a stale one stays refused
        await b.internal_session("bob").edit("running", vim("v3"), "json",
                                             if_revision=seen)


@pytest.mark.parametrize("reconciles", [True, False], ids=["leader", "checks"])
async def test_a_catalog_commit_of_another_replica_settles_the_manager_here(
        pair: tuple[Datastore, Datastore], tmp_path: Path, reconciles: bool) -> None:
    """A catalog commit made through another replica reaches this one's manager as a
    done alone: it takes it as committed (descriptors and staged instances read again)
    and counts no catalog commit as still open, before or after one of its own."""
    a, b = pair
    manager = WorkloadManager(b, DriverRegistry.from_entry_points(tmp_path, "nfo-test"),
                              reconciles=reconciles)
    await manager.start()
    try:
        catalog = {"nfo-catalog:catalog": {"nf-descriptor": [
            {"id": "fw", "vim-types": ["nfo-vim:sim"]}]}}
        await a.internal_session("alice").edit("running", json.dumps(catalog), "json")
        await converged(a, b)
        await asyncio.sleep(0.05)  # b's subscribers are told after it applied it
        assert manager._catalog_open == set()
        assert manager._catalog_rev == b.info("running").revision
        catalog["nfo-catalog:catalog"]["nf-descriptor"][0]["id"] = "fw2"
        await b.internal_session("bob").edit("running", json.dumps(catalog), "json")
        assert manager._catalog_open == set()
        assert manager._catalog_rev == b.info("running").revision
    finally:
        await manager.stop()


async def test_an_account_changed_through_another_replica_is_read_again_here(
        pair: tuple[Datastore, Datastore]) -> None:
    """A user store keeps what logins read of an account until a commit changes an
    account; one made through another replica counts as one made here."""
    a, b = pair
    here, there = UserStore(b), UserStore(a)
    await there.add("dave", "first-password-1")
    await converged(a, b)
    assert await here.login("dave", "first-password-1", "127.0.0.1", "restconf")
    seen = here.revision
    await a.internal_session("alice").edit("running", vim("v1"), "json")  # not an account
    await converged(a, b)
    assert here.revision == seen
    await there.set_password("dave", "second-password-2")
    await converged(a, b)
    assert here.revision > seen
    assert not await here.login("dave", "first-password-1", "127.0.0.1", "restconf")
    assert await here.login("dave", "second-password-2", "127.0.0.1", "restconf")
