"""The demo NETCONF device (netconfd behind sshd, nfo.drivers.local.netconf_device) started
for a test: a free port on 127.0.0.1, a directory of its own, a fresh ed25519 login key."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncssh
import pytest

from nfo.device import Endpoint
from tests.netutil import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0


def _accepting(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class DemoDevice:
    """One launcher process and what a client needs to reach it.  It runs in its directory
    without ``--dir``, as the local driver runs it."""

    def __init__(self, dir_: Path, *, port: int | None = None,
                 key: asyncssh.SSHKey | None = None, extra: tuple[str, ...] = ()) -> None:
        self.dir = dir_
        self.extra = extra
        self.port = port or free_port(socket.SOCK_STREAM)
        self.key = key or asyncssh.generate_private_key("ssh-ed25519")
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.dir / "launcher.log"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "nfo.drivers.local.netconf_device", "--port",
                str(self.port), "--authorized-key",
                self.key.export_public_key().decode().strip(), *self.extra]

    def env(self) -> dict[str, str]:
        """The environment that imports nfo from this checkout."""
        return dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))

    def start(self) -> DemoDevice:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=out, env=self.env(), cwd=self.dir)
        deadline = time.monotonic() + START_TIMEOUT
        while not _accepting(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the demo device did not start:\n{self.log.read_text()}")
            time.sleep(0.02)
        return self

    def endpoint(self, **kw: object) -> Endpoint:
        fields: dict[str, object] = {
            "host": "127.0.0.1", "port": self.port, "username": self.user,
            "private_key": self.key.export_private_key().decode(), "connect_timeout": 10.0,
            "rpc_timeout": 10.0}
        fields.update(kw)
        return Endpoint(**fields)  # type: ignore[arg-type]

    def host_key(self) -> str:
        """The device's public host key as an OpenSSH line without comment."""
        text = (self.dir / "ssh_host_ed25519_key.pub").read_text().split()
        return " ".join(text[:2])

    def children(self) -> list[int]:
        """The launcher's child processes (netconfd, sshd)."""
        assert self.proc is not None
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    out.append(int(entry.name))
        return out

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL; the launcher's exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
