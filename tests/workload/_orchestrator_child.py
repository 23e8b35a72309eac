"""An orchestrator for test_restart that gets SIGKILLed.

Usage: python _orchestrator_child.py STATE_DIR PLAN_JSON_FILE

Opens the datastore and starts the workload manager on STATE_DIR exactly as
``nfo serve`` does, applies the plan's ``edits`` (RFC 7951 JSON documents, one
edit of running each), prints ``EDITED`` (flushed), optionally waits until every
instance named in ``wait-running`` is running and prints ``RUNNING``, then waits
to be killed.

With ``crash-after-instantiate: N`` the process SIGKILLs itself right after the
N-th ``SimDriver.instantiate`` returned: the VIM has accepted the request but
the manager has not recorded the resource id yet (the worst moment for a crash).
It prints ``CRASH <instance> <resource-id>`` first.  ``crash-before-local-record: N``
does the same in the ``local`` driver after the N-th process was spawned but before
its record file is written.  ``crash-after-device-commit`` kills it right after the
commit that makes a network function's configuration final (``final``) or after its
confirmed commit (``confirmed``), before nfo records it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any


def _install_crash(after: int) -> None:
    from nfo.drivers.sim import SimDriver

    real = SimDriver.instantiate
    count = 0

    async def instantiate(self: Any, req: Any) -> Any:
        nonlocal count
        resp = await real(self, req)
        count += 1
        if count >= after:
            print("CRASH", req.instance, resp.resource_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return resp

    SimDriver.instantiate = instantiate  # type: ignore[method-assign]


def _install_crash_before_record(after: int) -> None:
    from nfo.drivers.local import LocalDriver

    real = LocalDriver._write_record
    count = 0

    def write_record(self: Any, rec: Any) -> None:
        nonlocal count
        count += 1
        if count >= after:
            print("CRASH", rec.instance, rec.resource_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        real(self, rec)

    LocalDriver._write_record = write_record  # type: ignore[method-assign]


def _install_crash_after_commit(which: str) -> None:
    from nfo.device import Device

    real = Device.commit

    async def commit(self: Any, *, confirmed: bool = False, **kw: Any) -> None:
        await real(self, confirmed=confirmed, **kw)
        # "final": after the commit that makes the configuration stay; "confirmed": after
        # the confirmed commit, before nfo has read back and confirmed it
        if confirmed == (which == "confirmed"):
            print("CRASH commit", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    Device.commit = commit  # type: ignore[method-assign]


async def main(state_dir: str, plan_file: str) -> None:
    plan = json.loads(Path(plan_file).read_text())
    if plan.get("crash-after-instantiate"):
        _install_crash(int(plan["crash-after-instantiate"]))
    if plan.get("crash-after-device-commit"):
        _install_crash_after_commit(str(plan["crash-after-device-commit"]))
    if plan.get("crash-before-local-record"):
        _install_crash_before_record(int(plan["crash-before-local-record"]))

    from nfo.cli.moduleset import StateDir
    from nfo.cli.serve import open_datastore, start_manager

    state = StateDir(state_dir)
    ds = await open_datastore(state, [])
    await start_manager(ds, state, **plan.get("options", {}))
    s = ds.internal_session("child")
    for edit in plan.get("edits", []):
        await s.edit("running", json.dumps(edit), "json")
    print("EDITED", flush=True)
    names = plan.get("wait-running") or []
    while names:
        with ds.get("operational", "/nfo-instances:nf-instances") as t:
            text = t.print()
        doc = json.loads(text) if text.strip() else {}
        entries = doc.get("nfo-instances:nf-instances", {}).get("nf-instance", [])
        up = {e["name"] for e in entries if e.get("state", {}).get("oper-status") == "running"}
        if set(names) <= up:
            print("RUNNING", flush=True)
            break
        await asyncio.sleep(0.02)
    await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
