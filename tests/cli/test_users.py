"""``nfo user ...``, the recovery path for accounts: real child processes on a real state
directory, with and without a running ``nfo serve`` (then through its control socket)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import pwd
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import httpx
import pytest
from ncclient import manager

from nfo.cli.control import (
    OPERATIONS,
    Request,
    encode_request,
    error_reply,
    parse_reply,
    parse_request,
)
from nfo.errors import DataMissing, NfoError
from tests.waiting import wait_for

NFO = [sys.executable, "-m", "nfo"]
USERS = "/restconf/data/nfo-users:users"
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl "
       "op@host")


def nfo(state: Path, *args: str, stdin: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*NFO, "--state-dir", str(state), *args], capture_output=True,
                         text=True, timeout=60, input=stdin,
                         stdin=subprocess.DEVNULL if stdin is None else None)
    if check:
        assert res.returncode == 0, res.stderr
    return res


class Server:
    """``nfo serve`` in a child process, RESTCONF on a free port, NETCONF off."""

    def __init__(self, state: Path, log: Path, *opts: str, netconf: bool = False) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*NFO, "--state-dir", str(state), *opts, "serve", "--restconf", "127.0.0.1:0",
                 "--netconf", "127.0.0.1:0" if netconf else "off"], stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.url = ""
        self.netconf_port = 0

    def output(self) -> str:
        return self.log.read_text()

    def ready(self, timeout: float = 30) -> Server:
        deadline = time.monotonic() + timeout
        while "serving state directory" not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nfo serve did not start:\n{self.output()}")
            time.sleep(0.02)
        line = next(x for x in self.output().splitlines() if "RESTCONF on " in x)
        self.url = line.split("RESTCONF on ", 1)[1].removesuffix("/restconf")
        nc = [x for x in self.output().splitlines() if "NETCONF over SSH on " in x]
        if nc:
            self.netconf_port = int(nc[0].rsplit(":", 1)[1])
        return self

    def status(self, user: str, password: str) -> int:
        return httpx.get(self.url + USERS, auth=(user, password), timeout=30).status_code

    def write_status(self, user: str, password: str, target: str) -> int:
        return httpx.put(self.url + f"{USERS}/user={target}/enabled",
                         auth=(user, password), json={"nfo-users:enabled": True},
                         headers={"Content-Type": "application/yang-data+json"},
                         timeout=30).status_code

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def serving() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        s.kill()


def start(serving: list[Server], state: Path, log: Path, *opts: str,
          netconf: bool = False) -> Server:
    s = Server(state, log, *opts, netconf=netconf)
    serving.append(s)
    return s.ready()


def control(state: Path, payload: bytes, *, shut: bool = True) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(state / "control.sock"))
        try:
            s.sendall(payload)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        try:
            while chunk := s.recv(65536):
                buf += chunk
        except ConnectionResetError:
            pass
    reply: dict[str, object] = json.loads(buf)
    return reply


def listing(state: Path) -> dict[str, tuple[str, str]]:
    out = nfo(state, "user", "list").stdout
    return {f[0]: (f[1], f[2]) for f in (line.split() for line in out.splitlines())}


def test_user_added_offline_logs_in_once_the_server_runs(tmp_path: Path,
                                                         serving: list[Server]) -> None:
    state = tmp_path / "state"
    added = nfo(state, "user", "add", "alice", "--group", "admin", "--password-stdin",
                stdin="alice-pw-1\n")
    assert added.stdout.strip() == "added user alice (groups admin)"
    nfo(state, "user", "add", "bob", "--password-stdin", stdin="bob pw 2\n")
    assert not (state / "control.sock").exists()

    srv = start(serving, state, tmp_path / "serve.out")
    assert srv.status("alice", "alice-pw-1") == 200
    assert srv.status("bob", "bob pw 2") == 200  # reading is permitted by default
    assert srv.status("bob", "bob pw 2\n") == 401  # only the newline was stripped
    assert srv.status("alice", "alice-pw-1") == 200
    assert srv.write_status("alice", "alice-pw-1", "bob") in (201, 204)
    assert srv.write_status("bob", "bob pw 2", "alice") == 403
    assert listing(state) == {"alice": ("enabled", "admin"), "bob": ("enabled", "-")}
    assert srv.stop() == 0
    out = srv.output()
    assert "created user 'admin'" not in out  # accounts existed: no generated admin
    for secret in ("alice-pw-1", "bob pw 2"):
        assert secret not in out


def test_changes_while_serving_take_effect_at_once(tmp_path: Path,
                                                   serving: list[Server]) -> None:
    state = tmp_path / "state"
    nfo(state, "user", "add", "alice", "--group", "admin", "--password-stdin",
        stdin="old-secret-1\n")
    srv = start(serving, state, tmp_path / "serve.out", "-v")
    assert srv.status("alice", "old-secret-1") == 200  # and now remembered by the server

    changed = nfo(state, "user", "passwd", "alice", "--password-stdin", stdin="new-secret-2\n")
    assert changed.stdout.strip() == "changed the password of alice"
    assert srv.status("alice", "old-secret-1") == 401
    assert srv.status("alice", "new-secret-2") == 200

    nfo(state, "user", "disable", "alice")
    assert listing(state)["alice"] == ("disabled", "admin")
    assert srv.status("alice", "new-secret-2") == 401
    nfo(state, "user", "enable", "alice")
    assert srv.status("alice", "new-secret-2") == 200

    nfo(state, "user", "remove", "alice")
    assert srv.status("alice", "new-secret-2") == 401
    assert "alice" not in listing(state)
    missing = nfo(state, "user", "remove", "alice", check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("nfo: error: data-missing")

    assert srv.stop() == 0
    out = srv.output()
    assert "control socket: user-passwd alice" in out  # it went through the server
    for secret in ("old-secret-1", "new-secret-2"):
        assert secret not in out
    assert not (state / "control.sock").exists()


def test_keys_groups_and_listing_while_serving(tmp_path: Path, serving: list[Server]) -> None:
    state = tmp_path / "state"
    nfo(state, "user", "add", "carol", "--no-password", "--disabled")
    srv = start(serving, state, tmp_path / "serve.out")
    nfo(state, "user", "group", "add", "carol", "ops", "dev")
    assert listing(state) == {"carol": ("disabled", "dev,ops")}
    keyfile = tmp_path / "carol.pub"
    keyfile.write_text(f"# carol's laptop\n{KEY}\n")
    assert KEY in nfo(state, "user", "key", "add", "carol", "--file", str(keyfile)).stdout
    again = nfo(state, "user", "key", "add", "carol", *KEY.split(), check=False)
    assert again.returncode == 1 and "nfo: error: data-exists" in again.stderr
    nfo(state, "user", "key", "remove", "carol", KEY)
    gone = nfo(state, "user", "key", "remove", "carol", KEY, check=False)
    assert gone.returncode == 1 and "no such key" in gone.stderr
    assert srv.stop() == 0
    assert listing(state) == {"carol": ("disabled", "dev,ops")}  # and without a server


def test_one_server_per_state_directory(tmp_path: Path, serving: list[Server]) -> None:
    state = tmp_path / "state"
    nfo(state, "user", "add", "alice", "--group", "admin", "--password-stdin",
        stdin="pw-alice-1\n")
    srv = start(serving, state, tmp_path / "serve.out")

    second = Server(state, tmp_path / "second.out")
    serving.append(second)
    assert second.proc.wait(timeout=30) == 1
    assert "nfo: error: in-use: another nfo serves this state directory" in second.output()

    removal = nfo(state, "module", "remove", "ex-none", check=False)
    assert removal.returncode == 1 and "stop the server first" in removal.stderr

    assert srv.status("alice", "pw-alice-1") == 200  # the first one is unharmed
    assert srv.proc.poll() is None

    # a crashed server leaves its socket behind but not its lock
    srv.kill()
    assert (state / "control.sock").exists()
    assert listing(state) == {"alice": ("enabled", "admin")}
    srv = start(serving, state, tmp_path / "again.out")
    assert srv.status("alice", "pw-alice-1") == 200
    assert listing(state) == {"alice": ("enabled", "admin")}


def test_control_socket_answers_bad_requests_and_keeps_serving(tmp_path: Path,
                                                               serving: list[Server]) -> None:
    state = tmp_path / "state"
    nfo(state, "user", "add", "alice", "--group", "admin", "--password-stdin",
        stdin="pw-alice-1\n")
    srv = start(serving, state, tmp_path / "serve.out")
    sock = state / "control.sock"
    assert stat.S_ISSOCK(sock.lstat().st_mode)
    assert stat.S_IMODE(sock.lstat().st_mode) == 0o600

    def error(payload: bytes, **kw: bool) -> dict[str, str]:
        reply = control(state, payload, **kw)
        assert set(reply) == {"error"}, reply
        err = reply["error"]
        assert isinstance(err, dict)
        return err

    assert error(b"garbage\n")["tag"] == "malformed-message"
    assert error(b"\xff\xfe\n")["tag"] == "malformed-message"
    assert error(b"[1, 2]\n")["tag"] == "malformed-message"
    assert error(b"[" * 60_000 + b"\n")["tag"] == "malformed-message"
    assert error(b'{"op": "rm -rf"}\n')["tag"] == "operation-not-supported"
    assert error(b'{"op": "user-add"}\n')["tag"] == "missing-element"
    assert error(b'{"op": "user-list", "x": 1}\n')["tag"] == "unknown-element"
    wrong = error(b'{"op": "user-passwd", "name": "alice", "password": ["leaked-secret"]}\n')
    assert wrong["tag"] == "invalid-value" and "leaked-secret" not in json.dumps(wrong)
    weak = error(b'{"op": "user-passwd", "name": "alice", "password": " "}\n')
    assert weak["tag"] == "invalid-value" and weak["app-tag"] == "nfo-weak-password"
    assert error(b'{"op": "user-remove", "name": "nobody-here"}\n')["tag"] == "data-missing"
    assert error(b'{"op": "user-list"' + b" " * 70_000 + b"}\n")["tag"] == "too-big"
    assert error(b"x" * 200_000, shut=False)["tag"] == "too-big"

    ok = control(state, b'{"op": "user-list"}')  # end of input ends a request too
    assert ok == {"ok": [{"name": "alice", "enabled": True, "groups": ["admin"]}]}
    assert control(state, b'{"op": "user-disable", "name": "alice"}\n') == {"ok": None}
    assert srv.status("alice", "pw-alice-1") == 401
    assert srv.proc.poll() is None
    assert listing(state) == {"alice": ("disabled", "admin")}
    assert srv.stop() == 0
    assert "leaked-secret" not in srv.output()
    assert "Traceback" not in srv.output()


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def _connect_and_ask(path: str) -> str:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    try:
        s.connect(path)
    except PermissionError:
        return "connect: permission denied"
    try:
        s.sendall(b'{"op": "user-add", "name": "intruder", "password": "x-pw-1"}\n')
        s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before the request was read
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := s.recv(65536):
            data += chunk
    return data.decode()


def as_uid(uid: int, gid: int, path: Path) -> str:
    """What :func:`_connect_and_ask` gets in a forked child running as ``uid``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = _connect_and_ask(str(path))
        except BaseException as e:
            out = f"child failed: {e!r}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        got = f.read().decode()
    os.waitpid(pid, 0)
    return got


