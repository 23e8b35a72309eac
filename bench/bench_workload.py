"""Instantiation throughput and added latency of the workload manager on the sim VIM.

For N instances (default 1,000, 5,000 and 10,000) on a ``sim`` VIM with zero
latency, writes the instances to running in batches (one edit per batch, as a
client would) and measures:

- throughput: instances per second from the first config write to the last
  instance reaching ``running``;
- under that full load, the time from the edit that created an instance to its
  ``running`` notification (p50, p90, p99): mostly queueing behind the backlog;
- the orchestrator's added latency per instance without a backlog: instances
  created one at a time, each waited for, with N instances already running
  (p50, p99 over 200 instances);
- group commit: durable write transactions per instance;
- the process's CPU time per instance over the throughput phase (the figure a busy
  machine disturbs least).

``--against PYTHON`` measures another build too (the python executable of its
installation, run without this run's PYTHONPATH): each size in a fresh process per
build, ``--rounds`` rounds with the builds alternating which goes first, medians and
the ratio printed.

A reference measured in the same run: durable SQLite commits per second on the
same disk (one fsync each), the floor a one-write-per-step design would hit.

Run: ``.venv/bin/python bench/bench_workload.py [--sizes 1000,5000,10000] [--batch 200]
[--against /work/base/.venv/bin/python --rounds 2]``;
``--smoke`` is a seconds-long run for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _servers import add_build_arguments, describe
from _stats import pct

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore
from nfo.datastore import SqliteStorage
from nfo.drivers.local import LocalDriver
from nfo.drivers.sim import SimDriver
from nfo.registry import DriverRegistry
from nfo.workload import WorkloadManager

SETUP = {
    "nfo-vim:vims": {"vim": [{"name": "sim1", "type": "nfo-vim:sim",
                              "sim": {"latency": {"mean": 0, "jitter": 0}}}]},
    "nfo-catalog:catalog": {"nf-descriptor": [{"id": "fw", "vim-types": ["nfo-vim:sim"]}]},
}


def fsync_reference(tmp: Path, n: int = 2000) -> float:
    st = SqliteStorage(tmp / "ref.db")
    try:
        t0 = time.perf_counter()
        for i in range(n):
            st.put_oper("ref", f"k{i}", "{}")
        return n / (time.perf_counter() - t0)
    finally:
        st.close()


async def until(done: asyncio.Event, watcher: asyncio.Task[None], timeout: float) -> None:
    """Wait for ``done``; stop at once if the notification watcher died or time ran out."""
    waiter = asyncio.ensure_future(done.wait())
    finished, _ = await asyncio.wait({waiter, watcher}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    if waiter not in finished:
        waiter.cancel()
        if watcher in finished:
            watcher.result()
            raise SystemExit("the notification stream ended early")
        raise SystemExit(f"instances not running after {timeout} s")


def _collector() -> Any:
    """nfo serve's garbage collection policy, started as serve starts it (None for a build
    without one)."""
    try:
        from nfo.collector import Collector
    except ImportError:
        return None
    c = Collector()
    c.start()
    return c


async def run(n: int, batch: int, singles: int, tmp: Path) -> dict[str, float]:
    state = StateDir(tmp / f"state-{n}")
    ds = await open_datastore(state, [])
    mgr = WorkloadManager(ds, DriverRegistry(state.path, "bench", [SimDriver, LocalDriver]),
                          poll_interval=0.05, health_interval=3600)
    await mgr.start()
    collector = _collector()  # the process policy of this build's nfo serve, if it has one
    s = ds.internal_session("bench")
    await s.edit("running", json.dumps(SETUP), "json")
    running_at: dict[str, float] = {}
    done = asyncio.Event()
    total = n
    sub = ds.notifications.subscribe()

    async def watch() -> None:
        async for ev in sub:
            content = getattr(ev, "content", None)
            if content is None:
                continue
            body = json.loads(content).get("nfo-instances:nf-instance-state-change")
            if body is not None and body["new-status"] == "running":
                running_at[body["name"]] = ev.event_time  # type: ignore[union-attr]
                if len(running_at) >= total:
                    done.set()
    watcher = asyncio.create_task(watch())
    batches0, writes0 = ds.group.batches, ds.group.writes
    written_at: dict[str, float] = {}
    cpu0 = time.process_time()
    t0 = time.time()
    for b in range(0, n, batch):
        names = [f"nf{k}" for k in range(b, min(n, b + batch))]
        doc = {"nfo-instances:nf-instances": {"nf-instance": [
            {"name": x, "descriptor": "fw"} for x in names]}}
        await s.edit("running", json.dumps(doc), "json")
        now = time.time()
        for x in names:
            written_at[x] = now
    await until(done, watcher, 600)
    cpu = time.process_time() - cpu0
    t1 = max(running_at.values())
    lat = [running_at[x] - written_at[x] for x in written_at]
    groups = ds.group.batches - batches0
    writes = ds.group.writes - writes0
    single: list[float] = []
    for k in range(singles):
        name = f"one{k}"
        done.clear()
        total += 1
        t = time.time()
        await s.edit("running", json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
            {"name": name, "descriptor": "fw"}]}}), "json")
        await until(done, watcher, 60)
        single.append(running_at[name] - t)
    sub.close()
    await watcher
    await mgr.stop()
    await s.close()
    await ds.close()
    if collector is not None:
        collector.close()
    return {
        "n": n, "seconds": t1 - t0, "rate": n / (t1 - t0), "cpu_ms": cpu / n * 1000,
        "p50_ms": statistics.median(lat) * 1000, "p90_ms": pct(lat, 0.9) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000, "writes_per_instance": writes / n,
        "transactions_per_instance": groups / n,
        "one_p50_ms": statistics.median(single) * 1000, "one_p99_ms": pct(single, 0.99) * 1000,
    }


def _without_path() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def child(python: str, own: bool, n: int, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """One size measured by ``python`` in a process of its own (``own``: this build, with
    the caller's environment; else without PYTHONPATH, so that it imports its own nfo)."""
    env = dict(os.environ) if own else _without_path()
    cmd = [python, __file__, "--sizes", str(n), "--batch", str(args.batch),
           "--singles", str(args.singles), "--json", str(out), "--no-reference"]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=out.parent)
    row: dict[str, float] = json.loads(out.read_text())["rows"][0]
    return row


