"""``nfo serve --store etcd://...``: three replicas in processes of their own on one
three-member etcd cluster.  One leads the workload manager; a write on another is
instantiated by it and its state read on all; when the leader is killed (SIGKILL) or
stands still (SIGSTOP), another takes over, adopts what runs and converges, with one
workload per configured instance and none left over, and the one that stood still does
nothing when it wakes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nfo.cli.demo import router_descriptor
from tests.etcd.cluster import EtcdCluster
from tests.netutil import free_port

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

PASSWORD = "replica-test-password"
INST = "nfo-instances:nf-instances"
SETUP = {
    "nfo-vim:vims": {"vim": [{"name": "sim1", "type": "nfo-vim:sim",
                              "sim": {"latency": {"mean": 400, "jitter": 300}}}]},
    "nfo-catalog:catalog": {"nf-descriptor": [{"id": "fw", "vim-types": ["nfo-vim:sim"]}]},
}


def instances(names: list[str]) -> dict[str, Any]:
    return {INST: {"nf-instance": [{"name": n, "descriptor": "fw", "vim": "sim1"}
                                   for n in names]}}


class Replica:
    """``nfo serve`` as replica ``name`` of the cluster, RESTCONF on a port of its own."""

    def __init__(self, name: str, root: Path, cluster: EtcdCluster, drivers: Path) -> None:
        self.name = name
        self.port = free_port(socket.SOCK_STREAM)
        self.log = root / f"{name}.out"
        env = {**os.environ, "NFO_ADMIN_PASSWORD": PASSWORD}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nfo", "--state-dir", str(root / name), "serve",
                 "--store", cluster.url, "--replica", name,
                 "--restconf", f"127.0.0.1:{self.port}", "--netconf", "127.0.0.1:0",
                 "--drivers-dir", str(drivers)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}/restconf",
                                      auth=("admin", PASSWORD), timeout=30)

    def said(self, text: str) -> bool:
        out = self.log.read_text() if self.log.exists() else ""
        if text in out:
            return True
        if self.proc.poll() is not None:
            pytest.fail(f"replica {self.name} exited ({self.proc.returncode}):\n{out[-3000:]}")
        return False

    async def expect(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.said(text):
            if time.monotonic() > deadline:
                pytest.fail(f"replica {self.name} did not say {text!r} in {timeout} s:\n"
                            f"{self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.05)

    async def patch(self, doc: dict[str, Any]) -> None:
        r = await self.http.patch("/data", json={"ietf-restconf:data": doc},
                                  headers={"Content-Type": "application/yang-data+json"})
        assert r.status_code in (200, 204), r.text

    async def states(self) -> dict[str, str]:
        r = await self.http.get(f"/ds/ietf-datastores:operational/{INST}",
                                headers={"Accept": "application/yang-data+json"})
        if r.status_code == 404:
            return {}  # not one instance
        assert r.status_code == 200, r.text
        return {e["name"]: e.get("state", {}).get("oper-status", "")
                for e in r.json()[INST].get("nf-instance", [])}

    async def replicas(self) -> list[dict[str, Any]]:
        r = await self.http.get("/ds/ietf-datastores:operational/nfo-replicas:replicas",
                                headers={"Accept": "application/yang-data+json"})
        assert r.status_code == 200, r.text
        return [{k: v for k, v in e.items() if k != "since"}
                for e in r.json()["nfo-replicas:replicas"].get("replica", [])]

    async def expect_replicas(self, want: list[dict[str, Any]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (got := await self.replicas()) != want:
            if time.monotonic() > deadline:
                pytest.fail(f"replicas on {self.name}: {got}, not {want}")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        await self.http.aclose()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


async def converged(r: Replica, running: set[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        states = await r.states()
        if {n for n, s in states.items() if s == "running"} == running and set(states) == running:
            return states
        if time.monotonic() > deadline:
            pytest.fail(f"not converged on replica {r.name}: {states}")
        await asyncio.sleep(0.2)


def workloads(drivers: Path) -> list[tuple[str, int]]:
    db = drivers / "drivers" / "sim" / "sim1" / "sim-vim.db"
    conn = sqlite3.connect(db)
    try:
        return sorted((str(i), int(n)) for i, n in conn.execute(
            "SELECT instance, COUNT(*) FROM resources GROUP BY instance"))
    finally:
        conn.close()


Trio = tuple[Replica, Replica, Replica, Path]


@pytest.fixture
async def trio(etcd_own: EtcdCluster, tmp_path: Path) -> AsyncIterator[Trio]:
    """Replica ``a``, leading the workload manager, and replicas ``b`` and ``c``,
    serving; the drivers' directory they share."""
    drivers = tmp_path / "drivers"
    started: list[Replica] = []
    try:
        started.append(Replica("a", tmp_path, etcd_own, drivers))
        await started[0].expect("workload manager ready", 60)
        for name in ("b", "c"):
            started.append(Replica(name, tmp_path, etcd_own, drivers))
        for r in started[1:]:
            await r.expect(f"serving as replica {r.name}", 60)
        yield started[0], started[1], started[2], drivers
    finally:
        a = started[0]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(a.proc.pid, signal.SIGCONT)
        a.kill()
        for r in started[1:]:
            await r.stop()
        await a.http.aclose()


