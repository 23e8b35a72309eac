"""A chaos run: rounds of RESTCONF write bursts, each ended by ``kill -9`` of ``nfo serve``.

Each round draws a burst (creates, updates, moves between VIM accounts, admin-state
toggles, deletes; single writes and multi-entry merges or YANG Patches, eight in flight),
kills the server at a random moment (a random delay after the burst began, which may land
after the burst, while the manager reconciles, or right after the k-th acknowledged
write), restarts it on the same state directory (sometimes killing it again during its
recovery), and then waits for convergence and checks the invariants of docs/chaos.md:

- running holds every acknowledged write (and an unacknowledged one only wholly or not);
- every configured instance reaches its final state: ``running``, ``failed`` with a
  reason (only on the misbehaving VIM account), ``terminated`` when disabled;
- the VIM holds exactly one workload per running instance, the one its state records,
  on its VIM account, built from its current parameters, and nothing else: zero
  duplicates, zero orphans; deleted instances leave no state behind;
- nothing stays ``initializing`` or ``terminating`` past its timeout (plus a slack).

The last round deletes everything, is killed during the mass termination, and must end
with empty VIMs and a clean SIGTERM stop.  Every local NF of the run is killed at the end,
whatever happened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.netutil import udp_roundtrip_sync
from tools.chaos_support.model import (
    Ledger,
    Profile,
    Request,
    local_profile,
    plan_round,
    sim_profile,
    spec_of,
)
from tools.chaos_support.observe import (
    Workload,
    kill_run_processes,
    local_records,
    local_workloads,
    sim_workloads,
)
from tools.chaos_support.server import INSTANCES, Api, Server, ServerDied

YANG_PATCH = "application/yang-patch+json"
PASSWORD = "chaos-admin-password"
STUCK_SLACK = 15.0
"""Seconds past an instance's timeout before initializing/terminating counts as stuck."""
IN_FLIGHT = 8
"""Writes in flight at once during a burst."""


@dataclass
class Config:
    vim: str = "sim"
    instances: int = 1000
    """Instances created over the run (instantiations), spread over the rounds."""
    rounds: int = 10
    seed: int = 1
    workdir: Path | None = None
    keep: bool = False
    concurrency: int | None = None
    """``nfo serve --concurrency`` (its default when None)."""
    live_max: int | None = None
    """Most instances configured at once (local default 150: every one is a process)."""
    timeout: int | None = None
    recovery_kill_rate: float = 0.25
    max_kill_delay: float = 3.0
    bad_latency_ms: int = 3000
    """sim: mean latency of the misbehaving VIM account (its jitter is 5/6 of it)."""
    bad_failure_rate: float = 0.25
    """sim: failure-rate of the misbehaving VIM account."""
    log: Callable[[str], None] = field(default=print, repr=False)


@dataclass
class Restart:
    start_s: float
    """From spawning the server to it serving (open, replay, resync)."""
    converge_s: float | None = None
    """From serving to the first check without a problem (None: never, a failure)."""
    healthy_s: float | None = None
    """From serving until every instance on the healthy VIM account was final."""
    states: dict[str, int] = field(default_factory=dict)
    workloads: int = 0


