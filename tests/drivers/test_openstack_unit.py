"""Fast tests of the ``openstack`` driver without a cloud.

The only fakes of the test suite for this driver live here: a fake openstacksdk
``Connection`` (compute, image and network proxies holding servers in memory),
openstacksdk's own HTTP exceptions built from ``requests`` responses, and a tiny
HTTP server that plays a Keystone refusing the password (a real openstacksdk
connection talks to it over the wire).  The real cloud is in tests/openstack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from keystoneauth1 import exceptions as ka
from openstack import exceptions as sdk

from nfo.drivers.openstack import (
    META_INSTANCE,
    META_OWNER,
    META_SPEC,
    OpenStackDriver,
    classify,
    keystone_v3,
    server_status,
)
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

PASSWORD = "Pa55-w0rd-never-shown"
OWNER = "nfo-unit0001"


# -- a fake openstacksdk connection ---------------------------------------------------------


class FakeServer:
    def __init__(self, name: str, metadata: dict[str, str], **attrs: Any) -> None:
        self.id = attrs.pop("id", str(uuid.uuid4()))
        self.name = name
        self.metadata = metadata
        self.status = attrs.pop("status", "BUILD")
        self.task_state: str | None = attrs.pop("task_state", "spawning")
        self.fault: dict[str, Any] | None = attrs.pop("fault", None)
        self.created_at = attrs.pop("created_at", "2026-12-03T10:00:00Z")
        self.attrs = attrs


class Named:
    def __init__(self, name: str, **attrs: Any) -> None:
        self.id = f"{name}-id"
        self.name = name
        for k, v in attrs.items():
            setattr(self, k, v)


def missing(found: Named | None, ignore_missing: bool, name: str) -> Named | None:
    """What openstacksdk's find_* do with ``ignore_missing``."""
    if found is None and not ignore_missing:
        raise sdk.NotFoundException(f"No resource found for {name}")
    return found


class FakeCompute:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud
        self.flavor_list = [Named("m1.tiny", vcpus=1, ram=512, disk=1),
                            Named("m1.small", vcpus=1, ram=2048, disk=20),
                            Named("m1.large", vcpus=4, ram=8192, disk=80)]

    def servers(self, details: bool = True, **query: Any) -> Iterator[FakeServer]:
        self.cloud.hit("servers")
        self.cloud.tick()
        pattern = query.get("name")
        for s in list(self.cloud.servers.values()):
            if pattern is None or re.search(pattern, s.name):
                yield s

    def create_server(self, **attrs: Any) -> FakeServer:
        self.cloud.hit("create_server")
        self.cloud.created.append(attrs)
        s = FakeServer(attrs.pop("name"), attrs.pop("metadata"), **attrs)
        self.cloud.servers[s.id] = s
        return s

    def get_server(self, rid: str) -> FakeServer:
        self.cloud.hit("get_server")
        s = self.cloud.servers.get(rid)
        if s is None:
            raise sdk.NotFoundException(f"No Server found for {rid}")
        self.cloud.tick()
        return s

    def delete_server(self, rid: str, ignore_missing: bool = True) -> None:
        self.cloud.hit("delete_server")
        s = self.cloud.servers.get(rid)
        if s is None:
            if not ignore_missing:
                raise sdk.NotFoundException(f"No Server found for {rid}")
            return
        s.task_state = "deleting"

    def find_flavor(self, name: str, ignore_missing: bool = True) -> Named | None:
        self.cloud.hit("find_flavor")
        found = next((f for f in self.flavor_list if name in (f.name, f.id)), None)
        return missing(found, ignore_missing, name)

    def flavors(self, details: bool = True) -> list[Named]:
        return list(self.flavor_list)


class FakeImage:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def find_image(self, name: str, ignore_missing: bool = True) -> Named | None:
        self.cloud.hit("find_image")
        return missing(Named(name) if name in self.cloud.images else None, ignore_missing, name)


class FakeNetwork:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def find_network(self, name: str, ignore_missing: bool = True) -> Named | None:
        self.cloud.hit("find_network")
        found = Named(name) if name in self.cloud.networks else None
        return missing(found, ignore_missing, name)


