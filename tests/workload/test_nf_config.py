"""Day-1/day-2 configuration, drift and healing against a real NETCONF device: the demo
``netconf-router`` entry runs yuma123 netconfd behind a private sshd as a process of the
``local`` VIM, and nfo configures it over SSH with the router's own YANG module."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import Notification
from nfo.device import Device, Endpoint
from nfo.errors import NfoError
from tests.access import admins
from tests.orchestrator import Child
from tests.spies import record_calls
from tests.waiting import wait_for

NS = "urn:nfo:demo-router"
DEMO = "netconf-router"


def config_of(env: Any, name: str) -> dict[str, Any]:
    st = env.state_of(name) or {}
    out: dict[str, Any] = st.get("config") or {}
    return out


async def wait_config(env: Any, name: str, status: str, timeout: float = 20.0,
                      pred: Any = None) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        c = config_of(env, name)
        ok = c.get("status") == status and (pred is None or pred(c))
        return c if ok else None
    result: dict[str, Any] = await wait_for(probe, timeout, f"{name} config {status}",
                                            lambda: env.state_of(name))
    return result


def descriptor(env: Any, desc_id: str = DEMO) -> dict[str, Any]:
    doc = env.running_json(f"/nfo-catalog:catalog/nf-descriptor[id='{desc_id}']")
    out: dict[str, Any] = doc["nfo-catalog:catalog"]["nf-descriptor"][0]
    return out


@asynccontextmanager
async def device(env: Any, port: int) -> AsyncIterator[Device]:
    """A session of our own on the router, with the demo entry's credentials."""
    nc = descriptor(env)["netconf"]
    dev = await Device.connect(Endpoint("127.0.0.1", port, nc["username"],
                                        private_key=nc["private-key"]))
    try:
        yield dev
    finally:
        await dev.close()


async def device_edit(dev: Device, config: str) -> None:
    await dev.lock("candidate")
    try:
        await dev.edit_config("candidate", config)
        await dev.commit()
    finally:
        await dev.unlock("candidate")


async def router(env: Any, name: str, port: int | None = None,
                 **extra: Any) -> tuple[int, dict[str, Any]]:
    port = port or env.h.free_tcp_port()
    params = [{"name": "port", "value": str(port)}, *extra.pop("parameter", [])]
    await env.add_instance(name, DEMO, parameter=params, **extra)
    st = await env.wait_status(name, ("running", "failed"), timeout=20)
    assert st["oper-status"] == "running", st.get("reason")
    return port, st


def day2(xml: str) -> dict[str, Any]:
    return {"format": "xml", "config": xml}


