"""Group commit: one durable write for many concurrent writers.

Operational state and notifications are written by many reconcile workers at
once.  Each write must be durable before its writer goes on (a VIM call must
never run ahead of the state that records it), but an fsync per write caps
throughput at a few thousand writes per second.  Writers here queue their
write and wait; at the end of the current event-loop iteration every queued
write runs inside one storage transaction, and all of them are acknowledged
when it is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from nfo.datastore.storage.base import Storage

__all__ = ["GroupCommit"]

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
