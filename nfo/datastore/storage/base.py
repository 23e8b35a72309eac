"""The storage interface behind the datastore.

The datastore keeps its trees in memory (libyang) and asks a storage backend
only to make them durable.  Running and startup are stored event-sourced: a
snapshot of the whole datastore now and then, plus a log of commits after it.
A commit record is small (the edit that produced it), so acknowledging a commit
costs one durable append, whatever the size of the datastore.  The same log
gives revision numbers, timestamps and users for ETag, Last-Modified and
rollback.  Operational data pushed by owners (read back record by record when
a read selects it, so a server need not hold it all in memory) and the notification
replay log live here too.  The notification log is kept by module (the module of each
notification's top node): event streams are sets of modules, so a stream reads its own
records through the module index, whenever it was defined.
"""

from __future__ import annotations

from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "CommitKind",
    "CommitRecord",
    "Handover",
    "NotificationMark",
    "NotificationRecord",
    "NotificationSpan",
    "OperRecord",
    "RemoteChanges",
    "Replicated",
    "SharedLocks",
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
    module: str
    timestamp: float
    content: str


@dataclass(frozen=True)
class NotificationMark:
    """Where a logged notification is: its sequence number and event time."""

    seq: int
    timestamp: float


@dataclass(frozen=True)
class NotificationSpan:
    """What the log holds of one module: how many records, and the oldest of them."""

    module: str
    count: int
    first: NotificationMark


@dataclass(frozen=True)
class RemoteChanges:
    """What other replicas stored, one revision of the shared store at a time, once this
    replica's storage holds it too."""

    revision: int
    commits: list[CommitRecord] = field(default_factory=list)
    """Their commits, in revision order: this replica's trees do not hold them yet."""
    oper: bool = False
    """Operational records changed."""
    notifications: list[NotificationRecord] = field(default_factory=list)
    """Notifications they logged."""
    resync: bool = False
    """This replica could not follow revision by revision (etcd compacted the revisions
    it had not read): the storage holds the whole state again, which the trees are to
    take (the subscribers told what differs)."""


@runtime_checkable
class Replicated(Protocol):
    """A store that other replicas write too (the etcd backend): what they store reaches
    this one through :meth:`follow`, and a write of this one made on an older state is
    refused with :class:`~nfo.errors.StorageConflict` (its ``revision``: the store's
    revision then), to be taken again once :meth:`caught_up`."""

    def follow(self, deliver: Callable[[RemoteChanges], None]) -> None:
        """From now on, call ``deliver`` (on the running event loop) with each revision
        other replicas store, in order."""
        ...

    async def caught_up(self, revision: int) -> None:
        """Return once every revision up to ``revision`` has been delivered."""
        ...

    async def sync(self) -> None:
        """Return once every revision the store had when called has been delivered
        (what a client saw on another replica is then here too)."""
        ...

    async def unfollow(self) -> None: ...

    @property
    def me(self) -> str:
        """This process among the replicas (a restarted replica is another one)."""
        ...

    def alive(self, replica: str) -> bool:
        """Whether the replica process ``replica`` (its :attr:`me`) is running, as far as
        this one has heard."""
        ...

    def expect_meta(self, key: str, value: str) -> None:
        """Inside a batch: store it only if the meta ``key`` still holds ``value`` in the
        shared store (else the batch fails with :class:`~nfo.errors.StorageConflict`)."""
        ...


@runtime_checkable
class Handover(Protocol):
    """Calls only one replica serves (the workload manager's actions, on the replica
    that leads it): any other replica hands such a call over through the store and
    waits for the answer.  Bodies are text; what they say is the caller's business."""

    async def ask(self, kind: str, body: str, timeout: float) -> str:
        """The answer of the replica answering ``kind`` to ``body``;
        :class:`~nfo.errors.OperationFailed` if none answers within ``timeout`` s."""
        ...

    async def answer(self, kind: str,
                     answerer: Callable[[str], Awaitable[str]] | None) -> None:
        """From now on answer ``kind`` with ``answerer`` (None: no more), the asks
        already waiting first."""
        ...


@runtime_checkable
class SharedLocks(Protocol):
    """Datastore locks that hold across replicas (RFC 6241 7.5 for a datastore several
    servers write): a lock taken through one replica refuses writes through every other.
    A lock lives while its replica does."""

    def acquire_lock(self, datastore: str, session: int) -> str | None:
        """Take ``datastore``'s lock for ``session`` of this replica; None when taken,
        else who holds it (on another replica)."""
        ...

    def release_lock(self, datastore: str) -> None: ...

    def lock_elsewhere(self, datastore: str) -> str | None:
        """Who holds ``datastore``'s lock on another replica (None: nobody there)."""
        ...


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

    def snapshot_steps(self, datastore: str, revision: int,
                       content: str | Sequence[bytes]) -> Generator[None, None, None]:
        """:meth:`write_snapshot` in steps (each ``next`` one short durable write), so
        that other writes run between them; the snapshot exists once a step has made it
        whole, and the steps left after that only tidy up.  ``content``: the text, or
        its UTF-8 bytes in pieces (decoded a part per step)."""
        ...

    def since_snapshot(self, datastore: str) -> tuple[int, int]:
        """(number of commits, payload bytes) logged after the newest snapshot."""
        ...

    def history(self, datastore: str, limit: int = 100,
                before: int | None = None) -> list[CommitRecord]:
        """Newest first, only revisions below ``before`` if given; payloads included."""
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

    def oper_keys(self) -> list[tuple[str, str]]:
        """(owner, key) of every operational record, by owner and key."""
        ...

    def oper_texts(self, owner: str, keys: Sequence[str]) -> list[str | None]:
        """The content of each of the owner's records at ``keys`` (None: no such record),
        as the writes made so far left them (a batch not yet durable included); each
        checked against damage as it is read."""
        ...

    def oper_page(self, owner: str, after: str | None, limit: int
                  ) -> list[tuple[str, str]]:
        """Up to ``limit`` of the owner's records (key, content) with a key above
        ``after`` (None: from the first), by key."""
        ...

    def clear_oper(self, owner: str) -> None: ...

    def append_notification(self, module: str, timestamp: float, content: str) -> int:
        """Log one notification of ``module``; returns its sequence number, greater than
        every one returned before."""
        ...

    def notifications(
        self, modules: Collection[str] | None = None, start: float | None = None,
        stop: float | None = None, after_seq: int = 0,
    ) -> Iterator[NotificationRecord]:
        """The records of ``modules`` (None: every module) with a sequence number above
        ``after_seq`` and an event time within [start, stop], in sequence order, as
        logged when the iteration began; read through the module index (records of
        other modules are not visited)."""
        ...

    def notification_spans(self, modules: Collection[str] | None = None
                           ) -> list[NotificationSpan]:
        """Per module of ``modules`` (None: every module) that has records: how many, and
        the oldest."""
        ...

    def notification_after(self, modules: Collection[str] | None, after_seq: int,
                           skip: int = 0) -> NotificationMark | None:
        """The record of ``modules`` (None: every module) that follows ``after_seq``,
        passing over ``skip`` of them first; None when there are not that many."""
        ...

    def drop_notifications(self, cuts: Mapping[str, int]) -> int:
        """Delete, per module of ``cuts``, its records with a sequence number below its
        cut; returns how many were deleted."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Make the writes inside durable together, once, when the block ends (group
        commit); a write that fails inside is undone alone."""
        ...

    def durable_batch(self) -> AbstractAsyncContextManager[None]:
        """:meth:`batch`, whose final wait for the disk does not hold up the event loop;
        other storage calls made meanwhile wait for it."""
        ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...
