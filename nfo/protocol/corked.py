"""A transport that sends what is written in one event-loop turn in one write.

Why: a reply is often written in pieces (an HTTP response head then its body; an SSH
data packet after the empty IGNORE packet asyncssh puts before each one), and each
``transport.write`` on an idle socket is a system call and, with TCP_NODELAY, a TCP
segment of its own that wakes the peer.  :class:`Corked` stands between a protocol and
its transport: writes are gathered and leave together when the event loop takes its
next turn (at once when they grow large), and it counts the bytes written.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["Corked"]

FLUSH_AT = 64 * 1024
"""Bytes gathered at most before they are written at once."""


class Corked:
    """``transport`` with its writes gathered per event-loop turn; everything else is
    the transport's own.  ``sent`` counts the bytes written (the owner may reset it)."""

    __slots__ = ("_held", "_holding", "_loop", "_size", "sent", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._size = 0
        self._holding = False
        self.sent = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self.sent += len(data)
        if not self._held and not self._holding:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))
        self._size += len(data)
        if self._size >= FLUSH_AT:
            self.flush()

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def hold(self) -> None:
        """Gather writes until the owner calls :meth:`flush` (which it must, in this
        turn of the loop): nothing is scheduled for them."""
        self._holding = True

    def flush(self) -> None:
        self._holding = False
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held = []
        self._size = 0
        if not self.transport.is_closing():
            self.transport.write(data)

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._held = []
        self._size = 0
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