def test_control_socket_refuses_another_uid(serving: list[Server]) -> None:
    if os.geteuid() != 0:
        pytest.skip("connecting as another uid needs root")
    uid, gid = _nobody()

    # outside pytest's 0700 tmp tree, so that only the socket's own guards stand
    base = Path(tempfile.mkdtemp(prefix="nfo-uid-", dir="/tmp"))
    try:
        base.chmod(0o711)
        state = base / "state"
        nfo(state, "user", "add", "alice", "--password-stdin", stdin="pw-alice-1\n")
        srv = start(serving, state, base / "serve.out")
        sock = state / "control.sock"
        assert as_uid(uid, gid, sock) == "connect: permission denied"  # directory 0700, socket 0600
        state.chmod(0o711)
        assert as_uid(uid, gid, sock) == "connect: permission denied"  # socket 0600
        sock.chmod(0o666)
        reply = json.loads(as_uid(uid, gid, sock))
        assert reply["error"]["tag"] == "access-denied"
        assert srv.proc.poll() is None
        assert "intruder" not in listing(state)
        assert f"refused a peer running as uid {uid}" in srv.output()
        assert srv.stop() == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_passwords_only_from_stdin_or_a_terminal(tmp_path: Path) -> None:
    state = tmp_path / "state"
    no_tty = nfo(state, "user", "add", "alice", check=False)
    assert no_tty.returncode == 1
    assert "nfo: error:" in no_tty.stderr and "--password-stdin" in no_tty.stderr
    in_argv = nfo(state, "user", "add", "alice", "--password", "pw", check=False)
    assert in_argv.returncode == 2  # argparse: no such option
    empty = nfo(state, "user", "add", "alice", "--password-stdin", stdin="", check=False)
    assert empty.returncode == 1 and "no password on standard input" in empty.stderr
    blank = nfo(state, "user", "add", "alice", "--password-stdin", stdin="\n", check=False)
    assert blank.returncode == 1 and "must not be empty" in blank.stderr
    bad = nfo(state, "user", "add", "no/slash", "--password-stdin", stdin="pw\n", check=False)
    assert bad.returncode == 1 and "nfo: error: invalid-value" in bad.stderr
    assert nfo(state, "user", "list").stdout == ""
    missing = nfo(state, "user", "passwd", "ghost", "--password-stdin", stdin="pw\n",
                  check=False)
    assert missing.returncode == 1 and "no user 'ghost'" in missing.stderr


