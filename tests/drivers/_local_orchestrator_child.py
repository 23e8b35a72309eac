"""An "orchestrator" for test_local that gets SIGKILLed: starts one udp-echo NF, then waits.

Usage: python _local_orchestrator_child.py STATE_DIR OWNER INSTANCE PORT

Builds a ``LocalDriver`` on STATE_DIR with owner tag OWNER, instantiates the demo
``udp-echo`` NF as INSTANCE on UDP port PORT, waits for its final status and
prints ``READY <resource-id>`` (or ``FAILED <reason>``), flushed, then sleeps
until killed.  The parent SIGKILLs it and adopts the NF that outlived it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from nfo.drivers.local import LocalDriver
from nfo.registry.protocol import (
    ComputeNeeds,
    DriverContext,
    InstantiateRequest,
    Status,
    VimAccount,
    WorkloadState,
)


async def main(state_dir: str, owner: str, instance: str, port: str) -> None:
    driver = LocalDriver(VimAccount("local", "nfo-vim:local", {"max-processes": 4}),
                         DriverContext(Path(state_dir), owner))
    final: asyncio.Future[Status] = asyncio.get_running_loop().create_future()

    def on_final(rid: str, st: Status) -> None:
        if not final.done():
            final.set_result(st)

    driver.on_final(on_final)
    deployment = {
        "command": ["{python}", "-m", "nfo.drivers.local.udp_echo", "--port", "{param:port}"],
        "readiness-probe": {"udp": {"port": "{param:port}", "payload": "nfo-probe"},
                            "interval-ms": 50},
    }
    resp = await driver.instantiate(InstantiateRequest(
        instance, "udp-echo", deployment, {"port": port}, ComputeNeeds(), 30.0))
    st = await asyncio.wait_for(final, 20)
    if st.state is WorkloadState.RUNNING:
        print("READY", resp.resource_id, flush=True)
    else:
        print("FAILED", st.reason.replace("\n", " | "), flush=True)
    await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
