"""Typed changes, the unit of every change notification and of rollback.

A change set is derived from the edit that produced it (never by diffing
whole trees, which is quadratic in libyang 2.1).  Subscribers receive these
objects; ``path`` is a libyang data path and values are canonical strings.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Change", "ChangeCreated", "ChangeDeleted", "ChangeModified", "ChangeMoved"]


@dataclass(frozen=True, slots=True)
class ChangeCreated:
    path: str
    value: str | None = None
    """Canonical value of a created leaf or leaf-list entry; None for inner nodes."""


@dataclass(frozen=True, slots=True)
class ChangeModified:
    path: str
    value: str
    prev_value: str


@dataclass(frozen=True, slots=True)
class ChangeDeleted:
    path: str
    prev_value: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeMoved:
    """An entry of an ordered-by-user list or leaf-list changed position."""

    path: str
    after: str | None
    """Path of the entry it now follows; None when it is first."""


Change = ChangeCreated | ChangeModified | ChangeDeleted | ChangeMoved


def module_of(path: str) -> str:
    """The module of a path's top-level node (``/mod:node/...`` -> ``mod``)."""
    head = path[1:].split("/", 1)[0]
    return head.split(":", 1)[0]