class FakeCloud:
    """What a fake Connection sees; ``fail[call]`` is raised by that call."""

    def __init__(self) -> None:
        self.servers: dict[str, FakeServer] = {}
        self.created: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.fail: dict[str, BaseException] = {}
        self.images = {"cirros"}
        self.networks = {"private", "mgmt"}
        self.delete_polls = 2
        self.compute = FakeCompute(self)
        self.image = FakeImage(self)
        self.network = FakeNetwork(self)
        self.closed = False

    def hit(self, call: str) -> None:
        self.calls[call] = self.calls.get(call, 0) + 1
        exc = self.fail.get(call)
        if exc is not None:
            raise exc

    def tick(self) -> None:
        """Deletions progress as the cloud is looked at: gone after ``delete_polls`` looks."""
        for rid, s in list(self.servers.items()):
            if s.task_state == "deleting":
                s.attrs["polls"] = s.attrs.get("polls", 0) + 1
                if s.attrs["polls"] >= self.delete_polls:
                    del self.servers[rid]

    def authorize(self) -> str:
        return "token"

    def close(self) -> None:
        self.closed = True


def make_driver(tmp_path: Path, cloud: FakeCloud | None = None,
                **settings: Any) -> tuple[OpenStackDriver, FakeCloud]:
    vim = VimAccount("os1", "nfo-vim:openstack", {
        "auth-url": "http://keystone.invalid:5000/v3", "username": "nfo",
        "password": PASSWORD, "project-name": "demo", **settings})
    drv = OpenStackDriver(vim, DriverContext(tmp_path, OWNER))
    fake = cloud or FakeCloud()
    drv._conn = fake
    return drv, fake


def request(instance: str = "fw1", **deployment: Any) -> InstantiateRequest:
    dep = {"image": "cirros", "flavor": "m1.tiny", "network": [{"name": "private"}],
           **deployment}
    return InstantiateRequest(instance, "fw", dep, {"port": "7777"}, ComputeNeeds(), 60.0)


# -- wire-level exceptions ------------------------------------------------------------------


def http_error(status: int, message: str) -> sdk.SDKException:
    """openstacksdk's exception for an HTTP reply, made the way its proxies make it."""
    resp = requests.Response()
    resp.status_code = status
    resp.headers["content-type"] = "application/json"
    key = {403: "forbidden", 404: "itemNotFound", 413: "overLimit"}.get(status, "error")
    resp._content = json.dumps({key: {"message": message, "code": status}}).encode()
    resp.request = requests.Request("POST", "http://nova.invalid/v2.1/servers").prepare()
    resp.url = "http://nova.invalid/v2.1/servers"
    try:
        sdk.raise_from_response(resp)
    except sdk.SDKException as e:
        return e
    raise AssertionError("no exception")


# -- status mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "task", "want"), [
    ("BUILD", "spawning", WorkloadState.INITIALIZING),
    ("BUILD", None, WorkloadState.INITIALIZING),
    ("REBUILD", "rebuilding", WorkloadState.INITIALIZING),
    ("ACTIVE", None, WorkloadState.RUNNING),
    ("REBOOT", "rebooting", WorkloadState.RUNNING),
    ("VERIFY_RESIZE", None, WorkloadState.RUNNING),
    ("ERROR", None, WorkloadState.FAILED),
    ("SHUTOFF", None, WorkloadState.FAILED),
    ("PAUSED", None, WorkloadState.FAILED),
    ("SHELVED_OFFLOADED", None, WorkloadState.FAILED),
    ("DELETED", None, WorkloadState.GONE),
    ("SOFT_DELETED", None, WorkloadState.GONE),
    ("ACTIVE", "deleting", WorkloadState.GONE),
])
def test_status_mapping(status: str, task: str | None, want: WorkloadState) -> None:
    s = FakeServer("x", {}, status=status, task_state=task)
    assert server_status(s).state is want


def test_missing_server_is_gone_and_unknown_is_temporary() -> None:
    assert server_status(None).state is WorkloadState.GONE
    with pytest.raises(TemporaryError, match="UNKNOWN"):
        server_status(FakeServer("x", {}, status="UNKNOWN", task_state=None))


