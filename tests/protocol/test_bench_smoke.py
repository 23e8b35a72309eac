"""bench/bench_xml.py keeps running: its seconds-long smoke run exits cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_xml_smoke() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_xml.py"), "--smoke"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "bare expat" in run.stdout
