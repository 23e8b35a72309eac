"""The notification log by stream: append rate, stream-list read and replay start as the log
grows, next to the scan they replace.

For each size N (default 10,000 and 100,000 logged events) a fresh SQLite store (WAL,
``synchronous=FULL``, in a temporary directory) is filled the way a busy configuration
leaves it: N ``netconf-config-change`` notifications (stream NETCONF only; every commit logs
one), then N/100 ``nf-instance-state-change`` (stream ``nfo`` too).  The records are real
(validated once by a ``NotificationHub``, then appended again), each through
``NotificationLog.append`` with both streams defined at their default retention (100,000):
storage, index and pruning, 100 appends per durable transaction.  Then the store is opened
again, as at a restart, and measured:

- append rate, and the reference: the same rows INSERTed by plain SQLite into a table of
  the same layout, 100 per transaction, on the same disk;
- the index built at open (``NotificationHub`` construction: counting each stream once);
- a stream-list read: ``NotificationHub.describe()``, what both listings (RFC 5277
  ``netconf/streams``, RFC 8040 ``restconf-state/streams``) report of every stream, and
  ``replay_start("nfo")``;
- the references they replace: the previous build's ``replay_start("nfo")`` (the log read
  from its oldest record, each envelope parsed, until the first of the stream's module; the
  same storage reads, on the same table), and the same search as one SQL statement
  (``json_extract`` over the table, in C).

With ``--against PYTHON`` (another installation of nfo, e.g. the build before the log was
indexed by stream), the publishing path is compared too: ``NotificationHub.log`` of the same
checked notifications (1% nf-instance-state-change), 100 per durable transaction, in a
process of each build, alternating, the median of 3 runs each.

Run: ``.venv/bin/python bench/bench_notifications.py [--sizes 10000,100000] [--reads 2000]
[--against /work/wt-base/.venv/bin/python]``; ``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _servers import describe

from nfo.datastore import NotificationHub, SqliteStorage
from nfo.schema import Schema, Tree

BATCH = 100
CONFIG_CHANGE = {"ietf-netconf-notifications:netconf-config-change": {
    "changed-by": {"server": [None]}, "datastore": "running",
    "edit": [{"operation": "merge"}]}}
STATE_CHANGE = {"nfo-instances:nf-instance-state-change": {
    "name": "fw-17", "old-status": "initializing", "new-status": "running"}}


def records(schema: Schema, tmp: Path) -> list[tuple[str, str]]:
    """(module, stored content) of one notification of each kind, as the hub logs them."""
    data = Tree(schema)
    storage = SqliteStorage(tmp / "records.db")
    try:
        hub = NotificationHub(schema, storage, lambda: data)
        for doc in (CONFIG_CHANGE, STATE_CHANGE):
            hub.publish(json.dumps(doc))
        return [(r.module, r.content) for r in storage.notifications()]
    finally:
        storage.close()
        data.free()


def fill(db: Path, rows: list[tuple[str, str]]) -> float:
    """Append ``rows`` through the log; appends per second."""
    # imported here: a build run with --log-rate (--against) may predate them
    from nfo.datastore.notifications import NETCONF_STREAM, NFO_STREAM
    from nfo.datastore.notiflog import DEFAULT_KEEP, NotificationLog

    storage = SqliteStorage(db)
    try:
        log = NotificationLog(storage)
        log.define(NETCONF_STREAM, None, DEFAULT_KEEP)
        log.define(NFO_STREAM, frozenset({"nfo-instances"}), DEFAULT_KEEP)
        t0 = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            with storage.batch():
                for k, (module, content) in enumerate(rows[i:i + BATCH], start=i):
                    log.append(module, 1e9 + k, content)
        return len(rows) / (time.perf_counter() - t0)
    finally:
        storage.close()


def sqlite_fill(db: Path, rows: list[tuple[str, str]]) -> float:
    """The same rows INSERTed by plain SQLite, same table and indexes; rows per second."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.executescript("""
            CREATE TABLE notifications (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                module TEXT NOT NULL, timestamp REAL NOT NULL, content TEXT NOT NULL,
                crc INTEGER NOT NULL);
            CREATE INDEX notifications_by_time ON notifications (module, timestamp);
            CREATE INDEX notifications_by_seq ON notifications (module, seq);""")
        t0 = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO notifications (module, timestamp, content, crc) VALUES (?, ?, ?, 0)",
                [(m, 1e9 + k, c) for k, (m, c) in enumerate(rows[i:i + BATCH], start=i)])
            conn.execute("COMMIT")
        return len(rows) / (time.perf_counter() - t0)
    finally:
        conn.close()


def per_call(fn: Callable[[], object], calls: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the time per call of ``fn`` (seconds)."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times)


def old_replay_start(storage: SqliteStorage, module: str) -> float | None:
    """What replay_start(stream) did before: read the log from the oldest record, parse each
    envelope, stop at the first of the stream's module."""
    for rec in storage.notifications():
        if json.loads(rec.content)["module"] == module:
            return rec.timestamp
    return None


