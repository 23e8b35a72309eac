"""Configuring network functions over NETCONF: from a config write to in-sync, and drift checks.

One orchestrator in this process (datastore and workload manager, composed as ``nfo serve``
composes them) runs N demo routers (yuma123 netconfd behind a private sshd, the seeded
``netconf-router`` entry) on the local VIM and waits for their day-1 configuration. Then:

- **write to in-sync**: a day-2 change (the router's host name) written to running, until the
  instance's ``nf-config-status-change`` to ``in-sync`` with the new digest: for one NF (median
  over rounds) and for N at once (one edit of running for all of them; until the last is
  in sync). nfo reads the device, sends the difference under a lock with a confirmed commit,
  reads back and confirms;
- **reference in the same run**: the plain ncclient sequence a script would run on each router
  (connect, lock, edit-config on the candidate, commit, unlock, close), one router (median) and
  N in parallel threads, ncclient's polling TICK lowered to 1 ms;
- **drift check per NF**: the ``check-sync`` action (connect, get-config of the router's
  modules, parse and compare), one at a time (median) and N at once (wall time / N).

Run: ``.venv/bin/python bench/bench_nfconfig.py [--n 50] [--rounds 10]``; ``--smoke`` runs 2
routers and 2 rounds in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _stats import pct
from ncclient import manager
from ncclient.transport import session as nc_session

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore, start_manager
from nfo.datastore import Datastore, Notification

nc_session.TICK = 0.001
NS = "urn:nfo:demo-router"
INSTANCES = "/nfo-instances:nf-instances"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _States:
    def __init__(self, ds: Datastore) -> None:
        self._ds = ds

    def state_of(self, name: str) -> Any:
        with self._ds.get("operational", f"{INSTANCES}/nf-instance[name='{name}']/state") as t:
            return json.loads(t.print() or "{}")


class Watch:
    """Config status changes as they are published: instance -> times it became in-sync."""

    def __init__(self, ds: Datastore) -> None:
        self.ds = _States(ds)
        self.sub = ds.notifications.subscribe()
        self.in_sync: dict[str, list[float]] = {}
        self.changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for n in self.sub:
            if not isinstance(n, Notification):
                continue
            body = json.loads(n.content).get("nfo-instances:nf-config-status-change")
            if body and body["new-status"] == "in-sync":
                self.in_sync.setdefault(body["name"], []).append(time.perf_counter())
                self.changed.set()

    async def until(self, names: list[str], after: float, timeout: float = 120) -> float:
        """The time the last of ``names`` became in-sync after ``after``."""
        deadline = time.perf_counter() + timeout
        while True:
            done = [max(t for t in self.in_sync.get(n, []) if t > after)
                    for n in names if any(t > after for t in self.in_sync.get(n, []))]
            if len(done) == len(names):
                return max(done)
            left = deadline - time.perf_counter()
            if left <= 0:
                late = [n for n in names if not any(t > after for t in self.in_sync.get(n, []))]
                states = {n: self.ds.state_of(n) for n in late[:3]}
                raise SystemExit(f"not in sync within {timeout}s: {late}; {states}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    def close(self) -> None:
        self.task.cancel()
        self.sub.close()


def day2(name: str, host: str) -> dict[str, Any]:
    xml = f'<system xmlns="{NS}"><hostname>{host}</hostname></system>'
    return {"name": name, "day2": {"format": "xml", "config": xml}}


def ncclient_sequence(port: int, user: str, key: Path, host: str) -> float:
    t = time.perf_counter()
    with manager.connect(host="127.0.0.1", port=port, username=user, key_filename=str(key),
                         hostkey_verify=False, look_for_keys=False, allow_agent=False,
                         timeout=60) as m, m.locked("candidate"):
        m.edit_config(target="candidate", config=(
            f'<config><system xmlns="{NS}"><hostname>{host}</hostname></system></config>'))
        m.commit()
    return time.perf_counter() - t


async def run(n: int, rounds: int, tmp: Path) -> None:
    state = StateDir(tmp / "state")
    ds = await open_datastore(state, [])
    mgr = await start_manager(ds, state, poll_interval=0.05, health_interval=3600)
    s = ds.internal_session("bench")
    watch = Watch(ds)
    try:
        with ds.get("running", "/nfo-catalog:catalog/nf-descriptor[id='netconf-router']") as t:
            desc = json.loads(t.print())["nfo-catalog:catalog"]["nf-descriptor"][0]
        user = desc["netconf"]["username"]
        key = tmp / "id_ed25519"
        key.write_text(desc["netconf"]["private-key"])
        key.chmod(0o600)
        # no periodic drift check: the reference's own edits must not meet nfo's re-apply;
        # room for n routers on the local VIM (32 processes by default)
        await s.edit("running", json.dumps({
            "nfo-catalog:catalog": {"nf-descriptor": [
                {"id": "netconf-router", "netconf": {"drift": {"check-interval": 0}}}]},
            "nfo-vim:vims": {"vim": [{"name": "local", "capacity": {"max-instances": n + 8},
                                      "local": {"max-processes": n + 8}}]}}), "json")
        names = [f"r{i}" for i in range(n)]
        ports = {nm: free_port() for nm in names}
        t0 = time.perf_counter()
        await s.edit("running", json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
            {"name": nm, "descriptor": "netconf-router",
             "parameter": [{"name": "port", "value": str(ports[nm])}]} for nm in names]}}),
            "json")
        last = await watch.until(names, t0)
        print(f"{n} routers started and given their day-1 configuration in "
              f"{last - t0:.2f} s")

        one: list[float] = []
        for r in range(rounds):
            t = time.perf_counter()
            await s.edit("running", json.dumps({"nfo-instances:nf-instances": {
                "nf-instance": [day2(names[0], f"one{r}")]}}), "json")
            one.append(await watch.until(names[:1], t) - t)
        all_n: list[float] = []
        for r in range(max(1, rounds // 3)):
            t = time.perf_counter()
            await s.edit("running", json.dumps({"nfo-instances:nf-instances": {
                "nf-instance": [day2(nm, f"all{r}") for nm in names]}}), "json")
            all_n.append(await watch.until(names, t) - t)

        loop = asyncio.get_running_loop()
        ref_one = [await loop.run_in_executor(None, ncclient_sequence, ports[names[0]], user,
                                              key, f"ref{r}") for r in range(rounds)]
        ref_all: list[float] = []
        with ThreadPoolExecutor(max_workers=n) as pool:
            for r in range(max(1, rounds // 3)):
                t = time.perf_counter()
                futs = [loop.run_in_executor(pool, ncclient_sequence, ports[nm], user, key,
                                             f"refall{r}") for nm in names]
                await asyncio.gather(*futs)
                ref_all.append(time.perf_counter() - t)
        # the reference changed the routers behind nfo's back: configure them again
        await s.edit("running", json.dumps({"nfo-instances:nf-instances": {
            "nf-instance": [day2(nm, "final") for nm in names]}}), "json")
        await watch.until(names, time.perf_counter() - 0.001)
        await mgr.wait_idle()

        async def check(nm: str) -> float:
            t = time.perf_counter()
            await s.rpc(f'<nf-instances xmlns="urn:nfo:instances"><nf-instance><name>{nm}'
                        '</name><check-sync/></nf-instance></nf-instances>', "xml")
            return time.perf_counter() - t
        checks = [await check(names[0]) for _ in range(rounds)]
        t = time.perf_counter()
        await asyncio.gather(*(check(nm) for nm in names))
        per_nf_all = (time.perf_counter() - t) / n

        m1, r1 = statistics.median(one), statistics.median(ref_one)
        mn, rn = statistics.median(all_n), statistics.median(ref_all)
        print()
        print(f"{'':44} {'nfo':>10} {'ncclient':>10} {'nfo/ref':>8}")
        print(f"{'write to in-sync, one NF (median)':44} {m1 * 1000:8.1f}ms {r1 * 1000:8.1f}ms "
              f"{m1 / r1:8.2f}")
        print(f"{'  p90':44} {pct(one, 0.9) * 1000:8.1f}ms {pct(ref_one, 0.9) * 1000:8.1f}ms")
        print(f"{f'write to in-sync, {n} NFs at once':44} {mn:9.2f}s {rn:9.2f}s {mn / rn:8.2f}")
        print(f"{'drift check per NF, one at a time (median)':44} "
              f"{statistics.median(checks) * 1000:8.1f}ms")
        print(f"{f'drift check per NF, {n} at once':44} {per_nf_all * 1000:8.1f}ms")
    finally:
        watch.close()
        await s.close()
        await mgr.stop()
        await ds.close()
        _kill_routers(state.path)


def _kill_routers(state: Path) -> None:
    for rec in state.glob("drivers/local/*/*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(json.loads(rec.read_text())["pid"])
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.rounds = 2, 2
    print(f"NF configuration over NETCONF: {args.n} demo routers (netconfd behind sshd) on "
          f"the local VIM, {args.rounds} rounds; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(args.n, args.rounds, Path(d)))


if __name__ == "__main__":
    main()
