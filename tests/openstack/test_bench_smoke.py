"""bench/bench_openstack.py keeps running: its short ``--smoke`` run, on this test session's
cloud (``--cloud``: used as it is, never started or stopped by the script), exits cleanly
and prints its tables.  Figures are never checked."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from tests.openstack.cloud import OpenStackCloud

ROOT = Path(__file__).resolve().parents[2]


def test_bench_openstack_smoke(openstack_cloud: OpenStackCloud, tmp_path: Path) -> None:
    facts = tmp_path / "cloud.json"
    facts.write_text(json.dumps(dataclasses.asdict(openstack_cloud)))
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_openstack.py"), "--smoke",
         "--cloud", str(facts)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(run.stdout)  # the tables, for pytest -rP
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "nfo overhead per instantiation" in run.stdout, run.stdout[-2000:]
    assert "throughput: N instances in one edit" in run.stdout, run.stdout[-2000:]
