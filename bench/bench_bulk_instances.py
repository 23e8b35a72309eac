"""Bulk load of nf-instances: N instances (default 1,000,000) written over one NETCONF
session in edit-configs of ``--chunk`` (100,000), on a zero-latency sim VIM, so that
every edit after the first is answered while the workload manager instantiates the
instances of the earlier ones.

Printed per build and round: the whole load's seconds, each edit's, and the server's
VmRSS right after the last reply (instantiation still running).  Target 4 of issue 14
asks for a bulk load of a million in at most 15 s.  The builds alternate which goes
first; with ``--against`` the medians' ratio is printed.

Run: ``.venv/bin/python bench/bench_bulk_instances.py [--entries 1000000] [--chunk
100000] [--rounds 2] [--against /work/wt-base/.venv/bin/python]``; ``--smoke`` is a
seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _servers import Server, add_build_arguments, builds, rss_mb
from bench_million import SETUP, YANG, Client, Instances, ok


async def load(python: str, n: int, chunk: int) -> tuple[float, list[float], float]:
    """The load's seconds, each edit's, and VmRSS (MB) after the last reply."""
    with tempfile.TemporaryDirectory(prefix="nfo-bench-bulk-") as d:
        srv = Server.start("bulk", python, Path(d) / "state", restconf=False, netconf=True,
                           yang_dirs=(YANG,))
        try:
            assert srv.netconf_port is not None
            c = await Client.open(srv.netconf_port)
            await ok(c, Instances.edit(1, SETUP))
            per: list[float] = []
            t0 = time.perf_counter()
            for i, start in enumerate(range(0, n, chunk)):
                t = time.perf_counter()
                await ok(c, Instances.edit(10 + i, Instances.entries(start,
                                                                     min(n, start + chunk))))
                per.append(time.perf_counter() - t)
            total = time.perf_counter() - t0
            rss = rss_mb(srv.proc.pid)
            c.close()
            return total, per, rss
        finally:
            srv.stop()


async def run(args: argparse.Namespace) -> None:
    pythons = builds(args.against)
    names = list(pythons)
    totals: dict[str, list[float]] = {b: [] for b in names}
    rows = []
    for r in range(args.rounds):
        for b in names if r % 2 == 0 else names[::-1]:
            total, per, rss = await load(pythons[b], args.entries, args.chunk)
            totals[b].append(total)
            rows.append((b, total, per, rss))
    print(f"\n{args.entries:,} nf-instances in edit-configs of {args.chunk:,} on one NETCONF "
          f"session (zero-latency sim VIM); {args.rounds} round(s), builds alternating")
    print(f"{'build':>6} {'load s':>8} {'VmRSS MB':>9}  each edit, s")
    for b, total, per, rss in rows:
        print(f"{b:>6} {total:>8.2f} {rss:>9,.0f}  " + " ".join(f"{x:.2f}" for x in per))
    if len(names) > 1:
        this, other = (statistics.median(totals[b]) for b in names)
        print(f"this/other (medians): load {this / other:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=100_000, help="instances per edit-config")
    ap.add_argument("--rounds", type=int, default=2)
    add_build_arguments(ap)
    args = ap.parse_args()
    if args.smoke:
        args.entries, args.chunk, args.rounds = 600, 200, 1
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
