"""SqliteStorage against real SQLite files, including SIGKILL crash recovery."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nfo.datastore.storage import (
    CommitRecord,
    NotificationMark,
    NotificationRecord,
    NotificationSpan,
    OperRecord,
    Snapshot,
    SqliteStorage,
    Storage,
)
from nfo.datastore.storage import sqlite as sqlite_module
from nfo.datastore.storage.sqlite import SCHEMA_VERSION
from nfo.errors import NfoError, OperationFailed, StorageCorrupt

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("_storage_crash_child.py")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nfo.sqlite"


@pytest.fixture
def storage(db: Path) -> Iterator[SqliteStorage]:
    with SqliteStorage(db) as s:
        yield s


def test_satisfies_protocol(storage: SqliteStorage) -> None:
    s: Storage = storage
    assert s.load().last_revision == 0


def test_new_database(storage: SqliteStorage, db: Path) -> None:
    state = storage.load()
    assert state.snapshots == {} and state.commits == [] and state.last_revision == 0
    assert storage.since_snapshot("running") == (0, 0)
    assert storage.history("running") == []
    assert storage.snapshot_at("running", 10) is None
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_commit_round_trip(storage: SqliteStorage) -> None:
    a = storage.append_commit("running", 1.5, "alice", "edit", '[{"a": 1}]', label="first")
    b = storage.append_commit("startup", 2.25, "bob", "replace", '{"b": "é"}')
    c = storage.append_commit("running", 3.0, "carol", "edit", "[]")
    assert a == CommitRecord(1, "running", 1.5, "alice", "edit", '[{"a": 1}]', "first")
    assert (b.revision, c.revision) == (2, 3)
    assert storage.history("running") == [c, a]
    assert storage.history("running", limit=1) == [c]
    assert storage.history("running", limit=0) == []
    assert storage.history("startup") == [b]
    assert storage.commits_between("running", 0, 3) == [a, c]
    assert storage.commits_between("running", 1, 2) == []
    assert storage.commits_between("running", 1, 3) == [c]
    assert storage.since_snapshot("running") == (2, len('[{"a": 1}]') + 2)
    assert storage.since_snapshot("startup") == (1, len('{"b": "é"}'.encode()))
    state = storage.load()
    assert state.commits == [a, b, c] and state.last_revision == 3


def test_revisions_monotonic_across_reopen_and_pruning(db: Path) -> None:
    with SqliteStorage(db, keep_snapshots=1) as s:
        for i in range(5):
            s.append_commit("running", float(i), "u", "edit", "[]")
        s.append_commit("startup", 9.0, "u", "edit", "[]")
        s.write_snapshot("running", 6, "{}")
        assert s.history("running") == []
        assert s.load().last_revision == 6
    with SqliteStorage(db, keep_snapshots=1) as s:
        assert s.load().last_revision == 6
        assert s.append_commit("running", 10.0, "u", "edit", "[]").revision == 7
        s.write_snapshot("startup", 7, "{}")
        s.write_snapshot("running", 7, "{}")
        assert s.load().commits == []
    with SqliteStorage(db) as s:
        assert s.load().last_revision == 7
        assert s.append_commit("startup", 11.0, "u", "edit", "[]").revision == 8


def test_load_returns_newest_snapshots_and_their_tails(storage: SqliteStorage) -> None:
    def commit(ds: str) -> CommitRecord:
        return storage.append_commit(ds, time.time(), "u", "edit", f'["{ds}"]')

    _r1, s2, r3 = commit("running"), commit("startup"), commit("running")
    storage.write_snapshot("running", 3, "R3")
    s4, r5, c6 = commit("startup"), commit("running"), commit("candidate")
    storage.write_snapshot("startup", 4, "S4")
    storage.write_snapshot("running", 5, "R5")
    storage.write_snapshot("running", 4, "R4")  # older than the newest: kept, not used by load
    r7, s8 = commit("running"), commit("startup")

    state = storage.load()
    assert state.snapshots == {
        "running": Snapshot("running", 5, "R5"),
        "startup": Snapshot("startup", 4, "S4"),
    }
    assert state.commits == [c6, r7, s8]
    assert state.last_revision == 8
    assert storage.since_snapshot("running") == (1, len(r7.payload))
    assert storage.since_snapshot("candidate") == (1, len(c6.payload))
    assert storage.snapshot_at("running", 4) == Snapshot("running", 4, "R4")
    assert storage.commits_between("running", 0, 8) == [r3, r5, r7]  # r1: before oldest kept
    assert storage.history("startup") == [s8, s4, s2]  # one snapshot of startup: s2 kept


def test_snapshot_written_once_per_revision_and_bad_revisions(storage: SqliteStorage) -> None:
    storage.write_snapshot("running", 0, "empty")
    storage.append_commit("running", 1.0, "u", "edit", "[]")
    storage.write_snapshot("running", 1, "one")
    storage.write_snapshot("running", 1, "one again")   # a revision's data never change
    assert storage.snapshot_at("running", 1) == Snapshot("running", 1, "one")
    assert storage.snapshot_at("running", 0) == Snapshot("running", 0, "empty")
    for bad in (2, -1):
        with pytest.raises(OperationFailed, match="outside"):
            storage.write_snapshot("running", bad, "x")
    # The failed calls left no transaction behind.
    assert storage.append_commit("running", 2.0, "u", "edit", "[]").revision == 2
    assert storage.load().snapshots["running"].content == "one"


def test_the_first_snapshots_forget_no_commit(db: Path) -> None:
    """Until there are ``keep_snapshots`` snapshots the empty start is the oldest one: a
    first snapshot (written early by a burst of commits) must not cut the history."""
    with SqliteStorage(db, keep_snapshots=3) as s:
        for i in range(1, 11):
            s.append_commit("running", float(i), "u", "edit", json.dumps(i), label=f"c{i}")
            if i in (4, 7):
                s.write_snapshot("running", i, "{}")
                assert [c.revision for c in s.history("running")] == list(range(i, 0, -1))
        s.write_snapshot("running", 9, "{}")
        assert [c.revision for c in s.history("running")] == list(range(10, 3, -1))
        s.write_snapshot("running", 10, "{}")
        assert [c.revision for c in s.history("running")] == list(range(10, 6, -1))


def test_pruning_keeps_history_consistent(db: Path) -> None:
    """Replays snapshot_at + commits_between for every revision still covered."""
    with SqliteStorage(db, keep_snapshots=2) as s:
        truth: dict[int, list[int]] = {}  # revision -> running content after it
        content: list[int] = []
        running_revisions: list[int] = []
        snapshot_revisions: list[int] = []
        for i in range(1, 41):
            ds = "startup" if i % 4 == 0 else "running"
            rev = s.append_commit(ds, float(i), "u", "edit", json.dumps(i)).revision
            if ds == "running":
                content.append(i)
                running_revisions.append(rev)
            truth[rev] = list(content)
            if i % 7 == 0:
                s.write_snapshot("running", rev, json.dumps(content))
                snapshot_revisions.append(rev)
            if i % 9 == 0:
                s.write_snapshot("startup", rev, "{}")

        oldest_kept = snapshot_revisions[-2]
        for rev, expected in truth.items():
            snap = s.snapshot_at("running", rev)
            if rev < oldest_kept:
                assert snap is None
                continue
            assert snap is not None and snap.revision in snapshot_revisions[-2:]
            replayed = json.loads(snap.content)
            tail = s.commits_between("running", snap.revision, rev)
            replayed += [json.loads(c.payload) for c in tail]
            assert replayed == expected, rev

        history = [c.revision for c in s.history("running", limit=1000)]
        assert history == [r for r in reversed(running_revisions) if r >= oldest_kept]
        newest = snapshot_revisions[-1]
        tail = s.commits_between("running", newest, 10**6)
        assert s.since_snapshot("running") == (len(tail), sum(len(c.payload) for c in tail))


def test_oper(storage: SqliteStorage, db: Path) -> None:
    storage.put_oper("b", "k1", "b1")
    storage.put_oper("a", "k2", "a2")
    storage.put_oper("a", "k1", "a1")
    storage.put_oper("a", "k1", "a1 updated")
    storage.put_oper("c", "k", "c")
    storage.put_oper("c", "gone", None)  # deleting what is not there is fine
    assert storage.load_oper() == [
        OperRecord("a", "k1", "a1 updated"), OperRecord("a", "k2", "a2"),
        OperRecord("b", "k1", "b1"), OperRecord("c", "k", "c"),
    ]
    storage.put_oper("a", "k2", None)
    storage.clear_oper("b")
    storage.close()
    with SqliteStorage(db) as again:
        assert again.load_oper() == [OperRecord("a", "k1", "a1 updated"), OperRecord("c", "k", "c")]


def test_operational_records_are_read_by_key_and_by_page(storage: SqliteStorage,
                                                           db: Path) -> None:
    """What a server that keeps only the keys in memory reads: the keys of every record,
    chosen records by key (a missing one as None), and an owner's records a page at a
    time in key order; inside a batch, its writes before they are durable."""
    for i in range(7):
        storage.put_oper("wm", f"k{i}", f"v{i}")
    storage.put_oper("other", "k1", "o1")
    assert storage.oper_keys() == [("other", "k1")] + [("wm", f"k{i}") for i in range(7)]
    assert storage.oper_texts("wm", ["k3", "nope", "k1"]) == ["v3", None, "v1"]
    assert storage.oper_texts("other", ["k3"]) == [None]
    pages, after = [], None
    while page := storage.oper_page("wm", after, 3):
        pages.append(page)
        after = page[-1][0]
    assert pages == [[("k0", "v0"), ("k1", "v1"), ("k2", "v2")],
                     [("k3", "v3"), ("k4", "v4"), ("k5", "v5")], [("k6", "v6")]]
    with storage.batch():
        storage.put_oper("wm", "k1", "changed")
        storage.put_oper("wm", "k2", None)
        assert storage.oper_texts("wm", ["k1", "k2"]) == ["changed", None]
        assert storage.oper_page("wm", "k0", 2) == [("k1", "changed"), ("k3", "v3")]
    storage.close()
    with SqliteStorage(db) as again:
        assert again.oper_texts("wm", ["k1", "k2"]) == ["changed", None]


def test_each_operational_record_is_checked_once_per_open(
        db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The open checks every row; a read of every record, page by page (the start's),
    does not again, a read of chosen records does.  A file created empty has nothing to
    check at open: its records are checked as read."""
    checked: list[tuple[object, ...]] = []
    crc = sqlite_module._crc

    def counting(*fields: object) -> int:
        checked.append(fields)
        return crc(*fields)

    monkeypatch.setattr(sqlite_module, "_crc", counting)
    with SqliteStorage(db) as fresh:  # created: no check at open
        for i in range(20):
            fresh.put_oper("wm", f"k{i}", f"v{i}")
        checked.clear()
        assert len(fresh.load_oper()) == 20
        assert len([f for f in checked if f[0] in ("wm", b"wm")]) == 20
        checked.clear()
        assert fresh.oper_texts("wm", ["k1", "k2"]) == ["v1", "v2"]
        assert len(fresh.oper_page("wm", None, 100)) == 20
        assert len([f for f in checked if f[0] in ("wm", b"wm")]) == 22
    checked.clear()
    with SqliteStorage(db) as again:
        assert len([f for f in checked if f[0] in ("wm", b"wm")]) == 20
        assert [r.content for r in again.load_oper()] == sorted(f"v{i}" for i in range(20))
        assert len(again.oper_page("wm", None, 100)) == 20
        assert len([f for f in checked if f[0] in ("wm", b"wm")]) == 20
        assert again.oper_texts("wm", ["k1"]) == ["v1"]  # chosen records: always checked
        assert len([f for f in checked if f[0] in ("wm", b"wm")]) == 21


