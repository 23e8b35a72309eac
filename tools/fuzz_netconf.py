#!/usr/bin/env python3
"""Long run of the NETCONF fuzzer (tests/fuzz/netconf_fuzz.py) against ``nfo serve``.

Why a tool and not a test: the long run (100,000 requests and more) takes far
longer than CI allows; CI runs a fixed-seed subset (tests/netconf/
test_fuzz_grammar.py).  It prints the figures (cases, cases/s, failures, the
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

from tests.fuzz.netconf_fuzz import run
from tests.fuzz.report import coverage_report, finish
from tests.fuzz.server import ServerProcess


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--coverage", type=Path, help="coverage data directory")
    args = p.parse_args()
    data = None
    if args.coverage is not None:
        args.coverage.mkdir(parents=True, exist_ok=True)
        data = args.coverage / ".coverage"
    started = time.monotonic()
    server = ServerProcess(coverage_file=data)
    server.start()
    try:
        stats, failures = run(args.cases, args.seed, server)
    finally:
        code = server.stop()
    elapsed = time.monotonic() - started
    print(f"NETCONF fuzz: seed {args.seed}, {stats.cases} cases in {elapsed:.0f} s "
          f"({stats.cases / elapsed:.1f} cases/s), {stats.rounds} rounds, {stats.sessions} "
          f"sessions ({stats.closed_on_purpose} closed by the server as required), writer "
          f"operations applied {stats.applied}, refused {stats.refused}")
    if data is not None:
        print(coverage_report(args.coverage))
    return finish(server, code, failures)


if __name__ == "__main__":
    sys.exit(main())
