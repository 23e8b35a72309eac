"""Full garbage collections while NF instances are instantiated: how long the process stops.

CPython's full (generation 2) collection traverses every object the process tracks, with
the event loop stopped; ``nfo serve`` freezes what it has loaded and what survives each
full collection (``nfo.collector``).  This starts ``nfo serve`` (NETCONF, a zero-latency
sim VIM), asks for N instances in one edit-config (default 30,000) and waits until every
one is running; a probe in the server (bench/_gcprobe, a sitecustomize on its
PYTHONPATH, bench-only) records the duration of each full collection.  Printed per build:
how many ran, their total, median, p99 and longest pause, the time to all running, and
the resident memory at the end.  ``--against PYTHON`` runs another build (one without
the policy, say) the same way, alternating, and prints the ratios.

Run: ``.venv/bin/python bench/bench_gc.py [--instances 30000] [--rounds 1]
[--against /work/wt-base/.venv/bin/python]``; ``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _servers import Server, add_build_arguments, describe, rss_mb
from _stats import pct
from bench_million import SETUP, Instances, ok, running
from bench_netconf_read import Client

PROBE = Path(__file__).resolve().parent / "_gcprobe"


async def flood(python: str, tmp: Path, n: int, timeout: float) -> tuple[list[float], float,
                                                                       float]:
    """Pauses (ms), seconds from the edit to every instance running, RSS (MB) then."""
    pauses = tmp / "pauses.txt"
    pauses.write_text("")
    srv = Server.start("build", python, tmp / "state", restconf=False, netconf=True,
                       env={"PYTHONPATH": str(PROBE), "NFO_BENCH_GC_PROBE": str(pauses)})
    try:
        assert srv.netconf_port is not None
        c = await Client.open(srv.netconf_port)
        try:
            await ok(c, Instances.edit(1, SETUP))
            start = len(pauses.read_text().split())
            t0 = time.perf_counter()
            await ok(c, Instances.edit(2, Instances.entries(0, n)))
            await running(c, n, timeout)
            took = time.perf_counter() - t0
            rss = rss_mb(srv.proc.pid)
        finally:
            c.close()
    finally:
        srv.stop()
    return [float(x) for x in pauses.read_text().split()[start:]], took, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--instances", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800)
    add_build_arguments(ap)
    args = ap.parse_args()
    if args.smoke:
        args.instances, args.rounds, args.timeout = 200, 1, 120
    builds = [("this", sys.executable)] + ([("other", args.against)] if args.against else [])
    for name, python in builds:
        print(f"{name}: {describe(python)}")
    got: dict[str, list[tuple[list[float], float, float]]] = {b: [] for b, _ in builds}
    for r in range(args.rounds):
        for name, python in (builds if r % 2 == 0 else builds[::-1]):
            with tempfile.TemporaryDirectory(prefix="nfo-bench-gc-") as d:
                got[name].append(asyncio.run(flood(python, Path(d), args.instances,
                                                   args.timeout)))
            p, took, rss = got[name][-1]
            print(f"[bench] round {r + 1}, {name}: {len(p)} full collections, "
                  f"{sum(p):.0f} ms in all, all running after {took:.1f} s",
                  file=sys.stderr, flush=True)
    print(f"\n{args.instances:,} nf-instances asked for in one edit-config (NETCONF), "
          f"zero-latency sim VIM, until every one runs; {args.rounds} round(s)")
    print(f"{'build':<7}{'full GCs':>9}{'total ms':>10}{'median ms':>11}{'p99 ms':>9}"
          f"{'max ms':>9}{'running s':>11}{'RSS MB':>8}")
    summary: dict[str, tuple[float, float, float]] = {}
    for name, _ in builds:
        p = [x for run in got[name] for x in run[0]]
        took = statistics.median(run[1] for run in got[name])
        rss = statistics.median(run[2] for run in got[name])
        total = sum(p) / len(got[name])
        mx = max(p, default=0.0)
        print(f"{name:<7}{len(p) / len(got[name]):>9.0f}{total:>10.0f}"
              f"{statistics.median(p) if p else 0.0:>11.1f}{pct(p, 0.99) if p else 0.0:>9.1f}"
              f"{mx:>9.1f}{took:>11.1f}{rss:>8.0f}")
        summary[name] = (total, mx, took)
    if args.against:
        (t1, m1, s1), (t2, m2, s2) = summary["this"], summary["other"]
        print(f"this/other: time in full collections {t1 / t2 if t2 else float('nan'):.3f}, "
              f"longest pause {m1 / m2 if m2 else float('nan'):.3f}, "
              f"time to all running {s1 / s2:.2f}")


if __name__ == "__main__":
    main()
