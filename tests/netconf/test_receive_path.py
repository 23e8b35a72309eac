"""An rpc on an idle session is answered in the receive path (issue 14, target 2).

Real asyncssh clients against the real server on 127.0.0.1.  A read arriving while
the session is idle is answered without the worker task; anything arriving while an
rpc runs waits for it in the queue.  Both paths must give the same bytes, replies
stay in the order of the rpcs (RFC 6241 section 4.1), a malformed message gets the
same rpc-error either way, and close-session ends the session only after the rpcs
before it are answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncssh
import pytest

import nfo.netconf.server as server_module
from nfo.netconf.messages import NC_NS
from nfo.netconf.server import NetconfServer
from nfo.wire.framing import Decoder, encode_chunked, encode_eom
from tests.spies import record_calls

from .test_interop import HELLO, raw_conn, read_message, server  # noqa: F401 (fixture)

INST_NS = "urn:nfo:instances"
GET = (f'<rpc message-id="7" xmlns="{NC_NS}"><get-config><source><running/></source>'
       f'<filter type="subtree"><nf-instances xmlns="{INST_NS}"><nf-instance><name>a</name>'
       "</nf-instance></nf-instances></filter></get-config></rpc>")
XPATH_GET = (f'<rpc message-id="{{}}" xmlns="{NC_NS}"><get-config><source><running/></source>'
             f'<filter type="xpath" xmlns:i="{INST_NS}" '
             "select=\"/i:nf-instances/i:nf-instance[i:descriptor = 'udp-echo']/i:name\"/>"
             "</get-config></rpc>")
LOCK = (f'<rpc message-id="{{}}" xmlns="{NC_NS}"><lock><target><candidate/></target></lock>'
        "</rpc>")
UNLOCK = (f'<rpc message-id="{{}}" xmlns="{NC_NS}"><unlock><target><candidate/></target>'
          "</unlock></rpc>")
EDIT = (f'<rpc message-id="{{}}" xmlns="{NC_NS}"><edit-config><target><running/></target>'
        f'<config><nf-instances xmlns="{INST_NS}"><nf-instance><name>{{}}</name>'
        "<descriptor>udp-echo</descriptor><parameter><name>port</name><value>7000</value>"
        "</parameter></nf-instance></nf-instances></config>"
        "</edit-config></rpc>")
CLOSE = f'<rpc message-id="{{}}" xmlns="{NC_NS}"><close-session/></rpc>'
MALFORMED = [
    b'<rpc message-id="5" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get-config>',
    b'<!DOCTYPE rpc [<!ENTITY x "y">]><rpc message-id="5"/>',
    f'<rpc xmlns="{NC_NS}"><get-config/></rpc>'.encode(),
    f'<rpc message-id="5" xmlns="{NC_NS}"><frobnicate/></rpc>'.encode(),
    f'<rpc message-id="5" xmlns="{NC_NS}"><get-config><source><running/></source>'
    f'<filter type="subtree"><top xmlns="urn:nowhere"/></filter></get-config></rpc>'.encode(),
    f'<rpc message-id="5" xmlns="{NC_NS}"><get>&bad;</get></rpc>'.encode(),
    f'<rpc message-id="5" xmlns="{NC_NS}">{"<a>" * 300}{"</a>" * 300}</rpc>'.encode(),
]


class Session:
    """One raw NETCONF 1.1 session."""

    def __init__(self, conn: asyncssh.SSHClientConnection) -> None:
        self.conn = conn
        self.dec = Decoder()
        self.w: Any = None
        self.r: Any = None

    async def open(self) -> Session:
        self.w, self.r, _ = await self.conn.open_session(subsystem="netconf", encoding=None)
        await read_message(self.r, self.dec)
        self.w.write(encode_eom(HELLO))
        self.dec.chunked = True
        return self

    def send(self, *messages: str | bytes) -> None:
        """All the messages in one write."""
        self.w.write(b"".join(encode_chunked(m if isinstance(m, bytes) else m.encode())
                              for m in messages))

    async def reply(self) -> bytes:
        return await read_message(self.r, self.dec)


@pytest.fixture
async def session(server: NetconfServer) -> AsyncIterator[Session]:  # noqa: F811
    async with await raw_conn(server) as conn:
        yield await Session(conn).open()


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The messages the worker task handled (the receive path never calls handle)."""
    return record_calls(monkeypatch, server_module, "handle", 1)


async def seed(session: Session) -> None:
    session.send(EDIT.format(1, "a"))
    assert b"<ok/>" in await session.reply()


async def test_receive_path_and_queue_give_the_same_bytes(session: Session,
                                                          queued: list[bytes]) -> None:
    await seed(session)
    session.send(GET)
    direct = await session.reply()
    assert queued == []  # answered in the receive path
    assert b"<name>a</name>" in direct
    # behind a lock (which the worker runs), the same get-config waits in the queue
    session.send(LOCK.format(2), GET, UNLOCK.format(3))
    assert b'message-id="2"' in await session.reply()
    assert await session.reply() == direct
    assert b'message-id="3"' in await session.reply()
    assert queued == [GET.encode(), UNLOCK.format(3).encode()]


@pytest.mark.parametrize("bad", MALFORMED, ids=range(len(MALFORMED)))
async def test_a_malformed_message_gets_the_same_error_either_way(
        session: Session, queued: list[bytes], bad: bytes) -> None:
    session.send(bad)
    direct = await session.reply()
    assert b"<rpc-error>" in direct
    assert queued == []
    session.send(LOCK.format(2), bad, UNLOCK.format(3))
    assert b'message-id="2"' in await session.reply()
    assert await session.reply() == direct
    assert b'message-id="3"' in await session.reply()
    assert queued == [bad, UNLOCK.format(3).encode()]


async def test_pipelined_rpcs_are_answered_in_order(session: Session) -> None:
    await seed(session)
    # reads answered at once, edits queued, a read that waits on a worker thread, a
    # refusal, all in one write: the replies come in the order of the rpcs, and each
    # read sees the edits before it
    session.send(GET.replace('"7"', '"10"'), EDIT.format(11, "b"), XPATH_GET.format(12),
                 MALFORMED[3].replace(b'"5"', b'"13"'), EDIT.format(14, "c"),
                 XPATH_GET.format(15), GET.replace('"7"', '"16"'))
    replies = [await session.reply() for _ in range(7)]
    ids = [r.split(b'message-id="')[1].split(b'"')[0] for r in replies]
    assert ids == [b"10", b"11", b"12", b"13", b"14", b"15", b"16"]
    assert b"<name>b</name>" in replies[2] and b"<name>c</name>" not in replies[2]
    assert b"<name>c</name>" in replies[5]
    assert b"<rpc-error>" in replies[3]


async def test_close_session_while_a_read_runs(session: Session, queued: list[bytes]) -> None:
    await seed(session)
    # the xpath read goes to a worker thread; close-session waits for it, and what
    # follows the close is never answered
    session.send(XPATH_GET.format(20), CLOSE.format(21), GET)
    first = await session.reply()
    assert b'message-id="20"' in first and b"<name>a</name>" in first
    closing = await session.reply()
    assert b'message-id="21"' in closing and b"<ok/>" in closing
    with pytest.raises(EOFError):
        await session.reply()
    assert queued == [CLOSE.format(21).encode()]  # the read was started on receipt


async def test_close_session_on_an_idle_session(session: Session) -> None:
    session.send(CLOSE.format(30), GET)
    assert b"<ok/>" in await session.reply()
    with pytest.raises(EOFError):
        await session.reply()
    await asyncio.sleep(0)
