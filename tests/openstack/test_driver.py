"""The ``openstack`` driver alone against a real OpenStack (``tools/openstack``).

No fakes: keystone, glance, neutron, placement and nova (with nova's fake virt
driver on the compute side) run on 127.0.0.1; the ``openstack_cloud`` fixture
(tests/openstack/conftest.py) gives the connection facts and an openstacksdk
connection used to look at the cloud independently of the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from nfo.drivers.openstack import META_INSTANCE, META_OWNER, OpenStackDriver
from nfo.registry.protocol import (
    ComputeNeeds,
    DriverContext,
    InstantiateRequest,
    PermanentError,
    Status,
    TemporaryError,
    VimAccount,
    WorkloadState,
)
from openstack import exceptions as sdk

BOOT_TIMEOUT = 180.0


def vim_settings(cloud: Any, **override: Any) -> dict[str, Any]:
    """The VIM account's ``openstack`` container (RFC 7951 names) for the test cloud."""
    return {"auth-url": cloud.auth_url, "username": cloud.username,
            "password": cloud.password, "project-name": cloud.project_name,
            "user-domain": cloud.user_domain, "project-domain": cloud.project_domain,
            "region": cloud.region, **override}


def owned_servers(conn: Any, owner: str) -> list[Any]:
    """Every server of the project carrying ``nfo-owner=owner`` (straight from Nova)."""
    return [s for s in conn.compute.servers(details=True)
            if (s.metadata or {}).get(META_OWNER) == owner]


def delete_owned(conn: Any, owner: str, timeout: float = 120) -> None:
    """Remove what a test left behind, and wait until Nova no longer lists it."""
    for s in owned_servers(conn, owner):
        with contextlib.suppress(sdk.SDKException):
            conn.compute.delete_server(s.id, ignore_missing=True)
    deadline = time.monotonic() + timeout
    while owned_servers(conn, owner) and time.monotonic() < deadline:
        time.sleep(0.5)


def request(cloud: Any, instance: str, **deployment: Any) -> InstantiateRequest:
    dep = {"image": cloud.image, "flavor": cloud.flavor,
           "network": [{"name": cloud.network}], **deployment}
    return InstantiateRequest(instance, "fw", dep, {}, ComputeNeeds(1, 64, 0), BOOT_TIMEOUT)


@pytest.fixture
def owner() -> str:
    return f"nfo-t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def conn(openstack_cloud: Any, owner: str) -> Iterator[Any]:
    c = openstack_cloud.connection()
    try:
        yield c
    finally:
        delete_owned(c, owner)
        c.close()


@pytest.fixture
async def driver(openstack_cloud: Any, owner: str, tmp_path: Path,
                 conn: Any) -> AsyncIterator[OpenStackDriver]:
    drv = OpenStackDriver(VimAccount("os1", "nfo-vim:openstack", vim_settings(openstack_cloud)),
                          DriverContext(tmp_path, owner))
    try:
        yield drv
    finally:
        await drv.close()


@pytest.fixture
def flavors(openstack_cloud: Any) -> Iterator[dict[str, str]]:
    """Two flavors made for failures: ``nowhere`` requires a trait no compute host has (Nova
    accepts the server, then the scheduler fails it), ``huge`` asks for more RAM than the
    project's quota allows (Nova refuses the request)."""
    c = openstack_cloud.connection()
    tag = uuid.uuid4().hex[:6]
    nowhere = c.compute.create_flavor(name=f"nfo-nowhere-{tag}", ram=64, vcpus=1, disk=0)
    c.compute.create_flavor_extra_specs(nowhere, {"trait:CUSTOM_NFO_NOWHERE": "required"})
    huge = c.compute.create_flavor(name=f"nfo-huge-{tag}", ram=64 * 1024 * 1024, vcpus=1,
                                   disk=0)
    try:
        yield {"nowhere": str(nowhere.name), "huge": str(huge.name)}
    finally:
        for f in (nowhere, huge):
            c.compute.delete_flavor(f.id, ignore_missing=True)
        c.close()


