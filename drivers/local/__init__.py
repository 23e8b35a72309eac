"""The ``local`` driver: network functions run as supervised processes on the orchestrator host.

Why it exists: it is the smallest real VIM.  It lets nfo deploy, probe, adopt
and tear down actual network functions (see :mod:`nfo.drivers.local.udp_echo`)
without any cloud, so that the whole reconcile path -- including an
orchestrator restart in the middle of it -- can be exercised for real.

How it keeps the driver contract (:mod:`nfo.registry.protocol`):

- Each workload is one process started in its own session and process group
  (``start_new_session``), so it survives the orchestrator and can be stopped
  as a whole with ``killpg``.  Its environment carries ``NFO_INSTANCE``,
  ``NFO_OWNER`` and ``NFO_VIM`` (the VIM account): the tags that make adoption
  safe.  Every local VIM account of an installation sees the same host, so a
  driver adopts only what its own account started: otherwise, after a restart,
  a second account would claim the first one's processes (and terminate them
  as duplicates).
- Before ``instantiate`` returns, a record ``<state_dir>/<instance>.json`` is
  written atomically (temp file, fsync, rename, fsync of the directory) with
  the pid and the process start time (field 22 of ``/proc/<pid>/stat``).  The
  resource id is ``local-<pid>-<starttime>``: a pid that was reused by another
  process never matches it, so the driver never signals a stranger.
- Processes it started are reaped by the driver (exit status known).  After an
  orchestrator restart the processes are re-adopted through ``find``; their
  exit status is then unknowable (they are no longer our children), only
  ``/proc`` tells whether they live.
- ``close`` stops monitoring but leaves every workload running.

Privileges (:mod:`nfo.drivers.local.privileges`): a VIM's ``run-as-user``
starts its processes as that user (uid, primary and supplementary groups), in
a working directory given to that user; the user is recorded, and an adopted
process must still run as it.  Without it the processes run as nfo does, and
if that is root the driver says so once per VIM account.  A non-empty
``allowed-executable`` list restricts the programs to the listed files.

Processes are started with :class:`subprocess.Popen`, not asyncio's subprocess
API: an asyncio subprocess transport kills its child when it is closed or
garbage-collected, which would take the network functions down with a driver
that is merely shutting down.  The Popen objects live in a module-level table
so that any driver instance of this process can still reap them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from nfo.drivers.local.privileges import (
    RunAs,
    allowed_executable,
    give_directory,
    proc_uid,
    resolve_run_as,
)
from nfo.registry.protocol import (
    DriverContext,
    FinalCallback,
    InitResponse,
    InstantiateRequest,
    PermanentError,
    Status,
    TemporaryError,
    VimAccount,
    WorkloadState,
)

__all__ = ["DEFAULT_INTERVAL_MS", "DEFAULT_MAX_PROCESSES", "LocalDriver"]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_MS = 250
"""Probe interval when the descriptor gives none (the YANG default of ``interval-ms``)."""
DEFAULT_MAX_PROCESSES = 64
"""``max-processes`` when the VIM settings give none (its YANG default)."""
TERM_GRACE = 5.0
"""Seconds a workload has to exit after SIGTERM before it gets SIGKILL."""
KILL_WAIT = 5.0
"""Seconds to wait for the process to vanish after SIGKILL."""
WAIT_STEP = 0.05
LOG_TAIL_LINES = 8
LOG_TAIL_BYTES = 4096
INHERITED_ENV = ("PATH", "HOME", "LANG", "PYTHONPATH")
RECORD_VERSION = 1

_INSTANCE_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESOURCE_RE = re.compile(r"local-([0-9]+)-([0-9]+)")
_PLACEHOLDER_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")



# -- /proc ------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of ``pid``; None if there is none."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    try:
        # Field 2 (comm) is parenthesised and may contain anything: split after it.
        rest = data[data.rindex(b")") + 2:].split()
        return rest[0].decode("ascii", "replace"), int(rest[19])
    except (ValueError, IndexError):
        return None


def _proc_environ(pid: int) -> dict[str, str] | None:
    """The initial environment of ``pid``; None when it cannot be read."""
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            env[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def _proc_alive(pid: int, starttime: int) -> bool:
    """True if ``pid`` is the very process that started at ``starttime`` and has not exited."""
    st = _proc_stat(pid)
    return st is not None and st[1] == starttime and st[0] not in ("Z", "X", "x")


def _pid_exists(pid: int) -> bool:
    try:
        os.getpgid(pid)
    except OSError:
        return False
    return True


def _socket_inodes(kind: str, port: int) -> set[str]:
    """Inodes of local sockets bound to ``port`` (listening, for tcp)."""
    out: set[str] = set()
    for table in (f"/proc/net/{kind}", f"/proc/net/{kind}6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10 or int(f[1].rsplit(":", 1)[1], 16) != port:
                continue
            if kind == "tcp" and f[3] != "0A":
                continue
            out.add(f[9])
    return out


def _owns_port(pid: int, kind: str, port: int) -> bool:
    """Whether ``pid`` or a process of its group holds the socket bound to ``port``;
    True when procfs cannot tell (the probe answer has to do then)."""
    inodes = _socket_inodes(kind, port)
    if not inodes:
        return True
    try:
        pgid = os.getpgid(pid)
    except OSError:
        return False
    wanted = {f"socket:[{i}]" for i in inodes}
    # Another user's descriptors are unreadable without CAP_SYS_PTRACE.
    unreadable = False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        other = int(entry.name)
        try:
            if other != pid and os.getpgid(other) != pgid:
                continue
            for fd in os.scandir(f"/proc/{other}/fd"):
                if os.readlink(fd.path) in wanted:
                    return True
        except PermissionError:
            unreadable = True
        except OSError:
            continue
    return unreadable


def _parse_resource_id(resource_id: str) -> tuple[int, int] | None:
    m = _RESOURCE_RE.fullmatch(resource_id)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2))


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        return f"process killed by signal {-code} ({name})"
    return f"process exited with status {code}"


# -- records ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Probe:
    kind: str
    """``none``, ``tcp`` or ``udp``."""
    port: int = 0
    payload: str = ""
    expect: str = ""
    failure_timeout: int = 0
    """Seconds the probe may keep failing once the process ran (0: not probed then)."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "port": self.port, "payload": self.payload,
                "expect": self.expect, "failure-timeout": self.failure_timeout}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Probe:
        return cls(str(data["kind"]), int(data.get("port", 0)), str(data.get("payload", "")),
                   str(data.get("expect", "")), int(data.get("failure-timeout", 0)))