@dataclass
class Round:
    index: int
    ops: dict[str, int]
    requests: int
    sent: int = 0
    acked: int = 0
    acked_ops: dict[str, int] = field(default_factory=dict)
    """Operations acknowledged, by kind (writes the kill left unsent are sent after the
    restart: every planned operation is made once)."""
    refused: int = 0
    unknown: int = 0
    """Requests whose answer the kill cut off (they may or may not have landed)."""
    unknown_ops: dict[str, int] = field(default_factory=dict)
    kill: str = ""
    restarts: list[Restart] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    config: dict[str, Any]
    run_id: str
    workdir: str
    rounds: list[Round] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    kills: int = 0
    starts: int = 0
    duration_s: float = 0.0
    stop_status: int | None = None
    leftover_processes: int = 0

    @property
    def restarts(self) -> list[Restart]:
        return [r for rd in self.rounds for r in rd.restarts]

    def figures(self) -> dict[str, Any]:
        conv = sorted(r.converge_s for r in self.restarts if r.converge_s is not None)
        healthy = sorted(r.healthy_s for r in self.restarts if r.healthy_s is not None)
        starts = sorted(r.start_s for r in self.restarts)
        ops: Counter[str] = Counter()
        cut: Counter[str] = Counter()
        for rd in self.rounds:
            ops.update(rd.acked_ops)
            cut.update(rd.unknown_ops)
        return {
            "vim": self.config["vim"], "instances": self.config["instances"],
            "rounds": self.config["rounds"], "seed": self.config["seed"], "kills": self.kills,
            "restarts": max(0, self.starts - 1), "checked-restarts": len(self.restarts),
            "acknowledged-operations": dict(sorted(ops.items())),
            "requests": sum(rd.requests for rd in self.rounds),
            "acknowledged": sum(rd.acked for rd in self.rounds),
            "cut-off-by-kill": sum(rd.unknown for rd in self.rounds),
            "cut-off-operations": dict(sorted(cut.items())),
            "max-workloads": max((r.workloads for r in self.restarts), default=0),
            "converge-s": _dist(conv), "healthy-vim-final-s": _dist(healthy),
            "restart-s": _dist(starts), "duration-s": round(self.duration_s, 1),
            "stop-status": self.stop_status, "leftover-processes": self.leftover_processes,
            "failures": len(self.failures),
        }

    def to_json(self) -> dict[str, Any]:
        return {"figures": self.figures(), "failures": self.failures, "run-id": self.run_id,
                "workdir": self.workdir, "config": self.config,
                "rounds": [asdict(r) for r in self.rounds]}


