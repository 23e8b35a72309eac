"""The design brief's flow with the ``local`` driver: the demo ``udp-echo`` NF as a
real process on the built-in ``local`` VIM, checked over a real UDP socket."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

local = pytest.importorskip("nfo.drivers.local")
if not hasattr(local, "LocalDriver"):
    pytest.skip("nfo.drivers.local has no LocalDriver yet", allow_module_level=True)


def _pid_of(rid: str) -> int:
    assert rid.startswith("local-"), rid
    return int(rid.split("-")[1])


def _environ(pid: int) -> dict[str, str]:
    data = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in data.split(b"\0") if b"=" in item)


async def _echo_instance(env: Any, name: str) -> tuple[int, dict[str, Any]]:
    port = env.h.free_udp_port()
    await env.add_instance(name, "udp-echo", parameter=[{"name": "port", "value": str(port)}])
    st = await env.wait_status(name, ("running", "failed"), timeout=15)
    assert st["oper-status"] == "running", st
    return port, st


async def test_udp_echo_runs_answers_and_is_terminated_on_delete(env: Any) -> None:
    await env.open()
    notes = env.subscribe()
    port, st = await _echo_instance(env, "echo1")
    assert st["vim"] == "local" and st["driver"] == "local"
    assert st["attempts"] == 1
    pid = _pid_of(st["vim-resource-id"])
    assert env.h.proc_alive(pid)
    env_vars = _environ(pid)
    assert env_vars.get("NFO_INSTANCE") == "echo1"
    assert [r["pid"] for r in env.h.local_records(env.path)] == [pid]

    assert await env.h.udp_echo(port, b"ping over nfo") == b"ping over nfo"
    await notes.until(lambda s: any(n["new-status"] == "running" for n in s))
    assert notes.of("echo1") == [(None, "initializing"), ("initializing", "running")]

    await env.delete_instance("echo1")
    await env.wait_gone("echo1", timeout=10)
    await env.h_wait(lambda: not env.h.proc_alive(pid), 5, f"pid {pid} to exit")
    assert await env.h.udp_echo(port, b"anyone?", timeout=0.3) is None
    assert env.h.local_records(env.path) == []
    await notes.until(lambda s: any(n["new-status"] == "terminated" for n in s))


async def test_dead_process_ends_in_failed_with_reason(env: Any) -> None:
    await env.open()
    port, st = await _echo_instance(env, "echo2")
    pid = _pid_of(st["vim-resource-id"])
    os.kill(pid, signal.SIGKILL)
    st = await env.wait_status("echo2", "failed", timeout=5)
    assert "signal 9" in st["reason"] or "SIGKILL" in st["reason"] or "exited" in st["reason"], st
    assert "vim-resource-id" not in st
    assert await env.h.udp_echo(port, b"x", timeout=0.3) is None
    await asyncio.sleep(0.3)
    assert env.status("echo2") == "failed"
    assert env.h.local_records(env.path) == []


async def test_restart_action_starts_a_new_process(env: Any) -> None:
    await env.open()
    port, st0 = await _echo_instance(env, "echo3")
    old = _pid_of(st0["vim-resource-id"])
    await env.action("echo3", "restart")
    st1 = await env.h_wait(lambda: (s := env.state_of("echo3")) and s.get("oper-status") ==
                           "running" and s.get("vim-resource-id") != st0["vim-resource-id"] and s,
                           15, "echo3 running as a new process", lambda: env.state_of("echo3"))
    new = _pid_of(st1["vim-resource-id"])
    assert new != old and not env.h.proc_alive(old) and env.h.proc_alive(new)
    assert await env.h.udp_echo(port, b"again") == b"again"


async def test_port_clash_is_not_reported_running(env: Any) -> None:
    await env.open()
    notes = env.subscribe()
    port, st = await _echo_instance(env, "first")
    await env.add_instance("second", "udp-echo", parameter=[{"name": "port", "value": str(port)}])
    st = await env.wait_status("second", "failed", timeout=10)
    assert "listen" in st["reason"] or "status 1" in st["reason"], st
    await notes.until(lambda s: any(n["name"] == "second" and n["new-status"] == "failed"
                                    for n in s))
    # the probe was answered by "first": "second" must never have been announced running
    assert notes.of("second") == [(None, "initializing"), ("initializing", "failed")]
    assert env.status("first") == "running"
    assert await env.h.udp_echo(port, b"still") == b"still"