def test_a_record_damaged_after_the_open_is_an_error_when_read(db: Path) -> None:
    """Operational state is read from the file whenever it is read: a record damaged
    while nfo runs is refused, not served."""
    with SqliteStorage(db) as s:
        s.put_oper("wm", "k1", "fine")
        s.put_oper("wm", "k2", "also fine")
    with SqliteStorage(db) as s:
        other = sqlite3.connect(db)
        other.execute("UPDATE oper SET content = 'damaged' WHERE key = 'k1'")
        other.commit()
        other.close()
        assert s.oper_texts("wm", ["k2"]) == ["also fine"]
        with pytest.raises(NfoError, match="checksum"):
            s.oper_texts("wm", ["k1"])


def test_meta(storage: SqliteStorage) -> None:
    assert storage.get_meta("boot-id") is None
    storage.set_meta("boot-id", "1")
    storage.set_meta("boot-id", "2")
    storage.set_meta("other", "")
    assert storage.get_meta("boot-id") == "2"
    assert storage.get_meta("other") == ""


def test_notifications_window_and_after_seq(storage: SqliteStorage) -> None:
    written: list[NotificationRecord] = []
    for i in range(1300):  # crosses several read batches
        module = "a" if i % 5 == 0 else "c" if i % 7 == 0 else "b"
        # Timestamps are mostly ascending, with a few out-of-order ones.
        ts = 1000.0 + i - (50 if i % 97 == 0 else 0)
        seq = storage.append_notification(module, ts, f"<n{i}/>")
        written.append(NotificationRecord(seq, module, ts, f"<n{i}/>"))
    assert [r.seq for r in written] == list(range(1, 1301))

    def expect(
        modules: set[str] | None, start: float | None, stop: float | None, after: int
    ) -> list[NotificationRecord]:
        return [
            r for r in written
            if (modules is None or r.module in modules) and r.seq > after
            and (start is None or r.timestamp >= start) and (stop is None or r.timestamp <= stop)
        ]

    cases = [
        (None, None, 0), (1100.0, None, 0), (None, 1500.5, 0), (1100.0, 1500.0, 0),
        (1100.0, 1500.0, 700), (None, None, 1250), (5000.0, None, 0), (None, None, 1300),
    ]
    for modules in (None, {"b"}, {"a", "c"}, {"a", "b", "c"}):
        for start, stop, after in cases:
            got = list(storage.notifications(modules, start, stop, after))
            assert got == expect(modules, start, stop, after), (modules, start, stop, after)
    assert list(storage.notifications(["a"], 1005.0, 1005.0)) == [written[5]]
    assert list(storage.notifications(["nope"])) == []


