"""The live progress of ``nfo instance create --wait`` on a real terminal (tmux), for 20
sim instances coming up over a few seconds: one table updated in place, then a summary."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nfo.client import Client, ClientConfig
from tests.fuzz.server import PASSWORD, ServerProcess

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    with ServerProcess() as srv:
        yield srv


def _pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True, check=True).stdout


def test_create_wait_updates_in_place_and_ends_with_a_summary(
        server: ServerProcess, tmp_path: Path) -> None:
    with Client(ClientConfig(url=server.base, user="admin", password=PASSWORD)) as nfo:
        nfo.vims.add({"name": "slow", "type": "nfo-vim:sim",
                      "sim": {"latency": {"mean": 2500, "jitter": 2000}, "seed": "7"}})
        nfo.catalog.add({"id": "fw", "vim-types": ["nfo-vim:sim"]})
    spec = tmp_path / "many.yaml"
    spec.write_text("".join(f"- {{name: fw-{n:02}, descriptor: fw, vim: slow}}\n"
                            for n in range(20)))
    session = f"nfo-{uuid.uuid4().hex[:8]}"
    cmd = (f"env NFO_URL={shlex.quote(server.base)} NFO_USER=admin "
           f"NFO_PASSWORD={shlex.quote(PASSWORD)} NFO_CONFIG=/nonexistent "
           f"{shlex.quote(sys.executable)} -m nfo instance create -f {shlex.quote(str(spec))} "
           "--wait --timeout 120; echo EXIT=$?; sleep 60")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "40", cmd],
                   check=True)
    snapshots: list[str] = []
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            snap = _pane(session)
            snapshots.append(snap)
            if "EXIT=" in snap:
                break
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    final = snapshots[-1]
    assert "EXIT=0" in final, final
    assert "20 of 20 running" in final
    assert final.count("waiting for running") == 1, final   # one table, redrawn in place
    assert sum(line.split()[1:2] == ["running"] for line in final.splitlines()
               if line.strip().startswith("fw-")) == 20
    mixed = [s for s in snapshots if "initializing" in s and " running" in s
             and "waiting for running" in s]
    assert mixed, "never saw some instances running while others were still coming up"
    assert all(s.count("waiting for running") <= 1 for s in snapshots)
