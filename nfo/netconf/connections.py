"""NETCONF's SSH connections: bounded until they hold a NETCONF session, and NETCONF
sessions capped in all and per user.

Why: asyncssh, left to accept by itself, takes every connection and keeps each until
its login timeout, whether it ever sends a byte or not; and an authenticated user could
open sessions without end.  Here (accepting through
:class:`nfo.protocol.limits.Listener`):

- a connection without a NETCONF session (not logged in yet, or logged in without a
  session open) is *pending*: at most ``max_startups`` are; a new connection beyond
  closes the oldest pending one that has not sent a byte, else it is refused (told so
  in one line of text, then closed; logged once per interval).  A pending connection
  must open its NETCONF session within ``login_timeout`` seconds of its start (or of
  the end of its last session);
- NETCONF sessions (SSH session channels) are at most ``max_sessions`` in all and
  ``max_sessions_per_user`` per user; beyond, the channel is refused with SSH's
  "resource shortage" and a message naming the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

import asyncssh

from nfo.protocol.corked import Corked
from nfo.protocol.limits import ThrottledLog

__all__ = ["SessionLimits", "SessionSlot", "SshConnections"]

log = logging.getLogger(__name__)

REFUSED = b"nfo: too many connections waiting to log in; try again later\r\n"
"""What a refused connection reads (RFC 4253 lets a server send lines before its
version)."""


@dataclass(frozen=True)
class SessionLimits:
    """NETCONF's connection and session limits (docs/limits.md)."""

    max_sessions: int = 256
    max_sessions_per_user: int = 64
    max_startups: int = 64
    login_timeout: float = 30.0


class _Tracked(asyncio.Protocol):
    """asyncssh's connection, seen from the table: whether the peer sent anything, and
    when it goes."""

    def __init__(self, table: SshConnections) -> None:
        self.table = table
        self.conn: asyncssh.SSHServerConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.corked: Corked | None = None
        self.heard = False
        self.slots: set[SessionSlot] = set()
        self.deadline: asyncio.TimerHandle | None = None
        self.gone = False

    def made(self, conn: asyncssh.SSHServerConnection) -> _Tracked:
        self.conn = conn
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport) and self.conn is not None
        self.transport = transport
        # asyncssh writes an IGNORE packet before each data packet: both in one write
        self.corked = Corked(transport, asyncio.get_running_loop())
        self.conn.connection_made(cast(asyncio.Transport, self.corked))
        if self.gone:  # closed to make room before it started
            self.conn.abort()

    def data_received(self, data: bytes) -> None:
        self.heard = True
        assert self.conn is not None and self.corked is not None
        # what answers this data (a reply written in the receive path) leaves at once
        self.corked.hold()
        try:
            self.conn.data_received(data)
        finally:
            self.corked.flush()

    def eof_received(self) -> bool | None:
        assert self.conn is not None
        self.conn.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.table.lost(self)
        assert self.conn is not None
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        assert self.conn is not None
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        assert self.conn is not None
        self.conn.resume_writing()

    def evict(self) -> None:
        self.gone = True
        if self.transport is not None and self.conn is not None:
            self.conn.abort()


class SessionSlot:
    """One NETCONF session's place under the session limits; :meth:`release` it when
    the session ends (idempotent)."""

    def __init__(self, table: SshConnections, tracked: _Tracked, user: str) -> None:
        self._table = table
        self._tracked = tracked
        self.user = user
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._table.released(self, self._tracked)


