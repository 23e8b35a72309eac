"""The lock table: which session holds which datastore's lock (RFC 6241 section 7.5).

Locks are per session and in memory (none survives a restart).  A session's writes to a
datastore another session has locked are refused (``in-use``).  A lock is denied while
another session holds it, while the candidate has uncommitted changes (for the
candidate), and while a commit to that datastore is under way: its change subscribers
may be awaiting, and a holder granted the lock then would read the data that commit is
about to replace.  Releasing the candidate's lock discards its changes (8.3.5.2).  On a
store replicas share (:class:`~nfo.datastore.storage.base.SharedLocks`), running's and
startup's locks are taken in the store too, so that they hold on every replica; the
candidate is each replica's own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from nfo.datastore.candidate import Candidate
from nfo.datastore.storage.base import SharedLocks
from nfo.errors import InUse, LockDenied, OperationFailed

__all__ = ["LockTable"]


_SHARED = ("running", "startup")
"""The datastores whose locks a store shared by replicas holds."""


class LockTable:
    def __init__(self, candidate: Candidate, shared: SharedLocks | None = None) -> None:
        self._candidate = candidate
        self._shared = shared
        self._holders: dict[str, int] = {}
        self._times: dict[str, float] = {}
        self._committing: dict[str, int] = {}

    def held(self) -> dict[str, tuple[int, float]]:
        """Held locks: datastore -> (session id, when it was taken)."""
        return {ds: (sid, self._times.get(ds, 0.0)) for ds, sid in self._holders.items()}

    def check_writable(self, session_id: int | None, ds: str) -> None:
        """in-use unless ``ds`` is unlocked or locked by ``session_id``."""
        holder = self._holders.get(ds)
        if holder is not None and holder != session_id:
            raise InUse(f"the {ds} datastore is locked by session {holder}",
                        info={"session-id": str(holder)})
        if self._shared is not None and ds in _SHARED and holder is None:
            elsewhere = self._shared.lock_elsewhere(ds)
            if elsewhere is not None:
                raise InUse(f"the {ds} datastore is locked by {elsewhere}",
                            info={"session-id": "0"})

    def lock(self, session_id: int, ds: str) -> None:
        holder = self._holders.get(ds)
        if holder is not None:
            raise LockDenied(f"the {ds} datastore is already locked by session {holder}",
                             info={"session-id": str(holder)})
        if ds == "candidate" and self._candidate.dirty:
            raise LockDenied("the candidate datastore has uncommitted changes",
                             info={"session-id": "0"})
        writer = self._committing.get(ds)
        if writer is not None:
            raise LockDenied(f"a commit to the {ds} datastore is in progress",
                             info={"session-id": str(writer)})
        if self._shared is not None and ds in _SHARED:
            elsewhere = self._shared.acquire_lock(ds, session_id)
            if elsewhere is not None:
                raise LockDenied(f"the {ds} datastore is already locked by {elsewhere}",
                                 info={"session-id": "0"})
        self._holders[ds] = session_id
        self._times[ds] = time.time()

    def unlock(self, session_id: int, ds: str) -> None:
        if self._holders.get(ds) != session_id:
            raise OperationFailed(f"the {ds} datastore is not locked by this session",
                                  tag="operation-failed")
        self._release(ds)

    def release_all(self, session_id: int) -> None:
        """Release every lock of a session that ends."""
        for ds, holder in list(self._holders.items()):
            if holder == session_id:
                self._release(ds)

    def _release(self, ds: str) -> None:
        del self._holders[ds]
        self._times.pop(ds, None)
        if self._shared is not None and ds in _SHARED:
            self._shared.release_lock(ds)
        if ds == "candidate":
            self._candidate.reset()

    @contextlib.contextmanager
    def committing(self, ds: str, session_id: int | None) -> Iterator[None]:
        """Mark a commit to ``ds`` as under way (0: not a session's) while inside."""
        self._committing[ds] = session_id or 0
        try:
            yield
        finally:
            del self._committing[ds]
