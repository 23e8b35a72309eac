"""The orchestrator as `nfo serve` composes it (datastore with its embedded defaults and
the workload manager), for front-end flow tests that add their own listener."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore, start_manager
from nfo.datastore import Datastore
from nfo.workload import WorkloadManager


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
        async with ds.session("cleanup") as s:
            await s.edit("running", json.dumps({"nfo-instances:nf-instances": {
                "@": {"ietf-netconf:operation": "remove"}}}), "json")
        for _ in range(200):
            await mgr.wait_idle()
            if not mgr._obs:
                break
            await asyncio.sleep(0.05)
        await mgr.stop()
        await ds.close()
