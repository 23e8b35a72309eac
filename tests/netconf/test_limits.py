"""NETCONF's connection, session and message limits (docs/limits.md) on the real server
(``start_netconf``: nfo's accept loop, asyncssh, the user store) over real sockets on
127.0.0.1, with the limits and timeouts lowered; ncclient and asyncssh as clients.

Connections that never log in cannot lock out a login and are closed by the login
grace timeout; sessions beyond the caps are refused with a message naming the limit; a
message that never ends is answered with an rpc-error at the size cap or after the
message timeout, and its session's buffers are dropped.  Durations are never
asserted: timeouts are failure guards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncssh
import paramiko
import pytest

from nfo.datastore import Datastore
from nfo.netconf.connections import REFUSED
from nfo.netconf.messages import NC_NS
from nfo.netconf.server import NetconfServer, start_netconf
from nfo.protocol.limits import Reclaimer
from nfo.wire.framing import Decoder, encode_chunked, encode_eom
from tests.access import admins
from tests.waiting import wait_for

from .test_interop import HELLO, PASSWORD, closed, connect, raw_conn, read_message

GUARD = 20.0
"""Seconds before a test gives up waiting (a failure guard, never a measured duration)."""
GET = (f'<rpc message-id="{{}}" xmlns="{NC_NS}"><get-config><source><running/></source>'
       "</get-config></rpc>")
HELLO_1_0 = (f'<hello xmlns="{NC_NS}"><capabilities><capability>'
             "urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>").encode()

Start = Callable[..., Awaitable[NetconfServer]]


@pytest.fixture
async def start(ds: Datastore, tmp_path: Path) -> AsyncIterator[Start]:
    users = await admins(ds, ("alice", PASSWORD), ("bob", PASSWORD))
    started: list[NetconfServer] = []

    async def go(**kw: Any) -> NetconfServer:
        srv = await start_netconf(ds, users, "127.0.0.1", 0, tmp_path / "keys", **kw)
        started.append(srv)
        return srv

    try:
        yield go
    finally:
        for srv in started:
            await srv.stop()
            srv.reclaimer.close()


async def tcp(port: int, first: bytes = b"") -> tuple[asyncio.StreamReader,
                                                       asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if first:
        writer.write(first)
        await writer.drain()
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection."""
    got = b""
    with contextlib.suppress(ConnectionResetError):
        while data := await asyncio.wait_for(reader.read(65536), GUARD):
            got += data
    return got


async def hang_up(writers: list[asyncio.StreamWriter]) -> None:
    for w in writers:
        w.close()
        with contextlib.suppress(ConnectionError):
            await w.wait_closed()


async def get_config(srv: NetconfServer, user: str = "alice") -> bool:
    m = await asyncio.to_thread(connect, srv, user)
    try:
        return bool((await asyncio.to_thread(m.get_config, source="running")).ok)
    finally:
        await closed(m)


async def test_silent_connections_beyond_the_cap_do_not_lock_out_a_login(
        start: Start) -> None:
    srv = await start(max_startups=4, login_timeout=60.0)
    assert srv.table is not None
    silent = [await tcp(srv.port) for _ in range(20)]
    try:
        await wait_for(lambda: srv.table is not None and srv.table.connections == 4, GUARD,
                       "the pending connections to hold their limit of 4")
        assert await get_config(srv)
        assert srv.table.pending <= 4
        # those that made room were closed, having sent nothing
        for reader, _ in silent[:-4]:
            assert (await closed_by_server(reader)).startswith(b"SSH-2.0-")
    finally:
        await hang_up([w for _, w in silent])


async def test_login_grace_closes_connections_that_never_open_a_session(
        start: Start) -> None:
    srv = await start(login_timeout=0.3)
    silent_r, silent_w = await tcp(srv.port)
    banner_r, banner_w = await tcp(srv.port, b"SSH-2.0-stalled\r\n")
    # logged in, but never asks for a session
    async with await raw_conn(srv) as conn:
        assert await closed_by_server(silent_r)
        assert await closed_by_server(banner_r)
        await asyncio.wait_for(conn.wait_closed(), GUARD)
    await hang_up([silent_w, banner_w])
    assert srv.table is not None
    await wait_for(lambda: srv.table is not None and srv.table.connections == 0, GUARD,
                   "the table to empty")
    assert await get_config(srv)


async def test_a_full_house_of_logins_refuses_new_connections(start: Start) -> None:
    srv = await start(max_startups=2, login_timeout=60.0)
    talking = [await tcp(srv.port, b"SSH-2.0-slow\r\n") for _ in range(2)]
    try:
        await wait_for(lambda: srv.table is not None and srv.table.pending == 2, GUARD,
                       "two pending connections")
        await asyncio.sleep(0.1)  # their banners reached the server
        reader, writer = await tcp(srv.port)
        assert await closed_by_server(reader) == REFUSED
        await hang_up([writer])
    finally:
        await hang_up([w for _, w in talking])
    await wait_for(lambda: srv.table is not None and srv.table.pending == 0, GUARD,
                   "the pending connections to go")
    assert await get_config(srv)


