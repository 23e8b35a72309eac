"""Worker threads that never hold the process up at exit.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter
exits, so one call stuck in a foreign library (keystoneauth waiting on its own
lock, an XPath evaluation that runs for minutes) keeps ``nfo`` alive after it said
it stopped.  Work handed to a :class:`DaemonPool` is abandoned at exit instead:
it only ever reads private copies or talks to a remote service whose calls are
idempotent, so nothing is left half-written.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DaemonPool"]

T = TypeVar("T")

_Item = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...],
              dict[str, Any]]


class DaemonPool(concurrent.futures.Executor):
    """An executor of at most ``max_workers`` daemon threads, started as work arrives."""

    def __init__(self, max_workers: int, name: str) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max = max_workers
        self._name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._shutdown = False

    def submit(self, fn: Callable[..., T], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future[T]:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError(f"{self._name}: cannot take work after shutdown")
            self._queue.put((fut, fn, args, kwargs))
            if self._idle < self._queue.qsize() and len(self._threads) < self._max:
                t = threading.Thread(target=self._work, daemon=True,
                                     name=f"{self._name}-{len(self._threads)}")
                self._threads.append(t)
                t.start()
        return fut

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
            if item is None:
                return
            fut, fn, args, kwargs = item
            if fut.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as e:
                    fut.set_exception(e)
                else:
                    fut.set_result(result)
            del item, fut, fn, args, kwargs

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._shutdown:
                threads: list[threading.Thread] = []
            else:
                self._shutdown = True
                threads = list(self._threads)
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            for _ in threads:
                self._queue.put(None)
        if wait:
            for t in threads:
                t.join()
