"""``nfo serve`` under a connection flood (issue 12, finding 2), as a real child process
with both listeners on 127.0.0.1: idle connections by the thousand do not lock out an
authenticated client, and running out of file descriptors neither stops accepting for
good nor fills the log (one line per listener and interval, no traceback).
Durations are never asserted: timeouts are failure guards."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from ncclient import manager

NFO = [sys.executable, "-m", "nfo"]
PASSWORD = "flood-test-password"
USERS = "/restconf/data/nfo-users:users"
GUARD = 30.0


class Serve:
    """``nfo serve`` with RESTCONF and NETCONF on free ports; output in ``log``."""

    def __init__(self, tmp: Path, *opts: str, open_files: int | None = None) -> None:
        self.log = tmp / "serve.log"

        def limit() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*NFO, "--state-dir", str(tmp / "state"), "serve", "--restconf",
                 "127.0.0.1:0", "--netconf", "127.0.0.1:0", *opts],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "NFO_ADMIN_PASSWORD": PASSWORD}, preexec_fn=limit)
        self.wait_until(lambda: "serving state directory" in self.output(), "nfo serve to start")
        lines = self.output().splitlines()
        self.restconf = int(next(x for x in lines if "RESTCONF on " in x)
                            .rsplit(":", 1)[1].split("/")[0])
        self.netconf = int(next(x for x in lines if "NETCONF over SSH on " in x)
                           .rsplit(":", 1)[1])

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, probe: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + GUARD
        while not probe():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gave up waiting for {what}:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def restconf_ok(self) -> bool:
        with contextlib.suppress(httpx.TransportError):
            r = httpx.get(f"http://127.0.0.1:{self.restconf}{USERS}",
                          auth=("admin", PASSWORD), timeout=5)
            return r.status_code == 200
        return False

    def netconf_ok(self) -> bool:
        with manager.connect(host="127.0.0.1", port=self.netconf, username="admin",
                             password=PASSWORD, hostkey_verify=False, allow_agent=False,
                             look_for_keys=False, timeout=GUARD) as m:
            return bool(m.get_config("running").ok)

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=GUARD)
            finally:
                self.proc.kill()
        self.proc.wait()


@pytest.fixture
def serving() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        s.stop()


def flood(ports: tuple[int, ...], n: int) -> list[socket.socket]:
    """``n`` connections to each port that never send a byte."""
    socks = []
    for _ in range(n):
        for port in ports:
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            socks.append(s)
    return socks


def close(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def test_thousands_of_idle_connections_do_not_lock_out_a_client(
        tmp_path: Path, serving: list[Serve]) -> None:
    srv = Serve(tmp_path, "--restconf-max-connections", "64", "--restconf-header-timeout",
                "1", "--netconf-max-startups", "16", "--netconf-login-timeout", "1")
    serving.append(srv)
    socks = flood((srv.restconf, srv.netconf), 2000)
    try:
        srv.wait_until(srv.restconf_ok, "an authenticated RESTCONF request to succeed")
        assert srv.netconf_ok()
        # the caps bound what the flood holds (plus the server's own files)
        assert srv.open_files() < 64 + 16 + 64
    finally:
        close(socks)
    log = srv.output()
    assert "Traceback" not in log
    assert log.count("\n") < 40, log[-3000:]


def test_out_of_file_descriptors_is_survived_quietly(tmp_path: Path,
                                                      serving: list[Serve]) -> None:
    # limits above what the process may open: accept() itself fails with EMFILE
    srv = Serve(tmp_path, "--restconf-max-connections", "2000", "--netconf-max-startups",
                "2000", open_files=200)
    serving.append(srv)
    assert "may open 200 (ulimit -n)" in srv.output()
    socks = flood((srv.restconf, srv.netconf), 300)
    try:
        srv.wait_until(lambda: srv.output().count("cannot accept connections") == 2,
                       "both listeners to run out of file descriptors")
        time.sleep(1.5)  # retries go on meanwhile; they are not logged again
    finally:
        close(socks)
    srv.wait_until(srv.restconf_ok, "RESTCONF to accept and answer again")
    assert srv.netconf_ok()
    log = srv.output()
    assert "Traceback" not in log
    assert log.count("cannot accept connections (Too many open files)") == 2, log[-3000:]
