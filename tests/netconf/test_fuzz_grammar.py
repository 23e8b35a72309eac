"""The NETCONF fuzzer's fixed-seed subset (the long run is tools/fuzz_netconf.py):
grammar-made, mutated and randomly framed messages over interleaving SSH sessions
to a real ``nfo serve`` (tests/fuzz/netconf_fuzz.py).

What fails this test: a hang, a reply that is not well-formed or carries another
message's id, an internal error, a server that dies or logs a traceback or ERROR.
Differences from the oracle model are reported but do not fail it yet: its NETCONF
edit semantics still have known gaps (docs/robustness.md, "Open items")."""

from __future__ import annotations

import warnings

from tests.fuzz.netconf_fuzz import run
from tests.fuzz.server import ServerProcess

SEED = 20261205
_MODEL = ("the model", "differs from the model", "Channel not open")


def test_netconf_fuzz_fixed_seed() -> None:
    server = ServerProcess()
    server.start()
    try:
        stats, failures = run(1200, SEED, server, log=lambda _: None, candidate_edits=False)
    finally:
        code = server.stop()
    protocol = [f for f in failures if not any(m in f for m in _MODEL)]
    assert not protocol, "\n\n".join(f[:5000] for f in protocol)
    for f in failures:
        warnings.warn(f"oracle difference (not yet triaged): {f[:2000]}", stacklevel=1)
    assert stats.cases >= 1200
    assert code == 0
    assert server.bad_log_lines() == []
