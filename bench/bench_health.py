"""Health checks of running instances at scale: by one listing of the VIM a round, against
one status call per instance, in the same run.

N instances (default 30,000) run on a zero-latency ``sim`` VIM, the manager with its
default health interval (10 s) and rate (1,000 checks a second).  Two modes, each in a
process of its own, rounds alternating which goes first:

- ``listing``: this build as it is (the sim driver lists statuses, so a round of
  checks is one ``statuses`` call);
- ``one-by-one``: the same build with the sim driver's ``statuses`` taken away, so
  every running instance is asked ``status`` on its own, at most ``health_rate`` a
  second (what every driver got before listings, and what a driver that cannot list
  still gets).

For each, once every instance runs and the start's checks are done:

- steady state: the process's CPU time over ``--window`` seconds, as a share of one
  core, with the driver calls made meanwhile;
- detection: ``--vanish`` workloads deleted from the VIM behind nfo's back, and the
  seconds until each runs again on a new workload (median and max);
- VmRSS at the end.

Run: ``.venv/bin/python bench/bench_health.py [--instances 30000] [--window 30]
[--rounds 2]``; ``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _servers import rss_mb
from bench_workload import SETUP

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore
from nfo.drivers.local import LocalDriver
from nfo.drivers.sim import SimDriver
from nfo.registry import DriverRegistry
from nfo.workload import WorkloadManager

MODES = ("listing", "one-by-one")
BATCH = 5_000


def _counted(calls: dict[str, int], name: str) -> None:
    """Count the sim driver's calls of ``name``."""
    real = getattr(SimDriver, name)

    async def counting(*args: Any, **kw: Any) -> Any:
        calls[name] += 1
        return await real(*args, **kw)
    setattr(SimDriver, name, counting)


async def measure(mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    calls = {"status": 0, "statuses": 0}
    if mode == "one-by-one":
        del SimDriver.statuses
    else:
        _counted(calls, "statuses")
    _counted(calls, "status")
    state = StateDir(tmp / "state")
    ds = await open_datastore(state, [])
    mgr = WorkloadManager(ds, DriverRegistry(state.path, "bench", [SimDriver, LocalDriver]),
                          poll_interval=0.05, health_interval=args.interval,
                          health_rate=args.rate)
    await mgr.start()
    s = ds.internal_session("bench")
    await s.edit("running", json.dumps(SETUP), "json")
    n = args.instances
    for b in range(0, n, BATCH):
        await s.edit("running", json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
            {"name": f"nf{k}", "descriptor": "fw"} for k in range(b, min(n, b + BATCH))]}}),
            "json")
    await mgr.wait_idle()
    obs = mgr._obs  # the manager's record of each instance (read only)
    while sum(o.get("oper-status") == "running" for o in obs.values()) < n:
        await asyncio.sleep(0.5)
        await mgr.wait_idle()
    await asyncio.sleep(args.settle)
    before = dict(calls)
    cpu0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(args.window)
    span = time.monotonic() - t0
    cpu = (time.process_time() - cpu0) / span
    made = {k: (calls[k] - before[k]) / span for k in calls}

    names = random.Random(7).sample(range(n), args.vanish)
    old = {f"nf{k}": obs[f"nf{k}"]["vim-resource-id"] for k in names}
    con = sqlite3.connect(state.path / "drivers" / "sim" / "sim1" / "sim-vim.db")
    with con:
        con.executemany("DELETE FROM resources WHERE id=?", [(r,) for r in old.values()])
    con.close()
    gone_at = time.monotonic()
    back: dict[str, float] = {}
    deadline = gone_at + args.detect_timeout
    while len(back) < len(old) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        for name, rid in old.items():
            o = obs.get(name)
            if (name not in back and o is not None and o.get("oper-status") == "running"
                    and o.get("vim-resource-id") not in (None, rid)):
                back[name] = time.monotonic() - gone_at
    rss = rss_mb(os.getpid())
    await mgr.stop()
    await s.close()
    await ds.close()
    late = [args.detect_timeout] * (len(old) - len(back))
    seen = list(back.values()) + late
    return {"cpu_share": cpu, "status_per_s": made["status"],
            "statuses_per_s": made["statuses"], "detect_p50_s": statistics.median(seen),
            "detect_max_s": max(seen), "missed": float(len(late)), "rss_mb": rss}


def child(mode: str, args: argparse.Namespace, out: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--mode", mode, "--json", str(out),
           "--instances", str(args.instances), "--window", str(args.window),
           "--interval", str(args.interval), "--rate", str(args.rate),
           "--vanish", str(args.vanish), "--settle", str(args.settle),
           "--detect-timeout", str(args.detect_timeout)]
    subprocess.run(cmd, check=True, cwd=out.parent)
    row: dict[str, float] = json.loads(out.read_text())
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=30_000)
    ap.add_argument("--window", type=float, default=30.0, help="seconds of steady state")
    ap.add_argument("--interval", type=float, default=10.0, help="health_interval")
    ap.add_argument("--rate", type=float, default=1000.0, help="health_rate")
    ap.add_argument("--vanish", type=int, default=20, help="workloads deleted behind nfo")
    ap.add_argument("--settle", type=float, default=15.0,
                    help="seconds after every instance runs before measuring")
    ap.add_argument("--detect-timeout", type=float, default=300.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run (CI)")
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        args.instances, args.window, args.interval, args.vanish = 200, 1.0, 0.5, 5
        args.settle, args.rounds, args.detect_timeout = 0.5, 1, 30.0
    if args.mode:
        with tempfile.TemporaryDirectory() as d:
            row = asyncio.run(measure(args.mode, args, Path(d)))
        assert args.json is not None
        args.json.write_text(json.dumps(row))
        return
    got: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as d:
        for k in range(args.rounds):
            for mode in MODES if k % 2 == 0 else MODES[::-1]:
                row = child(mode, args, Path(d) / f"{mode}-{k}.json")
                print(f"[bench] round {k + 1}, {mode}: {row}", flush=True)
                got[mode].append(row)
    print(f"\n{args.instances:,} instances running on a zero-latency sim VIM; health interval "
          f"{args.interval:g} s, health_rate {args.rate:g}/s; steady state over "
          f"{args.window:g} s; {args.vanish} workloads deleted behind nfo's back; "
          f"{args.rounds} round(s), modes alternating, medians")
    print(f"{'mode':>11} {'CPU % core':>10} {'status/s':>9} {'listings/s':>10} "
          f"{'detect p50 s':>12} {'detect max s':>12} {'missed':>6} {'VmRSS MB':>8}")
    med = {m: {k: statistics.median(r[k] for r in got[m]) for k in got[m][0]} for m in MODES}
    for m in MODES:
        r = med[m]
        print(f"{m:>11} {100 * r['cpu_share']:>10.1f} {r['status_per_s']:>9.1f} "
              f"{r['statuses_per_s']:>10.2f} {r['detect_p50_s']:>12.2f} "
              f"{r['detect_max_s']:>12.2f} {r['missed']:>6.0f} {r['rss_mb']:>8.0f}")
    a, b = med["listing"], med["one-by-one"]
    print(f"listing / one-by-one: CPU {a['cpu_share'] / max(b['cpu_share'], 1e-9):.2f}x, "
          f"detection max {a['detect_max_s'] / max(b['detect_max_s'], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
