"""RFC 5277 notifications over a real asyncssh server with ncclient as the client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from ncclient.operations import RPCError

from nfo.netconf.messages import NOTIF_NS, NOTIF_STATUS_NS
from nfo.netconf.server import NetconfServer
from nfo.protocol.formats import format_time

from .test_interop import closed, nc, server  # noqa: F401

TEST_NS = "urn:nfo:test"


def bell(srv: NetconfServer, rung: int, event_time: float | None = None) -> None:
    srv.ds.notifications.publish(f'{{"nfo-test:bell": {{"rung": {rung}}}}}', "json",
                                 event_time=event_time)


NCN_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"


async def take(m: Any) -> Any:
    """The next notification other than the server's own RFC 6470 events."""
    while True:
        n = await asyncio.to_thread(m.take_notification, True, 5)
        assert n is not None, "no notification within 5 s"
        if not any(e.tag.startswith(f"{{{NCN_NS}}}") for e in n.notification_ele):
            return n


def rung_of(n: Any) -> str | None:
    return n.notification_ele.findtext(f"{{{TEST_NS}}}bell/{{{TEST_NS}}}rung")


async def test_capabilities(server: NetconfServer) -> None:  # noqa: F811
    m = await nc(server)
    try:
        caps = list(m.server_capabilities)
        assert "urn:ietf:params:netconf:capability:notification:1.0" in caps
        assert "urn:ietf:params:netconf:capability:interleave:1.0" in caps
    finally:
        await closed(m)


async def test_live_notification_and_interleaved_rpc(server: NetconfServer) -> None:  # noqa: F811
    m = await nc(server)
    try:
        await asyncio.to_thread(m.create_subscription)
        bell(server, 3)
        n = await take(m)
        assert rung_of(n) == "3"
        ev = n.notification_ele.findtext(f"{{{NOTIF_NS}}}eventTime")
        assert ev and ev.endswith("Z")
        # an RPC is answered while the subscription is active
        r = await asyncio.to_thread(m.get_config, source="running")
        assert r.ok
        bell(server, 4)
        assert rung_of(await take(m)) == "4"
        # one subscription per session
        with pytest.raises(RPCError) as ei:
            await asyncio.to_thread(m.create_subscription)
        assert ei.value.tag == "in-use"
    finally:
        await closed(m)
    for _ in range(200):
        if not server.ds.notifications._subs:
            break
        await asyncio.sleep(0.01)
    assert not server.ds.notifications._subs  # the subscription ended with the session


async def test_replay_with_start_and_stop_time(server: NetconfServer) -> None:  # noqa: F811
    now = time.time()
    bell(server, 1, now - 30)
    bell(server, 2, now - 20)
    bell(server, 9, now - 5)
    m = await nc(server)
    try:
        await asyncio.to_thread(m.create_subscription, start_time=format_time(now - 25))
        assert rung_of(await take(m)) == "2"
        assert rung_of(await take(m)) == "9"
        n = await take(m)
        assert n.notification_ele.find(f"{{{NOTIF_STATUS_NS}}}replayComplete") is not None
        bell(server, 5)
        assert rung_of(await take(m)) == "5"
    finally:
        await closed(m)
    m = await nc(server)
    try:
        await asyncio.to_thread(m.create_subscription, start_time=format_time(now - 35),
                                stop_time=format_time(now - 10))
        got = [await take(m) for _ in range(4)]
        assert [rung_of(n) for n in got[:2]] == ["1", "2"]
        assert got[2].notification_ele.find(f"{{{NOTIF_STATUS_NS}}}replayComplete") is not None
        assert got[3].notification_ele.find(
            f"{{{NOTIF_STATUS_NS}}}notificationComplete") is not None
        # the completed subscription may be replaced
        await asyncio.to_thread(m.create_subscription)
        bell(server, 6)
        assert rung_of(await take(m)) == "6"
    finally:
        await closed(m)


async def test_filters(server: NetconfServer) -> None:  # noqa: F811
    m = await nc(server)
    try:
        await asyncio.to_thread(m.create_subscription,
                                filter=("xpath", "/nfo-test:bell[rung=5]"))
        bell(server, 3)
        bell(server, 5)
        assert rung_of(await take(m)) == "5"
    finally:
        await closed(m)
    m = await nc(server)
    try:
        flt = f'<bell xmlns="{TEST_NS}"><rung>7</rung></bell>'
        await asyncio.to_thread(m.create_subscription, filter=("subtree", flt))
        bell(server, 3)
        bell(server, 7)
        assert rung_of(await take(m)) == "7"
    finally:
        await closed(m)


async def test_bad_subscriptions(server: NetconfServer) -> None:  # noqa: F811
    m = await nc(server)
    try:
        with pytest.raises(RPCError):
            await asyncio.to_thread(m.create_subscription, stream_name="NOPE")
        with pytest.raises(RPCError):
            await asyncio.to_thread(m.create_subscription, start_time="yesterday")
        with pytest.raises(RPCError):
            await asyncio.to_thread(m.create_subscription,
                                    start_time=format_time(time.time() + 3600))
        await asyncio.to_thread(m.create_subscription)  # the failures left no subscription
    finally:
        await closed(m)
