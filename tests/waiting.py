"""Polling helpers shared by the tests: wait for a condition with a bounded timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest


async def wait_for(probe: Callable[[], Any], timeout: float, what: str = "condition",
                   show: Callable[[], Any] | None = None, every: float = 0.02) -> Any:
    """Poll ``probe`` (sync or async) every ``every`` seconds until it returns something
    truthy, which is returned.  On timeout the test fails with the last value ``show``
    (default: the probe) gave."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            last = show() if show is not None else value
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {what}; last observed: "
                        f"{last!r}")
        await asyncio.sleep(every)