def test_notifications_iteration_sees_what_was_logged_when_it_began(storage: SqliteStorage) -> None:
    for i in range(3):
        storage.append_notification("s", float(i), str(i))
    logged = ["0", "1", "2"]
    for modules in (None, ["s"], ["s", "t"]):
        it = storage.notifications(modules)
        first = next(it)
        storage.append_notification("s", 9.0, "late")
        assert [first.content, *(r.content for r in it)] == logged
        logged.append("late")


def test_notification_spans_marks_and_drops(storage: SqliteStorage) -> None:
    """The primitives the per-stream index is built from (nfo.datastore.notiflog)."""
    assert storage.notification_spans() == []
    assert storage.notification_after(None, 0) is None
    for i in range(1, 2001):  # seq i: module a for odd i, b for even, c every 100th
        storage.append_notification("c" if i % 100 == 0 else "ab"[i % 2 == 0], 10.0 * i, "")
    mark = NotificationMark
    assert storage.notification_spans() == [NotificationSpan("a", 1000, mark(1, 10.0)),
                                            NotificationSpan("b", 980, mark(2, 20.0)),
                                            NotificationSpan("c", 20, mark(100, 1000.0))]
    assert storage.notification_spans(["c", "x"]) == [NotificationSpan("c", 20, mark(100, 1000.0))]
    assert storage.notification_after(None, 0, skip=9) == mark(10, 100.0)
    assert storage.notification_after(["a"], 10, skip=2) == mark(15, 150.0)
    assert storage.notification_after(["b", "c"], 97, skip=2) == mark(102, 1020.0)
    assert storage.notification_after(["c"], 1800, skip=1) == mark(2000, 20000.0)
    assert storage.notification_after(["c"], 1800, skip=2) is None
    assert storage.notification_after(["a", "b"], 1999) is None  # 2000 is c
    assert storage.drop_notifications({"a": 1001, "c": 10}) == 500
    assert storage.drop_notifications({"a": 1001}) == 0
    assert [s.first.seq for s in storage.notification_spans()] == [1001, 2, 100]
    assert len(list(storage.notifications(["a"]))) == 500


