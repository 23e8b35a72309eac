"""nfo.device against the real thing: yuma123 netconfd behind OpenSSH sshd (the demo device).

The module's device is shared: every test leaves its configuration empty and its locks
released (:func:`session` resets the device before handing it out)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from ncclient import manager

from nfo.device import Device, DeviceError, Endpoint
from nfo.drivers.local.netconf_device import MODULE
from nfo.wire import xml
from tests.device.demo import DemoDevice
from tests.netutil import free_port
from tests.waiting import wait_for

RTR = "urn:nfo:demo-router"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
MINE = f'<system xmlns="{RTR}"/><interfaces xmlns="{RTR}"/>'
EMPTY = (f'<system xmlns="{RTR}" xmlns:nc="{NC}" nc:operation="remove"/>'
         f'<interfaces xmlns="{RTR}" xmlns:nc="{NC}" nc:operation="remove"/>')


def iface(name: str, mtu: int | None = None, enabled: bool | None = None) -> str:
    body = f"<name>{name}</name>"
    if mtu is not None:
        body += f"<mtu>{mtu}</mtu>"
    if enabled is not None:
        body += f"<enabled>{str(enabled).lower()}</enabled>"
    return f'<interfaces xmlns="{RTR}"><interface>{body}</interface></interfaces>'


@contextlib.asynccontextmanager
async def session(demo: DemoDevice, **kw: object) -> AsyncIterator[Device]:
    async with await Device.connect(demo.endpoint(**kw)) as d:
        yield d


async def reset(demo: DemoDevice) -> None:
    async with session(demo) as d:
        await d.discard_changes()
        await d.edit_config("candidate", EMPTY)
        await d.commit()


@pytest.fixture
async def dev(demo: DemoDevice) -> AsyncIterator[Device]:
    await reset(demo)
    async with session(demo) as d:
        yield d


def names(config_xml: str) -> list[str]:
    """The interface names in a get-config result (parsed alone, as a caller would)."""
    root = xml.read(f"<c>{config_xml}</c>".encode())
    out = []
    for top in root.children_named("interfaces", RTR):
        for entry in top.children_named("interface", RTR):
            name = entry.child("name")
            assert name is not None
            out.append(name.text)
    return out


# -- the session --------------------------------------------------------------------------


async def test_connect_reports_capabilities_and_the_host_key(demo: DemoDevice) -> None:
    async with session(demo) as d:
        assert d.session_id > 0
        assert d.has_candidate and d.has_validate and d.has_confirmed_commit
        assert not d.has_startup  # netconfd saves every commit into its startup file itself
        assert d.supports("urn:ietf:params:netconf:base:1.1")
        assert d.supports(f"{RTR}?module=nfo-demo-router")
        assert d.host_key == demo.host_key()
        assert "Device 127.0.0.1" in repr(d)


async def test_get_config_without_configuration_is_empty(dev: Device) -> None:
    assert await dev.get_config("running", MINE) == ""
    assert await dev.get_config("candidate", MINE) == ""


async def test_lock_edit_commit_unlock_then_running_shows_it(dev: Device) -> None:
    await dev.lock("candidate")
    await dev.edit_config("candidate", iface("eth0", mtu=1400) + iface("eth1"))
    assert await dev.get_config("running", MINE) == ""
    assert names(await dev.get_config("candidate", MINE)) == ["eth0", "eth1"]
    await dev.commit()
    await dev.unlock("candidate")
    running = await dev.get_config("running", MINE)
    assert names(running) == ["eth0", "eth1"]
    assert "<mtu>1400</mtu>" in running


async def test_an_independent_client_sees_the_commit(demo: DemoDevice, dev: Device,
                                                     tmp_path: Path) -> None:
    await dev.edit_config("candidate", iface("eth2", mtu=9000))
    await dev.commit()
    key_file = tmp_path / "id_ed25519"
    key_file.write_bytes(demo.key.export_private_key())
    key_file.chmod(0o600)

    def read(m: Any) -> str:
        return str(m.get_config("running", filter=("subtree", f'<interfaces xmlns="{RTR}"/>'))
                   .data_xml)

    def run() -> str:
        with manager.connect(host="127.0.0.1", port=demo.port, username=demo.user,
                             key_filename=str(key_file), hostkey_verify=False,
                             look_for_keys=False, allow_agent=False, timeout=10) as m:
            return read(m)

    seen = await asyncio.to_thread(run)
    assert "<name>eth2</name>" in seen and "<mtu>9000</mtu>" in seen


async def test_edit_options_are_sent(dev: Device) -> None:
    await dev.edit_config("candidate", iface("eth0"))
    await dev.edit_config("candidate", iface("eth9"), default_operation="none",
                          test_option="test-then-set", error_option="rollback-on-error")
    assert names(await dev.get_config("candidate", MINE)) == ["eth0"]
    # netconfd 2.13 merges under default-operation "replace"; an operation attribute works
    await dev.edit_config("candidate", f'<interfaces xmlns="{RTR}" xmlns:nc="{NC}" '
                          'nc:operation="replace"><interface><name>eth9</name></interface>'
                          "</interfaces>")
    assert names(await dev.get_config("candidate", MINE)) == ["eth9"]
    with pytest.raises(ValueError, match="default-operation"):
        await dev.edit_config("candidate", iface("x"), default_operation="merge-all")
    await dev.discard_changes()
    assert await dev.get_config("candidate", MINE) == ""


async def test_invalid_value_is_an_rpc_error_with_tag_and_path(dev: Device) -> None:
    with pytest.raises(DeviceError) as err:
        await dev.edit_config("candidate", iface("eth0", mtu=100))
    e = err.value
    assert (e.kind, e.temporary, e.tag) == ("rpc", False, "invalid-value")
    assert e.path is not None and e.path.endswith("rtr:mtu")
    assert e.app_tag == "not-in-range"
    assert e.errors[0]["type"] == "protocol" and e.errors[0]["severity"] == "error"
    assert "invalid-value" in e.reason and "\n" not in e.reason
    # the session goes on
    assert await dev.get_config("candidate", MINE) == ""


async def test_leafref_and_must_are_checked(dev: Device) -> None:
    mgmt = f'<system xmlns="{RTR}"><management-interface>eth7</management-interface></system>'
    with pytest.raises(DeviceError) as missing:  # netconfd checks leafrefs in the edit
        await dev.edit_config("candidate", mgmt)
    assert (missing.value.kind, missing.value.tag) == ("rpc", "data-missing")
    assert not missing.value.temporary
    assert missing.value.path == "/rtr:system/rtr:management-interface"
    with pytest.raises(DeviceError) as disabled:  # and musts too
        await dev.edit_config("candidate", iface("eth7", enabled=False) + mgmt)
    assert (disabled.value.tag, disabled.value.app_tag) == ("operation-failed",
                                                            "management-interface-disabled")
    assert "must be enabled" in disabled.value.reason
    await dev.edit_config("candidate", iface("eth7", enabled=True) + mgmt)
    await dev.commit()
    assert names(await dev.get_config("running", MINE)) == ["eth7"]


async def test_netconfd_drops_an_edit_validated_right_before_commit(dev: Device) -> None:
    """A quirk of netconfd 2.13 that callers must avoid (docs/devices.md): the commit
    answers ok, and neither running nor the candidate keeps what was validated."""
    await dev.edit_config("candidate", iface("eth8"))
    await dev.validate()
    await dev.commit()
    assert await dev.get_config("running", MINE) == ""
    assert await dev.get_config("candidate", MINE) == ""


async def test_lock_held_by_another_session_is_a_temporary_error(demo: DemoDevice,
                                                                  dev: Device) -> None:
    await dev.lock("candidate")
    async with session(demo) as other:
        with pytest.raises(DeviceError) as err:
            await other.lock("candidate")
        assert err.value.kind == "rpc" and err.value.temporary
        assert err.value.tag in ("lock-denied", "in-use")
    await dev.unlock("candidate")


async def test_confirmed_commit_then_confirming_commit(dev: Device) -> None:
    await dev.edit_config("candidate", iface("eth3"))
    await dev.commit(confirmed=True, timeout=120)
    assert names(await dev.get_config("running", MINE)) == ["eth3"]
    await dev.commit()
    with pytest.raises(DeviceError) as err:  # nothing left to cancel: it was confirmed
        await dev.cancel_commit()
    assert err.value.kind == "rpc"
    assert names(await dev.get_config("running", MINE)) == ["eth3"]


async def test_an_unconfirmed_commit_is_rolled_back_after_its_timeout(dev: Device) -> None:
    await dev.edit_config("candidate", iface("eth6"))
    await dev.commit(confirmed=True, timeout=1)
    assert names(await dev.get_config("running", MINE)) == ["eth6"]

    seen: list[str] = []

    async def rolled_back() -> bool:
        seen.append(await dev.get_config("running", MINE))
        return seen[-1] == ""

    # netconfd runs its timers only after about a second without requests
    await wait_for(rolled_back, 20, "the device to roll the commit back", every=1.5,
                   show=lambda: seen[-1])


async def test_closing_the_session_of_an_unconfirmed_commit_rolls_it_back(
        demo: DemoDevice, dev: Device) -> None:
    async with session(demo) as other:
        await other.edit_config("candidate", iface("eth5"))
        await other.commit(confirmed=True, timeout=600)
        assert names(await dev.get_config("running", MINE)) == ["eth5"]

    async def rolled_back() -> bool:
        return await dev.get_config("running", MINE) == ""

    await wait_for(rolled_back, 20, "the rollback", every=1.0)


async def test_a_persistent_confirmed_commit_outlives_its_session(
        demo: DemoDevice, dev: Device) -> None:
    """``persist``: the session's end does not roll it back; another session confirms it
    by its token, after which there is nothing left to cancel."""
    assert dev.has_persist
    async with session(demo) as other:
        await other.edit_config("candidate", iface("eth7"))
        await other.commit(confirmed=True, timeout=600, persist="nfo-test-7")
    await asyncio.sleep(3)  # a plain confirmed commit is rolled back within this (above)
    assert names(await dev.get_config("running", MINE)) == ["eth7"]
    await dev.commit(persist_id="nfo-test-7")
    with pytest.raises(DeviceError) as err:
        await dev.cancel_commit(persist_id="nfo-test-7")
    assert err.value.kind == "rpc"
    assert names(await dev.get_config("running", MINE)) == ["eth7"]


async def test_a_persistent_confirmed_commit_is_cancelled_by_its_token(
        demo: DemoDevice, dev: Device) -> None:
    await dev.edit_config("candidate", iface("eth8"))
    await dev.commit()
    async with session(demo) as other:
        await other.edit_config("candidate", iface("eth9"))
        await other.commit(confirmed=True, persist="nfo-test-9")
    with pytest.raises(DeviceError):  # not its token
        await dev.cancel_commit(persist_id="nfo-test-other")
    assert names(await dev.get_config("running", MINE)) == ["eth8", "eth9"]
    await dev.cancel_commit(persist_id="nfo-test-9")
    assert names(await dev.get_config("running", MINE)) == ["eth8"]


async def test_cancel_commit_restores_running(dev: Device) -> None:
    await dev.edit_config("candidate", iface("eth4"))
    await dev.commit()
    await dev.edit_config("candidate", iface("eth5"))
    await dev.commit(confirmed=True)
    assert names(await dev.get_config("running", MINE)) == ["eth4", "eth5"]
    await dev.cancel_commit()
    assert names(await dev.get_config("running", MINE)) == ["eth4"]


async def test_commit_timeout_and_persist_need_confirmed(dev: Device) -> None:
    with pytest.raises(ValueError):
        await dev.commit(timeout=10)
    with pytest.raises(ValueError):
        await dev.commit(persist="x")


async def test_get_schema_returns_the_demo_module(dev: Device) -> None:
    text = await dev.get_schema("nfo-demo-router")
    assert text.strip() == MODULE.read_text().strip()
    with pytest.raises(DeviceError) as err:
        await dev.get_schema("no-such-module")
    assert err.value.kind == "rpc"


async def test_any_rpc_returns_its_reply(dev: Device) -> None:
    reply = await dev.rpc('<get><filter type="subtree"><netconf-state xmlns="urn:ietf:params:'
                          'xml:ns:yang:ietf-netconf-monitoring"><sessions/></netconf-state>'
                          "</filter></get>")
    assert reply.name == "rpc-reply"
    data = reply.child("data", NC)
    assert data is not None and b"<session-id>" in data.content_xml()
    with pytest.raises(DeviceError) as err:
        await dev.rpc('<no-such-operation xmlns="urn:example:none"/>')
    assert err.value.kind == "rpc" and err.value.tag is not None


async def test_malformed_request_is_refused_before_sending(dev: Device) -> None:
    with pytest.raises(DeviceError) as err:
        await dev.edit_config("candidate", f'<interfaces xmlns="{RTR}">')
    assert err.value.kind == "protocol" and not err.value.temporary
    with pytest.raises(ValueError):
        await dev.get_config("running/><x")
    assert await dev.get_config("running", MINE) == ""


async def test_close_is_idempotent_and_ends_the_session(demo: DemoDevice) -> None:
    d = await Device.connect(demo.endpoint())
    await d.close()
    await d.close()
    with pytest.raises(DeviceError) as err:
        await d.get_config()
    assert err.value.kind == "connect"


async def test_two_sessions_side_by_side(demo: DemoDevice) -> None:
    async with session(demo) as a, session(demo) as b:
        assert a.session_id != b.session_id
        got = await asyncio.gather(a.get_config("running", MINE), b.get_config("running", MINE),
                                   a.get_config("candidate", MINE), a.discard_changes())
        assert got == ["", "", "", None]  # one session's calls wait for each other


# -- refusals and failures ----------------------------------------------------------------


async def test_the_expected_host_key_is_accepted(demo: DemoDevice) -> None:
    async with session(demo, host_key=demo.host_key()) as d:
        assert d.host_key == demo.host_key()


def _other_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


async def refusal(ep: Endpoint) -> DeviceError:
    with pytest.raises(DeviceError) as err:
        await Device.connect(ep)
    return err.value


@pytest.mark.parametrize(("change", "kind"), [
    ({"host_key": "other"}, "host-key"),
    ({"host_key": "ssh-ed25519 not-base64"}, "host-key"),
    ({"private_key": "other"}, "auth"),
    ({"private_key": None, "password": "s3cret-pw"}, "auth"),  # sshd takes keys only
    ({"private_key": "-----BEGIN NONSENSE-----"}, "auth"),
    ({"private_key": None}, "auth"),
], ids=["other-host-key", "host-key-no-key", "other-private-key", "password", "bad-key-text",
        "no-credential"])
async def test_refusals_are_permanent(demo: DemoDevice, change: dict[str, object],
                                      kind: str) -> None:
    if change.get("host_key") == "other":
        change = {"host_key": _other_key().export_public_key().decode()}
    if change.get("private_key") == "other":
        change = {"private_key": _other_key().export_private_key().decode()}
    err = await refusal(demo.endpoint(**change))
    assert (err.kind, err.temporary) == (kind, False)


async def test_closed_port_is_a_temporary_connect_error() -> None:
    port = free_port(socket.SOCK_STREAM)
    err = await refusal(Endpoint("127.0.0.1", port, "admin", password="x"))
    assert (err.kind, err.temporary) == ("connect", True)


async def test_a_listener_that_never_speaks_ssh_is_a_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        ep = Endpoint("127.0.0.1", silent.getsockname()[1], "admin", password="x",
                      connect_timeout=0.5)
        err = await refusal(ep)
    assert (err.kind, err.temporary) == ("timeout", True)


async def test_credentials_are_never_shown(demo: DemoDevice) -> None:
    password = "pw-that-must-not-leak"
    ep = demo.endpoint(password=password)
    key_text = demo.key.export_private_key().decode()
    key_body = key_text.splitlines()[1]
    for text in (repr(ep), str(ep)):
        assert password not in text and key_body not in text
    wrong = _other_key().export_private_key().decode()
    for bad in (demo.endpoint(private_key=wrong, password=password),
                demo.endpoint(private_key="-----BEGIN " + key_body)):
        err = await refusal(bad)
        for text in (str(err), repr(err), err.reason):
            assert password not in text and key_body not in text


async def test_a_dead_device_is_a_temporary_connect_error(own_demo: DemoDevice) -> None:
    async with session(own_demo) as d:
        own_demo.stop()
        with pytest.raises(DeviceError) as err:
            await d.get_config()
        assert err.value.kind == "connect" and err.value.temporary
