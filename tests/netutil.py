"""Loopback socket helpers shared by the tests: free ports, UDP round trips, and an
ncclient session run off the event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from ncclient import manager


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


async def netconf_run(port: int, user: str, password: str, fn: Callable[[Any], Any], *,
                      timeout: float = 10) -> Any:
    """``fn(manager)`` in an ncclient session to 127.0.0.1:port (password login, no host
    key check), on a thread so that the server in this event loop answers it."""
    def run() -> Any:
        with manager.connect(host="127.0.0.1", port=port, username=user, password=password,
                             hostkey_verify=False, look_for_keys=False, allow_agent=False,
                             timeout=timeout) as m:
            return fn(m)
    return await asyncio.to_thread(run)
