"""``netconf-device``: a real NETCONF device that runs as a network function on the local VIM.

Why it exists: nfo configures the NFs it deploys over NETCONF (:mod:`nfo.device`), and that
path needs a device that is not nfo itself.  This launcher runs Debian's yuma123 ``netconfd``
with the demo module ``nfo-demo-router.yang`` behind a private OpenSSH ``sshd``, both as
its children, in one directory of its own:

``python -m nfo.drivers.local.netconf_device --port PORT --authorized-key "ssh-ed25519 ..."
[--dir DIR] [--host 127.0.0.1] [--startup-xml FILE]``

DIR (default: the current directory, which the ``local`` driver makes per instance) receives
the host key (made once by ``ssh-keygen``; kept across restarts, as a real device keeps
its key), ``sshd_config``, ``authorized_keys``, the startup datastore ``startup-cfg.xml``
(created empty when missing, replaced by ``--startup-xml``; netconfd saves every commit
into it) and ``netconfd.log``.  netconfd's socket lives in ``DIR/run`` (mode 0700): netconfd
makes it writable by everyone and believes the user name the subsystem announces, so only
the owner may reach it.  The SSH login user is the OS user running the launcher, and
netconfd's ``--superuser``: sshd only authenticates OS users, and netconfd refuses writes
from anyone else when access control is enforcing.

SIGTERM or SIGINT stops both children and exits 0; if either child dies the other is
stopped and the exit status is 1, so the local driver sees the NF fail.  Both children
are killed by the kernel when the launcher dies, even by ``kill -9`` (PR_SET_PDEATHSIG), so
a restarted device can bind its port again.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MODULE", "DeviceFiles", "main", "prepare", "sshd_config"]

log = logging.getLogger("nfo.netconf_device")

MODULE = Path(__file__).resolve().parent / "nfo-demo-router.yang"
"""The demo NF's YANG module."""

EMPTY_STARTUP = '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>\n'
SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_PR_SET_PDEATHSIG = 1
_UNQUOTABLE = re.compile(r"[\s\"'\\#$`;&|<>()*?\[\]{}~]")
_SUN_PATH_MAX = 107
_KEY_LINE = re.compile(r"(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\r\n]*)?")


class LaunchError(Exception):
    """The device cannot start; the message says why."""


