"""Bulk writes through the pipeline and what a restart does with them: runs of new
entries (the same verdicts, changes and netconf-config-change as entry by entry),
changes built only for whoever asks, snapshots written after the writer's answer,
and a reopen that replays instead of validating again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import ChangeEvent, Datastore, SqliteStorage
from nfo.datastore.datastore import VALIDATED_UNDER
from nfo.datastore.nacm import Identity
from nfo.datastore.transaction import SNAPSHOT_DELAY
from nfo.errors import DataExists, InvalidValue, NfoError
from nfo.schema import Fmt, Schema, WithDefaults
from nfo.schema.changes import ChangeCreated, ChangeModified

TOP = "nfo-test:top"


def pairs(keys: list[str]) -> dict[str, Any]:
    return {"pair": [{"a": k, "b": 1, "v": f"v-{k}"} for k in keys]}


def doc(**top: Any) -> str:
    return json.dumps({TOP: top})


def everything(ds: Datastore) -> str:
    with ds.get("running") as t:
        return t.print(Fmt.JSON, with_defaults=WithDefaults.REPORT_ALL)


async def edit(ds: Datastore, *docs: str, report: bool = True) -> list[Any]:
    async with ds.internal_session("test") as s:
        return await s.edit_many("running", list(docs), "json", report=report)


def config_changes(ds: Datastore) -> list[dict[str, Any]]:
    out = []
    for n in ds.storage.notifications():
        data = json.loads(json.loads(n.content)["data"])
        if "ietf-netconf-notifications:netconf-config-change" in data:
            out.append(data["ietf-netconf-notifications:netconf-config-change"])
    return out


async def test_bulk_create_changes_and_config_change(ds: Datastore) -> None:
    await edit(ds, doc(name="n"))
    changes = await edit(ds, doc(**pairs([f"k{i}" for i in range(3)])))
    assert changes[:3] == [ChangeCreated(f"/{TOP}/pair[a='k0'][b='1']"),
                           ChangeCreated(f"/{TOP}/pair[a='k0'][b='1']/a", "k0"),
                           ChangeCreated(f"/{TOP}/pair[a='k0'][b='1']/b", "1")]
    assert len(changes) == 12
    assert config_changes(ds)[-1]["edit"] == [
        {"operation": "create", "target": f"/{TOP}/pair[a='k{i}'][b='1']"} for i in range(3)]
    await edit(ds, doc(**pairs([f"m{i}" for i in range(100)])), report=False)
    assert config_changes(ds)[-1]["edit"] == [{"operation": "merge", "target": f"/{TOP}"}]
    assert len(json.loads(everything(ds))[TOP]["pair"]) == 103


async def test_an_entry_named_twice_is_refused_as_always(ds: Datastore) -> None:
    await edit(ds, doc(name="n"))
    before = everything(ds)
    twice = {"pair": [{"a": "x", "b": 1}, {"a": "y", "b": 1}, {"a": "x", "b": 1}]}
    with pytest.raises(DataExists, match="names this entry twice"):
        await edit(ds, doc(**twice))
    # once in a run, once beside it (the container given twice)
    again = json.dumps({TOP: pairs(["p", "q"])})[:-1] + ", " + json.dumps(
        {TOP: {"pair": [{"a": "q", "b": 1, "@": {"ietf-netconf:operation": "merge"}}]}})[1:]
    with pytest.raises(DataExists, match="names this entry twice"):
        await edit(ds, again)
    with pytest.raises(InvalidValue, match="holds both"):
        await edit(ds, doc(pair=[{"a": "ok", "b": 1}, {"a": "it's \"q\"", "b": 1}]))
    assert everything(ds) == before


XML_EDITS = [
    "".join(f"<pair><a>k{i}</a><b>1</b><v>v{i}</v></pair>" for i in range(30)),
    "<pair><a>x</a><b>1</b></pair><pair><a>y</a><b>1</b></pair><pair><a>x</a><b>1</b></pair>",
    "<pair><a>z</a><b>1</b></pair><thing><id>m</id></thing>",
    "<thing><id>u</id><label>L</label><needed>n</needed></thing>",
    "<item><name>big</name><size>5000</size></item><pair><a>w</a><b>1</b></pair>",
]


@pytest.mark.parametrize("body", XML_EDITS)
async def test_a_plain_xml_edit_gets_the_checked_ones_verdict(schema: Schema, tmp_path: Path,
                                                              body: str) -> None:
    """The same XML with a comment (which makes it not plain) gives the same result."""
    results = []
    for k, text in enumerate([body, "<!-- checked -->" + body]):
        ds = Datastore.open(schema, SqliteStorage(tmp_path / f"{k}.db"))
        await ds.start()
        try:
            await edit(ds, doc(name="n", thing=[{"id": "t", "label": "L", "needed": "n"}]))
            async with ds.internal_session("test") as s:
                try:
                    await s.edit("running", f'<top xmlns="urn:nfo:test">{text}</top>',
                                 Fmt.XML, report=False)
                    results.append(("ok", everything(ds)))
                except NfoError as e:
                    results.append(("error", type(e), e.tag, e.app_tag, e.message, e.path))
        finally:
            await ds.close()
    assert results[0] == results[1]


async def test_subscribers_get_run_changes_without_report(ds: Datastore) -> None:
    events: list[ChangeEvent] = []

    async def record(ev: ChangeEvent) -> None:
        events.append(ev)

    sub = ds.subscribe("nfo-test", record)
    other = ds.subscribe("nfo-vim", record)
    try:
        assert await edit(ds, doc(**pairs(["a", "b"])), report=False) == []
        await ds.settle()
    finally:
        await ds.unsubscribe(sub)
        await ds.unsubscribe(other)
    assert [e.phase for e in events] == ["change", "done"]
    assert ChangeCreated(f"/{TOP}/pair[a='b'][b='1']/v", "v-b") in events[1].changes


async def test_a_subscriber_of_entries_gets_one_change_per_created_entry(
        ds: Datastore) -> None:
    """``entries=True``: a bulk edit's created entries reach it as one change each (the
    entry's path); changes to existing entries as always."""
    got: dict[bool, list[list[Any]]] = {True: [], False: []}

    def recorder(entries: bool) -> Any:
        async def record(ev: ChangeEvent) -> None:
            if ev.phase == "done":
                got[entries].append(list(ev.changes))
        return record

    subs = [ds.subscribe("nfo-test", recorder(e), entries=e) for e in (True, False)]
    try:
        await edit(ds, doc(**pairs(["a", "b", "c"])), report=False)
        await edit(ds, doc(pair=[{"a": "b", "b": 1, "v": "new"}]), report=False)
        await ds.settle()
    finally:
        for sub in subs:
            await ds.unsubscribe(sub)
    entry = f"/{TOP}/pair[a='%s'][b='1']"
    assert got[True][0] == [ChangeCreated(entry % k) for k in "abc"]
    assert ChangeCreated(entry % "b" + "/v", "v-b") in got[False][0]
    assert len(got[False][0]) == 3 * 4  # each entry, its two keys and its v
    assert got[True][1] == got[False][1] == [
        ChangeModified(entry % "b" + "/v", "new", "v-b")]


