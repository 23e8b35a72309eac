"""Hostile input over real sockets: the server answers or closes cleanly, stores
nothing half-done, and keeps serving everyone else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from nfo.datastore import Datastore
from nfo.netconf.messages import NC_NS
from nfo.netconf.server import NetconfServer, start_netconf
from nfo.wire.framing import Decoder, encode_chunked, encode_eom
from tests.access import admins

from .test_interop import CATALOG, HELLO, PASSWORD, closed, nc, raw_conn, read_message

CAP = 64 * 1024


@pytest.fixture
async def small(ds: Datastore, tmp_path: Path) -> AsyncIterator[NetconfServer]:
    """A server with a 64 KiB message cap and a half-second login timeout."""
    users = await admins(ds, ("alice", PASSWORD))
    async with ds.internal_session("seed") as s:
        await s.edit("running", CATALOG, "json")
    srv = await start_netconf(ds, users, "127.0.0.1", 0, tmp_path / "keys", max_message=CAP,
                              login_timeout=0.5)
    try:
        yield srv
    finally:
        await srv.stop()


async def open_netconf(srv: NetconfServer) -> tuple[
        asyncssh.SSHClientConnection, asyncssh.SSHWriter[bytes], asyncssh.SSHReader[bytes],
        Decoder]:
    conn = await raw_conn(srv)
    w, r, _ = await conn.open_session(subsystem="netconf", encoding=None)
    dec = Decoder()
    await read_message(r, dec)
    w.write(encode_eom(HELLO))
    dec.chunked = True
    return conn, w, r, dec


def revision(srv: NetconfServer) -> int:
    return srv.ds.info("running").revision


async def test_oversize_message_ends_only_that_session(small: NetconfServer) -> None:
    before = revision(small)
    conn, w, r, dec = await open_netconf(small)
    try:
        body = ("<x>" + "a" * (2 * CAP) + "</x>").encode()
        w.write(encode_chunked(
            f'<rpc message-id="1" xmlns="{NC_NS}"><edit-config><target><running/></target>'
            f"<config>".encode() + body + b"</config></edit-config></rpc>"))
        reply = await read_message(r, dec)
        assert b'message-id="1"' in reply and b"<error-tag>too-big</error-tag>" in reply
        assert await asyncio.wait_for(r.read(), 10) == b""
    finally:
        conn.close()
    assert revision(small) == before
    m = await nc(small)  # the server goes on serving
    try:
        assert (await asyncio.to_thread(m.get_config, source="running")).ok
    finally:
        await closed(m)


@pytest.mark.parametrize("junk", [
    b"<rpc message-id='1' xmlns='" + NC_NS.encode() + b"'><get-config>",  # unclosed
    b"\xff\xfe not xml at all",
    b"<rpc xmlns='urn:example:wrong'><get/></rpc>",
    b"<rpc message-id='2' xmlns='" + NC_NS.encode() + b"'><frobnicate/></rpc>",
])
async def test_malformed_rpc_answered_and_session_goes_on(small: NetconfServer,
                                                          junk: bytes) -> None:
    conn, w, r, dec = await open_netconf(small)
    try:
        w.write(encode_chunked(junk))
        reply = await read_message(r, dec)
        assert b"<rpc-error>" in reply and b"<error-tag>" in reply
        w.write(encode_chunked(
            f'<rpc message-id="9" xmlns="{NC_NS}"><get-config><source><running/></source>'
            "</get-config></rpc>".encode()))
        reply = await read_message(r, dec)
        assert b'message-id="9"' in reply and b"<data" in reply
    finally:
        conn.close()


async def test_bad_chunk_header_closes_the_session(small: NetconfServer) -> None:
    conn, w, r, _ = await open_netconf(small)
    try:
        w.write(b"\n#abc\n<rpc/>")
        assert await asyncio.wait_for(r.read(), 10) == b""
    finally:
        conn.close()


async def test_unauthenticated_connection_is_dropped_after_login_timeout(
        small: NetconfServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", small.port)
    try:
        banner = await asyncio.wait_for(reader.readline(), 10)
        assert banner.startswith(b"SSH-2.0-")
        # nothing more is sent: the server hangs up by itself
        while await asyncio.wait_for(reader.read(65536), 15):
            pass
    finally:
        writer.close()
        await writer.wait_closed()
