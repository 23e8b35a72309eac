"""End-to-end fixtures for the workload manager: a real state directory, the real
datastore and manager (as ``nfo serve`` composes them), real drivers.

``env`` opens the orchestrator on ``tmp_path/state`` and always tears it down in
the right order (``manager.stop()`` then ``ds.close()``), and afterwards kills
every ``local`` network-function process recorded under the state directory, so
a failing test leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore, start_manager
from nfo.datastore import Datastore, Notification, NotificationSubscription
from nfo.drivers.sim import SimDriver
from nfo.workload import WorkloadManager
from tests.netutil import free_port, udp_roundtrip
from tests.spies import record_calls
from tests.waiting import wait_for

INSTANCES = "/nfo-instances:nf-instances"
FAST = {"poll_interval": 0.05, "health_interval": 0.2, "backoff_base": 0.05,
        "backoff_max": 0.5}


def inst_path(name: str) -> str:
    return f"{INSTANCES}/nf-instance[name='{name}']"


def status_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The resource ids the sim VIM is asked the status of from now on, in order."""
    return record_calls(monkeypatch, SimDriver, "status", 1)


# -- VIM-side views (no orchestrator needed) ---------------------------------------------


def sim_rows(state: Path, vim: str) -> list[dict[str, Any]]:
    """Every resource the simulated VIM ``vim`` holds (all owners)."""
    db = state / "drivers" / "sim" / vim / "sim-vim.db"
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        con.row_factory = sqlite3.Row
        try:
            rows = con.execute("SELECT * FROM resources").fetchall()
        except sqlite3.OperationalError:
            return []
        return [dict(r) for r in rows]
    finally:
        con.close()


def local_records(state: Path) -> list[dict[str, Any]]:
    """The ``local`` driver's process records under a state directory."""
    out = []
    for p in sorted((state / "drivers" / "local").glob("*/*.json")):
        if p.name.startswith("."):
            continue
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(p.read_text()))
    return out