async def test_snapshot_after_the_answer_and_on_close(schema: Schema, tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "nfo.db")
    ds = Datastore.open(schema, storage)
    ds.snapshot_every_commits = 1
    await ds.start()
    s = ds.internal_session("test")
    try:
        await s.edit("running", doc(name="a"), "json")
        revision = ds.info().revision
        await asyncio.sleep(SNAPSHOT_DELAY * 3)  # the writer answered before it
        snap = storage.snapshot_at("running", revision)
        assert snap is not None and snap.revision == revision
        await s.edit("running", doc(name="b"), "json")
    finally:
        await s.close()
        await ds.close()  # writes the snapshot still due
    with SqliteStorage(tmp_path / "nfo.db") as again:
        assert again.since_snapshot("running") == (0, 0)


async def reopened(schema: Schema, path: Path) -> str:
    ds = Datastore.open(schema, SqliteStorage(path))
    await ds.start()
    try:
        return everything(ds)
    finally:
        await ds.close()


async def fill(schema: Schema, path: Path, *, switch_case: bool) -> str:
    """Commits, a snapshot after the third, two more commits (to replay); the data."""
    ds = Datastore.open(schema, SqliteStorage(path))
    await ds.start()
    try:
        return await _fill(ds, switch_case)
    finally:
        await ds.close()


