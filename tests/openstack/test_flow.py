"""The whole flow on a real OpenStack: datastore, workload manager, registry, driver, Nova.

The orchestrator is composed exactly as ``nfo serve`` composes it (``open_datastore``,
``start_manager`` with every registered driver); an operator's edits of running
configure an ``openstack`` VIM account, descriptors with ``openstack`` deployment
data and nf-instances.  Each test checks both sides: operational state in nfo, and
what Nova really holds (listed through an independent openstacksdk connection, by
the ``nfo-owner`` metadata the driver tags servers with).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import installation_id, open_datastore, start_manager
from nfo.datastore import Datastore, Session
from nfo.drivers.openstack import META_INSTANCE, META_OWNER
from nfo.workload import WorkloadManager
from openstack import exceptions as sdk
from tests.orchestrator import Child
from tests.waiting import wait_for

INSTANCES = "/nfo-instances:nf-instances"
OPTIONS = {"poll_interval": 0.25, "health_interval": 5.0, "backoff_base": 0.5,
           "backoff_max": 5.0}
BOOT = 240.0
"""Seconds allowed for a batch of servers to become ACTIVE on the test cloud."""


# -- the cloud side -----------------------------------------------------------------------------


def owned(conn: Any, owner: str) -> dict[str, list[str]]:
    """instance -> ids of the servers Nova holds for it, for servers tagged ``nfo-owner=owner``
    (servers already being deleted are left out)."""
    out: dict[str, list[str]] = {}
    for s in conn.compute.servers(details=True):
        meta = s.metadata or {}
        if meta.get(META_OWNER) != owner or s.task_state == "deleting":
            continue
        out.setdefault(str(meta.get(META_INSTANCE)), []).append(str(s.id))
    return out


def all_owned(conn: Any, owner: str) -> list[str]:
    return [s.id for s in conn.compute.servers(details=True)
            if (s.metadata or {}).get(META_OWNER) == owner]


def purge(conn: Any, owner: str | None, timeout: float = 180) -> None:
    """Delete every server of ``owner`` a failed test may have left; wait until gone."""
    if not owner:
        return
    for rid in all_owned(conn, owner):
        with contextlib.suppress(sdk.SDKException):
            conn.compute.delete_server(rid, ignore_missing=True)
    deadline = time.monotonic() + timeout
    while all_owned(conn, owner) and time.monotonic() < deadline:
        time.sleep(0.5)


def vim_doc(cloud: Any) -> dict[str, Any]:
    return {"name": "os1", "type": "nfo-vim:openstack", "openstack": {
        "auth-url": cloud.auth_url, "username": cloud.username, "password": cloud.password,
        "project-name": cloud.project_name, "project-domain": cloud.project_domain,
        "user-domain": cloud.user_domain, "region": cloud.region}}


def descriptor(cloud: Any, desc_id: str, **deployment: Any) -> dict[str, Any]:
    dep = {"image": cloud.image, "flavor": cloud.flavor, "network": [{"name": cloud.network}],
           "user-data": "#cloud-config\nhostname: {instance}\n", **deployment}
    return {"id": desc_id, "vim-types": ["nfo-vim:openstack"], "instantiation-timeout": 600,
            "compute": {"vcpus": 1, "memory-mb": 64, "disk-gb": 0}, "openstack": dep}


def setup_doc(cloud: Any, *descriptors: dict[str, Any]) -> dict[str, Any]:
    return {"nfo-vim:vims": {"vim": [vim_doc(cloud)]},
            "nfo-catalog:catalog": {"nf-descriptor": list(descriptors)}}


def instances_doc(names: list[str], desc: str = "vnf") -> dict[str, Any]:
    return {"nfo-instances:nf-instances": {"nf-instance": [
        {"name": n, "descriptor": desc} for n in names]}}


# -- the orchestrator side ------------------------------------------------------------------------


class Orchestrator:
    """One orchestrator (datastore + workload manager) on a state directory."""

    def __init__(self, path: Path) -> None:
        self.state = StateDir(path)
        self.ds: Datastore | None = None
        self.mgr: WorkloadManager | None = None
        self.s: Session | None = None

    async def open(self, manager: bool = True) -> Orchestrator:
        self.ds = await open_datastore(self.state, [])
        if manager:
            self.mgr = await start_manager(self.ds, self.state, **OPTIONS)
        self.s = self.ds.internal_session("operator")
        return self

    @property
    def owner(self) -> str:
        assert self.ds is not None
        return installation_id(self.ds)

    async def close(self) -> None:
        if self.mgr is not None:
            await self.mgr.stop()
            self.mgr = None
        if self.s is not None:
            await self.s.close()
            self.s = None
        if self.ds is not None:
            await self.ds.close()
            self.ds = None

    async def edit(self, doc: dict[str, Any] | str, fmt: str = "json") -> None:
        assert self.s is not None
        await self.s.edit("running", doc if isinstance(doc, str) else json.dumps(doc), fmt)

    async def delete(self, *names: str) -> None:
        items = "".join(f'<nf-instance nc:operation="delete"><name>{n}</name></nf-instance>'
                        for n in names)
        await self.edit('<nf-instances xmlns="urn:nfo:instances" xmlns:nc="urn:ietf:params:xml'
                        f':ns:netconf:base:1.0">{items}</nf-instances>', "xml")

    def states(self) -> dict[str, dict[str, Any]]:
        """name -> operational ``state`` container, for every instance that has one."""
        assert self.ds is not None
        with self.ds.get("operational", INSTANCES) as t:
            text = t.print()
        doc = json.loads(text) if text.strip() else {}
        return {e["name"]: e["state"]
                for e in doc.get("nfo-instances:nf-instances", {}).get("nf-instance", [])
                if "state" in e}

    def status(self, name: str) -> str | None:
        return self.states().get(name, {}).get("oper-status")

    async def wait_status(self, names: list[str], status: str,
                          timeout: float = BOOT) -> dict[str, dict[str, Any]]:
        def probe() -> dict[str, dict[str, Any]] | None:
            st = self.states()
            return st if all(st.get(n, {}).get("oper-status") == status for n in names) else None

        def show() -> dict[str, str | None]:
            st = self.states()
            return {n: " ".join(str(st.get(n, {}).get(k)) for k in ("oper-status", "reason"))
                    for n in names if st.get(n, {}).get("oper-status") != status}

        got: dict[str, dict[str, Any]] = await wait_for(
            probe, timeout, f"{len(names)} instance(s) to be {status}", show, every=0.2)
        return got

    async def wait_gone(self, names: list[str], timeout: float = BOOT) -> None:
        await wait_for(lambda: not (set(names) & set(self.states())), timeout,
                       "operational state to go", lambda: sorted(set(names) & set(self.states())),
                       every=0.1)


@pytest.fixture
def nova(openstack_cloud: Any) -> Iterator[Any]:
    c = openstack_cloud.connection()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
async def orch(tmp_path: Path, nova: Any) -> AsyncIterator[Orchestrator]:
    o = Orchestrator(tmp_path / "state")
    try:
        yield o
    finally:
        await o.close()
        await asyncio.to_thread(purge, nova, _owner_of(o.state))


def _owner_of(state: StateDir) -> str | None:
    if not state.db.exists():
        return None
    con = sqlite3.connect(state.db)
    try:
        row = con.execute("SELECT value FROM meta WHERE key='installation-id'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()
    return None if row is None else str(row[0])


@pytest.fixture
def nowhere_flavor(nova: Any) -> Iterator[str]:
    """A flavor requiring a trait no compute host has: Nova accepts the server, then the
    scheduler fails it (ERROR, fault "No valid host was found")."""
    flavor = nova.compute.create_flavor(name=f"nfo-nowhere-{uuid.uuid4().hex[:6]}", ram=64,
                                        vcpus=1, disk=0)
    nova.compute.create_flavor_extra_specs(flavor, {"trait:CUSTOM_NFO_NOWHERE": "required"})
    try:
        yield str(flavor.name)
    finally:
        nova.compute.delete_flavor(flavor.id, ignore_missing=True)


@pytest.fixture
def later_flavor(nova: Any) -> Iterator[tuple[str, str]]:
    """(flavor, trait): a flavor requiring a trait of this run that no compute host has
    until the test gives it one through Placement; removed again afterwards."""
    tag = uuid.uuid4().hex[:6]
    trait = f"CUSTOM_NFO_LATER_{tag.upper()}"
    flavor = nova.compute.create_flavor(name=f"nfo-later-{tag}", ram=64, vcpus=1, disk=0)
    nova.compute.create_flavor_extra_specs(flavor, {f"trait:{trait}": "required"})
    nova.placement.create_trait(trait)
    try:
        yield str(flavor.name), trait
    finally:
        nova.compute.delete_flavor(flavor.id, ignore_missing=True)
        with contextlib.suppress(sdk.SDKException):
            _provider_traits(nova, lambda traits: [t for t in traits if t != trait])


def _provider_traits(conn: Any, change: Any) -> None:
    """Set every resource provider's traits to ``change(its traits)`` (Placement API)."""
    mv = "1.6"
    rps = conn.placement.get("/resource_providers", microversion=mv).json()
    for rp in rps["resource_providers"]:
        url = f"/resource_providers/{rp['uuid']}/traits"
        cur = conn.placement.get(url, microversion=mv).json()
        r = conn.placement.put(url, microversion=mv, json={
            "traits": change(cur["traits"]),
            "resource_provider_generation": cur["resource_provider_generation"]})
        assert r.status_code == 200, r.text