def proc_alive(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    state = data[data.rindex(b")") + 2:].split()[0]
    return state not in (b"Z", b"X", b"x")


def kill_local_nfs(state: Path, pids: set[int] | None = None) -> None:
    """SIGKILL the process group of every recorded NF (and of ``pids``)."""
    targets = set(pids or ())
    targets |= {int(r["pid"]) for r in local_records(state) if "pid" in r}
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def owner_tag(state: Path) -> str | None:
    """The installation id the drivers tag VIM resources with (read from the state db)."""
    db = StateDir(state).db
    if not db.exists():
        return None
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT value FROM meta WHERE key='installation-id'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()
    return None if row is None else str(row[0])


def nf_processes(owner: str) -> dict[int, str]:
    """Live processes carrying ``NFO_OWNER=owner`` in their environment: pid -> instance."""
    out: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            data = (d / "environ").read_bytes()
        except OSError:
            continue
        env = dict(item.split(b"=", 1) for item in data.split(b"\0") if b"=" in item)
        if env.get(b"NFO_OWNER", b"").decode() == owner and proc_alive(int(d.name)):
            out[int(d.name)] = env.get(b"NFO_INSTANCE", b"").decode()
    return out


def kill_all_nfs(state: Path) -> None:
    """Kill every NF of the installation on ``state``: recorded or found by its tags."""
    tag = owner_tag(state)
    kill_local_nfs(state, set(nf_processes(tag)) if tag else None)


free_udp_port = free_port


def free_tcp_port() -> int:
    """For a function that listens on TCP (the demo router's sshd): a port free for UDP
    may be some loopback connection's TCP port."""
    return free_port(socket.SOCK_STREAM)


async def udp_echo(port: int, payload: bytes = b"hello nfo", timeout: float = 1.0) -> bytes | None:
    return await udp_roundtrip(port, payload, timeout)


# -- waiting -----------------------------------------------------------------------------


# -- the orchestrator ----------------------------------------------------------------------


class Env:
    """One orchestrator (datastore + workload manager) on a state directory."""

    h_wait = staticmethod(wait_for)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = StateDir(path)
        self.ds: Datastore | None = None
        self.mgr: WorkloadManager | None = None
        self._subs: list[NotificationSubscription] = []
        self._sessions: list[Any] = []
        import sys

        self.h = sys.modules[__name__]

    async def open(self, manager: bool = True, **options: Any) -> Env:
        self.ds = await open_datastore(self.state, [])
        if manager:
            self.mgr = await start_manager(self.ds, self.state, **{**FAST, **options})
        self.s = self.ds.internal_session("op")
        self._sessions.append(self.s)
        return self

    async def close(self) -> None:
        for sub in self._subs:
            sub.close()
        self._subs.clear()
        if self.mgr is not None:
            await self.mgr.stop()
            self.mgr = None
        for s in self._sessions:
            with contextlib.suppress(Exception):
                await s.close()
        self._sessions.clear()
        if self.ds is not None:
            await self.ds.close()
            self.ds = None

    # -- config --
    async def edit(self, doc: dict[str, Any] | str, fmt: str = "json", **kw: Any) -> Any:
        assert self.ds is not None
        text = doc if isinstance(doc, str) else json.dumps(doc)
        return await self.s.edit("running", text, fmt, **kw)

    async def add_sim_vim(self, name: str, *, mean: int = 20, jitter: int = 0,
                          failure_rate: float | None = None,
                          capacity: dict[str, int] | None = None) -> None:
        sim: dict[str, Any] = {"latency": {"mean": mean, "jitter": jitter}}
        if failure_rate is not None:
            sim["failure-rate"] = str(failure_rate)
        vim: dict[str, Any] = {"name": name, "type": "nfo-vim:sim", "sim": sim}
        if capacity:
            vim["capacity"] = capacity
        await self.edit({"nfo-vim:vims": {"vim": [vim]}})

    async def add_descriptor(self, desc_id: str, *, vim_types: tuple[str, ...] = ("nfo-vim:sim",),
                             timeout: int = 5, **extra: Any) -> None:
        desc = {"id": desc_id, "vim-types": list(vim_types), "instantiation-timeout": timeout,
                **extra}
        await self.edit({"nfo-catalog:catalog": {"nf-descriptor": [desc]}})

    async def add_instance(self, name: str, descriptor: str, **extra: Any) -> None:
        await self.add_instances([{"name": name, "descriptor": descriptor, **extra}])

    async def add_instances(self, entries: list[dict[str, Any]]) -> None:
        await self.edit({"nfo-instances:nf-instances": {"nf-instance": entries}})

    async def delete_instance(self, *names: str) -> None:
        items = "".join(
            f'<nf-instance nc:operation="delete"><name>{n}</name></nf-instance>' for n in names)
        await self.edit(
            '<nf-instances xmlns="urn:nfo:instances" '
            f'xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0">{items}</nf-instances>', "xml")

    async def action(self, name: str, action: str, inner: str = "") -> Any:
        assert self.ds is not None
        tree = await self.s.rpc(
            f'<nf-instances xmlns="urn:nfo:instances"><nf-instance><name>{name}</name>'
            f'<{action}>{inner}</{action}></nf-instance></nf-instances>', "xml")
        with tree:
            return json.loads(tree.print())

    # -- observation --
    def running_json(self, xpath: str | None = INSTANCES) -> dict[str, Any]:
        assert self.ds is not None
        with self.ds.get("running", xpath) as t:
            text = t.print()
        return json.loads(text) if text.strip() else {}

    def state_of(self, name: str) -> dict[str, Any] | None:
        """The operational ``state`` container of an instance (None if absent)."""
        assert self.ds is not None
        with self.ds.get("operational", inst_path(name)) as t:
            text = t.print()
        if not text.strip():
            return None
        doc = json.loads(text)
        entries = doc.get("nfo-instances:nf-instances", {}).get("nf-instance", [])
        for e in entries:
            if e.get("name") == name:
                st: dict[str, Any] | None = e.get("state")
                return st if st is not None else {}
        return None

    def oper_names(self) -> set[str]:
        """Instances that have operational state recorded."""
        assert self.ds is not None
        with self.ds.get("operational", INSTANCES) as t:
            text = t.print()
        if not text.strip():
            return set()
        entries = json.loads(text).get("nfo-instances:nf-instances", {}).get("nf-instance", [])
        return {e["name"] for e in entries if "state" in e}

    def status(self, name: str) -> str | None:
        st = self.state_of(name)
        return None if st is None else st.get("oper-status")

    async def wait_status(self, name: str, status: str | tuple[str, ...],
                          timeout: float = 10.0) -> dict[str, Any]:
        wanted = (status,) if isinstance(status, str) else status

        def probe() -> dict[str, Any] | None:
            st = self.state_of(name)
            return st if st is not None and st.get("oper-status") in wanted else None

        result: dict[str, Any] = await wait_for(
            probe, timeout, f"{name} to be {'/'.join(wanted)}", lambda: self.state_of(name))
        return result

    async def wait_gone(self, name: str, timeout: float = 10.0) -> None:
        await wait_for(lambda: self.state_of(name) is None, timeout,
                       f"operational state of {name} to go away", lambda: self.state_of(name))

    def sim(self, vim: str) -> list[dict[str, Any]]:
        return sim_rows(self.path, vim)

    def subscribe(self) -> Notifications:
        assert self.ds is not None
        sub = self.ds.notifications.subscribe()
        self._subs.append(sub)
        return Notifications(sub)


class Notifications:
    """Collects nf-instance-state-change notifications in the background-free way:
    ``await collect(...)`` reads until a predicate over everything seen holds."""

    def __init__(self, sub: NotificationSubscription) -> None:
        self.sub = sub
        self.seen: list[dict[str, Any]] = []

    async def until(self, pred: Callable[[list[dict[str, Any]]], bool],
                    timeout: float = 10.0) -> list[dict[str, Any]]:
        async def run() -> None:
            while not pred(self.seen):
                n = await self.sub.__anext__()
                if isinstance(n, Notification):
                    body = json.loads(n.content).get("nfo-instances:nf-instance-state-change")
                    if body is not None:
                        self.seen.append(body)
        try:
            await asyncio.wait_for(run(), timeout)
        except TimeoutError:
            pytest.fail(f"notifications: condition not met within {timeout}s; seen {self.seen}")
        return self.seen

    def of(self, name: str) -> list[tuple[str | None, str]]:
        return [(n.get("old-status"), n["new-status"]) for n in self.seen if n["name"] == name]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path / "state")
    try:
        yield e
    finally:
        try:
            await e.close()
        finally:
            kill_all_nfs(e.path)


@pytest.fixture
def h() -> Any:
    """This module's helpers (test modules cannot import conftest under importlib mode)."""
    import sys

    return sys.modules[__name__]
