"""The notification log by stream (nfo.datastore.notiflog): per-stream retention, replay
start from memory, replays through the module index, and the upgrade of a version 2 store.

Real libyang (nfo's modules: ``nfo`` is the stream of ``nfo-instances``, every commit's
``netconf-config-change`` goes to ``NETCONF`` only) and real SQLite files.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import Datastore
from nfo.datastore.notifications import (
    NETCONF_STREAM,
    NFO_STREAM,
    Notification,
    NotificationHub,
    ReplayComplete,
)
from nfo.datastore.storage import SqliteStorage
from nfo.datastore.storage.sqlite import SCHEMA_VERSION, _crc
from nfo.errors import NfoError, StorageCorrupt, StorageFull
from nfo.netconf.monitoring import Monitor
from nfo.restconf.streams import streams_data
from nfo.schema import Schema, Tree

STEP = 2.0


def config_change() -> str:
    return json.dumps({"ietf-netconf-notifications:netconf-config-change": {
        "changed-by": {"server": [None]}, "datastore": "running", "edit": []}})


def state_change(name: str, status: str = "running") -> str:
    return json.dumps({"nfo-instances:nf-instance-state-change": {
        "name": name, "new-status": status}})


@contextmanager
def opened(db: Path, schema: Schema, **retention: int) -> Iterator[NotificationHub]:
    """A hub over the store at ``db`` (as one nfo process opens it)."""
    data = Tree(schema)
    storage = SqliteStorage(db)
    try:
        yield NotificationHub(schema, storage, lambda: data, retention=retention)
    finally:
        storage.close()
        data.free()


def flood(hub: NotificationHub, make: Callable[[int], str], n: int, t0: float,
          step: float = 1.0) -> list[Notification]:
    """Publish ``n`` notifications, event times t0, t0 + step, ...; one durable write."""
    with hub._log._storage.batch():
        return [hub.publish(make(i), event_time=t0 + i * step) for i in range(n)]


async def replay(hub: NotificationHub, stream: str, start: float = 0.0) -> list[Notification]:
    sub = hub.subscribe(stream, start=start)
    out: list[Notification] = []
    try:
        while not isinstance(ev := await asyncio.wait_for(anext(sub), STEP), ReplayComplete):
            assert isinstance(ev, Notification)
            out.append(ev)
    finally:
        sub.close()
    return out


async def assert_consistent(hub: NotificationHub) -> dict[str, list[Notification]]:
    """Every stream's replay start is the event time of the first notification it replays."""
    got = {}
    for s in hub.streams():
        got[s.name] = await replay(hub, s.name)
        first = got[s.name][0].event_time if got[s.name] else None
        assert hub.replay_start(s.name) == first, s.name
        assert all(s.carries(n.module) for n in got[s.name])
    return got


def rows(db: Path) -> int:
    raw = sqlite3.connect(db)
    try:
        return int(raw.execute("SELECT COUNT(*) FROM notifications").fetchone()[0])
    finally:
        raw.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nfo.db"


# -- retention -------------------------------------------------------------------


async def test_config_churn_never_evicts_instance_history(db: Path, schema: Schema) -> None:
    with opened(db, schema, NETCONF=300, nfo=40) as hub:
        history = flood(hub, lambda i: state_change(f"i{i}"), 30, 1000.0)
        churn = flood(hub, lambda i: config_change(), 3000, 2000.0)
        got = await assert_consistent(hub)
        # nfo keeps its 30, intact and in order, however much NETCONF logged after them
        assert got[NFO_STREAM] == history
        assert hub.replay_start(NFO_STREAM) == 1000.0
        # NETCONF keeps its newest 300 (up to 1% more between prunes), none of them nfo's
        assert 300 <= len(got[NETCONF_STREAM]) <= 303
        assert got[NETCONF_STREAM] == churn[-len(got[NETCONF_STREAM]):]
        # nothing else is stored: a record goes once no stream that carries it keeps it
        assert rows(db) == 30 + len(got[NETCONF_STREAM])

        # nfo's own retention still applies to nfo's events
        more = flood(hub, lambda i: state_change(f"j{i}", "failed"), 100, 9000.0)
        got = await assert_consistent(hub)
        assert got[NFO_STREAM] == more[-40:]
        assert got[NETCONF_STREAM][-100:] == more
        assert rows(db) == len(got[NETCONF_STREAM])  # NETCONF's window covers nfo's now


