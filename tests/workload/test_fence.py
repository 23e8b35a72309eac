"""A workload manager that no longer leads (its ``fence`` says so: a replica whose lease
lapsed, docs/replicas.md) makes no VIM call, neither to create nor to remove a workload;
once it leads again it converges."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nfo.drivers.sim import SimDriver
from tests.spies import record_calls


async def test_no_vim_call_while_fenced(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    leads = True
    await env.open(fence=lambda: leads)
    await env.add_sim_vim("sim1", mean=20)
    await env.add_descriptor("fw", timeout=5)
    await env.add_instance("a", "fw")
    await env.wait_status("a", "running", timeout=5)
    made = record_calls(monkeypatch, SimDriver, "instantiate", 1)
    removed = record_calls(monkeypatch, SimDriver, "terminate", 1)
    leads = False
    await env.add_instance("b", "fw")
    await env.delete_instance("a")
    await asyncio.sleep(1.0)  # retries come every 50 ms (the tests' backoff)
    assert made == [] and removed == []
    assert {r["instance"] for r in env.sim("sim1")} == {"a"}
    leads = True
    await env.wait_status("b", "running", timeout=10)
    await env.wait_gone("a", timeout=10)
    assert {r["instance"] for r in env.sim("sim1")} == {"b"}
    assert len(made) == 1 and len(removed) == 1
