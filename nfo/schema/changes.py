"""Typed changes, the unit of every change notification and of rollback.

A change set is derived from the edit that produced it (never by diffing
whole trees, which is quadratic in libyang 2.1).  Subscribers receive these
objects; ``path`` is a libyang data path and values are canonical strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

__all__ = [
    "Change",
    "ChangeCreated",
    "ChangeDeleted",
    "ChangeModified",
    "ChangeMoved",
    "ChangeSet",
    "Run",
    "touch",
]


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


def touch(items: Iterable[Change | Run], top: str) -> bool:
    """Whether any of ``items`` lies under the data path ``top`` (a run: its parent)."""
    return any((c.parent if isinstance(c, Run) else c.path).startswith(top) for c in items)


class Run:
    """Changes not built yet: every node of ``count`` list entries an edit created whole,
    consecutive siblings under the node at ``parent`` (a data path), parents first.

    A bulk create records one of these instead of a change object per node; ``build``
    makes the changes and ``heads`` the entries' paths when someone asks.  Both read the
    edit that made the run, so a run is valid only while that edit is (see
    :class:`ChangeSet`)."""

    __slots__ = ("_build", "_count", "_heads", "module", "parent")

    def __init__(self, module: str, parent: str, count: int | Callable[[], int],
                 build: Callable[[], list[Change]], heads: Callable[[], list[str]]) -> None:
        self.module = module
        """The module of the top-level node the entries are under."""
        self.parent = parent
        self._count = count
        self._build = build
        self._heads = heads

    @property
    def count(self) -> int:
        """How many entries (counted when first asked, if made without a count)."""
        if not isinstance(self._count, int):
            self._count = self._count()
        return self._count

    def build(self) -> list[Change]:
        return self._build()

    def heads(self) -> list[str]:
        """The data paths of the created entries, in order."""
        return self._heads()


class ChangeSet(Sequence[Change]):
    """The changes of one transaction, in order, some of them possibly still
    :class:`Run`\\ s that are built on first use.

    As a sequence it is the full list (built then, once).  :meth:`items` and
    :meth:`for_module` let the write pipeline look at what it needs without building
    the changes nobody asked for.  Runs read the edit they came from: build (or
    :meth:`materialize`) before that edit is freed."""

    __slots__ = ("_items", "_runs")

    def __init__(self, items: Iterable[Change | Run] = ()) -> None:
        self._items: list[Change | Run] = list(items)
        self._runs = any(isinstance(i, Run) for i in self._items)

    def append(self, change: Change | Run) -> None:
        self._items.append(change)
        if isinstance(change, Run):
            self._runs = True

    def extend(self, other: Iterable[Change | Run]) -> None:
        items = other.items() if isinstance(other, ChangeSet) else list(other)
        for i in items:
            self.append(i)

    def items(self) -> list[Change | Run]:
        """The changes and the runs not built yet, in order."""
        return self._items

    def mark(self) -> int:
        """A position to :meth:`truncate` to or count :meth:`since`."""
        return len(self._items)

    def truncate(self, mark: int) -> None:
        del self._items[mark:]
        self._runs = any(isinstance(i, Run) for i in self._items)

    def since(self, mark: int) -> int | None:
        """Changes added after ``mark``; None when a run is among them (at least one
        change per entry and per key, more than any count this is compared with)."""
        added = self._items[mark:]
        return None if any(isinstance(i, Run) for i in added) else len(added)

    def materialize(self) -> list[Change]:
        """Every change, the runs built (in place, once)."""
        if self._runs:
            flat: list[Change] = []
            for i in self._items:
                if isinstance(i, Run):
                    flat += i.build()
                else:
                    flat.append(i)
            self._items = list(flat)
            self._runs = False
        return self._items  # type: ignore[return-value]

    def replace(self, changes: Iterable[Change]) -> None:
        self._items = list(changes)
        self._runs = False

    def for_module(self, module: str, entries: bool = False) -> list[Change]:
        """The changes under ``module``'s top-level nodes (runs of other modules are
        not built); ``entries``: of a run, only each created entry's own change, not
        one per node inside it."""
        out: list[Change] = []
        for i in self._items:
            if isinstance(i, Run):
                if i.module == module:
                    out += [ChangeCreated(p) for p in i.heads()] if entries else i.build()
            elif module_of(i.path) == module:
                out.append(i)
        return out

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self.materialize())

    @overload
    def __getitem__(self, index: int) -> Change: ...

    @overload
    def __getitem__(self, index: slice) -> list[Change]: ...

    def __getitem__(self, index: int | slice) -> Change | list[Change]:
        return self.materialize()[index]

    def __iter__(self) -> Iterator[Change]:
        return iter(self.materialize())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChangeSet):
            return self.materialize() == other.materialize()
        if isinstance(other, list | tuple):
            return self.materialize() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ChangeSet({self.materialize()!r})"