# -- the flow ----------------------------------------------------------------------------------


async def test_running_failed_and_deleted(openstack_cloud: Any, orch: Orchestrator, nova: Any,
                                          nowhere_flavor: str) -> None:
    await orch.open()
    await orch.edit(setup_doc(openstack_cloud, descriptor(openstack_cloud, "vnf"),
                              {**descriptor(openstack_cloud, "big", flavor=nowhere_flavor),
                               "instantiation-timeout": 20},
                              descriptor(openstack_cloud, "ghost", image="no-such-image")))
    await orch.edit({"nfo-instances:nf-instances": {"nf-instance": [
        {"name": "web1", "descriptor": "vnf"}, {"name": "big1", "descriptor": "big"},
        {"name": "miss1", "descriptor": "ghost"}]}})
    owner = orch.owner

    st = (await orch.wait_status(["web1"], "running"))["web1"]
    assert st["vim"] == "os1" and st["driver"] == "openstack"
    assert owned(nova, owner).get("web1") == [st["vim-resource-id"]]
    assert nova.compute.get_server(st["vim-resource-id"]).status == "ACTIVE"

    # no host ever: retried (each failed server removed) until the instantiation timeout
    big = (await orch.wait_status(["big1"], "failed"))["big1"]
    assert "No valid host" in big["reason"], big
    assert f"after {big['attempts']} attempt(s)" in big["reason"] and big["attempts"] >= 2, big
    miss = (await orch.wait_status(["miss1"], "failed"))["miss1"]
    assert "image 'no-such-image' not found in Glance" in miss["reason"], miss
    # the failed server was removed from Nova; only web1 remains
    await wait_for(lambda: set(owned(nova, owner)) == {"web1"}, 60, "only web1 in Nova",
                   lambda: owned(nova, owner), every=0.1)

    await orch.delete("web1", "big1", "miss1")
    await orch.wait_gone(["web1", "big1", "miss1"])
    assert all_owned(nova, owner) == []  # terminate returned after Nova dropped the server
    with pytest.raises(sdk.NotFoundException):
        nova.compute.get_server(st["vim-resource-id"])


