"""Regression tests for what an outside probe found over NETCONF (issue 12, findings
1, 6 and 7), over real SSH sessions: each hostile message gets an rpc-error, nothing is
stored, nothing is logged at ERROR, and the session goes on."""

from __future__ import annotations

import codecs
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from nfo.datastore import Datastore
from nfo.netconf.filters import MAX_FILTER
from nfo.netconf.messages import NC_NS
from nfo.netconf.server import NetconfServer, start_netconf
from nfo.wire.framing import Decoder, encode_chunked
from nfo.wire.xml import MAX_NAMESPACES
from tests.access import admins

from .test_hostile import open_netconf, revision
from .test_interop import CATALOG, PASSWORD, read_message

INST = "urn:nfo:instances"


@pytest.fixture
async def server(ds: Datastore, tmp_path: Path) -> AsyncIterator[NetconfServer]:
    users = await admins(ds, ("alice", PASSWORD))
    async with ds.internal_session("seed") as s:
        await s.edit("running", CATALOG, "json")
    srv = await start_netconf(ds, users, "127.0.0.1", 0, tmp_path / "keys")
    try:
        yield srv
    finally:
        await srv.stop()


Session = tuple[asyncssh.SSHClientConnection, asyncssh.SSHWriter[bytes],
                asyncssh.SSHReader[bytes], Decoder]


@pytest.fixture
async def session(server: NetconfServer) -> AsyncIterator[Session]:
    s = await open_netconf(server)
    try:
        yield s
    finally:
        s[0].close()


async def rpc(s: Session, body: bytes) -> bytes:
    _, w, r, dec = s
    w.write(encode_chunked(body))
    return await read_message(r, dec)


async def still_serving(s: Session) -> None:
    reply = await rpc(s, f'<rpc message-id="99" xmlns="{NC_NS}"><get-config><source><running/>'
                         "</source></get-config></rpc>".encode())
    assert b'message-id="99"' in reply and b"udp-echo" in reply


def edit(config: bytes, ns_decls: bytes = b"") -> bytes:
    return (f'<rpc message-id="1" xmlns="{NC_NS}"><edit-config><target><running/></target>'
            f"<config>".encode() + b'<nf-instances xmlns="' + INST.encode() + b'" ' + ns_decls
            + b">" + config + b"</nf-instances></config></edit-config></rpc>")


def entry(name: str, description: str = "d") -> bytes:
    return (f"<nf-instance><name>{name}</name><descriptor>udp-echo</descriptor>"
            f"<description>{description}</description><parameter><name>port</name>"
            "<value>7000</value></parameter></nf-instance>").encode()


async def test_namespace_floods_are_refused_before_libyang(
        server: NetconfServer, session: Session, caplog: pytest.LogCaptureFixture) -> None:
    before = revision(server)
    wide = b" ".join(b'xmlns:p%d="urn:x%d"' % (i, i) for i in range(100_000))
    reply = await rpc(session, edit(entry("a"), wide))
    assert b"<error-tag>malformed-message</error-tag>" in reply
    assert b"namespace declarations in scope" in reply
    deep = b"".join(b'<a xmlns:p%d="urn:x" xmlns:q%d="urn:y">' % (i, i) for i in range(150))
    reply = await rpc(session, edit(entry("a") + deep + b"</a>" * 150))
    assert b"<error-tag>malformed-message</error-tag>" in reply
    assert b"namespace declarations in scope" in reply
    # just under the limit the edit goes through
    ok = b" ".join(b'xmlns:p%d="urn:x%d"' % (i, i) for i in range(MAX_NAMESPACES - 10))
    reply = await rpc(session, edit(entry("b"), ok))
    assert b"<ok/>" in reply
    assert revision(server) == before + 1
    await still_serving(session)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_utf16_message_with_an_entity_is_refused_and_nothing_is_stored(
        server: NetconfServer, session: Session) -> None:
    before = revision(server)
    doc = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE rpc [<!ENTITY x "expanded">]>'
           + edit(entry("evil", "&x;")).decode())
    for data in (codecs.BOM_UTF16_LE + doc.encode("utf-16-le"), doc.encode("utf-16-be")):
        reply = await rpc(session, data)
        assert b"<error-tag>malformed-message</error-tag>" in reply
        assert b"must be UTF-8" in reply
    assert revision(server) == before
    assert server.ds.tree("running").node(
        "/nfo-instances:nf-instances/nf-instance[name='evil']") is None
    await still_serving(session)


async def test_a_deep_subtree_filter_is_refused_without_a_traceback(
        session: Session, caplog: pytest.LogCaptureFixture) -> None:
    n = 100_000
    flt = b'<nf-instances xmlns="' + INST.encode() + b'">' + b"<a>" * n + b"</a>" * n
    reply = await rpc(session, f'<rpc message-id="1" xmlns="{NC_NS}"><get-config><source>'
                               '<running/></source><filter type="subtree">'.encode()
                      + flt + b"</nf-instances></filter></get-config></rpc>")
    assert b"<error-tag>malformed-message</error-tag>" in reply
    assert b"nested deeper than" in reply
    await still_serving(session)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "RecursionError" not in caplog.text


async def test_a_huge_filter_is_too_big(session: Session) -> None:
    names = b"".join(b"<nf-instance><name>i%d</name></nf-instance>" % i
                     for i in range(MAX_FILTER // 40))
    reply = await rpc(session, f'<rpc message-id="1" xmlns="{NC_NS}"><get-config><source>'
                               '<running/></source><filter type="subtree">'
                               f'<nf-instances xmlns="{INST}">'.encode()
                      + names + b"</nf-instances></filter></get-config></rpc>")
    assert b"<error-tag>too-big</error-tag>" in reply and b"split it" in reply
    select = "/i:nf-instances/i:nf-instance[i:name='x']" + " | /i:nf-instances" * MAX_FILTER
    reply = await rpc(session, f'<rpc message-id="2" xmlns="{NC_NS}"><get-config><source>'
                               f'<running/></source><filter type="xpath" xmlns:i="{INST}" '
                               f'select="{select}"/></get-config></rpc>'.encode())
    assert b"<error-tag>too-big</error-tag>" in reply
    await still_serving(session)
