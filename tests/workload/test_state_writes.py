"""How the workload manager records instance state: many instances' states share one
write (one parse, one group commit), each still durable before it is reported, and a
bad entry fails alone.  Also: a pushed RUNNING for a workload already recorded running
wakes no worker."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

import pytest

from nfo.errors import NfoError
from tests.workload.conftest import status_calls


def stored_state(env: Any, name: str) -> dict[str, Any] | None:
    """The state record of ``name`` as the storage file holds it (another connection)."""
    con = sqlite3.connect(env.state.db)
    try:
        row = con.execute("SELECT content FROM oper WHERE owner = 'nfo-workload' AND key = ?",
                          (env.h.inst_path(name),)).fetchone()
    finally:
        con.close()
    if row is None:
        return None
    entry = json.loads(row[0])["nfo-instances:nf-instances"]["nf-instance"]
    assert [e["name"] for e in entry] == [name]
    st: dict[str, Any] = entry[0]["state"]
    return st


async def test_states_of_many_instances_share_writes_each_durable_before_reported(
        env: Any) -> None:
    await env.open(health_interval=3600)
    await env.add_sim_vim("sim1", mean=0)
    await env.add_descriptor("fw")
    names = [f"i{k}" for k in range(40)]
    sub = env.ds.notifications.subscribe()
    writes0 = env.ds.group.writes
    await env.add_instances([{"name": n, "descriptor": "fw"} for n in names])
    reported: dict[str, list[str]] = {}
    async with asyncio.timeout(20):
        async for ev in sub:
            body = json.loads(getattr(ev, "content", "{}")).get(
                "nfo-instances:nf-instance-state-change")
            if body is None:
                continue
            # delivered only once durable: another connection to the file already sees it
            st = stored_state(env, body["name"])
            assert st is not None and st["oper-status"] == body["new-status"], (body, st)
            reported.setdefault(body["name"], []).append(body["new-status"])
            if sum(s[-1] == "running" for s in reported.values()) == len(names):
                break
    sub.close()
    assert reported == {n: ["initializing", "running"] for n in names}
    # 80 state changes (and their notifications) took far fewer writes than that
    assert env.ds.group.writes - writes0 < 2 * len(names) // 2
    # what was recorded is what a restart reads back
    before = {n: env.state_of(n) for n in names}
    await env.close()
    await env.open(manager=False)
    assert {n: env.state_of(n) for n in names} == before


async def test_a_bad_state_entry_fails_alone(env: Any) -> None:
    await env.open(health_interval=3600)
    mgr = env.mgr
    sub = env.ds.notifications.subscribe()
    good = json.dumps({"name": "good", "state": {"oper-status": "failed", "reason": "r"}})
    bad = json.dumps({"name": "bad", "state": {"oper-status": "no-such-status"}})
    note = json.dumps({"nfo-instances:nf-instance-state-change": {
        "name": "good", "new-status": "failed"}})
    results = await asyncio.gather(mgr._record("good", good, [note]),
                                   mgr._record("bad", bad, []), return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], NfoError)
    assert env.state_of("good") == {"oper-status": "failed", "reason": "r"}
    assert env.state_of("bad") is None and stored_state(env, "bad") is None
    assert stored_state(env, "good") == {"oper-status": "failed", "reason": "r"}
    async with asyncio.timeout(5):
        async for ev in sub:
            if "nf-instance-state-change" in getattr(ev, "content", ""):
                assert json.loads(ev.content)["nfo-instances:nf-instance-state-change"][
                    "name"] == "good"
                break
    sub.close()


async def test_a_pushed_running_for_a_recorded_running_workload_wakes_no_worker(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = status_calls(monkeypatch)
    await env.open(health_interval=3600)
    await env.add_sim_vim("sim1", mean=0)
    await env.add_descriptor("fw")
    await env.add_instance("a", "fw")
    st = await env.wait_status("a", "running")
    await asyncio.sleep(0.2)  # the VIM's push of RUNNING has come
    await env.mgr.wait_idle()
    assert asked == [st["vim-resource-id"]]
