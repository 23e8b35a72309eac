"""Two-phase change subscriptions: change/done/abort, vetoes, ordering, filters.

Real libyang (nfo's modules plus nfo-test) and a fresh store per test, on each storage
backend (tests/datastore/conftest.py).
Data states are changed by adding/removing list entries (changing the value of
a leaf in a small container is broken in the edit engine; see
test_transactions.py).
"""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import (
    ChangeCreated,
    ChangeDeleted,
    ChangeEvent,
    ChangeModified,
    ChangeMoved,
    Datastore,
    Storage,
)
from nfo.errors import InvalidValue, NfoError, UnknownElement, Veto

REPO = Path(__file__).resolve().parents[2]
CATALOG = (REPO / "yang" / "nfo-demo-catalog.json").read_text()
NC = 'xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"'
STEP = 5.0  # seconds any single wait may take before the test fails


def top(**body: Any) -> str:
    return json.dumps({"nfo-test:top": body})


def add(*names: str) -> str:
    return top(item=[{"name": n} for n in names])


def drop(*names: str) -> str:
    entries = "".join(f'<item nc:operation="delete"><name>{n}</name></item>' for n in names)
    return f'<top xmlns="urn:nfo:test" {NC}>{entries}</top>'


def vim(name: str, **extra: Any) -> str:
    return json.dumps({"nfo-vim:vims": {"vim": [
        {"name": name, "type": "nfo-vim:local", "local": {"max-processes": 4}, **extra}]}})


def item_names(ds: Datastore) -> list[str]:
    with ds.get("running") as t:
        data = json.loads(t.print("json"))
    return [i["name"] for i in data.get("nfo-test:top", {}).get("item", [])]


class Recorder:
    """A change callback that records every event it gets."""

    def __init__(self, name: str = "", log: list[tuple[str, str]] | None = None,
                 hook: Callable[[ChangeEvent], Awaitable[None]] | None = None) -> None:
        self.name = name
        self.events: list[ChangeEvent] = []
        self.log = log
        self.hook = hook

    async def __call__(self, ev: ChangeEvent) -> None:
        self.events.append(ev)
        if self.log is not None:
            self.log.append((self.name, ev.phase))
        if self.hook is not None:
            await self.hook(ev)

    def phases(self) -> list[str]:
        return [e.phase for e in self.events]

    def of(self, phase: str) -> list[ChangeEvent]:
        return [e for e in self.events if e.phase == phase]


async def until(pred: Callable[[], bool]) -> None:
    async with asyncio.timeout(STEP):
        while not pred():
            await asyncio.sleep(0.005)


# -- the two phases ---------------------------------------------------------------


async def test_change_then_done_with_typed_changes_for_own_module_only(
        ds: Datastore) -> None:
    t, v = Recorder(), Recorder()
    ds.subscribe("nfo-test", t)
    ds.subscribe("nfo-vim", v)
    s = ds.internal_session("alice")

    both = json.dumps({**json.loads(add("a")), **json.loads(vim("v1", description="one"))})
    await s.edit("running", both, "json")
    rev = ds.info("running").revision
    await ds.settle()
    assert t.phases() == ["change", "done"]
    change, done = t.events
    assert change.revision == done.revision == rev
    assert change.user == done.user == "alice"
    assert change.datastore == done.datastore == "running"
    # /nfo-test:top already exists (a non-presence container holding the default
    # 'count'), so only the entry is created
    assert list(change.changes) == list(done.changes) == [
        ChangeCreated("/nfo-test:top/item[name='a']", None),
        ChangeCreated("/nfo-test:top/item[name='a']/name", "a"),
    ]
    assert v.phases() == ["change", "done"]
    assert all(c.path.startswith("/nfo-vim:") for c in v.events[0].changes)
    assert ChangeCreated("/nfo-vim:vims/vim[name='v1']/description", "one") in \
        v.events[0].changes

    # a commit touching only nfo-vim does not wake the nfo-test subscriber
    await s.edit("running", vim("v1", description="two"), "json")
    await ds.settle()
    assert len(t.events) == 2
    assert list(v.events[-1].changes) == [
        ChangeModified("/nfo-vim:vims/vim[name='v1']/description", "two", "one")]

    await s.edit("running", drop("a"))
    await ds.settle()
    assert t.phases() == ["change", "done"] * 2
    assert list(t.events[-1].changes) == [
        ChangeDeleted("/nfo-test:top/item[name='a']", None),
        ChangeDeleted("/nfo-test:top/item[name='a']/name", "a"),
    ]


