"""Self-healing under the descriptor's policy, with real processes on the ``local`` VIM:
a process killed or stopped (its probe failing for the configured time) is restarted or
redeployed, every heal is visible, and the policy gives up after its attempts."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

import pytest

from tests.waiting import wait_for


def _pid(st: dict[str, Any]) -> int:
    return int(st["vim-resource-id"].split("-")[1])


async def _echo(env: Any, name: str, **healing: Any) -> tuple[int, dict[str, Any]]:
    probe: dict[str, Any] = {"udp": {"port": "{param:port}", "payload": "nfo-probe"},
                             "interval-ms": 100}
    if "failure_timeout" in healing:
        probe["failure-timeout"] = healing.pop("failure_timeout")
    await env.edit({"nfo-catalog:catalog": {"nf-descriptor": [{
        "id": "healing-echo", "vim-types": ["nfo-vim:local"], "instantiation-timeout": 15,
        "parameter": [{"name": "port", "type": "port", "mandatory": True}],
        "local": {"command": ["{python}", "-m", "nfo.drivers.local.udp_echo", "--port",
                              "{param:port}"], "readiness-probe": probe},
        "healing": healing}]}})
    port = env.h.free_udp_port()
    await env.add_instance(name, "healing-echo", parameter=[{"name": "port", "value": str(port)}])
    st = await env.wait_status(name, "running", timeout=15)
    return port, st


async def _new_workload(env: Any, name: str, old_pid: int) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        st = env.state_of(name) or {}
        ok = (st.get("oper-status") == "running" and st.get("vim-resource-id")
              and _pid(st) != old_pid)
        return st if ok else None
    result: dict[str, Any] = await wait_for(probe, 20, f"{name} healed",
                                            lambda: env.state_of(name))
    return result


@pytest.mark.parametrize("policy", ["restart", "redeploy"])
async def test_a_killed_process_is_healed_and_the_heal_is_visible(env: Any, policy: str) -> None:
    await env.open()
    port, st = await _echo(env, "h1", policy=policy, backoff=0)
    pid = _pid(st)
    os.kill(pid, signal.SIGKILL)
    st = await _new_workload(env, "h1", pid)
    assert st["heal-count"] == 1 and "signal" in st["last-heal-reason"]
    assert st["last-heal"] and st["attempts"] == 1 and st["vim"] == "local"
    assert await env.h.udp_echo(port, b"back?") == b"back?"


async def test_a_probe_failing_for_its_timeout_fails_the_process_and_heals_it(env: Any) -> None:
    await env.open()
    port, st = await _echo(env, "h2", policy="restart", backoff=0, failure_timeout=1)
    pid = _pid(st)
    os.kill(pid, signal.SIGSTOP)  # alive, but no longer answering
    try:
        st = await _new_workload(env, "h2", pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert "probe has failed" in st["last-heal-reason"]
    await wait_for(lambda: not env.h.proc_alive(pid), 10, "the stopped process to be removed")
    assert await env.h.udp_echo(port, b"fresh") == b"fresh"


async def test_policy_none_leaves_the_instance_failed(env: Any) -> None:
    await env.open()
    _, st = await _echo(env, "h3")
    os.kill(_pid(st), signal.SIGKILL)
    st = await env.wait_status("h3", "failed")
    assert "heal-count" not in st and "next-retry" not in st


async def test_the_policy_gives_up_after_max_attempts_within_the_window(env: Any) -> None:
    await env.open()
    _, st = await _echo(env, "h5", policy="restart", backoff=0, **{"max-attempts": 2})
    for _ in range(2):
        pid = _pid(st)
        os.kill(pid, signal.SIGKILL)
        st = await _new_workload(env, "h5", pid)
    os.kill(_pid(st), signal.SIGKILL)
    st = await wait_for(lambda: (s := env.state_of("h5") or {}).get("oper-status") == "failed"
                        and "gave up" in s.get("reason", "") and s, 20, "healing to give up",
                        lambda: env.state_of("h5"))
    assert st["heal-count"] == 2 and "2 heal(s)" in st["reason"]


async def test_changing_healing_or_netconf_management_redeploys_nothing(env: Any) -> None:
    await env.open()
    _, st = await _echo(env, "h6", policy="none")
    await env.edit({"nfo-catalog:catalog": {"nf-descriptor": [{
        "id": "healing-echo", "healing": {"policy": "restart", "max-attempts": 9}}]}})
    await env.mgr.wait_idle()
    after = env.state_of("h6")
    assert after["vim-resource-id"] == st["vim-resource-id"]
    assert after["spec-digest"] == st["spec-digest"]
