"""A misbehaving VIM account never holds up instances on another one (issue 12).

A VIM that hangs (calls that never answer), one that is slow and failing (the sim's
latency and failure-rate settings), and local NFs that ignore SIGTERM: the instances of a
healthy VIM account beside it converge all the same.  The tests compare order and counts
(the healthy instances are all running while the misbehaving ones are still at it); the
timeouts are only guards.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest

from nfo.drivers.sim import SimDriver
from nfo.registry import InitResponse, InstantiateRequest
from nfo.workload import manager as manager_mod

SLEEP = shutil.which("sleep") or "/bin/sleep"
STUBBORN = ["/bin/sh", "-c", f"trap '' TERM; exec {SLEEP} 600"]


def _entries(prefix: str, n: int, vim: str, descriptor: str = "fw") -> list[dict[str, Any]]:
    return [{"name": f"{prefix}{i}", "descriptor": descriptor, "vim": vim} for i in range(n)]


def _hang_sim_hang(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Instantiations on VIM ``sim-hang`` never answer; the instances asked, in order."""
    hanging: list[str] = []
    real = SimDriver.instantiate

    async def instantiate(self: SimDriver, req: InstantiateRequest) -> InitResponse:
        if self.vim.name == "sim-hang":
            hanging.append(req.instance)
            await asyncio.Event().wait()  # the VIM never answers
        return await real(self, req)

    monkeypatch.setattr(SimDriver, "instantiate", instantiate)
    return hanging


async def _beside_a_hanging_vim(env: Any, monkeypatch: pytest.MonkeyPatch, *, hung: int,
                                ok: int, ok_mean: int) -> list[str]:
    """``hung`` instances h* on ``sim-hang`` (two calls at a time, none answered), then
    ``ok`` instances k* on ``sim-ok``, each waited for until it runs; the hanging calls."""
    hanging = _hang_sim_hang(monkeypatch)
    await env.open(concurrency=2)
    await env.add_sim_vim("sim-hang")
    await env.add_sim_vim("sim-ok", mean=ok_mean)
    await env.add_descriptor("fw", timeout=300)
    await env.add_instances(_entries("h", hung, "sim-hang"))
    await env.h_wait(lambda: len(hanging) >= 2, 10, "calls hanging on sim-hang")
    await env.add_instances(_entries("k", ok, "sim-ok"))
    for i in range(ok):
        await env.wait_status(f"k{i}", "running", timeout=10)
    return hanging


