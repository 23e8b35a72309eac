"""nfo.datastore.workers: the bounds on reads that run off the event loop (jobs are
plain functions held on an event; the pool's threads are real)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from nfo.datastore.workers import Workers
from nfo.errors import ResourceDenied


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    ev = threading.Event()
    yield ev
    ev.set()


def held(gate: threading.Event, value: int = 1) -> Callable[[], int]:
    def job() -> int:
        assert gate.wait(30)
        return value
    return job


async def until(cond: Callable[[], bool]) -> None:
    for _ in range(3000):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")


async def test_a_job_runs_on_a_worker_thread() -> None:
    w = Workers()
    try:
        loop_thread = threading.get_ident()
        assert await w.run("u", threading.get_ident, lambda: None) != loop_thread
        assert w.busy() == 0
    finally:
        w.close()


async def test_each_user_has_a_bound(gate: threading.Event) -> None:
    w = Workers(threads=4, per_user=2)
    try:
        running = [asyncio.create_task(w.run("alice", held(gate), lambda: None))
                   for _ in range(2)]
        await until(lambda: w.busy("alice") == 2)
        with pytest.raises(ResourceDenied, match="2 queries of user 'alice' are still running"):
            w.admit("alice")
        w.admit("bob")  # another user is not held up
        gate.set()
        assert await asyncio.gather(*running) == [1, 1]
        w.admit("alice")
    finally:
        w.close()


async def test_the_queue_is_bounded(gate: threading.Event) -> None:
    w = Workers(threads=1, per_user=10, queue=1)
    try:
        running = [asyncio.create_task(w.run(f"u{i}", held(gate), lambda: None))
                   for i in range(2)]
        await until(lambda: w.busy() == 2)
        with pytest.raises(ResourceDenied, match="too many queries waiting"):
            w.admit("someone")
        gate.set()
        await asyncio.gather(*running)
    finally:
        w.close()


async def test_past_the_deadline_the_client_gets_an_error_and_the_job_still_counts(
        gate: threading.Event) -> None:
    w = Workers(threads=1, per_user=1, deadline=0.2)
    try:
        with pytest.raises(ResourceDenied, match=r"did not finish within 0\.2 s"):
            await w.run("alice", held(gate), lambda: None)
        assert w.overrun == 1
        with pytest.raises(ResourceDenied, match="still running"):
            w.admit("alice")  # the runaway still holds its thread
        gate.set()
        await until(lambda: w.busy() == 0)
        w.admit("alice")
    finally:
        w.close()


async def test_a_job_that_never_starts_is_discarded(gate: threading.Event) -> None:
    w = Workers(threads=1, deadline=0.2)
    discarded: list[str] = []
    try:
        first = asyncio.create_task(w.run("a", held(gate), lambda: discarded.append("a")))
        await until(lambda: w.busy() == 1)
        with pytest.raises(ResourceDenied):
            await w.run("b", held(gate), lambda: discarded.append("b"))
        waiting = asyncio.create_task(w.run("c", held(gate), lambda: discarded.append("c")))
        await until(lambda: w.busy() == 2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert discarded == ["b", "c"]
        gate.set()
        with pytest.raises(ResourceDenied):
            await first
        await until(lambda: w.busy() == 0)
    finally:
        w.close()


def test_limits_must_make_sense() -> None:
    for kw in ({"threads": 0}, {"per_user": 0}, {"queue": -1}, {"deadline": 0}):
        with pytest.raises(ValueError):
            Workers(**kw)  # type: ignore[arg-type]
