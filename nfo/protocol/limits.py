"""What both front ends use to bound the resources a client can take: their accept loop,
warnings logged once per interval, and handing memory back after large requests.

Why both front ends accept connections themselves (:class:`Listener`) instead of leaving
it to asyncio's ``loop.create_server``: there a front end meets a connection only once
it is accepted (under TLS, once its handshake is over), too late to refuse it before it
holds a file descriptor; and when descriptors run out, asyncio logs a traceback for
every failed ``accept()``, up to the listen backlog per turn of the event loop, again
each time it retries.  Here the front end's ``admit`` decides, for each accepted
socket, to serve it, to make room for it or to refuse it, and running out of
descriptors pauses accepting for a moment and is logged once per interval.

Why :class:`Reclaimer`: the element tree of a parsed message is cyclic, so it waits for
a full garbage collection, which may come much later; and glibc keeps freed memory in
its heap after large allocations.  After a large request one collection and one
``malloc_trim`` give the memory back to the system.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import math
import resource
import socket
import time
from collections.abc import Callable

from nfo.collector import malloc_trim

__all__ = ["NOTIFICATION_BATCH", "Listener", "Reclaimer", "ThrottledLog",
           "raise_open_files_limit"]

NOTIFICATION_BATCH = 64
"""Notifications a stream (NETCONF or SSE) writes at most in one write when it has a
backlog; between writes the event loop runs, so a lost connection is noticed and other
clients are served."""

log = logging.getLogger(__name__)

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class ThrottledLog:
    """A log message written at most once per ``every`` seconds; when written again it
    says how many times it was due in between."""

    def __init__(self, logger: logging.Logger, every: float = 60.0,
                 level: int = logging.WARNING) -> None:
        self._log = logger
        self._every = every
        self._level = level
        self._last = -math.inf
        self._since = 0

    def __call__(self, message: str, *args: object, exc_info: bool = False) -> None:
        now = time.monotonic()
        self._since += 1
        if now - self._last < self._every:
            return
        if self._since > 1 and self._last > -math.inf:
            message += f" ({self._since} times in the last {now - self._last:.0f} s)"
        self._log.log(self._level, message, *args, exc_info=exc_info)
        self._last = now
        self._since = 0


class Listener:
    """Listening sockets and their accept loop; each accepted socket (non-blocking) is
    handed to ``admit``, which owns it from then on.

    Accepting stops for ``retry`` seconds when the process (or the system) is out of file
    descriptors or memory for sockets, after ``shed`` was called to close a few idle
    connections; that is logged once per ``report_every`` seconds.
    """

    def __init__(self, name: str, sockets: list[socket.socket],
                 admit: Callable[[socket.socket], None], *,
                 shed: Callable[[], None] | None = None, retry: float = 0.5,
                 report_every: float = 60.0, burst: int = 64) -> None:
        self.name = name
        self.sockets = sockets
        self._admit = admit
        self._shed = shed
        self._retry = retry
        self._burst = burst
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resume: asyncio.TimerHandle | None = None
        self._exhausted = ThrottledLog(log, report_every)
        self._failed = ThrottledLog(log, report_every)
        self._broken = ThrottledLog(log, report_every, logging.ERROR)

    @staticmethod
    def bind(host: str, port: int, backlog: int = 511) -> list[socket.socket]:
        """Bound, listening, non-blocking sockets for every address of ``host``."""
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        socks: list[socket.socket] = []
        try:
            for family, kind, proto, _, addr in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
                sock.listen(backlog)
                sock.setblocking(False)
        except OSError:
            for sock in socks:
                sock.close()
            raise
        return socks

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._listen()

    def _listen(self) -> None:
        self._resume = None
        assert self._loop is not None
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _pause(self) -> None:
        assert self._loop is not None
        for sock in self.sockets:
            self._loop.remove_reader(sock.fileno())

    def close(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._loop is not None:
            self._pause()
            self._loop = None
        for sock in self.sockets:
            sock.close()

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(self._burst):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:
                if e.errno not in _OUT_OF_RESOURCES:
                    # accept(2): network errors of the pending connection; try the next
                    self._failed("%s: accept failed: %s", self.name, e)
                    continue
                self._exhausted("%s: cannot accept connections (%s); accepting again in "
                                "%g s", self.name, e.strerror, self._retry)
                self._pause()
                assert self._loop is not None
                self._resume = self._loop.call_later(self._retry, self._listen)
                if self._shed is not None:
                    self._shed()
                return
            conn.setblocking(False)
            try:
                self._admit(conn)
            except Exception:
                conn.close()
                self._broken("%s: could not take a connection", self.name, exc_info=True)


class Reclaimer:
    """Gives memory back to the system after large requests: :meth:`note` each request's
    size; after one of ``threshold`` bytes or more, a full garbage collection and glibc's
    ``malloc_trim`` run, at most once per ``every`` seconds.  One per process, shared by
    the front ends (the composition root makes it)."""

    def __init__(self, threshold: int = 1 << 20, every: float = 2.0) -> None:
        self.threshold = threshold
        self.every = every
        self.runs = 0
        self._trim = malloc_trim()
        self._handle: asyncio.TimerHandle | None = None
        self._last = -math.inf

    def note(self, size: int) -> None:
        if size >= self.threshold:
            self.request()

    def request(self) -> None:
        if self._handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.05, self._last + self.every - loop.time())
        self._handle = loop.call_later(delay, self._run, loop)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        gc.collect()
        if self._trim is not None:
            self._trim(0)
        self.runs += 1
        self._last = loop.time()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; the new soft
    limit (the connection caps must fit under it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 30
