#!/usr/bin/env python3
"""Long run of the RESTCONF fuzzer (tests/fuzz/restconf_fuzz.py) against ``nfo serve``.

Why a tool and not a test: the long run (100,000 requests and more) takes far
longer than CI allows; CI runs a fixed-seed subset (tests/restconf/
test_fuzz_stateful.py).  It prints the figures (cases, cases/s, failures, the
server's RSS) and, with ``--coverage DIR``, runs the server under ``coverage
run`` and reports line coverage of the protocol packages.  Exit status 1 when
anything failed: a failed invariant, a server that died or did not stop
cleanly, or a traceback or ERROR in the server's log.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz.report import coverage_report, finish
from tests.fuzz.restconf_fuzz import run
from tests.fuzz.server import ServerProcess


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--steps", type=int, default=50, help="requests per example")
    p.add_argument("--coverage", type=Path, help="coverage data directory")
    p.add_argument("--no-shrink", action="store_true")
    args = p.parse_args()
    data = None
    if args.coverage is not None:
        args.coverage.mkdir(parents=True, exist_ok=True)
        data = args.coverage / ".coverage"
    started = time.monotonic()
    server = ServerProcess(coverage_file=data)
    server.start()
    try:
        stats, failures = run(args.cases, args.seed, server, steps=args.steps,
                              shrink=not args.no_shrink)
    finally:
        code = server.stop()
    elapsed = time.monotonic() - started
    print(f"RESTCONF fuzz: seed {args.seed}, {stats.cases} cases in {elapsed:.0f} s "
          f"({stats.cases / elapsed:.1f} cases/s), writes applied {stats.writes_ok}, "
          f"refused {stats.writes_refused}, statuses {dict(sorted(stats.statuses.items()))}")
    if data is not None:
        print(coverage_report(args.coverage))
    return finish(server, code, [f.message for f in failures])


if __name__ == "__main__":
    sys.exit(main())