@dataclass
class _Record:
    """What ``<state_dir>/<instance>.json`` holds: enough to find, probe and stop the process."""

    instance: str
    resource_id: str
    pid: int
    starttime: int
    owner: str
    command: list[str]
    probe: _Probe
    interval_ms: int
    log_offset: int = 0
    """Size of the log when the process started: its own output begins there."""
    created: float = field(default_factory=time.time)
    user: str | None = None
    """The user it was started as (``run-as-user``); None: as nfo's own user."""
    uid: int | None = None
    """That user's uid: a process with another real uid is not this one."""

    def to_json(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "instance": self.instance,
                "resource-id": self.resource_id, "pid": self.pid, "starttime": self.starttime,
                "owner": self.owner, "command": self.command, "probe": self.probe.to_json(),
                "interval-ms": self.interval_ms, "log-offset": self.log_offset,
                "created": self.created, "user": self.user, "uid": self.uid}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Record:
        return cls(instance=str(data["instance"]), resource_id=str(data["resource-id"]),
                   pid=int(data["pid"]), starttime=int(data["starttime"]),
                   owner=str(data["owner"]), command=[str(c) for c in data["command"]],
                   probe=_Probe.from_json(data["probe"]), interval_ms=int(data["interval-ms"]),
                   log_offset=int(data.get("log-offset", 0)),
                   created=float(data.get("created", 0.0)),
                   user=None if data.get("user") is None else str(data["user"]),
                   uid=None if data.get("uid") is None else int(data["uid"]))


# -- probes -----------------------------------------------------------------------------


# Probes use asyncio.timeout(), not wait_for(): on Python 3.11 wait_for() swallows a
# cancellation that arrives as the awaited future completes, and a monitor task
# that misses its cancellation would probe forever.