def test_error_reason_is_novas_fault_message() -> None:
    s = FakeServer("x", {}, status="ERROR", task_state=None, fault={
        "code": 500, "message": "No valid host was found. There are not enough hosts "
        "available.", "details": "Traceback (most recent call last):\n  File ..."})
    st = server_status(s)
    assert st.state is WorkloadState.FAILED
    assert "No valid host was found" in st.reason and "code 500" in st.reason
    assert "File ..." not in st.reason and "Traceback" not in st.reason
    s.fault = {"code": 500, "message": "Build of instance x aborted",
               "details": "Failed to allocate the network(s), not rescheduling."}
    assert server_status(s).reason == ("Nova: server in ERROR: Build of instance x aborted "
                                       "(code 500): Failed to allocate the network(s), not "
                                       "rescheduling.")


@pytest.mark.parametrize("fault, temporary", [
    ({"code": 500, "message": "No valid host was found. "}, True),
    ({"code": 500, "message": "No valid host was found. There are not enough hosts "
                              "available."}, True),
    ({"code": 500, "message": "Exceeded maximum number of retries. Exhausted all hosts "
                              "available for retrying build failures for instance x."}, True),
    ({"code": 500, "message": "Build of instance x aborted: Failed to allocate the "
                              "network(s), not rescheduling."}, True),
    ({"code": 500, "message": "Build of instance x aborted: Image y is unacceptable"}, False),
    ({"code": 500, "message": "Build of instance x aborted: No valid host was found"}, False),
    ({"code": 400, "message": "Flavor's disk is too small for requested image."}, False),
    (None, False),
])
def test_a_fault_another_server_may_not_meet_is_temporary(fault: Any, temporary: bool) -> None:
    st = server_status(FakeServer("x", {}, status="ERROR", task_state=None, fault=fault))
    assert st.state is WorkloadState.FAILED and st.temporary is temporary


# -- error classification -------------------------------------------------------------------


def test_auth_failure_is_permanent() -> None:
    err = classify(ka.Unauthorized("The request you have made requires authentication."),
                   "list servers")
    assert isinstance(err, PermanentError) and "authentication refused" in err.reason
    err = classify(http_error(401, "Authentication required"), "create server")
    assert isinstance(err, PermanentError)
    err = classify(http_error(403, "Policy doesn't allow os_compute_api:servers:create"),
                   "create server")
    assert isinstance(err, PermanentError) and "not allowed" in err.reason


@pytest.mark.parametrize("exc", [
    ka.ConnectFailure("Unable to establish connection to http://keystone:5000/v3"),
    ka.ConnectTimeout("Request to http://nova:8774 timed out"),
    requests.ConnectionError("connection refused"),
    requests.Timeout("read timed out"),
    ConnectionRefusedError(111, "Connection refused"),
    http_error(500, "Unexpected API Error."),
    http_error(503, "Service Unavailable"),
    http_error(409, "Cannot 'delete' instance while it is in task_state rebuilding"),
])
def test_connection_failures_and_5xx_are_temporary(exc: BaseException) -> None:
    err = classify(exc, "create server for 'fw1'")
    assert isinstance(err, TemporaryError), err.reason
    assert err.reason.startswith("create server for 'fw1': ")


@pytest.mark.parametrize(("status", "message"), [
    (403, "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"),
    (403, "Quota exceeded for cores: Requested 4, but already used 20 of 20 cores"),
    (413, "Maximum number of ports exceeded"),
    (409, "Quota exceeded for resources: ['port']."),
])
def test_quota_is_temporary_and_says_so(status: int, message: str) -> None:
    err = classify(http_error(status, message), "create server for 'fw1'")
    assert isinstance(err, TemporaryError)
    assert "quota exceeded" in err.reason
    assert message in err.reason


def test_not_found_and_bad_request_are_permanent() -> None:
    assert isinstance(classify(http_error(404, "Image x could not be found."), "c"),
                      PermanentError)
    err = classify(http_error(400, "Invalid fixed IP address (10.0.0.300)"), "c")
    assert isinstance(err, PermanentError) and "Invalid fixed IP" in err.reason


