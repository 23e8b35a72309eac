"""Concurrent durable writes: RESTCONF clients each creating single entries, with wrk.

With N entries in running (default 10,000), ``nfo serve`` runs in its own process and
``wrk`` (the Debian package, a Lua script, Basic auth on every request) POSTs one new
entry per request from 1, 8 and 32 connections.  ``--list nf-instance`` (the default)
writes nf-instances (admin-state disabled, so the workload manager checks each against
its descriptor and records it, but starts nothing); ``--list entry`` writes entries of
the benchmark module's plain list (bench/yang/nfo-bench.yang), which no subscriber
looks at: the datastore's own cost.
Every POST is durable when answered (SQLite WAL, ``synchronous=FULL``), so this is
the commit rate: writes that arrive together are committed as one group sharing one
fsync (``nfo.datastore.transaction``).  Printed per connection count: commits/s,
p50 / p99 latency, the server's CPU time per acknowledged commit (all its threads; on a
shared machine a steadier figure than the rate), and after the runs a check that every
acknowledged write is in running: entries = N + wrk's 2xx answers, plus at most one
request per connection and run that wrk had sent but stopped waiting for when its time
was up.

References measured in the same run, on the same disk:

- SQLite alone: one row inserted and committed per transaction, one at a time, in
  WAL mode with ``synchronous=FULL`` (what a store that fsyncs each write gets);
- ``--against PYTHON``: another installation of nfo (its ``nfo serve`` with its own
  state loaded the same way); the runs alternate, the order reversed every round.

Run: ``.venv/bin/python bench/bench_writes.py [--list nf-instance|entry] [--instances
10000] [--duration 5] [--connections 1,8,32] [--against /work/wt-base/.venv/bin/python]``;
``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _servers import Server, add_build_arguments, describe
from bench_restconf import (
    AUTH,
    INSTANCES,
    LUA,
    LUA_THREADS,
    Run,
    http,
    instances_doc,
    parse_wrk,
)

YANG = Path(__file__).resolve().parent / "yang"
BENCH = "/restconf/data/nfo-bench:bench"
ENTRY_LUA = LUA_THREADS + """
local tag, headers
local counter = 0
function init(args)
  tag = args[3]
  headers = {["Authorization"] = args[4], ["Accept"] = "application/yang-data+json",
             ["Content-Type"] = "application/yang-data+json"}
end

request = function()
  counter = counter + 1
  local body = '{"nfo-bench:entry":[{"name":"new-' .. tag .. '-' .. (tid or 1) .. '-' ..
    counter .. '","value":' .. counter .. ',"note":"written by wrk"}]}'
  return wrk.format("POST", "@PATH@", headers, body)
end
""".replace("@PATH@", BENCH)


def entries_doc(n: int) -> str:
    return json.dumps({"nfo-bench:bench": {"entry": [
        {"name": f"e{k}", "value": k, "note": "loaded"} for k in range(n)]}})


def sqlite_commits(path: Path, seconds: float) -> float:
    """Durable one-row commits per second, one at a time (the disk's floor)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        body = "x" * 200
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (v) VALUES (?)", (body,))
            conn.execute("COMMIT")
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        conn.close()


def post(script: Path, port: int, conns: int, tag: str, n: int, duration: int,
         path: str) -> Run:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "60s", "--latency",
           "-s", str(script), f"http://127.0.0.1:{port}{path}", "--", "post", str(n),
           tag, AUTH]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    if r.returncode != 0:
        raise SystemExit(f"wrk failed ({r.returncode}): {r.stderr}{r.stdout}")
    return parse_wrk(r.stdout)