class Notes:
    """Every notification of the nfo stream, by name."""

    def __init__(self, env: Any) -> None:
        self.sub = env.ds.notifications.subscribe()
        env._subs.append(self.sub)
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def until(self, kind: str, pred: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
        async def run() -> None:
            while not pred(self.of(kind)):
                n = await self.sub.__anext__()
                if isinstance(n, Notification):
                    for k, body in json.loads(n.content).items():
                        self.seen.append((k.split(":", 1)[1], body))
        await asyncio.wait_for(run(), timeout)
        return self.of(kind)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [b for k, b in self.seen if k == kind]


async def test_day1_config_reaches_the_device_and_is_in_sync(env: Any) -> None:
    await env.open()
    notes = Notes(env)
    port, _ = await router(env, "r1", parameter=[{"name": "hostname", "value": "edge-1"}])
    c = await wait_config(env, "r1", "in-sync")
    assert "urn:ietf:params:netconf:capability:candidate:1.0" in c["capability"]
    assert c["host-key"].startswith("ssh-")
    assert c["last-applied-digest"] == c["desired-digest"]
    async with device(env, port) as dev:
        running = await dev.get_config("running")
    assert "<hostname>edge-1</hostname>" in running and "192.0.2.123" in running
    assert "mgmt0" in running
    changes = await notes.until("nf-config-status-change",
                                lambda s: any(b["new-status"] == "in-sync" for b in s))
    assert [b["new-status"] for b in changes if b["name"] == "r1"][:3] == [
        "pending", "applying", "in-sync"]


def record_edits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every edit-config nfo sends from now on (to any device): its config."""
    return record_calls(monkeypatch, Device, "edit_config", 2)


async def test_a_day2_change_sends_only_the_difference(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = record_edits(monkeypatch)
    await env.open()
    port, _ = await router(env, "r2")
    first = await wait_config(env, "r2", "in-sync")
    assert len(sent) == 1 and "router1" in sent[0] and "mgmt0" in sent[0]
    eth1 = (f'<interfaces xmlns="{NS}"><interface><name>eth1</name><mtu>9000</mtu>'
            '<address>10.0.0.1/24</address></interface></interfaces>')
    await env.edit({"nfo-instances:nf-instances": {"nf-instance": [
        {"name": "r2", "day2": day2(eth1)}]}})
    c = await wait_config(env, "r2", "in-sync",
                          pred=lambda c: c["last-applied-digest"] != first["desired-digest"])
    assert c["last-applied-digest"] == c["desired-digest"]
    assert len(sent) == 2 and "eth1" in sent[1] and "9000" in sent[1]
    assert "mgmt0" not in sent[1] and "router1" not in sent[1]
    await env.edit({"nfo-instances:nf-instances": {"nf-instance": [
        {"name": "r2", "day2": day2(eth1.replace("9000", "1400"))}]}})
    second = c["desired-digest"]
    await wait_config(env, "r2", "in-sync", pred=lambda c: c["last-applied-digest"] not in (
        first["desired-digest"], second) and c["last-applied-digest"] == c["desired-digest"])
    assert len(sent) == 3 and "1400" in sent[2] and "10.0.0.1" not in sent[2]
    async with device(env, port) as dev:
        running = await dev.get_config("running")
    assert "<mtu>1400</mtu>" in running and "router1" in running and "mgmt0" in running


async def test_a_device_without_a_candidate_is_configured_on_running(env: Any) -> None:
    await env.open()
    desc = descriptor(env)
    desc["id"] = "router-running"
    desc["local"]["command"] += ["--target", "running"]
    await env.edit({"nfo-catalog:catalog": {"nf-descriptor": [desc]}})
    port = env.h.free_tcp_port()
    await env.add_instance("r12", "router-running",
                           parameter=[{"name": "port", "value": str(port)}])
    await env.wait_status("r12", "running", timeout=20)
    c = await wait_config(env, "r12", "in-sync")
    assert not any(":candidate:" in cap for cap in c["capability"])
    async with device(env, port) as dev:
        assert "<hostname>router1</hostname>" in await dev.get_config("running")
        await dev.lock("running")
        try:
            await dev.edit_config("running", f'<system xmlns="{NS}"><hostname>x</hostname>'
                                  '</system>')
        finally:
            await dev.unlock("running")
    out = await env.action("r12", "dry-run")
    dry = out["nfo-instances:nf-instances"]["nf-instance"][0]["dry-run"]
    assert dry["target"] == "running" and "router1" in dry["edit"]


async def test_a_commit_acknowledged_but_not_applied_is_caught_by_the_read_back(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Device.commit

    async def validate_first(self: Device, **kw: Any) -> None:
        # netconfd 2.13 then answers <ok/> to the commit and applies nothing
        await self.validate("candidate")
        await real(self, **kw)

    monkeypatch.setattr(Device, "commit", validate_first)
    await env.open()
    port, _ = await router(env, "r13")
    c = await wait_config(env, "r13", "failed")
    assert c["reason"].startswith("temporary:") and "differs" in c["reason"], c
    async with device(env, port) as dev:
        assert "router1" not in await dev.get_config("running")
    monkeypatch.undo()  # a server that keeps its word: the retry succeeds
    await wait_config(env, "r13", "in-sync")
    async with device(env, port) as dev:
        assert "router1" in await dev.get_config("running")


async def test_invalid_day2_data_is_refused_before_any_netconf_call(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await env.open()
    port, _ = await router(env, "r3")
    before = await wait_config(env, "r3", "in-sync")
    await env.mgr.wait_idle()
    sessions: list[Endpoint] = []
    real = Device.connect.__func__  # type: ignore[attr-defined]

    async def counted(cls: type[Device], ep: Endpoint) -> Device:
        sessions.append(ep)
        return await real(cls, ep)  # type: ignore[no-any-return]

    monkeypatch.setattr(Device, "connect", classmethod(counted))
    bad = (f'<interfaces xmlns="{NS}"><interface><name>eth9</name><mtu>42</mtu></interface>'
           '</interfaces>')
    with pytest.raises(NfoError) as e:
        await env.edit({"nfo-instances:nf-instances": {"nf-instance": [
            {"name": "r3", "day2": day2(bad)}]}})
    assert e.value.app_tag == "nfo-invalid-nf-config"
    assert "/nfo-demo-router:interfaces/interface[name='eth9']/mtu" in e.value.message
    assert e.value.path == "/nfo-instances:nf-instances/nf-instance[name='r3']/day2/config"
    inst = env.running_json("/nfo-instances:nf-instances/nf-instance[name='r3']")
    assert "day2" not in inst["nfo-instances:nf-instances"]["nf-instance"][0]
    await asyncio.sleep(0.3)
    assert sessions == []  # refused at the write: nfo never even connected
    assert config_of(env, "r3")["last-applied"] == before["last-applied"]
    async with device(env, port) as dev:
        assert "eth9" not in await dev.get_config("running")
    await env.action("r3", "check-sync")
    assert len(sessions) == 2  # the count sees nfo's sessions: the check-sync's, and ours


async def test_drift_is_reapplied_under_the_reapply_policy(env: Any) -> None:
    await env.open()
    await env.edit({"nfo-catalog:catalog": {"nf-descriptor": [
        {"id": DEMO, "netconf": {"drift": {"check-interval": 1, "on-drift": "re-apply"}}}]}})
    notes = Notes(env)
    port, _ = await router(env, "r4")
    await wait_config(env, "r4", "in-sync")
    async with device(env, port) as dev:
        await device_edit(dev, f'<system xmlns="{NS}"><hostname>hijacked</hostname></system>')
        assert "hijacked" in await dev.get_config("running")
    seen = await notes.until("nf-config-status-change", lambda s: any(
        "drift" in b.get("reason", "") for b in s))
    drift = next(b for b in seen if "drift" in b.get("reason", ""))
    assert drift["new-status"] == "applying" and "hostname" in drift["reason"]
    await wait_config(env, "r4", "in-sync")
    async with device(env, port) as dev:
        running = await dev.get_config("running")
    assert "hijacked" not in running and "router1" in running


async def test_drift_is_reported_then_adopted_with_sync_from(env: Any) -> None:
    await env.open()
    port, _ = await router(env, "r5", **{"on-drift": "report-only"})
    await wait_config(env, "r5", "in-sync")
    async with device(env, port) as dev:
        await device_edit(dev, f'<system xmlns="{NS}"><hostname>by-hand</hostname></system>')
    out = await env.action("r5", "dry-run")
    dry = out["nfo-instances:nf-instances"]["nf-instance"][0]["dry-run"]
    assert dry["target"] == "candidate"
    assert "router1" in dry["edit"] and "mgmt0" not in dry["edit"]  # the difference only
    out = await env.action("r5", "check-sync")
    check = out["nfo-instances:nf-instances"]["nf-instance"][0]["check-sync"]
    assert check["in-sync"] is False and "hostname" in check["difference"]
    await env.action("r5", "sync-from")
    inst = env.running_json("/nfo-instances:nf-instances/nf-instance[name='r5']")[
        "nfo-instances:nf-instances"]["nf-instance"][0]
    assert inst["day2"]["mode"] == "replace" and "by-hand" in inst["day2"]["config"]
    await wait_config(env, "r5", "in-sync",
                      pred=lambda c: c["last-applied-digest"] == c["desired-digest"])
    out = await env.action("r5", "check-sync")
    assert out["nfo-instances:nf-instances"]["nf-instance"][0]["check-sync"]["in-sync"] is True
    async with device(env, port) as dev:
        assert "by-hand" in await dev.get_config("running")


async def test_drift_report_only_says_what_differs(env: Any) -> None:
    await env.open()
    await env.edit({"nfo-catalog:catalog": {"nf-descriptor": [
        {"id": DEMO, "netconf": {"drift": {"check-interval": 1, "on-drift": "report-only"}}}]}})
    port, _ = await router(env, "r6")
    await wait_config(env, "r6", "in-sync")
    async with device(env, port) as dev:
        await device_edit(dev, f'<system xmlns="{NS}"><hostname>other</hostname></system>')
    c = await wait_config(env, "r6", "out-of-sync")
    assert any("hostname" in line for line in c["difference"])
    await env.action("r6", "sync-to")
    await wait_config(env, "r6", "in-sync")
    async with device(env, port) as dev:
        assert "router1" in await dev.get_config("running")


async def test_without_periodic_checks_an_in_sync_instance_leaves_the_manager_idle(
        env: Any) -> None:
    await env.open(health_interval=3600)
    await env.edit({"nfo-catalog:catalog": {"nf-descriptor": [
        {"id": DEMO, "netconf": {"drift": {"check-interval": 0}}}]}})
    await router(env, "r11")
    first = await wait_config(env, "r11", "in-sync")
    await asyncio.wait_for(env.mgr.wait_idle(), 5)  # nothing scheduled, nothing spinning
    await asyncio.sleep(1.5)
    assert config_of(env, "r11")["last-check"] == first["last-check"]


async def test_an_unreachable_device_is_retried_and_reported(env: Any) -> None:
    await env.open()
    closed = env.h.free_tcp_port()
    await env.edit({"nfo-catalog:catalog": {"nf-descriptor": [
        {"id": DEMO, "parameter": [{"name": "mgmt-port", "type": "port",
                                    "default": str(closed)}],
         "netconf": {"port": "{param:mgmt-port}"}}]}})
    await router(env, "r7")
    c = await wait_config(env, "r7", "failed", pred=lambda c: c.get("attempts", 0) >= 2)
    assert c["reason"].startswith("temporary:") and "next-retry" in c
    assert env.status("r7") == "running"  # the workload itself is fine
    # another instance is configured meanwhile: the retries hold up only their own
    port = env.h.free_tcp_port()
    await router(env, "r7b", port=port, parameter=[{"name": "mgmt-port", "value": str(port)}])
    await wait_config(env, "r7b", "in-sync")
    # r7 still retries: failed between attempts, applying during one
    assert config_of(env, "r7")["status"] in ("failed", "applying")


async def test_kill_9_of_the_nf_heals_it_and_configures_it_again(env: Any) -> None:
    await env.open()
    notes = Notes(env)
    port, st = await router(env, "r8", parameter=[{"name": "hostname", "value": "healme"}])
    await wait_config(env, "r8", "in-sync")
    pid = int(st["vim-resource-id"].split("-")[1])
    os.kill(pid, signal.SIGKILL)
    healed = await notes.until("nf-instance-healed", lambda s: any(b["name"] == "r8" for b in s))
    assert healed[0]["action"] == "restart" and healed[0]["heal-count"] == 1
    st = await env.wait_status("r8", "running", timeout=20)
    await wait_for(lambda: (env.state_of("r8") or {}).get("vim-resource-id") not in
                   (None, f"local-{pid}") and env.status("r8") == "running", 20, "a new workload")
    st = env.state_of("r8")
    assert st["heal-count"] == 1 and st["last-heal-reason"]
    await wait_config(env, "r8", "in-sync")
    async with device(env, port) as dev:
        assert "<hostname>healme</hostname>" in await dev.get_config("running")


async def test_healing_gives_up_after_its_attempts(env: Any) -> None:
    await env.open()
    await env.edit({"nfo-catalog:catalog": {"nf-descriptor": [
        {"id": DEMO, "healing": {"policy": "restart", "max-attempts": 1, "backoff": 0}}]}})
    notes = Notes(env)
    _, st = await router(env, "r9")
    for expected in ("restart", "give-up"):
        pid = int((env.state_of("r9") or {})["vim-resource-id"].split("-")[1])
        os.kill(pid, signal.SIGKILL)
        seen = await notes.until("nf-instance-healed",
                                 lambda s, e=expected: any(b["action"] == e for b in s))
        if expected == "restart":
            await wait_for(lambda p=pid: env.status("r9") == "running" and
                           (env.state_of("r9") or {}).get("vim-resource-id") != f"local-{p}",
                           20, "healed")
    assert [b["action"] for b in seen] == ["restart", "give-up"]
    st = await env.wait_status("r9", "failed")
    assert "healing gave up" in st["reason"]


async def test_credentials_never_appear_in_reads_or_logs(env: Any,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await env.open()
    key = descriptor(env)["netconf"]["private-key"]
    assert "PRIVATE KEY" in key
    await router(env, "r10")
    await wait_config(env, "r10", "in-sync")
    await admins(env.ds, ("alice", "a long passphrase"))
    user = env.ds.session("alice")  # an administrator: credentials need a rule naming them
    try:
        with user.get("running", "/nfo-catalog:catalog") as t:
            text = t.print()
        assert "netconf-router" in text and "PRIVATE KEY" not in text
        assert '"private-key"' not in text
    finally:
        await user.close()
    assert "PRIVATE KEY" not in json.dumps(env.state_of("r10"))
    body = key.split("\n")[1]
    assert all(body not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("moment", ["final", "confirmed"])
async def test_kill_9_of_nfo_while_applying_converges_without_applying_twice(
        env: Any, children: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        moment: str) -> None:
    """``final``: the device holds the configuration; nothing is sent again.
    ``confirmed``: nfo died with its (persistent) confirmed commit unconfirmed; the next
    apply cancels it by its token (the device would have kept it for the confirm timeout)
    and sends the edit once more."""
    # the demo entry (with its key pair) is seeded by the child's first start
    port = env.h.free_tcp_port()
    plan = {"options": env.h.FAST, "crash-after-device-commit": moment, "edits": [
        {"nfo-instances:nf-instances": {"nf-instance": [{
            "name": "rc", "descriptor": DEMO,
            "parameter": [{"name": "port", "value": str(port)},
                          {"name": "hostname", "value": "crashed"}]}]}}]}
    child = Child(tmp_path / "child", env.path, plan)
    children.append(child)
    await wait_for(lambda: child.said("CRASH"), 30, "the crash after the device's commit")
    await wait_for(lambda: child.proc.poll() is not None, 5, "the child to die")
    if moment == "confirmed":
        # the device keeps it past nfo's death (netconfd rolls a session's plain
        # confirmed commit back within this), so only nfo's cancel can undo it
        await env.open(manager=False)
        await asyncio.sleep(3)
        async with device(env, port) as dev:
            assert "<hostname>crashed</hostname>" in await dev.get_config("running")
        await env.close()
    edits = record_edits(monkeypatch)
    await env.open()
    assert config_of(env, "rc")["status"] == "applying"  # what the crash left recorded
    await wait_config(env, "rc", "in-sync")
    assert len(edits) == (0 if moment == "final" else 1)
    assert len(env.h.local_records(env.path)) == 1
    async with device(env, port) as dev:
        assert "<hostname>crashed</hostname>" in await dev.get_config("running")


async def test_bad_descriptors_and_misplaced_actions_are_refused_with_nothing_stored(
        env: Any) -> None:
    await env.open()
    before = descriptor(env)
    broken = {**before, "netconf": {**before["netconf"], "module": [
        {"name": "nfo-demo-router", "source": "module nfo-demo-router { syntax error"}]}}
    with pytest.raises(NfoError) as e:
        await env.edit({"nfo-catalog:catalog": {"nf-descriptor": [broken]}})
    assert e.value.app_tag == "nfo-invalid-nf-module" and "nfo-demo-router" in e.value.message
    assert descriptor(env) == before
    await router(env, "r14")
    await wait_config(env, "r14", "in-sync")
    # a template the running instance's data no longer fits is refused on the catalog write
    bad = {"id": DEMO, "netconf": {"day1": {"template": before["netconf"]["day1"]["template"]
                                            .replace("mgmt0", "x" * 40)}}}
    with pytest.raises(NfoError) as e:
        await env.edit({"nfo-catalog:catalog": {"nf-descriptor": [bad]}})
    assert e.value.app_tag == "nfo-invalid-nf-config"
    assert e.value.path == f"/nfo-catalog:catalog/nf-descriptor[id='{DEMO}']/netconf/day1/template"
    assert descriptor(env) == before
    # the configuration actions need a function nfo configures, and one that runs
    port = env.h.free_tcp_port()
    await env.add_instance("echo", "udp-echo", parameter=[{"name": "port", "value": str(port)}])
    await env.wait_status("echo", "running", timeout=15)
    with pytest.raises(NfoError, match="no NETCONF management"):
        await env.action("echo", "check-sync")
    await env.edit({"nfo-instances:nf-instances": {"nf-instance": [
        {"name": "r14", "admin-state": "disabled"}]}})
    await env.wait_status("r14", "terminated", timeout=15)
    with pytest.raises(NfoError, match="not running"):
        await env.action("r14", "dry-run")