async def new_leader(*replicas: Replica, timeout: float = 30) -> Replica:
    """The one of ``replicas`` that takes the lead (once its manager is ready)."""
    deadline = time.monotonic() + timeout
    while True:
        for r in replicas:
            if r.said(f"replica {r.name} leads the workload manager"):
                await r.expect("workload manager ready", 60)
                return r
        if time.monotonic() > deadline:
            pytest.fail(f"none of {[r.name for r in replicas]} took the lead")
        await asyncio.sleep(0.05)


async def kill_mid_work(a: Replica, b: Replica, c: Replica, batch: list[str]) -> list[str]:
    """Once 50 of ``batch`` run, delete one in ten through ``c`` and SIGKILL the leader
    ``a`` while the others are still on their way (checked on ``b``); the deleted ones."""
    deadline = time.monotonic() + 120
    while sum(s == "running" for s in (await c.states()).values()) < 50:
        assert time.monotonic() < deadline, "the leader starts nothing"
        await asyncio.sleep(0.05)
    gone = batch[::10]
    answers = await asyncio.gather(*(c.http.delete(f"/data/{INST}/nf-instance={n}")
                                     for n in gone))
    assert {r.status_code for r in answers} == {204}
    a.kill()
    states = await b.states()
    assert {states.get(n) for n in batch} - {"running"}, "all done already"
    return gone


async def test_the_leader_is_killed_and_another_replica_takes_over(trio: Trio) -> None:
    a, b, c, drivers = trio
    assert b.said("joined the etcd cluster") and c.said("joined the etcd cluster")
    await asyncio.sleep(1.0)
    assert not b.said("leads the workload manager")
    assert not c.said("leads the workload manager")
    await b.expect_replicas([{"name": "a", "here": False, "leads": ["workload"]},
                             {"name": "b", "here": True}, {"name": "c", "here": False}], 10)
    # written on b, instantiated by a, read on every replica
    await b.patch(SETUP)
    await b.patch(instances(["first"]))
    for r in (b, a, c):
        await converged(r, {"first"}, 60)
    # a thousand more, each ready 0.5-9.5 s after it is asked for (spread wide, so that
    # a loaded machine still kills the leader mid-work); the leader dies while it
    # instantiates some and terminates others
    await b.patch({"nfo-vim:vims": {"vim": [{"name": "sim1", "sim": {"latency": {
        "mean": 5000, "jitter": 4500}}}]}})
    batch = [f"i{k:04d}" for k in range(1000)]
    await b.patch(instances(batch))
    gone = await kill_mid_work(a, b, c, batch)
    leader = await new_leader(b, c)
    # and, under the new leader, more instantiations
    more = [f"j{k}" for k in range(20)]
    await leader.patch(instances(more))
    want = {"first", *more} | set(batch) - set(gone)
    for r in (b, c):
        await converged(r, want, 180)
    # one workload per configured instance; none of the deleted ones left
    assert workloads(drivers) == sorted((n, 1) for n in want)
    # a is gone from the replicas once its presence lapsed; the new leader leads
    await b.expect_replicas([{"name": "b", "here": True} | (
        {"leads": ["workload"]} if leader is b else {}),
        {"name": "c", "here": False} | ({"leads": ["workload"]} if leader is c else {})], 30)


