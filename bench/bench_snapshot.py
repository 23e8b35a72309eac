"""Snapshots of a large running: the event loop's stall, printed in process or by a child.

A datastore (nfo's modules, SQLite in a temporary directory) is loaded with N
``nf-instance`` entries (default 50,000); then one writer commits single new entries one
after another while snapshots come due every ``--every`` commits, and a ticker task
records how late the event loop wakes it (a 1 ms sleep).  The two ways of writing a
snapshot alternate over the rounds, on the same datastore (the setting is read at each
commit):

- ``in process``: running printed as JSON on the event loop (``snapshot_in_child_bytes = 0``);
- ``child``: printed by a forked child (``nfo.datastore.forked``), the parent paying the
  fork and the write of the text.

Printed per way: commits/s, commit latency p50 / p99 / max, the loop's longest stall,
snapshots written. Reference measured in the same run: libyang printing running alone
(what an in-process snapshot stalls the loop for at least).

Run: ``.venv/bin/python bench/bench_snapshot.py [--instances 50000] [--commits 1000]
[--every 200] [--rounds 3]``; ``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nfo.cli.moduleset import StateDir  # noqa: E402
from nfo.cli.serve import open_datastore  # noqa: E402
from nfo.datastore import Datastore  # noqa: E402

WAYS = {"in process": 0, "child": 1}


def doc(*names: str) -> str:
    return json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
        {"name": n, "descriptor": "udp-echo", "admin-state": "disabled",
         "parameter": [{"name": "port", "value": str(10000 + k % 50000)}]}
        for k, n in enumerate(names)]}})


async def ticker(gaps: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        gaps.append(time.perf_counter() - t - 0.001)


async def run_way(ds: Datastore, way: str, tag: str, commits: int) -> dict[str, float]:
    Datastore.snapshot_in_child_bytes = WAYS[way]
    s = ds.internal_session("bench")
    snaps_before = WRITTEN[0]
    gaps: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(gaps, stop))
    lat: list[float] = []
    t0 = time.perf_counter()
    for k in range(commits):
        t = time.perf_counter()
        await s.edit("running", doc(f"{tag}-{k}"), "json")
        lat.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - t0
    while ds._tx._children:  # a child still printing: its write belongs to this way
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    stop.set()
    await tick
    await s.close()
    lat.sort()
    return {"rate": commits / elapsed, "p50": statistics.median(lat) * 1e3,
            "p99": lat[int(len(lat) * 0.99) - 1] * 1e3, "max": lat[-1] * 1e3,
            "stall": max(gaps) * 1e3, "snapshots": WRITTEN[0] - snaps_before}


WRITTEN = [0]
"""Snapshots written so far (counted by a wrapper around the storage's write)."""


def count_snapshots(ds: Datastore) -> None:
    real = ds.storage.write_snapshot

    def counted(datastore: str, revision: int, content: str) -> None:
        WRITTEN[0] += 1
        real(datastore, revision, content)

    ds.storage.write_snapshot = counted  # type: ignore[method-assign]


async def main(args: argparse.Namespace) -> None:
    Datastore.snapshot_every_commits = args.every
    with tempfile.TemporaryDirectory(prefix="nfo-bench-snapshot-") as tmp:
        ds = await open_datastore(StateDir(Path(tmp) / "state"), [])
        try:
            s = ds.internal_session("load")
            step = 10_000
            for lo in range(0, args.instances, step):
                await s.edit("running", doc(*(f"nf{k}" for k in range(
                    lo, min(lo + step, args.instances)))), "json")
            await s.close()
            ds.snapshot("running")
            count_snapshots(ds)
            with ds.get("running") as t:
                prints = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    text = t.print("json")
                    prints.append(time.perf_counter() - t0)
            ref = statistics.median(prints) * 1e3
            results: dict[str, list[dict[str, float]]] = {w: [] for w in WAYS}
            for r in range(args.rounds):
                order = list(WAYS) if r % 2 == 0 else list(reversed(WAYS))
                for way in order:
                    res = await run_way(ds, way, f"r{r}{way[0]}", args.commits)
                    results[way].append(res)
                    print(f"[bench] round {r + 1}, {way}: {res['rate']:.0f} commits/s, "
                          f"p99 {res['p99']:.2f} ms, max {res['max']:.1f} ms, "
                          f"stall {res['stall']:.1f} ms", file=sys.stderr)
        finally:
            await ds.close()
    print(f"\n{args.instances:,} nf-instances in running ({len(text):,} bytes as JSON); "
          f"{args.commits} single-entry commits per way and round, a snapshot due every "
          f"{args.every}; {args.rounds} alternating round(s), medians")
    print(f"reference: libyang printing running alone: {ref:.1f} ms\n")
    print(f"{'way':>11}  {'commits/s':>9}  {'p50 ms':>7}  {'p99 ms':>7}  {'max ms':>7}  "
          f"{'longest stall ms':>16}  {'stall / print':>13}  {'snapshots':>9}")
    for way, rs in results.items():
        def med(key: str, rs: list[dict[str, float]] = rs) -> float:
            return statistics.median(x[key] for x in rs)
        print(f"{way:>11}  {med('rate'):>9,.0f}  {med('p50'):>7.2f}  {med('p99'):>7.2f}  "
              f"{med('max'):>7.1f}  {med('stall'):>16.1f}  {med('stall') / ref:>13.2f}  "
              f"{med('snapshots'):>9.0f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--instances", type=int, default=50_000)
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--every", type=int, default=200, help="commits per snapshot")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run (CI)")
    a = ap.parse_args()
    if a.smoke:
        a.instances, a.commits, a.every, a.rounds = 12_000, 60, 20, 1
    asyncio.run(main(a))
