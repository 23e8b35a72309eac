"""What the VIMs really hold, seen from outside nfo.

The sim VIM keeps its resources in its own SQLite table (``drivers/sim/<vim>/sim-vim.db``
under the state directory), the remote side of a simulated cloud: read it directly.  The
local VIM's workloads are processes: found in /proc by the run's own environment tag
(every descriptor of the run sets it), with the driver's tags (``NFO_INSTANCE``,
``NFO_OWNER``), the process's start time (the driver's resource id is
``local-<pid>-<starttime>``) and its working directory (which VIM account started it).
Nothing here asks nfo: a workload nfo forgot about is exactly what must be seen.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.chaos_support.model import GEN_ENV, RUN_ENV


@dataclass(frozen=True)
class Workload:
    """One workload on a VIM, attributed to the instance its tags name."""

    vim: str
    instance: str
    resource_id: str
    owner: str = ""
    pid: int | None = None
    gen: int | None = None
    leader: bool = True
    """Local: the process leads its process group (the driver starts each NF that way)."""


def sim_workloads(state: Path, vims: list[str]) -> list[Workload]:
    out: list[Workload] = []
    for vim in vims:
        db = state / "drivers" / "sim" / vim / "sim-vim.db"
        if not db.exists():
            continue
        con = sqlite3.connect(db, timeout=30)
        try:
            try:
                rows = con.execute("SELECT id, instance, owner FROM resources").fetchall()
            except sqlite3.OperationalError:
                continue
        finally:
            con.close()
        out += [Workload(vim, str(i), str(r), str(o)) for r, i, o in rows]
    return out


def _environ(pid: int) -> dict[str, str] | None:
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    return env


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time) of ``pid``."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[2]), int(rest[19])


def run_processes(run_id: str) -> dict[int, dict[str, str]]:
    """Live (not zombie) processes carrying the run's tag: pid -> environment."""
    out: dict[int, dict[str, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        env = _environ(pid)
        if env is None or env.get(RUN_ENV) != run_id:
            continue
        st = _stat(pid)
        if st is None or st[0] in ("Z", "X", "x"):
            continue
        out[pid] = env
    return out


def local_workloads(run_id: str) -> list[Workload]:
    out: list[Workload] = []
    for pid, env in run_processes(run_id).items():
        st = _stat(pid)
        if st is None:
            continue
        vim = "?"
        with contextlib.suppress(OSError):
            parts = Path(os.readlink(f"/proc/{pid}/cwd")).parts
            # <state>/drivers/local/<vim>/work/<instance>
            if "work" in parts:
                vim = parts[parts.index("work") - 1]
        gen = env.get(GEN_ENV)
        out.append(Workload(vim, env.get("NFO_INSTANCE", "?"), f"local-{pid}-{st[2]}",
                            env.get("NFO_OWNER", ""), pid,
                            int(gen) if gen and gen.isdigit() else None, st[1] == pid))
    return out


def local_records(state: Path) -> list[dict[str, Any]]:
    """The local driver's process records (``drivers/local/<vim>/<instance>.json``)."""
    out = []
    for p in sorted((state / "drivers" / "local").glob("*/*.json")):
        if p.name.startswith("."):
            continue
        with contextlib.suppress(OSError, ValueError):
            rec = json.loads(p.read_text())
            rec["_vim"] = p.parent.name
            out.append(rec)
    return out


def kill_run_processes(run_id: str) -> int:
    """SIGKILL every process of the run (and its process group); how many there were."""
    pids = run_processes(run_id)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)
