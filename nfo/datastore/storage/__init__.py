"""Durable storage for the datastore.

The datastore keeps its trees in memory and relies on a :class:`Storage`
backend to make commits, snapshots, operational data and the notification
replay log survive restarts and crashes.  :mod:`.base` defines that interface;
:class:`SqliteStorage` is the embedded implementation nfo ships with.
"""

from .base import (
    CommitKind,
    CommitRecord,
    Handover,
    NotificationMark,
    NotificationRecord,
    NotificationSpan,
    OperRecord,
    RemoteChanges,
    Replicated,
    SharedLocks,
    Snapshot,
    Storage,
    StoredState,
)
from .sqlite import SqliteStorage

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
    "SqliteStorage",
    "Storage",
    "StoredState",
]