async def wait_state(drv: OpenStackDriver, rid: str, want: WorkloadState,
                     timeout: float = BOOT_TIMEOUT) -> Status:
    deadline = time.monotonic() + timeout
    st = await drv.status(rid)
    while st.state is not want:
        assert st.state is WorkloadState.INITIALIZING, st
        assert time.monotonic() < deadline, f"{rid} still {st} after {timeout}s"
        await asyncio.sleep(0.25)
        st = await drv.status(rid)
    return st


async def test_instantiate_to_running_then_terminate(openstack_cloud: Any, driver: Any,
                                                     conn: Any, owner: str) -> None:
    finals: list[tuple[str, Status]] = []
    driver.on_final(lambda rid, st: finals.append((rid, st)))
    t0 = time.monotonic()
    resp = await driver.instantiate(request(openstack_cloud, "fw1"))
    accepted = time.monotonic() - t0
    server = conn.compute.get_server(resp.resource_id)  # Nova has it at once
    assert server.name == f"nfo-fw1-{owner}"
    assert server.metadata[META_INSTANCE] == "fw1"
    assert server.metadata[META_OWNER] == owner

    st = await wait_state(driver, resp.resource_id, WorkloadState.RUNNING)
    print(f"accepted after {accepted:.2f}s, running after {time.monotonic() - t0:.2f}s")
    assert st == Status(WorkloadState.RUNNING)
    assert conn.compute.get_server(resp.resource_id).status == "ACTIVE"
    for _ in range(100):  # the driver's own poll loop pushes the same final state
        if finals:
            break
        await asyncio.sleep(0.1)
    assert finals == [(resp.resource_id, Status(WorkloadState.RUNNING))]

    # idempotent: the same instance again is the same server, on this driver and after
    # a "restart" (a second driver with the same owner tag)
    assert await driver.find("fw1") == resp.resource_id
    assert (await driver.instantiate(request(openstack_cloud, "fw1"))) == resp
    assert await driver.list_resources() == {"fw1": resp.resource_id}
    assert [s.id for s in owned_servers(conn, owner)] == [resp.resource_id]

    await driver.terminate(resp.resource_id)
    with pytest.raises(sdk.NotFoundException):
        conn.compute.get_server(resp.resource_id)
    assert owned_servers(conn, owner) == []
    await driver.terminate(resp.resource_id)  # already gone: success
    assert (await driver.status(resp.resource_id)).state is WorkloadState.GONE
    assert await driver.find("fw1") is None and await driver.list_resources() == {}


async def test_missing_image_is_permanent_with_glances_answer(openstack_cloud: Any,
                                                              driver: Any, conn: Any,
                                                              owner: str) -> None:
    with pytest.raises(PermanentError) as e:
        await driver.instantiate(request(openstack_cloud, "fw2", image="no-such-image"))
    assert "image 'no-such-image' not found in Glance" in e.value.reason
    with pytest.raises(PermanentError, match=r"flavor 'm9\.nope' not found"):
        await driver.instantiate(request(openstack_cloud, "fw2", flavor="m9.nope"))
    with pytest.raises(PermanentError, match="network 'nowhere' not found in Neutron"):
        await driver.instantiate(request(openstack_cloud, "fw2", network=[{"name": "nowhere"}]))
    assert owned_servers(conn, owner) == []


async def test_nova_failure_is_failed_with_novas_fault(openstack_cloud: Any, driver: Any,
                                                       conn: Any,
                                                       flavors: dict[str, str]) -> None:
    finals: list[tuple[str, Status]] = []
    driver.on_final(lambda rid, st: finals.append((rid, st)))
    resp = await driver.instantiate(request(openstack_cloud, "big", flavor=flavors["nowhere"]))
    st = await wait_state(driver, resp.resource_id, WorkloadState.FAILED)
    fault = conn.compute.get_server(resp.resource_id).fault
    assert fault and fault["message"] in st.reason, (st, fault)
    assert "No valid host" in st.reason and st.temporary  # the manager tries again
    for _ in range(100):
        if finals:
            break
        await asyncio.sleep(0.1)
    assert finals == [(resp.resource_id, st)]
    await driver.terminate(resp.resource_id)  # a server in ERROR is deleted like any other
    with pytest.raises(sdk.NotFoundException):
        conn.compute.get_server(resp.resource_id)