async def refuses_what_the_manager_would(r: Replica) -> None:
    """A VIM that still runs an instance cannot be deleted; a descriptor whose function
    module does not compile cannot be written."""
    gone = await r.http.delete("/data/nfo-vim:vims/vim=sim1")
    assert gone.status_code == 409 and "still runs 1 instance" in gone.text, \
        (r.name, gone.status_code, gone.text)
    broken = router_descriptor()
    broken["netconf"]["module"] = [{"name": "nfo-demo-router",
                                    "source": "module nfo-demo-router { syntax error"}]
    bad = await r.http.patch(
        "/data", json={"ietf-restconf:data": {"nfo-catalog:catalog": {
            "nf-descriptor": [broken]}}},
        headers={"Content-Type": "application/yang-data+json"})
    assert bad.status_code == 409 and "nfo-invalid-nf-module" in bad.text, \
        (r.name, bad.status_code, bad.text)


async def test_every_replica_refuses_the_writes_the_leader_refuses(trio: Trio) -> None:
    """The workload manager's checks of a write hold through every replica, not only
    through the one that leads it, before and after the lead moves; and they judge by
    the state the leader records (a VIM whose instance is gone can then go)."""
    a, b, c, _ = trio
    await b.patch(SETUP)
    # placed on sim1 by the manager (no leafref to it): a VIM the configuration does not
    # name, which only the manager knows to be in use
    await b.patch({INST: {"nf-instance": [{"name": "first", "descriptor": "fw"}]}})
    await converged(b, {"first"}, 60)
    for r in (a, b, c):
        await refuses_what_the_manager_would(r)
    a.kill()
    leader = await new_leader(b, c)
    other = c if leader is b else b
    for r in (leader, other):
        await refuses_what_the_manager_would(r)
    r = await other.http.delete(f"/data/{INST}/nf-instance=first")
    assert r.status_code == 204, r.text
    await converged(other, set(), 60)
    r = await other.http.delete("/data/nfo-vim:vims/vim=sim1")
    assert r.status_code == 204, r.text


async def act(r: Replica, instance: str, action: str) -> httpx.Response:
    return await r.http.post(f"/data/{INST}/nf-instance={instance}/{action}",
                             json={"nfo-instances:input": {}},
                             headers={"Content-Type": "application/yang-data+json",
                                      "Accept": "application/yang-data+json"})


async def restarted(r: Replica, drivers: Path, instance: str, before: str,
                    timeout: float) -> str:
    """Once ``instance`` runs again on a new workload (not ``before``): that one."""
    deadline = time.monotonic() + timeout
    while True:
        now = resources(drivers).get(instance)
        if now not in (None, before) and (await r.states()).get(instance) == "running":
            return now
        if time.monotonic() > deadline:
            pytest.fail(f"{instance} not restarted: {now} (was {before})")
        await asyncio.sleep(0.1)