async def test_nfo_serve_keeps_one_login_throttle_for_both_front_ends(
        tmp_path: Path, serving: list[Server]) -> None:
    """``nfo serve`` with its defaults: 12 RESTCONF clients and 8 NETCONF connections at
    a time guess admin's password from 127.0.0.2-5; admin logs in over both front ends
    from 127.0.0.1 meanwhile; the counters (read over RESTCONF) hold the failures of
    both; the log has them without a password, summarised beyond 20 a minute."""
    state = tmp_path / "state"
    nfo(state, "user", "add", "admin", "--group", "admin", "--password-stdin",
        stdin="admin-pw-1\n")  # set without the server: it has to hash it
    srv = start(serving, state, tmp_path / "serve.out", netconf=True)
    stop = asyncio.Event()
    seen: Counter[str] = Counter()
    guesses = iter(range(10**9))

    async def restconf(address: str) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=address)
        async with httpx.AsyncClient(transport=transport, timeout=60, trust_env=False) as c:
            while not stop.is_set():
                r = await c.get(srv.url + USERS, auth=("admin", f"guess-{next(guesses)}"))
                seen[f"restconf {r.status_code}"] += 1
                await asyncio.sleep(0.01 if r.status_code == 429 else 0)

    class Guesser(asyncssh.SSHClient):
        def password_auth_requested(self) -> str:
            seen["netconf offers"] += 1
            return f"guess-{next(guesses)}"

    async def netconf(address: str) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncssh.Error, OSError):
                conn = await asyncssh.connect(
                    "127.0.0.1", srv.netconf_port, local_addr=(address, 0), username="admin",
                    known_hosts=None, client_keys=None, agent_path=None, password=None,
                    preferred_auth="password", client_factory=Guesser, login_timeout=60)
                conn.close()
                raise AssertionError("a guess logged in")

    addresses = [f"127.0.0.{2 + i % 4}" for i in range(20)]
    tasks = [asyncio.create_task(restconf(a)) for a in addresses[:12]]
    tasks += [asyncio.create_task(netconf(a)) for a in addresses[12:]]
    try:
        await wait_for(lambda: seen["restconf 429"] >= 100 and seen["netconf offers"] >= 24,
                       120, "the flood to be throttled", show=lambda: seen)
        async with httpx.AsyncClient(timeout=60, trust_env=False) as c:
            r = await c.get(srv.url + USERS + "/login-statistics",
                            auth=("admin", "admin-pw-1"))
        assert r.status_code == 200, r.text

        def netconf_login() -> str:
            with manager.connect(host="127.0.0.1", port=srv.netconf_port, username="admin",
                                 password="admin-pw-1", hostkey_verify=False,
                                 look_for_keys=False, allow_agent=False, timeout=60) as m:
                return str(m.get(("subtree", '<users xmlns="urn:nfo:users"><login-statistics/>'
                                             "</users>")).data_xml)
        assert "<throttled-logins>" in await asyncio.to_thread(netconf_login)
    finally:
        stop.set()
        async with asyncio.timeout(120):
            await asyncio.gather(*tasks)
    async with httpx.AsyncClient(timeout=60, trust_env=False) as c:
        r = await c.get(srv.url + USERS, auth=("admin", "admin-pw-1"))
    users = r.json()["nfo-users:users"]
    stats = {k: int(v) for k, v in users["login-statistics"].items()}
    restconf_failures = seen["restconf 401"] + seen["restconf 429"]
    assert seen["restconf 200"] == 0
    assert stats["throttled-logins"] >= seen["restconf 429"] >= 100
    admin = next(u for u in users["user"] if u["name"] == "admin")
    assert int(admin["failed-logins"]) == stats["failed-logins"] > restconf_failures
    assert stats["checked-passwords"] < 0.1 * stats["failed-logins"]
    assert srv.stop() == 0
    out = srv.output()
    for front_end in ("restconf", "netconf"):  # one by one, or in a summary
        assert re.search(rf"user 'admin' from 127\.0\.0\.[2-5] over {front_end}: (wrong "
                         r"password|refused without a check|\d+)", out), front_end
    assert re.search(r"login failed \d+ more times in the last 60 s \(not logged one by one\)"
                     r": user 'admin' from 127\.0\.0\.[2-5] over (restconf|netconf): \d+", out)
    assert "guess-" not in out and "admin-pw-1" not in out


