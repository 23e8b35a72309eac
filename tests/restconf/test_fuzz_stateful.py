"""The RESTCONF fuzzer's fixed-seed subset (the long run is tools/fuzz_restconf.py):
a Hypothesis state machine of requests against a real ``nfo serve``, running
compared with the oracle model after every step (tests/fuzz/restconf_fuzz.py)."""

from __future__ import annotations

from tests.fuzz.restconf_fuzz import run
from tests.fuzz.server import ServerProcess

SEED = 20261205


def test_restconf_fuzz_fixed_seed() -> None:
    server = ServerProcess()
    server.start()
    try:
        stats, failures = run(1200, SEED, server, steps=30, examples_per_batch=10,
                              log=lambda _: None)
    finally:
        code = server.stop()
    assert not failures, "\n\n".join(f.message[:5000] for f in failures)
    assert stats.cases >= 1200 and stats.writes_ok > 50
    assert code == 0
    assert server.bad_log_lines() == []
