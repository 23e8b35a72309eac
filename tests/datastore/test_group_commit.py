"""Group commit of concurrent writers: one storage transaction for edits that arrive
together, each writer still judged alone.

Real libyang (nfo's modules plus nfo-test), a fresh store per test (each backend).  Writes
started together (``asyncio.gather``) queue while the first group forms, so they are
committed as one group; the tests check each verdict, the data, the history and what
a reopened datastore holds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from nfo.datastore import ChangeEvent, Datastore, Storage, WriteView
from nfo.datastore.groupcommit import GATHER_TURNS
from nfo.errors import DataExists, NfoError, OperationFailed, PreconditionFailed
from nfo.schema import Schema


def things(*entries: tuple[str, str]) -> str:
    return json.dumps({"nfo-test:top": {"thing": [
        {"id": i, "label": label, "needed": f"n-{i}"} for i, label in entries]}})


def add(name: str, **extra: Any) -> str:
    return json.dumps({"nfo-test:top": {"item": [{"name": name, **extra}]}})


def ids(ds: Datastore) -> list[str]:
    with ds.get("running") as t:
        doc = json.loads(t.print("json"))
    return sorted(x["id"] for x in doc.get("nfo-test:top", {}).get("thing", []))


def items(ds: Datastore) -> list[str]:
    with ds.get("running") as t:
        doc = json.loads(t.print("json"))
    return [x["name"] for x in doc.get("nfo-test:top", {}).get("item", [])]


async def test_writes_that_arrive_together_are_one_group_of_separate_commits(
        ds: Datastore, schema: Schema, reopen: Callable[[], Storage]) -> None:
    sessions = [ds.internal_session(f"user{k}") for k in range(10)]
    before = ds.info("running").revision
    groups, writes = ds._tx.groups
    out = await asyncio.gather(*(
        s.edit("running", things((f"t{k}", f"label {k}")), "json")
        for k, s in enumerate(sessions)))
    assert all(len(changes) > 0 for changes in out)
    assert ds._tx.groups == (groups + 1, writes + 10)
    assert ids(ds) == sorted(f"t{k}" for k in range(10))
    history = ds.history("running", limit=10)
    assert [h.revision for h in reversed(history)] == list(range(before + 1, before + 11))
    assert [h.user for h in reversed(history)] == [f"user{k}" for k in range(10)]
    assert ds.info("running").revision == before + 10
    for s in sessions:
        await s.close()
    await ds.close()
    again = Datastore.open(schema, reopen())
    try:
        assert ids(again) == sorted(f"t{k}" for k in range(10))
        assert again.info("running").revision == before + 10
    finally:
        await again.close()


async def test_writes_received_while_a_group_forms_join_it(ds: Datastore) -> None:
    """Requests read from sockets reach the queue a turn or two of the loop apart (the
    read, then the handler): the group waits for them instead of leaving them to the
    next one."""
    s = ds.internal_session("w")
    groups, writes = ds._tx.groups

    async def after(turns: int, name: str) -> Any:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await s.edit("running", things((name, f"label {name}")), "json")

    await asyncio.gather(*(after(k, f"late{k}") for k in range(GATHER_TURNS + 1)))
    assert ds._tx.groups == (groups + 1, writes + GATHER_TURNS + 1)
    assert ids(ds) == [f"late{k}" for k in range(GATHER_TURNS + 1)]


async def test_a_failing_write_never_takes_a_neighbour_down(ds: Datastore) -> None:
    s = ds.internal_session("setup")
    await s.edit("running", things(("base", "base label")), "json")
    writes = [
        things(("a", "label a")),
        add("big", size=5000),                          # fails its must
        json.dumps({"nfo-test:top": {"thing": [         # fails: the entry exists
            {"@": {"ietf-netconf:operation": "create"}, "id": "base", "needed": "x"}]}}),
        things(("b", "base label")),                    # fails unique label
        things(("c", "label c")),
    ]
    groups, _ = ds._tx.groups
    out = await asyncio.gather(*(s.edit("running", w, "json") for w in writes),
                               return_exceptions=True)
    assert ds._tx.groups[0] == groups + 1
    assert not isinstance(out[0], BaseException)
    assert isinstance(out[1], NfoError) and out[1].app_tag == "size-too-big"
    assert isinstance(out[2], DataExists)
    assert isinstance(out[3], NfoError) and "unique" in out[3].message.lower()
    assert not isinstance(out[4], BaseException)
    assert ids(ds) == ["a", "base", "c"]
    assert items(ds) == []
    assert [h.revision for h in ds.history("running", limit=3)][:2] == [
        ds.info("running").revision, ds.info("running").revision - 1]


async def test_a_write_sees_the_writes_before_it_in_its_group(ds: Datastore) -> None:
    s = ds.internal_session("w")
    rev = ds.info("running").revision
    seen: list[tuple[bool, int]] = []

    def second(view: WriteView) -> None:
        seen.append((view.exists("/nfo-test:top/thing[id='first']"), view.info.revision))

    def third(view: WriteView) -> None:
        if view.exists("/nfo-test:top/thing[id='fourth']"):
            raise PreconditionFailed("fourth exists")

    groups = ds._tx.groups
    await asyncio.gather(
        s.edit("running", things(("first", "l1")), "json"),
        s.edit("running", things(("second", "l2")), "json", precondition=second),
        s.edit("running", things(("third", "l3")), "json", if_revision=rev + 2))
    assert ds._tx.groups == (groups[0] + 1, groups[1] + 3)
    assert seen == [(True, rev + 1)]  # asked once, in the group, of the group's data
    rev += 3
    out = await asyncio.gather(
        s.edit("running", things(("fourth", "l4")), "json"),
        s.edit("running", things(("fifth", "l5")), "json", precondition=third),
        s.edit("running", things(("sixth", "l6")), "json", if_revision=rev + 1),
        s.edit("running", things(("seventh", "l7")), "json", if_revision=rev),
        return_exceptions=True)
    assert isinstance(out[1], PreconditionFailed)
    assert not isinstance(out[2], BaseException)
    assert isinstance(out[3], PreconditionFailed)
    assert ids(ds) == ["first", "fourth", "second", "sixth", "third"]


async def test_a_vetoed_write_fails_alone(ds: Datastore) -> None:
    events: list[tuple[str, int]] = []

    async def veto(ev: ChangeEvent) -> None:
        events.append((ev.phase, ev.revision))
        if ev.phase == "change" and any("veto-me" in c.path for c in ev.changes):
            raise ValueError("no veto-me here")

    sub = ds.subscribe("nfo-test", veto)
    s = ds.internal_session("w")
    out = await asyncio.gather(*(s.edit("running", things((n, f"l-{n}")), "json")
                                 for n in ("x", "veto-me", "y")), return_exceptions=True)
    await ds.settle()
    assert isinstance(out[1], NfoError) and "no veto-me here" in out[1].message
    assert not isinstance(out[0], BaseException) and not isinstance(out[2], BaseException)
    assert ids(ds) == ["x", "y"]
    done = sorted(r for p, r in events if p == "done")
    assert done == [h.revision for h in reversed(ds.history("running", limit=2))]
    await ds.unsubscribe(sub)


class Held:
    """A change subscriber that holds every commit in phase change until released."""

    def __init__(self, ds: Datastore) -> None:
        self.ds = ds
        self.gate = asyncio.Event()
        self.sub = ds.subscribe("nfo-test", self._hold)

    async def _hold(self, ev: ChangeEvent) -> None:
        if ev.phase == "change":
            await self.gate.wait()

    async def committing(self, write: Any) -> asyncio.Future[Any]:
        """Start ``write`` and return once its group is held in its subscriber."""
        fut = asyncio.ensure_future(write)
        while not self.ds._locks._committing:
            await asyncio.sleep(0.001)
        return fut

    async def close(self) -> None:
        self.gate.set()
        await self.ds.unsubscribe(self.sub)


async def test_a_write_cancelled_while_queued_is_withdrawn(ds: Datastore) -> None:
    held = Held(ds)
    s = ds.internal_session("w")
    first = await held.committing(s.edit("running", things(("held", "l")), "json"))
    queued = asyncio.ensure_future(s.edit("running", things(("withdrawn", "l2")), "json"))
    await asyncio.sleep(0.01)
    queued.cancel()
    held.gate.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert ids(ds) == ["held"]
    await held.close()


async def test_a_write_cancelled_after_its_group_took_it_still_gets_settled(
        ds: Datastore) -> None:
    held = Held(ds)
    s = ds.internal_session("w")
    taken = await held.committing(s.edit("running", things(("taken", "l")), "json"))
    taken.cancel()  # its edit tree is in use: the edit waits for its verdict first
    await asyncio.sleep(0.01)
    assert not taken.done()
    held.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await taken
    assert ids(ds) == ["taken"]  # it was committed: the client was not told
    await held.close()


async def test_group_commit_off_commits_one_at_a_time(ds: Datastore) -> None:
    ds.group_commit = False
    s = ds.internal_session("w")
    groups = ds._tx.groups
    await asyncio.gather(*(s.edit("running", things((f"o{k}", f"l{k}")), "json")
                           for k in range(4)))
    assert ds._tx.groups == groups
    assert ids(ds) == ["o0", "o1", "o2", "o3"]


async def test_a_group_the_storage_refuses_is_retried_one_write_at_a_time(
        ds: Datastore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real = ds.storage.append_commit
    calls: list[str] = []

    def failing_once(*args: Any, **kw: Any) -> Any:
        calls.append(args[3])
        if len(calls) == 2:  # the group's second record: the whole transaction is lost
            raise OperationFailed("the disk is full")
        return real(*args, **kw)

    monkeypatch.setattr(ds.storage, "append_commit", failing_once)
    s = ds.internal_session("w")
    before = ds.info("running").revision
    out = await asyncio.gather(*(s.edit("running", things((f"d{k}", f"l{k}")), "json")
                                 for k in range(3)), return_exceptions=True)
    assert not any(isinstance(o, BaseException) for o in out)
    assert ids(ds) == ["d0", "d1", "d2"]
    assert [h.revision for h in reversed(ds.history("running", limit=3))] == [
        before + 1, before + 2, before + 3]
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