def test_recovery_from_a_flood_on_the_same_address(tmp_path: Path,
                                                   serving: list[Server]) -> None:
    """Guesses from the administrator's own address until the throttle refuses even the
    right password (429): ``nfo user unlock``, ``nfo user passwd`` and ``nfo user unlock
    --password-stdin`` each let the administrator back in at once, through the running
    server's control socket."""
    state = tmp_path / "state"
    nfo(state, "user", "add", "alice", "--group", "admin", "--password-stdin",
        stdin="alice-pw-1\n")
    srv = start(serving, state, tmp_path / "serve.out")
    guesses = iter(range(10**6))

    def flood(password: str) -> None:
        for i in guesses:
            if srv.status("alice", f"guess-number-{i}") == 429:
                break
        assert srv.status("alice", password) == 429  # indistinguishable: refused too

    flood("alice-pw-1")
    assert nfo(state, "user", "unlock", "alice").stdout.strip() == (
        "cleared the login throttle's record of alice")
    assert srv.status("alice", "alice-pw-1") == 200
    nfo(state, "user", "passwd", "alice", "--password-stdin", stdin="alice-pw-2\n")
    flood("alice-pw-3")
    assert srv.status("alice", "alice-pw-2") == 200  # set through the server: recognised
    missing = nfo(state, "user", "unlock", "nobody", check=False)
    assert missing.returncode == 1 and "nfo: error: data-missing" in missing.stderr
    assert srv.stop() == 0
    out = srv.output()

    srv = start(serving, state, tmp_path / "again.out")  # nothing remembered now
    flood("alice-pw-2")
    wrong = nfo(state, "user", "unlock", "alice", "--password-stdin", stdin="nope-nope\n",
                check=False)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == ("nfo: error: invalid-value: that is not the password of "
                                    "user 'alice'")
    unlocked = nfo(state, "user", "unlock", "alice", "--password-stdin",
                   stdin="alice-pw-2\n")
    assert unlocked.stdout.strip() == ("cleared the login throttle's record of alice; its "
                                       "password logs in at once for 10 minutes")
    flood("alice-pw-3")  # the flood goes on ...
    assert srv.status("alice", "alice-pw-2") == 200  # ... and alice is in
    assert srv.stop() == 0
    out += srv.output()
    assert "control socket: user-unlock alice" in out
    assert "login failed: user 'alice' from 127.0.0.1 over restconf: wrong password" in out
    assert "refused without a check: too many failed logins" in out
    for secret in ("alice-pw-", "guess-number", "nope-nope"):
        assert secret not in out
    assert nfo(state, "user", "unlock", "alice").returncode == 0  # no server: nothing kept


