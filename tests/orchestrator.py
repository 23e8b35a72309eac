"""The orchestrator as `nfo serve` composes it (datastore with its embedded defaults and
the workload manager): in this process, for front-end flow tests that add their own
listener (:func:`orchestrator`), or in a child process to be killed (:class:`Child`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore, start_manager
from nfo.datastore import Datastore
from nfo.workload import WorkloadManager
from tests.waiting import wait_for

CHILD_SCRIPT = Path(__file__).parent / "workload" / "_orchestrator_child.py"


@asynccontextmanager
async def orchestrator(state_path: Path) -> AsyncIterator[tuple[StateDir, Datastore,
                                                                WorkloadManager]]:
    """Start it with fast polling; on exit delete every instance, wait until the
    manager has cleaned up their workloads, and stop."""
    state = StateDir(state_path)
    ds = await open_datastore(state, [])
    mgr = await start_manager(ds, state, poll_interval=0.05, health_interval=0.5)
    try:
        yield state, ds, mgr
    finally:
        async with ds.internal_session("cleanup") as s:
            await s.edit("running", json.dumps({"nfo-instances:nf-instances": {
                "@": {"ietf-netconf:operation": "remove"}}}), "json")
        for _ in range(200):
            await mgr.wait_idle()
            if not mgr._obs:
                break
            await asyncio.sleep(0.05)
        await mgr.stop()
        await ds.close()


class Child:
    """An orchestrator in a child process (``tests/workload/_orchestrator_child.py``) that
    applies the edits of ``plan`` and reports on its stdout, polled from a file."""

    def __init__(self, workdir: Path, state: Path, plan: dict[str, Any]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.out = workdir / "child.out"
        self.err = workdir / "child.err"
        plan_file = workdir / "plan.json"
        plan_file.write_text(json.dumps(plan))
        plan_file.chmod(0o600)  # it may hold a VIM password
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(CHILD_SCRIPT), str(state), str(plan_file)],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines() if self.out.exists() else []

    def said(self, prefix: str) -> str | None:
        """The first line starting with ``prefix``; fails the test if the child died."""
        for line in self.lines():
            if line.startswith(prefix):
                return line
        if self.proc.poll() is not None:
            pytest.fail(f"the child exited ({self.proc.returncode}) before {prefix!r}:\n"
                        f"{self.out.read_text()}\n{self.err.read_text()[-3000:]}")
        return None

    async def expect(self, prefix: str, timeout: float) -> str:
        line: str = await wait_for(lambda: self.said(prefix), timeout,
                                   f"child output {prefix!r}",
                                   lambda: (self.lines(), self.err.read_text()[-2000:]),
                                   every=0.05)
        return line

    def kill(self) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(timeout=30)

    async def died(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert self.proc.returncode is not None, "the child did not die"
        return self.proc.returncode
