"""The fixed-seed CI subset of ``tools/chaos`` (issue 12, docs/chaos.md).

A real ``nfo serve`` in a subprocess, driven over RESTCONF on 127.0.0.1: bursts of
creates, updates, moves, admin-state toggles and deletes, the server SIGKILLed at random
moments (seeded) and restarted on the same state directory; after every restart every
instance must converge with zero duplicate and zero orphan workloads on the VIM (the sim
VIM's own table, or the local VIM's processes), nothing stuck past its timeout, and the
run must end with empty VIMs and a clean SIGTERM stop.  The long runs are by hand:
``tools/chaos --vim sim|local --instances 1000 --rounds R --seed S``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tools/ is no package of nfo: make the repository root importable however pytest was
# started (``python -m pytest`` has it on sys.path already, the ``pytest`` script not).
ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.chaos_support.run import Chaos, Config  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("vim", "instances", "rounds", "seed"),
                         [("sim", 80, 3, 12), ("local", 45, 3, 12)])
async def test_kill9_chaos_converges_without_duplicates_or_orphans(
        tmp_path: Path, vim: str, instances: int, rounds: int, seed: int) -> None:
    cfg = Config(vim=vim, instances=instances, rounds=rounds, seed=seed, workdir=tmp_path,
                 timeout=8, bad_latency_ms=1500, max_kill_delay=2.0, log=print)
    chaos = Chaos(cfg)
    report = await chaos.run()
    figures = report.figures()
    print(figures)
    assert report.failures == [], "\n".join(report.failures)
    assert figures["kills"] >= rounds + 1
    # every create was sent once: acknowledged, or cut off by a kill (landed or not)
    assert (figures["acknowledged-operations"]["create"]
            + figures["cut-off-operations"].get("create", 0)) == instances
    assert figures["stop-status"] == 0
    assert figures["leftover-processes"] == 0
