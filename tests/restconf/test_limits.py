"""RESTCONF's connection limits (docs/limits.md) on the real server (``start_server``:
the composed app, Basic authentication, nfo's own accept loop) over real sockets on
127.0.0.1, with the limits and timeouts lowered.

Idle, silent and partial-header connections beyond the cap never lock out an
authenticated client and are closed by the header or keep-alive timeout; when every
connection has a request in progress a new one is answered 503 with Retry-After
through the one error table.  Durations are never asserted: timeouts are failure guards.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from nfo.datastore import Datastore
from nfo.protocol.corked import Corked
from nfo.protocol.limits import Reclaimer
from nfo.restconf.connections import HTTP_PROTOCOLS, MAX_HEAD
from nfo.restconf.security import dev_certificate
from nfo.restconf.server import ConnectionLimits, RestconfOptions, RunningServer, start_server
from tests.access import admins
from tests.waiting import wait_for

AUTH = ("alice", "limits-test-password")
JSON = "application/yang-data+json"
CATALOG = "/restconf/data/nfo-users:users"
GUARD = 20.0
"""Seconds before a test gives up waiting (a failure guard, never a measured duration)."""

Start = Callable[..., Awaitable[RunningServer]]


@pytest.fixture(params=sorted(HTTP_PROTOCOLS))
async def start(ds: Datastore, tmp_path: Path,
                request: pytest.FixtureRequest) -> AsyncIterator[Start]:
    """The server on each HTTP/1.1 implementation it can serve with."""
    users = await admins(ds, AUTH)
    started: list[RunningServer] = []

    async def go(reclaimer: Reclaimer | None = None, dev_cert: bool = False,
                 **limits: float) -> RunningServer:
        opts = RestconfOptions(port=0, dev_cert=dev_cert, http=request.param,
                               limits=ConnectionLimits(**limits))  # type: ignore[arg-type]
        srv = await start_server(ds, users, opts, tmp_path / "state", reclaimer=reclaimer)
        started.append(srv)
        return srv

    try:
        yield go
    finally:
        for srv in started:
            await srv.stop()


class Raw:
    """A raw TCP connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, first: bytes = b"") -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if first:
            writer.write(first)
            await writer.drain()
        return cls(reader, writer)

    async def closed_by_server(self) -> bool:
        """Reads until the server closes the connection (what it sent is dropped)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), GUARD):
                pass
        except ConnectionResetError:
            pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def close_all(conns: list[Raw]) -> None:
    for c in conns:
        await c.close()


def client(srv: RunningServer, **kw: object) -> httpx.AsyncClient:
    scheme = kw.pop("scheme", "http")
    return httpx.AsyncClient(base_url=f"{scheme}://127.0.0.1:{srv.port}", auth=AUTH,
                             timeout=GUARD, headers={"Accept": JSON}, **kw)  # type: ignore[arg-type]


PARTIAL = b"GET /restconf/data HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


async def test_idle_and_partial_connections_beyond_the_cap_do_not_lock_out_a_client(
        start: Start) -> None:
    srv = await start(max_connections=4, header_timeout=60.0)
    idle = [await Raw.open(srv.port) for _ in range(10)]
    partial = [await Raw.open(srv.port, PARTIAL) for _ in range(10)]
    try:
        await wait_for(lambda: srv.connections.refusing == 0 and len(srv.connections) == 4,
                       GUARD, "the table to hold its limit of 4")
        for _ in range(3):
            async with client(srv) as c:
                r = await c.get(CATALOG)
                assert r.status_code == 200, r.text
            assert len(srv.connections) <= 4
        # the connections that made room were closed, not left half-open
        assert all([await c.closed_by_server() for c in idle + partial[:-3]])
    finally:
        await close_all(idle + partial)


async def test_header_timeout_closes_silent_and_partial_connections(start: Start) -> None:
    srv = await start(max_connections=16, header_timeout=0.3)
    silent = await Raw.open(srv.port)
    partial = await Raw.open(srv.port, PARTIAL)
    trickle = await Raw.open(srv.port, b"G")
    try:
        async def drip() -> None:
            # a byte at a time: a request head that never ends is not kept alive by it
            with contextlib.suppress(ConnectionError):
                for b in b"ET /restconf HTTP/1.1\r\nX: " + b"y" * 10_000:
                    trickle.writer.write(bytes([b]))
                    await trickle.writer.drain()
                    await asyncio.sleep(0.02)
        dripping = asyncio.get_running_loop().create_task(drip())
        try:
            assert await silent.closed_by_server()
            assert await partial.closed_by_server()
            assert await trickle.closed_by_server()
        finally:
            dripping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dripping
        await wait_for(lambda: len(srv.connections) == 0, GUARD, "the table to empty")
        async with client(srv) as c:  # a whole request in time is served
            assert (await c.get(CATALOG)).status_code == 200
    finally:
        await close_all([silent, partial, trickle])


async def test_idle_keepalive_connection_is_closed(start: Start) -> None:
    srv = await start(keepalive_timeout=0.3, header_timeout=60.0)
    conn = await Raw.open(srv.port)
    try:
        conn.writer.write(b"GET /restconf HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Authorization: Basic YWxpY2U6bGltaXRzLXRlc3QtcGFzc3dvcmQ=\r\n\r\n")
        head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), GUARD)
        assert head.startswith(b"HTTP/1.1 200")
        assert await conn.closed_by_server()
    finally:
        await conn.close()


async def test_all_connections_busy_answers_503_with_retry_after(start: Start) -> None:
    srv = await start(max_connections=2, header_timeout=60.0, retry_after=7)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client(srv)) for _ in range(3)]
        streams = []
        for c in clients[:2]:
            r = await stack.enter_async_context(c.stream("GET", "/restconf/streams/NETCONF/json"))
            assert r.status_code == 200
            streams.append(r)
        for accept in (JSON, "application/yang-data+xml"):
            r = await clients[2].get(CATALOG, headers={"Accept": accept})
            assert r.status_code == 503
            assert r.headers["retry-after"] == "7"
            assert r.headers["content-type"].startswith(accept)
            if accept == JSON:
                err = r.json()["ietf-restconf:errors"]["error"][0]
                assert err["error-tag"] == "resource-denied"
                assert "limit of 2 connections" in err["error-message"]
            else:
                assert "<error-tag>resource-denied</error-tag>" in r.text
        await streams[0].aclose()
        await wait_for(lambda: len(srv.connections) < 2 or any(
            c.waiting for c in srv.connections._live), GUARD, "a stream to end")
        r = await clients[2].get(CATALOG)
        assert r.status_code == 200
    assert srv.connections.refusing == 0


async def test_tls_handshake_is_timed_and_makes_room(start: Start, tmp_path: Path) -> None:
    srv = await start(dev_cert=True, max_connections=2, header_timeout=0.5)
    cert, _ = dev_certificate(tmp_path / "state")
    trust = ssl.create_default_context(cafile=str(cert))
    stalled = [await Raw.open(srv.port) for _ in range(4)]  # never say ClientHello
    try:
        async with client(srv, scheme="https", verify=trust) as c:
            assert (await c.get(CATALOG)).status_code == 200
        assert all([await s.closed_by_server() for s in stalled])
        await wait_for(lambda: len(srv.connections) == 0, GUARD, "the table to empty")
    finally:
        await close_all(stalled)


async def test_large_request_or_reply_hands_memory_back(start: Start) -> None:
    reclaimer = Reclaimer(threshold=16 * 1024, every=0.05)
    srv = await start(reclaimer=reclaimer)
    async with client(srv) as c:
        r = await c.put("/restconf/data", content=b"<data xmlns='urn:ietf:params:xml:ns:"
                        b"yang:ietf-restconf'>" + b"<a/>" * 100_000 + b"</data>",
                        headers={"Content-Type": "application/yang-data+xml"})
        assert r.status_code == 400
        await wait_for(lambda: reclaimer.runs >= 1, GUARD, "a garbage collection and trim")
        runs = reclaimer.runs
        assert (await c.get(CATALOG)).status_code == 200  # small both ways: none
        await asyncio.sleep(0.2)
        assert reclaimer.runs == runs
        r = await c.get("/restconf/modules/ietf-netconf")  # a small request, a large reply
        assert r.status_code == 200 and len(r.content) > 16 * 1024
        await wait_for(lambda: reclaimer.runs > runs, GUARD, "a garbage collection and trim")
    reclaimer.close()


@pytest.mark.parametrize("body", [False, True])
async def test_a_whole_oversized_head_in_one_chunk_is_refused(start: Start, body: bool) -> None:
    """A complete head beyond MAX_HEAD, sent in one write (with a body after it, or not),
    is answered 431 and nothing of the request is served; a head just within it is."""
    srv = await start()

    def request(pad: int) -> bytes:
        return (b"GET /restconf/yang-library-version HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + b"".join(b"X-Pad-%05d: " % i + b"p" * 50 + b"\r\n" for i in range(pad))
                + (b"Content-Length: 20000\r\n\r\n" + b"b" * 20000 if body else b"\r\n"))

    raw = await Raw.open(srv.port, request(2 * MAX_HEAD // 64))
    answer = b""
    with contextlib.suppress(ConnectionError):
        answer = await asyncio.wait_for(raw.reader.read(65536), GUARD)
    assert answer.split(b" ")[1] in (b"400", b"431"), answer[:80]  # h11: 400 (docs/limits.md)
    assert answer.count(b"HTTP/1.1 ") == 1 and b"yang-library-version" not in answer
    assert await raw.closed_by_server()
    await raw.close()
    raw = await Raw.open(srv.port, request(MAX_HEAD // 64 - 8))
    answer = await asyncio.wait_for(raw.reader.readuntil(b"\r\n"), GUARD)
    assert answer.split(b" ")[1] in (b"200", b"401"), answer
    await raw.close()


async def test_an_endless_request_head_is_refused_and_closed(start: Start) -> None:
    """A head that never ends (header after header, each in time) is cut at MAX_HEAD
    bytes with a 4xx answer, and the server goes on serving."""
    srv = await start()
    raw = await Raw.open(srv.port, b"GET /restconf/data HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    answer = b""
    try:
        for i in range(2 * MAX_HEAD // 64):
            raw.writer.write(b"X-Pad-%05d: " % i + b"p" * 50 + b"\r\n")
            await raw.writer.drain()
    except ConnectionError:
        pass
    with contextlib.suppress(ConnectionError):
        answer = await asyncio.wait_for(raw.reader.read(65536), GUARD)
    assert answer.split(b" ")[1] in (b"400", b"431"), answer[:80]
    assert await raw.closed_by_server()
    await raw.close()
    async with client(srv) as c:
        assert (await c.get("/restconf/yang-library-version")).status_code == 200


async def test_a_large_body_and_the_next_head_in_one_write_are_not_a_large_head(
        start: Start) -> None:
    """Bytes of a request's body that arrive with the start of the next request's head
    are not counted as head (pipelining)."""
    srv = await start()
    body = b"{" + b" " * (3 * MAX_HEAD) + b"}"
    auth = base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode())
    first = (b"POST /restconf/operations/no-such:op HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Authorization: Basic " + auth + b"\r\n"
             b"Content-Type: application/yang-data+json\r\n"
             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    second = b"GET /restconf/yang-library-version HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    raw = await Raw.open(srv.port, first + second)
    await asyncio.sleep(0.2)
    raw.writer.write(b"Authorization: Basic " + auth + b"\r\n\r\n")
    await raw.writer.drain()
    answers = b""
    with contextlib.suppress(TimeoutError):
        while answers.count(b"HTTP/1.1 ") < 2:
            chunk = await asyncio.wait_for(raw.reader.read(65536), GUARD)
            if not chunk:
                break
            answers += chunk
    await raw.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answers)
    assert statuses == [b"400", b"200"], answers[:300]  # the unknown operation, then the GET


async def test_a_response_leaves_in_one_write_and_a_stream_head_at_once(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """A response head is held until its body follows (one write, one TCP segment);
    alone (an event stream's), it leaves on the event loop's next turn."""
    writes: list[bytes] = []
    corked_init = Corked.__init__

    class Spy:
        def __init__(self, transport: asyncio.Transport) -> None:
            self.transport = transport

        def write(self, data: bytes) -> None:
            writes.append(data)
            self.transport.write(data)

        def __getattr__(self, name: str) -> object:
            return getattr(self.transport, name)

    def spying(self: Corked, transport: asyncio.Transport,
               loop: asyncio.AbstractEventLoop) -> None:
        corked_init(self, Spy(transport), loop)  # type: ignore[arg-type]

    monkeypatch.setattr(Corked, "__init__", spying)
    srv = await start()
    auth = base64.b64encode(":".join(AUTH).encode())
    conn = await Raw.open(srv.port, b"GET " + CATALOG.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: Basic " + auth + b"\r\n\r\n")
    head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), GUARD)
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    body = await asyncio.wait_for(conn.reader.readexactly(length), GUARD)
    assert head.startswith(b"HTTP/1.1 200")
    assert writes == [head + body]
    writes.clear()
    conn.writer.write(b"GET /restconf/streams/NETCONF/json HTTP/1.1\r\nHost: x\r\n"
                      b"Authorization: Basic " + auth + b"\r\n\r\n")
    head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), GUARD)
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
    assert writes == [head]
    await conn.close()
