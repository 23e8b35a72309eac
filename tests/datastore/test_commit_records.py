"""What a commit record keeps of an edit, and replaying every kind on reopen.

An edit a client sent as text is kept as that text with its format (XML or
JSON: operation attributes, prefixes and all); an edit given as a tree is
printed as JSON, and records written before texts were kept (JSON, no format)
still replay.  Each kind is replayed from the log (no snapshot after it) both
ways a reopen can: trusted (the data was validated under this schema) and
validated whole (another schema's fingerprint).  Real libyang, real SQLite."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import Datastore, SqliteStorage
from nfo.datastore.datastore import VALIDATED_UNDER
from nfo.schema import Fmt, Schema, Tree, WithDefaults

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
T = "urn:nfo:test"


def everything(ds: Datastore) -> str:
    with ds.get("running") as t:
        return t.print(Fmt.JSON, with_defaults=WithDefaults.REPORT_ALL)


def items(ds: Datastore) -> list[list[dict[str, Any]]]:
    """The edits of every commit record of running, oldest first."""
    return [json.loads(r.payload) for r in reversed(ds.storage.history("running"))
            if r.kind == "edit"]


XML_EDITS: list[tuple[bytes, str]] = [
    # prefixed identityref, user-ordered entries, a default-operation
    (f'<t:top xmlns:t="{T}"><t:name>n</t:name><t:colour>t:red</t:colour>'
     '<t:tags>b</t:tags><t:tags>a</t:tags>'
     '<t:pair><t:a>k1</t:a><t:b>1</t:b><t:v>one</t:v></t:pair>'
     '<t:pair><t:a>k2</t:a><t:b>2</t:b></t:pair></t:top>'.encode(), "merge"),
    # operation attributes: create, delete, and a user-ordered insert
    (f'<top xmlns="{T}" xmlns:nc="{NC}" xmlns:yang="urn:ietf:params:xml:ns:yang:1">'
     '<thing nc:operation="create"><id>x</id><needed>y</needed></thing>'
     '<pair nc:operation="delete"><a>k2</a><b>2</b></pair>'
     '<tags yang:insert="first">c</tags></top>'.encode(), "merge"),
    # default-operation none: only the marked node changes
    (f'<top xmlns="{T}" xmlns:nc="{NC}"><name>kept</name>'
     '<extra nc:operation="replace"><level>5</level></extra></top>'.encode(), "none"),
]


async def write_all_kinds(ds: Datastore) -> None:
    async with ds.internal_session("test") as s:
        for text, dop in XML_EDITS:
            await s.edit("running", text, Fmt.XML, default_operation=dop)
        await s.edit("running", json.dumps({"nfo-test:top": {"addr": 3, "pair": [
            {"a": "k3", "b": 3, "@": {"ietf-netconf:operation": "create"}}]}}), "json")
        with Tree.parse(ds.schema, json.dumps({"nfo-test:top": {"side": 4}}), Fmt.JSON) as t:
            await s.edit("running", t)


async def test_records_keep_the_clients_text(ds: Datastore) -> None:
    await write_all_kinds(ds)
    got = items(ds)[-5:]
    for (text, dop), record in zip(XML_EDITS, got, strict=False):
        assert record == [{"default-operation": dop, "edit": text.decode(), "format": "xml"}]
    assert got[3][0]["format"] == "json" and "addr" in got[3][0]["edit"]
    assert "format" not in got[4][0]  # a tree: printed as JSON, as records always were
    assert json.loads(got[4][0]["edit"]) == {"nfo-test:top": {"side": 4}}


async def test_a_candidate_commit_keeps_the_texts(ds: Datastore) -> None:
    async with ds.internal_session("test") as s:
        await s.edit("candidate", XML_EDITS[0][0], Fmt.XML)
        await s.edit("candidate", XML_EDITS[1][0], Fmt.XML)
        await s.commit()
    assert items(ds)[-1] == [{"default-operation": "merge", "edit": text.decode(),
                              "format": "xml"} for text, _ in XML_EDITS[:2]]


async def _legacy(path: Path) -> None:
    """A record as written before texts were kept: JSON without a format."""
    with SqliteStorage(path) as storage:
        edit = {"nfo-test:top": {"thing": [{"id": "old", "needed": "z",
                                            "@": {"ietf-netconf:operation": "create"}}]}}
        storage.append_commit("running", time.time(), "old", "edit", json.dumps(
            [{"default-operation": "merge", "edit": json.dumps(edit)}]))


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "validated"])
async def test_every_kind_replays_on_reopen(schema: Schema, tmp_path: Path,
                                            trusted: bool) -> None:
    path = tmp_path / "nfo.db"
    ds = Datastore.open(schema, SqliteStorage(path))
    await ds.start()
    try:
        await ds.internal_session("x").edit("running", '{"nfo-test:top": {"count": 9}}', "json")
        ds.snapshot("running")  # the log replays from here
        await write_all_kinds(ds)
        ds._tx._snapshots.clear()  # keep the log to replay
        live = everything(ds)
    finally:
        await ds.close()
    if not trusted:
        with SqliteStorage(path) as s:
            s.set_meta(VALIDATED_UNDER, "another schema")
    again = Datastore.open(schema, SqliteStorage(path))
    await again.start()
    try:
        assert everything(again) == live
        assert again.storage.since_snapshot("running")[0] == 5
    finally:
        await again.close()
    # an old record after them replays too
    await _legacy(path)
    again = Datastore.open(schema, SqliteStorage(path))
    await again.start()
    try:
        got = json.loads(everything(again))["nfo-test:top"]
        assert {"id": "old", "needed": "z"} in got["thing"]
        assert got["extra"] == {"level": 5}
        assert got["tags"] == ["c", "b", "a"]
    finally:
        await again.close()
