"""RFC 6022 monitoring state, RFC 6470 session and config-change events, and the
session guards (idle timeout, SSH keepalive, authentication attempts) on a real
asyncssh server with ncclient and raw asyncssh clients."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

from nfo.datastore import Datastore
from nfo.netconf.messages import NC_NS
from nfo.netconf.monitoring import MONITORING_PATH
from nfo.netconf.server import NetconfServer, start_netconf
from nfo.wire.framing import Decoder, encode_eom
from tests.access import admins
from tests.waiting import wait_for

from .test_interop import (  # noqa: F401
    CATALOG,
    HELLO,
    PASSWORD,
    closed,
    instance,
    nc,
    raw_conn,
    read_message,
    server,
)

MON_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NCN_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
MON_FILTER = f'<netconf-state xmlns="{MON_NS}"/>'


def mon(tag: str) -> str:
    return f"{{{MON_NS}}}{tag}"


async def netconf_state(m: Any, sub: str = "") -> Any:
    flt = f'<netconf-state xmlns="{MON_NS}">{sub}</netconf-state>'
    reply = await asyncio.to_thread(m.get, ("subtree", flt))
    return reply.data_ele.find(mon("netconf-state"))


async def test_sessions_locks_schemas_and_statistics(server: NetconfServer) -> None:  # noqa: F811
    a = await nc(server, "alice")
    b = await nc(server, "bob")
    try:
        await asyncio.to_thread(a.lock, "running")
        with pytest.raises(RPCError):
            await asyncio.to_thread(b.dispatch, to_ele(f'<frobnicate xmlns="{NC_NS}"/>'))
        state = await netconf_state(a)
        sessions = {s.findtext(mon("session-id")): s
                    for s in state.iter(mon("session"))}
        assert set(sessions) == {a.session_id, b.session_id}
        sa = sessions[a.session_id]
        assert sa.findtext(mon("username")) == "alice"
        assert sa.findtext(mon("source-host")) == "127.0.0.1"
        assert sa.findtext(mon("transport")).endswith(":netconf-ssh")
        assert int(sa.findtext(mon("in-rpcs"))) >= 1
        assert sessions[b.session_id].findtext(mon("out-rpc-errors")) == "1"
        running = [d for d in state.iter(mon("datastore")) if d.findtext(mon("name")) == "running"]
        assert running[0].findtext(f"{mon('locks')}/{mon('global-lock')}/"
                                   f"{mon('locked-by-session')}") == a.session_id
        idents = {s.findtext(mon("identifier")) for s in state.iter(mon("schema"))}
        assert {"nfo-instances", "nfo-catalog", "ietf-netconf-monitoring"} <= idents
        stats = state.find(mon("statistics"))
        assert int(stats.findtext(mon("in-sessions"))) == 2
        assert int(stats.findtext(mon("out-rpc-errors"))) == 1
        caps = {c.text for c in state.iter(mon("capability"))}
        assert set(a.server_capabilities) == caps
        # a listed schema is retrievable with get-schema
        text = await asyncio.to_thread(a.get_schema, "nfo-instances")
        assert "module nfo-instances" in text.data
    finally:
        await closed(a)
        await closed(b)
    # ended sessions leave their counts in the statistics, not in the session list
    tree = server.ds.get("operational", MONITORING_PATH)
    try:
        data = tree.print("json")
    finally:
        tree.free()
    assert '"session"' not in data and '"out-rpc-errors":1' in data


async def test_monitoring_is_served_by_the_datastore(server: NetconfServer) -> None:  # noqa: F811
    """Any front end reads it: the provider answers datastore reads (what RESTCONF uses)."""
    m = await nc(server)
    try:
        tree = server.ds.get("operational", f"{MONITORING_PATH}/sessions")
        try:
            assert f'"session-id":{m.session_id}' in tree.print("json")
        finally:
            tree.free()
    finally:
        await closed(m)


async def test_servers_share_the_monitor_they_are_given(server: NetconfServer,  # noqa: F811
                                                        tmp_path: Path) -> None:
    """Two listeners on one datastore, one monitor: both sessions are listed, and the
    data stays served while one listener is left."""
    second = await start_netconf(server.ds, server.users, "127.0.0.1", 0, tmp_path / "keys2",
                                 monitor=server.monitor)
    try:
        a = await nc(server)
        b = await nc(second)
        try:
            state = await netconf_state(a)
            ids = {s.findtext(mon("session-id")) for s in state.iter(mon("session"))}
            assert ids == {a.session_id, b.session_id}
        finally:
            await closed(a)
            await closed(b)
    finally:
        await second.stop()
    tree = server.ds.get("operational", MONITORING_PATH)
    try:
        assert '"in-sessions":2' in tree.print("json")
    finally:
        tree.free()


async def take_event(m: Any, name: str) -> Any:
    for _ in range(20):
        n = await asyncio.to_thread(m.take_notification, True, 5)
        assert n is not None, f"no {name} within 5 s"
        ev = n.notification_ele.find(f"{{{NCN_NS}}}{name}")
        if ev is not None:
            return ev
    raise AssertionError(f"no {name} among 20 notifications")


def ncn(tag: str) -> str:
    return f"{{{NCN_NS}}}{tag}"


async def test_session_and_config_change_events(server: NetconfServer) -> None:  # noqa: F811
    watcher = await nc(server, "alice")
    try:
        await asyncio.to_thread(watcher.create_subscription)
        b = await nc(server, "bob")
        start = await take_event(watcher, "netconf-session-start")
        assert start.findtext(ncn("username")) == "bob"
        assert start.findtext(ncn("session-id")) == b.session_id
        assert start.findtext(ncn("source-host")) == "127.0.0.1"
        await asyncio.to_thread(b.edit_config, target="running", config=instance("n1"))
        change = await take_event(watcher, "netconf-config-change")
        assert change.findtext(f"{ncn('changed-by')}/{ncn('username')}") == "bob"
        assert change.findtext(ncn("datastore")) == "running"
        edits = [(e.findtext(ncn("target")), e.findtext(ncn("operation")))
                 for e in change.iter(ncn("edit"))]
        assert len(edits) == 1 and edits[0][1] == "create"
        target = change.find(f"{ncn('edit')}/{ncn('target')}")
        # an instance-identifier in XML: prefixes declared on the element
        assert target.text.endswith(":nf-instance[nfo-inst:name='n1']")
        assert "urn:nfo:instances" in target.nsmap.values()
        await closed(b)
        end = await take_event(watcher, "netconf-session-end")
        assert end.findtext(ncn("termination-reason")) == "closed"
        # kill-session: the victim's end names the killer
        c = await nc(server, "bob")
        await asyncio.to_thread(watcher.kill_session, c.session_id)
        end = await take_event(watcher, "netconf-session-end")
        assert end.findtext(ncn("session-id")) == c.session_id
        assert end.findtext(ncn("termination-reason")) == "killed"
        assert end.findtext(ncn("killed-by")) == watcher.session_id
        await asyncio.to_thread(c.close_session) if c.connected else None
    finally:
        await closed(watcher)


@pytest.fixture
async def guarded(ds: Datastore, tmp_path: Path) -> AsyncIterator[NetconfServer]:
    """A server with short idle and keepalive limits."""
    users = await admins(ds, ("alice", PASSWORD))
    async with ds.internal_session("seed") as s:
        await s.edit("running", CATALOG, "json")
    srv = await start_netconf(ds, users, "127.0.0.1", 0, tmp_path / "keys",
                              idle_timeout=0.5, keepalive_interval=0.2, keepalive_count_max=2,
                              auth_backoff=0.05)
    try:
        yield srv
    finally:
        await srv.stop()


async def test_idle_session_is_closed(guarded: NetconfServer) -> None:
    async with await raw_conn(guarded) as conn:
        w, r, _ = await conn.open_session(subsystem="netconf", encoding=None)
        dec = Decoder()
        await read_message(r, dec)
        w.write(encode_eom(HELLO))
        # nothing more is sent: the server ends the session by itself
        assert await asyncio.wait_for(r.read(), 15) == b""
    await wait_for(lambda: guarded.monitor.dropped_sessions == 1, 15,
                   "the idle session to drop")


async def test_a_long_request_is_not_idleness(guarded: NetconfServer) -> None:
    async def slow(call: Any) -> dict[str, str]:
        await asyncio.sleep(1.2)  # longer than the 0.5 s idle timeout
        return {"echo": "late"}

    guarded.ds.register_rpc("/nfo-test:ping", slow)
    m = await nc(guarded)
    try:
        reply = await asyncio.to_thread(
            m.dispatch, to_ele('<ping xmlns="urn:nfo:test"><msg>hi</msg></ping>'))
        assert "late" in reply.xml
        assert m.connected
    finally:
        await closed(m)
    assert guarded.monitor.dropped_sessions == 0


async def test_subscribed_session_is_not_idle(guarded: NetconfServer) -> None:
    m = await nc(guarded)
    try:
        await asyncio.to_thread(m.create_subscription)
        await asyncio.sleep(1.5)  # three idle timeouts
        assert m.connected
        assert (await asyncio.to_thread(m.get_config, source="running")).ok
    finally:
        await closed(m)
    assert guarded.monitor.dropped_sessions == 0


CHILD = textwrap.dedent("""
    import sys, time
    from ncclient import manager
    m = manager.connect(host="127.0.0.1", port=int(sys.argv[1]), username="alice",
                        password=sys.argv[2], hostkey_verify=False, look_for_keys=False,
                        allow_agent=False, timeout=10)
    print("ready", m.session_id, flush=True)
    time.sleep(60)