def test_newer_schema_refused(db: Path) -> None:
    SqliteStorage(db).close()
    with sqlite3.connect(db) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(OperationFailed, match="newer nfo") as info:
        SqliteStorage(db)
    assert isinstance(info.value, NfoError)


def test_foreign_files_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE t (x)")
    raw.close()
    with pytest.raises(OperationFailed, match="not an nfo"):
        SqliteStorage(other)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(OperationFailed, match="cannot open"):
        SqliteStorage(junk)
    with pytest.raises(OperationFailed, match="cannot open"):
        SqliteStorage(tmp_path / "missing-dir" / "x.sqlite")


def test_bind_errors_become_operation_failed(storage: SqliteStorage) -> None:
    with pytest.raises(OperationFailed):
        storage.put_oper("o", "k", "lone surrogate \ud800")
    with pytest.raises(OperationFailed):
        storage.snapshot_at("running", 2**70)
    storage.put_oper("o", "k", "fine")
    assert storage.load_oper() == [OperRecord("o", "k", "fine")]


def test_close_is_idempotent(db: Path) -> None:
    s = SqliteStorage(db)
    s.close()
    s.close()
    with pytest.raises(OperationFailed, match="closed"):
        s.load()
    with pytest.raises(OperationFailed, match="closed"):
        list(s.notifications(["s"]))


def test_bad_limits() -> None:
    with pytest.raises(ValueError):
        SqliteStorage(":memory:", keep_snapshots=0)


# -- crash safety ---------------------------------------------------------------

DATASTORES = ("running", "startup")
SNAPSHOT_EVERY = 37


def _run_and_kill(
    db: Path, stderr_path: Path, wanted: int, delay: float, at_snapshot: bool
) -> list[tuple[int, str, int]]:
    """Runs the child until it acknowledged ``wanted`` commits, waits ``delay``, kills it.

    With ``at_snapshot``, waits on for a commit after which the child writes a
    snapshot, so that the kill is likely to land inside write_snapshot.
    """
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    with stderr_path.open("wb") as err:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), str(SNAPSHOT_EVERY)],
            stdout=subprocess.PIPE, stderr=err, env=env, cwd=REPO,
        )
    assert child.stdout is not None
    lines: list[bytes] = []
    try:
        deadline = time.monotonic() + 10
        while len(lines) < wanted or (
            at_snapshot and int(lines[-1].split()[2]) % SNAPSHOT_EVERY != 0
        ):
            line = child.stdout.readline()
            assert line, f"child exited early: {stderr_path.read_text()}"
            lines.append(line)
            assert time.monotonic() < deadline, "child too slow"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        lines.extend(child.stdout.readlines())  # printed before the kill: acknowledged too
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    acked = []
    for line in lines:
        if line.endswith(b"\n"):  # a torn last line was never fully acknowledged
            rev, ds, n = line.split()
            acked.append((int(rev), ds.decode(), int(n)))
    return acked


def _check_recovered(s: SqliteStorage, acked: dict[int, tuple[str, int]]) -> dict[str, int]:
    """Asserts every acknowledged commit survived and load() is consistent; returns counts."""
    state = s.load()
    assert state.last_revision >= max(acked)
    revisions = [c.revision for c in state.commits]
    assert revisions == sorted(set(revisions))
    counts = {}
    for ds in DATASTORES:
        snap = state.snapshots.get(ds)
        base = json.loads(snap.content) if snap else {"count": 0, "last": 0}
        if snap:
            assert snap.revision == base["last"]
        tail = [c for c in state.commits if c.datastore == ds]
        assert all(c.revision > base["last"] for c in tail)
        assert [json.loads(c.payload)["n"] for c in tail] == list(
            range(base["count"] + 1, base["count"] + 1 + len(tail))
        )
        counts[ds] = base["count"] + len(tail)
        assert s.since_snapshot(ds)[0] == len(tail)

    for rev, (ds, n) in acked.items():
        assert n <= counts[ds]
        snap = s.snapshot_at(ds, rev)
        if snap is None and ds in state.snapshots:
            continue  # older than every kept snapshot: pruned, and covered by them
        start = json.loads(snap.content)["count"] if snap else 0
        between = s.commits_between(ds, snap.revision if snap else 0, rev)
        assert start + len(between) == n, rev
        if between:
            assert between[-1].revision == rev
    return counts