async def test_twenty_in_parallel(openstack_cloud: Any, orch: Orchestrator, nova: Any) -> None:
    names = [f"par{i:02d}" for i in range(20)]
    await orch.open()
    await orch.edit(setup_doc(openstack_cloud, descriptor(openstack_cloud, "vnf")))
    owner = orch.owner
    t0 = time.monotonic()
    await orch.edit(instances_doc(names))
    states = await orch.wait_status(names, "running", timeout=2 * BOOT)
    up = time.monotonic() - t0
    servers = owned(nova, owner)
    assert sorted(servers) == names
    assert all(servers[n] == [states[n]["vim-resource-id"]] for n in names), servers
    t1 = time.monotonic()
    await orch.delete(*names)
    await orch.wait_gone(names, timeout=2 * BOOT)
    print(f"20 instances: running after {up:.1f}s, deleted after {time.monotonic() - t1:.1f}s")
    left = [(s.id, s.status, s.task_state, s.metadata) for s in nova.compute.servers(details=True)
            if (s.metadata or {}).get(META_OWNER) == owner]
    assert left == []


async def test_servers_changed_behind_nfos_back_are_seen_by_one_list(
        openstack_cloud: Any, orch: Orchestrator, nova: Any) -> None:
    """Running instances are checked by one list of this installation's servers a health
    interval: a server deleted behind nfo's back is replaced, one stopped is failed with
    Nova's word for it.  Asked one by one at this health_rate, each would wait 200 s."""
    await orch.open()
    assert orch.mgr is not None
    orch.mgr.health_rate = 0.01
    await orch.edit(setup_doc(openstack_cloud, descriptor(openstack_cloud, "vnf")))
    await orch.edit(instances_doc(["gone1", "stop1"]))
    st = await orch.wait_status(["gone1", "stop1"], "running")
    old = st["gone1"]["vim-resource-id"]
    await asyncio.to_thread(nova.compute.delete_server, old)
    await asyncio.to_thread(nova.compute.stop_server, st["stop1"]["vim-resource-id"])
    stopped = (await orch.wait_status(["stop1"], "failed", timeout=60))["stop1"]
    assert "stopped outside nfo" in stopped["reason"], stopped
    again = await wait_for(
        lambda: (s := orch.states().get("gone1", {})).get("oper-status") == "running"
        and s.get("vim-resource-id") not in (None, old) and s,
        BOOT, "gone1 running on a new server", lambda: orch.states().get("gone1"), every=0.2)
    assert owned(nova, orch.owner).get("gone1") == [again["vim-resource-id"]]