def hub_log_rate(n: int) -> float:
    """Notifications per second through ``NotificationHub.log`` in this process's build
    (only what every build has: the ``nfo`` stream is added where the hub lacks it)."""
    schema = Schema()
    data = Tree(schema)
    with tempfile.TemporaryDirectory(prefix="nfo-bench-notifications-") as d:
        storage = SqliteStorage(Path(d) / "log.db")
        hub = NotificationHub(schema, storage, lambda: data)
        if all(s.name != "nfo" for s in hub.streams()):
            hub.add_stream("nfo", "nf-instance state changes", ["nfo-instances"])
        config, state = (hub.check(json.dumps(doc)) for doc in (CONFIG_CHANGE, STATE_CHANGE))
        t0 = time.perf_counter()
        for i in range(0, n, BATCH):
            with storage.batch():
                for k in range(i, i + BATCH):
                    hub.log(state if k % 100 == 99 else config, event_time=1e9 + k)
        rate = n / (time.perf_counter() - t0)
        config.discard()
        state.discard()
        storage.close()
    data.free()
    return rate


def ab_log_rates(other: str, n: int, runs: int = 3) -> tuple[float, float]:
    """(this build, the other) medians of ``hub_log_rate`` in fresh processes, alternating."""
    pythons = (sys.executable, other)
    rates: tuple[list[float], list[float]] = ([], [])
    for r in range(runs):
        for k in (0, 1) if r % 2 == 0 else (1, 0):
            out = subprocess.run([pythons[k], __file__, "--log-rate", str(n)], cwd="/",
                                 capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise SystemExit(f"{pythons[k]}: {out.stderr[-2000:]}")
            rates[k].append(float(out.stdout.split()[-1]))
    return statistics.median(rates[0]), statistics.median(rates[1])


def measure(schema: Schema, tmp: Path, n: int, kinds: list[tuple[str, str]],
            reads: int) -> dict[str, float]:
    config, state = kinds
    rows = [config] * n + [state] * (n // 100)
    db = tmp / f"log-{n}.db"
    out = {"appends": fill(db, rows), "sqlite": sqlite_fill(tmp / f"ref-{n}.db", rows)}
    data = Tree(schema)
    storage = SqliteStorage(db)
    try:
        t0 = time.perf_counter()
        hub = NotificationHub(schema, storage, lambda: data)
        out["open"] = time.perf_counter() - t0
        first = hub.replay_start("nfo")
        assert first == old_replay_start(storage, "nfo-instances") == 1e9 + n, first
        out["describe"] = per_call(hub.describe, reads)
        out["replay_start"] = per_call(lambda: hub.replay_start("nfo"), reads)
        out["old_scan"] = per_call(lambda: old_replay_start(storage, "nfo-instances"), 1, 3)
        conn = sqlite3.connect(db)
        try:
            sql = ("SELECT timestamp FROM notifications WHERE json_extract(content, '$.module')"
                   " = 'nfo-instances' ORDER BY seq LIMIT 1")
            out["sql_scan"] = per_call(lambda: conn.execute(sql).fetchone(), 3, 3)
        finally:
            conn.close()
    finally:
        storage.close()
        data.free()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="10000,100000", help="logged events, comma-separated")
    ap.add_argument("--reads", type=int, default=2000, help="stream-list reads per round")
    ap.add_argument("--against", metavar="PYTHON",
                    help="compare NotificationHub.log with this installation of nfo")
    ap.add_argument("--appends", type=int, default=50_000,
                    help="notifications logged per run of the comparison")
    ap.add_argument("--log-rate", type=int, help=argparse.SUPPRESS)  # one run, in a child
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run (CI)")
    args = ap.parse_args()
    if args.log_rate:
        print(hub_log_rate(args.log_rate))
        return
    if args.smoke:
        args.sizes, args.reads, args.appends = "1000,3000", 200, 2000
    sizes = [int(x) for x in args.sizes.split(",")]
    schema = Schema()
    with tempfile.TemporaryDirectory(prefix="nfo-bench-notifications-") as d:
        tmp = Path(d)
        kinds = records(schema, tmp)
        got = [measure(schema, tmp, n, kinds, args.reads) for n in sizes]
    us, ms = 1e6, 1e3
    lines = [
        ("append, notifications/s (100 per transaction)", "appends", 1, "{:,.0f}"),
        ("reference: plain SQLite INSERT, rows/s", "sqlite", 1, "{:,.0f}"),
        ("index built at open (ms)", "open", ms, "{:,.1f}"),
        ("stream list read (describe), us", "describe", us, "{:,.2f}"),
        ("replay start of nfo, us", "replay_start", us, "{:,.2f}"),
        ("reference: previous replay start (scan from the oldest), us", "old_scan", us,
         "{:,.0f}"),
        ("reference: the same scan in SQL (json_extract), us", "sql_scan", us, "{:,.0f}"),
    ]
    print(f"notification log: N netconf-config-change, then N/100 nf-instance-state-change "
          f"(stream nfo); {args.reads} reads a round, median of 5 rounds")
    width = max(len(label) for label, *_ in lines)
    print(f"{'N logged events':<{width}}" + "".join(f"{n + n // 100:>14,}" for n in sizes))
    for label, key, scale, fmt in lines:
        print(f"{label:<{width}}" + "".join(f"{fmt.format(g[key] * scale):>14}" for g in got))
    print(f"{'append rate / plain SQLite':<{width}}"
          + "".join(f"{g['appends'] / g['sqlite']:>14.2f}" for g in got))
    print(f"{'previous replay start / this one':<{width}}"
          + "".join(f"{g['old_scan'] / g['replay_start']:>14,.0f}" for g in got))
    if len(got) > 1:
        a, b = got[0], got[-1]
        print(f"from {sizes[0]:,} to {sizes[-1]:,} events: stream list "
              f"{b['describe'] / a['describe']:.2f}x, replay start "
              f"{b['replay_start'] / a['replay_start']:.2f}x (1.00 = independent of the log), "
              f"previous replay start {b['old_scan'] / a['old_scan']:.1f}x")
    if args.against:
        against = os.path.abspath(args.against)
        this, other = ab_log_rates(against, args.appends)
        print(f"this:  {describe(sys.executable)}")
        print(f"other: {describe(against)}")
        print(f"NotificationHub.log, notifications/s ({args.appends:,} a run, 100 per "
              f"transaction, median of 3): this {this:,.0f}, other {other:,.0f}, "
              f"this/other {this / other:.2f}")


if __name__ == "__main__":
    main()
