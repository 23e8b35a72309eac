"""Two-phase change subscriptions (sysrepo's model).

A subscriber names a module and optionally an XPath.  For every commit that
touches its data it is called twice: phase ``change`` before the commit is
durable (raising there vetoes the whole commit, and the message reaches the
client), then phase ``done`` once the commit is durable (or ``abort`` if a
later subscriber vetoed).  ``done`` events are queued per subscriber and
delivered in commit order by one task, so a subscriber may write to the
datastore from its callback without deadlocking the commit that woke it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from nfo.schema.changes import Change, ChangeDeleted, ChangeMoved, module_of
from nfo.schema.data import Tree

__all__ = ["ChangeCallback", "ChangeEvent", "ChangeSubscription", "Phase"]

log = logging.getLogger(__name__)

Phase = Literal["change", "done", "abort"]


@dataclass(frozen=True)
class ChangeEvent:
    phase: Phase
    datastore: str
    revision: int
    """The revision the commit gets (or would have got, for abort)."""
    user: str
    changes: Sequence[Change]
    tree: Tree | None = None
    """In phase ``change`` only: the data as it will be if the commit goes through
    (read-only, valid during the callback).  For large independent lists it holds
    only the entries the commit touches, plus all other data."""


ChangeCallback = Callable[[ChangeEvent], Awaitable[None]]


@dataclass(eq=False)
class ChangeSubscription:
    module: str
    callback: ChangeCallback
    datastore: str = "running"
    xpath: str | None = None
    priority: int = 0
    entries: bool = False
    """Of list entries a bulk edit created whole, only each entry's own change (not one
    per node inside it): for a subscriber that wants to know which entries changed."""
    _queue: asyncio.Queue[ChangeEvent | None] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None

    def wants(self, change: Change, selected: set[str] | None) -> bool:
        if module_of(change.path) != self.module:
            return False
        if selected is None:
            return True
        path = change.path
        while path:
            if path in selected:
                return True
            cut = path.rfind("/")
            path = path[:cut] if cut > 0 else ""
        if isinstance(change, ChangeDeleted | ChangeMoved):
            return any(s.startswith(change.path + "/") for s in selected)
        return False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._deliver(), name=f"nfo-subscription-{self.module}")

    async def _deliver(self) -> None:
        while True:
            ev = await self._queue.get()
            try:
                if ev is None:
                    return
                await self.callback(ev)
            except Exception:
                log.exception("change subscriber for %s failed in phase %s", self.module,
                              ev.phase if ev else "-")
            finally:
                self._queue.task_done()
                # not kept while the next one is awaited: a bulk commit's changes are
                # hundreds of thousands of objects
                ev = None

    def post(self, event: ChangeEvent) -> None:
        self._queue.put_nowait(event)

    async def drain(self) -> None:
        """Wait until every queued event has been delivered (tests and shutdown)."""
        if self._task is not None:
            await self._queue.join()

    async def stop(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(None)
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except TimeoutError:
                self._task.cancel()
            self._task = None