async def test_no_valid_host_is_retried_until_a_host_qualifies(
        openstack_cloud: Any, orch: Orchestrator, nova: Any,
        later_flavor: tuple[str, str]) -> None:
    flavor, trait = later_flavor
    await orch.open()
    await orch.edit(setup_doc(openstack_cloud, descriptor(openstack_cloud, "later",
                                                          flavor=flavor)))
    await orch.edit(instances_doc(["late1"], "later"))
    owner = orch.owner

    def retrying() -> dict[str, Any] | None:
        st = orch.states().get("late1", {})
        return st if st.get("next-retry") and st.get("attempts", 0) >= 2 else None

    st = await wait_for(retrying, BOOT, "a second attempt after Nova found no host",
                        lambda: orch.states().get("late1"), every=0.1)
    assert st["oper-status"] == "initializing", st
    assert st["reason"].startswith("temporary: Nova: server in ERROR: No valid host"), st
    # each failed server was removed before the next attempt (which may be under way)
    assert [s.id for s in nova.compute.servers(details=True)
            if (s.metadata or {}).get(META_OWNER) == owner and s.status == "ERROR"] == []
    _provider_traits(nova, lambda traits: [*traits, trait])  # the host qualifies now

    st = (await orch.wait_status(["late1"], "running"))["late1"]
    assert st["attempts"] >= 3 and "reason" not in st, st
    assert all_owned(nova, owner) == [st["vim-resource-id"]]
    await orch.delete("late1")
    await orch.wait_gone(["late1"])
    assert all_owned(nova, owner) == []


# -- kill -9 of the orchestrator during boots, then a restart ------------------------------------


async def test_kill9_during_boots_then_restart(openstack_cloud: Any, orch: Orchestrator,
                                               nova: Any, children: list[Child],
                                               tmp_path: Path) -> None:
    names = [f"k{i:02d}" for i in range(12)]
    plan = {"options": OPTIONS,
            "edits": [setup_doc(openstack_cloud, descriptor(openstack_cloud, "vnf")),
                      instances_doc(names)]}
    child = Child(tmp_path / "child", orch.state.path, plan)
    children.append(child)
    await child.expect("EDITED", 60)
    owner = _owner_of(orch.state)
    assert owner

    # kill -9 as soon as Nova has accepted the first servers: the rest are mid-flight
    await wait_for(lambda: owned(nova, owner), 120, "a first server in Nova", every=0.05)
    assert child.kill() == -signal.SIGKILL
    before = {s.id: s.status for s in nova.compute.servers(details=True)
              if (s.metadata or {}).get(META_OWNER) == owner}
    print(f"killed with {len(before)} of {len(names)} servers in Nova: "
          f"{sorted(before.values())}")
    assert len(before) < len(names) or "BUILD" in before.values()

    # while nfo is down: the operator deletes a third of the instances ...
    gone = names[::3]
    await orch.open(manager=False)
    await orch.delete(*gone)
    await orch.close()
    # ... and Nova holds a server of this installation nobody configured
    ghost = nova.compute.create_server(
        name=f"nfo-ghost-{owner}",
        image_id=nova.image.find_image(openstack_cloud.image, ignore_missing=False).id,
        flavor_id=nova.compute.find_flavor(openstack_cloud.flavor, ignore_missing=False).id,
        networks=[{"uuid": nova.network.find_network(openstack_cloud.network,
                                                      ignore_missing=False).id}],
        metadata={META_INSTANCE: "ghost", META_OWNER: owner})

    await orch.open()
    keep = [n for n in names if n not in gone]

    def converged() -> bool:
        servers = owned(nova, owner)
        return (sorted(servers) == keep and all(len(v) == 1 for v in servers.values())
                and all(orch.status(n) == "running" for n in keep)
                and not set(gone) & set(orch.states()))

    await wait_for(converged, 2 * BOOT, "convergence after the restart",
                   lambda: (owned(nova, owner), {n: orch.status(n) for n in names}), every=0.5)
    states = orch.states()
    servers = owned(nova, owner)
    for n in keep:  # exactly one server each, and it is the one nfo recorded
        assert servers[n] == [states[n]["vim-resource-id"]], (n, servers[n], states[n])
    assert not set(gone) & set(states)

    def ghost_gone() -> bool:  # removed, not just hidden
        try:
            nova.compute.get_server(ghost.id)
        except sdk.NotFoundException:
            return True
        return False

    await wait_for(ghost_gone, 60, "the ghost server to be deleted", every=0.5)

    await orch.delete(*keep)
    await orch.wait_gone(keep)
    assert all_owned(nova, owner) == []
