"""Loopback socket helpers shared by the tests: free ports and UDP round trips."""

from __future__ import annotations

import asyncio
import socket


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port on 127.0.0.1 that was free a moment ago (UDP unless ``kind`` says TCP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def udp_roundtrip_sync(port: int, payload: bytes, timeout: float = 1.0) -> bytes | None:
    """Send one datagram to 127.0.0.1:port; the reply, or None (refused or silent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        try:
            s.send(payload)
            return s.recv(65536)
        except (TimeoutError, ConnectionRefusedError):
            return None


async def udp_roundtrip(port: int, payload: bytes, timeout: float = 1.0) -> bytes | None:
    """:func:`udp_roundtrip_sync` off the event loop."""
    return await asyncio.to_thread(udp_roundtrip_sync, port, payload, timeout)