async def test_quota_is_temporary_with_novas_reason(openstack_cloud: Any, driver: Any,
                                                    conn: Any, owner: str,
                                                    flavors: dict[str, str]) -> None:
    with pytest.raises(TemporaryError) as e:
        await driver.instantiate(request(openstack_cloud, "greedy", flavor=flavors["huge"]))
    assert "quota exceeded (HTTP 403)" in e.value.reason
    assert "Quota exceeded for ram" in e.value.reason  # Nova's own words
    assert owned_servers(conn, owner) == []


async def test_fixed_ip_and_user_data_reach_nova(openstack_cloud: Any, driver: Any,
                                                 conn: Any) -> None:
    net = conn.network.find_network(openstack_cloud.network, ignore_missing=False)
    subnet = conn.network.get_subnet(net.subnet_ids[0])
    import ipaddress

    cidr = ipaddress.ip_network(subnet.cidr)
    used = {ip["ip_address"] for p in conn.network.ports(network_id=net.id)
            for ip in p.fixed_ips}
    ip = next(str(a) for a in list(cidr.hosts())[::-1][1:] if str(a) not in used)
    resp = await driver.instantiate(request(
        openstack_cloud, "fw3", network=[{"name": openstack_cloud.network, "fixed-ip": ip}],
        **{"user-data": "#cloud-config\nhostname: {instance}\n"}))
    await wait_state(driver, resp.resource_id, WorkloadState.RUNNING)
    addrs = [a["addr"] for nets in conn.compute.get_server(resp.resource_id).addresses.values()
             for a in nets]
    assert addrs == [ip]
    ports = list(conn.network.ports(device_id=resp.resource_id))
    assert [f["ip_address"] for p in ports for f in p.fixed_ips] == [ip]
    await driver.terminate(resp.resource_id)


async def test_wrong_password_is_permanent_and_not_shown(openstack_cloud: Any, tmp_path: Path,
                                                         owner: str) -> None:
    secret = f"wrong-{uuid.uuid4().hex}"
    drv = OpenStackDriver(VimAccount("bad", "nfo-vim:openstack",
                                     vim_settings(openstack_cloud, password=secret)),
                          DriverContext(tmp_path, owner))
    try:
        with pytest.raises(PermanentError) as e:
            await drv.find("x")
        assert "authentication refused" in e.value.reason
        assert secret not in e.value.reason and secret not in repr(drv)
    finally:
        await drv.close()


async def test_clouds_yaml_account(openstack_cloud: Any, tmp_path: Path, owner: str,
                                   conn: Any, monkeypatch: Any) -> None:
    import json

    entry = {"auth": {"auth_url": openstack_cloud.auth_url,
                      "username": openstack_cloud.username,
                      "password": openstack_cloud.password,
                      "project_name": openstack_cloud.project_name,
                      "user_domain_name": openstack_cloud.user_domain,
                      "project_domain_name": openstack_cloud.project_domain},
             "region_name": openstack_cloud.region, "identity_api_version": 3}
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {"nfo-test": entry}}))  # JSON is YAML
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    drv = OpenStackDriver(VimAccount("byname", "nfo-vim:openstack", {"cloud": "nfo-test"}),
                          DriverContext(tmp_path, owner))
    try:
        # a name with every character an instance name may hold: Nova's name filter is a
        # regular expression, and find() must still see the server through it
        resp = await drv.instantiate(request(openstack_cloud, "fw.4_x-y"))
        server = conn.compute.get_server(resp.resource_id)
        assert server.metadata[META_OWNER] == owner and server.name == f"nfo-fw.4_x-y-{owner}"
        assert await drv.find("fw.4_x-y") == resp.resource_id
        assert await drv.list_resources() == {"fw.4_x-y": resp.resource_id}
        await drv.terminate(resp.resource_id)
    finally:
        await drv.close()
