"""Other clients during an instantiation flood: one edit-config writes N nf-instances
(a zero-latency sim VIM), and a second NETCONF session reads one entry of a 10-entry list
every 20 ms from just before the edit until ``--window`` seconds after its reply.

Printed per build: the edit's reply time, the second session's read latency over the
window (p50, p99, max: how long any other client waits while the workload manager
starts N reconciles) and the seconds until every instance runs (polled after the window
with a get of every instance's oper-status; its resolution is that read's own time).
Reference in the same run: the same read on the same server before the edit (idle).

Run: ``.venv/bin/python bench/bench_flood.py [--instances 100000] [--window 12]
[--rounds 2] [--against /work/wt-base/.venv/bin/python]``; ``--smoke`` is a seconds-long
run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _servers import Server, add_build_arguments, builds
from _stats import pct
from bench_million import SETUP, STATUSES, YANG, Client, Instances, _unchunked, edit, get_small, ok


async def reads(port: int, out: list[float], stop: asyncio.Event) -> None:
    """One read of a small-list entry every 20 ms until ``stop``."""
    c = await Client.open(port)
    try:
        i = 0
        while not stop.is_set():
            t = time.perf_counter()
            reply = await c.call(get_small(50_000 + i, f"s{i % 10}"))
            out.append(time.perf_counter() - t)
            if b"<small>" not in reply:
                raise SystemExit(f"the read failed: {reply[:400]!r}")
            i += 1
            await asyncio.sleep(0.02)
    finally:
        c.close()


async def one(name: str, python: str, tmp: Path, n: int, window: float,
              timeout: float) -> dict[str, float]:
    srv = Server.start(name, python, tmp, restconf=False, netconf=True, yang_dirs=(YANG,))
    try:
        assert srv.netconf_port is not None
        c = await Client.open(srv.netconf_port)
        await ok(c, edit(1, "".join(f"<small><name>s{k}</name><value>{k}</value></small>"
                                    for k in range(10))))
        await ok(c, Instances.edit(2, SETUP))
        idle: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.create_task(reads(srv.netconf_port, idle, stop))
        await asyncio.sleep(min(1.0, window))
        stop.set()
        await probe
        text = Instances.edit(3, Instances.entries(0, n))
        busy: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.create_task(reads(srv.netconf_port, busy, stop))
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()
        await ok(c, text)
        reply_s = time.perf_counter() - t0
        await asyncio.sleep(window)
        stop.set()
        await probe
        while True:
            t = time.perf_counter()
            got = _unchunked(await c.call(STATUSES)).count(b"<oper-status>running</oper-status>")
            if got >= n:
                break
            if t - t0 > timeout:
                raise SystemExit(f"{name}: {got:,} of {n:,} instances running after "
                                 f"{timeout:.0f} s")
            await asyncio.sleep(max(0.2, 2 * (time.perf_counter() - t)))
        running_s = time.perf_counter() - t0
        c.close()
    finally:
        srv.stop()
    return {"reply": reply_s, "running": running_s, "idle p50": statistics.median(idle),
            "p50": statistics.median(busy), "p99": pct(busy, 0.99), "max": max(busy),
            "reads": len(busy)}


async def run(args: argparse.Namespace) -> None:
    pythons = builds(args.against)
    res: dict[str, list[dict[str, float]]] = {b: [] for b in pythons}
    with tempfile.TemporaryDirectory(prefix="nfo-bench-flood-") as d:
        for r in range(args.rounds):
            order = list(pythons) if r % 2 == 0 else list(pythons)[::-1]
            for b in order:
                m = await one(b, pythons[b], Path(d) / f"{b}{r}", args.instances, args.window,
                              args.timeout)
                res[b].append(m)
                print(f"[bench] round {r + 1}, {b}: reply {m['reply']:.2f} s, read p99 "
                      f"{m['p99'] * 1e3:.0f} ms", file=sys.stderr, flush=True)
    print(f"\n{args.instances:,} nf-instances in one edit-config (zero-latency sim VIM); "
          f"a second session reads one entry every 20 ms during the edit and {args.window:g} s "
          f"after it; {args.rounds} round(s), alternating builds")
    print(f"{'build':>6} {'edit reply s':>12} {'all running s':>13} {'reads':>6} "
          f"{'idle p50 ms':>11} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for b, runs in res.items():
        for m in runs:
            print(f"{b:>6} {m['reply']:12.2f} {m['running']:13.1f} {m['reads']:6.0f} "
                  f"{m['idle p50'] * 1e3:11.2f} {m['p50'] * 1e3:8.1f} {m['p99'] * 1e3:8.0f} "
                  f"{m['max'] * 1e3:8.0f}")
    if "other" in res:
        def med(b: str, k: str) -> float:
            return statistics.median(m[k] for m in res[b])
        print(f"this/other (medians): edit reply {med('this', 'reply') / med('other', 'reply'):.2f}"
              f", read p99 {med('this', 'p99') / med('other', 'p99'):.3f}, all running "
              f"{med('this', 'running') / med('other', 'running'):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--instances", type=int, default=100_000)
    ap.add_argument("--window", type=float, default=12.0,
                    help="seconds after the edit's reply that the reads go on")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds to wait for every instance to run")
    add_build_arguments(ap)
    args = ap.parse_args()
    if args.smoke:
        args.instances, args.window, args.rounds = 300, 0.5, 1
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
