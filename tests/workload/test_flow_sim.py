"""The design brief's flow, step by step, against the ``sim`` driver.

Each test drives the orchestrator the way an operator would (edits of running,
actions) and checks both sides: operational state and notifications, and what
the simulated VIM really holds (its SQLite file under the state directory).
"""

from __future__ import annotations

import asyncio
import collections
import json
import sqlite3
import sys
import time
from datetime import datetime
from typing import Any

import pytest

from nfo.datastore import ChangeCreated, ChangeEvent
from nfo.drivers import sim as sim_module
from nfo.drivers.sim import SimDriver
from nfo.errors import Veto
from nfo.registry import (
    InitResponse,
    InstantiateRequest,
    PermanentError,
    Status,
    TemporaryError,
    WorkloadState,
)
from nfo.workload import WorkloadManager
from nfo.workload import manager as manager_module
from tests.spies import record_calls
from tests.workload.conftest import status_calls

NC = 'xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"'


def _ts(s: str) -> float:
    return datetime.fromisoformat(s).timestamp()


async def _basic(env: Any, *, mean: int = 20, timeout: int = 5, **desc: Any) -> None:
    await env.open()
    await env.add_sim_vim("sim1", mean=mean)
    await env.add_descriptor("fw", timeout=timeout, **desc)


# -- the happy path ----------------------------------------------------------------------


async def test_success_initializing_then_running(env: Any) -> None:
    await env.open()
    await env.add_sim_vim("sim1", mean=300)
    await env.add_descriptor("fw", timeout=5)
    notes = env.subscribe()
    t0 = time.time()
    await env.add_instance("a", "fw")

    init = await env.wait_status("a", ("initializing", "running"), timeout=3)
    assert init["oper-status"] == "initializing", init  # 300 ms latency: seen initializing
    assert init["vim"] == "sim1" and init["driver"] == "sim"
    assert "sim1" in init["placement-reason"]
    assert init["attempts"] == 1

    st = await env.wait_status("a", "running", timeout=5)
    assert st["vim"] == "sim1"
    assert st["driver"] == "sim"
    assert "sim1" in st["placement-reason"] and "sim" in st["placement-reason"]
    assert st["attempts"] == 1
    assert "reason" not in st and "next-retry" not in st
    assert st["spec-digest"]
    created, changed = _ts(st["created"]), _ts(st["last-change"])
    assert t0 - 1 <= created <= changed <= time.time() + 1
    assert changed - created >= 0.2  # running came after the simulated latency

    rows = env.sim("sim1")
    assert [(r["instance"], r["id"]) for r in rows] == [("a", st["vim-resource-id"])]

    seen = await notes.until(lambda s: any(n["new-status"] == "running" for n in s))
    assert notes.of("a") == [(None, "initializing"), ("initializing", "running")]
    assert all("reason" not in n for n in seen)


async def test_vim_failure_is_reported_and_cleaned_up(env: Any) -> None:
    await env.open()
    await env.add_sim_vim("sim1", mean=50, failure_rate=1.0)
    await env.add_descriptor("fw")
    notes = env.subscribe()
    await env.add_instance("a", "fw")
    st = await env.wait_status("a", "failed", timeout=5)
    assert "simulated failure" in st["reason"], st
    assert "vim-resource-id" not in st
    assert env.sim("sim1") == []
    await notes.until(lambda s: any(n["new-status"] == "failed" for n in s))
    assert notes.of("a") == [(None, "initializing"), ("initializing", "failed")]
    assert "simulated failure" in notes.seen[-1]["reason"]
    # failed is final for this spec: nothing is created again behind the operator's back
    await asyncio.sleep(0.4)
    assert env.status("a") == "failed"
    assert env.sim("sim1") == []
    # the VIM is repaired; the restart action deploys the instance again
    await env.add_sim_vim("sim1", mean=50, failure_rate=0.0)
    await asyncio.sleep(0.1)
    assert env.status("a") == "failed"
    await env.action("a", "restart")
    st = await env.wait_status("a", "running")
    assert [r["id"] for r in env.sim("sim1")] == [st["vim-resource-id"]]