def test_keystone_error_rewrapped_by_openstacksdk_is_classified_by_its_cause() -> None:
    try:
        try:  # what Connection.authorize() does
            raise ka.Unauthorized("The request you have made requires authentication.")
        except ka.ClientException as inner:
            raise sdk.SDKException(str(inner))  # noqa: B904
    except sdk.SDKException as e:
        err = classify(e, "authenticate")
    assert isinstance(err, PermanentError) and "authentication refused" in err.reason


def test_configuration_problems_are_permanent() -> None:
    assert isinstance(classify(sdk.ConfigException("Cloud nope was not found."), "c"),
                      PermanentError)
    assert isinstance(classify(ka.MissingRequiredOptions([]), "c"), PermanentError)
    assert isinstance(classify(ka.EndpointNotFound("compute"), "c"), PermanentError)
    assert isinstance(classify(RuntimeError("who knows"), "c"), TemporaryError)


# -- the driver against the fake connection ------------------------------------------------


async def test_instantiate_tags_and_returns_nova_id(tmp_path: Path) -> None:
    drv, cloud = make_driver(tmp_path)
    try:
        req = request(network=[{"name": "mgmt"}, {"name": "private", "fixed-ip": "10.0.0.5"}],
                      **{"user-data": "#cloud-config\nhostname: {instance}-{param:port}\n"
                                      "runcmd: [{echo: x}]\n"})
        resp = await drv.instantiate(req)
        (attrs,) = cloud.created
        server = cloud.servers[resp.resource_id]
        assert server.name == f"nfo-fw1-{OWNER}"
        assert server.metadata[META_INSTANCE] == "fw1"
        assert server.metadata[META_OWNER] == OWNER
        assert server.metadata[META_SPEC]
        assert attrs["image_id"] == "cirros-id" and attrs["flavor_id"] == "m1.tiny-id"
        assert attrs["networks"] == [{"uuid": "mgmt-id"},
                                     {"uuid": "private-id", "fixed_ip": "10.0.0.5"}]
        import base64
        assert base64.b64decode(attrs["user_data"]).decode() == (
            "#cloud-config\nhostname: fw1-7777\nruncmd: [{echo: x}]\n")
        assert (await drv.status(resp.resource_id)).state is WorkloadState.INITIALIZING
        server.status, server.task_state = "ACTIVE", None
        assert await drv.status(resp.resource_id) == Status(WorkloadState.RUNNING)
    finally:
        await drv.close()
    assert cloud.closed


async def test_instantiate_is_idempotent_through_find(tmp_path: Path) -> None:
    drv, cloud = make_driver(tmp_path)
    try:
        first = await drv.instantiate(request())
        assert await drv.find("fw1") == first.resource_id
        again = await drv.instantiate(request())
        assert again == first
        assert cloud.calls["create_server"] == 1
        # a second driver (an orchestrator restart) adopts instead of creating
        other, _ = make_driver(tmp_path, cloud)
        try:
            assert (await other.instantiate(request())) == first
            assert await other.list_resources() == {"fw1": first.resource_id}
        finally:
            await other.close()
        assert cloud.calls["create_server"] == 1
    finally:
        await drv.close()


async def test_status_calls_that_come_together_share_one_list(tmp_path: Path) -> None:
    drv, cloud = make_driver(tmp_path)
    try:
        rids = [(await drv.instantiate(request(f"i{k}"))).resource_id for k in range(20)]
        for rid in rids[::2]:
            cloud.servers[rid].status = "ACTIVE"
        before = dict(cloud.calls)
        states = await asyncio.gather(*(drv.status(r) for r in rids))
        assert [st.state for st in states] == [WorkloadState.RUNNING,
                                               WorkloadState.INITIALIZING] * 10
        assert cloud.calls["servers"] - before["servers"] == 1
        assert cloud.calls.get("get_server", 0) == before.get("get_server", 0)
        # a server the list does not show is asked for by id
        assert (await drv.status(str(uuid.uuid4()))).state is WorkloadState.GONE
        assert cloud.calls["get_server"] == before.get("get_server", 0) + 1
    finally:
        await drv.close()