async def test_a_hanging_vim_holds_up_no_other_vim(env: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Chaos finding: every reconcile step held one slot of a manager-wide semaphore for as
    long as its VIM calls took, so calls hanging on one VIM account took every slot and
    the instances of all other accounts waited."""
    await _beside_a_hanging_vim(env, monkeypatch, hung=4, ok=4, ok_mean=20)
    assert [env.status(f"h{i}") for i in range(4)] == ["initializing"] * 4
    assert sorted(r["instance"] for r in env.sim("sim-ok")) == ["k0", "k1", "k2", "k3"]


async def test_workers_waiting_on_a_hanging_vim_leave_room_for_others(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The manager keeps at most ``_IN_FLIGHT`` reconciles at work (a bulk write's
    instances queue), but one waiting on a VIM is not at work: more instances hang on
    one account than that cap, and the other account's are admitted all the same."""
    monkeypatch.setattr(manager_mod, "_IN_FLIGHT", 4)
    hanging = await _beside_a_hanging_vim(env, monkeypatch, hung=12, ok=20, ok_mean=0)
    assert len(hanging) == 2  # the account's own gate: two calls at a time
    assert [env.status(f"h{i}") for i in range(12)] == ["initializing"] * 12


async def test_a_bulk_write_keeps_at_most_the_cap_at_work(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager_mod, "_IN_FLIGHT", 8)
    await env.open()
    mgr = env.mgr
    at_work: list[int] = []
    admit = mgr._admit

    def counted() -> None:
        # a worker back from a VIM may take the count over the cap for a while; what
        # never does is an admission
        before = len(mgr._workers)
        admit()
        if len(mgr._workers) > before:
            at_work.append(len(mgr._workers) - mgr._away.count)

    monkeypatch.setattr(mgr, "_admit", counted)
    await env.add_sim_vim("sim1", mean=0)
    await env.add_descriptor("fw")
    await env.add_instances(_entries("i", 100, "sim1"))
    for i in range(100):
        await env.wait_status(f"i{i}", "running", timeout=20)
    assert max(at_work) == 8 and len(at_work) > 100 // 8


async def test_a_vim_that_never_answers_fails_its_instances_at_their_timeout(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No unbounded wait: a call the VIM never answers is abandoned after the manager's
    call timeout (a temporary error, retried), and the instance fails at its own timeout
    instead of staying initializing for ever."""
    real = SimDriver.instantiate

    async def instantiate(self: SimDriver, req: InstantiateRequest) -> InitResponse:
        if self.vim.name == "sim-hang":
            await asyncio.Event().wait()
        return await real(self, req)

    monkeypatch.setattr(SimDriver, "instantiate", instantiate)
    await env.open(call_timeout=0.3, backoff_base=0.1, backoff_max=0.2)
    await env.add_sim_vim("sim-hang")
    await env.add_descriptor("fw", timeout=2)
    await env.add_instance("h", "fw", vim="sim-hang")
    st = await env.wait_status("h", "failed", timeout=15)
    assert "did not answer instantiate within 0.3s" in st["reason"], st
    assert "gave up" in st["reason"] and st["attempts"] >= 2, st
    assert env.sim("sim-hang") == []


async def test_nfs_ignoring_sigterm_are_killed_and_hold_up_no_other_vim(env: Any) -> None:
    """Local NFs that ignore SIGTERM: their termination ends with SIGKILL after the grace
    period, and meanwhile the instances of another local VIM account come up."""
    await env.open(concurrency=2)
    await env.edit({"nfo-vim:vims": {"vim": [{"name": n, "type": "nfo-vim:local"}
                                             for n in ("loc-bad", "loc-ok")]}})
    await env.add_descriptor("stubborn", vim_types=("nfo-vim:local",), timeout=20,
                             local={"command": STUBBORN})
    await env.add_descriptor("sleeper", vim_types=("nfo-vim:local",), timeout=20,
                             local={"command": [SLEEP, "600"]})
    await env.add_instances(_entries("s", 4, "loc-bad", "stubborn"))
    pids = [int((await env.wait_status(f"s{i}", "running"))["vim-resource-id"].split("-")[1])
            for i in range(4)]
    notes = env.subscribe()
    await env.delete_instance("s0", "s1", "s2", "s3")
    await env.add_instances(_entries("k", 4, "loc-ok", "sleeper"))

    def done(seen: list[dict[str, Any]]) -> bool:
        final = {(n["name"], n["new-status"]) for n in seen}
        return (all((f"k{i}", "running") in final for i in range(4))
                and all((f"s{i}", "terminated") in final for i in range(4)))

    seen = await notes.until(done, timeout=60)
    order = [(n["name"], n["new-status"]) for n in seen]
    last_up = max(order.index((f"k{i}", "running")) for i in range(4))
    first_gone = min(order.index((f"s{i}", "terminated")) for i in range(4))
    assert last_up < first_gone, order
    assert not any(env.h.proc_alive(p) for p in pids)  # SIGKILL after the grace period
    for i in range(4):
        await env.wait_gone(f"s{i}")


async def test_a_vim_hanging_at_restart_holds_up_no_other_vim(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chaos finding: on start the manager listed every VIM's resources one after the
    other before anything else ran (and before ``nfo serve`` served): a VIM that did not
    answer held up every instance, and the server's start, for as long as it hung."""
    await env.open()
    await env.add_sim_vim("sim-hang")
    await env.add_sim_vim("sim-ok")
    await env.add_descriptor("fw", timeout=30)
    await env.add_instances(_entries("h", 2, "sim-hang") + _entries("k", 2, "sim-ok"))
    for name in ("h0", "h1", "k0", "k1"):
        await env.wait_status(name, "running")
    await env.close()

    listed: list[str] = []
    real = SimDriver.list_resources

    async def list_resources(self: SimDriver) -> dict[str, str]:
        listed.append(self.vim.name)
        if self.vim.name == "sim-hang":
            await asyncio.Event().wait()
        return await real(self)

    monkeypatch.setattr(SimDriver, "list_resources", list_resources)
    await asyncio.wait_for(env.open(), 20)  # the start does not wait for sim-hang
    await env.add_instance("k2", "fw", vim="sim-ok")
    await env.wait_status("k2", "running")
    await env.delete_instance("k0")
    await env.wait_gone("k0")
    assert sorted(r["instance"] for r in env.sim("sim-ok")) == ["k1", "k2"]
    assert "sim-hang" in listed  # still listing: its instances wait, as recorded
    assert [env.status("h0"), env.status("h1")] == ["running", "running"]
