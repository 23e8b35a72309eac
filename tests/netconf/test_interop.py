"""Real clients against a real asyncssh NETCONF server on 127.0.0.1.

ncclient (paramiko) runs in threads (``asyncio.to_thread``) so the server's
event loop keeps running; asyncssh is used as a raw client for the SSH-level
checks (hello timeout, refused shell, public keys)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.transport import errors as nc_errors
from ncclient.transport import session as nc_session
from ncclient.transport.session import NetconfBase

from nfo.datastore import Datastore
from nfo.netconf.messages import BASE_1_1, NC_NS
from nfo.netconf.server import NetconfServer, start_netconf
from nfo.wire.framing import Decoder, encode_chunked, encode_eom
from tests.access import admins

nc_session.TICK = 0.001

PASSWORD = "correct horse battery staple"
CATALOG = (Path(__file__).parents[2] / "yang" / "nfo-demo-catalog.json").read_text()
INST_NS = "urn:nfo:instances"


def instance(name: str, port: str = "7000") -> str:
    return (f'<config xmlns="{NC_NS}"><nf-instances xmlns="{INST_NS}"><nf-instance>'
            f"<name>{name}</name><descriptor>udp-echo</descriptor>"
            f"<parameter><name>port</name><value>{port}</value></parameter>"
            "</nf-instance></nf-instances></config>")


@pytest.fixture
async def server(ds: Datastore, tmp_path: Path) -> AsyncIterator[NetconfServer]:
    users = await admins(ds, ("alice", PASSWORD), ("bob", PASSWORD))
    s = ds.internal_session("seed")
    await s.edit("running", CATALOG, "json")
    await s.close()
    srv = await start_netconf(ds, users, "127.0.0.1", 0, tmp_path / "keys", hello_timeout=0.5)
    try:
        yield srv
    finally:
        await srv.stop()


def instance_names(data: Any) -> list[str]:
    return [str(e.findtext(f"{{{INST_NS}}}name"))
            for e in data.iter(f"{{{INST_NS}}}nf-instance")]


def connect(srv: NetconfServer, user: str = "alice", password: str = PASSWORD) -> Any:
    return manager.connect(host="127.0.0.1", port=srv.port, username=user, password=password,
                           hostkey_verify=False, look_for_keys=False, allow_agent=False,
                           timeout=10)


async def nc(srv: NetconfServer, user: str = "alice") -> Any:
    return await asyncio.to_thread(connect, srv, user)


async def closed(m: Any) -> None:
    await asyncio.to_thread(m.close_session)


async def test_host_key_kept_with_mode_0600(server: NetconfServer, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "ssh_host_ed25519_key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    before = key.read_bytes()
    again = await start_netconf(server.ds, server.users, "127.0.0.1", 0, tmp_path / "keys",
                                monitor=server.monitor)
    await again.stop()
    assert key.read_bytes() == before


async def test_hello_and_capabilities(server: NetconfServer) -> None:
    m = await nc(server)
    try:
        caps = list(m.server_capabilities)
        assert BASE_1_1 in caps
        assert any(c.startswith(f"{INST_NS}?module=nfo-instances") for c in caps)
        assert m._session._base == NetconfBase.BASE_11  # chunked framing negotiated
        assert m.session_id
    finally:
        await closed(m)


async def test_edit_get_config_subtree(server: NetconfServer) -> None:
    m = await nc(server)
    try:
        await asyncio.to_thread(m.edit_config, target="running", config=instance("e1"))
        await asyncio.to_thread(m.edit_config, target="running",
                                config=instance("e2", "7001"))
        flt = (f'<nf-instances xmlns="{INST_NS}"><nf-instance><name>e2</name></nf-instance>'
               "</nf-instances>")
        r = await asyncio.to_thread(m.get_config, source="running", filter=("subtree", flt))
        assert instance_names(r.data_ele) == ["e2"]
        assert "udp-echo" in r.data_xml
        r = await asyncio.to_thread(m.get_config, source="running",
                                    filter=("xpath", "/nfo-instances:nf-instances"))
        assert sorted(instance_names(r.data_ele)) == ["e1", "e2"]
    finally:
        await closed(m)


async def test_candidate_edit_commit(server: NetconfServer) -> None:
    m = await nc(server)
    try:
        await asyncio.to_thread(m.edit_config, target="candidate", config=instance("c1"))
        r = await asyncio.to_thread(m.get_config, source="running")
        assert "c1" not in r.data_xml
        await asyncio.to_thread(m.commit)
        r = await asyncio.to_thread(m.get_config, source="running")
        assert instance_names(r.data_ele) == ["c1"]
        await asyncio.to_thread(m.discard_changes)
    finally:
        await closed(m)


async def test_lock_conflict(server: NetconfServer) -> None:
    a = await nc(server, "alice")
    b = await nc(server, "bob")
    try:
        await asyncio.to_thread(a.lock, "running")
        with pytest.raises(RPCError) as ei:
            await asyncio.to_thread(b.lock, "running")
        assert ei.value.tag == "lock-denied"
        assert f"<session-id>{a.session_id}</session-id>" in (ei.value.info or "").replace(
            f' xmlns="{NC_NS}"', "").replace("nc:", "")
        # the holder leaving releases its lock
        await closed(a)
        for _ in range(200):
            if not server.ds.locks():
                break
            await asyncio.sleep(0.01)
        await asyncio.to_thread(b.lock, "running")
        await asyncio.to_thread(b.unlock, "running")
    finally:
        await closed(b)


async def test_invalid_edit_reports_libyang_reason(server: NetconfServer) -> None:
    m = await nc(server)
    try:
        bad = (f'<config xmlns="{NC_NS}"><nf-instances xmlns="{INST_NS}"><nf-instance>'
               "<name>x</name><descriptor>no-such-descriptor</descriptor></nf-instance>"
               "</nf-instances></config>")
        with pytest.raises(RPCError) as ei:
            await asyncio.to_thread(m.edit_config, target="running", config=bad)
        err = ei.value
        assert err.tag in ("data-missing", "invalid-value", "operation-failed")
        assert err.message and "descriptor" in (err.message + (err.path or ""))
    finally:
        await closed(m)


async def test_wrong_password_refused(server: NetconfServer) -> None:
    with pytest.raises(nc_errors.AuthenticationError):
        await asyncio.to_thread(connect, server, "alice", "wrong password")
    with pytest.raises(nc_errors.AuthenticationError):
        await asyncio.to_thread(connect, server, "nobody", PASSWORD)


# -- raw asyncssh clients --------------------------------------------------------------

async def raw_conn(srv: NetconfServer, **kw: Any) -> asyncssh.SSHClientConnection:
    opts: dict[str, Any] = {"username": "alice", "password": PASSWORD, "known_hosts": None,
                            "client_keys": None, "agent_path": None}
    opts.update(kw)
    return await asyncssh.connect("127.0.0.1", srv.port, **opts)


HELLO = (f'<hello xmlns="{NC_NS}"><capabilities><capability>{BASE_1_1}</capability>'
         "</capabilities></hello>").encode()


async def read_message(reader: asyncssh.SSHReader[bytes], dec: Decoder) -> bytes:
    while (m := dec.next()) is None:
        data = await asyncio.wait_for(reader.read(65536), 5)
        if not data:
            raise EOFError
        dec.feed(data)
    return m


async def test_no_hello_is_dropped(server: NetconfServer) -> None:
    async with await raw_conn(server) as conn:
        w, r, _ = await conn.open_session(subsystem="netconf", encoding=None)
        dec = Decoder()
        assert b"<hello" in await read_message(r, dec)
        assert await asyncio.wait_for(r.read(), 5) == b""  # closed after hello_timeout
        w.close()


async def test_raw_client_rpc_and_close(server: NetconfServer) -> None:
    async with await raw_conn(server) as conn:
        w, r, _ = await conn.open_session(subsystem="netconf", encoding=None)
        dec = Decoder()
        await read_message(r, dec)
        # hello and the first rpc in one write: the framing switches right after hello
        w.write(encode_eom(HELLO) + encode_chunked(
            f'<rpc message-id="9" xmlns="{NC_NS}"><close-session/></rpc>'.encode()))
        dec.chunked = True
        reply = await read_message(r, dec)
        assert b"<ok/>" in reply and b'message-id="9"' in reply
        assert await asyncio.wait_for(r.read(), 5) == b""


async def test_only_netconf_subsystem(server: NetconfServer) -> None:
    async with await raw_conn(server) as conn:
        for kw in ({"subsystem": "sftp"}, {"command": "ls"}, {}):
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.open_session(encoding=None, **kw)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection("127.0.0.1", 22)


async def test_public_key_auth(server: NetconfServer) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    other = asyncssh.generate_private_key("ssh-ed25519")
    await server.users.add_key("alice", key.export_public_key().decode().strip())
    async with await raw_conn(server, password=None, client_keys=[key]) as conn:
        w, r, _ = await conn.open_session(subsystem="netconf", encoding=None)
        assert b"<hello" in await read_message(r, Decoder())
        w.close()
    with pytest.raises(asyncssh.PermissionDenied):
        await raw_conn(server, password=None, client_keys=[other])


async def test_auth_attempts_limited(server: NetconfServer) -> None:
    tries = 0

    class Client(asyncssh.SSHClient):
        def password_auth_requested(self) -> str:
            nonlocal tries
            tries += 1
            return "wrong"
    with pytest.raises((asyncssh.PermissionDenied, asyncssh.DisconnectError)):
        await raw_conn(server, password=None, client_factory=Client)
    assert 1 <= tries <= 3