def test_acknowledged_commits_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite"
    acked: dict[int, tuple[str, int]] = {}
    for round_, delay in enumerate([0.0, 0.0, 0.0007, 0.0003, 0.002, 0.011]):
        wanted = 150 + 47 * round_
        stderr = tmp_path / f"stderr{round_}.txt"
        got = _run_and_kill(db, stderr, wanted, delay, at_snapshot=round_ % 2 == 1)
        assert len(got) >= wanted
        assert [rev for rev, _, _ in got] == sorted(rev for rev, _, _ in got)
        assert not acked or got[0][0] > max(acked)
        acked.update((rev, (ds, n)) for rev, ds, n in got)

        with sqlite3.connect(db) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        raw.close()
        with SqliteStorage(db) as s:
            counts = _check_recovered(s, acked)
            last = s.load().last_revision
            n = counts["running"] + 1
            new = s.append_commit("running", time.time(), "parent", "edit", json.dumps({"n": n}))
            assert new.revision == last + 1
            acked[new.revision] = ("running", n)
    assert len(acked) > 1000


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE commits (revision INTEGER PRIMARY KEY AUTOINCREMENT, datastore TEXT NOT NULL,
    timestamp REAL NOT NULL, user TEXT NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL,
    size INTEGER NOT NULL, payload TEXT NOT NULL);
CREATE INDEX commits_by_datastore ON commits (datastore, revision);
CREATE TABLE snapshots (datastore TEXT NOT NULL, revision INTEGER NOT NULL,
    content TEXT NOT NULL, UNIQUE (datastore, revision));
CREATE TABLE oper (owner TEXT NOT NULL, key TEXT NOT NULL, content TEXT NOT NULL,
    PRIMARY KEY (owner, key));
CREATE TABLE notifications (seq INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL,
    timestamp REAL NOT NULL, content TEXT NOT NULL);
CREATE INDEX notifications_by_time ON notifications (stream, timestamp);
CREATE INDEX notifications_by_seq ON notifications (stream, seq);
INSERT INTO meta VALUES ('k', 'v');
INSERT INTO commits (datastore, timestamp, user, kind, label, size, payload)
    VALUES ('running', 1.5, 'alice', 'edit', 'first', 10, '[{"a": 1}]'),
           ('running', 2, 'bob', 'edit', '', 2, '[]');
INSERT INTO snapshots VALUES ('running', 1, '{"s": "é"}');
INSERT INTO oper VALUES ('wm', '/x', '{}');
INSERT INTO notifications (stream, timestamp, content) VALUES ('NETCONF', 3.25, '<n/>');
PRAGMA user_version = 1;
"""


def test_version_1_files_get_checksums(db: Path) -> None:
    """Upgraded through version 2; the notification log's upgrade (version 3) is tested
    with real notifications in test_notification_log.py."""
    raw = sqlite3.connect(db)
    raw.executescript(V1_SCHEMA)
    raw.close()
    for _ in range(2):  # upgraded, then opened (and every row checked) as a version 2 file
        with SqliteStorage(db) as s:
            state = s.load()
            assert state.snapshots["running"] == Snapshot("running", 1, '{"s": "é"}')
            assert state.commits == [CommitRecord(2, "running", 2.0, "bob", "edit", "[]")]
            assert s.history("running")[-1] == CommitRecord(1, "running", 1.5, "alice", "edit",
                                                            '[{"a": 1}]', "first")
            assert s.get_meta("k") == "v"
            assert s.load_oper() == [OperRecord("wm", "/x", "{}")]
            assert list(s.notifications()) == [NotificationRecord(1, "", 3.25, "<n/>")]
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        assert raw.execute("SELECT COUNT(*) FROM commits WHERE crc = 0").fetchone()[0] == 0
    raw.close()
    with SqliteStorage(db) as s:
        assert s.append_commit("running", 4.0, "carol", "edit", "[]").revision == 3


# -- durable_batch: the closing COMMIT off the event loop ---------------------------


def _committed(db: Path) -> list[int]:
    """The revisions another connection sees: what is durable."""
    raw = sqlite3.connect(db)
    try:
        return [r[0] for r in raw.execute("SELECT revision FROM commits ORDER BY revision")]
    finally:
        raw.close()


class _HeldCommit:
    """Holds each durable_batch COMMIT in its worker thread until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []
        real = sqlite_module._commit_or_roll_back

        def held(conn: sqlite3.Connection) -> BaseException | None:
            self.threads.append(threading.current_thread().name)
            self.started.set()
            self.release.wait(30)
            return real(conn)

        monkeypatch.setattr(sqlite_module, "_commit_or_roll_back", held)


