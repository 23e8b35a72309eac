"""RESTCONF event streams over SSE, served by a real uvicorn on 127.0.0.1 and read
with httpx: live delivery, replay, stop-time, filters, errors, both encodings,
keep-alives and cleanup on client disconnect."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn

from nfo.datastore import Datastore
from nfo.protocol.formats import format_time
from nfo.restconf.app import create_app
from nfo.restconf.streams import (
    NOTIFICATION_NS,
    sse_event,
    streams_data,
)
from nfo.schema import Parse, Tree

BELL = '{"nfo-test:bell": {"rung": %d}}'
KEEPALIVE = 0.3


@pytest.fixture
async def base_url(ds: Datastore) -> AsyncIterator[str]:
    """A real uvicorn serving the stream endpoint on a free loopback port."""
    app = create_app(ds, keepalive=KEEPALIVE)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "uvicorn did not start"
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10, trust_env=False) as c:
        yield c


class Events:
    """Reads SSE events (data payloads) and comments from a streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()
        self.comments: list[str] = []
        self.ids: list[str] = []

    async def next(self, timeout: float = 5) -> str | None:
        """The next event's data (lines joined by newlines); None when the stream ends."""
        data: list[str] = []
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "":
                    if data:
                        return "\n".join(data)
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line.startswith("id:"):
                    self.ids.append(line[3:].strip())
            return "\n".join(data) if data else None

    async def comment(self, text: str, timeout: float = 5) -> None:
        """Wait for a comment line (stops at the first event, which must not come)."""
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line.startswith(":") and line[1:].strip() == text:
                    return
                assert not line.startswith("data:"), f"unexpected event before {text!r}"
        raise AssertionError(f"stream ended before {text!r}")


def subs(ds: Datastore) -> int:
    return len(ds.notifications._subs)


def rungs(payloads: list[str]) -> list[int]:
    return [json.loads(p)["ietf-restconf:notification"]["nfo-test:bell"]["rung"]
            for p in payloads]


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


# -- live ----------------------------------------------------------------------