@dataclass(frozen=True)
class DeviceFiles:
    """Where one device keeps its files."""

    dir: Path

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def sshd_config(self) -> Path:
        return self.dir / "sshd_config"

    @property
    def authorized_keys(self) -> Path:
        return self.dir / "authorized_keys"

    @property
    def startup(self) -> Path:
        return self.dir / "startup-cfg.xml"

    @property
    def log(self) -> Path:
        return self.dir / "netconfd.log"

    @property
    def socket(self) -> Path:
        """In ``DIR/run``; when that path is too long for a socket address, in a private
        directory of the temporary directory named after ``DIR`` (same on every start)."""
        near = self.dir / "run" / "ncx.sock"
        if len(str(near).encode()) <= _SUN_PATH_MAX:
            return near
        tag = hashlib.sha256(str(self.dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"nfo-netconf-{os.geteuid()}-{tag}" / "ncx.sock"


def _program(name: str) -> str:
    found = shutil.which(name, path=SEARCH_PATH + os.pathsep + os.environ.get("PATH", ""))
    if found is None:
        raise LaunchError(f"{name} is not installed (Debian packages netconfd and "
                          "openssh-server)")
    return found


def sshd_config(files: DeviceFiles, host: str, port: int, user: str,
                subsystem: str) -> str:
    """The sshd configuration: keys only, one user, the netconf subsystem and nothing else."""
    return "\n".join([
        f"ListenAddress {host}",
        f"Port {port}",
        f"HostKey {files.host_key}",
        f"AuthorizedKeysFile {files.authorized_keys}",
        f"AllowUsers {user}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PidFile none",
        "PermitRootLogin prohibit-password",
        "AllowTcpForwarding no",
        "AllowAgentForwarding no",
        "AllowStreamLocalForwarding no",
        "X11Forwarding no",
        "PermitTunnel no",
        "PermitUserRC no",
        "PrintMotd no",
        "ClientAliveInterval 30",
        f"Subsystem netconf {subsystem} --ncxserver-sockname={port}@{files.socket}",
        "",
    ])


def prepare(dir_: Path, *, host: str, port: int, authorized_keys: list[str],
            startup_xml: Path | None = None) -> DeviceFiles:
    """Write what the two daemons need into ``dir_`` (see the module docstring)."""
    files = DeviceFiles(dir_.resolve())
    if _UNQUOTABLE.search(str(files.dir)):
        raise LaunchError(f"the device directory {str(files.dir)!r} has characters sshd_config "
                          "cannot carry (white space, quotes or shell syntax)")
    if len(str(files.socket).encode()) > _SUN_PATH_MAX:
        raise LaunchError(f"no socket path short enough for {str(files.dir)!r}")
    if not authorized_keys:
        raise LaunchError("at least one --authorized-key is needed (sshd accepts keys only)")
    for key in authorized_keys:
        if not _KEY_LINE.fullmatch(key.strip()):
            raise LaunchError("an --authorized-key is not one OpenSSH public-key line")
    files.dir.mkdir(parents=True, exist_ok=True)
    if not files.host_key.exists():
        subprocess.run([_program("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C",
                        "nfo-demo-device", "-f", str(files.host_key)],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    _write(files.authorized_keys, "".join(k.strip() + "\n" for k in authorized_keys))
    user = pwd.getpwuid(os.geteuid()).pw_name
    _write(files.sshd_config, sshd_config(files, host, port, user,
                                          _program("netconf-subsystem")))
    if startup_xml is not None:
        _write(files.startup, startup_xml.read_text(encoding="utf-8"))
    elif not files.startup.exists():
        _write(files.startup, EMPTY_STARTUP)
    run = files.socket.parent
    run.mkdir(mode=0o700, exist_ok=True)
    st = run.lstat()  # in a shared temporary directory: ours, a directory, not a link
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise LaunchError(f"{str(run)!r} is not a directory of this user")
    run.chmod(0o700)
    files.socket.unlink(missing_ok=True)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    return files


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when the launcher dies, and the signal
    mask the launcher blocked for itself is lifted."""
    libc = ctypes.CDLL(None, use_errno=True)

    def run() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # died before prctl took effect
            os._exit(1)

    return run


def _netconfd_argv(files: DeviceFiles, port: int, user: str,
                   target: str = "candidate") -> list[str]:
    return [_program("netconfd"), f"--module={MODULE}", f"--ncxserver-sockname={files.socket}",
            f"--port={port}", f"--startup={files.startup}", f"--target={target}",
            f"--superuser={user}", f"--log={files.log}", "--log-append", "--with-url=false"]


class _Children:
    """The two daemons; stopping is idempotent."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str],
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=_die_with(os.getpid()))
        self.procs[name] = proc
        return proc

    def dead(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in self.procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_WAKE = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


def _wait_for_socket(files: DeviceFiles, kids: _Children) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not files.socket.exists():
        if (dead := kids.dead()) is not None:
            raise LaunchError(f"{dead[0]} exited with status {dead[1]} while starting "
                              f"(see {files.log})")
        if time.monotonic() > deadline:
            raise LaunchError(f"netconfd did not open its socket within {READY_TIMEOUT:g} s")
        if signal.sigtimedwait({signal.SIGTERM, signal.SIGINT}, 0.01) is not None:
            raise _Stopped()


class _Stopped(Exception):
    """SIGTERM or SIGINT while starting."""


def run(files: DeviceFiles, port: int, target: str = "candidate") -> int:
    """Start netconfd, then sshd once netconfd listens; wait for a signal or a death.
    ``target``: where edits go, ``candidate`` or ``running`` (a device without a
    candidate datastore)."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    netconfd_argv = _netconfd_argv(files, port, user, target)
    sshd_argv = [_program("sshd"), "-D", "-e", "-f", str(files.sshd_config)]
    signal.pthread_sigmask(signal.SIG_BLOCK, _WAKE)
    kids = _Children()
    try:
        # netconfd keeps ~/.yuma/startup-cfg-txid.txt: devices started together under one
        # HOME race for it (netconfd exits 18, "Read txid file failed"); each has its own
        kids.start("netconfd", netconfd_argv, {**os.environ, "HOME": str(files.dir)})
        _wait_for_socket(files, kids)
        kids.start("sshd", sshd_argv)
        log.info("netconf device on port %d (netconfd %d, sshd %d), login user %s", port,
                 kids.procs["netconfd"].pid, kids.procs["sshd"].pid, user)
        while True:
            if (dead := kids.dead()) is not None:
                log.error("%s exited with status %d: stopping the device", *dead)
                return 1
            info = signal.sigwaitinfo(_WAKE)
            if info.si_signo != signal.SIGCHLD:
                log.info("netconf device stopping (signal %d)", info.si_signo)
                return 0
    except _Stopped:
        return 0
    except (LaunchError, OSError) as e:
        log.error("netconf device: %s", e)
        return 1
    finally:
        kids.stop()
        files.socket.unlink(missing_ok=True)
        if files.socket.parent != files.dir / "run":
            with contextlib.suppress(OSError):
                files.socket.parent.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nfo.drivers.local.netconf_device",
                                     description="netconfd behind a private sshd")
    parser.add_argument("--port", type=int, required=True, help="the SSH (NETCONF) port")
    parser.add_argument("--host", default="127.0.0.1", help="the address sshd listens on")
    parser.add_argument("--authorized-key", action="append", default=[], metavar="KEY",
                        help="an OpenSSH public-key line allowed to log in (repeatable)")
    parser.add_argument("--dir", type=Path, default=Path.cwd(),
                        help="the device's directory (default: the current one)")
    parser.add_argument("--startup-xml", type=Path, default=None,
                        help="a <config> document that becomes the startup datastore")
    parser.add_argument("--target", choices=["candidate", "running"], default="candidate",
                        help="where edits go: running makes a device without a candidate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    if not 0 < args.port < 65536:
        log.error("netconf device: --port %d is not a port number", args.port)
        return 2
    try:
        files = prepare(args.dir, host=args.host, port=args.port,
                        authorized_keys=args.authorized_key, startup_xml=args.startup_xml)
    except (LaunchError, OSError, subprocess.CalledProcessError) as e:
        log.error("netconf device: %s", e)
        return 1
    return run(files, args.port, args.target)
