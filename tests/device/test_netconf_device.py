"""The demo NETCONF device's launcher (nfo.drivers.local.netconf_device): its two children
live and die with it, it restarts in its own directory, and it refuses what it cannot run."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
from pathlib import Path

import asyncssh
import pytest

from nfo.device import Device, Endpoint
from nfo.drivers.local import LocalDriver
from nfo.drivers.local.netconf_device import MODULE, main, prepare
from nfo.registry.protocol import (
    ComputeNeeds,
    DriverContext,
    InstantiateRequest,
    VimAccount,
    WorkloadState,
)
from tests.device.demo import REPO, DemoDevice, alive
from tests.netutil import free_port
from tests.waiting import wait_for

RTR = "urn:nfo:demo-router"
ETH0 = f'<interfaces xmlns="{RTR}"><interface><name>eth0</name></interface></interfaces>'


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_the_demo_module_compiles_in_libyang() -> None:
    done = subprocess.run(["yanglint", str(MODULE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


async def test_sigterm_stops_both_children_and_exits_0(tmp_path: Path) -> None:
    dev = DemoDevice(tmp_path).start()
    kids = dev.children()
    assert sorted(comm(k) for k in kids) == ["netconfd", "sshd"]
    assert dev.stop() == 0
    assert not any(alive(k) for k in kids)
    assert not (tmp_path / "run" / "ncx.sock").exists()


async def test_kill_9_takes_the_children_and_a_restart_keeps_key_and_config(
        tmp_path: Path) -> None:
    dev = DemoDevice(tmp_path).start()
    try:
        async with await Device.connect(dev.endpoint()) as d:
            await d.edit_config("candidate", ETH0)
            await d.commit()
    except BaseException:
        dev.stop()
        raise
    host_key = dev.host_key()
    kids = dev.children()
    assert dev.proc is not None
    dev.proc.kill()
    dev.proc.wait()
    await wait_for(lambda: not any(alive(k) for k in kids), 10, "the children to die")
    again = DemoDevice(tmp_path, port=dev.port, key=dev.key).start()  # a stale socket is left
    try:
        async with await Device.connect(again.endpoint(host_key=host_key)) as d:
            running = await d.get_config("running", f'<interfaces xmlns="{RTR}"/>')
        assert "<name>eth0</name>" in running
    finally:
        assert again.stop() == 0


async def test_devices_started_together_all_run(tmp_path: Path) -> None:
    """netconfd keeps a transaction-id file under $HOME/.yuma: devices sharing one HOME
    raced for it at start (some exited 18); each netconfd now has its device's directory as
    HOME."""
    devs = [DemoDevice(tmp_path / f"d{i}") for i in range(8)]
    try:
        for d in devs:
            d.start()
        for d in devs:
            async with await Device.connect(d.endpoint()) as s:
                assert s.has_candidate
            homes = []
            for pid in d.children():
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                if Path(f"/proc/{pid}/exe").resolve().name == "netconfd":
                    homes += [e for e in env if e.startswith(b"HOME=")]
            assert homes == [f"HOME={d.dir.resolve()}".encode()]
    finally:
        for d in devs:
            d.stop()


async def test_a_dead_child_stops_the_device_with_a_failure(tmp_path: Path) -> None:
    dev = DemoDevice(tmp_path).start()
    try:
        kids = {comm(k): k for k in dev.children()}
        os.kill(kids["netconfd"], signal.SIGKILL)
        assert dev.proc is not None
        assert dev.proc.wait(10) == 1
        await wait_for(lambda: not alive(kids["sshd"]), 10, "sshd to stop")
        assert "netconfd exited" in dev.log.read_text()
    finally:
        dev.stop()


def test_a_busy_port_fails_the_device(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        dev = DemoDevice(tmp_path, port=busy.getsockname()[1])
        done = subprocess.run(dev.argv(), cwd=tmp_path, env=dev.env(), timeout=30,
                              capture_output=True, text=True)
    assert done.returncode == 1
    assert "sshd exited" in done.stderr


async def test_devices_side_by_side_keep_their_own_configuration(tmp_path: Path) -> None:
    devs = [DemoDevice(tmp_path / f"d{i}") for i in range(3)]
    try:
        for dev in devs:
            dev.start()
        for i, dev in enumerate(devs):
            async with await Device.connect(dev.endpoint()) as d:
                await d.edit_config("candidate", ETH0.replace("eth0", f"eth{i}"))
                await d.commit()
        for i, dev in enumerate(devs):
            async with await Device.connect(dev.endpoint()) as d:
                running = await d.get_config("running", f'<interfaces xmlns="{RTR}"/>')
            assert [n for n in ("eth0", "eth1", "eth2") if n in running] == [f"eth{i}"]
    finally:
        for dev in devs:
            if dev.proc is not None:
                dev.proc.send_signal(signal.SIGTERM)
        assert [dev.stop() for dev in devs] == [0, 0, 0]


async def test_startup_xml_seeds_the_configuration(tmp_path: Path) -> None:
    seed = tmp_path / "seed.xml"
    seed.write_text(f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{ETH0}</config>')
    dev = DemoDevice(tmp_path / "dev", extra=("--startup-xml", str(seed))).start()
    try:
        async with await Device.connect(dev.endpoint()) as d:
            assert "<name>eth0</name>" in await d.get_config("running")
    finally:
        dev.stop()


@pytest.mark.parametrize(("args", "said"), [
    ([], "at least one --authorized-key"),
    (["--authorized-key", "not a key"], "not one OpenSSH public-key line"),
    (["--authorized-key", "ssh-ed25519 AAAA", "--dir", "with space"], "cannot carry"),
], ids=["no-key", "bad-key", "bad-dir"])
def test_what_cannot_run_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                    args: list[str], said: str) -> None:
    if "--dir" not in args:
        args = [*args, "--dir", str(tmp_path)]
    else:
        args = [str(tmp_path / a) if a == "with space" else a for a in args]
    assert main(["--port", "2830", *args]) == 1
    assert said in caplog.text
    assert not (tmp_path / "sshd_config").exists()


def test_a_directory_too_deep_for_a_socket_address_keeps_its_socket_in_a_private_one(
        tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    files = prepare(deep, host="127.0.0.1", port=2830, authorized_keys=[key])
    assert not files.socket.is_relative_to(deep) and len(str(files.socket)) <= 107
    run = files.socket.parent
    try:
        st = run.lstat()
        assert st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o700
        again = prepare(deep, host="127.0.0.1", port=2830, authorized_keys=[key])
        assert again.socket == files.socket  # the same on every start
        assert str(files.socket) in files.sshd_config.read_text()
    finally:
        run.rmdir()


async def test_the_local_driver_runs_it_as_an_nf(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the driver passes PYTHONPATH on
    key = asyncssh.generate_private_key("ssh-ed25519")
    port = free_port(socket.SOCK_STREAM)
    deployment = {
        "command": ["{python}", "-m", "nfo.drivers.local.netconf_device", "--port",
                    "{param:port}", "--authorized-key", "{param:authorized-key}"],
        "readiness-probe": {"tcp": {"port": "{param:port}"}, "interval-ms": 50},
    }
    params = {"port": str(port), "authorized-key": key.export_public_key().decode().strip()}
    drv = LocalDriver(VimAccount("local", "nfo-vim:local", {}),
                      DriverContext(tmp_path / "vim", "test-device"))
    rid = (await drv.instantiate(InstantiateRequest("rtr1", "netconf-device", deployment,
                                                    params, ComputeNeeds(), 30.0))).resource_id
    try:
        async def running() -> bool:
            return (await drv.status(rid)).state is WorkloadState.RUNNING

        await wait_for(running, 20, "the device to run")
        ep = Endpoint("127.0.0.1", port, pwd.getpwuid(os.geteuid()).pw_name,
                      private_key=key.export_private_key().decode())
        async with await Device.connect(ep) as d:
            assert d.has_candidate
            assert (tmp_path / "vim" / "work" / "rtr1" / "startup-cfg.xml").exists()
    finally:
        await drv.terminate(rid)
        await drv.close()
    assert (await drv.status(rid)).state is WorkloadState.GONE
