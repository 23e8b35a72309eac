"""The design brief's flow over NETCONF, end to end, as `nfo serve` composes it.

A real asyncssh listener, the real workload manager with the sim and local
drivers, and ncclient as the operator's client: configure a VIM and a
descriptor, create an nf-instance with edit-config (directly and through the
candidate), watch nf-instance-state-change notifications, read the operational
state with get, and delete the instance again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ncclient import manager
from ncclient.transport import session as nc_session

from nfo.datastore import Datastore
from nfo.netconf.messages import NC_NS
from nfo.netconf.server import NetconfServer, start_netconf
from nfo.workload import WorkloadManager
from tests.access import admins
from tests.netutil import free_port, udp_roundtrip
from tests.orchestrator import orchestrator

nc_session.TICK = 0.001

INST = "urn:nfo:instances"
PASSWORD = "flow-password-1"
# xmlns:v sits on <vims>: ncclient (lxml) drops it from an element whose ancestor already
# binds urn:nfo:vim, and a prefix is resolved where the value stands (RFC 7950 9.10.3).
SIM_SETUP = (
    f'<config xmlns="{NC_NS}">'
    '<vims xmlns="urn:nfo:vim" xmlns:v="urn:nfo:vim"><vim><name>sim1</name>'
    '<type>v:sim</type>'
    "<sim><latency><mean>150</mean><jitter>0</jitter></latency></sim></vim></vims>"
    '<catalog xmlns="urn:nfo:catalog"><nf-descriptor><id>fw</id>'
    '<vim-types xmlns:v="urn:nfo:vim">v:sim</vim-types></nf-descriptor></catalog>'
    "</config>")


def instance_xml(name: str, descriptor: str, op: str = "", params: str = "") -> str:
    attr = f' xmlns:nc="{NC_NS}" nc:operation="{op}"' if op else ""
    return (f'<config xmlns="{NC_NS}"><nf-instances xmlns="{INST}"><nf-instance{attr}>'
            f"<name>{name}</name><descriptor>{descriptor}</descriptor>{params}"
            "</nf-instance></nf-instances></config>")


class Env:
    def __init__(self, ds: Datastore, mgr: WorkloadManager, srv: NetconfServer) -> None:
        self.ds = ds
        self.mgr = mgr
        self.srv = srv

    def connect(self) -> Any:
        return manager.connect(host="127.0.0.1", port=self.srv.port, username="operator",
                               password=PASSWORD, hostkey_verify=False, look_for_keys=False,
                               allow_agent=False, timeout=10)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with orchestrator(tmp_path / "state") as (state, ds, mgr):
        users = await admins(ds, ("operator", PASSWORD))
        srv = await start_netconf(ds, users, "127.0.0.1", 0, state.path / "ssh")
        try:
            yield Env(ds, mgr, srv)
        finally:
            await srv.stop()


def state_of(m: Any, name: str) -> dict[str, str]:
    flt = (f'<nf-instances xmlns="{INST}"><nf-instance><name>{name}</name><state/>'
           "</nf-instance></nf-instances>")
    data = m.get(("subtree", flt)).data_ele
    st = data.find(f"{{{INST}}}nf-instances/{{{INST}}}nf-instance/{{{INST}}}state")
    if st is None:
        return {}
    return {el.tag.split("}", 1)[1]: (el.text or "") for el in st}


async def wait_status(m: Any, name: str, want: str, timeout: float = 15) -> dict[str, str]:
    last: dict[str, str] = {}
    for _ in range(int(timeout / 0.05)):
        last = await asyncio.to_thread(state_of, m, name)
        if last.get("oper-status") == want:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never reached {want}; last state {last}")


async def state_changes(m: Any, name: str, until: str) -> list[str]:
    seen: list[str] = []
    while until not in seen:
        n = await asyncio.to_thread(m.take_notification, True, 10)
        assert n is not None, f"no state change after {seen}"
        ev = n.notification_ele.find(f"{{{INST}}}nf-instance-state-change")
        if ev is not None and ev.findtext(f"{{{INST}}}name") == name:
            seen.append(str(ev.findtext(f"{{{INST}}}new-status")))
    return seen


async def test_sim_instance_over_netconf(env: Env) -> None:
    m = await asyncio.to_thread(env.connect)
    try:
        await asyncio.to_thread(m.edit_config, target="running", config=SIM_SETUP)
        await asyncio.to_thread(m.create_subscription, filter=(
            "subtree", f'<nf-instance-state-change xmlns="{INST}"/>'))
        await asyncio.to_thread(m.edit_config, target="running",
                                config=instance_xml("a", "fw", "create"))
        first = await asyncio.to_thread(state_of, m, "a")
        assert first["oper-status"] in ("initializing", "running")
        assert first["driver"] == "sim" and first["vim"] == "sim1"
        assert await state_changes(m, "a", "running") == ["initializing", "running"]
        st = await wait_status(m, "a", "running")
        assert st["vim-resource-id"].startswith("sim-")
        await asyncio.to_thread(m.edit_config, target="running",
                                config=instance_xml("a", "fw", "delete"))
        for _ in range(200):
            if not await asyncio.to_thread(state_of, m, "a"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the operational entry of a deleted instance stayed")
    finally:
        await asyncio.to_thread(m.close_session)


async def test_local_instance_through_the_candidate(env: Env) -> None:
    port = free_port()
    params = f"<parameter><name>port</name><value>{port}</value></parameter>"
    m = await asyncio.to_thread(env.connect)
    try:
        await asyncio.to_thread(m.lock, "candidate")
        await asyncio.to_thread(m.edit_config, target="candidate",
                                config=instance_xml("echo", "udp-echo", params=params))
        assert not await asyncio.to_thread(state_of, m, "echo")  # nothing before commit
        await asyncio.to_thread(m.commit)
        await asyncio.to_thread(m.unlock, "candidate")
        st = await wait_status(m, "echo", "running")
        assert st["driver"] == "local"
        assert await udp_roundtrip(port, b"over netconf", timeout=2) == b"over netconf"
        await asyncio.to_thread(m.edit_config, target="running",
                                config=instance_xml("echo", "udp-echo", "delete"))
        for _ in range(200):
            if await udp_roundtrip(port, b"x", timeout=0.1) is None:
                break
        else:
            raise AssertionError("the local NF still answers after its instance was deleted")
    finally:
        await asyncio.to_thread(m.close_session)
