"""Short full garbage collections in a process that holds much long-lived data.

CPython's cyclic garbage collector traverses every object it tracks in a full
collection, with the event loop stopped.  ``nfo serve`` holds much that lives long
(schemas, the workload manager's state of every instance), so a full collection grows
with the estate: while 100,000 NF instances were instantiated, one ran about every
10 s and stopped the process for 0.3 to 4.6 s each (docs/benchmarks.md).  What
survived a full collection has shown that it lives long: :class:`Collector` freezes it
(``gc.freeze``), so the next full collections traverse only what is newer.
Reference counting still frees frozen objects; only a reference cycle among them that
becomes garbage waits, until the frozen objects are handed back to the collector and
swept, every ``sweep_every`` seconds.  While the state is loaded, no collection runs
at all (:meth:`Collector.loading`).

Memory freed by Python lies in pages among live data, which glibc's allocator keeps
for later: after the workload manager lets go of the readings of many instances (a
start's reading of every instance, a bulk write's), :meth:`Collector.trim` hands the
free pages back to the system (``malloc_trim``; nothing where the C
library has no such call).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Collector", "malloc_trim"]


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (hands the allocator's free pages back to the system),
    or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class Collector:
    """The process's garbage collection policy; one per process, made by the
    composition root once the state is loaded."""

    def __init__(self, sweep_every: float = 3600.0) -> None:
        """``sweep_every``: seconds between sweeps of the frozen objects (0: never)."""
        if sweep_every < 0:
            raise ValueError("sweep_every must not be negative")
        self.sweep_every = sweep_every
        self.freezes = 0
        self.sweeps = 0
        self._sweeping = False
        self._timer: asyncio.TimerHandle | None = None
        self._started = False
        self.trims = 0
        self._malloc_trim = malloc_trim()

    @contextmanager
    def loading(self) -> Iterator[None]:
        """No collection inside, and what was made inside frozen after: loading the
        state makes millions of objects that all live long and next to no garbage
        cycles, and CPython would traverse them again and again (at 300,000 instances,
        4,600 collections and 4.7 s of the 8 s the workload manager took to load its
        state), or at the first collections after (all of them still young)."""
        was = gc.isenabled()
        gc.disable()
        try:
            yield
            gc.freeze()
        finally:
            if was:
                gc.enable()

    def trim(self) -> None:
        """Give the allocator's free pages back to the system (a few milliseconds for a
        heap of a million instances)."""
        if self._malloc_trim is not None:
            self._malloc_trim(0)
            self.trims += 1

    def start(self) -> None:
        """Collect and freeze what is loaded, then freeze what each full collection
        leaves; sweeps are timed on the running loop."""
        if self._started:
            return
        self._started = True
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._collected)
        self._arm()

    def _arm(self) -> None:
        if self.sweep_every:
            self._timer = asyncio.get_running_loop().call_later(self.sweep_every, self._timed)

    def _timed(self) -> None:
        self._timer = None
        self.sweep()
        self._arm()

    def _collected(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2 and not self._sweeping:
            gc.freeze()
            self.freezes += 1

    def sweep(self) -> int:
        """Hand the frozen objects back, run one full collection and freeze what it
        leaves; the number of unreachable objects it found."""
        self._sweeping = True
        try:
            gc.unfreeze()
            found = gc.collect()
        finally:
            gc.freeze()
            self._sweeping = False
        self.sweeps += 1
        return found

    def close(self) -> None:
        """Back to CPython's own policy."""
        gc.unfreeze()
        if not self._started:
            return
        self._started = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._collected in gc.callbacks:
            gc.callbacks.remove(self._collected)