async def test_actions_through_any_replica_are_served_by_the_leader(trio: Trio) -> None:
    """An instance's actions, called through a replica that does not lead, are handed
    over to the one that does; its errors come back as they are; and a call made while
    there is no leader is answered by the next one."""
    a, b, c, drivers = trio
    await b.patch(SETUP)
    await b.patch(instances(["first"]))
    await converged(b, {"first"}, 60)
    before = resources(drivers)["first"]
    got = await act(b, "first", "restart")
    assert got.status_code == 200, got.text
    assert got.json() == {"nfo-instances:output": {"result": "restart of 'first' scheduled"}}
    before = await restarted(c, drivers, "first", before, 60)
    # an error of the leader's manager, through another replica
    got = await act(c, "first", "check-sync")
    assert got.status_code == 400, got.text
    error = got.json()["ietf-restconf:errors"]["error"][0]
    assert (error["error-tag"], error["error-app-tag"]) == ("invalid-value", "nfo-no-netconf")
    # asked while the leader is dead: the next leader takes it up
    a.kill()
    got = await act(b, "first", "restart")
    assert got.status_code == 200, got.text
    leader = await new_leader(b, c)
    await restarted(leader, drivers, "first", before, 60)


def resources(drivers: Path) -> dict[str, str]:
    """Instance -> resource id of every workload the sim VIM holds."""
    db = drivers / "drivers" / "sim" / "sim1" / "sim-vim.db"
    conn = sqlite3.connect(db)
    try:
        return {str(i): str(r) for r, i in conn.execute("SELECT id, instance FROM resources")}
    finally:
        conn.close()


async def full_states(r: Replica) -> dict[str, Any]:
    got = await r.http.get(f"/ds/ietf-datastores:operational/{INST}",
                           headers={"Accept": "application/yang-data+json"})
    assert got.status_code == 200, got.text
    return {e["name"]: e.get("state") for e in got.json()[INST].get("nf-instance", [])}


async def test_a_leader_paused_past_its_lease_does_nothing_when_it_wakes(trio: Trio) -> None:
    a, b, c, drivers = trio
    await b.patch(SETUP)
    batch = [f"p{k:03d}" for k in range(300)]
    await b.patch(instances(batch))
    await asyncio.sleep(0.5)
    os.killpg(a.proc.pid, signal.SIGSTOP)  # mid-instantiation, past its lease
    leader = await new_leader(b, c)
    for k in range(0, 300, 2):
        r = await leader.http.delete(f"/data/{INST}/nf-instance=p{k:03d}")
        assert r.status_code == 204, r.text
    want = {n for k, n in enumerate(batch) if k % 2}
    await converged(b, want, 120)
    before = resources(drivers)
    assert set(before) == want
    states = await full_states(b)
    os.killpg(a.proc.pid, signal.SIGCONT)
    await a.expect("replica a no longer leads workload", 30)
    await asyncio.sleep(3.0)  # what a stale manager would do, it would do by now
    assert resources(drivers) == before  # no VIM call created or removed anything
    assert await full_states(b) == states  # no state written
    assert await full_states(a) == states  # and a reads what b wrote