async def test_statuses_are_one_list_of_this_installations_servers(tmp_path: Path) -> None:
    drv, cloud = make_driver(tmp_path)
    try:
        up, broken, unknown, dying = (
            FakeServer(f"nfo-{n}-{OWNER}", {META_INSTANCE: n, META_OWNER: OWNER}, status=st,
                       task_state=task, fault=fault)
            for n, st, task, fault in (
                ("a", "ACTIVE", None, None),
                ("b", "ERROR", None, {"message": "disk on fire", "code": 500}),
                ("c", "UNKNOWN", None, None),
                ("d", "ACTIVE", "deleting", None)))
        foreign = FakeServer("nfo-e-nfo-other", {META_INSTANCE: "e", META_OWNER: "nfo-other"},
                             status="ACTIVE")
        for s in (up, broken, unknown, dying, foreign):
            cloud.servers[s.id] = s
        before = dict(cloud.calls)
        got = await drv.statuses()
        assert cloud.calls["servers"] - before.get("servers", 0) == 1
        assert cloud.calls.get("get_server", 0) == before.get("get_server", 0)
        # UNKNOWN is left out (the manager then asks status of it alone)
        assert {rid: st.state for rid, st in got.items()} == {
            up.id: WorkloadState.RUNNING, broken.id: WorkloadState.FAILED,
            dying.id: WorkloadState.GONE}
        assert "disk on fire" in got[broken.id].reason
    finally:
        await drv.close()


async def test_instantiate_after_find_spares_the_second_look(tmp_path: Path) -> None:
    drv, cloud = make_driver(tmp_path)
    try:
        assert await drv.find("fw1") is None  # what the manager does first
        before = cloud.calls["servers"]
        first = await drv.instantiate(request())
        assert cloud.calls["servers"] == before  # find's fresh answer stood
        assert (await drv.instantiate(request())) == first  # no find before: it looks itself
        assert cloud.calls["create_server"] == 1
    finally:
        await drv.close()


async def test_find_and_list_go_by_owner_metadata(tmp_path: Path) -> None:
    drv, cloud = make_driver(tmp_path)
    try:
        mine = FakeServer(f"nfo-a-{OWNER}", {META_INSTANCE: "a", META_OWNER: OWNER})
        foreign = FakeServer("nfo-b-nfo-other", {META_INSTANCE: "b", META_OWNER: "nfo-other"})
        # same name, but someone else's metadata: not ours
        fake = FakeServer(f"nfo-c-{OWNER}", {META_INSTANCE: "c", META_OWNER: "nfo-other"})
        dying = FakeServer(f"nfo-d-{OWNER}", {META_INSTANCE: "d", META_OWNER: OWNER},
                           status="ACTIVE", task_state="deleting")
        for s in (mine, foreign, fake, dying):
            cloud.servers[s.id] = s
        assert await drv.list_resources() == {"a": mine.id}
        assert await drv.find("a") == mine.id
        assert await drv.find("b") is None and await drv.find("c") is None
        assert await drv.find("d") is None
    finally:
        await drv.close()


async def test_list_resources_removes_duplicates(tmp_path: Path) -> None:
    drv, cloud = make_driver(tmp_path)
    try:
        meta = {META_INSTANCE: "a", META_OWNER: OWNER}
        old = FakeServer(f"nfo-a-{OWNER}", dict(meta), created_at="2026-12-03T10:00:00Z")
        new = FakeServer(f"nfo-a-{OWNER}", dict(meta), created_at="2026-12-03T10:00:05Z")
        cloud.servers = {old.id: old, new.id: new}
        assert await drv.list_resources() == {"a": old.id}
        assert new.task_state == "deleting" and old.task_state != "deleting"
    finally:
        await drv.close()


@pytest.mark.parametrize(("field", "value", "what"), [
    ("image", "no-such-image", "image 'no-such-image' not found in Glance"),
    ("flavor", "m9.huge", "flavor 'm9.huge' not found in Nova"),
    ("network", [{"name": "nowhere"}], "network 'nowhere' not found in Neutron"),
])
async def test_missing_image_flavor_network_is_permanent(tmp_path: Path, field: str,
                                                         value: Any, what: str) -> None:
    drv, cloud = make_driver(tmp_path)
    try:
        with pytest.raises(PermanentError) as e:
            await drv.instantiate(request(**{field: value}))
        assert what in e.value.reason
        assert cloud.created == []
    finally:
        await drv.close()