SHORT = "nfo: error: invalid-value: the password must be at least 8 characters long"


def test_short_passwords_refused_on_every_path(tmp_path: Path, serving: list[Server]) -> None:
    """``nfo user add|passwd`` with and without a server, and NFO_ADMIN_PASSWORD at the
    first start: a password of fewer than 8 characters is refused with a clear message
    (never echoed)."""
    state = tmp_path / "state"
    for args in (("add", "alice"), ("add", "alice", "--group", "admin")):
        short = nfo(state, "user", *args, "--password-stdin", stdin="seven-7\n", check=False)
        assert short.returncode == 1 and short.stderr.strip() == SHORT
        assert "seven-7" not in short.stdout + short.stderr
    nfo(state, "user", "add", "alice", "--group", "admin", "--password-stdin",
        stdin="eight-88\n")
    short = nfo(state, "user", "passwd", "alice", "--password-stdin", stdin="tiny\n",
                check=False)
    assert short.returncode == 1 and short.stderr.strip() == SHORT

    srv = start(serving, state, tmp_path / "serve.out")  # now through the control socket
    for args in (("add", "bob"), ("passwd", "alice")):
        short = nfo(state, "user", *args, "--password-stdin", stdin="\u00e9\u00e9\u00e9\n",
                    check=False)
        assert short.returncode == 1 and short.stderr.strip() == SHORT
    assert srv.status("alice", "eight-88") == 200
    assert listing(state) == {"alice": ("enabled", "admin")}
    assert srv.stop() == 0
    assert "control socket: user-passwd alice" in srv.output()

    fresh = tmp_path / "fresh"
    first = subprocess.run([*NFO, "--state-dir", str(fresh), "serve", "--restconf", "off",
                            "--netconf", "off"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL,
                           env={**os.environ, "NFO_ADMIN_PASSWORD": "admin"})
    assert first.returncode == 1
    assert ("nfo: error: invalid-value: NFO_ADMIN_PASSWORD must be at least 8 characters "
            "long") in first.stderr
    assert "created user" not in first.stdout
    assert nfo(fresh, "user", "list").stdout == ""  # no account was made


def on_terminal(state: Path, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run ``nfo`` on a pseudo-terminal, typing each answer after each password prompt."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(sys.executable, [*NFO, "--state-dir", str(state), *args])
        finally:
            os._exit(127)
    out = b""
    typed = 0
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if typed < len(answers) and out.count(b"New password for") > typed:
                os.write(fd, answers[typed].encode() + b"\n")
                typed += 1
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child is gone
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_password_asked_twice_on_a_terminal(tmp_path: Path) -> None:
    state = tmp_path / "state"
    rc, out = on_terminal(state, ["user", "add", "alice"], ["tty-secret-1", "tty-secret-2"])
    assert rc == 1 and "the two passwords differ" in out, out
    rc, out = on_terminal(state, ["user", "add", "alice"], ["tty-secret-1", "tty-secret-1"])
    assert rc == 0 and "added user alice" in out, out
    assert "tty-secret" not in out  # not echoed
    assert listing(state) == {"alice": ("enabled", "-")}


def test_protocol_round_trip_and_replies() -> None:
    """The pure protocol functions: what the command line sends is what the server reads;
    a reply's error comes back as the same error-tag; a password never shows in a repr."""
    sample = {
        "user-add": Request("user-add", name="a", password=None, groups=("admin", "ops"),
                            enabled=False),
        "user-passwd": Request("user-passwd", name="a", password="pw-secret-9"),
        "user-key-add": Request("user-key-add", name="a", key=KEY),
        "user-groups-add": Request("user-groups-add", name="a", groups=("ops",)),
    }
    for op in OPERATIONS:
        req = sample.get(op, Request(op, name="" if op == "user-list" else "a"))
        assert parse_request(encode_request(req).rstrip(b"\n")) == req
    assert "pw-secret-9" not in repr(sample["user-passwd"])
    with pytest.raises(NfoError) as caught:
        parse_reply(error_reply(DataMissing("no user 'x'")))
    assert caught.value.tag == "data-missing" and caught.value.message == "no user 'x'"
    assert parse_reply(b'{"ok": [1]}\n') == [1]
    with pytest.raises(NfoError, match="no readable reply"):
        parse_reply(b"")