def count(port: int, entries: bool) -> int:
    if entries:
        doc = json.loads(http(port, "GET", f"{BENCH}?depth=2"))
        return len(doc["nfo-bench:bench"].get("entry", []))
    doc = json.loads(http(port, "GET", f"{INSTANCES}?depth=2"))
    return len(doc["nfo-instances:nf-instances"].get("nf-instance", []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--list", choices=("nf-instance", "entry"), default="nf-instance",
                    help="what each POST creates (see above)")
    ap.add_argument("--instances", type=int, default=10_000, help="entries loaded first")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", default="1,8,32",
                    help="comma-separated wrk connection counts")
    add_build_arguments(ap)
    args = ap.parse_args()
    if args.smoke:
        args.instances, args.duration, args.rounds, args.connections = 30, 1, 1, "1,8"
    conns = [int(c) for c in args.connections.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk; tools/bootstrap installs it)")
    builds = [("this", sys.executable)] + ([("other", args.against)] if args.against else [])
    for name, python in builds:
        print(f"{name}: {describe(python)}")
    n = args.instances
    runs: dict[tuple[str, int], list[Run]] = {(b, c): [] for b, _ in builds for c in conns}
    cpu: dict[tuple[str, int], list[float]] = {(b, c): [] for b, _ in builds for c in conns}
    ref: list[float] = []
    with tempfile.TemporaryDirectory(prefix="nfo-bench-writes-") as d:
        tmp = Path(d)
        entries = args.list == "entry"
        path = BENCH if entries else INSTANCES
        script = tmp / "post.lua"
        script.write_text(ENTRY_LUA if entries else LUA)
        servers: dict[str, Server] = {}
        try:
            for name, python in builds:
                srv = Server.start(name, python, tmp / name, restconf=True, netconf=False,
                                   yang_dirs=(YANG,) if entries else ())
                servers[name] = srv
                assert srv.restconf_port is not None
                if entries:
                    http(srv.restconf_port, "PUT", BENCH, entries_doc(n))
                else:
                    http(srv.restconf_port, "PATCH", INSTANCES, instances_doc(n))
            for r in range(args.rounds):
                ref.append(sqlite_commits(tmp / f"ref{r}.db", min(args.duration, 3)))
                print(f"[bench] round {r + 1}: SQLite alone {ref[-1]:.0f} commits/s",
                      file=sys.stderr, flush=True)
                order = builds if r % 2 == 0 else builds[::-1]
                for c in conns:
                    for name, _ in order:
                        port = servers[name].restconf_port
                        assert port is not None
                        used = servers[name].cpu_seconds()
                        run = post(script, port, c, f"{name}{r}c{c}", n, args.duration, path)
                        used = servers[name].cpu_seconds() - used
                        runs[(name, c)].append(run)
                        cpu[(name, c)].append(used / max(1, run.requests - run.errors))
                        print(f"[bench] round {r + 1}, {c} connections, {name}: "
                              f"{run.rps:.0f} commits/s, p50 {run.p50 * 1e3:.2f} ms, "
                              f"p99 {run.p99 * 1e3:.2f} ms, {run.errors} errors, server CPU "
                              f"{cpu[(name, c)][-1] * 1e6:.0f} us a commit",
                              file=sys.stderr, flush=True)
            acked: dict[str, tuple[int, int]] = {}
            for name, _ in builds:
                port = servers[name].restconf_port
                assert port is not None
                ok = sum(x.requests - x.errors for c in conns for x in runs[(name, c)])
                acked[name] = (n + ok, count(port, entries))
            unanswered = args.rounds * sum(conns)
        finally:
            for srv in servers.values():
                srv.stop()
    sq = statistics.median(ref)
    what = "nfo-bench entries" if entries else "nf-instances"
    print(f"\n{n:,} {what} in running; wrk POST of one new {args.list} per request, "
          f"1 thread, {args.duration} s per run, {args.rounds} alternating round(s); "
          f"Basic auth, JSON, loopback; every answer durable")
    print(f"reference: SQLite alone, one durable commit at a time on the same disk: "
          f"{sq:,.0f} commits/s (median of {len(ref)})\n")
    head = f"{'connections':>11}  {'build':<6}{'commits/s':>10}{'p50 ms':>9}{'p99 ms':>9}" \
           f"{'errors':>8}{'/ SQLite':>10}{'CPU us':>8}"
    if args.against:
        head += f"{'this/other':>12}{'CPU this/other':>16}"
    print(head)
    for c in conns:
        for name, _ in builds:
            rs = runs[(name, c)]
            rps = statistics.median(x.rps for x in rs)
            line = (f"{c:>11}  {name:<6}{rps:>10,.0f}"
                    f"{statistics.median(x.p50 for x in rs) * 1e3:>9.2f}"
                    f"{statistics.median(x.p99 for x in rs) * 1e3:>9.2f}"
                    f"{sum(x.errors for x in rs):>8}{rps / sq:>10.2f}"
                    f"{statistics.median(cpu[(name, c)]) * 1e6:>8.0f}")
            if args.against and name == "this":
                other = statistics.median(x.rps for x in runs[("other", c)])
                ratio = statistics.median(cpu[("this", c)]) / statistics.median(cpu[("other", c)])
                line += f"{rps / other:>12.2f}{ratio:>16.2f}"
            print(line)
    print()
    bad = False
    for name, (want, got) in acked.items():
        fine = want <= got <= want + unanswered
        print(f"{name}: {got:,} entries in running after the runs; N + acknowledged "
              f"creates = {want:,} (+ at most {unanswered} sent but not waited for)"
              + ("" if fine else "  MISMATCH"))
        bad |= not fine
    if bad:
        raise SystemExit("an acknowledged write is missing (or an unacknowledged one applied)")


if __name__ == "__main__":
    main()
