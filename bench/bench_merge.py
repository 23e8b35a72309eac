"""Merging instance states into the configured instances (the operational datastore's
read of a list): nfo's merge in runs against one libyang ``lyd_merge_siblings`` call.

libyang 2.1 scans, for every source node of a level, an array of the target nodes the
call has matched so far, so one call over n entries of a list costs n².  nfo gives each
call at most ``MERGE_RUN`` children of a crowded node (``nfo.schema.data._merge_into``).
Both ways run in this process on the same trees, alternating; the ratio is what to quote.

Run: ``.venv/bin/python bench/bench_merge.py [--sizes 10000,100000] [--rounds 3]``;
``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from nfo.schema import Fmt, Parse, Schema, Tree
from nfo.schema import data as data_mod

ONE_CALL = 1 << 62


def docs(n: int) -> tuple[str, str]:
    config = {"nfo-instances:nf-instances": {"nf-instance": [
        {"name": f"i{k}", "descriptor": "fw"} for k in range(n)]}}
    states = {"nfo-instances:nf-instances": {"nf-instance": [
        {"name": f"i{k}", "state": {"oper-status": "running", "vim": "sim1",
                                    "vim-resource-id": f"r{k}"}} for k in range(n)]}}
    return json.dumps(config), json.dumps(states)


def timed_merge(schema: Schema, config: str, states: str, run: int) -> float:
    data_mod.MERGE_RUN = run
    with Tree.parse(schema, config, Fmt.JSON, mode=Parse.DATA) as into:
        part = Tree.parse(schema, states, Fmt.JSON, mode=Parse.DATA)
        t = time.perf_counter()
        into.merge(part)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="10000,30000,100000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run (CI)")
    args = ap.parse_args()
    sizes = [2000] if args.smoke else [int(s) for s in args.sizes.split(",")]
    rounds = 1 if args.smoke else args.rounds
    schema = Schema()
    runs = data_mod.MERGE_RUN
    print(f"{'entries':>8} | {'nfo, in runs of ' + str(runs):>22} | "
          f"{'reference: one libyang call':>28} | ratio")
    for n in sizes:
        config, states = docs(n)
        ours, ref = [], []
        for _ in range(rounds):
            ours.append(timed_merge(schema, config, states, runs))
            ref.append(timed_merge(schema, config, states, ONE_CALL))
        a, b = statistics.median(ours), statistics.median(ref)
        print(f"{n:>8,} | {a * 1e3:>19.1f} ms | {b * 1e3:>25.1f} ms | {a / b:.3f}")
    data_mod.MERGE_RUN = runs


if __name__ == "__main__":
    main()