async def test_pruning_is_amortised_and_bounded(db: Path, schema: Schema) -> None:
    with opened(db, schema, NETCONF=500) as hub:
        held = []
        for k in range(12):
            flood(hub, lambda i: config_change(), 100, 100.0 * k)
            held.append(rows(db))
        # 1% of 500: trimmed back every 5 appends, never more than 5 over
        assert held[:5] == [100, 200, 300, 400, 500]
        assert all(500 <= n <= 505 for n in held[5:]), held
        got = await assert_consistent(hub)
        assert len(got[NETCONF_STREAM]) == rows(db)


async def test_replay_start_after_appends_prunes_and_reopen(db: Path, schema: Schema) -> None:
    with opened(db, schema, NETCONF=50, nfo=20) as hub:
        assert [hub.replay_start(s.name) for s in hub.streams()] == [None, None]
        flood(hub, lambda i: config_change(), 10, 100.0)
        assert (hub.replay_start(NETCONF_STREAM), hub.replay_start(NFO_STREAM)) == (100.0, None)
        flood(hub, lambda i: state_change(f"i{i}"), 30, 200.0)
        assert (hub.replay_start(NETCONF_STREAM), hub.replay_start(NFO_STREAM)) == (100.0, 210.0)
        flood(hub, lambda i: config_change(), 45, 300.0)
        assert (hub.replay_start(NETCONF_STREAM), hub.replay_start(NFO_STREAM)) == (225.0, 210.0)
        before = await assert_consistent(hub)
    with opened(db, schema, NETCONF=50, nfo=20) as hub:
        assert (hub.replay_start(NETCONF_STREAM), hub.replay_start(NFO_STREAM)) == (225.0, 210.0)
        assert await assert_consistent(hub) == before
    # a stream that keeps more again replays what the log still holds for another one
    with opened(db, schema, NETCONF=1000, nfo=20) as hub:
        assert hub.replay_start(NETCONF_STREAM) == 210.0
        again = await assert_consistent(hub)
        assert again[NETCONF_STREAM][:20] == before[NFO_STREAM]
        assert again[NETCONF_STREAM][15:] == before[NETCONF_STREAM]
    # one that keeps less replays less at once; the records go when this process prunes
    with opened(db, schema, NETCONF=10, nfo=5) as hub:
        assert (hub.replay_start(NETCONF_STREAM), hub.replay_start(NFO_STREAM)) == (335.0, 225.0)
        assert rows(db) == 20 + 45
        hub.publish(config_change(), event_time=400.0)
        assert (hub.replay_start(NETCONF_STREAM), hub.replay_start(NFO_STREAM)) == (336.0, 225.0)
        assert rows(db) == 5 + 10
        await assert_consistent(hub)


async def test_a_short_lived_process_does_not_prune(db: Path, schema: Schema) -> None:
    """``nfo user`` on a stopped server opens the store with the default retention: the
    few notifications it logs never make it trim what the server keeps."""
    with opened(db, schema, NETCONF=600) as hub:
        flood(hub, lambda i: config_change(), 600, 0.0)
    with opened(db, schema, NETCONF=500) as hub:  # 1% of 500: prunes after 5 appends
        assert hub.replay_start(NETCONF_STREAM) == 100.0
        flood(hub, lambda i: config_change(), 4, 1000.0)
        assert rows(db) == 604
        hub.publish(config_change(), event_time=2000.0)
        assert rows(db) == 500
        assert hub.replay_start(NETCONF_STREAM) == 105.0