def local_processes(names: set[str]) -> dict[str, list[int]]:
    """Instance -> pids of every live workload process nfo started for one of ``names``
    (found by its tags, as the local driver finds them; zombies left out)."""
    out: dict[str, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            raw = (p / "environ").read_bytes().decode(errors="replace")
            stat = (p / "stat").read_text()
        except OSError:
            continue
        env = dict(e.split("=", 1) for e in raw.split("\0") if "=" in e)
        if env.get("NFO_INSTANCE") in names and stat.rsplit(")", 1)[1].split()[0] != "Z":
            out.setdefault(env["NFO_INSTANCE"], []).append(int(p.name))
    return out


def kill_processes(names: set[str], *replicas: Replica) -> None:
    """The workloads of ``names`` killed, once ``replicas`` are: a manager still running
    would start them again (to heal them), and those would outlive the test."""
    for r in replicas:
        r.kill()
    for pids in local_processes(names).values():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


async def test_local_workloads_are_adopted_by_the_next_leader(trio: Trio) -> None:
    a, b, c, _ = trio
    names = [f"echo-{uuid.uuid4().hex[:6]}-{k}" for k in range(8)]
    ports = [free_port() for _ in names]
    try:
        await b.patch({INST: {"nf-instance": [
            {"name": n, "descriptor": "udp-echo", "vim": "local",
             "parameter": [{"name": "port", "value": str(p)}]}
            for n, p in zip(names, ports, strict=True)]}})
        await asyncio.sleep(0.3)
        a.kill()  # while it starts them; the processes it started outlive it
        await new_leader(b, c)
        await converged(b, set(names), 60)
        for n in names[:3]:
            r = await b.http.delete(f"/data/{INST}/nf-instance={n}")
            assert r.status_code == 204, r.text
        await converged(b, set(names[3:]), 60)
        running = local_processes(set(names))
        assert {n: len(p) for n, p in running.items()} == {n: 1 for n in names[3:]}
    finally:
        kill_processes(set(names), a, b, c)


async def test_a_thousand_local_workloads_survive_the_leader_being_killed(trio: Trio) -> None:
    """1,000 processes on the local VIM: the leader dies while it starts them and stops
    100 just deleted; the next one adopts what runs, starts the rest, stops the deleted
    ones, and in the end one process runs per configured instance and no other."""
    a, b, c, _ = trio
    tag = uuid.uuid4().hex[:6]
    batch = [f"s{tag}-{k:04d}" for k in range(1000)]
    try:
        await b.patch({
            "nfo-vim:vims": {"vim": [{"name": "local", "capacity": {"max-instances": 2000},
                                      "local": {"max-processes": 2000}}]},
            "nfo-catalog:catalog": {"nf-descriptor": [{
                "id": "sleeper", "vim-types": ["nfo-vim:local"],
                "local": {"command": ["sleep", "100000"]}}]}})
        await b.patch({INST: {"nf-instance": [
            {"name": n, "descriptor": "sleeper", "vim": "local"} for n in batch]}})
        gone = await kill_mid_work(a, b, c, batch)
        await new_leader(b, c)
        want = set(batch) - set(gone)
        for r in (b, c):
            await converged(r, want, 240)
        running = local_processes(set(batch))
        assert {n: len(p) for n, p in running.items()} == {n: 1 for n in want}
    finally:
        kill_processes(set(batch), a, b, c)


async def test_an_etcd_snapshot_restored_to_a_new_cluster_is_served_and_the_vim_follows(
        etcd_own: EtcdCluster, tmp_path: Path) -> None:
    """The backup and recovery of docs/replicas.md: ``etcdctl snapshot save``, the cluster
    lost, ``etcdctl snapshot restore`` into a new one, the replicas started on it.  They
    serve what the snapshot held, and the VIM follows it: the workloads of the snapshot
    are adopted, the one asked for after it is removed as an orphan."""
    drivers = tmp_path / "drivers"
    a = Replica("a", tmp_path, etcd_own, drivers)
    try:
        await a.expect("workload manager ready", 60)
        await a.patch(SETUP)
        kept = [f"k{k:02d}" for k in range(20)]
        await a.patch(instances(kept))
        await converged(a, set(kept), 60)
        etcd_own.save_snapshot(tmp_path / "nfo.db", member=1)
        await a.patch(instances(["late"]))
        await converged(a, {*kept, "late"}, 60)
    finally:
        a.kill()
        await a.http.aclose()
    etcd_own.stop()  # the cluster is lost
    assert workloads(drivers) == sorted((n, 1) for n in [*kept, "late"])
    with EtcdCluster(tmp_path / "restored", token="nfo-restored").restore(
            tmp_path / "nfo.db") as restored:
        again = [Replica(n, tmp_path, restored, drivers) for n in ("a", "b")]
        try:
            await new_leader(*again, timeout=60)
            for r in again:
                await converged(r, set(kept), 60)
            assert workloads(drivers) == sorted((n, 1) for n in kept)
            # and it takes writes again
            await again[1].patch(instances(["after"]))
            await converged(again[0], {*kept, "after"}, 60)
        finally:
            for r in again:
                r.kill()
                await r.http.aclose()
