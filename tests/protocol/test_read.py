"""The shared read path: every query knob applied in one place."""

from __future__ import annotations

import json

import pytest

from nfo.datastore import Datastore
from nfo.errors import InvalidValue
from nfo.protocol.read import Content, ReadQuery, depth_of, encode, read, with_defaults_of
from nfo.schema import Fmt, WithDefaults

TOP = "/nfo-test:top"


async def seed(ds: Datastore) -> None:
    async with ds.internal_session("t") as s:
        await s.edit("running", json.dumps({"nfo-test:top": {
            "name": "n", "item": [{"name": "a", "size": 1}, {"name": "b"}],
            "extra": {"level": 2}}}), "json")
        s.set_oper(json.dumps({"nfo-test:top": {"state": {"up": True}}}), owner="probe")



async def test_select_and_anchors(ds: Datastore) -> None:
    await seed(ds)
    with read(ds, ReadQuery("running", f"{TOP}/item[name='a']")) as (tree, anchors):
        assert [a.path for a in anchors] == [f"{TOP}/item[name='a']"]
        assert json.loads(encode(tree, Fmt.JSON)) == {
            "nfo-test:top": {"item": [{"name": "a", "size": 1}]}}
    with read(ds, ReadQuery("intended")) as (tree, anchors):
        assert "top" in [a.name for a in anchors]


async def test_content(ds: Datastore) -> None:
    await seed(ds)
    with read(ds, ReadQuery("operational", TOP, content=Content.NONCONFIG)) as (tree, anchors):
        assert json.loads(encode(tree, Fmt.JSON)) == {"nfo-test:top": {"state": {"up": True}}}
        assert len(anchors) == 1
    with read(ds, ReadQuery("operational", TOP, content=Content.CONFIG)) as (tree, _):
        assert "state" not in json.loads(encode(tree, Fmt.JSON))["nfo-test:top"]
    with read(ds, ReadQuery("operational", f"{TOP}/name", content=Content.NONCONFIG)) as (
            tree, anchors):
        assert list(anchors) == []


async def test_depth_counts_from_the_selected_nodes(ds: Datastore) -> None:
    await seed(ds)
    with read(ds, ReadQuery("running", f"{TOP}/item", depth=1)) as (tree, _):
        assert json.loads(encode(tree, Fmt.JSON)) == {
            "nfo-test:top": {"item": [{"name": "a"}, {"name": "b"}]}}
    with read(ds, ReadQuery("running", depth=1)) as (tree, _):
        assert json.loads(encode(tree, Fmt.JSON, keep_empty=True))["nfo-test:top"] == {}


async def test_fields_and_origin(ds: Datastore) -> None:
    await seed(ds)
    with read(ds, ReadQuery("running", TOP, fields=f"{TOP}/item/size")) as (tree, _):
        assert json.loads(encode(tree, Fmt.JSON)) == {
            "nfo-test:top": {"item": [{"name": "a", "size": 1}]}}
    q = ReadQuery("operational", TOP, origins=frozenset({"learned"}))
    with read(ds, q) as (tree, _):
        assert json.loads(encode(tree, Fmt.JSON)) == {"nfo-test:top": {"state": {"up": True}}}
    with pytest.raises(InvalidValue), read(ds, ReadQuery("running", with_origin=True)):
        pass


def test_knob_parsers() -> None:
    assert depth_of("unbounded", "depth") is None and depth_of("3", "depth") == 3
    for bad in ("0", "65536", "-1", "x"):
        with pytest.raises(InvalidValue):
            depth_of(bad, "depth")
    assert with_defaults_of("trim") is WithDefaults.TRIM and with_defaults_of(None) is None
    with pytest.raises(InvalidValue):
        with_defaults_of("all")