async def test_a_stream_added_later_replays_older_events(db: Path, schema: Schema) -> None:
    with opened(db, schema) as hub:
        flood(hub, lambda i: json.dumps({"nfo-test:bell": {"rung": i}}), 10, 50.0)
        flood(hub, lambda i: config_change(), 10, 100.0)
    with opened(db, schema) as hub:
        hub.add_stream("bells", "test bells", ["nfo-test"], keep=4)
        assert hub.replay_start("bells") == 56.0
        assert [json.loads(n.content)["nfo-test:bell"]["rung"]
                for n in await replay(hub, "bells")] == [6, 7, 8, 9]
        await assert_consistent(hub)


def test_retention_settings(db: Path, schema: Schema) -> None:
    with opened(db, schema, NETCONF=7, nfo=9) as hub:
        assert [(s.name, s.keep) for s in hub.streams()] == [("NETCONF", 7), ("nfo", 9)]
        hub.add_stream("bells", "test bells", ["nfo-test"])
        assert hub.streams()[2].keep == 100_000
        with pytest.raises(NfoError) as exc:
            hub.add_stream("b2", "test bells", ["nfo-test"], keep=0)
        assert exc.value.tag == "invalid-value"
    for bad, message in (({"nope": 5}, "unknown stream 'nope' (streams: NETCONF, nfo)"),
                         ({"NETCONF": 0}, "'NETCONF' must keep at least one")):
        with pytest.raises(NfoError) as exc, opened(db, schema, **bad):
            pass
        assert exc.value.tag == "invalid-value" and message in exc.value.message


# -- what reads touch ------------------------------------------------------------


class CountingStorage:
    """A storage that records the name of every method called on it."""

    def __init__(self, inner: SqliteStorage) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attr(*args, **kwargs)
        return call


async def test_stream_list_reads_no_storage(db: Path, schema: Schema) -> None:
    with opened(db, schema, NETCONF=100) as hub:
        flood(hub, lambda i: state_change(f"i{i}"), 20, 10.0)
        flood(hub, lambda i: config_change(), 500, 100.0)
    data = Tree(schema)
    storage = CountingStorage(SqliteStorage(db))
    try:
        hub = NotificationHub(schema, storage, lambda: data, retention={"NETCONF": 100})  # type: ignore[arg-type]
        assert set(storage.calls) <= {"notification_spans", "notification_after"}  # at open
        storage.calls.clear()

        class Ds:  # what the NETCONF monitor reads of a datastore
            notifications = hub
        for first in (500.0, 501.0):
            for _ in range(3):
                assert [(i.name, i.first_event) for i in hub.describe()] == [
                    ("NETCONF", first), ("nfo", 10.0)]
                assert hub.replay_start("nfo") == 10.0
                netconf = json.loads(Monitor(Ds()).render_streams())  # type: ignore[arg-type]
                assert len(netconf["nc-notifications:netconf"]["streams"]["stream"]) == 2
                restconf = streams_data(hub)["ietf-restconf-monitoring:restconf-state"]
                assert restconf["streams"]["stream"][1]["replay-log-creation-time"] == \
                    "1970-01-01T00:00:10.000000Z"
            assert storage.calls == []
            hub.publish(config_change(), event_time=1000.0)  # NETCONF drops its oldest
            assert "append_notification" in storage.calls
            storage.calls.clear()
    finally:
        storage.inner.close()
        data.free()


