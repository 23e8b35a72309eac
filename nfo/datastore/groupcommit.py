"""Group commit: one durable write for many concurrent writers.

Operational state and notifications are written by many reconcile workers at
once.  Each write must be durable before its writer goes on (a VIM call must
never run ahead of the state that records it), but an fsync per write caps
throughput at a few thousand writes per second.  Writers here queue their
write and wait; at the end of the current event-loop iteration every queued
write runs inside one storage transaction, and all of them are acknowledged
when it is durable.

Configuration writes are grouped too, but a group there is more than one storage
transaction (each write must also be applied and validated): :class:`Batches` only
queues them and runs the groups; the write pipeline decides what a group does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nfo.datastore.storage.base import Storage
from nfo.errors import OperationFailed

__all__ = ["GATHER_TURNS", "Batches", "GroupCommit", "Queued"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class GroupCommit:
    def __init__(self, storage: Storage, on_failure: Callable[[], None] | None = None) -> None:
        """``on_failure`` runs when a group could not be made durable (a full disk),
        to undo in memory what its writes did."""
        self.storage = storage
        self._on_failure = on_failure
        self._queue: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._scheduled = False
        self.batches = 0
        self.writes = 0

    async def run(self, write: Callable[[], T]) -> T:
        """Run ``write`` (which uses the storage) in the next group; return its result
        once the group is durable."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.append((write, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        self._scheduled = False
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            with self.storage.batch():
                for write, fut in queue:
                    try:
                        results.append((fut, True, write()))
                    except Exception as e:  # this write alone fails
                        results.append((fut, False, e))
        except Exception as e:  # the group could not be made durable
            if self._on_failure is not None:
                try:
                    self._on_failure()
                except Exception:
                    log.exception("undoing a failed group commit in memory")
            for _, fut in queue:
                if not fut.done():
                    fut.set_exception(e)
            return
        self.batches += 1
        self.writes += len(queue)
        for fut, ok, value in results:
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)



R = TypeVar("R")
V = TypeVar("V")

GATHER_TURNS = 2
"""Turns of the event loop a group waits before it is taken: in the first, the
requests whose bytes have arrived are read; in the second their handlers queue them.
Without it a group takes only what queued while the one before it ran (three writes
a group from eight clients, instead of eight), and the per-group work (the partial
copy, its validation, the graft, the fsync) is shared by fewer writes."""


@dataclass(eq=False)
class Queued(Generic[R, V]):
    """One request waiting in a :class:`Batches` queue, and its verdict."""

    request: R
    verdict: asyncio.Future[V]
    taken: bool = False
    """A group holds it: it runs (or ran), and the request's objects are in use."""


class Batches(Generic[R, V]):
    """Requests that arrive while a group runs form the next group.

    One task runs the groups one after another, each under ``lock``, while requests
    are queued; each requester awaits its own verdict.  Before it takes a group, the
    task lets the loop turn ``gather`` times, so that requests already received join
    it.  A requester cancelled before a group takes its request withdraws it; once
    taken, it waits for the verdict (its request's objects stay in use until then)
    and is cancelled after.
    """

    def __init__(self, run: Callable[[list[Queued[R, V]]], Awaitable[None]],
                 lock: asyncio.Lock, name: str, gather: int = GATHER_TURNS) -> None:
        """``run(group)`` settles the verdicts of ``group`` (and must not keep it)."""
        self._run = run
        self._gather = gather
        self._lock = lock
        self._name = name
        self._queue: list[Queued[R, V]] = []
        self._task: asyncio.Task[None] | None = None
        self.groups = 0
        self.requests = 0

    async def submit(self, request: R) -> V:
        loop = asyncio.get_running_loop()
        q: Queued[R, V] = Queued(request, loop.create_future())
        self._queue.append(q)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._groups(), name=self._name)
        try:
            await asyncio.wait((q.verdict,))
        except asyncio.CancelledError:
            if not q.taken:
                self._queue.remove(q)
                raise
            while not q.verdict.done():
                with suppress(asyncio.CancelledError):
                    await asyncio.wait((q.verdict,))
            raise
        return q.verdict.result()

    async def _groups(self) -> None:
        while self._queue:
            for _ in range(self._gather):
                await asyncio.sleep(0)
            async with self._lock:
                group, self._queue = self._queue, []
                for q in group:
                    q.taken = True
                self.groups += 1
                self.requests += len(group)
                try:
                    await self._run(group)
                finally:
                    _fail(group)

    def cancel(self) -> None:
        """Stop (the owner is closing): queued requests fail, the running group stops."""
        queue, self._queue = self._queue, []
        _fail(queue)
        if self._task is not None and not self._task.done():
            self._task.cancel()


def _fail(group: list[Queued[R, V]]) -> None:
    for q in group:
        if not q.verdict.done():
            q.verdict.set_exception(OperationFailed(
                "the write was not carried out: the server is stopping"))
