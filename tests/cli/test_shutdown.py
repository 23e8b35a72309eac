"""``nfo serve`` stops promptly on SIGTERM while clients hold event streams open (an SSE
stream and a NETCONF subscription): it used to wait for the SSE response forever, so a
service manager had to kill it."""

from __future__ import annotations

import asyncio
import threading
import time

import asyncssh
import httpx

from nfo.wire.framing import encode_eom
from tests.fuzz.server import PASSWORD, ServerProcess

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def test_sigterm_with_open_event_streams_stops_at_once() -> None:
    srv = ServerProcess()
    srv.start()
    ended: list[str] = []

    def sse() -> None:
        try:
            with httpx.Client(auth=("admin", PASSWORD), timeout=httpx.Timeout(5, read=None)) \
                    as c, c.stream("GET", f"{srv.base}/restconf/streams/nfo/json") as r:
                assert r.status_code == 200
                for _ in r.iter_lines():
                    pass
        except httpx.HTTPError:
            pass
        ended.append("sse")

    async def netconf_subscription() -> asyncssh.SSHClientConnection:
        conn = await asyncssh.connect("127.0.0.1", srv.netconf_port, username="admin",
                                      password=PASSWORD, known_hosts=None)
        w, _r, _ = await conn.open_session(subsystem="netconf", encoding=None)
        w.write(encode_eom(f'<hello xmlns="{NC}"><capabilities><capability>'
                           'urn:ietf:params:netconf:base:1.0</capability></capabilities>'
                           '</hello>'.encode()))
        w.write(encode_eom(f'<rpc message-id="1" xmlns="{NC}"><create-subscription '
                           'xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/></rpc>'
                           .encode()))
        await asyncio.sleep(0.5)
        return conn

    loop = asyncio.new_event_loop()
    try:
        conn = loop.run_until_complete(netconf_subscription())
        t = threading.Thread(target=sse, daemon=True)
        t.start()
        time.sleep(0.5)
        started = time.monotonic()
        code = srv.stop(timeout=20)
        took = time.monotonic() - started
        conn.close()
    finally:
        loop.close()
    assert code == 0, srv.log_text
    assert took < 10, took
    t.join(5)
    assert ended == ["sse"]
    assert srv.bad_log_lines() == []
