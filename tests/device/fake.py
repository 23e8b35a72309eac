"""A scripted NETCONF device at the wire: an asyncssh server on 127.0.0.1 whose replies a
test decides, for what the real netconfd will not do on demand (stay silent, send too much,
break the framing, speak base:1.0 only)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncssh

from nfo.device import Endpoint
from nfo.wire import framing

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
BASE_1_0 = "urn:ietf:params:netconf:base:1.0"
BASE_1_1 = "urn:ietf:params:netconf:base:1.1"
PASSWORD = "fake-device-password"

Answer = Callable[[bytes], bytes | list[bytes] | None]
"""Given one request, the messages to send (each framed by the fake), or None for none."""


def hello(*caps: str, session_id: str = "7") -> bytes:
    items = "".join(f"<capability>{c}</capability>" for c in caps)
    return (f'<hello xmlns="{NC}"><capabilities>{items}</capabilities>'
            f"<session-id>{session_id}</session-id></hello>").encode()


def message_id(request: bytes) -> str:
    m = re.search(rb'message-id="([^"]*)"', request)
    return m.group(1).decode() if m else ""


def ok(request: bytes) -> bytes:
    return f'<rpc-reply xmlns="{NC}" message-id="{message_id(request)}"><ok/></rpc-reply>'.encode()


@dataclass
class FakeDevice:
    answer: Answer = ok
    greeting: bytes = field(default_factory=lambda: hello(BASE_1_0, BASE_1_1))
    requests: list[bytes] = field(default_factory=list)
    chunked: bool | None = None
    """Whether the client's requests came chunked (None: no request yet)."""
    raw: bytes | None = None
    """Sent instead of a framed hello when set (a broken device)."""

    async def _serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        if process.subsystem != "netconf":
            process.exit(1)
            return
        process.stdout.write(self.raw if self.raw is not None
                             else framing.encode_eom(self.greeting))
        decoder = framing.Decoder()
        theirs: bytes | None = None
        while True:
            data = await process.stdin.read(65536)
            if not data:
                break
            decoder.feed(data)
            while (msg := decoder.next()) is not None:
                if theirs is None:
                    theirs = msg
                    decoder.chunked = (BASE_1_1.encode() in msg
                                       and BASE_1_1.encode() in self.greeting)
                    continue
                self.chunked = decoder.chunked
                self.requests.append(msg)
                reply = self.answer(msg)
                for out in [reply] if isinstance(reply, bytes) else reply or []:
                    process.stdout.write(framing.encode(out, decoder.chunked))
        process.exit(0)


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return password == PASSWORD


@asynccontextmanager
async def fake_device(fake: FakeDevice) -> AsyncIterator[Endpoint]:
    """Serve ``fake``; yields the endpoint that reaches it (password login)."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        _Server, "127.0.0.1", 0, server_host_keys=[key], process_factory=fake._serve,
        encoding=None)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Endpoint("127.0.0.1", port, "admin", password=PASSWORD, rpc_timeout=2.0,
                       connect_timeout=5.0)
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)
