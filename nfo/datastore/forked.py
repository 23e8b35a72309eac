"""Snapshots printed by a forked child.

Printing running as JSON costs about 15 ns per byte on the event loop: 70-140 ms for 50,000
nf-instances, and every client waits meanwhile (it was the p99 of concurrent writes). A
child made by fork(2) shares the parent's memory copy-on-write, so it sees the tree exactly
as it was at the fork; it prints it and hands the text back through a pipe while the parent
goes on serving and committing. What the parent pays is the fork (its page tables: 5-25 ms
at 300-500 MB resident) and reading the pipe.

The child runs nothing but the print: the garbage collector off, the parent's sockets and
files closed, no event loop, no SQLite, no lock another thread could be holding (libyang's
printer takes none; glibc resets malloc's across fork), and it leaves with ``os._exit``. A
child that fails, dies or outlives its deadline is reaped and reported as ``None``: the
caller prints the snapshot itself, as it does below the size where forking pays.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable

from nfo.schema import Fmt, Tree

__all__ = ["ChildPrint"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class ChildPrint:
    """One forked child printing one tree; ``done`` gets the text's UTF-8 bytes in the
    pieces they were read in (joined and decoded by whoever stores them, a part at a
    time: 8 ms for 10 MB on the loop otherwise), or None if the child failed (called
    once, on the event loop, unless :meth:`cancel` came first)."""

    def __init__(self, pid: int, fd: int, done: Callable[[list[bytes] | None], None],
                 deadline: float) -> None:
        self.pid = pid
        self._fd = fd
        self._done = done
        self._chunks: list[bytes] = []
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._readable)
        self._timer = self._loop.call_later(deadline, self._expired)
        self._over = False

    @classmethod
    def start(cls, tree: Tree, done: Callable[[list[bytes] | None], None], *,
              deadline: float = 120.0) -> ChildPrint | None:
        """Fork a child printing ``tree`` as JSON; None if no child could be made."""
        try:
            r, w = os.pipe()
        except OSError as e:
            log.warning("no pipe for a snapshot child: %s", e)
            return None
        try:
            pid = os.fork()
        except OSError as e:
            os.close(r)
            os.close(w)
            log.warning("no snapshot child could be forked: %s", e)
            return None
        if pid == 0:  # pragma: no cover - the child (its result is what the tests check)
            _child(tree, r, w)
        os.close(w)
        os.set_blocking(r, False)
        return cls(pid, r, done, deadline)

    def cancel(self) -> None:
        """Stop the child and forget its result."""
        self._finish(kill=True)

    def _readable(self) -> None:
        try:
            while True:
                chunk = os.read(self._fd, _CHUNK)
                if not chunk:
                    break
                self._chunks.append(chunk)
        except BlockingIOError:
            return
        except OSError as e:
            log.warning("reading the snapshot child %d: %s", self.pid, e)
            self._finish(kill=True)
            self._report(None)
            return
        ok = self._finish(kill=False)
        self._report(self._chunks if ok else None)

    def _expired(self) -> None:
        log.warning("the snapshot child %d did not finish in time: killed", self.pid)
        self._finish(kill=True)
        self._report(None)

    def _report(self, text: list[bytes] | None) -> None:
        done, self._chunks = self._done, []
        done(text)

    def _finish(self, *, kill: bool) -> bool:
        """Stop listening, reap the child; whether it exited cleanly."""
        if self._over:
            return False
        self._over = True
        self._timer.cancel()
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return False
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and not kill:
            log.warning("the snapshot child %d ended with status %d", self.pid, code)
        return code == 0 and not kill


def _child(tree: Tree, r: int, w: int) -> None:  # pragma: no cover - runs in the child
    code = 1
    try:
        gc.disable()  # a collection would touch (copy) every object for nothing
        signal.set_wakeup_fd(-1)  # the parent's event loop is not ours to wake
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        # the parent's sockets and files: a connection it closes must not stay open here
        os.closerange(3, w)
        os.closerange(w + 1, os.sysconf("SC_OPEN_MAX"))
        view = memoryview(tree.print(Fmt.JSON).encode("utf-8"))
        while view:
            n = os.write(w, view)
            view = view[n:]
        code = 0
    finally:
        os._exit(code)
