"""``udp-echo``: a tiny but real network function for the ``local`` driver.

``python -m nfo.drivers.local.udp_echo --port N [--host 127.0.0.1]`` answers
every UDP datagram with the same payload, sent back to its sender.  It logs one
line once it listens (the ``local`` driver appends it to the instance's log) and
exits with status 0 on SIGTERM or SIGINT.  It is what the demo descriptor
``udp-echo`` deploys, and the ``local`` driver's readiness probe (send
``nfo-probe``, expect it back) works against it unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import cast

__all__ = ["EchoProtocol", "main", "serve"]

log = logging.getLogger("nfo.udp_echo")


class EchoProtocol(asyncio.DatagramProtocol):
    """Sends every datagram back where it came from."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (The selector loop's datagram transport does not subclass DatagramTransport.)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        # E.g. ICMP port unreachable for a reply whose sender has gone: not fatal.
        log.debug("udp-echo: %s", exc)


async def serve(host: str, port: int) -> None:
    """Echo on ``host:port`` until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    transport, _ = await loop.create_datagram_endpoint(EchoProtocol, local_addr=(host, port))
    try:
        sockname = transport.get_extra_info("sockname")
        log.info("udp-echo listening on %s:%d", sockname[0], sockname[1])
        await stop.wait()
        log.info("udp-echo stopping")
    finally:
        transport.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nfo.drivers.local.udp_echo",
                                     description="UDP echo server (an nfo demo NF).")
    parser.add_argument("--port", type=int, required=True, help="UDP port to listen on")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: loopback only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(args.host, args.port))
    except OSError as exc:
        log.error("udp-echo cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