async def test_moved_changes_for_user_ordered_entries(ds: Datastore) -> None:
    r = Recorder()
    ds.subscribe("nfo-test", r)
    s = ds.internal_session("alice")
    await s.edit("running", add("a", "b", "c"), "json")
    await s.edit("running", f'<top xmlns="urn:nfo:test" {NC} '
                            'xmlns:yang="urn:ietf:params:xml:ns:yang:1">'
                            '<item yang:insert="first"><name>c</name></item></top>')
    await ds.settle()
    assert list(r.events[-1].changes) == [ChangeMoved("/nfo-test:top/item[name='c']", None)]
    assert item_names(ds) == ["c", "a", "b"]


async def test_candidate_edits_notify_only_on_commit(ds: Datastore) -> None:
    r = Recorder()
    ds.subscribe("nfo-test", r)
    s = ds.internal_session("alice")
    await s.edit("candidate", add("a"), "json")
    await ds.settle()
    assert r.events == []
    await s.commit()
    await ds.settle()
    assert r.phases() == ["change", "done"]
    assert r.events[1].revision == ds.info("running").revision


async def test_startup_subscription_sees_only_startup(ds: Datastore) -> None:
    run, start = Recorder(), Recorder()
    ds.subscribe("nfo-test", run)
    ds.subscribe("nfo-test", start, datastore="startup")
    s = ds.internal_session("alice")
    await s.edit("running", add("a"), "json")
    await ds.settle()
    assert run.phases() == ["change", "done"] and start.events == []
    await s.copy_config("startup", "running", source_is_datastore=True)
    await ds.settle()
    assert len(run.events) == 2
    assert start.phases() == ["change", "done"]
    assert all(e.datastore == "startup" for e in start.events)
    with pytest.raises(InvalidValue):
        ds.subscribe("nfo-test", Recorder(), datastore="candidate")


# -- vetoes -------------------------------------------------------------------------


@pytest.mark.parametrize("error", [
    InvalidValue("size policy says no", app_tag="my-policy", path="/nfo-test:top"),
    RuntimeError("subscriber crashed"),
])
async def test_veto_refuses_commit_and_aborts_earlier_subscribers(
        ds: Datastore, error: Exception) -> None:
    log: list[tuple[str, str]] = []
    first = Recorder("first", log)

    async def refuse(ev: ChangeEvent) -> None:
        if ev.phase == "change" and any("veto" in c.path for c in ev.changes):
            raise error

    vetoer = Recorder("vetoer", log, hook=refuse)
    last = Recorder("last", log)
    ds.subscribe("nfo-test", first, priority=10)
    ds.subscribe("nfo-test", vetoer, priority=5)
    ds.subscribe("nfo-test", last, priority=1)
    s = ds.internal_session("alice")
    await s.edit("running", add("ok"), "json")
    await ds.settle()
    rev, hist = ds.info("running"), ds.history("running")
    log.clear()

    with pytest.raises(Veto) as ei:
        await s.edit("running", add("veto"), "json")
    await ds.settle()
    assert str(error) in ei.value.message or ei.value.message == error.args[0]
    assert ei.value.tag == "operation-failed"
    if isinstance(error, NfoError):
        assert ei.value.message == "size policy says no"
        assert ei.value.app_tag == "my-policy"
        assert ei.value.path == "/nfo-test:top"
    else:
        assert ei.value.message == "subscriber crashed"
        assert ei.value.app_tag == "nfo-change-vetoed"
    assert item_names(ds) == ["ok"]
    assert ds.info("running") == rev
    assert ds.history("running") == hist
    # first was asked and then told to abort; last was never asked; nobody got done
    assert log[:2] == [("first", "change"), ("vetoer", "change")]
    assert ("first", "abort") in log
    assert not any(n == "last" for n, _ in log)
    assert not any(p == "done" for _, p in log)
    assert first.events[-1].revision == first.events[-2].revision == rev.revision + 1

    # the next commit gets the revision the vetoed one would have had
    await s.edit("running", add("fine"), "json")
    await ds.settle()
    assert ds.info("running").revision == rev.revision + 1
    assert first.events[-1].phase == "done"
    assert first.events[-1].revision == rev.revision + 1


