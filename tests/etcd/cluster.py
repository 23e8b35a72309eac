"""A real etcd cluster on loopback for tests and benchmarks: N members of Debian's
``etcd`` (3.4), each on its own client and peer port, state in a directory of its own.
Members can be killed (SIGKILL), stopped (SIGSTOP) and started again on their data, so
tests can take the leader away and watch the cluster elect another."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"  # Debian's etcd-client

__all__ = ["ETCD", "ETCDCTL", "EtcdCluster", "Member"]


def _free_tcp_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    """``size`` members under ``root``; :meth:`start` returns once every member answers
    and a leader is elected."""

    def __init__(self, root: Path, size: int = 3, *, token: str = "nfo-test") -> None:
        self.root = root
        ports = _free_tcp_ports(2 * size)
        self.members = [
            Member(f"m{i}", ports[2 * i], ports[2 * i + 1], root / f"m{i}",
                   root / f"m{i}.log")
            for i in range(size)
        ]
        self.token = token

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def url(self) -> str:
        """The cluster as ``nfo serve --store`` takes it."""
        return "etcd://" + ",".join(self.endpoints)

    @property
    def _initial(self) -> str:
        return ",".join(f"{x.name}=http://127.0.0.1:{x.peer_port}" for x in self.members)

    def save_snapshot(self, to: Path, member: int = 0) -> None:
        """``etcdctl snapshot save``, as docs/replicas.md tells an operator to back up."""
        _etcdctl("--endpoints", self.members[member].endpoint, "snapshot", "save", str(to))

    def restore(self, snapshot: Path) -> EtcdCluster:
        """Give every member the data of ``snapshot`` (``etcdctl snapshot restore``, etcd's
        disaster recovery), to :meth:`start` as a new cluster."""
        for m in self.members:
            _etcdctl("snapshot", "restore", str(snapshot), "--name", m.name,
                     "--data-dir", str(m.data_dir), "--initial-cluster", self._initial,
                     "--initial-cluster-token", self.token,
                     "--initial-advertise-peer-urls", f"http://127.0.0.1:{m.peer_port}")
        return self

    def _argv(self, m: Member) -> list[str]:
        initial = self._initial
        return [
            ETCD, "--name", m.name, "--data-dir", str(m.data_dir),
            "--listen-client-urls", f"http://127.0.0.1:{m.client_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{m.client_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-cluster", initial, "--initial-cluster-state", "new",
            "--initial-cluster-token", self.token,
            "--listen-metrics-urls", "",
            # as docs/replicas.md asks of a cluster for nfo: a group of state writes
            # (hundreds of records) is one transaction
            "--max-txn-ops", "10000", "--max-request-bytes", str(32 << 20),
            "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
        ]

    def start_member(self, i: int) -> None:
        m = self.members[i]
        assert not m.alive, f"{m.name} is running"
        m.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(m.log, "ab") as log:
            m.proc = subprocess.Popen(self._argv(m), stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        for i in range(len(self.members)):
            self.start_member(i)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every running member listens and the cluster has a leader."""
        deadline = time.monotonic() + timeout
        for m in self.members:
            if not m.alive:
                continue
            while not _answers(m):
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited:\n{m.log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd {m.name} did not answer in {timeout} s:\n"
                                       f"{m.log.read_text()[-3000:]}")
                time.sleep(0.05)

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` (its data stays: :meth:`start_member` brings it back)."""
        m = self.members[i]
        if m.proc is not None:
            m.proc.kill()
            m.proc.wait()
            m.proc = None

    def pause(self, i: int) -> None:
        p = self.members[i].proc
        assert p is not None
        os.kill(p.pid, signal.SIGSTOP)

    def resume(self, i: int) -> None:
        p = self.members[i].proc
        assert p is not None
        os.kill(p.pid, signal.SIGCONT)

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None:
                if m.proc.poll() is None:
                    os.kill(m.proc.pid, signal.SIGCONT)
                    m.proc.terminate()
                try:
                    m.proc.wait(5)
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait()
                m.proc = None

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _etcdctl(*args: str) -> None:
    done = subprocess.run([ETCDCTL, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ETCDCTL_API": "3"}, check=False)
    if done.returncode:
        raise RuntimeError(f"etcdctl {' '.join(args)}: {done.stderr or done.stdout}")


def _answers(m: Member) -> bool:
    """Whether the member serves its health endpoint (HTTP on the client port), with a
    leader known to it."""
    try:
        with socket.create_connection(("127.0.0.1", m.client_port), timeout=0.5) as s:
            s.sendall(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
            s.settimeout(2.0)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return False
    return b'"health":"true"' in data
