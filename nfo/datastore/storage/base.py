"""The storage interface behind the datastore.

The datastore keeps its trees in memory (libyang) and asks a storage backend
only to make them durable.  Running and startup are stored event-sourced: a
snapshot of the whole datastore now and then, plus a log of commits after it.
A commit record is small (the edit that produced it), so acknowledging a commit
costs one durable append, whatever the size of the datastore.  The same log
gives revision numbers, timestamps and users for ETag, Last-Modified and
rollback.  Operational data pushed by owners and the notification replay log
live here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CommitKind",
    "CommitRecord",
    "NotificationRecord",
    "OperRecord",
    "Snapshot",
    "Storage",
    "StoredState",
]

CommitKind = str
"""``"edit"``: payload is a JSON array of edit documents (RFC 7951 JSON with
``ietf-netconf:operation`` metadata) applied in order; ``"replace"``: payload is
the whole datastore content as RFC 7951 JSON."""


@dataclass(frozen=True)
class CommitRecord:
    revision: int
    datastore: str
    timestamp: float
    user: str
    kind: CommitKind
    payload: str
    label: str = ""


@dataclass(frozen=True)
class Snapshot:
    datastore: str
    revision: int
    content: str


@dataclass(frozen=True)
class StoredState:
    """What a restart needs: per datastore, the newest snapshot and the commits after it."""

    snapshots: dict[str, Snapshot]
    commits: list[CommitRecord]
    last_revision: int


@dataclass(frozen=True)
class OperRecord:
    owner: str
    key: str
    content: str


@dataclass(frozen=True)
class NotificationRecord:
    seq: int
    stream: str
    timestamp: float
    content: str


class Storage(Protocol):
    """A durable home for datastore state.  Every method returns only once its
    write is durable (survives power loss); a crash at any instant leaves the
    state of the last completed call."""

    def load(self) -> StoredState: ...

    def append_commit(
        self, datastore: str, timestamp: float, user: str, kind: CommitKind, payload: str,
        label: str = "",
    ) -> CommitRecord: ...

    def write_snapshot(self, datastore: str, revision: int, content: str) -> None: ...

    def since_snapshot(self, datastore: str) -> tuple[int, int]:
        """(number of commits, payload bytes) logged after the newest snapshot."""
        ...

    def history(self, datastore: str, limit: int = 100) -> list[CommitRecord]:
        """Newest first; payloads included."""
        ...

    def snapshot_at(self, datastore: str, revision: int) -> Snapshot | None:
        """The newest snapshot whose revision is <= ``revision``."""
        ...

    def commits_between(self, datastore: str, after: int, upto: int) -> list[CommitRecord]:
        """Commits with after < revision <= upto, oldest first."""
        ...

    def put_oper(self, owner: str, key: str, content: str | None) -> None:
        """Store (or with None, delete) one operational record."""
        ...

    def load_oper(self) -> list[OperRecord]: ...

    def clear_oper(self, owner: str) -> None: ...

    def append_notification(self, stream: str, timestamp: float, content: str) -> int: ...

    def notifications(
        self, stream: str, start: float | None = None, stop: float | None = None,
        after_seq: int = 0,
    ) -> Iterator[NotificationRecord]: ...

    def batch(self) -> AbstractContextManager[None]:
        """Make the writes inside durable together, once, when the block ends (group
        commit); a write that fails inside is undone alone."""
        ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...