def vm_steps(storage: SqliteStorage, run: Callable[[], object]) -> int:
    """SQLite virtual machine instructions (in hundreds) that ``run`` costs."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0
    conn = storage._connection()
    conn.set_progress_handler(count, 100)
    try:
        run()
    finally:
        conn.set_progress_handler(None, 100)
    return steps


async def test_a_replay_does_not_read_other_streams(db: Path, schema: Schema) -> None:
    """Replaying (or pruning) nfo costs the same whether NETCONF logged 100 or 20,000 more
    events: they are not visited."""
    costs = []
    with opened(db, schema, NETCONF=50_000, nfo=10) as hub:
        storage = hub._log._storage
        assert isinstance(storage, SqliteStorage)
        for churn in (100, 20_000):
            flood(hub, lambda i: state_change(f"i{i}"), 20, 10.0 * churn)
            flood(hub, lambda i: config_change(), churn, 10.0 * churn + 100)
            since = 10.0 * churn + 5  # the last 10 of nfo, through the time index
            costs.append([
                vm_steps(storage, lambda: list(hub._log.read(NFO_STREAM))),
                vm_steps(storage, lambda s=since: list(hub._log.read(NFO_STREAM, s))),
                vm_steps(storage, lambda: flood(hub, lambda i: state_change("x"), 1, 1e6)),
            ])
            assert len(await replay(hub, NFO_STREAM, since)) == 10
        everything = vm_steps(storage, lambda: list(hub._log.read(NETCONF_STREAM)))
    small, big = costs
    assert all(b <= s + 2 for s, b in zip(small, big, strict=True)), costs
    assert everything > 100 * max(big)


# -- the seam ---------------------------------------------------------------------


async def test_replay_then_live_on_a_module_stream(db: Path, schema: Schema) -> None:
    """Instance events published while nfo's replay is read, among config changes, reach
    the subscriber exactly once, in log order."""
    with opened(db, schema, NETCONF=200) as hub:
        now = time.time()
        old = [n.seq for n in flood(hub, lambda i: state_change(f"o{i}"), 1200, now - 100,
                                    0.01)]
        flood(hub, lambda i: config_change(), 1000, now - 50, 0.01)  # prunes NETCONF
        sub = hub.subscribe(NFO_STREAM, start=0)
        overlap = [hub.publish(state_change("overlap")).seq for _ in range(3)]
        live: list[int] = []

        async def publisher() -> None:
            for i in range(300):
                hub.publish(config_change())
                live.append(hub.publish(state_change(f"l{i}")).seq)
                await asyncio.sleep(0)

        task = asyncio.create_task(publisher())
        got: list[Any] = []
        try:
            while len(got) < len(old) + len(overlap) + 300 + 1:
                got.append(await asyncio.wait_for(anext(sub), STEP))
                await asyncio.sleep(0)
        finally:
            await task
            sub.close()
        assert isinstance(got[len(old)], ReplayComplete)
        assert sum(isinstance(g, ReplayComplete) for g in got) == 1
        assert [g.seq for g in got if isinstance(g, Notification)] == old + overlap + live


# -- a write that is not made durable --------------------------------------------


class UndoneBatches(SqliteStorage):
    """Every outermost group of writes fails at its end while ``fail`` is set (as a full
    disk can make a commit fail): the writes inside are rolled back."""

    fail = False

    @contextmanager
    def batch(self) -> Iterator[None]:
        with super().batch():
            yield
            if self.fail and self._batch_depth == 1:
                raise StorageFull("storage: cannot make the writes durable: the disk is full")


async def test_what_a_failed_write_logged_is_not_listed(tmp_path: Path, schema: Schema) -> None:
    storage = UndoneBatches(tmp_path / "nfo.db")
    ds = Datastore.open(schema, storage)
    try:
        s = ds.internal_session("t")
        item = json.dumps({"nfo-test:top": {"item": [{"name": "a"}]}})
        storage.fail = True
        with pytest.raises(StorageFull):  # a commit and its netconf-config-change
            await s.edit("running", item, "json")
        with pytest.raises(StorageFull):  # grouped operational data and an instance's event
            await s.set_oper_async(json.dumps({"nfo-test:top": {"state": {"up": True}}}),
                                   owner="o", notification=state_change("i1"))
        assert [i.first_event for i in ds.notifications.describe()] == [None, None]
        storage.fail = False
        await s.edit("running", item, "json")
        await s.set_oper_async(json.dumps({"nfo-test:top": {"state": {"up": True}}}),
                               owner="o", notification=state_change("i2"))
        got = await assert_consistent(ds.notifications)
        assert [len(got[NETCONF_STREAM]), len(got[NFO_STREAM])] == [2, 1]
    finally:
        await ds.close()


# -- the version 2 layout -----------------------------------------------------------

V2_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE commits (revision INTEGER PRIMARY KEY AUTOINCREMENT, datastore TEXT NOT NULL,
    timestamp REAL NOT NULL, user TEXT NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL,
    size INTEGER NOT NULL, payload TEXT NOT NULL, crc INTEGER NOT NULL);
CREATE INDEX commits_by_datastore ON commits (datastore, revision);
CREATE TABLE snapshots (datastore TEXT NOT NULL, revision INTEGER NOT NULL,
    content TEXT NOT NULL, crc INTEGER NOT NULL, UNIQUE (datastore, revision));
CREATE TABLE oper (owner TEXT NOT NULL, key TEXT NOT NULL, content TEXT NOT NULL,
    crc INTEGER NOT NULL, PRIMARY KEY (owner, key));
CREATE TABLE notifications (seq INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL,
    timestamp REAL NOT NULL, content TEXT NOT NULL, crc INTEGER NOT NULL);
CREATE INDEX notifications_by_time ON notifications (stream, timestamp);
CREATE INDEX notifications_by_seq ON notifications (stream, seq);
PRAGMA user_version = 2;
"""