async def test_missing_parameter_is_permanent(tmp_path: Path) -> None:
    drv, _ = make_driver(tmp_path)
    try:
        with pytest.raises(PermanentError, match="no parameter 'nope'"):
            await drv.instantiate(request(**{"user-data": "x={param:nope}"}))
    finally:
        await drv.close()


async def test_flavor_from_compute_needs_when_none_given(tmp_path: Path) -> None:
    drv, cloud = make_driver(tmp_path)
    try:
        dep = {"image": "cirros", "network": [{"name": "private"}]}
        req = InstantiateRequest("big", "fw", dep, {}, ComputeNeeds(2, 4096, 10), 60.0)
        await drv.instantiate(req)
        assert cloud.created[0]["flavor_id"] == "m1.large-id"
        req = InstantiateRequest("huge", "fw", dep, {}, ComputeNeeds(64, 4096, 10), 60.0)
        with pytest.raises(PermanentError, match="no flavor"):
            await drv.instantiate(req)
    finally:
        await drv.close()


async def test_quota_on_create_is_temporary_with_reason(tmp_path: Path) -> None:
    drv, cloud = make_driver(tmp_path)
    cloud.fail["create_server"] = http_error(
        403, "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances")
    try:
        with pytest.raises(TemporaryError) as e:
            await drv.instantiate(request())
        assert "quota exceeded" in e.value.reason and "10 of 10 instances" in e.value.reason
        assert e.value.__cause__ is None and e.value.__suppress_context__
    finally:
        await drv.close()


async def test_terminate_waits_and_missing_server_is_success(tmp_path: Path) -> None:
    drv, cloud = make_driver(tmp_path)
    cloud.delete_polls = 3
    try:
        rid = (await drv.instantiate(request())).resource_id
        await drv.terminate(rid)
        assert rid not in cloud.servers
        assert cloud.calls["servers"] >= 3
        await drv.terminate(rid)  # already gone: success
        await drv.terminate(str(uuid.uuid4()))  # never existed: success
        assert (await drv.status(rid)).state is WorkloadState.GONE
    finally:
        await drv.close()


async def test_terminate_waits_for_a_deleted_server_to_leave_the_list(tmp_path: Path) -> None:
    drv, cloud = make_driver(tmp_path)
    cloud.delete_polls = 4
    try:
        rid = (await drv.instantiate(request())).resource_id
        s = cloud.servers[rid]
        real_delete = cloud.compute.delete_server

        def delete(rid: str, ignore_missing: bool = True) -> None:
            real_delete(rid, ignore_missing)
            s.status = "DELETED"  # what Nova shows between destroy and the record's removal

        cloud.compute.delete_server = delete  # type: ignore[method-assign]
        await drv.terminate(rid)
        assert rid not in cloud.servers
    finally:
        await drv.close()


async def test_terminate_reports_a_failed_deletion(tmp_path: Path, monkeypatch: Any) -> None:
    import nfo.drivers.openstack as mod

    monkeypatch.setattr(mod, "ERROR_GRACE", 0.0)
    drv, cloud = make_driver(tmp_path)
    cloud.delete_polls = 10**6
    try:
        rid = (await drv.instantiate(request())).resource_id
        cloud.compute.delete_server = lambda rid, ignore_missing=True: None  # type: ignore
        s = cloud.servers[rid]
        s.status, s.task_state = "ERROR", None
        s.fault = {"message": "Failed to delete the instance: libvirt error", "code": 500}
        with pytest.raises(TemporaryError, match="could not delete it: Failed to delete"):
            await drv.terminate(rid)
    finally:
        await drv.close()


async def test_update_in_place_only_when_nova_spec_is_unchanged(tmp_path: Path) -> None:
    drv, _ = make_driver(tmp_path)
    try:
        rid = (await drv.instantiate(request())).resource_id
        assert await drv.update(rid, request()) is True
        assert await drv.update(rid, request(flavor="m1.small")) is False
        assert await drv.update(str(uuid.uuid4()), request()) is False
    finally:
        await drv.close()


