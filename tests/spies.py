"""Test helper: the calls of an async function or method, recorded while it still runs."""

from __future__ import annotations

from typing import Any

import pytest


def record_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str,
                 arg: int) -> list[Any]:
    """Every call of ``owner.name`` from now on (until the monkeypatch is undone), as its
    positional argument ``arg`` (a method's ``self`` is argument 0), in order."""
    seen: list[Any] = []
    real = getattr(owner, name)

    async def spy(*args: Any, **kw: Any) -> Any:
        seen.append(args[arg])
        return await real(*args, **kw)

    monkeypatch.setattr(owner, name, spy)
    return seen
