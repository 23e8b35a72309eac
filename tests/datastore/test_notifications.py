"""NotificationHub: validation, replay log, event streams and subscriptions.

Real libyang (the nfo-test module plus a small module with a nested
notification and leafrefs) and a real SQLite replay log per test.
"""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore.notifications import (
    DEFAULT_QUEUE_SIZE,
    Notification,
    NotificationHub,
    NotificationSubscription,
    ReplayComplete,
    Stream,
    SubscriptionComplete,
)
from nfo.datastore.storage import SqliteStorage
from nfo.errors import NfoError
from nfo.schema.context import Schema
from nfo.schema.data import Tree
from nfo.schema.edit import validate

REPO = Path(__file__).resolve().parents[2]
TEST_YANG = REPO / "tests/datastore/yang"

NESTED_YANG = """
module nfo-notif-test {
  yang-version 1.1;
  namespace "urn:nfo:notif-test";
  prefix nt;
  import nfo-test { prefix t; }
  description "Nested notifications and leafrefs into data.";
  revision 2026-11-25 { description "Initial."; }
  container devices {
    description "Devices.";
    list device {
      key name;
      description "A device.";
      leaf name { type string; description "Name."; }
      notification alarm {
        description "Nested notification.";
        leaf severity { type uint8; mandatory true; description "Severity."; }
        leaf thing {
          type leafref { path "/t:top/t:thing/t:id"; }
          description "Ref into data.";
        }
      }
    }
  }
  notification ref {
    description "Top-level notification with a leafref.";
    leaf thing { type leafref { path "/t:top/t:thing/t:id"; } description "Ref."; }
  }
}
"""

STEP = 2.0  # seconds a single iterator step may take before the test fails


def bell(rung: int) -> str:
    return json.dumps({"nfo-test:bell": {"rung": rung}})


def alarm(device: str, severity: int | None = 3, thing: str | None = None) -> str:
    body: dict[str, Any] = {}
    if severity is not None:
        body["severity"] = severity
    if thing is not None:
        body["thing"] = thing
    return json.dumps({"nfo-notif-test:devices": {"device": [{"name": device, "alarm": body}]}})


async def step(sub: NotificationSubscription) -> Any:
    return await asyncio.wait_for(anext(sub), STEP)


async def take(sub: NotificationSubscription, n: int) -> list[Any]:
    return [await step(sub) for _ in range(n)]


async def assert_ended(sub: NotificationSubscription) -> None:
    with pytest.raises(StopAsyncIteration):
        await step(sub)


def rungs(items: list[Any]) -> list[Any]:
    """Rung values of notifications, markers by class name."""
    out: list[Any] = []
    for it in items:
        if isinstance(it, Notification):
            out.append(json.loads(it.content)["nfo-test:bell"].get("rung"))
        else:
            out.append(type(it).__name__)
    return out


# -- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Schema:
    extra = tmp_path_factory.mktemp("yang")
    (extra / "nfo-notif-test.yang").write_text(NESTED_YANG)
    return Schema(extra_dirs=[TEST_YANG, extra], with_nfo_modules=False)


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[SqliteStorage]:
    with SqliteStorage(tmp_path / "nfo.sqlite") as s:
        yield s