class SshConnections:
    """The table of one NETCONF server's SSH connections and sessions; :meth:`admit` is
    its :class:`~nfo.protocol.limits.Listener`'s ``admit``."""

    def __init__(self, limits: SessionLimits, options: asyncssh.SSHServerConnectionOptions
                 ) -> None:
        self.limits = limits
        self._options = options
        self._pending: dict[_Tracked, None] = {}
        """Connections without a NETCONF session, oldest first."""
        self._by_conn: dict[asyncssh.SSHServerConnection, _Tracked] = {}
        self.sessions = 0
        self.per_user: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refused = ThrottledLog(log)
        self._timeouts = ThrottledLog(log, level=logging.INFO)
        self._denied = ThrottledLog(log, level=logging.INFO)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def connections(self) -> int:
        return len(self._by_conn)

    def admit(self, sock: socket.socket) -> None:
        if len(self._pending) >= self.limits.max_startups:
            victim = next((t for t in self._pending if not t.heard), None)
            if victim is None:
                self._refused("NETCONF: %d connections are waiting to log in: a new one is "
                              "refused", len(self._pending))
                with contextlib.suppress(OSError):
                    sock.send(REFUSED)
                sock.close()
                return
            self._drop_pending(victim)
            victim.evict()
        loop = asyncio.get_running_loop()
        tracked = _Tracked(self)
        self._wait_for_session(tracked)
        started = False

        async def connect() -> None:
            nonlocal started
            if tracked.gone:
                return
            started = True  # from here asyncio's transport owns the socket
            conn = asyncssh.SSHServerConnection(loop, self._options)
            self._by_conn[conn] = tracked.made(conn)
            try:
                await loop.connect_accepted_socket(lambda: tracked, sock)
            except (Exception, asyncio.CancelledError) as e:
                if tracked.transport is None:
                    self.lost(tracked)
                log.debug("NETCONF: connection ended before it started: %r", e)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not started:
                self.lost(tracked)
                sock.close()

        task = loop.create_task(connect())
        self._tasks.add(task)
        task.add_done_callback(done)

    def shed(self, n: int = 16) -> None:
        """Out of file descriptors: close up to ``n`` pending connections that sent
        nothing."""
        for tracked in [t for t in self._pending if not t.heard][:n]:
            self._drop_pending(tracked)
            tracked.evict()

    def _wait_for_session(self, tracked: _Tracked) -> None:
        self._pending[tracked] = None
        tracked.deadline = asyncio.get_running_loop().call_later(
            self.limits.login_timeout, self._expired, tracked)

    def _drop_pending(self, tracked: _Tracked) -> None:
        self._pending.pop(tracked, None)
        if tracked.deadline is not None:
            tracked.deadline.cancel()
            tracked.deadline = None

    def _expired(self, tracked: _Tracked) -> None:
        tracked.deadline = None
        if tracked in self._pending and not tracked.gone:
            self._timeouts("NETCONF: closed a connection that opened no NETCONF session "
                           "within %g s", self.limits.login_timeout)
            self._pending.pop(tracked, None)
            tracked.evict()

    def lost(self, tracked: _Tracked) -> None:
        """The connection is gone (or never started): forget it and free its slots."""
        tracked.gone = True
        self._drop_pending(tracked)
        if tracked.conn is not None:
            self._by_conn.pop(tracked.conn, None)
        for slot in list(tracked.slots):
            slot.release()

    def open_session(self, conn: asyncssh.SSHServerConnection, user: str) -> SessionSlot:
        """A place for a new NETCONF session of ``user`` on ``conn``, or ChannelOpenError
        (resource shortage) when a limit is reached."""
        tracked = self._by_conn.get(conn)
        if tracked is None or tracked.gone:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED,
                                            "the connection is closing")
        limits = self.limits
        if self.per_user[user] >= limits.max_sessions_per_user:
            why = (f"too many NETCONF sessions for user {user!r}: at most "
                   f"{limits.max_sessions_per_user}")
        elif self.sessions >= limits.max_sessions:
            why = f"too many NETCONF sessions: the server allows {limits.max_sessions}"
        else:
            slot = SessionSlot(self, tracked, user)
            tracked.slots.add(slot)
            self.sessions += 1
            self.per_user[user] += 1
            self._drop_pending(tracked)
            return slot
        self._denied("NETCONF: session refused: %s", why)
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_RESOURCE_SHORTAGE, why)

    def released(self, slot: SessionSlot, tracked: _Tracked) -> None:
        tracked.slots.discard(slot)
        self.sessions -= 1
        self.per_user[slot.user] -= 1
        if self.per_user[slot.user] <= 0:
            del self.per_user[slot.user]
        if tracked.slots or tracked.gone:
            return
        if len(self._pending) < self.limits.max_startups:
            self._wait_for_session(tracked)
        elif tracked.conn is not None:
            tracked.conn.close()  # what its last session sent still reaches the client

    def close(self) -> list[asyncssh.SSHServerConnection]:
        """Stop waiting for sessions; the connections still open, to be closed."""
        for tracked in list(self._pending):
            self._drop_pending(tracked)
        for task in self._tasks:
            task.cancel()
        return list(self._by_conn)

    async def wait_closed(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