async def _fill(ds: Datastore, switch_case: bool) -> str:
    ds.snapshot_every_commits = 3
    await edit(ds, doc(name="n", count=9, **pairs([f"k{i}" for i in range(20)])))
    await edit(ds, doc(thing=[{"id": "t", "needed": "x"}], extra={"level": 5}))
    await edit(ds, doc(radius=3))
    await asyncio.sleep(SNAPSHOT_DELAY * 3)  # the snapshot
    # the other case of the choice: radius goes (when replayed too)
    await edit(ds, doc(**pairs(["late"])) if not switch_case else doc(side=4))
    await edit(ds, doc(pair=[{"a": "k3", "b": 1, "@": {"ietf-netconf:operation":
                                                       "delete"}}]))
    assert ds.storage.since_snapshot("running")[0] == 2
    live = everything(ds)
    ds._tx._snapshots.clear()  # keep the log to replay
    return live


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each open validated the stored data whole."""
    validated: list[bool] = []
    real = Datastore._load_trees

    def spy(self: Datastore, state: Any, *, trusted: bool) -> Any:
        validated.append(not trusted)
        return real(self, state, trusted=trusted)

    monkeypatch.setattr(Datastore, "_load_trees", spy)
    return validated


async def test_reopen_replays_without_validating_again(
        schema: Schema, tmp_path: Path, loads: list[bool]) -> None:
    path = tmp_path / "nfo.db"
    live = await fill(schema, path, switch_case=True)
    with SqliteStorage(path) as s:
        assert s.get_meta(VALIDATED_UNDER) == schema.fingerprint()
    assert await reopened(schema, path) == live
    assert loads == [True, False]


async def test_another_schema_validates_everything(
        schema: Schema, tmp_path: Path, loads: list[bool]) -> None:
    path = tmp_path / "nfo.db"
    live = await fill(schema, path, switch_case=False)
    with SqliteStorage(path) as s:
        s.set_meta(VALIDATED_UNDER, "another schema")
    assert await reopened(schema, path) == live
    assert loads == [True, True]
    with SqliteStorage(path) as s:
        assert s.get_meta(VALIDATED_UNDER) == schema.fingerprint()
    assert await reopened(schema, path) == live
    assert loads == [True, True, False]


async def test_a_config_change_is_logged_exactly_as_libyang_prints_it(ds: Datastore) -> None:
    """netconf-config-change is built as text when that text needs no escape: it must
    be what libyang parses, validates against the new data and prints back."""
    user = ds.session(Identity("alice", internal=True))
    server = ds.internal_session("test")
    steps: list[tuple[Any, str]] = [
        (server, doc(name="n")),
        (user, doc(**pairs(["a", "b"]))),
        (user, doc(**pairs([f"m{i}" for i in range(100)]))),  # too many: merge of the top
        (server, doc(pair=[{"a": "a", "b": 1, "v": "changed"}])),
        (user, doc(pair=[{"a": 'quote"d', "b": 1}])),  # escaped: built by libyang
        (user, doc(pair=[{"a": "it's", "b": 1}])),
        (user, doc(pair=[{"a": "a", "b": 1, "@": {"ietf-netconf:operation": "delete"}}])),
    ]
    for seen, (session, text) in enumerate(steps, 1):
        await session.edit("running", text, "json")
        logged = [json.loads(n.content)["data"] for n in ds.storage.notifications()]
        assert len(logged) == seen
        with ds.get("running") as data:
            checked = ds.notifications.check(logged[-1], "json", data=data)
            try:
                assert checked.op is not None
                assert checked.op.tree.print(Fmt.JSON) == logged[-1]
            finally:
                checked.discard()
    last = json.loads(json.loads(list(ds.storage.notifications())[-1].content)["data"])
    assert last["ietf-netconf-notifications:netconf-config-change"]["edit"] == [
        {"target": f"/{TOP}", "operation": "delete"}]
    assert last["ietf-netconf-notifications:netconf-config-change"]["changed-by"][
        "username"] == "alice"
