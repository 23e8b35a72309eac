"""RESTCONF's connections: bounded in number, and timed while they wait for a request.

Why: uvicorn serves every connection it is given for as long as the client keeps it
open: its keep-alive timer starts only after a response and any byte cancels it, so a
connection that never completes a request head (or sends nothing) stays forever, and
enough of them exhaust the process's file descriptors.  Here (accepting through
:class:`nfo.protocol.limits.Listener`):

- at most ``max_connections`` connections are served.  A connection beyond makes room
  by closing the one that has waited longest for a request (an idle keep-alive, a
  partial request head, a TLS handshake, the rest of a body after an early answer);
  when every served connection has a request in progress, the new one is answered
  ``503 Service Unavailable`` with ``Retry-After`` (through the application's one error
  handler) and closed, and beyond a small reserve of such answers it is closed at once;
- a request head must be complete within ``header_timeout`` seconds of the
  connection's start (of its TLS handshake's end) or of the request's first byte, and a
  TLS handshake must end within that time too;
- an idle keep-alive connection is closed after ``keepalive_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from starlette.requests import Request
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from nfo.protocol.corked import Corked
from nfo.protocol.errors import HttpError
from nfo.protocol.limits import Reclaimer, ThrottledLog

__all__ = ["HTTP_PROTOCOLS", "MAX_HEAD", "ConnectionLimits", "Connections", "GuardedH11Protocol",
           "GuardedHttpToolsProtocol", "GuardedProtocol"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    """RESTCONF's connection limits (docs/limits.md)."""

    max_connections: int = 256
    header_timeout: float = 10.0
    keepalive_timeout: float = 60.0
    retry_after: int = 1
    """Seconds, in the Retry-After of a 503."""

    @property
    def reserve(self) -> int:
        """Connections answered 503 at the same time, at most; beyond, closed at once."""
        return max(4, self.max_connections // 8)


class _Guard(asyncio.Protocol):
    """What the guarded protocols add to uvicorn's: counted in their :class:`Connections`
    from the moment the socket is accepted, timed while waiting for a request; a
    *refusing* one answers its request with 503 and closes.  Mixed in before uvicorn's
    h11 or httptools protocol, whose attributes (``app``, ``cycle``, ``transport``,
    ``loop``, ``timeout_keep_alive_task``) it uses."""

    app: Any
    cycle: Any
    transport: Any
    loop: asyncio.AbstractEventLoop
    timeout_keep_alive_task: asyncio.TimerHandle | None

    def __init__(self, config: uvicorn.Config, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *,
                 table: Connections, refusing: bool = False) -> None:
        super().__init__(config, server_state, app_state, _loop)  # type: ignore[call-arg]
        self._table = table
        self.refusing = refusing
        if refusing:
            self.app = table.refuse
        self.handshake: asyncio.Task[Any] | None = None
        """The task connecting the accepted socket (a TLS handshake) until it is done."""
        self.counted = True
        self._deadline: asyncio.TimerHandle | None = None
        self._received = 0

    def _head_pending(self) -> bool:
        """Whether bytes of a next request's head have arrived (and it is not complete)."""
        raise NotImplementedError

    @property
    def waiting(self) -> bool:
        """True unless a request is in progress (its response not yet complete)."""
        return self.cycle is None or self.cycle.response_complete

    def evict(self) -> None:
        if self.transport is None:
            if self.handshake is not None:
                self.handshake.cancel()
        elif not self.transport.is_closing():
            self.transport.abort()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.counted:  # evicted during its handshake
            transport.abort()
            return
        # a response head and its body in one write: one TCP segment, one TLS record
        self.transport = Corked(transport, self.loop)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        self._table.touch(self)
        super().data_received(data)
        self._check()

    def on_response_complete(self) -> None:
        self._table.touch(self)
        self._table.reclaimer.note(self._received + self.transport.sent)
        self._received = self.transport.sent = 0
        super().on_response_complete()  # type: ignore[misc]
        if self._deadline is not None and self.waiting and not self._head_pending():
            # uvicorn's keep-alive timer runs from here until the next request's first byte
            self._deadline.cancel()
            self._deadline = None
        self._check()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._table.count_out(self)
        self._table.reclaimer.note(self._received)
        super().connection_lost(exc)

    def _check(self) -> None:
        if self.transport.is_closing():
            return
        if not self.waiting:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
        elif self._deadline is None and (self.timeout_keep_alive_task is None
                                         or self._head_pending()):
            self._arm()

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self._table.limits.header_timeout, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        if self.waiting and not self.transport.is_closing():
            self._table.timed_out()
            self.transport.abort()


class GuardedH11Protocol(_Guard, H11Protocol):
    """uvicorn's h11 protocol (pure Python, strict), guarded.  h11 bounds a head it is
    still waiting for; a complete head beyond :data:`MAX_HEAD` (arrived at once) is
    refused here as h11 refuses the other kind (400)."""

    conn: Any

    def __init__(self, config: uvicorn.Config, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *,
                 table: Connections, refusing: bool = False) -> None:
        super().__init__(config, server_state, app_state, _loop, table=table,
                         refusing=refusing)
        events = self.conn.next_event

        def next_event() -> Any:
            event = events()
            if isinstance(event, h11.Request) and _head_size(
                    event.target, event.headers) > MAX_HEAD:
                raise h11.RemoteProtocolError("the request head is too large",
                                              error_status_hint=431)
            return event

        self.conn.next_event = next_event

    def _head_pending(self) -> bool:
        return bool(self.conn.trailing_data[0])


MAX_HEAD = 16384
"""Bytes of a request head (request line and header fields) at most: h11's own bound for
a head it waits for, kept for complete ones and for httptools, which has none."""


def _head_size(target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> int:
    """What a parsed request head is measured by: its target and each header field."""
    return len(target) + sum(len(name) + len(value) + 4  # ": ", CRLF
                             for name, value in headers)


class GuardedHttpToolsProtocol(_Guard, HttpToolsProtocol):
    """uvicorn's httptools protocol (llhttp, in C: a request costs a third of h11's),
    guarded, with a bound on the request head (431 beyond :data:`MAX_HEAD`).

    The head's bytes are counted while it is incomplete: a chunk that starts inside a
    head is head up to the head's end, so while the head is still incomplete after it,
    all of it counts; after the chunk where a head begins (after a previous request)
    what the parser has taken of it counts (the request target, each header field).
    A head complete in its chunk is measured only when the chunk is larger than the
    bound (no callback per header field otherwise)."""

    def __init__(self, config: uvicorn.Config, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *,
                 table: Connections, refusing: bool = False) -> None:
        super().__init__(config, server_state, app_state, _loop, table=table,
                         refusing=refusing)
        self._in_head = False
        self._head_bytes = 0
        self._big_chunk = False
        self._refused = False

    def _head_pending(self) -> bool:
        return self._in_head

    def _refuse_head(self) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: 31\r\nconnection: close\r\n\r\n"
                b"the request head is too large\r\n")
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # the parser stopped because the head was refused: answered
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._big_chunk and _head_size(self.url, self.headers) > MAX_HEAD:
            self._refuse_head()
            raise _HeadTooLarge  # stops the parser: nothing of this request is served
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        whole_chunk = self._in_head
        self._big_chunk = len(data) > MAX_HEAD
        super().data_received(data)
        if not self._in_head or self._refused:
            return
        if whole_chunk:
            self._head_bytes += len(data)
        else:  # the head began in this chunk: what the parser has taken of it so far
            self._head_bytes = _head_size(self.url, self.headers)
        if self._head_bytes > MAX_HEAD:
            self._refuse_head()


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a refused request."""


GuardedProtocol = _Guard
"""Either guarded protocol (what :class:`Connections` serves with)."""
HTTP_PROTOCOLS: dict[str, type[_Guard]] = {"httptools": GuardedHttpToolsProtocol,
                                           "h11": GuardedH11Protocol}
"""The HTTP/1.1 implementations RESTCONF can serve with, by name."""


class Connections:
    """The table of one RESTCONF server's connections; :meth:`admit` is its
    :class:`~nfo.protocol.limits.Listener`'s ``admit``."""

    def __init__(self, server: uvicorn.Server, limits: ConnectionLimits,
                 error_reply: Callable[[Request, HttpError], Any],
                 reclaimer: Reclaimer) -> None:
        self.server = server
        self.limits = limits
        self.reclaimer = reclaimer
        self._error_reply = error_reply
        config = server.config
        self._ssl: ssl.SSLContext | None = config.ssl
        protocol = config.http_protocol_class
        assert isinstance(protocol, type) and issubclass(protocol, _Guard)
        self._protocol: type[_Guard] = protocol
        self._live: dict[_Guard, None] = {}
        """Served connections, the one that waited longest for a request first."""
        self._refusing = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refused = ThrottledLog(log)
        self._timeouts = ThrottledLog(log, level=logging.INFO)

    def __len__(self) -> int:
        return len(self._live)

    @property
    def refusing(self) -> int:
        return self._refusing

    def admit(self, sock: socket.socket) -> None:
        refusing = False
        if len(self._live) >= self.limits.max_connections:
            victim = next((c for c in self._live if c.waiting), None)
            if victim is not None:
                self.count_out(victim)
                victim.evict()
            elif self._refusing < self.limits.reserve:
                refusing = True
                self._refused("RESTCONF: all %d connections have a request in progress: "
                              "a new one is answered 503", self.limits.max_connections)
            else:
                self._refused("RESTCONF: all %d connections have a request in progress "
                              "and %d more are being answered 503: a new one is closed",
                              self.limits.max_connections, self._refusing)
                sock.close()
                return
        server = self.server
        conn = self._protocol(config=server.config, server_state=server.server_state,
                              app_state=server.lifespan.state, table=self, refusing=refusing)
        if refusing:
            self._refusing += 1
        else:
            self._live[conn] = None
        started = False

        async def connect() -> None:
            nonlocal started
            started = True  # from here asyncio's transport owns the socket
            try:
                await asyncio.get_running_loop().connect_accepted_socket(
                    lambda: conn, sock, ssl=self._ssl,
                    ssl_handshake_timeout=self.limits.header_timeout if self._ssl else None)
            except (Exception, asyncio.CancelledError) as e:
                if conn.transport is None:  # its connection_lost will not come
                    self.count_out(conn)
                log.debug("RESTCONF: connection ended before its protocol started: %r", e)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            conn.handshake = None
            if not started:  # cancelled before it ran: the socket is still ours
                self.count_out(conn)
                sock.close()

        task = asyncio.get_running_loop().create_task(connect())
        conn.handshake = task
        self._tasks.add(task)
        task.add_done_callback(done)

    def shed(self, n: int = 16) -> None:
        """Out of file descriptors: close up to ``n`` connections waiting for a request."""
        for conn in [c for c in self._live if c.waiting][:n]:
            self.count_out(conn)
            conn.evict()

    def touch(self, conn: _Guard) -> None:
        if conn in self._live:
            del self._live[conn]
            self._live[conn] = None

    def count_out(self, conn: _Guard) -> None:
        if not conn.counted:
            return
        conn.counted = False
        if conn.refusing:
            self._refusing -= 1
        else:
            self._live.pop(conn, None)

    def timed_out(self) -> None:
        self._timeouts("RESTCONF: closed a connection that sent no complete request within "
                       "%g s", self.limits.header_timeout)

    async def refuse(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI app of a refusing connection: 503, Retry-After, Connection: close."""
        request = Request(scope, receive)
        err = HttpError(503, f"the server is serving its limit of {self.limits.max_connections}"
                        " connections; retry later", tag="resource-denied",
                        error_type="transport",
                        headers={"Retry-After": str(self.limits.retry_after),
                                 "Connection": "close"})
        response = self._error_reply(request, err)
        await response(scope, receive, send)

    async def close(self) -> None:
        """Abandon connections still in their TLS handshake."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