def _dist(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    q = (statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1
         else [values[0]] * 9)
    return {"min": round(values[0], 2), "median": round(statistics.median(values), 2),
            "p90": round(q[8], 2), "max": round(values[-1], 2)}


# -- one write ----------------------------------------------------------------------------


async def _send(api: Api, req: Request) -> httpx.Response:
    if req.method == "put":
        (op,) = req.ops
        assert op.target is not None
        return await api.write("PUT", f"{INSTANCES}/nf-instance={op.name}",
                               {"nfo-instances:nf-instance": [op.target.entry(op.name)]})
    if req.method == "delete":
        (op,) = req.ops
        return await api.write("DELETE", f"{INSTANCES}/nf-instance={op.name}")
    if req.method == "patch":
        entries = [o.target.entry(o.name) for o in req.ops if o.target is not None]
        return await api.write("PATCH", "/restconf/data", {"ietf-restconf:data": {
            "nfo-instances:nf-instances": {"nf-instance": entries}}})
    edits = [{"edit-id": str(i), "operation": "remove",
              "target": f"/nfo-instances:nf-instances/nf-instance={o.name}"}
             for i, o in enumerate(req.ops)]
    return await api.write("PATCH", "/restconf/data", {"ietf-yang-patch:yang-patch": {
        "patch-id": "chaos", "edit": edits}}, YANG_PATCH)


# -- the run ------------------------------------------------------------------------------


class Chaos:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.run_id = f"chaos-{cfg.seed}-{uuid.uuid4().hex[:8]}"
        self.made_workdir = cfg.workdir is None
        self.workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="nfo-chaos-"))
        self.state = self.workdir / "state"
        if cfg.vim == "sim":
            self.profile: Profile = sim_profile(
                timeout=cfg.timeout or 15, bad_latency_ms=cfg.bad_latency_ms,
                bad_jitter_ms=cfg.bad_latency_ms * 5 // 6,
                bad_failure_rate=cfg.bad_failure_rate, seed=cfg.seed)
            self.live_max = cfg.live_max
        elif cfg.vim == "local":
            self.profile = local_profile(self.run_id, timeout=cfg.timeout or 20)
            self.live_max = cfg.live_max or 150
        else:
            raise ValueError(f"--vim is sim or local, not {cfg.vim!r}")
        self.server = Server(self.state, self.workdir / "logs", PASSWORD,
                             concurrency=cfg.concurrency)
        self.api: Api | None = None
        self.ledger = Ledger()
        self.report = Report({k: (str(v) if isinstance(v, Path) else v)
                              for k, v in asdict(cfg).items() if k != "log"},
                             self.run_id, str(self.workdir))

    def log(self, text: str) -> None:
        self.cfg.log(f"chaos[{self.cfg.vim}]: {text}")

    def fail(self, rd: Round, problem: str) -> None:
        rd.problems.append(problem)
        self.report.failures.append(f"round {rd.index}: {problem}")
        self.log(f"FAILURE round {rd.index}: {problem}")

    # -- server lifecycle --
    async def _start(self) -> Restart:
        if self.api is not None:
            await self.api.close()
            self.api = None
        took = await self.server.start()
        self.report.starts = self.server.starts
        self.api = self.server.api()
        return Restart(took)

    def _kill(self) -> None:
        if self.server.alive:
            self.server.kill()
            self.report.kills += 1

    # -- the run --
    async def run(self) -> Report:
        t0 = time.monotonic()
        self.log(f"run {self.run_id}: {self.cfg.instances} instances, {self.cfg.rounds} "
                 f"rounds, seed {self.cfg.seed}, state {self.state}")
        try:
            await self._start()
            assert self.api is not None
            r = await self.api.write("PATCH", "/restconf/data",
                                     {"ietf-restconf:data": self.profile.setup})
            if not r.is_success:
                raise RuntimeError(f"the VIM and catalog set-up was refused: {r.text}")
            per_round = [self.cfg.instances // self.cfg.rounds] * self.cfg.rounds
            for i in range(self.cfg.instances % self.cfg.rounds):
                per_round[i] += 1
            for index, creates in enumerate(per_round, 1):
                await self._round(index, creates)
            await self._teardown(len(per_round) + 1)
        except ServerDied as e:
            self.report.failures.append(f"the server died: {e}")
            self.log(f"FAILURE: {e}")
        finally:
            self.report.duration_s = time.monotonic() - t0
            await self._cleanup()
        return self.report

    async def _round(self, index: int, creates: int) -> None:
        requests = plan_round(self.rng, self.ledger, self.profile, creates, self.live_max)
        ops = Counter(op.kind for req in requests for op in req.ops)
        rd = Round(index, dict(ops), len(requests))
        self.report.rounds.append(rd)
        if self.rng.random() < 0.5:
            after = self.rng.randint(1, max(1, len(requests)))
            unsent = await self._burst(rd, requests, kill_after_ack=after)
        else:
            delay = self.rng.uniform(0.0, self.cfg.max_kill_delay)
            unsent = await self._burst(rd, requests, kill_at=delay)
        self.log(f"round {index}: {dict(ops)} in {len(requests)} requests: {rd.acked} "
                 f"acknowledged, {rd.unknown} cut off, {len(unsent)} unsent; killed "
                 f"{rd.kill}")
        await self._recover(rd)
        if unsent:
            # The client sends the rest after the outage; the next burst (and its kill)
            # follows at once, while the manager works on these.
            await self._burst(rd, unsent, kill=False)

    async def _burst(self, rd: Round, requests: list[Request], *,
                     kill_after_ack: int | None = None, kill_at: float | None = None,
                     kill: bool = True) -> list[Request]:
        """Send the requests, IN_FLIGHT at a time, and kill the server as told (at the
        latest when the burst is over); returns the requests the kill left unsent."""
        api = self.api
        assert api is not None
        sem = asyncio.Semaphore(IN_FLIGHT)
        t0 = time.monotonic()
        unsent: list[Request] = []
        acked_before = rd.acked

        def kill_now(why: str) -> None:
            if self.server.alive:
                self._kill()
                rd.kill = f"{why} ({time.monotonic() - t0:.2f}s into the burst)"

        async def one(req: Request) -> None:
            async with sem:
                if not self.server.alive:
                    unsent.append(req)
                    return
                for op in req.ops:
                    self.ledger.sent(op.name, op.target)
                rd.sent += 1
                try:
                    r = await _send(api, req)
                except httpx.HTTPError:
                    rd.unknown += 1
                    for op in req.ops:
                        rd.unknown_ops[op.kind] = rd.unknown_ops.get(op.kind, 0) + 1
                    return
                if r.is_success:
                    for op in req.ops:
                        self.ledger.acknowledged(op.name, op.target)
                        rd.acked_ops[op.kind] = rd.acked_ops.get(op.kind, 0) + 1
                    rd.acked += 1
                    if rd.acked - acked_before == kill_after_ack:
                        kill_now(f"right after acknowledged write {kill_after_ack}/"
                                 f"{len(requests)}")
                else:
                    for op in req.ops:
                        self.ledger.refused(op.name)
                    rd.refused += 1
                    self.fail(rd, f"write refused: {req.method} {[o.name for o in req.ops]}: "
                                  f"{r.status_code} {r.text[:300]}")

        async def timer(delay: float) -> None:
            await asyncio.sleep(delay)
            kill_now(f"after a random delay of {delay:.2f}s")

        timer_task = asyncio.create_task(timer(kill_at)) if kill_at is not None else None
        try:
            await asyncio.gather(*(one(req) for req in requests))
            if timer_task is not None:
                await timer_task
        finally:
            if timer_task is not None:
                timer_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer_task
        if kill:
            kill_now("after the burst")
        return unsent

    async def _recover(self, rd: Round, *, expect_empty: bool = False) -> None:
        """Restart (sometimes killing it again while it recovers), then check."""
        restart = await self._start()
        while self.rng.random() < self.cfg.recovery_kill_rate:
            delay = self.rng.uniform(0.0, 2.0)
            await asyncio.sleep(delay)
            self._kill()
            rd.kill += f"; again {delay:.2f}s into the recovery"
            restart = await self._start()
        rd.restarts.append(restart)
        assert self.api is not None
        config = {n: spec_of(e) for n, e in (await self.api.instances("config")).items()}
        for problem in self.ledger.settle(config):
            self.fail(rd, problem)
        if expect_empty and config:
            self.fail(rd, f"{len(config)} instances still configured after deleting all")
        await self._converge(rd, restart, config)

    async def _converge(self, rd: Round, restart: Restart, config: dict[str, Any]) -> None:
        api = self.api
        assert api is not None
        ready_wall = time.time()
        t0 = time.monotonic()
        budget = self.profile.timeout + 60 + 0.05 * len(config)
        stuck: dict[str, str] = {}
        problems: list[str] = []
        while True:
            oper = await api.instances("all")
            workloads = await asyncio.to_thread(self._workloads)
            problems = check(self.profile, oper, workloads)
            now = time.time()
            for name, entry in oper.items():
                st = entry.get("state") or {}
                status = st.get("oper-status")
                if status in ("initializing", "terminating") and name not in stuck:
                    since = max(_wall(st.get("last-change")) or 0.0, ready_wall)
                    if now - since > self.profile.timeout + STUCK_SLACK:
                        stuck[name] = f"{status} since {st.get('last-change')}: {st}"
            if restart.healthy_s is None and _healthy_final(self.profile, oper):
                restart.healthy_s = time.monotonic() - t0
            if not problems:
                took = time.monotonic() - t0
                await asyncio.sleep(1.0)  # and it stays so
                oper = await api.instances("all")
                workloads = await asyncio.to_thread(self._workloads)
                problems = check(self.profile, oper, workloads)
                if not problems:
                    problems = await asyncio.to_thread(self._deep_check, oper, workloads)
                if not problems:
                    restart.converge_s = took
                    restart.states = dict(Counter(
                        (e.get("state") or {}).get("oper-status", "-") for e in oper.values()))
                    restart.workloads = len(workloads)
                    break
            if time.monotonic() - t0 > budget:
                break
            await asyncio.sleep(0.5)
        for name, what in sorted(stuck.items()):
            self.fail(rd, f"stuck: {name} {what}")
        if restart.converge_s is None:
            self.fail(rd, f"no convergence within {budget:.0f}s: {len(problems)} problems, "
                          f"e.g. {problems[:10]}")
        else:
            self.log(f"round {rd.index}: restarted in {restart.start_s:.1f}s, converged in "
                     f"{restart.converge_s:.1f}s (healthy VIM {restart.healthy_s or 0:.1f}s): "
                     f"{restart.states}, {restart.workloads} workloads")

    def _workloads(self) -> list[Workload]:
        if self.profile.kind == "sim":
            return sim_workloads(self.state, [self.profile.good, self.profile.bad])
        return local_workloads(self.run_id)

    def _deep_check(self, oper: dict[str, dict[str, Any]],
                    workloads: list[Workload]) -> list[str]:
        """Local only: records match processes; every running echo NF answers on its port."""
        if self.profile.kind != "local":
            return []
        problems = []
        live = {w.resource_id for w in workloads}
        for rec in local_records(self.state):
            if rec.get("resource-id") not in live:
                problems.append(f"record: {rec['_vim']}/{rec.get('instance')} describes "
                                f"{rec.get('resource-id')}, which is not running")
        for name, entry in oper.items():
            if "descriptor" not in entry:
                continue
            spec = spec_of(entry)
            running = (entry.get("state") or {}).get("oper-status") == "running"
            if running and spec.port is not None:
                payload = f"chaos {name}".encode()
                if udp_roundtrip_sync(spec.port, payload) != payload:
                    problems.append(f"echo: {name} is running but 127.0.0.1:{spec.port} "
                                    "does not answer")
        return problems

    async def _teardown(self, index: int) -> None:
        """Delete everything, kill during the mass termination, recover, stop cleanly."""
        rd = Round(index, {"delete": len(self.ledger.acked)}, 1)
        self.report.rounds.append(rd)
        assert self.api is not None
        for name in list(self.ledger.acked):
            self.ledger.sent(name, None)
        r = await self.api.write("DELETE", INSTANCES)
        rd.sent = 1
        if r.is_success or r.status_code == 404:
            rd.acked = 1
            rd.acked_ops["delete"] = len(self.ledger.acked)
            for name in list(self.ledger.acked):
                self.ledger.acknowledged(name, None)
        else:
            self.fail(rd, f"deleting every instance was refused: {r.status_code} {r.text}")
        delay = self.rng.uniform(0.0, 1.5)
        await asyncio.sleep(delay)
        self._kill()
        rd.kill = f"{delay:.2f}s after deleting every instance"
        self.log(f"teardown: {rd.ops['delete']} instances deleted; killed {rd.kill}")
        await self._recover(rd, expect_empty=True)
        assert self.api is not None
        await self.api.close()
        self.api = None
        self.report.stop_status = await self.server.stop()
        if self.report.stop_status != 0:
            self.fail(rd, f"SIGTERM stop exited {self.report.stop_status}:\n"
                          f"{self.server.tail()}")
        left = await asyncio.to_thread(self._workloads)
        if left:
            self.fail(rd, f"{len(left)} workloads remain after deleting everything: "
                          f"{left[:10]}")

    async def _cleanup(self) -> None:
        if self.api is not None:
            with contextlib.suppress(Exception):
                await self.api.close()
            self.api = None
        self.server.kill()
        if self.profile.kind == "local":
            self.report.leftover_processes = kill_run_processes(self.run_id)
        if self.made_workdir and not self.cfg.keep and not self.report.failures:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _wall(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _healthy_final(profile: Profile, oper: dict[str, dict[str, Any]]) -> bool:
    """Whether every instance that is and was on the healthy VIM account is final (one
    being moved off the misbehaving account waits for that account, as it should)."""
    for entry in oper.values():
        st = entry.get("state") or {}
        if ("descriptor" in entry and spec_of(entry).vim == profile.good
                and st.get("vim") in (None, profile.good)
                and st.get("oper-status") not in ("running", "failed", "terminated")):
            return False
    return True


# -- the invariants -------------------------------------------------------------------------


def check(profile: Profile, oper: dict[str, dict[str, Any]],
          workloads: list[Workload]) -> list[str]:
    """Everything that keeps this picture from being converged (empty: converged)."""
    problems: list[str] = []
    config = {n: spec_of(e) for n, e in oper.items() if "descriptor" in e}
    by_instance: dict[str, list[Workload]] = defaultdict(list)
    for w in workloads:
        by_instance[w.instance].append(w)
        if not w.leader:
            problems.append(f"stray: process {w.pid} of {w.instance} leads no process group")
    owners = {w.owner for w in workloads}
    if len(owners) > 1:
        problems.append(f"foreign: workloads of several installations: {sorted(owners)}")
    digests: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    by_spec: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for name, spec in sorted(config.items()):
        st = oper[name].get("state") or {}
        status = st.get("oper-status")
        mine = by_instance.get(name, [])
        rids = [w.resource_id for w in mine]
        if not spec.enabled:
            if status != "terminated":
                problems.append(f"not-final: {name} (disabled) is {status}")
            if mine:
                problems.append(f"orphan: {name} is disabled but the VIM holds {rids}")
            continue
        if status == "running":
            rid = st.get("vim-resource-id")
            if len(mine) > 1:
                problems.append(f"duplicate: {name} has {len(mine)} workloads {rids} "
                                f"(recorded {rid})")
            elif not mine:
                problems.append(f"missing: {name} is running but the VIM holds nothing "
                                f"(recorded {rid})")
            elif mine[0].resource_id != rid:
                problems.append(f"mismatch: {name} records {rid}, the VIM holds {rids}")
            if st.get("vim") != spec.vim or any(w.vim != spec.vim for w in mine):
                problems.append(f"wrong-vim: {name} wants {spec.vim}, state says "
                                f"{st.get('vim')}, workloads on {[w.vim for w in mine]}")
            if any(w.gen is not None and w.gen != spec.gen for w in mine):
                problems.append(f"stale-update: {name} wants gen {spec.gen}, the process "
                                f"has {[w.gen for w in mine]}")
        elif status == "failed":
            if not st.get("reason"):
                problems.append(f"no-reason: {name} failed without a reason")
            if spec.vim == profile.good:
                problems.append(f"healthy-failed: {name} failed on the healthy VIM "
                                f"{spec.vim}: {st.get('reason')}")
            if mine:
                problems.append(f"orphan: {name} failed but the VIM holds {rids}")
        else:
            problems.append(f"not-final: {name} is {status}")
            continue
        key = (spec.descriptor, spec.vim, spec.gen, spec.port)
        if st.get("spec-digest"):
            digests[st["spec-digest"]].add(key)
            by_spec[key].add(st["spec-digest"])
    for digest, keys in digests.items():
        if len(keys) > 1:
            problems.append(f"stale-update: spec-digest {digest} stands for {sorted(keys)}")
    for key, ds in by_spec.items():
        if len(ds) > 1:
            problems.append(f"stale-update: {key} has spec-digests {sorted(ds)}")
    for name, entry in sorted(oper.items()):
        if name not in config:
            problems.append(f"stale-state: {name} is deleted, its state remains: "
                            f"{entry.get('state')}")
    for name, ws in sorted(by_instance.items()):
        if name not in config:
            problems.append(f"orphan: {name} is not configured, the VIM holds "
                            f"{[w.resource_id for w in ws]}")
    return problems


# -- the command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="tools/chaos",
        description="kill -9 nfo serve at random points during instantiations, updates and "
                    "terminations; check convergence, duplicates and orphans after every "
                    "restart (docs/chaos.md)")
    p.add_argument("--vim", choices=("sim", "local"), default="sim")
    p.add_argument("--instances", type=int, default=1000,
                   help="instances created over the run (default 1000)")
    p.add_argument("--rounds", type=int, default=10, help="kill/restart rounds (default 10)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", type=Path, help="state and logs here (default: a temporary "
                   "directory, removed after a run without failures)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--concurrency", type=int, help="nfo serve --concurrency")
    p.add_argument("--live-max", type=int,
                   help="most instances configured at once (local default 150)")
    p.add_argument("--timeout", type=int, help="instantiation-timeout of the descriptors")
    p.add_argument("--report", type=Path, help="write the report as JSON here")
    args = p.parse_args(argv)
    cfg = Config(vim=args.vim, instances=args.instances, rounds=args.rounds, seed=args.seed,
                 workdir=args.workdir, keep=args.keep, concurrency=args.concurrency,
                 live_max=args.live_max, timeout=args.timeout,
                 log=lambda s: print(s, flush=True))

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    chaos = Chaos(cfg)
    try:
        report = asyncio.run(chaos.run())
    except KeyboardInterrupt:
        chaos.server.kill()
        kill_run_processes(chaos.run_id)
        print("chaos: interrupted; the server and every NF of the run were killed",
              file=sys.stderr)
        return 130
    doc = report.to_json()
    if args.report is not None:
        args.report.write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc["figures"], indent=2))
    for f in report.failures:
        print(f"FAILURE {f}")
    if report.failures:
        print(f"chaos: {len(report.failures)} failures; state and logs kept in "
              f"{report.workdir}")
    return 1 if report.failures else 0
