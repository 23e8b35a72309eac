"""One process at a time opens a state directory's datastore.

The datastore lives in one process's memory; a second process writing the same SQLite
file would fork its history.  ``nfo serve`` therefore holds an exclusive ``flock`` on
``<state>/lock`` for its whole life, and every other command that opens the datastore
(``nfo module remove``, ``nfo user`` with no server running) takes it for the length
of its work.  The kernel drops the lock when its holder exits, however it exits, so a
crashed server never leaves the directory locked; the lock file itself stays.
"""

from __future__ import annotations

import fcntl
import os
from types import TracebackType

from nfo.cli.moduleset import StateDir
from nfo.errors import InUse

__all__ = ["StateLock"]


class StateLock:
    """The held lock of one state directory; :meth:`release` (or ``with``) ends it."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, state: StateDir) -> StateLock | None:
        """The lock, or None at once when another process holds it."""
        state.ensure()
        fd = os.open(state.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd)

    @classmethod
    def acquire(cls, state: StateDir, busy: str) -> StateLock:
        """The lock, or :class:`~nfo.errors.InUse` with ``busy`` as its message."""
        lock = cls.try_acquire(state)
        if lock is None:
            raise InUse(f"{busy} ({state.lock} is locked)")
        return lock

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