async def test_poll_loop_pushes_final_states_and_stops(tmp_path: Path,
                                                       monkeypatch: Any) -> None:
    import nfo.drivers.openstack as mod

    monkeypatch.setattr(mod, "POLL_MIN", 0.01)
    drv, cloud = make_driver(tmp_path)
    got: list[tuple[str, Status]] = []
    drv.on_final(lambda rid, st: got.append((rid, st)))
    try:
        ok = (await drv.instantiate(request("ok"))).resource_id
        bad = (await drv.instantiate(request("bad"))).resource_id
        assert drv._poller is not None and not drv._poller.done()
        cloud.servers[ok].status = "ACTIVE"
        cloud.servers[bad].status = "ERROR"
        cloud.servers[bad].fault = {"message": "Build of instance aborted: boom"}
        for _ in range(200):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        assert dict(got) == {ok: Status(WorkloadState.RUNNING),
                             bad: Status(WorkloadState.FAILED,
                                         "Nova: server in ERROR: Build of instance aborted: "
                                         "boom")}
        await asyncio.sleep(0.05)
        assert drv._poller is None or drv._poller.done()  # nothing watched: the loop ended
        # a watch still running when the driver closes is cancelled by close()
        await drv.instantiate(request("slow"))
        assert drv._poller is not None and not drv._poller.done()
    finally:
        await drv.close()
    assert drv._poller is None


async def test_calls_after_close_are_temporary(tmp_path: Path) -> None:
    drv, _ = make_driver(tmp_path)
    await drv.close()
    with pytest.raises(TemporaryError, match="closed"):
        await drv.status("x")


# -- credentials ----------------------------------------------------------------------------