async def test_sessions_are_capped_per_user_and_in_all(
        start: Start, caplog: pytest.LogCaptureFixture) -> None:
    srv = await start(max_sessions_per_user=2, max_sessions=3)
    alice = [await asyncio.to_thread(connect, srv, "alice") for _ in range(2)]
    bob = None
    try:
        # paramiko raises SSH's reason code and logs the server's message
        with pytest.raises(paramiko.ChannelException) as shortage:
            await asyncio.to_thread(connect, srv, "alice")
        assert shortage.value.code == asyncssh.OPEN_RESOURCE_SHORTAGE
        assert "too many NETCONF sessions for user 'alice': at most 2" in caplog.text
        bob = await asyncio.to_thread(connect, srv, "bob")
        async with await raw_conn(srv, username="bob") as conn:
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.open_session(subsystem="netconf", encoding=None)
            assert refused.value.code == asyncssh.OPEN_RESOURCE_SHORTAGE
            assert "the server allows 3" in refused.value.reason
        await closed(alice.pop())
        await wait_for(lambda: srv.table is not None and srv.table.sessions == 2, GUARD,
                       "alice's session to end")
        alice.append(await asyncio.to_thread(connect, srv, "alice"))
        assert (await asyncio.to_thread(alice[-1].get_config, source="running")).ok
    finally:
        for m in alice + ([bob] if bob else []):
            await closed(m)
    await wait_for(lambda: srv.table is not None and srv.table.sessions == 0, GUARD,
                   "every session to end")


async def open_session(srv: NetconfServer, hello: bytes = HELLO
                       ) -> tuple[asyncssh.SSHClientConnection, asyncssh.SSHWriter[bytes],
                                  asyncssh.SSHReader[bytes], Decoder]:
    conn = await raw_conn(srv)
    w, r, _ = await conn.open_session(subsystem="netconf", encoding=None)
    dec = Decoder()
    await read_message(r, dec)
    w.write(encode_eom(hello))
    dec.chunked = hello is HELLO
    return conn, w, r, dec


@pytest.mark.parametrize("hello", [HELLO, HELLO_1_0], ids=["base-1.1", "base-1.0"])
async def test_never_ending_message_is_cut_at_the_size_cap(start: Start,
                                                           hello: bytes) -> None:
    cap = 256 * 1024
    reclaimer = Reclaimer(threshold=cap // 4, every=0.05)
    srv = await start(max_message=cap, reclaimer=reclaimer)
    conn, w, r, dec = await open_session(srv, hello)
    try:
        head = f'<rpc message-id="42" xmlns="{NC_NS}"><get-config><filter>'.encode()
        chunk = b"<a/>" * 16384

        def frame(data: bytes) -> bytes:  # a chunk, never the end of the chunks
            return b"\n#%d\n" % len(data) + data if hello is HELLO else data
        with contextlib.suppress(ConnectionError, asyncssh.Error):
            w.write(frame(head))
            for _ in range(2 * cap // len(chunk)):  # never ended, twice the cap
                w.write(frame(chunk))
                await w.drain()
        reply = await read_message(r, dec)
        assert b'message-id="42"' in reply and b"<error-tag>too-big</error-tag>" in reply
        assert f"limit of {cap} bytes".encode() in reply
        assert await asyncio.wait_for(r.read(), GUARD) == b""
    finally:
        conn.close()
    await wait_for(lambda: not srv._channels and srv.table is not None
                   and srv.table.sessions == 0, GUARD, "the session to end")
    await wait_for(lambda: reclaimer.runs >= 1, GUARD, "its memory to be handed back")
    assert await get_config(srv)


async def test_unfinished_message_times_out_but_a_busy_session_does_not(
        start: Start) -> None:
    srv = await start(message_timeout=0.4)
    conn, w, r, dec = await open_session(srv)
    try:
        # complete messages for longer than the timeout, each sent in two halves
        for i in range(12):
            rpc = encode_chunked(GET.format(i).encode())
            w.write(rpc[:20])
            await asyncio.sleep(0.05)
            w.write(rpc[20:])
            assert f'message-id="{i}"'.encode() in await read_message(r, dec)
        w.write(b'\n#30\n<rpc message-id="99" xmlns="u')
        reply = await read_message(r, dec)
        assert b'message-id="99"' in reply
        assert b"<error-tag>resource-denied</error-tag>" in reply
        assert b"not finished within 0.4 s" in reply
        assert await asyncio.wait_for(r.read(), GUARD) == b""
    finally:
        conn.close()