""")


async def test_keepalive_drops_a_frozen_peer(guarded: NetconfServer) -> None:
    """A client that stops answering (SIGSTOP: its TCP connection stays open) is
    found by SSH keepalives and its session ended."""
    guarded.idle_timeout = 0  # only keepalives may end it
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(guarded.port), PASSWORD],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)  # type: ignore[union-attr]
        assert line.startswith("ready")
        assert len(guarded.monitor.sessions) == 1
        os.kill(proc.pid, signal.SIGSTOP)
        await wait_for(lambda: not guarded.monitor.sessions, 15, "keepalive to drop the peer")
        assert guarded.monitor.dropped_sessions == 1
    finally:
        proc.kill()
        proc.wait(10)


async def test_three_authentication_attempts_with_backoff(guarded: NetconfServer) -> None:
    offered = 0

    class Client(asyncssh.SSHClient):
        def password_auth_requested(self) -> str:
            nonlocal offered
            offered += 1
            return f"wrong-{offered}"

    t0 = time.monotonic()
    with pytest.raises((asyncssh.PermissionDenied, asyncssh.DisconnectError)):
        await raw_conn(guarded, password=None, client_factory=Client)
    elapsed = time.monotonic() - t0
    checked = guarded.users.logins.counters.checked
    assert checked == 3  # the server stops after the third failure
    assert offered in (3, 4)  # a fourth offer may be in flight when it disconnects
    # failures are answered after 0.05, 0.1 and 0.2 s (a lower bound, never a ceiling)
    assert elapsed >= 0.35


async def test_stream_discovery(server: NetconfServer) -> None:  # noqa: F811
    """RFC 5277 section 3.2.5: the streams a client may subscribe to, with replay facts."""
    ns = "urn:ietf:params:xml:ns:netmod:notification"
    m = await nc(server)
    try:
        reply = await asyncio.to_thread(m.get, ("subtree", f'<netconf xmlns="{ns}"><streams/>'
                                                           "</netconf>"))
        streams = {s.findtext(f"{{{ns}}}name"): s for s in reply.data_ele.iter(f"{{{ns}}}stream")}
        assert "NETCONF" in streams
        netconf = streams["NETCONF"]
        assert netconf.findtext(f"{{{ns}}}replaySupport") == "true"
        created = datetime.fromisoformat(netconf.findtext(f"{{{ns}}}replayLogCreationTime"))
        assert created.tzinfo is not None and created.timestamp() <= time.time()
        for name in streams:  # every listed stream can be subscribed to
            other = await nc(server)
            try:
                await asyncio.to_thread(other.create_subscription, stream_name=name)
            finally:
                await closed(other)
    finally:
        await closed(m)


async def test_confirmed_commit_events(server: NetconfServer) -> None:  # noqa: F811
    watcher = await nc(server, "alice")
    b = await nc(server, "bob")
    try:
        await asyncio.to_thread(watcher.create_subscription)

        async def commit(**kw: Any) -> None:
            await asyncio.to_thread(b.edit_config, target="candidate",
                                    config=instance(f"c{time.monotonic_ns()}"))
            await asyncio.to_thread(b.commit, **kw)

        async def event() -> tuple[str | None, str | None, str | None]:
            ev = await take_event(watcher, "netconf-confirmed-commit")
            return (ev.findtext(ncn("confirm-event")), ev.findtext(ncn("username")),
                    ev.findtext(ncn("timeout")))

        await commit(confirmed=True, timeout="60")
        assert await event() == ("start", "bob", "60")
        await commit(confirmed=True, timeout="120")
        assert await event() == ("extend", "bob", "120")
        await asyncio.to_thread(b.commit)
        assert await event() == ("complete", "bob", None)
        await commit(confirmed=True, timeout="60")
        assert (await event())[0] == "start"
        await asyncio.to_thread(b.cancel_commit)
        assert await event() == ("cancel", "bob", None)
        await commit(confirmed=True, timeout="1")
        assert (await event())[0] == "start"
        assert await event() == ("timeout", None, None)  # no session: the server reverted it
    finally:
        await closed(b)
        await closed(watcher)