def table(rows: list[dict[str, float]], ref: float | None, build: str | None = None) -> None:
    head = f"{'build':>6} " if build is not None else ""
    print(f"{head}{'instances':>10} {'seconds':>8} {'inst/s':>8} {'CPU ms/inst':>11} "
          f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'writes/inst':>11} {'fsyncs/inst':>11}"
          + (f" {'inst/s / ref':>12}" if ref else ""))
    for r in rows:
        col = f"{r.get('build', ''):>6} " if build is not None else ""
        print(f"{col}{r['n']:>10,.0f} {r['seconds']:>8.2f} {r['rate']:>8.0f} {r['cpu_ms']:>11.3f} "
              f"{r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} {r['p99_ms']:>8.1f} "
              f"{r['writes_per_instance']:>11.2f} {r['transactions_per_instance']:>11.3f}"
              + (f" {r['rate'] / ref:>12.3f}" if ref else ""))


def flat(rows: list[dict[str, float]]) -> None:
    a, b = rows[0], rows[-1]
    if a["n"] != b["n"]:
        print(f"per-instance cost {b['n']:,.0f} vs {a['n']:,.0f}: wall "
              f"{(b['seconds'] / b['n']) / (a['seconds'] / a['n']):.2f}x, CPU "
              f"{b['cpu_ms'] / a['cpu_ms']:.2f}x (1.00 = constant)")