async def test_vetoing_subscriber_gets_no_abort(ds: Datastore) -> None:
    log: list[tuple[str, str]] = []

    async def refuse(ev: ChangeEvent) -> None:
        if ev.phase == "change":
            raise InvalidValue("no")

    ds.subscribe("nfo-test", Recorder("first", log), priority=10)
    ds.subscribe("nfo-test", Recorder("vetoer", log, hook=refuse), priority=5)
    s = ds.internal_session("alice")
    with pytest.raises(Veto):
        await s.edit("running", add("a"), "json")
    await ds.settle()
    assert log == [("first", "change"), ("vetoer", "change"), ("first", "abort")]


async def test_veto_of_candidate_commit_keeps_candidate(ds: Datastore) -> None:
    async def refuse(ev: ChangeEvent) -> None:
        if ev.phase == "change":
            raise InvalidValue("not now")

    ds.subscribe("nfo-test", refuse)
    s = ds.internal_session("alice")
    await s.edit("candidate", add("c"), "json")
    with pytest.raises(Veto, match="not now"):
        await s.commit()
    assert item_names(ds) == []
    with ds.get("candidate") as t:
        assert "c" in t.print("json")


async def test_failing_done_callback_does_not_stop_delivery(ds: Datastore) -> None:
    seen: list[int] = []

    async def flaky(ev: ChangeEvent) -> None:
        if ev.phase == "done":
            seen.append(ev.revision)
            if len(seen) == 1:
                raise RuntimeError("done handler bug")

    ds.subscribe("nfo-test", flaky)
    s = ds.internal_session("alice")
    await s.edit("running", add("a"), "json")
    await s.edit("running", add("b"), "json")
    await until(lambda: len(seen) == 2)
    assert seen == [1, 2]
    assert item_names(ds) == ["a", "b"]


# -- done: durability, order, re-entrancy ----------------------------------------------


async def test_done_delivered_only_after_commit_is_durable(
        ds: Datastore, reopen: Callable[[], Storage]) -> None:
    checks: list[tuple[int, bool, bool, int]] = []

    async def on_done(ev: ChangeEvent) -> None:
        if ev.phase != "done":
            return
        in_history = ev.revision in [h.revision for h in ds.history("running")]
        # what another store on the same state reads: the commit is stored, as running's
        with closing(reopen()) as storage:
            stored = storage.commits_between("running", ev.revision - 1, ev.revision)
        checks.append((ev.revision, in_history,
                       [(c.revision, c.datastore) for c in stored] == [(ev.revision, "running")],
                       ds.info("running").revision))

    ds.subscribe("nfo-test", on_done)
    s = ds.internal_session("alice")
    for n in ("a", "b", "c"):
        await s.edit("running", add(n), "json")
    await until(lambda: len(checks) == 3)
    assert [c[0] for c in checks] == [1, 2, 3]
    assert all(c[1] and c[2] for c in checks), checks
    assert all(c[3] >= c[0] for c in checks), checks