async def test_live_json(ds: Datastore, client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/restconf/streams/NETCONF/json") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        ev = Events(r)
        t0 = time.time()
        ds.notifications.publish(BELL % 3, "json")
        ds.notifications.publish(BELL % 4, "json")
        first = await ev.next()
        second = await ev.next()
    assert first is not None and second is not None
    doc = json.loads(first)
    assert list(doc) == ["ietf-restconf:notification"]
    n = doc["ietf-restconf:notification"]
    assert n["nfo-test:bell"] == {"rung": 3}
    when = datetime.fromisoformat(n["eventTime"])
    assert when.tzinfo is not None
    assert abs(when.timestamp() - t0) < 5
    assert rungs([second]) == [4]


async def test_live_xml(ds: Datastore, client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/restconf/streams/NETCONF/xml") as r:
        assert r.status_code == 200
        ev = Events(r)
        ds.notifications.publish(BELL % 9, "json")
        payload = await ev.next()
    assert payload is not None
    root = ET.fromstring(payload)
    assert root.tag == f"{{{NOTIFICATION_NS}}}notification"
    assert root.findtext(f"{{{NOTIFICATION_NS}}}eventTime")
    assert root.findtext("{urn:nfo:test}bell/{urn:nfo:test}rung") == "9"


async def test_module_stream_carries_its_modules_only(ds: Datastore,
                                                      client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/restconf/streams/nfo/json") as r:
        assert r.status_code == 200
        ev = Events(r)
        ds.notifications.publish(BELL % 1, "json")
        ds.notifications.publish(json.dumps({"nfo-instances:nf-instance-state-change": {
            "name": "nf1", "new-status": "running"}}), "json")
        payload = await ev.next()
    assert payload is not None
    n = json.loads(payload)["ietf-restconf:notification"]
    assert n["nfo-instances:nf-instance-state-change"]["name"] == "nf1"
    assert "nfo-test:bell" not in n


# -- replay and stop-time ---------------------------------------------------------


async def test_replay_then_live(ds: Datastore, client: httpx.AsyncClient) -> None:
    now = time.time()
    ds.notifications.publish(BELL % 1, "json", event_time=now - 30)
    ds.notifications.publish(BELL % 2, "json", event_time=now - 20)
    async with client.stream("GET", "/restconf/streams/NETCONF/json",
                             params={"start-time": iso(now - 25)}) as r:
        assert r.status_code == 200
        ev = Events(r)
        replayed = await ev.next()
        await ev.comment("replay-complete")
        ds.notifications.publish(BELL % 3, "json")
        live = await ev.next()
    assert replayed is not None and live is not None
    assert rungs([replayed, live]) == [2, 3]
    when = json.loads(replayed)["ietf-restconf:notification"]["eventTime"]
    assert datetime.fromisoformat(when).timestamp() == pytest.approx(now - 20, abs=1e-3)


async def test_stop_time_in_the_past_ends_after_the_replay(ds: Datastore,
                                                           client: httpx.AsyncClient) -> None:
    now = time.time()
    for rung, age in ((1, 30), (2, 20), (3, 5)):
        ds.notifications.publish(BELL % rung, "json", event_time=now - age)
    async with client.stream("GET", "/restconf/streams/NETCONF/json", params={
            "start-time": iso(now - 25), "stop-time": iso(now - 10)}) as r:
        assert r.status_code == 200
        ev = Events(r)
        got = []
        while (p := await ev.next()) is not None:
            got.append(p)
    assert rungs(got) == [2]
    assert subs(ds) == 0


async def test_stop_time_ends_the_live_stream(ds: Datastore, client: httpx.AsyncClient) -> None:
    start = time.time()
    async with client.stream("GET", "/restconf/streams/NETCONF/xml", params={
            "start-time": iso(start - 1), "stop-time": iso(start + 1.0)}) as r:
        assert r.status_code == 200
        ev = Events(r)
        await ev.comment("replay-complete")
        ds.notifications.publish(BELL % 5, "json")
        first = await ev.next()
        end = await ev.next()
    assert first is not None and "<rung>5</rung>" in first
    assert end is None
    assert time.time() - start < 5
    assert subs(ds) == 0


# -- filter -------------------------------------------------------------------------


async def test_filter(ds: Datastore, client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/restconf/streams/NETCONF/json",
                             params={"filter": "/nfo-test:bell[rung > 5]"}) as r:
        assert r.status_code == 200
        ev = Events(r)
        for rung in (3, 7, 4, 8):
            ds.notifications.publish(BELL % rung, "json")
        got = [await ev.next(), await ev.next()]
    assert rungs([g for g in got if g is not None]) == [7, 8]


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "status", "text"), [
    ("/restconf/streams/nope/json", {}, 404, "no event stream"),
    ("/restconf/streams/NETCONF/yaml", {}, 404, "no event stream"),
    ("/restconf/streams/NETCONF/json", {"stop-time": "2020-01-01T00:00:00Z"}, 400,
     "needs a start-time"),
    ("/restconf/streams/NETCONF/json", {"start-time": "yesterday"}, 400, "RFC 3339"),
    ("/restconf/streams/NETCONF/json", {"start-time": "2020-01-01T00:00:00"}, 400, "RFC 3339"),
    ("/restconf/streams/NETCONF/json", {"start-time": "2020-13-01T00:00:00Z"}, 400,
     "not a valid"),
    ("/restconf/streams/NETCONF/json", {"start-time": "2999-01-01T00:00:00Z"}, 400, "future"),
    ("/restconf/streams/NETCONF/json", {"start-time": "2020-01-02T00:00:00Z",
                                        "stop-time": "2020-01-01T00:00:00Z"}, 400, "earlier"),
    ("/restconf/streams/NETCONF/json", {"filter": "/nfo-test:nope["}, 400, "XPath"),
    ("/restconf/streams/NETCONF/json", {"depth": "1"}, 400, "not allowed"),
    ("/restconf/streams/NETCONF/json", [("filter", "/a"), ("filter", "/b")], 400,
     "more than once"),
])
async def test_refusals(ds: Datastore, client: httpx.AsyncClient, path: str,
                        params: Any, status: int, text: str) -> None:
    async with asyncio.timeout(5):
        r = await client.get(path, params=params)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/yang-data+json")
    err = r.json()["ietf-restconf:errors"]["error"][0]
    assert text in err["error-message"]
    assert subs(ds) == 0


async def test_refusal_in_xml(client: httpx.AsyncClient) -> None:
    r = await client.get("/restconf/streams/NETCONF/xml", params={"start-time": "bad"})
    assert r.status_code == 400
    root = ET.fromstring(r.text)
    ns = "{urn:ietf:params:xml:ns:yang:ietf-restconf}"
    assert root.tag == f"{ns}errors"
    assert root.findtext(f"{ns}error/{ns}error-tag") == "invalid-value"


async def test_head_opens_nothing(ds: Datastore, client: httpx.AsyncClient) -> None:
    async with asyncio.timeout(5):
        r = await client.head("/restconf/streams/NETCONF/json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert subs(ds) == 0


# -- keep-alive and disconnect ---------------------------------------------------------


async def test_keep_alive(client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/restconf/streams/NETCONF/json") as r:
        ev = Events(r)
        t0 = time.monotonic()
        await ev.comment("keep-alive", timeout=KEEPALIVE * 10)
        await ev.comment("keep-alive", timeout=KEEPALIVE * 10)
        assert time.monotonic() - t0 >= KEEPALIVE


async def test_disconnect_closes_the_subscription(ds: Datastore,
                                                  client: httpx.AsyncClient) -> None:
    for _ in range(3):
        async with client.stream("GET", "/restconf/streams/NETCONF/json") as r:
            assert r.status_code == 200
            assert subs(ds) == 1
            ds.notifications.publish(BELL % 1, "json")
            assert await Events(r).next() is not None
        # leaving the block closes the connection mid-stream
        async with asyncio.timeout(5):
            while subs(ds):
                await asyncio.sleep(0.02)
    # an idle subscription (waiting, nothing to send) goes too
    async with client.stream("GET", "/restconf/streams/nfo/xml") as r:
        assert subs(ds) == 1
    async with asyncio.timeout(5):
        while subs(ds):
            await asyncio.sleep(0.02)


# -- pieces -------------------------------------------------------------------------


def test_sse_event_splits_lines() -> None:
    assert sse_event("one") == b"data: one\n\n"
    assert sse_event("one", 12) == b"id: 12\ndata: one\n\n"
    assert sse_event("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"


def test_event_time_is_rfc3339() -> None:
    assert format_time(0) == "1970-01-01T00:00:00.000000Z"


async def test_streams_data(ds: Datastore) -> None:
    hub = ds.notifications
    assert [s.name for s in hub.streams()] == ["NETCONF", "nfo"]  # nfo: from the module set
    doc = streams_data(hub)
    streams = doc["ietf-restconf-monitoring:restconf-state"]["streams"]["stream"]
    netconf = streams[0]
    assert netconf["name"] == "NETCONF"
    assert netconf["replay-support"] is True
    assert "replay-log-creation-time" not in netconf  # nothing logged yet
    assert netconf["access"] == [
        {"encoding": "json", "location": "/restconf/streams/NETCONF/json"},
        {"encoding": "xml", "location": "/restconf/streams/NETCONF/xml"}]
    assert streams[1]["description"] == "nf-instance state changes"
    hub.publish(BELL % 1, "json", event_time=1_700_000_000)
    doc = streams_data(hub, base="https://nfo.example/restconf/streams/")
    streams = doc["ietf-restconf-monitoring:restconf-state"]["streams"]["stream"]
    assert streams[0]["replay-log-creation-time"] == format_time(1_700_000_000)
    assert "replay-log-creation-time" not in streams[1]  # no nfo-instances event yet
    assert streams[1]["access"][1]["location"] == "https://nfo.example/restconf/streams/nfo/xml"
    # the document is valid ietf-restconf-monitoring data
    with Tree.parse(ds.schema, json.dumps(doc), "json", mode=Parse.DATA) as tree:
        assert not tree.is_empty()


# -- reconnecting with Last-Event-ID ---------------------------------------------


async def test_last_event_id_resumes_after_the_last_event(
        ds: Datastore, client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/restconf/streams/NETCONF/json") as r:
        ev = Events(r)
        ds.notifications.publish(BELL % 1, "json")
        ds.notifications.publish(BELL % 2, "json")
        assert rungs([await ev.next(), await ev.next()]) == [1, 2]  # type: ignore[list-item]
    assert len(ev.ids) == 2 and int(ev.ids[1]) > int(ev.ids[0])
    # missed while disconnected
    ds.notifications.publish(BELL % 3, "json")
    ds.notifications.publish(BELL % 4, "json")
    async with client.stream("GET", "/restconf/streams/NETCONF/json",
                             headers={"Last-Event-ID": ev.ids[0]}) as r:
        assert r.status_code == 200
        again = Events(r)
        replayed = [await again.next() for _ in range(3)]
        assert rungs(replayed) == [2, 3, 4]  # type: ignore[arg-type]
        ds.notifications.publish(BELL % 5, "json")
        assert rungs([await again.next()]) == [5]  # type: ignore[list-item]
        assert "replay-complete" in again.comments
    assert again.ids[0] == ev.ids[1]


@pytest.mark.parametrize("value", ["abc", "-1", "1" * 30])
async def test_last_event_id_must_be_a_sent_id(client: httpx.AsyncClient, value: str) -> None:
    r = await client.get("/restconf/streams/NETCONF/json", headers={"Last-Event-ID": value})
    assert r.status_code == 400
    assert "Last-Event-ID" in r.text
