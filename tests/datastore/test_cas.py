"""Compare-and-set writes: ``if_revision`` and ``precondition`` are checked under the
datastore's own write lock, on the state the edit is applied to, so a writer that read
revision N cannot overwrite a commit it has not seen, whoever made that commit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from nfo.datastore import ChangeEvent, Datastore, WriteView
from nfo.errors import DataExists, LockDenied, NfoError, PreconditionFailed

ITEM = "/nfo-test:top/item[name='a']"


def top(**body: Any) -> str:
    return json.dumps({"nfo-test:top": body})


def content(ds: Datastore, name: str = "running") -> dict[str, Any]:
    with ds.get(name) as t:
        return json.loads(t.print("json") or "{}")  # type: ignore[no-any-return]


def size(ds: Datastore) -> int | None:
    for item in content(ds).get("nfo-test:top", {}).get("item", []):
        if item["name"] == "a":
            return item.get("size")  # type: ignore[no-any-return]
    return None


async def test_if_revision_current_applies(ds: Datastore) -> None:
    async with ds.internal_session("alice") as s:
        await s.edit("running", top(item=[{"name": "a", "size": 1}]), "json")
        rev = ds.info("running").revision
        await s.edit("running", top(item=[{"name": "a", "size": 2}]), "json", if_revision=rev)
    assert size(ds) == 2
    assert ds.info("running").revision == rev + 1


async def test_if_revision_stale_is_refused(ds: Datastore) -> None:
    async with ds.internal_session("alice") as s:
        await s.edit("running", top(item=[{"name": "a", "size": 1}]), "json")
        rev = ds.info("running").revision
        with pytest.raises(PreconditionFailed) as ei:
            await s.edit("running", top(item=[{"name": "a", "size": 2}]), "json",
                         if_revision=rev - 1)
    assert ei.value.tag == "operation-failed" and ei.value.error_type == "protocol"
    assert size(ds) == 1
    assert ds.info("running").revision == rev


async def test_precondition_sees_the_target_datastore(ds: Datastore) -> None:
    seen: list[tuple[str, int, bool, bool, bool]] = []

    def look(view: WriteView) -> None:
        seen.append((view.datastore, view.info.revision, view.exists(ITEM),
                     view.exists("/nfo-test:top/count"),  # an implicit default: absent
                     view.exists("/nfo-test:top/item[name='zz']")))

    async with ds.internal_session("alice") as s:
        await s.edit("running", top(item=[{"name": "a", "size": 1}]), "json")
        rev = ds.info("running").revision
        await s.edit("running", top(name="x"), "json", precondition=look)
        await s.edit("candidate", top(name="y"), "json", precondition=look)
        await s.edit("startup", top(name="z"), "json", precondition=look)
    assert seen == [("running", rev, True, False, False),
                    ("candidate", rev + 1, True, False, False),
                    ("startup", 0, False, False, False)]


async def test_precondition_error_reaches_the_writer(ds: Datastore) -> None:
    def refuse(view: WriteView) -> None:
        if view.exists(ITEM):
            raise DataExists("already there", path=ITEM)

    async with ds.internal_session("alice") as s:
        await s.edit("running", top(item=[{"name": "a", "size": 1}]), "json",
                     precondition=refuse)
        with pytest.raises(DataExists):
            await s.edit("running", top(item=[{"name": "a", "size": 2}]), "json",
                         precondition=refuse)
    assert size(ds) == 1


async def test_refused_write_changes_nothing_and_calls_no_subscriber(ds: Datastore) -> None:
    events: list[ChangeEvent] = []

    async def record(ev: ChangeEvent) -> None:
        events.append(ev)

    async with ds.internal_session("alice") as s:
        await s.edit("running", top(item=[{"name": "a", "size": 1}]), "json")
        ds.subscribe("nfo-test", record)
        before, rev = content(ds), ds.info("running")
        history = ds.history("running")

        def refuse(view: WriteView) -> None:
            raise PreconditionFailed("no")

        with pytest.raises(PreconditionFailed):
            await s.edit("running", top(item=[{"name": "a", "size": 2}]), "json",
                         precondition=refuse)
        with pytest.raises(PreconditionFailed):
            await s.edit("running", top(item=[{"name": "a", "size": 3}]), "json",
                         if_revision=rev.revision + 7)
    await ds.settle()
    assert events == []
    assert content(ds) == before
    assert ds.info("running") == rev
    assert ds.history("running") == history


@pytest.mark.parametrize("how", ["if_revision", "precondition"])
async def test_concurrent_commit_lands_while_waiting_for_the_lock(ds: Datastore,
                                                                  how: str) -> None:
    """The second writer's commit lands while the first waits for the write lock: the
    first is checked on the state after it, so it is refused."""
    gate, entered = asyncio.Event(), asyncio.Event()

    async def hold(ev: ChangeEvent) -> None:
        if ev.phase == "change" and ev.user == "bob":
            entered.set()
            await gate.wait()  # bob's commit holds the write lock here

    alice, bob = ds.internal_session("alice"), ds.internal_session("bob")
    await alice.edit("running", top(item=[{"name": "a", "size": 1}]), "json")
    rev = ds.info("running").revision
    ds.subscribe("nfo-test", hold)
    seen: list[int] = []

    def expect_rev(view: WriteView) -> None:
        seen.append(view.info.revision)
        if view.info.revision != rev:
            raise PreconditionFailed("changed")

    t_bob = asyncio.create_task(
        bob.edit("running", top(item=[{"name": "a", "size": 2}]), "json"))
    await entered.wait()
    kw: dict[str, Any] = ({"if_revision": rev} if how == "if_revision"
                          else {"precondition": expect_rev})
    t_alice = asyncio.create_task(
        alice.edit("running", top(item=[{"name": "a", "size": 2}]), "json", **kw))
    await asyncio.sleep(0.05)
    assert not t_alice.done()  # waiting for the write lock
    gate.set()
    await t_bob
    with pytest.raises(PreconditionFailed):
        await t_alice
    assert ds.info("running").revision == rev + 1
    assert size(ds) == 2
    if how == "precondition":
        # on the state after bob's commit (on etcd, checked once more after a sync)
        assert seen and set(seen) == {rev + 1}
    await alice.close()
    await bob.close()


async def test_other_writes_take_the_preconditions(ds: Datastore) -> None:
    async with ds.internal_session("alice") as s:
        await s.edit("running", top(item=[{"name": "a", "size": 1}]), "json")
        await s.copy_config("startup", "running", source_is_datastore=True)
        await s.edit("candidate", top(item=[{"name": "a", "size": 5}]), "json")
        rev = ds.info("running").revision
        stale = rev - 1
        before = {n: content(ds, n) for n in ("running", "startup", "candidate")}
        refusing = [
            s.copy_config("running", "startup", source_is_datastore=True, if_revision=stale),
            s.copy_config("running", top(name="c"), "json", if_revision=stale),
            s.copy_config("running", "running", source_is_datastore=True, if_revision=stale),
            s.delete_config("startup", if_revision=stale - 5),
            s.rollback(1, if_revision=stale),
            s.commit(if_revision=stale),
            s.commit(confirmed=True, timeout=60, if_revision=stale),
        ]
        for write in refusing:
            with pytest.raises(PreconditionFailed):
                await write
        assert {n: content(ds, n) for n in before} == before
        assert ds.info("running").revision == rev
        assert not ds.storage.get_meta("confirmed-commit")
        # the same writes with the current revision go through
        await s.commit(if_revision=rev)
        assert size(ds) == 5
        await s.rollback(1, if_revision=ds.info("running").revision)
        assert size(ds) == 1
        startup = ds.info("startup").revision
        await s.delete_config("startup", if_revision=startup)
        assert content(ds, "startup") == {}


async def test_precondition_that_is_not_an_nfo_error_propagates(ds: Datastore) -> None:
    def broken(view: WriteView) -> None:
        raise RuntimeError("bug")

    async with ds.internal_session("alice") as s:
        with pytest.raises(RuntimeError):
            await s.edit("running", top(name="x"), "json", precondition=broken)
        assert ds.info("running").revision == 0
        await s.edit("running", top(name="x"), "json")  # the write lock was released
    with pytest.raises(NfoError):
        ds.check_precondition("running", if_revision=0)
    ds.check_precondition("running", if_revision=1)


async def test_lock_denied_while_a_commit_is_in_flight(ds: Datastore) -> None:
    """A lock granted while another writer's commit is under way would let its holder
    read the data that commit is about to replace, then overwrite it."""
    gate, entered = asyncio.Event(), asyncio.Event()

    async def hold(ev: ChangeEvent) -> None:
        if ev.phase == "change" and ev.user == "bob":
            entered.set()
            await gate.wait()

    ds.subscribe("nfo-test", hold)
    alice, bob = ds.internal_session("alice"), ds.internal_session("bob")
    t_bob = asyncio.create_task(
        bob.edit("running", top(item=[{"name": "a", "size": 2}]), "json"))
    await entered.wait()
    with pytest.raises(LockDenied) as ei:
        alice.lock("running")
    assert ei.value.info["session-id"] == str(bob.id)
    alice.lock("startup")  # only the datastore being written is refused
    gate.set()
    await t_bob
    alice.lock("running")
    assert size(ds) == 2
    await alice.close()
    await bob.close()
