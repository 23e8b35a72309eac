"""kill -9 of the orchestrator in the middle of deployments, then a restart.

A child process (``_orchestrator_child.py``) runs the datastore and the workload
manager on a state directory exactly like ``nfo serve``, creates instances and is
SIGKILLed while they are being deployed.  The test then restarts the
orchestrator in-process on the same state directory and checks both sides: every
configured instance reaches running, the VIM holds exactly one resource per
configured instance (no duplicates) and none for anything else (no orphans).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.orchestrator import Child

N_SIM = 30


def sim_plan(names: list[str], *, mean: int = 300, jitter: int = 200,
             **extra: Any) -> dict[str, Any]:
    return {
        "options": {"poll_interval": 0.05, "health_interval": 0.2, "backoff_base": 0.05,
                    "backoff_max": 0.5},
        "edits": [
            {"nfo-vim:vims": {"vim": [{"name": "sim1", "type": "nfo-vim:sim",
                                       "sim": {"latency": {"mean": mean, "jitter": jitter}}}]},
             "nfo-catalog:catalog": {"nf-descriptor": [{"id": "fw", "vim-types": ["nfo-vim:sim"],
                                                        "instantiation-timeout": 30}]}},
            {"nfo-instances:nf-instances": {"nf-instance": [
                {"name": n, "descriptor": "fw"} for n in names]}},
        ],
        **extra,
    }


def initializing_at(rows: list[dict[str, Any]], t: float) -> int:
    return sum(1 for r in rows if r["ready_at"] > t)


async def check_converged(env: Any, names: list[str], vim: str = "sim1",
                          timeout: float = 15) -> dict[str, dict[str, Any]]:
    """Every name running, exactly one VIM resource each (the recorded one), nothing else."""
    want = sorted(names)

    def done() -> bool:
        rows = env.sim(vim)
        return (sorted(r["instance"] for r in rows) == want
                and all(env.status(n) == "running" for n in names)
                and env.oper_names() == set(names))

    await env.h_wait(done, timeout, "convergence",
                     lambda: ({n: env.status(n) for n in names},
                              sorted(r["instance"] for r in env.sim(vim)),
                              sorted(env.oper_names() - set(names))))
    rows = env.sim(vim)
    assert len(rows) == len(names)  # exactly one each: no duplicates, no orphans
    states = {n: env.state_of(n) for n in names}
    by_instance = {r["instance"]: r["id"] for r in rows}
    for n, st in states.items():
        assert st is not None and st["vim-resource-id"] == by_instance[n], (n, st)
        assert "reason" not in st, (n, st)
    return states  # type: ignore[return-value]


# -- (a) kill -9 at several points, restart resumes --------------------------------------


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.45])
async def test_kill9_then_restart_converges(env: Any, children: list[Child], tmp_path: Path,
                                            delay: float) -> None:
    names = [f"n{i:02d}" for i in range(N_SIM)]
    child = Child(tmp_path / "child", env.path, sim_plan(names))
    children.append(child)
    await child.expect("EDITED", 20)
    await asyncio.sleep(delay)
    child.kill()
    killed_at = time.time()
    assert await child.died() == -signal.SIGKILL
    before = env.sim("sim1")
    # the kill landed mid-deployment (with 300+-200 ms latency not all can be ready yet)
    print(f"delay {delay}: {len(before)} on the VIM, "
          f"{initializing_at(before, killed_at)} initializing")
    assert len(before) < N_SIM or initializing_at(before, killed_at) > 0

    await env.open()
    await check_converged(env, names)


# -- (b) instances deleted while the orchestrator is down: their resources go ------------


async def test_kill9_deletes_while_down_leave_no_orphans(env: Any, children: list[Child],
                                                        tmp_path: Path) -> None:
    names = [f"n{i:02d}" for i in range(N_SIM)]
    child = Child(tmp_path / "child", env.path, sim_plan(names))
    children.append(child)
    await child.expect("EDITED", 20)
    await asyncio.sleep(0.25)
    child.kill()
    await child.died()
    assert env.sim("sim1"), "nothing was deployed before the kill"

    # while nfo is down: the operator deletes a third of the instances ...
    gone = names[::3]
    await env.open(manager=False)
    await env.delete_instance(*gone)
    tag = env.h.owner_tag(env.path)
    assert tag
    await env.close()
    # ... and the VIM holds a resource of this installation nobody ever configured
    db = env.path / "drivers" / "sim" / "sim1" / "sim-vim.db"
    con = sqlite3.connect(db)
    with con:
        con.execute("INSERT INTO resources VALUES (?,?,?,?,?,?)",
                    ("sim-ghost", "ghost", tag, time.time(), 0, ""))
    con.close()

    await env.open()
    keep = [n for n in names if n not in gone]
    await check_converged(env, keep)
    assert "sim-ghost" not in {r["id"] for r in env.sim("sim1")}


# -- the worst moment: the VIM accepted the request, the id is not recorded yet ----------


async def _crash_after_instantiate(env: Any, children: list[Child],
                                   tmp_path: Path) -> tuple[list[str], str, str]:
    names = [f"c{i}" for i in range(8)]
    child = Child(tmp_path / "child", env.path,
                  sim_plan(names, mean=1000, jitter=0, **{"crash-after-instantiate": 4}))
    children.append(child)
    line = await child.expect("CRASH", 20)
    _, victim, rid = line.split()
    assert await child.died() == -signal.SIGKILL
    assert rid in {r["id"] for r in env.sim("sim1")}
    return names, victim, rid


async def test_crash_before_the_resource_id_is_recorded_adopts(env: Any, children: list[Child],
                                                              tmp_path: Path) -> None:
    names, victim, rid = await _crash_after_instantiate(env, children, tmp_path)
    await env.open(manager=False)
    st = env.state_of(victim)
    assert st is not None and st["oper-status"] == "initializing"
    assert "vim-resource-id" not in st  # the crash landed before it was recorded
    await env.close()

    await env.open()
    states = await check_converged(env, names)
    assert states[victim]["vim-resource-id"] == rid  # adopted, not created twice


async def test_crash_before_the_resource_id_is_recorded_then_deleted_leaves_no_orphan(
        env: Any, children: list[Child], tmp_path: Path) -> None:
    names, victim, rid = await _crash_after_instantiate(env, children, tmp_path)
    await env.open(manager=False)
    await env.delete_instance(victim)
    await env.close()

    await env.open()
    keep = [n for n in names if n != victim]
    await check_converged(env, keep, timeout=2.5)
    assert rid not in {r["id"] for r in env.sim("sim1")}


# -- (c) the local driver: real processes outlive the orchestrator and are adopted -----------


def _pid(rid: str) -> int:
    return int(rid.split("-")[1])


def local_plan(ports: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {
        "options": {"poll_interval": 0.05, "health_interval": 0.2, "backoff_base": 0.05,
                    "backoff_max": 0.5},
        "edits": [{"nfo-instances:nf-instances": {"nf-instance": [
            {"name": n, "descriptor": "udp-echo", "parameter": [{"name": "port", "value": str(p)}]}
            for n, p in ports.items()]}}],
        **extra,
    }


async def _restart_and_check_local(env: Any, ports: dict[str, int],
                                   before: dict[int, str] | None) -> None:
    if env.mgr is None:
        await env.open()
    tag = env.h.owner_tag(env.path)
    for n in ports:
        st = await env.wait_status(n, ("running", "failed"), timeout=15)
        assert st["oper-status"] == "running", (n, st)
    procs = env.h.nf_processes(tag)
    # exactly one process per instance: nothing started twice
    assert sorted(procs.values()) == sorted(ports), procs
    pids = {n: _pid(env.state_of(n)["vim-resource-id"]) for n in ports}
    assert {p: n for n, p in pids.items()} == procs
    if before is not None:
        assert procs == before  # the very processes that outlived the orchestrator: adopted
    for n, port in ports.items():
        assert await env.h.udp_echo(port, n.encode()) == n.encode(), n

    await env.delete_instance(*ports)
    for n in ports:
        await env.wait_gone(n, timeout=10)
    await env.h_wait(lambda: not env.h.nf_processes(tag), 5, "every NF process to exit",
                     lambda: env.h.nf_processes(tag))
    for port in ports.values():
        assert await env.h.udp_echo(port, b"x", timeout=0.2) is None


@pytest.mark.parametrize("when", ["running", "initializing", "running+deleted-while-down"])
async def test_kill9_local_processes_are_adopted(env: Any, children: list[Child],
                                                 tmp_path: Path, when: str) -> None:
    ports = {f"e{i}": env.h.free_udp_port() for i in range(3)}
    child = Child(tmp_path / "child", env.path, local_plan(
        ports, **({"wait-running": list(ports)} if when.startswith("running") else {})))
    children.append(child)
    before: dict[int, str] | None = None
    if when.startswith("running"):
        await child.expect("RUNNING", 30)
        tag = env.h.owner_tag(env.path)
        before = env.h.nf_processes(tag)
        assert sorted(before.values()) == sorted(ports)
    else:
        await child.expect("EDITED", 20)
        await asyncio.sleep(0.1)
    child.kill()
    tag = env.h.owner_tag(env.path)
    print(f"{when}: NF processes at the kill: {env.h.nf_processes(tag)}, records: "
          f"{[r['instance'] for r in env.h.local_records(env.path)]}")
    await child.died()
    if before is not None:
        assert all(env.h.proc_alive(p) for p in before)  # NFs outlive the orchestrator
        for n, port in ports.items():
            assert await env.h.udp_echo(port, n.encode()) == n.encode()
    if when.endswith("deleted-while-down"):
        assert before is not None
        await env.open(manager=False)
        await env.delete_instance("e0")
        await env.close()
        (pid0,) = [p for p, n in before.items() if n == "e0"]
        await env.open()
        await env.wait_gone("e0", timeout=10)
        await env.h_wait(lambda: not env.h.proc_alive(pid0), 10, "the deleted NF to be stopped")
        assert await env.h.udp_echo(ports.pop("e0"), b"x", timeout=0.2) is None
        before = {p: n for p, n in before.items() if n != "e0"}
    await _restart_and_check_local(env, ports, before)


async def test_kill9_between_spawn_and_record_leaves_no_stray_process(
        env: Any, children: list[Child], tmp_path: Path) -> None:
    """The kill is injected at the exact point; a plain SIGKILL right after the child's
    edit returned (no injection) landed in this window in 3 runs out of 4 while these
    tests were written (the record is written and fsynced in a thread after Popen)."""
    ports = {f"r{i}": env.h.free_udp_port() for i in range(2)}
    child = Child(tmp_path / "child", env.path,
                  local_plan(ports, **{"crash-before-local-record": 2}))
    children.append(child)
    line = await child.expect("CRASH", 20)
    _, _victim, rid = line.split()
    await child.died()
    try:
        await _restart_and_check_local(env, ports, None)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(_pid(rid), signal.SIGKILL)


async def test_crash_before_the_resource_id_is_recorded_then_disabled_terminates(
        env: Any, children: list[Child], tmp_path: Path) -> None:
    _names, victim, rid = await _crash_after_instantiate(env, children, tmp_path)
    await env.open(manager=False)
    await env.add_instance(victim, "fw", **{"admin-state": "disabled"})
    await env.close()

    await env.open()
    await env.wait_status(victim, "terminated", timeout=5)
    await asyncio.wait_for(env.mgr.wait_idle(), 5)
    assert rid not in {r["id"] for r in env.sim("sim1")}