async def test_credentials_never_in_reasons_repr_or_logs(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    drv, cloud = make_driver(tmp_path)
    cloud.fail["servers"] = ka.ConnectFailure(
        f"Unable to connect to http://nfo:{PASSWORD}@keystone.invalid:5000/v3")
    try:
        assert PASSWORD not in repr(drv) and PASSWORD not in str(drv)
        assert "keystone.invalid" in repr(drv)
        with pytest.raises(TemporaryError) as e:
            await drv.find("fw1")
        assert PASSWORD not in e.value.reason and "***" in e.value.reason
        assert PASSWORD not in str(e.value) and PASSWORD not in repr(e.value)
        err = classify(ka.Unauthorized(f"bad password {PASSWORD}"), "x", [PASSWORD])
        assert PASSWORD not in err.reason
    finally:
        await drv.close()
    assert PASSWORD not in caplog.text


class _Keystone(BaseHTTPRequestHandler):
    """A Keystone that knows v3 and refuses every password."""

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        base = f"http://127.0.0.1:{self.server.server_address[1]}/v3/"
        self._reply(200, {"version": {"id": "v3.14", "status": "stable", "links": [
            {"rel": "self", "href": base}], "media-types": []}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._reply(401, {"error": {"code": 401, "title": "Unauthorized", "message":
                                    "The request you have made requires authentication."}})

    def log_message(self, *args: Any) -> None:
        pass


def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def keystone() -> Iterator[str]:
    for base in _serving(_Keystone):
        yield base + "/v3"


async def test_wire_refused_password_is_permanent(tmp_path: Path, keystone: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    vim = VimAccount("os1", "nfo-vim:openstack", {
        "auth-url": keystone, "username": "nfo", "password": PASSWORD,
        "project-name": "demo", "region": "RegionOne"})
    drv = OpenStackDriver(vim, DriverContext(tmp_path, OWNER))
    try:
        with pytest.raises(PermanentError) as e:
            await drv.find("fw1")
        assert "authentication refused" in e.value.reason
        assert PASSWORD not in e.value.reason
    finally:
        await drv.close()
    assert PASSWORD not in caplog.text


async def test_wire_unreachable_keystone_is_temporary(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    vim = VimAccount("os1", "nfo-vim:openstack", {
        "auth-url": f"http://127.0.0.1:{port}/v3", "username": "nfo", "password": PASSWORD,
        "project-name": "demo"})
    drv = OpenStackDriver(vim, DriverContext(tmp_path, OWNER))
    try:
        with pytest.raises(TemporaryError) as e:
            await drv.status("x")
        assert "cannot reach the cloud" in e.value.reason, e.value.reason
    finally:
        await drv.close()


async def test_clouds_yaml_entry_that_does_not_exist_is_permanent(tmp_path: Path,
                                                                  monkeypatch: Any) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  other:\n    auth:\n      auth_url: http://x/v3\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    drv = OpenStackDriver(VimAccount("os1", "nfo-vim:openstack", {"cloud": "nope"}),
                          DriverContext(tmp_path, OWNER))
    try:
        with pytest.raises(PermanentError, match="configuration"):
            await drv.find("fw1")
    finally:
        await drv.close()


# -- a misbehaving Keystone (issue 12, finding 4) --------------------------------------------


class _Refuses(_Keystone):
    """A Keystone that answers 401 to everything, version discovery included."""

    def do_GET(self) -> None:
        self._reply(401, {"error": {"code": 401, "title": "Unauthorized", "message": "no"}})


@pytest.fixture
def refusing() -> Iterator[str]:
    yield from _serving(_Refuses)


def test_keystone_v3() -> None:
    for url in ("http://h:5000", "http://h:5000/", "http://h:5000/v3", "http://h:5000/v3/"):
        assert keystone_v3(url) == "http://h:5000/v3"
    assert keystone_v3("https://h/identity") == "https://h/identity/v3"


@pytest.mark.parametrize("suffix", ["/v3", ""])
async def test_wire_keystone_refusing_everything_is_permanent_not_a_deadlock(
        tmp_path: Path, refusing: str, suffix: str) -> None:
    # keystoneauth's generic password plugin deadlocked here: discovery got 401 and
    # re-entered get_access to authenticate itself
    vim = VimAccount("os1", "nfo-vim:openstack", {
        "auth-url": refusing + suffix, "username": "nfo", "password": PASSWORD,
        "project-name": "demo"})
    drv = OpenStackDriver(vim, DriverContext(tmp_path, OWNER))
    try:
        with pytest.raises(PermanentError) as e:
            await asyncio.wait_for(drv.find("fw1"), 60)  # a guard, not a measurement
        assert "authentication refused" in e.value.reason
    finally:
        await drv.close()


@pytest.fixture
def silent() -> Iterator[str]:
    """A cloud that accepts connections and never answers."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/v3"
    finally:
        srv.close()


async def test_wire_a_call_without_an_answer_times_out(tmp_path: Path, silent: str) -> None:
    vim = VimAccount("os1", "nfo-vim:openstack", {
        "auth-url": silent, "username": "nfo", "password": PASSWORD, "project-name": "demo"})
    drv = OpenStackDriver(vim, DriverContext(tmp_path, OWNER))
    drv.call_timeout = 0.3
    try:
        with pytest.raises(TemporaryError, match=r"no answer from the VIM within 0\.3 s"):
            await asyncio.wait_for(drv.find("fw1"), 60)
        assert drv._stuck == 1
    finally:
        await asyncio.wait_for(drv.close(), 30)


def test_a_stuck_call_does_not_keep_the_process_alive(silent: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    child = f"""
import asyncio
from pathlib import Path
from nfo.drivers.openstack import OpenStackDriver
from nfo.registry.protocol import DriverContext, TemporaryError, VimAccount

async def main():
    vim = VimAccount("os1", "nfo-vim:openstack", {{"auth-url": {silent!r}, "username": "u",
                     "password": "secret-pw", "project-name": "demo"}})
    drv = OpenStackDriver(vim, DriverContext(Path({str(tmp_path)!r}), "t"))
    drv.call_timeout = 0.3
    try:
        await drv.find("fw1")
    except TemporaryError as e:
        print("temporary:", e.reason)
    await drv.close()
    print("stopped", flush=True)

asyncio.run(main())
"""
    # the blocked thread waits 60 s for the silent cloud (API_TIMEOUT); the process
    # must end as soon as main() returns
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         timeout=40)
    assert out.returncode == 0, out.stderr
    assert "no answer from the VIM" in out.stdout and "stopped" in out.stdout
