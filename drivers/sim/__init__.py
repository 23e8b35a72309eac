"""The ``sim`` driver: a simulated VIM for tests, benchmarks and dry runs.

It behaves like a remote VIM: requests are accepted at once, workloads become
ready after a configurable latency (mean and jitter, in ms) or fail with a
configurable probability, capacity is enforced, the status of every resource can be
listed in one call (:class:`~nfo.registry.StatusLister`), and its resources outlive the
orchestrator process (they live in a small SQLite file in the driver's state
directory), so restart, adoption and orphan handling can be exercised for real.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
import time
import uuid
from typing import Any, ClassVar

from nfo.registry.protocol import (
    DriverContext,
    FinalCallback,
    InitResponse,
    InstantiateRequest,
    Status,
    TemporaryError,
    VimAccount,
    WorkloadState,
)

__all__ = ["SimDriver"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    owner TEXT NOT NULL,
    ready_at REAL NOT NULL,
    fails INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS resources_instance ON resources(owner, instance);
"""

_ROWS_PER_TURN = 250
_RUNNING = Status(WorkloadState.RUNNING)
_STARTING = Status(WorkloadState.INITIALIZING)


def _status(now: float, ready_at: float, fails: int, reason: str) -> Status:
    """A resource's status from its row (those running or starting share one object)."""
    if now < ready_at:
        return _STARTING
    if fails:
        return Status(WorkloadState.FAILED, reason)
    return _RUNNING


class SimDriver:
    name: ClassVar[str] = "sim"
    vim_type: ClassVar[str] = "nfo-vim:sim"

    def __init__(self, vim: VimAccount, context: DriverContext) -> None:
        self.vim = vim
        self.owner = context.owner_tag
        sim: dict[str, Any] = dict(vim.settings)
        latency = sim.get("latency", {})
        self.mean = float(latency.get("mean", 0)) / 1000
        self.jitter = float(latency.get("jitter", 0)) / 1000
        self.failure_rate = float(sim.get("failure-rate", 0))
        seed = sim.get("seed")
        self.rng = random.Random(int(seed)) if seed is not None else random.Random()
        # A simulated remote VIM: its database survives the orchestrator process.
        self.db = sqlite3.connect(context.state_dir / "sim-vim.db", isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.executescript(_SCHEMA)
        self._id_prefix = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)
        self._callbacks: list[FinalCallback] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def _delay(self) -> float:
        if self.mean <= 0 and self.jitter <= 0:
            return 0.0
        return max(0.0, self.rng.gauss(self.mean, self.jitter))

    async def instantiate(self, req: InstantiateRequest) -> InitResponse:
        cap = self.vim.capacity.max_instances
        if cap is not None:
            existing = await self.find(req.instance)
            if existing is not None:
                return InitResponse(existing)
            (count,) = self.db.execute("SELECT count(*) FROM resources").fetchone()
            if count >= cap:
                raise TemporaryError(f"simulated VIM {self.vim.name!r} is full ({count}/{cap})")
        # ids in creation order: each insert lands at the end of the table's index
        rid = f"sim-{self._id_prefix}{next(self._ids):08x}"
        delay = self._delay()
        fails = self.rng.random() < self.failure_rate
        reason = "simulated failure (failure-rate)" if fails else ""
        # one workload per instance and owner (the unique index): a request for an
        # instance the VIM already holds answers with that workload
        cur = self.db.execute("INSERT OR IGNORE INTO resources VALUES (?,?,?,?,?,?)",
                              (rid, req.instance, self.owner, time.time() + delay, int(fails),
                               reason))
        if cur.rowcount == 0:
            existing = await self.find(req.instance)
            if existing is not None:
                return InitResponse(existing)
            raise TemporaryError(f"simulated VIM {self.vim.name!r} refused {rid}")
        self._watch(rid, delay, fails, reason)
        return InitResponse(rid)

    def _watch(self, rid: str, delay: float, fails: bool, reason: str) -> None:
        if not self._callbacks:
            return
        st = Status(WorkloadState.FAILED, reason) if fails else Status(WorkloadState.RUNNING)
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(rid, None)
            for cb in self._callbacks:
                cb(rid, st)
        self._timers[rid] = loop.call_later(delay, fire)

    async def status(self, resource_id: str) -> Status:
        row = self.db.execute("SELECT ready_at, fails, reason FROM resources WHERE id=?",
                              (resource_id,)).fetchone()
        if row is None:
            return Status(WorkloadState.GONE, "no such resource on the simulated VIM")
        return _status(time.time(), *row)

    async def statuses(self) -> dict[str, Status]:
        """Every resource of this installation's, read ``_ROWS_PER_TURN`` rows a turn of
        the event loop."""
        out: dict[str, Status] = {}
        now = time.time()
        cur = self.db.execute("SELECT id, ready_at, fails, reason FROM resources WHERE owner=?",
                              (self.owner,))
        while rows := cur.fetchmany(_ROWS_PER_TURN):
            for rid, ready_at, fails, reason in rows:
                out[rid] = _status(now, ready_at, fails, reason)
            await asyncio.sleep(0)
        return out

    async def terminate(self, resource_id: str) -> None:
        timer = self._timers.pop(resource_id, None)
        if timer is not None:
            timer.cancel()
        self.db.execute("DELETE FROM resources WHERE id=?", (resource_id,))

    async def update(self, resource_id: str, req: InstantiateRequest) -> bool:
        row = self.db.execute("SELECT 1 FROM resources WHERE id=?", (resource_id,)).fetchone()
        return row is not None

    async def find(self, instance: str) -> str | None:
        row = self.db.execute("SELECT id FROM resources WHERE owner=? AND instance=?",
                              (self.owner, instance)).fetchone()
        return None if row is None else str(row[0])

    async def list_resources(self) -> dict[str, str]:
        rows = self.db.execute("SELECT instance, id FROM resources WHERE owner=?", (self.owner,))
        return {str(i): str(r) for i, r in rows}

    def on_final(self, callback: FinalCallback) -> None:
        self._callbacks.append(callback)

    async def close(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        self.db.close()