async def test_done_events_arrive_in_commit_order(ds: Datastore) -> None:
    r = Recorder()
    ds.subscribe("nfo-test", r)
    sessions = [ds.internal_session(f"u{i}") for i in range(5)]
    n = 40

    async def writer(k: int) -> None:
        s = sessions[k % len(sessions)]
        await s.edit("running", add(f"i{k}"), "json")

    await asyncio.gather(*(writer(k) for k in range(n)))
    await until(lambda: len(r.of("done")) == n)
    done = [e.revision for e in r.of("done")]
    assert done == sorted(done) == list(range(1, n + 1))
    change = [e.revision for e in r.of("change")]
    assert change == done
    # each done event names exactly the entry its commit created
    for e in r.of("done"):
        created = [c.path for c in e.changes if isinstance(c, ChangeCreated)]
        assert len([p for p in created if p.endswith("']")]) == 1
    assert sorted(item_names(ds)) == sorted(f"i{k}" for k in range(n))


async def test_done_callback_may_edit_the_datastore(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    worker = ds.internal_session("worker")
    finished = asyncio.Event()
    seen: list[tuple[str, int]] = []

    async def react(ev: ChangeEvent) -> None:
        seen.append((ev.phase, ev.revision))
        if ev.phase != "done":
            return
        created = [c.path for c in ev.changes if isinstance(c, ChangeCreated)]
        if "/nfo-test:top/item[name='trigger']" in created:
            # write the same module from inside the done callback
            await worker.edit("running", add("reaction"), "json")
            await worker.edit("running", vim("from-callback"), "json")
            finished.set()

    ds.subscribe("nfo-test", react)
    await s.edit("running", add("trigger"), "json")
    async with asyncio.timeout(STEP):
        await finished.wait()
    assert item_names(ds) == ["trigger", "reaction"]
    await until(lambda: ("done", 2) in seen)
    assert seen == [("change", 1), ("done", 1), ("change", 2), ("done", 2)]
    assert ds.info("running").revision == 3


async def test_settle_waits_for_done_callbacks_to_finish(ds: Datastore) -> None:
    finished: list[int] = []

    async def slow_done(ev: ChangeEvent) -> None:
        if ev.phase == "done":
            await asyncio.sleep(0.05)
            finished.append(ev.revision)

    ds.subscribe("nfo-test", slow_done)
    s = ds.internal_session("alice")
    await s.edit("running", add("a"), "json")
    await ds.settle()
    assert finished == [1]


# -- ordering, filtering, lifecycle ---------------------------------------------------


async def test_change_callbacks_run_in_priority_order(ds: Datastore) -> None:
    log: list[tuple[str, str]] = []
    for name, prio in (("mid", 5), ("high", 10), ("low", -3), ("zero", 0)):
        ds.subscribe("nfo-test", Recorder(name, log), priority=prio)
    s = ds.internal_session("alice")
    await s.edit("running", add("a"), "json")
    await ds.settle()
    change_order = [n for n, p in log if p == "change"]
    assert change_order == ["high", "mid", "zero", "low"]
    assert sorted(n for n, p in log if p == "done") == ["high", "low", "mid", "zero"]
    # every change call precedes every done delivery
    assert [p for _, p in log[:4]] == ["change"] * 4


async def test_xpath_filter(ds: Datastore) -> None:
    items, whole = Recorder(), Recorder()
    ds.subscribe("nfo-test", items, xpath="/nfo-test:top/item")
    ds.subscribe("nfo-test", whole)
    s = ds.internal_session("alice")

    await s.edit("running", top(name="n", tags=["x"]), "json")
    await ds.settle()
    assert items.events == []
    assert whole.phases() == ["change", "done"]

    await s.edit("running", top(tags=["y"], item=[{"name": "a", "size": 1}]), "json")
    await ds.settle()
    assert items.phases() == ["change", "done"]
    assert list(items.events[0].changes) == [
        ChangeCreated("/nfo-test:top/item[name='a']", None),
        ChangeCreated("/nfo-test:top/item[name='a']/name", "a"),
        ChangeCreated("/nfo-test:top/item[name='a']/size", "1"),
    ]
    assert ChangeCreated("/nfo-test:top/tags[.='y']", "y") in whole.events[-1].changes

    await s.edit("running", drop("a"))
    await ds.settle()
    assert items.phases() == ["change", "done"] * 2
    assert ChangeDeleted("/nfo-test:top/item[name='a']", None) in items.events[-1].changes
    assert all("/item[" in c.path for c in items.events[-1].changes)


async def test_xpath_filter_with_predicate(ds: Datastore) -> None:
    only_b = Recorder()
    ds.subscribe("nfo-test", only_b, xpath="/nfo-test:top/item[name='b']")
    s = ds.internal_session("alice")
    await s.edit("running", add("a"), "json")
    await ds.settle()
    assert only_b.events == []
    await s.edit("running", add("b", "c"), "json")
    await ds.settle()
    assert only_b.phases() == ["change", "done"]
    assert {c.path for c in only_b.events[0].changes} == {
        "/nfo-test:top/item[name='b']", "/nfo-test:top/item[name='b']/name"}


async def test_unsubscribe_stops_delivery(ds: Datastore) -> None:
    r, other = Recorder(), Recorder()
    sub = ds.subscribe("nfo-test", r)
    ds.subscribe("nfo-test", other)
    s = ds.internal_session("alice")
    await s.edit("running", add("a"), "json")
    await ds.settle()
    assert r.phases() == ["change", "done"]
    await ds.unsubscribe(sub)
    await s.edit("running", add("b"), "json")
    await ds.settle()
    assert r.phases() == ["change", "done"]
    assert other.phases() == ["change", "done"] * 2
    await ds.unsubscribe(sub)  # idempotent


async def test_unsubscribe_delivers_queued_done_first(ds: Datastore) -> None:
    r = Recorder()
    sub = ds.subscribe("nfo-test", r)
    s = ds.internal_session("alice")
    await s.edit("running", add("a"), "json")
    await ds.unsubscribe(sub)  # without settling first
    assert r.phases() == ["change", "done"]


async def test_unsubscribed_vetoer_no_longer_vetoes(ds: Datastore) -> None:
    async def refuse(ev: ChangeEvent) -> None:
        raise InvalidValue("no")

    sub = ds.subscribe("nfo-test", refuse)
    s = ds.internal_session("alice")
    with pytest.raises(Veto):
        await s.edit("running", add("a"), "json")
    await ds.unsubscribe(sub)
    await s.edit("running", add("a"), "json")
    assert item_names(ds) == ["a"]


async def test_subscribe_to_unknown_module_refused(ds: Datastore) -> None:
    with pytest.raises(UnknownElement):
        ds.subscribe("no-such-module", Recorder())
    with pytest.raises(UnknownElement):
        ds.subscribe("ietf-inet-types", Recorder())  # imported only, not implemented
    with pytest.raises(UnknownElement):
        ds.subscribe("nfo-test:top", Recorder())


async def test_no_spurious_changes_for_default_leaves(ds: Datastore) -> None:
    r = Recorder()
    s = ds.internal_session("alice")
    await s.edit("running", CATALOG, "json")
    await s.edit("running", json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
        {"name": "e1", "descriptor": "udp-echo",
         "parameter": [{"name": "port", "value": "7000"}]}]}}), "json")
    ds.subscribe("nfo-instances", r)
    await s.rollback(ds.info("running").revision)
    await ds.settle()
    assert r.events == [], [list(e.changes) for e in r.events]


async def test_a_delivered_event_is_not_kept(ds: Datastore) -> None:
    """Once its callback has run, the event of a commit (with its changes: hundreds of
    thousands after a bulk edit) is held by nothing while the next one is awaited."""
    seen: list[weakref.ref[ChangeEvent]] = []

    async def callback(ev: ChangeEvent) -> None:
        seen.append(weakref.ref(ev))

    ds.subscribe("nfo-test", callback)
    await ds.internal_session("alice").edit("running", add(*(f"e{k}" for k in range(50))),
                                            "json")
    await ds.settle()
    assert len(seen) == 2
    gc.collect()
    assert [r() for r in seen] == [None, None]