def version_2_store(db: Path, events: list[tuple[str, str]]) -> None:
    """A store as the previous nfo wrote it: every notification on stream NETCONF, in
    the hub's envelope; seq 1 and 2 were pruned already."""
    raw = sqlite3.connect(db)
    try:
        raw.executescript(V2_SCHEMA)
        for seq, (module, body) in enumerate(events, start=3):
            top = next(iter(json.loads(body)))
            content = json.dumps({"module": module, "path": f"/{top}", "data": body})
            ts = 100.0 + seq
            raw.execute("INSERT INTO notifications VALUES (?, 'NETCONF', ?, ?, ?)",
                        (seq, ts, content, _crc(seq, "NETCONF", ts, content)))
        raw.execute("UPDATE sqlite_sequence SET seq = 40 WHERE name = 'notifications'")
        raw.commit()
    finally:
        raw.close()


async def test_a_version_2_store_is_upgraded(db: Path, schema: Schema) -> None:
    events = [("nfo-instances", state_change(f"i{i}")) if i % 3 == 0 else
              ("ietf-netconf-notifications", config_change()) for i in range(30)]
    version_2_store(db, events)
    for _ in range(2):  # upgraded, then opened (every row checked) as a version 4 store
        with opened(db, schema) as hub:
            got = await assert_consistent(hub)
            assert [n.seq for n in got[NETCONF_STREAM]] == list(range(3, 33))
            assert [n.module for n in got[NETCONF_STREAM]] == [m for m, _ in events]
            assert [n.seq for n in got[NFO_STREAM]] == list(range(3, 33, 3))
            assert json.loads(got[NFO_STREAM][1].content) == json.loads(state_change("i3"))
            assert hub.replay_start(NFO_STREAM) == 103.0
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        assert {r[0] for r in raw.execute("SELECT DISTINCT module FROM notifications")} == {
            "nfo-instances", "ietf-netconf-notifications"}
    raw.close()
    with opened(db, schema) as hub:
        assert hub.publish(state_change("new")).seq == 41  # numbering goes on
        assert (await replay(hub, NFO_STREAM))[-1].seq == 41


def test_a_damaged_version_2_row_is_not_upgraded(db: Path, schema: Schema) -> None:
    version_2_store(db, [("nfo-instances", state_change("a"))] * 3)
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE notifications SET timestamp = 0 WHERE seq = 4")
    raw.close()
    with pytest.raises(StorageCorrupt, match="notifications 4 do not match"):
        SqliteStorage(db)
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    raw.close()