async def test_a_durable_batch_commits_while_the_loop_serves(
        storage: SqliteStorage, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.off_loop_after = 0.0  # as on a disk whose COMMITs take a while
    held = _HeldCommit(monkeypatch)

    async def commit() -> int:
        async with storage.durable_batch():
            rec = storage.append_commit("running", 1.0, "u", "edit", "[]")
        return rec.revision

    task = asyncio.create_task(commit())
    while not held.started.is_set():
        await asyncio.sleep(0.001)
    ticks = 0
    for _ in range(20):  # the loop runs other work meanwhile
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 20 and not task.done()
    assert _committed(db) == []  # not durable yet, and not reported
    assert held.threads and held.threads[0] != threading.current_thread().name
    threading.Timer(0.1, held.release.set).start()
    # a storage call made meanwhile waits for the COMMIT, then sees it
    assert [h.revision for h in storage.history("running")] == [1]
    assert await task == 1
    assert _committed(db) == [1]


async def test_a_durable_batch_whose_commit_fails_changes_nothing(
        storage: SqliteStorage, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(conn: sqlite3.Connection) -> BaseException | None:
        conn.execute("ROLLBACK")
        return sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_module, "_commit_or_roll_back", failing)
    with pytest.raises(OperationFailed, match="make the writes durable"):
        async with storage.durable_batch():
            storage.append_commit("running", 1.0, "u", "edit", "[]")
            storage.put_oper("o", "k", "v")
    monkeypatch.undo()
    assert _committed(db) == [] and storage.history("running") == []
    assert storage.load_oper() == []
    async with storage.durable_batch():  # the connection is usable again
        rec = storage.append_commit("running", 2.0, "u", "edit", "[]")
    assert rec.revision == 1 and _committed(db) == [1]


async def test_a_durable_batch_cancelled_while_committing_leaves_the_storage_whole(
        storage: SqliteStorage, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.off_loop_after = 0.0
    held = _HeldCommit(monkeypatch)

    async def commit() -> None:
        async with storage.durable_batch():
            storage.append_commit("running", 1.0, "u", "edit", "[]")

    task = asyncio.create_task(commit())
    while not held.started.is_set():
        await asyncio.sleep(0.001)
    task.cancel()
    threading.Timer(0.1, held.release.set).start()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the COMMIT ran to its end (the writer got no verdict: like a reply lost in transit)
    assert _committed(db) == [1]
    storage.append_commit("running", 2.0, "u", "edit", "[]")
    assert _committed(db) == [1, 2]


async def test_a_durable_batch_commits_on_the_loop_until_commits_get_slow(
        storage: SqliteStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real = sqlite_module._commit_or_roll_back
    pause = [0.0]

    def watched(conn: sqlite3.Connection) -> BaseException | None:
        threads.append(threading.current_thread().name)
        time.sleep(pause[0])
        return real(conn)

    monkeypatch.setattr(sqlite_module, "_commit_or_roll_back", watched)
    storage.off_loop_after = 0.005

    async def commit() -> None:
        async with storage.durable_batch():
            storage.append_commit("running", 1.0, "u", "edit", "[]")

    await commit()  # a quick disk: waited for on the loop
    assert threads == [threading.current_thread().name]
    pause[0] = 0.02  # the disk slows down: the average passes the bound...
    for _ in range(8):
        await commit()
    assert storage.commit_seconds >= storage.off_loop_after
    assert threads[-1] != threading.current_thread().name  # ...and COMMITs leave the loop
    pause[0] = 0.0
    for _ in range(40):  # quick again: back on the loop
        await commit()
    assert threads[-1] == threading.current_thread().name
    assert [h.revision for h in storage.history("running", limit=1)] == [49]


async def test_a_durable_batch_inside_a_batch_is_refused(storage: SqliteStorage) -> None:
    with storage.batch(), pytest.raises(RuntimeError):
        async with storage.durable_batch():
            pass


# -- background checkpoints -------------------------------------------------------


def _wal_pages_copied(db: Path) -> int:
    return db.stat().st_size // 4096


def test_the_log_is_copied_into_the_database_by_a_thread_of_its_own(db: Path) -> None:
    with SqliteStorage(db, checkpoint_every=0.01) as s:
        assert s._connection().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == \
            sqlite_module.CHECKPOINT_BACKSTOP_PAGES
        before = _wal_pages_copied(db)
        for k in range(30):   # 3 MB: below the writer's own backstop (40 MB)
            s.append_commit("running", float(k), "u", "edit", json.dumps(["x" * 100_000]))
        deadline = time.monotonic() + 20
        while _wal_pages_copied(db) < before + 700 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _wal_pages_copied(db) >= before + 700, "the log was not copied"
        assert s.checkpoints > 0
        thread = s._checkpointer._thread if s._checkpointer is not None else None
        assert thread is not None and thread.is_alive()
    assert not thread.is_alive()
    with SqliteStorage(db) as again:
        assert len(again.load().commits) == 30


def test_no_background_checkpoints_while_idle(db: Path) -> None:
    with SqliteStorage(db, checkpoint_every=0.01) as s:
        s.append_commit("running", 1.0, "u", "edit", "[]")
        deadline = time.monotonic() + 20
        while s.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        done = s.checkpoints
        assert done > 0
        time.sleep(0.1)   # ten periods without a write
        assert s.checkpoints == done


def test_background_checkpoints_off(db: Path) -> None:
    with SqliteStorage(db, checkpoint_every=0) as s:
        assert s._checkpointer is None
        assert s._connection().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        s.append_commit("running", 1.0, "u", "edit", "[]")
        assert s.checkpoints == 0


# -- snapshots in parts -------------------------------------------------------------


def _parts(db: Path) -> list[tuple[str, int, int]]:
    with sqlite3.connect(db) as raw:
        rows = raw.execute("SELECT datastore, revision, part FROM snapshot_parts"
                           " ORDER BY datastore, revision, part").fetchall()
    raw.close()
    return [(str(d), int(r), int(p)) for d, r, p in rows]


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sqlite_module, "SNAPSHOT_PART", 10)
    return 10


def test_a_long_snapshot_is_stored_in_parts_and_read_whole(db: Path, small_parts: int) -> None:
    text = json.dumps({"x": "é" * 25}, ensure_ascii=False)   # 34 characters: four parts
    with SqliteStorage(db) as s:
        s.append_commit("running", 1.0, "u", "edit", "[]")
        s.write_snapshot("running", 1, text)
        s.write_snapshot("startup", 1, "{}")   # short: one row, as before
        assert _parts(db) == [("running", 1, k) for k in range(4)]
        assert s.snapshot_at("running", 5) == Snapshot("running", 1, text)
        assert s.load().snapshots["startup"] == Snapshot("startup", 1, "{}")
    with SqliteStorage(db) as again:   # every row checked on open
        assert again.load().snapshots["running"] == Snapshot("running", 1, text)


def test_a_snapshot_in_parts_exists_once_whole_and_replaces_the_old_parts(
        db: Path, small_parts: int) -> None:
    with SqliteStorage(db, keep_snapshots=1) as s:
        s.append_commit("running", 1.0, "u", "edit", "[]")
        s.write_snapshot("running", 1, "a" * 25)
        s.append_commit("running", 2.0, "u", "edit", "[]")
        steps = s.snapshot_steps("running", 2, "b" * 45)
        for _ in range(5):   # the five parts, a commit after each
            next(steps)
            assert s.snapshot_at("running", 9) == Snapshot("running", 1, "a" * 25)
            s.append_commit("running", 3.0, "u", "edit", "[]")
        next(steps)   # made whole: the newest, and the older one gone (keep 1)
        assert s.snapshot_at("running", 9) == Snapshot("running", 2, "b" * 45)
        assert s.snapshot_at("running", 1) is None
        assert [r for d, r, p in _parts(db)] == [1, 1, 1] + [2] * 5
        for _ in steps:   # the old parts, a few a step
            pass
        assert _parts(db) == [("running", 2, k) for k in range(5)]
        assert [c.revision for c in s.load().commits] == [3, 4, 5, 6, 7]


def test_the_commits_a_snapshot_replaces_go_a_few_a_step_after_it(
        db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The step that makes a snapshot the newest leaves the commits it replaces to the
    steps after it, a few at a time; those a stop leaves go with the next snapshot's."""
    monkeypatch.setattr(sqlite_module, "_COMMITS_PRUNED_PER_STEP", 2)

    def revisions() -> list[int]:
        with sqlite3.connect(db) as conn:
            return [r for (r,) in conn.execute("SELECT revision FROM commits ORDER BY 1")]

    with SqliteStorage(db, keep_snapshots=1) as s:
        for i in range(1, 6):
            s.append_commit("running", float(i), "u", "edit", "[]")
        steps = s.snapshot_steps("running", 5, "{}")
        next(steps)   # made the newest
        assert s.snapshot_at("running", 5) == Snapshot("running", 5, "{}")
        assert revisions() == [1, 2, 3, 4, 5]
        next(steps)
        assert revisions() == [3, 4, 5]
        steps.close()   # a stop: 3 and 4 stay
        s.append_commit("running", 6.0, "u", "edit", "[]")
        assert [c.revision for c in s.load().commits] == [6]
        s.write_snapshot("running", 6, "{}")
        assert revisions() == [6]


def test_parts_left_by_a_stop_are_deleted_on_open(db: Path, small_parts: int) -> None:
    with SqliteStorage(db) as s:
        s.append_commit("running", 1.0, "u", "edit", "[]")
        s.write_snapshot("running", 1, "a" * 15)
        s.append_commit("running", 2.0, "u", "edit", "[]")
        steps = s.snapshot_steps("running", 2, "b" * 45)
        next(steps)
        next(steps)
        steps.close()
        assert len(_parts(db)) == 4
    with SqliteStorage(db) as again:
        assert _parts(db) == [("running", 1, 0), ("running", 1, 1)]
        assert again.load().snapshots["running"] == Snapshot("running", 1, "a" * 15)


def test_a_snapshot_whose_parts_were_lost_is_not_made_whole(
        db: Path, small_parts: int) -> None:
    with SqliteStorage(db) as s:
        s.append_commit("running", 1.0, "u", "edit", "[]")
        steps = s.snapshot_steps("running", 1, "b" * 45)
        next(steps)
        next(steps)
        s._connection().execute("DELETE FROM snapshot_parts WHERE part = 0")
        with pytest.raises(OperationFailed, match="4 of the 5 parts"):
            for _ in steps:
                pass
        assert s.snapshot_at("running", 9) is None


def _raw(db: Path, statement: str) -> None:
    raw = sqlite3.connect(db)
    raw.execute(statement)
    raw.commit()
    raw.close()


def test_a_damaged_or_missing_part_is_refused(db: Path, small_parts: int) -> None:
    with SqliteStorage(db) as s:
        s.append_commit("running", 1.0, "u", "edit", "[]")
        s.write_snapshot("running", 1, "b" * 45)
    _raw(db, "UPDATE snapshot_parts SET content = 'cccccccccc' WHERE part = 2")
    with pytest.raises(StorageCorrupt, match="snapshot_parts 'running'@1#2"):
        SqliteStorage(db)
    db = db.with_name("other.sqlite")
    with SqliteStorage(db) as s:   # read after the open: each part checked as it is read
        s.append_commit("running", 2.0, "u", "edit", "[]")
        s.write_snapshot("running", 1, "d" * 45)
        _raw(db, "DELETE FROM snapshot_parts WHERE part = 3")
        with pytest.raises(StorageCorrupt, match="has 3 of its 5 parts"):
            s.snapshot_at("running", 2)


def test_a_version_3_store_is_upgraded_with_its_snapshots(db: Path) -> None:
    text = json.dumps({"a": "x" * 100})
    with SqliteStorage(db) as s:
        s.append_commit("running", 1.0, "u", "edit", "[]")
        s.write_snapshot("running", 1, text)
    _raw(db, "DROP TABLE snapshot_parts")   # back to version 3's layout
    _raw(db, "ALTER TABLE snapshots DROP COLUMN parts")
    _raw(db, "PRAGMA user_version = 3")
    for _ in range(2):   # upgraded, then opened (every row checked) as version 4
        with SqliteStorage(db) as s:
            assert s.load().snapshots["running"] == Snapshot("running", 1, text)
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 4
        assert raw.execute("SELECT parts FROM snapshots").fetchall() == [(0,)]
    raw.close()


def test_a_snapshot_in_parts_is_not_rewritten_at_its_revision(
        db: Path, small_parts: int) -> None:
    """A snapshot again at the same revision (a quiet spell's after a due one) must not
    take the stored one apart while its parts are written: a crash meanwhile would leave
    a snapshot with parts missing."""
    with SqliteStorage(db) as s:
        s.append_commit("running", 1.0, "u", "edit", "[]")
        s.write_snapshot("running", 1, "a" * 45)
        steps = s.snapshot_steps("running", 1, "a" * 45)
        for _ in steps:
            assert s.snapshot_at("running", 1) == Snapshot("running", 1, "a" * 45)
        assert _parts(db) == [("running", 1, k) for k in range(5)]


def test_a_snapshot_given_as_utf8_pieces_is_cut_between_characters(
        db: Path, small_parts: int) -> None:
    """A child's print arrives as bytes in the pieces the pipe gave: each part is decoded
    in its own step, cut where no character is split, even across two pieces."""
    text = "a€b" * 9 + "é" * 7   # 1-, 3- and 2-byte characters: 57 characters, 68 bytes
    data = text.encode()
    pieces = [data[:7], data[7:8], data[8:31], data[31:]]   # a euro sign split at 7
    with SqliteStorage(db) as s:
        s.append_commit("running", 1.0, "u", "edit", "[]")
        for _ in s.snapshot_steps("running", 1, pieces):
            pass
        assert s.snapshot_at("running", 1) == Snapshot("running", 1, text)
        with sqlite3.connect(db) as raw:
            stored = [bytes(r[0]) for r in raw.execute(
                "SELECT CAST(content AS BLOB) FROM snapshot_parts ORDER BY part")]
        raw.close()
        assert b"".join(stored) == data and all(0 < len(p) <= 10 for p in stored)
        s.append_commit("running", 2.0, "u", "edit", "[]")
        for _ in s.snapshot_steps("running", 2, [b'{"', b'a":"\xc3', b'\xa9"}']):   # 10 bytes
            pass
        assert s.snapshot_at("running", 2) == Snapshot("running", 2, '{"a":"é"}')
        assert {r for _, r, _ in _parts(db)} == {1}


def test_a_snapshot_that_is_not_utf8_is_refused_whole(db: Path, small_parts: int) -> None:
    with SqliteStorage(db) as s:
        s.append_commit("running", 1.0, "u", "edit", "[]")
        with pytest.raises(OperationFailed, match="not UTF-8"):
            for _ in s.snapshot_steps("running", 1, [b"a" * 25, b"\xff" * 5, b"b" * 10]):
                pass
        assert s.snapshot_at("running", 1) is None
