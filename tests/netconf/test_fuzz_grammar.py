"""The NETCONF fuzzer's fixed-seed subset (the long run is tools/fuzz_netconf.py):
grammar-made, mutated and randomly framed messages over interleaving SSH sessions
to a real ``nfo serve`` (tests/fuzz/netconf_fuzz.py).

What fails this test: a hang, a reply that is not well-formed or carries another
message's id, an internal error, an outcome or a datastore content (running and the
candidate) other than the model's, a server that dies or logs a traceback or ERROR."""

from __future__ import annotations

from tests.fuzz.netconf_fuzz import run
from tests.fuzz.server import ServerProcess

SEED = 20261205


def test_netconf_fuzz_fixed_seed() -> None:
    server = ServerProcess()
    server.start()
    try:
        stats, failures = run(1200, SEED, server, log=lambda _: None)
    finally:
        code = server.stop()
    assert not failures, "\n\n".join(f[:5000] for f in failures)
    assert stats.cases >= 1200
    assert code == 0
    assert server.bad_log_lines() == []