async def _probe_tcp(port: int, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class _UdpProbeProtocol(asyncio.DatagramProtocol):
    def __init__(self, expected: bytes, result: asyncio.Future[bool]) -> None:
        self.expected = expected
        self.result = result

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if data == self.expected and not self.result.done():
            self.result.set_result(True)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: nobody listens (yet).
        if not self.result.done():
            self.result.set_result(False)


async def _probe_udp(port: int, payload: bytes, expected: bytes, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    result: asyncio.Future[bool] = loop.create_future()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProbeProtocol(expected, result), remote_addr=("127.0.0.1", port))
    except OSError:
        return False
    try:
        transport.sendto(payload)
        async with asyncio.timeout(timeout):
            return await result
    except (OSError, TimeoutError):
        return False
    finally:
        transport.close()


async def _run_probe(probe: _Probe, interval_ms: int) -> bool:
    timeout = interval_ms / 1000
    if probe.kind == "tcp":
        return await _probe_tcp(probe.port, timeout)
    if probe.kind == "udp":
        expected = probe.expect or probe.payload
        return await _probe_udp(probe.port, probe.payload.encode(), expected.encode(), timeout)
    return True


# -- the driver -------------------------------------------------------------------------


class LocalDriver:
    """A VIM whose workloads are processes on this host (see the module docstring)."""

    name: ClassVar[str] = "local"
    vim_type: ClassVar[str] = "nfo-vim:local"

    def __init__(self, vim: VimAccount, context: DriverContext) -> None:
        self.vim = vim
        self.owner = context.owner_tag
        self.state_dir = Path(context.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        raw_max = vim.settings.get("max-processes", DEFAULT_MAX_PROCESSES)
        self.max_processes = int(raw_max) if raw_max is not None else DEFAULT_MAX_PROCESSES
        raw_user = vim.settings.get("run-as-user")
        self.run_as_user = str(raw_user) if raw_user is not None else None
        self.allowed_executables = tuple(
            str(p) for p in vim.settings.get("allowed-executable") or ())
        # VIM accounts already warned about running their NFs as root.
        self._root_warned: set[str] = context.shared.setdefault("root-warned", set())
        self._callbacks: list[FinalCallback] = []
        # Processes started by the local drivers of this registry, by resource id, until
        # reaped, and the exit status of those reaped: kept in the registry's shared
        # state, so that a driver closed (or rebuilt after a VIM account change) does
        # not lose the ability to reap its children (and a dropped Popen would warn).
        self._children: dict[str, subprocess.Popen[bytes]] = context.shared.setdefault(
            "children", {})
        self._exit_codes: dict[str, int] = context.shared.setdefault("exit-codes", {})
        # Workloads this driver started or adopted, by resource id.
        self._known: dict[str, _Record] = {}
        self._ready: set[str] = set()
        self._failing: dict[str, float] = {}
        """When the liveness probe of a running process began to fail."""
        self._monitors: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    # -- paths and records --------------------------------------------------------------

    def _record_path(self, instance: str) -> Path:
        return self.state_dir / f"{instance}.json"

    def _log_path(self, instance: str) -> Path:
        return self.state_dir / f"{instance}.log"

    def _load(self, instance: str) -> _Record | None:
        path = self._record_path(instance)
        try:
            data = json.loads(path.read_text())
            return _Record.from_json(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("local driver: ignoring unreadable record %s: %s", path, exc)
            return None

    def _records(self) -> list[_Record]:
        out = []
        for path in sorted(self.state_dir.glob("*.json")):
            if path.name.startswith("."):
                continue
            rec = self._load(path.stem)
            if rec is not None:
                out.append(rec)
        return out

    def _record_by_id(self, resource_id: str) -> _Record | None:
        known = self._known.get(resource_id)
        if known is not None:
            return known
        for rec in self._records():
            if rec.resource_id == resource_id:
                return rec
        return None

    def _write_record(self, rec: _Record) -> None:
        """Atomically replace ``<instance>.json`` (blocking: run it in a thread)."""
        path = self._record_path(rec.instance)
        tmp = path.with_name(f".{path.name}.tmp")
        data = json.dumps(rec.to_json(), indent=2).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _remove_record(self, instance: str, resource_id: str) -> None:
        """Remove ``<instance>.json`` if it still describes ``resource_id`` (not a successor)."""
        rec = self._load(instance)
        if rec is not None and rec.resource_id == resource_id:
            with contextlib.suppress(FileNotFoundError):
                self._record_path(instance).unlink()

    def _log_tail(self, rec: _Record) -> str:
        try:
            with self._log_path(rec.instance).open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                start = max(rec.log_offset, size - LOG_TAIL_BYTES)
                if start >= size:
                    return ""
                f.seek(start)
                data = f.read()
        except OSError:
            return ""
        lines = data.decode("utf-8", "replace").splitlines()[-LOG_TAIL_LINES:]
        return "\n".join(line.rstrip() for line in lines).strip()

    # -- liveness -----------------------------------------------------------------------

    def _exit_reason(self, rec: _Record) -> str | None:
        """None while the process lives; otherwise why it is not running."""
        child = self._children.get(rec.resource_id)
        if child is not None:
            code = child.poll()
            if code is None:
                return None
            del self._children[rec.resource_id]
            self._exit_codes[rec.resource_id] = code
        code = self._exit_codes.get(rec.resource_id)
        if code is not None:
            reason = _describe_exit(code)
            tail = self._log_tail(rec)
            return f"{reason}; last output:\n{tail}" if tail else reason
        if _proc_alive(rec.pid, rec.starttime):
            return None
        return "process exited (adopted; exit status unknown)"

    def _is_ours(self, rec: _Record) -> bool:
        """A live process that carries this record's tags (the adoption check)."""
        if rec.owner != self.owner or self._exit_reason(rec) is not None:
            return False
        if rec.resource_id in self._children:
            return True  # started by this very Python process
        if rec.uid is not None and proc_uid(rec.pid) not in (None, rec.uid):
            return False
        env = _proc_environ(rec.pid)
        if env is None:
            return True  # unreadable: the start time match has to do
        return env.get("NFO_INSTANCE") == rec.instance and self._tags_ours(env)

    def _adopt(self, rec: _Record) -> None:
        self._known[rec.resource_id] = rec
        self._monitor(rec)

    def _forget(self, resource_id: str) -> asyncio.Task[None] | None:
        self._known.pop(resource_id, None)
        self._ready.discard(resource_id)
        self._failing.pop(resource_id, None)
        task = self._monitors.pop(resource_id, None)
        if task is not None:
            task.cancel()
        return task

    async def _evaluate(self, rec: _Record) -> Status:
        reason = self._exit_reason(rec)
        if reason is not None:
            return Status(WorkloadState.FAILED, reason)
        if rec.resource_id in self._ready:
            return await self._liveness(rec)
        if await _run_probe(rec.probe, rec.interval_ms):
            # The process may have died while the probe ran (someone else answered).
            reason = self._exit_reason(rec)
            if reason is not None:
                return Status(WorkloadState.FAILED, reason)
            if rec.probe.kind != "none" and not _owns_port(rec.pid, rec.probe.kind,
                                                          rec.probe.port):
                return Status(WorkloadState.INITIALIZING,
                              f"{rec.probe.kind} port {rec.probe.port} answers, but another "
                              "process holds it")
            self._ready.add(rec.resource_id)
            return Status(WorkloadState.RUNNING)
        return Status(WorkloadState.INITIALIZING, f"waiting for the {rec.probe.kind} probe")

    async def _liveness(self, rec: _Record) -> Status:
        """A running process whose probe has failed for ``failure-timeout`` is failed."""
        limit = rec.probe.failure_timeout
        if limit <= 0 or rec.probe.kind == "none":
            return Status(WorkloadState.RUNNING)
        if await _run_probe(rec.probe, rec.interval_ms):
            self._failing.pop(rec.resource_id, None)
            return Status(WorkloadState.RUNNING)
        now = time.monotonic()
        since = self._failing.setdefault(rec.resource_id, now)
        if now - since >= limit:
            self._failing.pop(rec.resource_id, None)
            return Status(WorkloadState.FAILED,
                          f"the {rec.probe.kind} probe has failed for {now - since:.0f}s")
        return Status(WorkloadState.RUNNING)

    # -- monitoring ---------------------------------------------------------------------

    def _monitor(self, rec: _Record) -> None:
        if self._closed or rec.resource_id in self._monitors:
            return
        task = asyncio.get_running_loop().create_task(
            self._watch(rec), name=f"nfo-local-monitor-{rec.instance}")
        self._monitors[rec.resource_id] = task

    async def _watch(self, rec: _Record) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        interval = rec.interval_ms / 1000
        announced = False
        try:
            # Besides being cancelled, a monitor stops as soon as it is no longer
            # the registered one (terminate, close): a lost cancellation is harmless.
            while self._monitors.get(rec.resource_id) is me:
                started = loop.time()
                st = await self._evaluate(rec)
                if self._monitors.get(rec.resource_id) is not me:
                    return
                if st.state is WorkloadState.RUNNING and not announced:
                    announced = True
                    self._fire(rec.resource_id, st)
                elif st.state is WorkloadState.FAILED:
                    self._fire(rec.resource_id, st)
                    return
                await asyncio.sleep(max(0.0, interval - (loop.time() - started)))
        finally:
            if self._monitors.get(rec.resource_id) is me:
                del self._monitors[rec.resource_id]

    def _fire(self, resource_id: str, status: Status) -> None:
        for cb in list(self._callbacks):
            try:
                cb(resource_id, status)
            except Exception:
                log.exception("local driver: final-status callback failed for %s", resource_id)

    # -- request expansion --------------------------------------------------------------

    @staticmethod
    def _expand(text: str, params: Mapping[str, str], what: str) -> str:
        def sub(m: re.Match[str]) -> str:
            token = m.group(0)
            if token == "{{":
                return "{"
            if token == "}}":
                return "}"
            name = m.group(1)
            if name == "python":
                return sys.executable
            if name.startswith("param:"):
                pname = name[len("param:"):]
                if pname not in params:
                    raise PermanentError(
                        f"{what}: placeholder {token} names parameter {pname!r}, "
                        f"which the instance does not set")
                return str(params[pname])
            raise PermanentError(f"{what}: unknown placeholder {token}")

        return _PLACEHOLDER_RE.sub(sub, text)

    def _port(self, raw: Any, params: Mapping[str, str], what: str) -> int:
        text = self._expand(str(raw), params, what)
        try:
            port = int(text)
        except ValueError:
            raise PermanentError(f"{what}: {text!r} is not a port number") from None
        if not 1 <= port <= 65535:
            raise PermanentError(f"{what}: port {port} is out of range 1..65535")
        return port

    def _probe(self, dep: Mapping[str, Any], params: Mapping[str, str]) -> tuple[_Probe, int]:
        raw = dep.get("readiness-probe") or {}
        interval = int(raw.get("interval-ms", DEFAULT_INTERVAL_MS))
        if not 10 <= interval <= 60000:
            raise PermanentError(f"readiness-probe interval-ms {interval} is out of 10..60000")
        fails = int(raw.get("failure-timeout", 0))
        if "tcp" in raw:
            tcp = raw["tcp"] or {}
            return _Probe("tcp", self._port(tcp.get("port"), params, "tcp probe"),
                          failure_timeout=fails), interval
        if "udp" in raw:
            udp = raw["udp"] or {}
            port = self._port(udp.get("port"), params, "udp probe")
            payload = self._expand(str(udp.get("payload", "nfo-probe")), params, "udp probe")
            expect = udp.get("expect")
            expected = "" if expect is None else self._expand(str(expect), params, "udp probe")
            if not payload:
                raise PermanentError("udp probe: the payload is empty")
            return _Probe("udp", port, payload, expected, fails), interval
        return _Probe("none"), interval

    def _environment(self, req: InstantiateRequest, run_as: RunAs | None) -> dict[str, str]:
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        env.setdefault("PATH", os.defpath)
        if run_as is not None and run_as.switch:
            env["HOME"] = run_as.home
        for entry in req.deployment.get("environment") or []:
            name = str(entry.get("name", ""))
            if not _ENV_NAME_RE.fullmatch(name):
                raise PermanentError(f"environment: invalid variable name {name!r}")
            env[name] = self._expand(str(entry.get("value", "")), req.parameters,
                                     f"environment {name}")
        env["NFO_INSTANCE"] = req.instance
        env["NFO_OWNER"] = self.owner
        env["NFO_VIM"] = self.vim.name
        return env

    def _tags_ours(self, env: Mapping[str, str]) -> bool:
        """Whether a process environment names this installation and this VIM account
        (a process started before ``NFO_VIM`` existed counts for every account)."""
        return (env.get("NFO_OWNER") == self.owner
                and env.get("NFO_VIM", self.vim.name) == self.vim.name)

    def _tagged(self) -> dict[str, tuple[int, int]]:
        """Live processes of this installation found by their environment tags:
        instance -> (pid, start time).  Covers a crash between spawn and record."""
        out: dict[str, tuple[int, int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            env = _proc_environ(pid)
            if not env or not self._tags_ours(env) or "NFO_INSTANCE" not in env:
                continue
            st = _proc_stat(pid)
            if st is None or st[0] in ("Z", "X", "x"):
                continue
            if not _pid_exists(pid) or os.getpgid(pid) != pid:
                continue  # only the process-group leader we started, not its children
            out[env["NFO_INSTANCE"]] = (pid, st[1])
        return out

    def _recover(self, instance: str, pid: int, starttime: int) -> _Record:
        """Rebuild the record of a tagged process that has none (written here)."""
        env = _proc_environ(pid) or {}
        try:
            probe = _Probe.from_json(json.loads(env.get("NFO_PROBE", '{"kind": "none"}')))
            interval = int(env.get("NFO_PROBE_INTERVAL", "250"))
        except (ValueError, KeyError, TypeError):
            probe, interval = _Probe("none"), 250
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                "utf-8", "replace").split("\0")[:-1]
        except OSError:
            argv = []
        uid = proc_uid(pid)
        user = None
        if uid is not None and uid != os.geteuid():
            try:
                user = pwd.getpwuid(uid).pw_name
            except KeyError:
                user = str(uid)
        rec = _Record(instance=instance, resource_id=f"local-{pid}-{starttime}", pid=pid,
                      starttime=starttime, owner=self.owner, command=argv, probe=probe,
                      interval_ms=interval, log_offset=0, user=user,
                      uid=uid if user is not None else None)
        self._write_record(rec)
        log.info("local driver: adopted unrecorded %s (pid %d) by its tags", instance, pid)
        return rec

    def _working_directory(self, req: InstantiateRequest, run_as: RunAs | None) -> Path:
        raw = req.deployment.get("working-directory")
        if raw is None:
            # Private to nfo: a process started in its directory cannot climb out of it.
            base = self.state_dir / "work"
            base.mkdir(mode=0o700, exist_ok=True)
            if base.stat().st_mode & 0o077:
                base.chmod(0o700)
            cwd = base / req.instance
            cwd.mkdir(mode=0o700, exist_ok=True)
            if run_as is not None and run_as.switch:
                give_directory(cwd, run_as)
            return cwd
        cwd = self.state_dir / self._expand(str(raw), req.parameters, "working-directory")
        if not cwd.is_dir():
            raise PermanentError(f"working-directory {str(cwd)!r} is not a directory")
        return cwd

    def _run_as(self) -> RunAs | None:
        """Who the next process runs as; None: as nfo itself (warned about once if root)."""
        euid = os.geteuid()
        if self.run_as_user is not None:
            return resolve_run_as(self.run_as_user, self.vim.name, euid)
        if euid == 0 and self.vim.name not in self._root_warned:
            self._root_warned.add(self.vim.name)
            log.warning(
                "local driver: the network functions of VIM %r run as root, like nfo; set "
                "run-as-user (and allowed-executable) in /nfo-vim:vims/vim[name=%r]/local "
                "to run them as an unprivileged user", self.vim.name, self.vim.name)
        return None

    @staticmethod
    def _executable(program: str, path: str) -> str:
        if not program:
            raise PermanentError("command: the program is empty")
        if "/" in program:
            candidate: str | None = program
        else:
            candidate = shutil.which(program, path=path)
        if candidate is None:
            raise PermanentError(f"command not found: {program!r} (PATH={path})")
        p = Path(candidate)
        if not p.exists():
            raise PermanentError(f"command not found: {program!r}")
        if not p.is_file() or not os.access(p, os.X_OK):
            raise PermanentError(f"command is not an executable file: {program!r}")
        return candidate

    def _live_count(self, except_instance: str) -> int:
        count = 0
        for rec in self._records():
            if rec.instance != except_instance and self._exit_reason(rec) is None:
                count += 1
        return count

    # -- the Driver protocol ------------------------------------------------------------

    async def instantiate(self, req: InstantiateRequest) -> InitResponse:
        if not _INSTANCE_RE.fullmatch(req.instance):
            raise PermanentError(f"invalid instance name {req.instance!r}")
        async with self._lock:
            existing = self._load(req.instance)
            if existing is not None:
                if existing.owner != self.owner and self._exit_reason(existing) is None:
                    raise TemporaryError(
                        f"instance {req.instance!r} runs as pid {existing.pid} for another "
                        f"installation ({existing.owner})")
                if self._is_ours(existing):
                    if existing.resource_id not in self._known:
                        self._adopt(existing)
                    return InitResponse(existing.resource_id)
                # A dead predecessor: its record is replaced below.
                stale = self._forget(existing.resource_id)
                if stale is not None:
                    await asyncio.gather(stale, return_exceptions=True)

            raw_cmd = req.deployment.get("command") or []
            if not isinstance(raw_cmd, list) or not raw_cmd:
                raise PermanentError("the local deployment has no command")
            argv = [self._expand(str(a), req.parameters, "command") for a in raw_cmd]
            probe, interval = self._probe(req.deployment, req.parameters)
            run_as = self._run_as()
            env = self._environment(req, run_as)
            env["NFO_PROBE"] = json.dumps(probe.to_json())
            env["NFO_PROBE_INTERVAL"] = str(interval)
            cwd = self._working_directory(req, run_as)
            exe = allowed_executable(self._executable(argv[0], env["PATH"]), cwd,
                                     self.allowed_executables, self.vim.name)

            live = self._live_count(req.instance)
            if live >= self.max_processes:
                raise TemporaryError(
                    f"local VIM {self.vim.name!r} is full: {live} of {self.max_processes} "
                    f"processes (max-processes)")

            rec = await self._spawn(req.instance, argv, exe, env, cwd, probe, interval,
                                    run_as)
            self._adopt(rec)
            return InitResponse(rec.resource_id)

    async def _spawn(self, instance: str, argv: list[str], exe: str, env: dict[str, str],
                     cwd: Path, probe: _Probe, interval: int,
                     run_as: RunAs | None) -> _Record:
        log_path = self._log_path(instance)
        identity: dict[str, Any] = {}
        as_user = ""
        if run_as is not None and run_as.switch:
            # Popen sets the groups, then the gid, then the uid, after changing directory.
            identity = {"user": run_as.uid, "group": run_as.gid,
                        "extra_groups": list(run_as.groups)}
            as_user = f" as user {run_as.user!r}"
        try:
            with log_path.open("ab") as logf:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                logf.write(f"--- nfo {stamp}: starting {instance}: {argv!r}\n".encode())
                logf.flush()
                offset = logf.tell()
                proc = subprocess.Popen(argv, executable=exe, stdin=subprocess.DEVNULL,
                                        stdout=logf, stderr=subprocess.STDOUT, cwd=cwd,
                                        env=env, start_new_session=True, close_fds=True,
                                        **identity)
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            raise PermanentError(
                f"cannot start {argv[0]!r}{as_user}: {exc.strerror or exc}") from exc
        except OSError as exc:
            if exc.errno == errno.ENOEXEC:  # not a program the kernel can run
                raise PermanentError(f"cannot execute {argv[0]!r}: {exc.strerror}") from exc
            raise TemporaryError(f"cannot start {argv[0]!r}{as_user}: {exc}") from exc

        # Not reaped yet, so /proc/<pid> exists even if it already exited.
        st = _proc_stat(proc.pid)
        if st is None:  # pragma: no cover - only without procfs
            self._kill_unrecorded(proc)
            raise TemporaryError(f"cannot read /proc/{proc.pid}/stat of the new process")
        rid = f"local-{proc.pid}-{st[1]}"
        self._children[rid] = proc
        rec = _Record(instance=instance, resource_id=rid, pid=proc.pid, starttime=st[1],
                      owner=self.owner, command=argv, probe=probe, interval_ms=interval,
                      log_offset=offset, user=run_as.user if run_as else None,
                      uid=run_as.uid if run_as else None)
        try:
            await asyncio.to_thread(self._write_record, rec)
        except BaseException as exc:
            # Without its record the process would be an orphan nobody can find.
            self._children.pop(rid, None)
            self._kill_unrecorded(proc)
            if isinstance(exc, OSError):
                raise TemporaryError(f"cannot write the process record: {exc}") from exc
            raise
        log.info("local driver: started %s as pid %d (%s)%s", instance, proc.pid, rid, as_user)
        return rec

    @staticmethod
    def _kill_unrecorded(proc: subprocess.Popen[bytes]) -> None:
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)

    async def status(self, resource_id: str) -> Status:
        rec = self._known.get(resource_id)
        if rec is None:
            rec = self._record_by_id(resource_id)
            if rec is None or rec.owner != self.owner:
                return Status(WorkloadState.GONE, f"no process record for {resource_id}")
            if not self._is_ours(rec):
                self._remove_record(rec.instance, resource_id)
                return Status(WorkloadState.GONE,
                              f"process {rec.pid} of {rec.instance} no longer exists")
            self._adopt(rec)
        return await self._evaluate(rec)

    async def terminate(self, resource_id: str) -> None:
        task = self._forget(resource_id)
        if task is not None:
            await asyncio.wait([task])  # (does not raise the task's CancelledError)
        parsed = _parse_resource_id(resource_id)
        if parsed is None:
            return  # not one of ours: nothing to stop
        pid, starttime = parsed
        rec = self._record_by_id(resource_id)
        if rec is not None and rec.owner != self.owner:
            return  # another installation's
        if self._may_signal(resource_id, pid, starttime, rec):
            await self._stop(resource_id, pid, starttime)
            log.info("local driver: terminated %s", resource_id)
        self._exit_codes.pop(resource_id, None)
        if rec is not None:
            self._remove_record(rec.instance, resource_id)

    def _may_signal(self, resource_id: str, pid: int, starttime: int,
                    rec: _Record | None) -> bool:
        """Whether ``pid`` is provably the workload ``resource_id`` and still to be stopped."""
        if resource_id in self._children:
            return True  # our unreaped child: its pid cannot have been reused
        if rec is not None:
            return self._is_ours(rec)
        # No record (lost, or never written): only a live process with the same
        # start time that carries our owner tag.
        if not _proc_alive(pid, starttime):
            return False
        env = _proc_environ(pid)
        return env is not None and self._tags_ours(env)

    async def _stop(self, resource_id: str, pid: int, starttime: int) -> None:
        """SIGTERM the process group, SIGKILL after the grace period; returns once it is gone."""

        def exited() -> bool:
            child = self._children.get(resource_id)
            if child is not None:
                # Detect the exit without reaping: the zombie keeps the pid (and
                # so the process group id) from being reused while we signal it.
                try:
                    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:
                    return True
                return info is not None
            return not _proc_alive(pid, starttime)

        if not exited():
            _signal_group(pid, signal.SIGTERM)
            _signal_group(pid, signal.SIGCONT)  # a stopped process acts on SIGTERM only then
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TERM_GRACE
            while not exited() and loop.time() < deadline:
                await asyncio.sleep(WAIT_STEP)
            if not exited():
                log.warning("local driver: %s ignored SIGTERM for %.0f s; killing it",
                            resource_id, TERM_GRACE)
                _signal_group(pid, signal.SIGKILL)
                deadline = loop.time() + KILL_WAIT
                while not exited() and loop.time() < deadline:
                    await asyncio.sleep(WAIT_STEP)
                if not exited():
                    raise TemporaryError(f"process {pid} survived SIGKILL")
        # The leader is gone; members of its group that outlived it would be
        # orphans nobody tracks.  (For our child the unreaped zombie still pins
        # the group id; for an adopted one any surviving member does.)
        with contextlib.suppress(PermissionError):
            _signal_group(pid, signal.SIGKILL)
        child = self._children.pop(resource_id, None)
        if child is not None:
            child.poll()

    async def update(self, resource_id: str, req: InstantiateRequest) -> bool:
        return False

    async def find(self, instance: str) -> str | None:
        if not _INSTANCE_RE.fullmatch(instance):
            return None
        rec = self._load(instance)
        if rec is None:
            tagged = self._tagged().get(instance)
            if tagged is None:
                return None
            rec = await asyncio.to_thread(self._recover, instance, *tagged)
        if rec.owner != self.owner:
            return None
        if rec.resource_id in self._known:
            return rec.resource_id  # ours, possibly failed: terminate cleans it up
        if self._is_ours(rec):
            self._adopt(rec)
            return rec.resource_id
        log.info("local driver: removing stale record of %s (pid %d is gone)", instance, rec.pid)
        self._remove_record(instance, rec.resource_id)
        return None

    async def list_resources(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for rec in self._records():
            if rec.owner != self.owner:
                continue
            if rec.resource_id in self._known:
                if self._exit_reason(rec) is None:
                    out[rec.instance] = rec.resource_id
            elif self._is_ours(rec):
                out[rec.instance] = rec.resource_id
            else:
                self._remove_record(rec.instance, rec.resource_id)
        for instance, (pid, starttime) in self._tagged().items():
            if instance not in out and self._load(instance) is None:
                rec = await asyncio.to_thread(self._recover, instance, pid, starttime)
                out[instance] = rec.resource_id
        return out

    def on_final(self, callback: FinalCallback) -> None:
        self._callbacks.append(callback)

    async def close(self) -> None:
        """Stop monitoring; the workload processes keep running (they are re-adopted later)."""
        self._closed = True
        tasks = list(self._monitors.values())
        self._monitors.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