class DataHolder:
    """Stands in for the datastore: owns the current data tree."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.tree = Tree(schema)

    def set(self, text: str) -> None:
        self.free()
        self.tree = Tree.parse(self.schema, text, "json")
        validate(self.schema, self.tree)

    def free(self) -> None:
        self.tree.free()


@pytest.fixture
def data(schema: Schema) -> Iterator[DataHolder]:
    holder = DataHolder(schema)
    yield holder
    holder.free()


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before
              if not t.done() and t is not asyncio.current_task()]
    for t in leaked:
        t.cancel()
    assert not leaked, f"test left tasks running: {leaked}"


@pytest.fixture
async def hub(schema: Schema, storage: SqliteStorage,
              data: DataHolder) -> AsyncIterator[NotificationHub]:
    h = NotificationHub(schema, storage, lambda: data.tree)
    yield h
    await h.close()


def stored(storage: SqliteStorage) -> list[dict[str, Any]]:
    return [json.loads(r.content) for r in storage.notifications()]


# -- publishing ---------------------------------------------------------------


async def test_publish_logs_and_returns(hub: NotificationHub, storage: SqliteStorage) -> None:
    n = hub.publish(bell(3), event_time=1000.5)
    assert n.seq >= 1 and n.event_time == 1000.5
    assert (n.module, n.path) == ("nfo-test", "/nfo-test:bell")
    assert json.loads(n.content) == {"nfo-test:bell": {"rung": 3}}
    [rec] = list(storage.notifications())
    assert (rec.seq, rec.timestamp) == (n.seq, 1000.5)
    assert json.loads(rec.content) == {"module": "nfo-test", "path": "/nfo-test:bell",
                                       "data": n.content}

    before = time.time()
    m = hub.publish('<bell xmlns="urn:nfo:test"><rung>7</rung></bell>', "xml")
    assert m.seq > n.seq and before <= m.event_time <= time.time()
    assert json.loads(m.content) == {"nfo-test:bell": {"rung": 7}}
    assert json.loads(hub.publish(b'{"nfo-test:bell":{}}').content) == {"nfo-test:bell": {}}


@pytest.mark.parametrize(
    "content",
    [
        bell(300),                                         # out of range
        '{"nfo-test:bell":{"rung":"x"}}',                  # wrong type
        '{"nfo-test:bell":{"gong":1}}',                    # unknown child
        '{"nfo-test:nope":{}}',                            # unknown top node
        '{"nfo-test:top":{"name":"x"}}',                   # data, not a notification
        '{"nfo-test:ping":{"msg":"x"}}',                   # an RPC
        '{"nfo-test:bell":{"rung":1},"nfo-test:top":{}}',  # a notification and more
        "{}",                                              # nothing at all
        "not json",
        '{"nfo-test:bell":',
    ],
)
async def test_publish_invalid_stores_nothing(
    hub: NotificationHub, storage: SqliteStorage, content: str,
) -> None:
    # The error-tag of a libyang failure is ly.raise_last's business (tested
    # with the schema layer); here it must be an NfoError and leave no trace.
    sub = hub.subscribe()
    with pytest.raises(NfoError) as exc:
        hub.publish(content)
    assert exc.value.message
    assert stored(storage) == []
    hub.publish(bell(1))
    assert rungs(await take(sub, 1)) == [1]   # the subscriber saw only the valid one


async def test_publish_error_tags(hub: NotificationHub) -> None:
    for content, tag in ((bell(300), "invalid-value"), ("{}", "invalid-value"),
                         ('{"nfo-test:bell":{"gong":1}}', "unknown-element")):
        with pytest.raises(NfoError) as exc:
            hub.publish(content)
        assert exc.value.tag == tag, content


async def test_publish_unknown_encoding(hub: NotificationHub, storage: SqliteStorage) -> None:
    with pytest.raises(NfoError) as exc:
        hub.publish(bell(1), "yaml")
    assert exc.value.tag == "malformed-message"
    assert stored(storage) == []


async def test_nested_mandatory_and_leafrefs_against_data(
    hub: NotificationHub, storage: SqliteStorage, data: DataHolder,
) -> None:
    # mandatory leaf missing in a notification nested in a list
    with pytest.raises(NfoError) as exc:
        hub.publish(alarm("d1", severity=None))
    assert "mandatory" in exc.value.message.lower()
    assert "severity" in (exc.value.path or "")

    # leafref without any data
    with pytest.raises(NfoError) as exc:
        hub.publish(json.dumps({"nfo-notif-test:ref": {"thing": "a"}}))
    assert exc.value.app_tag == "instance-required"
    assert stored(storage) == []

    data.set('{"nfo-test:top":{"thing":[{"id":"a","needed":"x"}]}}')
    before = data.tree.print()
    tops = data.tree.nodes()
    ok = hub.publish(json.dumps({"nfo-notif-test:ref": {"thing": "a"}}))
    assert (ok.module, ok.path) == ("nfo-notif-test", "/nfo-notif-test:ref")
    with pytest.raises(NfoError) as exc:
        hub.publish(json.dumps({"nfo-notif-test:ref": {"thing": "b"}}))
    assert exc.value.app_tag == "instance-required"

    nested = hub.publish(alarm("d1", thing="a"))
    assert nested.module == "nfo-notif-test"
    assert nested.path == "/nfo-notif-test:devices/device[name='d1']/alarm"
    assert json.loads(nested.content) == json.loads(alarm("d1", thing="a"))
    with pytest.raises(NfoError) as exc:
        hub.publish(alarm("d1", thing="b"))
    assert exc.value.app_tag == "instance-required"

    # validation links the notification into the data and back out again
    assert data.tree.print() == before
    assert data.tree.nodes() == tops
    assert [r["path"] for r in stored(storage)] == [ok.path, nested.path]


# -- live delivery ------------------------------------------------------------


async def test_live_delivery_in_order(hub: NotificationHub) -> None:
    hub.publish(bell(0))  # before the subscription: not delivered
    sub = hub.subscribe()
    seqs = [hub.publish(bell(i)).seq for i in range(1, 6)]
    got = await take(sub, 5)
    assert rungs(got) == [1, 2, 3, 4, 5]
    assert [n.seq for n in got] == seqs

    # a consumer waiting for the next one is woken by publish()
    waiter = asyncio.create_task(step(sub))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    hub.publish(bell(9))
    assert rungs([await waiter]) == [9]


# -- replay -------------------------------------------------------------------


async def test_replay_with_start(hub: NotificationHub) -> None:
    now = time.time()
    for i, ago in enumerate((30, 20, 10), start=1):
        hub.publish(bell(i), event_time=now - ago)
    sub = hub.subscribe(start=now - 25)
    assert rungs(await take(sub, 3)) == [2, 3, "ReplayComplete"]
    hub.publish(bell(4))
    assert rungs(await take(sub, 1)) == [4]

    everything = hub.subscribe(start=0)
    assert rungs(await take(everything, 5)) == [1, 2, 3, 4, "ReplayComplete"]

    recent = hub.subscribe(start=now - 5)
    assert rungs(await take(recent, 2)) == [4, "ReplayComplete"]


async def test_replay_with_start_and_stop_ends_by_timer(hub: NotificationHub) -> None:
    now = time.time()
    for i, ago in enumerate((30, 20, 10), start=1):
        hub.publish(bell(i), event_time=now - ago)
    stop = time.time() + 0.3
    sub = hub.subscribe(start=now - 25, stop=stop)
    assert rungs(await take(sub, 3)) == [2, 3, "ReplayComplete"]
    hub.publish(bell(4))
    assert rungs(await take(sub, 1)) == [4]
    # nothing else arrives: the wall clock passing stop ends the subscription
    assert isinstance(await step(sub), SubscriptionComplete)
    assert time.time() >= stop
    await assert_ended(sub)
    hub.publish(bell(5))
    await assert_ended(sub)


async def test_stop_reached_by_a_later_notification(hub: NotificationHub) -> None:
    now = time.time()
    sub = hub.subscribe(start=now - 1, stop=now + 60)
    assert isinstance(await step(sub), ReplayComplete)
    hub.publish(bell(1), event_time=now + 1)
    hub.publish(bell(2), event_time=now + 61)   # after stop: ends, not delivered
    hub.publish(bell(3), event_time=now + 2)    # too late
    assert rungs(await take(sub, 2)) == [1, "SubscriptionComplete"]
    await assert_ended(sub)


async def test_stop_in_the_past(hub: NotificationHub) -> None:
    now = time.time()
    for i, ago in enumerate((30, 20, 10), start=1):
        hub.publish(bell(i), event_time=now - ago)
    sub = hub.subscribe(start=now - 25, stop=now - 15)
    hub.publish(bell(4))  # live, but the subscription is already over
    assert rungs(await take(sub, 3)) == [2, "ReplayComplete", "SubscriptionComplete"]
    await assert_ended(sub)


async def test_replay_then_live_no_loss_no_duplicates(hub: NotificationHub) -> None:
    """Notifications published while the replay is read reach the subscriber
    exactly once, in log order."""
    now = time.time()
    old = [hub.publish(bell(i % 200), event_time=now - 100 + i * 0.01).seq for i in range(1200)]
    sub = hub.subscribe(start=now - 200)
    # logged after the subscription started, before the replay is read:
    # these are both in the replay and in the live queue
    overlap = [hub.publish(bell(1)).seq for _ in range(5)]

    live: list[int] = []

    async def publisher() -> None:
        for _ in range(300):
            live.append(hub.publish(bell(2)).seq)
            await asyncio.sleep(0)

    task = asyncio.create_task(publisher())
    got: list[Any] = []
    published_during_replay = -1
    count = 0
    try:
        while count < len(old) + len(overlap) + 300:
            item = await step(sub)
            got.append(item)
            if isinstance(item, ReplayComplete):
                published_during_replay = len(live)
            else:
                count += 1
            await asyncio.sleep(0)
    finally:
        await task
    assert sum(isinstance(g, ReplayComplete) for g in got) == 1
    # the replay is exactly what was logged before subscribe()
    assert isinstance(got[len(old)], ReplayComplete)
    assert published_during_replay > 0   # the two really ran concurrently
    seqs = [g.seq for g in got if isinstance(g, Notification)]
    assert seqs == old + overlap + live
    hub.publish(bell(3))
    assert rungs(await take(sub, 1)) == [3]


async def test_replay_start(hub: NotificationHub) -> None:
    assert hub.replay_start() is None
    hub.publish(bell(1), event_time=500.0)
    hub.publish(bell(2), event_time=600.0)
    assert hub.replay_start() == 500.0
    assert hub.replay_start("NETCONF") == 500.0
    hub.add_stream("nt", "notif test", ["nfo-notif-test"])
    assert hub.replay_start("nt") is None
    hub.publish(alarm("d1"), event_time=700.0)
    assert hub.replay_start("nt") == 700.0
    with pytest.raises(NfoError) as exc:
        hub.replay_start("nope")
    assert exc.value.tag == "invalid-value"


# -- streams and filters ------------------------------------------------------


async def test_streams_and_stream_filter(hub: NotificationHub) -> None:
    [netconf] = hub.streams()
    assert netconf == Stream("NETCONF", "default NETCONF event stream", None, True)
    hub.add_stream("nt", "notif test", ["nfo-notif-test"])
    hub.add_stream("both", "two modules", ["nfo-test", "nfo-notif-test"])
    assert [s.name for s in hub.streams()] == ["NETCONF", "nt", "both"]
    assert hub.streams()[1].modules == frozenset({"nfo-notif-test"})
    for bad, tag in ((("nt", "again", ["nfo-test"]), "data-exists"),
                     (("NETCONF", "again", ["nfo-test"]), "data-exists"),
                     (("x", "unknown module", ["no-such-module"]), "invalid-value"),
                     (("y", "no module", []), "invalid-value")):
        with pytest.raises(NfoError) as exc:
            hub.add_stream(*bad)
        assert exc.value.tag == tag
    with pytest.raises(NfoError) as exc:
        hub.subscribe("nope")
    assert exc.value.tag == "invalid-value"

    hub.publish(bell(1), event_time=time.time() - 10)
    first = hub.publish(alarm("d1"), event_time=time.time() - 5)
    nt = hub.subscribe("nt", start=0)
    netconf_sub = hub.subscribe()
    hub.publish(bell(2))
    second = hub.publish(alarm("d2"))
    got = await take(nt, 3)
    assert isinstance(got[1], ReplayComplete)
    assert [got[0].seq, got[2].seq] == [first.seq, second.seq]
    assert [n.module for n in await take(netconf_sub, 2)] == ["nfo-test", "nfo-notif-test"]


async def test_xpath_filter(hub: NotificationHub) -> None:
    for i in range(6):
        hub.publish(bell(i), event_time=time.time() - 10 + i)
    hub.publish(alarm("d1", severity=9))
    loud = hub.subscribe(start=0, xpath="/nfo-test:bell[rung>3]")
    assert rungs(await take(loud, 3)) == [4, 5, "ReplayComplete"]
    for i in (1, 7, 2, 8):
        hub.publish(bell(i))
    hub.publish(alarm("d2", severity=200))
    assert rungs(await take(loud, 2)) == [7, 8]

    nested = hub.subscribe(xpath="/nfo-notif-test:devices/device/alarm[severity>100]")
    hub.publish(alarm("d3", severity=50))
    hub.publish(bell(100))
    hub.publish(alarm("d4", severity=150))
    [n] = await take(nested, 1)
    assert n.path == "/nfo-notif-test:devices/device[name='d4']/alarm"

    for bad in ("/nfo-test:bell[", "/bogus:x", "///", ""):
        with pytest.raises(NfoError) as exc:
            hub.subscribe(xpath=bad)
        assert exc.value.tag == "invalid-value"

    # an expression that is not a node set selects nothing
    never = hub.subscribe(xpath="1 = 1")
    hub.publish(bell(4))
    later = hub.subscribe()
    hub.publish(bell(5))
    assert rungs(await take(later, 1)) == [5]
    never.close()
    await assert_ended(never)


# -- rendering ----------------------------------------------------------------


async def test_render(hub: NotificationHub, schema: Schema) -> None:
    n = hub.publish(bell(4))
    xml = n.render(schema, "xml")
    root = ET.fromstring(xml)
    assert root.tag == "{urn:nfo:test}bell"
    assert root.findtext("{urn:nfo:test}rung") == "4"
    assert json.loads(n.render(schema, "json")) == {"nfo-test:bell": {"rung": 4}}

    nested = hub.publish(alarm("d1", severity=2))
    root = ET.fromstring(nested.render(schema, "xml"))
    assert root.tag == "{urn:nfo:notif-test}devices"
    assert root.findtext(
        "{urn:nfo:notif-test}device/{urn:nfo:notif-test}alarm/{urn:nfo:notif-test}severity"
    ) == "2"

    sub = hub.subscribe(start=0)
    replayed = await step(sub)
    assert replayed == n
    assert replayed.render(schema, "xml") == xml
    with pytest.raises(NfoError):
        n.render(schema, "yaml")


# -- subscription arguments, overflow, closing --------------------------------


async def test_subscribe_argument_errors(hub: NotificationHub) -> None:
    now = time.time()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"stop": now + 10}, "missing-element"),
        ({"start": now + 60}, "bad-element"),
        ({"start": now - 10, "stop": now - 20}, "bad-element"),
        ({"start": now - 10, "stop": now + 10, "xpath": "/nfo-test:bell["}, "invalid-value"),
    ]
    for kwargs, tag in cases:
        with pytest.raises(NfoError) as exc:
            hub.subscribe(**kwargs)
        assert exc.value.tag == tag, kwargs
    with pytest.raises(NfoError) as exc:
        hub.subscribe(start=now - 10, stop=now + 10, xpath="/nfo-test:bell[")
    assert exc.value.info == {"xpath": "/nfo-test:bell["}
    # stop == start is allowed (an empty window)
    sub = hub.subscribe(start=now - 10, stop=now - 10)
    assert rungs(await take(sub, 2)) == ["ReplayComplete", "SubscriptionComplete"]


async def test_overflow_drops_the_subscriber_not_the_publisher(
    schema: Schema, storage: SqliteStorage, data: DataHolder,
) -> None:
    assert DEFAULT_QUEUE_SIZE == 10_000
    hub = NotificationHub(schema, storage, lambda: data.tree, queue_size=5)
    try:
        slow = hub.subscribe()
        fast = hub.subscribe()
        got = []
        for i in range(20):
            hub.publish(bell(i))          # never blocks, never raises
            got.append(await step(fast))
        assert rungs(got) == list(range(20))
        assert len(stored(storage)) == 20
        with pytest.raises(NfoError) as exc:
            await step(slow)
        assert exc.value.tag == "resource-denied"
        await assert_ended(slow)
        hub.publish(bell(99))
        await assert_ended(slow)
        assert rungs(await take(fast, 1)) == [99]

        # a subscriber that overflows while it is still replaying
        replaying = hub.subscribe(start=0)
        for i in range(6):
            hub.publish(bell(i))
        with pytest.raises(NfoError) as exc:
            await step(replaying)
        assert exc.value.tag == "resource-denied"
        await assert_ended(replaying)
    finally:
        await hub.close()


async def test_backlog_counts_what_the_next_steps_return_without_waiting(
    hub: NotificationHub,
) -> None:
    """What the NETCONF and SSE senders batch into one write (issue 12: a backlog written
    event by event to a lost connection made asyncio warn on every write)."""
    live = hub.subscribe()
    replay = hub.subscribe(start=0)
    try:
        assert live.backlog == 0
        for i in range(3):
            hub.publish(bell(i))
        assert live.backlog == 3
        assert replay.backlog == 0  # replaying: the store is read step by step
        assert rungs(await take(live, 2)) == [0, 1] and live.backlog == 1
        live.close()
        assert live.backlog == 0
    finally:
        live.close()
        replay.close()


async def test_close_ends_iterators(hub: NotificationHub) -> None:
    async def consume(sub: NotificationSubscription) -> list[Any]:
        return [item async for item in sub]

    live = hub.subscribe()
    replay = hub.subscribe(start=0, stop=time.time() + 3600)
    tasks = [asyncio.create_task(consume(s)) for s in (live, replay)]
    hub.publish(bell(1))
    await asyncio.sleep(0.01)
    assert not any(t.done() for t in tasks)

    # closing one subscription ends only its iterator
    own = hub.subscribe()
    own_task = asyncio.create_task(consume(own))
    await asyncio.sleep(0)
    own.close()
    assert own.closed
    assert await asyncio.wait_for(own_task, STEP) == []

    await hub.close()
    live_items, replay_items = await asyncio.wait_for(asyncio.gather(*tasks), STEP)
    assert rungs(live_items) == [1]
    assert rungs(replay_items) == ["ReplayComplete", 1]
    assert live.closed and replay.closed
    with pytest.raises(NfoError):
        hub.subscribe()
    hub.publish(bell(2))  # still logged after close
    await hub.close()     # idempotent
