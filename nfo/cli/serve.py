"""``nfo serve``: compose the orchestrator with its embedded defaults and run it.

Today that is the datastore over SQLite in the state directory, with the
module set loaded and the demo catalog seeded on first start; the workload
manager and the front ends attach here as they land.  SIGINT and SIGTERM
shut down cleanly: nothing acknowledged is lost either way.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from importlib import resources
from pathlib import Path

from nfo.cli.moduleset import StateDir
from nfo.datastore import Datastore, SqliteStorage
from nfo.schema import Fmt

__all__ = ["open_datastore", "serve"]

log = logging.getLogger("nfo")


async def open_datastore(state: StateDir, yang_dirs: list[Path]) -> Datastore:
    state.ensure()
    schema = state.schema(yang_dirs)
    ds = Datastore.open(schema, SqliteStorage(state.db))
    await ds.start()
    if ds.info("running").revision == 0:
        demo = resources.files("nfo.yang").joinpath("nfo-demo-catalog.json").read_text()
        async with ds.session("nfo") as s:
            await s.edit("running", demo, Fmt.JSON)
        log.info("first start: seeded the local VIM and the demo catalog")
    return ds


async def serve(state: StateDir, yang_dirs: list[Path], *,
                ready: asyncio.Event | None = None) -> None:
    ds = await open_datastore(state, yang_dirs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    info = ds.info("running")
    mods = [m for m in ds.schema.modules() if m.implemented]
    log.info("nfo serving: state %s, %d modules, running at revision %d",
             state.path, len(mods), info.revision)
    print(f"nfo: serving state directory {state.path} (running revision {info.revision}, "
          f"{len(mods)} modules); Ctrl-C to stop", flush=True)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await ds.close()
        print("nfo: stopped", flush=True)
