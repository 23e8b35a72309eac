"""The garbage collection policy of ``nfo serve``: what survives a full collection is
frozen out of the next ones, a sweep frees the cycles that died frozen, and closing
gives CPython its own policy back.  Real CPython collector, nothing faked."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from nfo.collector import Collector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[weakref.ref[Node], list[Node]]:
    """A reference cycle, held alive by the list returned; a weak reference to it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a), [a]


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector(sweep_every=0)
    try:
        yield c
    finally:
        c.close()
        assert gc.get_freeze_count() == 0


async def test_what_is_loaded_is_frozen_and_closing_unfreezes(collector: Collector) -> None:
    ref, hold = cycle()
    collector.start()
    assert gc.get_freeze_count() > 0
    del hold  # loaded before start, so frozen: full collections pass it over
    gc.collect()
    assert ref() is not None
    collector.close()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert ref() is None


async def test_survivors_of_a_full_collection_are_frozen(collector: Collector) -> None:
    collector.start()
    ref, hold = cycle()
    frozen = gc.get_freeze_count()
    gc.collect()  # a full collection, as CPython runs by itself
    assert collector.freezes == 1 and gc.get_freeze_count() > frozen
    del hold  # the cycle dies frozen: no full collection frees it
    gc.collect()
    assert ref() is not None
    assert collector.sweep() >= 2  # the sweep does
    assert ref() is None and collector.sweeps == 1
    assert gc.get_freeze_count() > 0


async def test_a_cycle_that_dies_young_is_collected_as_ever(collector: Collector) -> None:
    collector.start()
    ref, hold = cycle()
    del hold
    gc.collect(0)
    gc.collect(1)
    gc.collect()
    assert ref() is None


async def test_sweeps_are_timed_on_the_loop() -> None:
    c = Collector(sweep_every=0.05)
    try:
        c.start()
        ref, hold = cycle()
        gc.collect()
        del hold
        for _ in range(200):
            if ref() is None:
                break
            await asyncio.sleep(0.01)
        assert ref() is None and c.sweeps >= 1
    finally:
        c.close()
    assert gc.get_freeze_count() == 0


def test_a_negative_period_is_refused() -> None:
    with pytest.raises(ValueError):
        Collector(sweep_every=-1)


def test_no_collection_runs_while_the_state_loads() -> None:
    c = Collector(sweep_every=0)
    assert gc.isenabled()
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with c.loading():
            assert not gc.isenabled()
            ref, hold = cycle()
            _ = [Node() for _ in range(50_000)]  # far past generation 0's threshold
            del hold
            assert collections == [] and ref() is not None  # the cycle waits
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # what the load made: out of the collections
        gc.collect()
        assert ref() is not None  # frozen with the rest, until a sweep or close
        c.close()
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert ref() is None
        with pytest.raises(RuntimeError), c.loading():
            raise RuntimeError("the load failed")
        assert gc.isenabled()  # given back after a failed load too
        gc.disable()
        with c.loading():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
        gc.callbacks.remove(count)
        c.close()


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_trim_gives_the_free_pages_among_live_data_back(collector: Collector) -> None:
    """Memory freed between objects that stay is kept by the C allocator (the process
    stays as large) until :meth:`Collector.trim` hands its pages back."""
    if collector._malloc_trim is None:
        pytest.skip("this C library has no malloc_trim")
    freed: list[bytes] = []
    kept: list[bytes] = []
    for _ in range(1500):  # 48 MB freed in runs of 32 KB
        freed.extend(bytes(1000) for _ in range(32))  # past pymalloc: the C allocator's
        kept.append(bytes(1000))
    del freed
    before = _rss_mb()
    collector.trim()
    after = _rss_mb()
    assert collector.trims == 1
    assert after < before - 20, (before, after)
    assert len(kept) == 1500
