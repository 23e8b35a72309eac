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
    "bench_netconf.py": "single-entry edit-config at 300 entries",
    "bench_restconf.py": "requests per second (median of rounds)",
    "bench_nacm.py": "user 'noc' under 100 rules vs enable-nacm false",
    "bench_load.py": "NETCONF sessions and",
    "bench_logins.py": "passwords hashed per second (server side)",
    "bench_memory.py": "resident memory of nfo serve",
    "bench_writes.py": "reference: SQLite alone, one durable commit at a time",
    "bench_gc.py": "asked for in one edit-config (NETCONF)",
    "bench_netconf_read.py": "this / asyncssh echo of a same-sized reply",
    "bench_million.py": "restart to serving",
    "bench_notifications.py": "stream list read (describe)",
    "bench_ui_api.py": "values of nf-instance=<new>/vim (noc, rules)",
    "bench_paging.py": "reference: GET the whole list",
    "bench_nfconfig.py": "write to in-sync, one NF (median)",
    "bench_snapshot.py": "reference: libyang printing running alone",
    "bench_merge.py": "reference: one libyang call",
    "bench_flood.py": "a second session reads one entry every 20 ms",
    "bench_bulk_instances.py": "nf-instances in edit-configs of",
    "bench_replicas.py": "reference: plain etcd puts",
    "bench_health.py": "listing / one-by-one: CPU",
}
AB = ("bench_flood.py", "bench_gc.py", "bench_memory.py", "bench_netconf.py",
      "bench_netconf_read.py", "bench_notifications.py", "bench_restconf.py", "bench_writes.py")
"""Scripts with ``--against PYTHON`` (A/B between builds): smoke-run against this build too."""


def smoke(script: str, *extra: str) -> str:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke", *extra],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert SCRIPTS[script] in run.stdout, run.stdout[-2000:]
    return run.stdout


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_smoke(script: str) -> None:
    smoke(script)


@pytest.mark.parametrize("script", AB)
def test_smoke_against_another_build(script: str) -> None:
    out = smoke(script, "--against", sys.executable)
    assert "other: " in out and "this/other" in out, out[-2000:]


def test_smoke_writes_of_plain_entries() -> None:
    out = smoke("bench_writes.py", "--list", "entry")
    assert "nfo-bench entries in running" in out and "MISMATCH" not in out, out[-2000:]