async def test_a_failed_cleanup_is_retried_and_leaves_no_orphan(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chaos finding (issue 12): when the VIM refused to remove a failed workload, the
    instance was recorded failed without its resource, and nothing ever removed it."""
    refusals = [TemporaryError("VIM busy (1)"), TemporaryError("VIM busy (2)")]
    real = SimDriver.terminate

    async def terminate(self: SimDriver, resource_id: str) -> None:
        if refusals:
            raise refusals.pop(0)
        await real(self, resource_id)

    monkeypatch.setattr(SimDriver, "terminate", terminate)
    await env.open()
    await env.add_sim_vim("sim1", mean=50, failure_rate=1.0)
    await env.add_descriptor("fw")
    await env.add_instance("a", "fw")
    st = await env.wait_status("a", "failed")
    assert "simulated failure" in st["reason"], st
    st = await env.h_wait(lambda: (s := env.state_of("a")) and "vim-resource-id" not in s
                          and s, 5, "the failed workload to be removed",
                          lambda: (env.state_of("a"), env.sim("sim1")))
    assert env.sim("sim1") == [] and not refusals
    assert st["oper-status"] == "failed" and "simulated failure" in st["reason"], st


def _failures_may_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sim's failures become ones the VIM says another attempt may get past (as
    Nova's "No valid host was found")."""
    def status(state: WorkloadState, reason: str = "") -> Status:
        return Status(state, reason, temporary=state is WorkloadState.FAILED)
    monkeypatch.setattr(sim_module, "Status", status)


async def test_a_failure_that_may_pass_is_retried_on_a_new_workload(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _failures_may_pass(monkeypatch)
    await env.open(backoff_base=0.3, backoff_max=1.0)
    await env.add_sim_vim("sim1", mean=20, failure_rate=1.0)
    await env.add_descriptor("fw", timeout=20)
    notes = env.subscribe()
    await env.add_instance("a", "fw")
    retrying = await env.h_wait(lambda: (s := env.state_of("a")) and "next-retry" in s and s,
                                5, "a retry to be scheduled", lambda: env.state_of("a"))
    assert retrying["oper-status"] == "initializing", retrying
    assert retrying["reason"].startswith("temporary: simulated failure"), retrying
    assert "vim-resource-id" not in retrying and env.sim("sim1") == []  # removed first
    await env.add_sim_vim("sim1", mean=20, failure_rate=0.0)  # room again
    st = await env.wait_status("a", "running", timeout=10)
    assert st["attempts"] >= 2 and "reason" not in st and "next-retry" not in st, st
    assert "_failure" not in env.mgr._obs["a"]  # a later series' timeout will not name it
    assert [r["id"] for r in env.sim("sim1")] == [st["vim-resource-id"]]
    await notes.until(lambda s: any(n["new-status"] == "running" for n in s))
    assert notes.of("a") == [(None, "initializing"), ("initializing", "running")]


async def test_a_failure_that_may_pass_gives_up_at_the_timeout_leaving_nothing(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _failures_may_pass(monkeypatch)
    made: list[str] = []
    real = SimDriver.instantiate

    async def counted(self: SimDriver, req: InstantiateRequest) -> InitResponse:
        made.append((resp := await real(self, req)).resource_id)
        return resp

    monkeypatch.setattr(SimDriver, "instantiate", counted)
    await env.open(backoff_base=0.1, backoff_max=0.2)
    await env.add_sim_vim("sim1", mean=20, failure_rate=1.0)
    await env.add_descriptor("fw", timeout=1)
    await env.add_instance("a", "fw")
    st = await env.wait_status("a", "failed", timeout=5)
    # the timeout came while a retry waited, or while the last attempt was under way
    assert st["reason"] in (f"gave up after {st['attempts']} attempt(s) within 1s: "
                            "simulated failure (failure-rate)",
                            "not ready within the instantiation timeout of 1s, after "
                            f"{st['attempts']} attempt(s); the last failure: simulated "
                            "failure (failure-rate)"), st
    assert st["attempts"] == len(made) >= 3 and len(set(made)) == len(made), (st, made)
    assert "vim-resource-id" not in st and "next-retry" not in st
    assert env.sim("sim1") == []
    n = len(made)
    await asyncio.sleep(0.5)
    assert len(made) == n and env.status("a") == "failed"


async def test_instantiation_timeout(env: Any) -> None:
    await env.open()
    await env.add_sim_vim("sim1", mean=5000)
    await env.add_descriptor("fw", timeout=1)
    await env.add_instance("a", "fw")
    await env.wait_status("a", "initializing", timeout=2)
    await wait_rows(env, "sim1", 1)
    st = await env.wait_status("a", "failed", timeout=4)
    assert "timeout" in st["reason"], st
    assert "vim-resource-id" not in st
    assert env.sim("sim1") == []


async def wait_rows(env: Any, vim: str, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await env.h_wait(lambda: len(env.sim(vim)) == n and env.sim(vim),
                                                  timeout, f"{n} resource(s) on {vim}",
                                                  lambda: env.sim(vim))
    return rows


# -- vetoes --------------------------------------------------------------------------------


async def test_veto_when_no_driver_serves_the_descriptor(env: Any) -> None:
    await env.open()
    env.mgr.registry.unregister("openstack")  # a VIM type whose driver is not installed
    await env.add_descriptor("os-only", vim_types=("nfo-vim:openstack",),
                             openstack={"image": "cirros", "flavor": "m1.tiny"})
    before = env.running_json(None)
    rev = env.ds.info("running").revision
    with pytest.raises(Veto) as ei:
        await env.add_instance("a", "os-only")
    assert "openstack" in str(ei.value) and "no driver" in str(ei.value)
    assert env.running_json(None) == before
    assert env.ds.info("running").revision == rev
    assert env.state_of("a") is None


async def test_a_bulk_write_is_vetoed_for_its_one_instance_no_driver_serves(
        env: Any) -> None:
    """Servability is judged once per descriptor and VIM of a bulk write, not once per
    write: the one instance on another descriptor is still judged, and named."""
    await env.open()
    await env.add_sim_vim("sim1", mean=0)
    await env.add_descriptor("fw")
    env.mgr.registry.unregister("openstack")
    await env.add_descriptor("os-only", vim_types=("nfo-vim:openstack",),
                             openstack={"image": "cirros", "flavor": "m1.tiny"})
    before = env.running_json(None)
    entries = [{"name": f"b{k}", "descriptor": "fw"} for k in range(299)]
    with pytest.raises(Veto) as ei:
        await env.add_instances([*entries, {"name": "odd", "descriptor": "os-only"}])
    assert "'odd'" in str(ei.value) and "no driver" in str(ei.value)
    assert env.running_json(None) == before
    assert env.state_of("b0") is None


async def test_veto_judges_the_descriptor_as_the_same_commit_leaves_it(env: Any) -> None:
    await env.open()
    await env.add_sim_vim("sim1", mean=5)
    env.mgr.registry.unregister("openstack")
    await env.add_descriptor("fw")
    await env.add_instance("ok", "fw")  # the descriptor, as it is, is remembered
    await env.wait_status("ok", "running")
    with pytest.raises(Veto) as ei:
        await env.edit({
            "nfo-catalog:catalog": {"nf-descriptor": [
                {"@": {"ietf-netconf:operation": "replace"},
                 "id": "fw", "vim-types": ["nfo-vim:openstack"],
                 "openstack": {"image": "cirros", "flavor": "m1.tiny"}}]},
            "nfo-instances:nf-instances": {"nf-instance": [
                {"name": "new", "descriptor": "fw"}]}})
    assert "no driver" in str(ei.value)
    assert env.state_of("new") is None


async def test_deleting_a_vim_that_runs_instances_is_vetoed(env: Any) -> None:
    await _basic(env)
    await env.add_instance("a", "fw")
    await env.wait_status("a", "running")
    delete_vim = (f'<vims xmlns="urn:nfo:vim" {NC}><vim nc:operation="delete">'
                  "<name>sim1</name></vim></vims>")
    with pytest.raises(Veto) as ei:
        await env.edit(delete_vim, "xml")
    assert "sim1" in str(ei.value)
    assert "sim1" in str(env.running_json("/nfo-vim:vims"))
    assert len(env.sim("sim1")) == 1
    assert env.status("a") == "running"
    # once the instance is gone the VIM can go
    await env.delete_instance("a")
    await env.wait_gone("a")
    await env.edit(delete_vim, "xml")
    assert "sim1" not in str(env.running_json("/nfo-vim:vims"))


async def test_deleting_all_vims_at_once_is_vetoed_too(env: Any) -> None:
    await _basic(env)
    await env.add_instance("a", "fw")
    await env.wait_status("a", "running")
    with pytest.raises(Veto):
        await env.edit(f'<vims xmlns="urn:nfo:vim" {NC} nc:operation="delete"/>', "xml")
    assert len(env.sim("sim1")) == 1
    assert env.status("a") == "running"
    # replacing the whole configuration without the VIM is vetoed as well
    with pytest.raises(Veto):
        await env.s.copy_config("running", '{"nfo-catalog:catalog": {}}', "json")
    assert "sim1" in str(env.running_json("/nfo-vim:vims"))


# -- delete, update, admin-state ------------------------------------------------------------


async def test_delete_during_initializing(env: Any) -> None:
    await _basic(env, mean=2000)
    notes = env.subscribe()
    await env.add_instance("a", "fw")
    await wait_rows(env, "sim1", 1)  # the VIM accepted the request; still initializing
    assert env.status("a") == "initializing"
    await env.delete_instance("a")
    await env.wait_gone("a", timeout=3)
    assert env.sim("sim1") == []
    await notes.until(lambda s: any(n["new-status"] == "terminated" for n in s))
    assert notes.of("a")[0] == (None, "initializing")
    assert notes.of("a")[-1][1] == "terminated"
    # and it stays gone (no late re-creation by a stale worker or timer)
    await asyncio.sleep(0.3)
    assert env.sim("sim1") == [] and env.state_of("a") is None


async def test_delete_immediately_after_create(env: Any) -> None:
    await _basic(env, mean=2000)
    await env.add_instance("b", "fw")
    await env.delete_instance("b")
    assert env.mgr is not None
    await wait_for_idle(env)
    await asyncio.sleep(0.2)
    await wait_for_idle(env)
    assert env.sim("sim1") == []
    assert env.state_of("b") is None


async def wait_for_idle(env: Any) -> None:
    await asyncio.wait_for(env.mgr.wait_idle(), 5)


async def test_update_parameter_and_descriptor(env: Any) -> None:
    await _basic(env, parameter=[{"name": "level", "default": "1"}])
    await env.add_instance("a", "fw")
    st0 = await env.wait_status("a", "running")
    rid = st0["vim-resource-id"]

    await env.add_instances([{"name": "a", "descriptor": "fw",
                              "parameter": [{"name": "level", "value": "2"}]}])
    st1 = await env.h_wait(
        lambda: (s := env.state_of("a")) and s["spec-digest"] != st0["spec-digest"] and s,
        5, "a new spec-digest", lambda: env.state_of("a"))
    assert st1["oper-status"] == "running"
    assert st1["vim-resource-id"] == rid  # the sim updates in place
    st1 = await env.wait_status("a", "running")
    assert [r["id"] for r in env.sim("sim1")] == [rid]

    # a descriptor change is an update too
    await env.add_descriptor("fw", compute={"vcpus": 2})
    st2 = await env.h_wait(
        lambda: (s := env.state_of("a")) and s["spec-digest"] not in
        (st0["spec-digest"], st1["spec-digest"]) and s,
        5, "a third spec-digest", lambda: env.state_of("a"))
    assert st2["oper-status"] == "running"
    await asyncio.sleep(0.3)
    st3 = await env.wait_status("a", "running")
    assert st3["spec-digest"] == st2["spec-digest"]
    assert [r["instance"] for r in env.sim("sim1")] == ["a"]
    assert [r["id"] for r in env.sim("sim1")] == [st3["vim-resource-id"]]


async def test_admin_state_disable_and_enable(env: Any) -> None:
    await _basic(env)
    notes = env.subscribe()
    await env.add_instance("a", "fw")
    st0 = await env.wait_status("a", "running")

    await env.add_instance("a", "fw", **{"admin-state": "disabled"})
    st = await env.wait_status("a", "terminated")
    assert "vim-resource-id" not in st
    assert env.sim("sim1") == []
    await notes.until(lambda s: any(n["new-status"] == "terminated" for n in s))

    await env.add_instance("a", "fw", **{"admin-state": "enabled"})
    st = await env.wait_status("a", "running")
    assert st["vim-resource-id"] != st0["vim-resource-id"]
    assert [r["id"] for r in env.sim("sim1")] == [st["vim-resource-id"]]


async def test_reenable_after_the_instantiation_timeout_has_elapsed(env: Any) -> None:
    await env.open()
    await env.add_sim_vim("sim1", mean=300)
    await env.add_descriptor("fw", timeout=1)
    await env.add_instance("a", "fw")
    await env.wait_status("a", "running", timeout=3)
    await env.add_instance("a", "fw", **{"admin-state": "disabled"})
    await env.wait_status("a", "terminated")
    await asyncio.sleep(1.0)  # the instance is now older than its instantiation timeout
    await env.add_instance("a", "fw", **{"admin-state": "enabled"})
    st = await env.wait_status("a", ("running", "failed"), timeout=3)
    assert st["oper-status"] == "running", st.get("reason")


# -- placement ------------------------------------------------------------------------------


async def test_placement_spreads_and_explains_rejection(env: Any) -> None:
    await env.open()
    await env.add_sim_vim("sim1", capacity={"max-instances": 1})
    await env.add_sim_vim("sim2", capacity={"max-instances": 1})
    await env.add_descriptor("fw")
    await env.add_instances([{"name": "a", "descriptor": "fw"},
                             {"name": "b", "descriptor": "fw"}])
    sa = await env.wait_status("a", "running")
    sb = await env.wait_status("b", "running")
    assert {sa["vim"], sb["vim"]} == {"sim1", "sim2"}
    assert [r["instance"] for r in env.sim(sa["vim"])] == ["a"]
    assert [r["instance"] for r in env.sim(sb["vim"])] == ["b"]

    await env.add_instance("c", "fw")
    sc = await env.wait_status("c", "failed")
    reason = sc["reason"]
    assert "sim1" in reason and "sim2" in reason and "local" in reason, reason
    assert reason.count("capacity") >= 2, reason
    assert "nfo-vim:local" in reason or "not allow" in reason, reason
    assert len(env.sim("sim1")) == 1 and len(env.sim("sim2")) == 1


async def test_explicit_vim_is_honoured_and_moving_it_replaces(env: Any) -> None:
    await env.open()
    await env.add_sim_vim("sim1")
    await env.add_sim_vim("sim2")
    await env.add_descriptor("fw")
    await env.add_instance("a", "fw", vim="sim2")
    st = await env.wait_status("a", "running")
    assert st["vim"] == "sim2"
    assert "named by the instance" in st["placement-reason"]
    assert env.sim("sim1") == [] and [r["instance"] for r in env.sim("sim2")] == ["a"]

    await env.add_instance("a", "fw", vim="sim1")
    st = await env.h_wait(lambda: (s := env.state_of("a")) and s.get("vim") == "sim1"
                          and s.get("oper-status") == "running" and s,
                          5, "a running on sim1", lambda: env.state_of("a"))
    assert env.sim("sim2") == []
    assert [r["id"] for r in env.sim("sim1")] == [st["vim-resource-id"]]


async def test_restart_action_gives_a_new_resource(env: Any) -> None:
    await env.open()
    await env.add_sim_vim("sim1")
    await env.add_sim_vim("sim2")
    await env.add_descriptor("fw")
    await env.add_instance("a", "fw", vim="sim1")
    st0 = await env.wait_status("a", "running")
    out = await env.action("a", "restart")
    assert "restart" in str(out)
    st1 = await env.h_wait(lambda: (s := env.state_of("a")) and s.get("oper-status") == "running"
                           and s.get("vim-resource-id") != st0["vim-resource-id"] and s,
                           5, "a running with a new resource", lambda: env.state_of("a"))
    assert [r["id"] for r in env.sim("sim1")] == [st1["vim-resource-id"]]
    assert st1["attempts"] == 1


async def test_redeploy_to_another_vim(env: Any) -> None:
    await env.open()
    await env.add_sim_vim("sim1")
    await env.add_sim_vim("sim2")
    await env.add_descriptor("fw")
    await env.add_instance("a", "fw")
    st0 = await env.wait_status("a", "running")
    other = "sim2" if st0["vim"] == "sim1" else "sim1"
    await env.action("a", "redeploy", f"<vim>{other}</vim>")
    st1 = await env.h_wait(lambda: (s := env.state_of("a")) and s.get("oper-status") == "running"
                           and s.get("vim") == other and s,
                           5, f"a running on {other}", lambda: env.state_of("a"))
    assert env.sim(st0["vim"]) == []
    assert [r["id"] for r in env.sim(other)] == [st1["vim-resource-id"]]


# -- error classes ----------------------------------------------------------------------------


async def test_temporary_errors_are_retried_with_backoff(env: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    real = SimDriver.instantiate

    async def flaky(self: SimDriver, req: InstantiateRequest) -> InitResponse:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise TemporaryError(f"VIM unreachable (call {len(calls)})")
        return await real(self, req)

    monkeypatch.setattr(SimDriver, "instantiate", flaky)
    await env.open(backoff_base=0.3, backoff_max=2.0)
    await env.add_sim_vim("sim1")
    await env.add_descriptor("fw", timeout=10)
    await env.add_instance("a", "fw")
    retrying = await env.h_wait(lambda: (s := env.state_of("a")) and "next-retry" in s and s,
                                3, "a retry to be scheduled", lambda: env.state_of("a"))
    assert retrying["oper-status"] == "initializing"
    assert "VIM unreachable" in retrying["reason"]
    assert _ts(retrying["next-retry"]) > time.time() - 0.5
    st = await env.wait_status("a", "running", timeout=5)
    assert st["attempts"] == 3, st
    assert "next-retry" not in st and "reason" not in st
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.25 and calls[2] - calls[1] >= 0.5  # exponential backoff
    assert [r["id"] for r in env.sim("sim1")] == [st["vim-resource-id"]]


async def test_permanent_error_fails_without_retry(env: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    async def bad(self: SimDriver, req: InstantiateRequest) -> InitResponse:
        calls.append(req.instance)
        raise PermanentError("image 'fw' not found")

    monkeypatch.setattr(SimDriver, "instantiate", bad)
    await _basic(env)
    await env.add_instance("a", "fw")
    st = await env.wait_status("a", "failed")
    assert "image 'fw' not found" in st["reason"]
    assert st["attempts"] == 1
    assert "next-retry" not in st
    await asyncio.sleep(0.5)
    assert calls == ["a"]
    assert env.status("a") == "failed"
    assert env.sim("sim1") == []


# -- capacity accounting across a manager restart --------------------------------------------


async def test_capacity_accounting_survives_a_manager_restart(env: Any) -> None:
    await env.open()
    await env.add_sim_vim("sim1", capacity={"memory-mb": "4096"})
    await env.add_descriptor("big", compute={"vcpus": 1, "memory-mb": 2048})
    await env.add_instances([{"name": "a", "descriptor": "big"},
                             {"name": "b", "descriptor": "big"}])
    await env.wait_status("a", "running")
    await env.wait_status("b", "running")
    await env.add_instance("c", "big")
    assert "memory" in (await env.wait_status("c", "failed"))["reason"]
    # restart the orchestrator (gracefully): the VIM is still full
    await env.close()
    await env.open()
    await env.add_instance("d", "big")
    st = await env.wait_status("d", ("running", "failed"))
    assert st["oper-status"] == "failed", (st, env.sim("sim1"))


async def test_manager_can_be_restarted_on_the_same_datastore(env: Any) -> None:
    from nfo.cli.serve import start_manager

    await _basic(env)
    await env.add_instance("a", "fw")
    await env.wait_status("a", "running")
    await env.mgr.stop()
    env.mgr = None
    env.mgr = await start_manager(env.ds, env.state, **env.h.FAST)
    st0 = await env.wait_status("a", "running")
    await env.action("a", "restart")
    await env.h_wait(lambda: (s := env.state_of("a")) and s.get("oper-status") == "running"
                     and s.get("vim-resource-id") != st0["vim-resource-id"],
                     5, "a restarted", lambda: env.state_of("a"))


def _unreachable(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every instantiate fails with a TemporaryError; when each was called."""
    calls: list[float] = []

    async def down(self: SimDriver, req: InstantiateRequest) -> InitResponse:
        calls.append(time.monotonic())
        raise TemporaryError("VIM unreachable")

    monkeypatch.setattr(SimDriver, "instantiate", down)
    return calls


async def test_temporary_errors_give_up_after_the_timeout(env: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _unreachable(monkeypatch)
    await env.open(backoff_base=0.1, backoff_max=0.3)
    await env.add_sim_vim("sim1")
    await env.add_descriptor("fw", timeout=1)
    await env.add_instance("a", "fw")
    st = await env.wait_status("a", "failed", timeout=4)
    assert "gave up" in st["reason"] and "VIM unreachable" in st["reason"], st
    assert st["attempts"] == len(calls) >= 3
    assert "next-retry" not in st
    n = len(calls)
    await asyncio.sleep(0.5)
    assert len(calls) == n


async def test_no_attempt_starts_after_the_instantiation_timeout(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _unreachable(monkeypatch)
    # retry 2 starts 0.8-0.88 s in; retry 3 would start 1.6 s after that, past the 1 s
    await env.open(backoff_base=0.8, backoff_max=5.0)
    await env.add_sim_vim("sim1")
    await env.add_descriptor("fw", timeout=1)
    await env.add_instance("a", "fw")
    st = await env.wait_status("a", "failed", timeout=5)
    assert st["reason"] == "gave up after 2 attempt(s) within 1s: VIM unreachable", st
    await asyncio.sleep(2.0)
    assert len(calls) == 2 and env.status("a") == "failed"


async def test_workload_vanished_from_the_vim_is_recreated(env: Any) -> None:
    await _basic(env)
    await env.add_instance("a", "fw")
    st0 = await env.wait_status("a", "running")
    db = env.path / "drivers" / "sim" / "sim1" / "sim-vim.db"
    with sqlite3.connect(db) as con:  # deleted behind nfo's back
        con.execute("DELETE FROM resources WHERE id=?", (st0["vim-resource-id"],))
    con.close()
    st1 = await env.h_wait(lambda: (s := env.state_of("a")) and s.get("oper-status") == "running"
                           and s.get("vim-resource-id") != st0["vim-resource-id"] and s,
                           5, "a running again with a new resource", lambda: env.state_of("a"))
    assert [r["id"] for r in env.sim("sim1")] == [st1["vim-resource-id"]]


async def test_descriptor_no_longer_allowing_the_vim_type_moves_the_instance(env: Any) -> None:
    await _basic(env)
    await env.add_instance("a", "fw")
    st0 = await env.wait_status("a", "running")
    await env.edit(
        f'<catalog xmlns="urn:nfo:catalog" {NC}><nf-descriptor nc:operation="replace">'
        "<id>fw</id><vim-types xmlns:nfo-vim=\"urn:nfo:vim\">nfo-vim:openstack</vim-types>"
        "<openstack><image>cirros</image><flavor>m1.tiny</flavor></openstack>"
        "<instantiation-timeout>5</instantiation-timeout></nf-descriptor></catalog>", "xml")
    await env.h_wait(lambda: (s := env.state_of("a")) and s["spec-digest"] != st0["spec-digest"],
                     5, "the new descriptor to be seen", lambda: env.state_of("a"))
    await asyncio.sleep(0.3)
    st = env.state_of("a")
    # the descriptor no longer runs on sim (and nothing serves openstack): a must not stay there
    assert not (st["oper-status"] == "running" and st["vim"] == "sim1"), st
    assert env.sim("sim1") == []


async def test_vim_full_is_a_temporary_error_retried_until_room(env: Any) -> None:
    """The sim VIM itself refuses (TemporaryError, 'full') because another installation
    uses its only slot; nfo retries with backoff and succeeds once the slot is free."""
    import sqlite3

    await env.open(backoff_base=0.1, backoff_max=0.2)
    vimdir = env.path / "drivers" / "sim" / "sim1"
    vimdir.mkdir(parents=True)
    con = sqlite3.connect(vimdir / "sim-vim.db")
    with con:
        con.execute("CREATE TABLE resources (id TEXT PRIMARY KEY, instance TEXT NOT NULL, "
                    "owner TEXT NOT NULL, ready_at REAL NOT NULL, fails INTEGER NOT NULL, "
                    "reason TEXT NOT NULL DEFAULT '')")
        con.execute("INSERT INTO resources VALUES ('sim-foreign', 'x', 'someone-else', 0, 0, '')")
    await env.add_sim_vim("sim1", capacity={"max-instances": 1})
    await env.add_descriptor("fw", timeout=20)
    await env.add_instance("a", "fw")
    st = await env.h_wait(lambda: (s := env.state_of("a")) and "next-retry" in s and s,
                          5, "a retry", lambda: env.state_of("a"))
    assert st["oper-status"] == "initializing" and "full" in st["reason"], st
    with con:
        con.execute("DELETE FROM resources WHERE id='sim-foreign'")
    con.close()
    st = await env.wait_status("a", "running", timeout=5)
    assert st["attempts"] >= 2
    assert [r["id"] for r in env.sim("sim1")] == [st["vim-resource-id"]]


async def _running(env: Any, prefix: str, count: int, **options: Any) -> list[str]:
    """``count`` instances running on a zero-latency sim VIM, the manager opened with
    ``options``."""
    await env.open(**options)
    await env.add_sim_vim("sim1", mean=0)
    await env.add_descriptor("fw", timeout=5)
    names = [f"{prefix}{k}" for k in range(count)]
    await env.add_instances([{"name": n, "descriptor": "fw"} for n in names])
    for n in names:
        await env.wait_status(n, "running")
    return names


async def test_health_checks_keep_within_their_rate(env: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Many running instances on a VIM whose driver cannot list statuses are checked
    less often than the health interval says, so that all checks together stay within
    ``health_rate`` per second."""
    monkeypatch.delattr(SimDriver, "statuses")
    names = await _running(env, "h", 20, health_interval=0.01, health_rate=40)
    calls = status_calls(monkeypatch)
    t0 = time.monotonic()
    await asyncio.sleep(1.5)
    elapsed = time.monotonic() - t0
    # every 10 ms each, that would be 2,000 checks a second; 20 may come due early
    assert 0 < len(calls) <= 40 * elapsed + len(names) + 5, len(calls)
    assert {s["oper-status"] for s in (env.state_of(n) for n in names)} == {"running"}


async def test_a_restart_paces_health_checks_and_acts_at_once_on_what_changed(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a restart, instances recorded running on resources their VIM still lists get
    their health checks at the pace of ``health_rate``, not all at once, when its driver
    cannot list statuses; one whose resource vanished while nfo was down is instantiated
    again at once."""
    monkeypatch.delattr(SimDriver, "statuses")
    names = await _running(env, "p", 30, health_interval=3600, health_rate=20)
    gone = env.state_of("p7")["vim-resource-id"]
    await env.close()
    with sqlite3.connect(env.path / "drivers" / "sim" / "sim1" / "sim-vim.db") as con:
        con.execute("DELETE FROM resources WHERE id=?", (gone,))
    con.close()
    calls = status_calls(monkeypatch)
    t0 = time.monotonic()
    await env.open(health_interval=3600, health_rate=20)
    st = await env.h_wait(lambda: (s := env.state_of("p7")) and s.get("oper-status") == "running"
                          and s.get("vim-resource-id") not in (None, gone) and s,
                          5, "p7 instantiated again", lambda: env.state_of("p7"))
    assert len(set(calls) - {st["vim-resource-id"]}) < 29  # ahead of the paced checks
    await asyncio.sleep(0.5)
    early = len(calls)
    assert early <= 20 * (time.monotonic() - t0) + 3, early  # paced, not 29 at once
    await env.h_wait(lambda: len(set(calls)) >= 29, 5, "every health check",
                     lambda: len(calls))
    assert {env.state_of(n)["oper-status"] for n in names} == {"running"}


def _behind_nfos_back(env: Any, gone: str, failing: str) -> None:
    """The sim VIM deletes ``gone`` and fails ``failing`` on its own."""
    con = sqlite3.connect(env.path / "drivers" / "sim" / "sim1" / "sim-vim.db")
    with con:
        con.execute("DELETE FROM resources WHERE id=?", (gone,))
        con.execute("UPDATE resources SET fails=1, reason='disk on fire' WHERE id=?",
                    (failing,))
    con.close()


async def _recreated_and_failed(env: Any, name: str, old: str, failed: str) -> str:
    """Waits for ``name`` running again on a resource other than ``old`` and for
    ``failed`` failed by the VIM; the new resource id."""
    st = await env.h_wait(lambda: (s := env.state_of(name)) and s.get("oper-status") == "running"
                          and s.get("vim-resource-id") not in (None, old) and s,
                          3, f"{name} instantiated again", lambda: env.state_of(name))
    st_f = await env.wait_status(failed, "failed", timeout=3)
    assert "disk on fire" in st_f["reason"], st_f
    return str(st["vim-resource-id"])


async def test_a_listing_vim_is_checked_by_one_listing_a_round(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Running instances on a VIM whose driver lists statuses (the sim's) are checked by
    one listing a health interval, however many they are and whatever ``health_rate``
    says; only an instance the listing shows not running is asked about on its own."""
    names = await _running(env, "s", 20, health_interval=0.2, health_rate=1)
    calls = status_calls(monkeypatch)
    lists = record_calls(monkeypatch, SimDriver, "statuses", 0)
    await asyncio.sleep(1.0)
    assert len(lists) >= 2 and calls == [], (len(lists), calls)
    gone, failing = (env.state_of(n)["vim-resource-id"] for n in ("s3", "s5"))
    _behind_nfos_back(env, gone, failing)
    # one by one at 1 a second, the next check of each would be 20 s away
    new = await _recreated_and_failed(env, "s3", gone, "s5")
    assert set(calls) <= {gone, failing, new}, calls
    assert {env.state_of(n)["oper-status"] for n in names if n != "s5"} == {"running"}


async def test_a_restart_on_a_listing_vim_checks_by_listing(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a restart, instances recorded running on a VIM whose driver lists statuses
    are not checked one by one: the first listing finds the one that failed while nfo
    was down, as the VIM's list of resources finds the one that vanished."""
    names = await _running(env, "q", 30, health_interval=3600, health_rate=1)
    gone, failing = (env.state_of(n)["vim-resource-id"] for n in ("q7", "q9"))
    await env.close()
    _behind_nfos_back(env, gone, failing)
    calls = status_calls(monkeypatch)
    await env.open(health_interval=0.3, health_rate=1)
    new = await _recreated_and_failed(env, "q7", gone, "q9")
    await asyncio.sleep(0.5)
    assert set(calls) <= {gone, failing, new}, calls
    assert {env.state_of(n)["oper-status"] for n in names if n != "q9"} == {"running"}


async def test_rounds_of_listings_take_at_most_a_tenth_of_the_time(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A round that takes long (a slow VIM, a huge list) spaces the next ones: a round
    starts at most once per ten times the last one's length, whatever the interval."""
    names = await _running(env, "t", 3, health_interval=0.01)
    real = SimDriver.statuses

    async def slow(self: SimDriver) -> dict[str, Status]:
        await asyncio.sleep(0.1)
        return await real(self)

    monkeypatch.setattr(SimDriver, "statuses", slow)
    lists = record_calls(monkeypatch, SimDriver, "statuses", 0)
    await asyncio.sleep(2.5)
    # every 10 ms plus the 0.1 s it takes, that would be over 20 rounds
    assert 1 <= len(lists) <= 2.5 / 1.0 + 1, len(lists)
    assert {env.state_of(n)["oper-status"] for n in names} == {"running"}


async def test_a_vim_whose_listing_fails_is_checked_one_by_one_until_it_lists_again(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a VIM's listing fails, its running instances are asked one by one (at
    ``health_rate``); once it lists again, they are not."""
    names = await _running(env, "f", 6, health_interval=0.2, health_rate=100)
    real = SimDriver.statuses

    async def refused(self: SimDriver) -> dict[str, Any]:
        raise TemporaryError("listing refused")

    monkeypatch.setattr(SimDriver, "statuses", refused)
    calls = status_calls(monkeypatch)
    rids = {env.state_of(n)["vim-resource-id"] for n in names}
    await env.h_wait(lambda: set(calls) >= rids, 3, "a check of each instance",
                     lambda: calls)
    monkeypatch.setattr(SimDriver, "statuses", real)
    await env.h_wait(lambda: not env.mgr._unlisted, 3, "a listing again",
                     lambda: env.mgr._unlisted)
    await asyncio.sleep(1.5)  # each instance's check already due comes, once
    settled = len(calls)
    await asyncio.sleep(1.0)
    assert len(calls) == settled, calls[settled:]
    assert {env.state_of(n)["oper-status"] for n in names} == {"running"}


async def test_a_start_lets_go_of_its_reading_of_every_instance_once_idle(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start reads every instance's desired state at once; once the manager has
    nothing left to do it drops that reading and says so (the process then gives the
    memory back), once; later work reads the instances it needs from running."""
    monkeypatch.setattr(manager_module, "_RELEASE_AFTER", 12)
    names = await _running(env, "r", 12, health_interval=3600)
    await env.close()
    released: list[int] = []
    await env.open(health_interval=3600, released=lambda: released.append(1))
    await env.mgr.wait_idle()
    await env.h_wait(lambda: released == [1], 5, "the reading let go",
                     lambda: released)
    assert env.mgr._all_desired is None
    await env.s.edit("running", json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
        {"name": "r3", "admin-state": "disabled"}]}}), "json")
    await env.wait_status("r3", "terminated")
    await env.add_instance("r-new", "fw")
    await env.wait_status("r-new", "running")
    await env.mgr.wait_idle()
    assert released == [1]
    assert {env.state_of(n)["oper-status"] for n in names if n != "r3"} == {"running"}
    # a reading dropped because running moved on (a resync's, say) counts as let go too
    await env.mgr._read_all_desired()
    await env.add_instance("r-later", "fw")
    await env.wait_status("r-later", "running")
    await env.mgr.wait_idle()
    assert env.mgr._all_desired is None and released == [1, 1]


async def test_a_bulk_write_of_instances_reads_the_list_once(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of instances in one write: checked from one read of the list, not one
    lookup per instance, and reconciled from that reading, not a read of every instance
    configured; each still runs, and the readings are let go once they have."""
    await env.open()
    await env.add_sim_vim("sim1", mean=0)
    await env.add_descriptor("fw", timeout=5)
    per_instance: list[str] = []
    real = WorkloadManager._desired_from
    whole_reads: list[int] = []
    real_all = WorkloadManager._read_all_desired

    def counted(self: WorkloadManager, tree: Any, name: str, descs: Any = None) -> Any:
        per_instance.append(name)
        return real(self, tree, name, descs)

    async def counted_all(self: WorkloadManager) -> None:
        whole_reads.append(1)
        await real_all(self)

    monkeypatch.setattr(WorkloadManager, "_desired_from", counted)
    monkeypatch.setattr(WorkloadManager, "_read_all_desired", counted_all)
    monkeypatch.setattr(manager_module, "_RELEASE_AFTER", 300)
    released: list[int] = []
    env.mgr._released = lambda: released.append(1)
    names = [f"b{k}" for k in range(300)]
    await env.add_instances([{"name": n, "descriptor": "fw"} for n in names])
    for n in names:
        await env.wait_status(n, "running")
    assert per_instance == [] and whole_reads == []
    await env.mgr.wait_idle()
    assert released == [1]  # the readings let go: the process may give them back
    await env.add_instance("one-more", "fw")  # a single one: looked up alone
    await env.wait_status("one-more", "running")
    assert per_instance == ["one-more"]
    await env.mgr.wait_idle()
    assert env.mgr._staged == {} and released == [1]


async def test_a_single_write_is_read_once_with_its_descriptor_cached(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write of one instance: the change phase reads it (the descriptor from what
    running holds), and its reconcile uses that reading instead of reading it again."""
    await env.open()
    await env.add_sim_vim("sim1", mean=0)
    await env.add_descriptor("fw", timeout=5)
    await env.add_instance("first", "fw")
    await env.wait_status("first", "running")
    reads: list[tuple[str, bool]] = []
    real = WorkloadManager._desired_from

    def counted(self: WorkloadManager, tree: Any, name: str, descs: Any = None) -> Any:
        reads.append((name, tree is self.ds.tree("running")))
        return real(self, tree, name, descs)

    printed: list[str] = []
    real_print = manager_module.print_node

    def printing(node: Any, *args: Any, **kw: Any) -> str:
        printed.append(node.path)
        return real_print(node, *args, **kw)

    monkeypatch.setattr(WorkloadManager, "_desired_from", counted)
    monkeypatch.setattr(manager_module, "print_node", printing)
    await env.add_instance("second", "fw")
    await env.wait_status("second", "running")
    assert reads == [("second", False)]
    assert not [p for p in printed if p.startswith("/nfo-catalog:")]


async def test_a_write_vetoed_after_the_manager_leaves_its_reading_unused(
        env: Any) -> None:
    """Another subscriber vetoes a write the manager already read: the instance's desired
    state stays what running holds, even once a later commit takes the same revision."""
    await env.open()
    await env.add_sim_vim("sim1", mean=0)
    await env.add_descriptor("fw", timeout=5)
    await env.add_instance("v", "fw")
    await env.wait_status("v", "running")

    async def veto(ev: Any) -> None:
        if ev.phase == "change" and any("admin-state" in c.path for c in ev.changes):
            raise Veto("not now")

    sub = env.ds.subscribe("nfo-instances", veto, priority=-1)  # called after the manager
    try:
        before = env.ds.info("running").revision
        with pytest.raises(Veto):
            await env.add_instance("v", "fw", **{"admin-state": "disabled"})
        await env.add_instance("w", "fw")
        assert env.ds.info("running").revision == before + 1  # the vetoed one's number
        await env.wait_status("w", "running")
        d = env.mgr._desired("v")
        assert d is not None and d.enabled
        assert env.state_of("v")["oper-status"] == "running"
    finally:
        await env.ds.unsubscribe(sub)

    async def veto_catalog(ev: Any) -> None:
        if ev.phase == "change":
            raise Veto("not now")

    sub = env.ds.subscribe("nfo-catalog", veto_catalog, priority=-1)
    try:
        with pytest.raises(Veto):
            await env.add_descriptor("fw", compute={"vcpus": 2})
    finally:
        await env.ds.unsubscribe(sub)
    await env.ds.settle()
    assert env.mgr._catalog_open == set()  # the abort closed what the change phase opened


async def test_an_abort_after_a_retry_took_its_revision_drops_its_own_readings(
        env: Any) -> None:
    """A retried commit takes the revision of the try that failed, and that try's abort
    can come after the retry's change phase: the abort drops the readings of its own
    instances, not the retry's."""
    await env.open()
    await env.add_sim_vim("sim1", mean=0)
    await env.add_descriptor("fw", timeout=5)
    await env.add_instances([{"name": "a", "descriptor": "fw"},
                             {"name": "b", "descriptor": "fw"}])
    await env.wait_status("a", "running")
    await env.wait_status("b", "running")
    await env.mgr.wait_idle()
    tree, rev = env.ds.tree("running"), 10_000
    first = [ChangeCreated("/nfo-instances:nf-instances/nf-instance[name='a']")]
    retry = [ChangeCreated("/nfo-instances:nf-instances/nf-instance[name='b']")]
    await env.mgr._on_instances(ChangeEvent("change", "running", rev, "u", first, tree))
    await env.mgr._on_instances(ChangeEvent("change", "running", rev, "u", retry, tree))
    assert env.mgr._staged.keys() >= {"a", "b"}
    await env.mgr._on_instances(ChangeEvent("abort", "running", rev, "u", first))
    assert "a" not in env.mgr._staged and env.mgr._staged["b"][0] == rev
    env.mgr._staged.clear()


async def test_a_descriptor_changed_after_an_instance_was_read_reaches_it(env: Any) -> None:
    """The manager's reading of a written instance holds its descriptor as it was; a
    later change of the descriptor makes it read again."""
    await env.open()
    await env.add_sim_vim("sim1", mean=0)
    await env.add_descriptor("fw", timeout=5)
    await env.add_instance("d", "fw")
    st0 = await env.wait_status("d", "running")
    await env.add_descriptor("fw", compute={"vcpus": 2})
    d = env.mgr._desired("d")
    assert d is not None and d.descriptor["compute"]["vcpus"] == 2
    await env.h_wait(lambda: (s := env.state_of("d")) and s["spec-digest"] != st0["spec-digest"]
                     and s["oper-status"] == "running", 5, "redeployed",
                     lambda: env.state_of("d"))


async def test_a_bulk_write_starts_its_reconciles_a_batch_per_loop_turn(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reconciles of many instances written at once start a batch per event-loop
    turn, so whatever else became ready (a client's reply) runs between batches; every
    instance still runs."""
    import nfo.workload.manager as manager_module
    monkeypatch.setattr(manager_module, "_ADMIT_BATCH", 100)
    await env.open()
    await env.add_sim_vim("sim1", mean=0)
    await env.add_descriptor("fw", timeout=5)
    loop = asyncio.get_running_loop()
    turn = 0
    ticker: asyncio.Handle | None = None

    def tick() -> None:
        nonlocal turn, ticker
        turn += 1
        ticker = loop.call_soon(tick)

    started: dict[str, int] = {}
    real = WorkloadManager.reconcile

    async def counted(self: WorkloadManager, name: str) -> None:
        started.setdefault(name, turn)
        await real(self, name)

    monkeypatch.setattr(WorkloadManager, "reconcile", counted)
    names = [f"t{k}" for k in range(600)]
    tick()
    try:
        await env.add_instances([{"name": n, "descriptor": "fw"} for n in names])
        for n in names:
            await env.wait_status(n, "running")
    finally:
        assert ticker is not None
        ticker.cancel()
    per_turn = collections.Counter(started[n] for n in names)
    assert max(per_turn.values()) <= 100
    assert len(per_turn) >= 6


async def test_wake_ups_keep_the_earliest_and_run_in_time_order(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``requeue``: a later wake-up than the one pending is ignored, an earlier one
    replaces it; names wake in time order, each once; stop() drops what is pending."""
    await env.open()
    mgr = env.mgr
    woken: list[str] = []
    monkeypatch.setattr(mgr, "enqueue", woken.append)
    mgr.requeue("a", 0.15)
    mgr.requeue("b", 0.05)
    mgr.requeue("a", 5.0)  # later than pending: ignored
    mgr.requeue("c", 5.0)
    mgr.requeue("c", 0.10)  # earlier: replaces the wake-up in 5 s
    await asyncio.sleep(0.4)
    assert woken == ["b", "c", "a"]
    mgr.requeue("d", 0.05)
    await env.close()
    await asyncio.sleep(0.1)
    assert woken == ["b", "c", "a"]


async def test_wake_ups_never_come_early_and_share_one_list_per_tick(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wake-up comes at or after its time (meant: up to a tick later); the wake-ups
    of one tick are one list, not an object each (a start schedules a million)."""
    await env.open()
    mgr = env.mgr
    loop = asyncio.get_running_loop()
    asked: dict[str, float] = {}
    woken: dict[str, float] = {}
    monkeypatch.setattr(mgr, "enqueue", lambda n: woken.setdefault(n, loop.time()))
    for i, delay in enumerate((0.0, 0.003, 0.011, 0.02, 0.0499, 0.05, 0.07)):
        asked[f"n{i}"] = loop.time() + delay
        mgr.requeue(f"n{i}", delay)
    names = [f"s{i}" for i in range(1000)]
    start = loop.time()
    mgr._requeue_spread(names, 0.0001, 0.2)
    assert len({id(mgr._when[n]) for n in names}) <= 0.1 / manager_module._TICK + 2
    for _ in range(400):  # a busy machine may run the timers late, never early
        if len(woken) == len(asked) + len(names):
            break
        await asyncio.sleep(0.05)
    assert set(woken) == set(asked) | set(names)
    for n, at in asked.items():
        assert woken[n] >= at, n
    for i, n in enumerate(names):
        assert woken[n] >= start + 0.2 + i * 0.0001
    assert not mgr._when and not mgr._ticks and not mgr._due


async def test_once_idle_the_work_tables_a_bulk_write_filled_are_made_anew(env: Any) -> None:
    """A dict or set emptied keeps its table: after a write of many instances the
    manager, once idle, holds no table sized for all of them in its work queues."""
    await _basic(env, mean=0)
    n = 1500
    await env.add_instances([{"name": f"b{i}", "descriptor": "fw"} for i in range(n)])
    for i in range(n):
        await env.wait_status(f"b{i}", "running")
    mgr = env.mgr
    await mgr.wait_idle()
    for table in ("_workers", "_waiting", "_again", "_staged", "_hints"):
        held = getattr(mgr, table)
        assert not held, table
        assert sys.getsizeof(held) == sys.getsizeof(type(held)()), table


async def test_a_starting_manager_judges_nothing_before_it_has_read_every_instance(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``begin`` subscribes at once and loads in the background while reads go on; a
    commit that touches the VIMs or the instances waits in its change phase until the
    load is complete, and is then judged from every instance (here: a VIM that still
    runs instances cannot be deleted, which a partial reading would have allowed), and
    an instance created meanwhile gets exactly one workload."""
    from nfo.cli.serve import make_manager

    await _basic(env, mean=1)
    await env.add_instances([{"name": f"r{i}", "descriptor": "fw"} for i in range(20)])
    for i in range(20):
        await env.wait_status(f"r{i}", "running")
    await env.mgr.stop()
    hold = asyncio.Event()
    held = asyncio.Event()
    load = WorkloadManager._load_observed

    async def held_load(self: WorkloadManager, desired: Any) -> None:
        held.set()
        await hold.wait()
        await load(self, desired)

    monkeypatch.setattr(WorkloadManager, "_load_observed", held_load)
    env.mgr = make_manager(env.ds, env.state, **env.h.FAST)
    loading = env.mgr.begin()
    await held.wait()
    assert not env.mgr.ready.is_set() and env.mgr.instances == 0
    assert env.state_of("r3")["oper-status"] == "running"   # reads go on
    drop_vim = asyncio.ensure_future(env.edit(
        '<vims xmlns="urn:nfo:vim" xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0">'
        '<vim nc:operation="delete"><name>sim1</name></vim></vims>', "xml"))
    done, _ = await asyncio.wait([drop_vim], timeout=0.5)
    assert not done, "a commit was judged before the manager had read every instance"
    hold.set()
    await loading
    assert env.mgr.ready.is_set() and env.mgr.instances == 20
    with pytest.raises(Veto, match="still runs 20 instance"):
        await drop_vim
    await env.add_instance("late", "fw")
    await env.wait_status("late", "running")
    rows = env.sim("sim1")
    assert sorted(r["instance"] for r in rows) == sorted([f"r{i}" for i in range(20)] + ["late"])


async def test_a_commit_waiting_for_a_manager_stopped_while_loading_is_refused(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from nfo.cli.serve import make_manager
    from nfo.errors import OperationFailed
    from tests.workload.conftest import inst_path

    await _basic(env, mean=1)
    await env.mgr.stop()
    held = asyncio.Event()

    async def held_load(self: WorkloadManager, desired: Any) -> None:
        held.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(WorkloadManager, "_load_observed", held_load)
    env.mgr = make_manager(env.ds, env.state, **env.h.FAST)
    env.mgr.begin()
    await held.wait()
    add = asyncio.ensure_future(env.add_instance("x", "fw"))
    done, _ = await asyncio.wait([add], timeout=0.3)
    assert not done
    await env.mgr.stop()
    with pytest.raises(OperationFailed, match="nfo is stopping"):
        await add
    with env.ds.get("running", inst_path("x")) as t:
        assert json.loads(t.print() or "{}") == {}   # refused whole


async def test_every_instance_state_shares_its_leaf_names(env: Any) -> None:
    """The recorded state of each instance names its leaves with the same strings (a
    name made anew per instance cost about 300 bytes an instance after a bulk write)."""
    await _basic(env, mean=1)
    await env.add_instances([{"name": f"k{i}", "descriptor": "fw"} for i in range(30)])
    for i in range(30):
        await env.wait_status(f"k{i}", "running")
    names = [k for o in env.mgr._obs.values() for k in o]
    assert len(names) > 30 * 5
    assert len({id(k) for k in names}) == len(set(names))
