"""Every bench script keeps running: each one's seconds-long ``--smoke`` run exits cleanly
and prints its table.  Figures are never checked (machines are shared and noisy).

bench/bench_openstack.py needs a real OpenStack control plane: its smoke run is in
tests/openstack/test_bench_smoke.py, in the OpenStack tier.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# script -> a line of its table's header
SCRIPTS = {
    "bench_datastore.py": "N instances in running",
    "bench_workload.py": "added latency, one instance at a time",
    "bench_bulk_edit.py": "reference: libyang parse+validate",
    "bench_xml.py": "bare expat",
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_smoke(script: str) -> None:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert SCRIPTS[script] in run.stdout, run.stdout[-2000:]