def against(args: argparse.Namespace, sizes: list[int], ref: float) -> None:
    """Both builds, each size in a fresh process, alternating which build goes first."""
    builds = [("this", sys.executable, True), ("other", args.against, False)]
    for name, python, own in builds:
        print(f"{name}: {describe(python, env=None if own else _without_path())}")
    got: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as d:
        for k in range(args.rounds):
            for n in sizes:
                for name, python, own in builds if k % 2 == 0 else builds[::-1]:
                    row = child(python, own, n, args, Path(d) / f"{name}-{n}-{k}.json")
                    row["build"] = name  # type: ignore[assignment]
                    got.setdefault((name, n), []).append(row)
    print(f"reference: {ref:,.0f} durable SQLite commits/s on this disk (one fsync each)")
    print(f"throughput: all N written in batches, then wait until every one is running; "
          f"{args.rounds} round(s), alternating builds, each size in a fresh process")
    table([r for n in sizes for name, _, _ in builds for r in got[(name, n)]], ref, "build")
    print("medians")
    print(f"{'instances':>10} {'this inst/s':>12} {'other inst/s':>12} {'this/other':>10} "
          f"{'this CPU ms':>11} {'other CPU ms':>12}")
    for n in sizes:
        med = {name: {key: statistics.median(r[key] for r in got[(name, n)])
                      for key in ("rate", "cpu_ms")} for name, _, _ in builds}
        print(f"{n:>10,} {med['this']['rate']:>12.0f} {med['other']['rate']:>12.0f} "
              f"{med['this']['rate'] / med['other']['rate']:>10.2f} "
              f"{med['this']['cpu_ms']:>11.3f} {med['other']['cpu_ms']:>12.3f}")
    print(f"added latency, one instance at a time, with N already running "
          f"({args.singles} samples, medians over the rounds)")
    print(f"{'instances':>10} {'this p50 ms':>11} {'this p99 ms':>11} {'other p50 ms':>12} "
          f"{'other p99 ms':>12}")
    for n in sizes:
        one = {name: [statistics.median(r[key] for r in got[(name, n)])
                      for key in ("one_p50_ms", "one_p99_ms")] for name, _, _ in builds}
        print(f"{n:>10,} {one['this'][0]:>11.2f} {one['this'][1]:>11.2f} "
              f"{one['other'][0]:>12.2f} {one['other'][1]:>12.2f}")
    for name, _, _ in builds if len(sizes) > 1 else ():
        print(f"{name}: ", end="")
        flat([{"n": n, **{key: statistics.median(r[key] for r in got[(name, n)])
                          for key in ("seconds", "cpu_ms")}} for n in sizes])


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--batch", type=int, default=200, help="instances per config edit")
    ap.add_argument("--singles", type=int, default=200,
                    help="instances created one at a time for the added latency")
    add_build_arguments(ap)
    ap.add_argument("--rounds", type=int, default=2, help="rounds with --against")
    ap.add_argument("--json", type=Path, help="write the raw figures here")
    ap.add_argument("--no-reference", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    commits = 2000
    if args.smoke:
        args.sizes, args.batch, args.singles, commits, args.rounds = "20,50", 10, 5, 50, 1
    sizes = [int(x) for x in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ref = 0.0 if args.no_reference else fsync_reference(tmp, commits)
        if args.against:
            against(args, sizes, ref)
            return
        for n in sizes:
            rows.append(await run(n, args.batch, args.singles, tmp))
    if args.json:
        args.json.write_text(json.dumps({"reference_commits_per_s": ref, "rows": rows}, indent=2))
    if args.no_reference:
        return
    print(f"reference: {ref:,.0f} durable SQLite commits/s on this disk (one fsync each)")
    print("throughput: all N written in batches, then wait until every one is running")
    table(rows, ref)
    print(f"added latency, one instance at a time, with N already running "
          f"({args.singles} samples)")
    print(f"{'instances':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(f"{r['n']:>10,} {r['one_p50_ms']:>8.2f} {r['one_p99_ms']:>8.2f}")
    if len(rows) > 1:
        flat(rows)


if __name__ == "__main__":
    asyncio.run(main())
