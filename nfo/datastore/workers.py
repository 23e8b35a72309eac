"""Costly reads off the event loop.

An XPath filter over 10,000 list entries can take minutes in libyang, and the
event loop serves every client of both front ends.  A read with an XPath
selection therefore copies what it needs from the live data on the loop
(milliseconds), then selects, filters by access control and encodes that private
copy on one of a few worker threads (libyang releases the GIL), so the loop goes
on serving everyone else.  Reads of a plain data path stay on the loop: their
cost is bounded by the data's size, and handing them to a thread costs more than
it saves (the thread and the loop take turns on the GIL).

A running query cannot be interrupted inside libyang, so the bounds are on
admission and on the wait: each user has at most :attr:`Workers.per_user` queries
running (those past their deadline included, until they end), at most
:attr:`Workers.queue` queries wait for a thread, and a client waits at most
:attr:`Workers.deadline` seconds for its answer.  Each bound answers
``resource-denied``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from nfo.errors import ResourceDenied
from nfo.threads import DaemonPool

__all__ = ["DEFAULT_DEADLINE", "DEFAULT_PER_USER", "DEFAULT_QUEUE", "DEFAULT_THREADS",
           "Workers"]

T = TypeVar("T")

DEFAULT_THREADS = 2
DEFAULT_PER_USER = 8
DEFAULT_QUEUE = 64
DEFAULT_DEADLINE = 60.0

log = logging.getLogger(__name__)


class Workers:
    """A bounded pool of threads for reads on private copies of the data."""

    def __init__(self, threads: int = DEFAULT_THREADS, *, per_user: int = DEFAULT_PER_USER,
                 queue: int = DEFAULT_QUEUE, deadline: float = DEFAULT_DEADLINE) -> None:
        if threads < 1 or per_user < 1 or queue < 0 or deadline <= 0:
            raise ValueError("invalid worker limits")
        self.threads = threads
        self.per_user = per_user
        self.queue = queue
        self.deadline = deadline
        self._pool: DaemonPool | None = None
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        self._pending = 0
        self.overrun = 0
        """Queries whose client stopped waiting at the deadline (counted once each)."""

    def _executor(self) -> DaemonPool:
        if self._pool is None:
            # a runaway query must not keep the process alive at exit
            self._pool = DaemonPool(self.threads, "nfo-read")
        return self._pool

    def admit(self, user: str) -> None:
        """Refuse (``resource-denied``) a query ``user`` may not start now; call before
        copying anything for it."""
        with self._lock:
            if self._running.get(user, 0) >= self.per_user:
                raise ResourceDenied(
                    f"{self.per_user} queries of user {user!r} are still running; "
                    "retry when they end")
            if self._pending >= self.threads + self.queue:
                raise ResourceDenied("the server has too many queries waiting; retry later")

    async def run(self, user: str, job: Callable[[], T],
                  discard: Callable[[], None]) -> T:
        """``job()`` on a worker thread, as ``user``.  ``discard()`` releases what the
        job owns if it never starts (the client went away first)."""
        with self._lock:
            self._running[user] = self._running.get(user, 0) + 1
            self._pending += 1

        def done(_: object) -> None:
            with self._lock:
                self._pending -= 1
                left = self._running[user] - 1
                if left:
                    self._running[user] = left
                else:
                    del self._running[user]

        try:
            fut = self._executor().submit(job)
        except BaseException:
            done(None)
            discard()
            raise
        fut.add_done_callback(done)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)),
                                          self.deadline)
        except TimeoutError:
            if fut.cancel():
                discard()
            else:
                self.overrun += 1
                log.warning("a query of user %r ran past the %g s deadline; its answer "
                            "is dropped", user, self.deadline)
            raise ResourceDenied(
                f"the query did not finish within {self.deadline:g} s; narrow the filter "
                "or the selection") from None
        except asyncio.CancelledError:
            if fut.cancel():
                discard()
            raise

    def busy(self, user: str | None = None) -> int:
        """Queries running or waiting (of ``user``, or of everyone)."""
        with self._lock:
            return self._pending if user is None else self._running.get(user, 0)

    def close(self) -> None:
        """Stop taking work; running queries finish on their threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
