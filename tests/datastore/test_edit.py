"""NETCONF edit-config semantics (RFC 6241 section 7.2) on real libyang trees.

Every edit goes through Session.edit / edit_many of a fresh datastore (the
``ds`` fixture), in RFC 7951 JSON and in XML.  Refused edits must leave the
stored data exactly as it was.  Regressions for the bugs found on the way,
are grouped at the end of the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import (
    ChangeCreated,
    ChangeDeleted,
    ChangeModified,
    ChangeMoved,
    Datastore,
    SqliteStorage,
)
from nfo.errors import NfoError
from nfo.schema import Schema, WithDefaults

OP = "ietf-netconf:operation"
TOP = "nfo-test:top"
T = "/nfo-test:top"
NS = ('xmlns="urn:nfo:test" xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" '
      'xmlns:yang="urn:ietf:params:xml:ns:yang:1" xmlns:t="urn:nfo:test"')
DEMO_CATALOG = (Path(__file__).resolve().parents[2] / "yang" / "nfo-demo-catalog.json").read_text()


# -- helpers ----------------------------------------------------------------------------


def X(body: str, attrs: str = "") -> str:
    """An XML edit of the test module's top container."""
    return f"<top {NS}{attrs}>{body}</top>"


def J(top: dict[str, Any]) -> str:
    return json.dumps({TOP: top})


def op(operation: str) -> dict[str, Any]:
    return {"@": {OP: operation}}


async def edit(ds: Datastore, content: str, fmt: str = "json", **kw: Any) -> list[Any]:
    async with ds.internal_session("tester") as s:
        return await s.edit("running", content, fmt, **kw)


def dump(ds: Datastore, wd: WithDefaults | None = None) -> str:
    t = ds.get("running")
    try:
        return t.print("json", with_defaults=wd)
    finally:
        t.free()


def data(ds: Datastore, wd: WithDefaults | None = None) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(dump(ds, wd))
    return out


def top(ds: Datastore, wd: WithDefaults | None = None) -> dict[str, Any]:
    out: dict[str, Any] = data(ds, wd).get(TOP, {})
    return out


async def refused(ds: Datastore, content: str, fmt: str = "json", **kw: Any) -> NfoError:
    """Apply an edit that must fail; the stored data must not change."""
    before = dump(ds)
    with pytest.raises(NfoError) as ei:
        await edit(ds, content, fmt, **kw)
    assert dump(ds) == before
    return ei.value


# A top container with enough explicit children that leaf lookups are hashed by
# libyang (see test_merge_changes_a_leaf_of_a_small_container for why that matters).
BIG_TOP = {"name": "n", "colour": "nfo-test:red", "addr": "10.0.0.1", "tags": ["a"],
           "sorted": [1]}


# -- merge ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_merge_creates_nested_data(ds: Datastore, fmt: str) -> None:
    text = {
        "json": J({"name": "n", "item": [{"name": "i1", "size": 5}], "extra": {"level": 5}}),
        "xml": X("<name>n</name><item><name>i1</name><size>5</size></item>"
                 "<extra><level>5</level></extra>"),
    }[fmt]
    changes = await edit(ds, text, fmt)
    assert top(ds) == {"name": "n", "item": [{"name": "i1", "size": 5}], "extra": {"level": 5}}
    assert changes == [
        ChangeCreated(f"{T}/name", "n"),
        ChangeCreated(f"{T}/item[name='i1']"),
        ChangeCreated(f"{T}/item[name='i1']/name", "i1"),
        ChangeCreated(f"{T}/item[name='i1']/size", "5"),
        ChangeCreated(f"{T}/extra"),
        ChangeCreated(f"{T}/extra/level", "5"),
    ]


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_merge_modifies_and_adds_nested(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({**BIG_TOP, "item": [{"name": "i1", "size": 5}]}))
    text = {
        "json": J({"name": "m", "tags": ["b"], "item": [{"name": "i1", "ref": "t1"}],
                   "thing": [{"id": "t1", "needed": "x"}]}),
        "xml": X("<name>m</name><tags>b</tags><item><name>i1</name><ref>t1</ref></item>"
                 "<thing><id>t1</id><needed>x</needed></thing>"),
    }[fmt]
    changes = await edit(ds, text, fmt)
    assert top(ds) == {**BIG_TOP, "name": "m", "tags": ["a", "b"],
                       "item": [{"name": "i1", "size": 5, "ref": "t1"}],
                       "thing": [{"id": "t1", "needed": "x"}]}
    assert ChangeModified(f"{T}/name", "m", "n") in changes
    assert ChangeCreated(f"{T}/item[name='i1']/ref", "t1") in changes


async def test_merge_of_identical_data_changes_nothing(ds: Datastore) -> None:
    await edit(ds, J({**BIG_TOP, "item": [{"name": "i1", "size": 5}]}))
    before = dump(ds)
    rev = ds.info().revision
    assert await edit(ds, J({**BIG_TOP, "item": [{"name": "i1", "size": 5}]})) == []
    assert dump(ds) == before
    assert ds.info().revision == rev


# -- replace ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_replace_list_entry_drops_children_absent_from_the_edit(
        ds: Datastore, fmt: str) -> None:
    await edit(ds, J({"item": [{"name": "i1", "size": 5, "ref": "t1"}, {"name": "i2"}],
                      "thing": [{"id": "t1", "needed": "x"}]}))
    text = {
        "json": J({"item": [{"name": "i1", **op("replace")}]}),
        "xml": X('<item nc:operation="replace"><name>i1</name></item>'),
    }[fmt]
    changes = await edit(ds, text, fmt)
    assert top(ds)["item"] == [{"name": "i1"}, {"name": "i2"}]
    assert changes == [ChangeDeleted(f"{T}/item[name='i1']/size", "5"),
                       ChangeDeleted(f"{T}/item[name='i1']/ref", "t1")]


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_replace_subtree(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({**BIG_TOP, "item": [{"name": "i1"}], "pair": [{"a": "x", "b": 1}],
                      "extra": {"level": 5, "only-when": "w"}}))
    text = {
        "json": J({**op("replace"), "name": "n", "pair": [{"a": "y", "b": 2}]}),
        "xml": X("<name>n</name><pair><a>y</a><b>2</b></pair>", ' nc:operation="replace"'),
    }[fmt]
    await edit(ds, text, fmt)
    assert top(ds) == {"name": "n", "pair": [{"a": "y", "b": 2}]}


async def test_replace_orders_user_ordered_entries_as_in_the_edit(ds: Datastore) -> None:
    await edit(ds, J({"tags": ["a", "b", "c"], "item": [{"name": "i1"}, {"name": "i2"}]}))
    await edit(ds, J({**op("replace"), "tags": ["c", "a"],
                      "item": [{"name": "i2"}, {"name": "i1"}, {"name": "i0"}]}))
    assert top(ds) == {"tags": ["c", "a"],
                       "item": [{"name": "i2"}, {"name": "i1"}, {"name": "i0"}]}


async def test_default_operation_replace_replaces_the_whole_datastore(ds: Datastore) -> None:
    await edit(ds, DEMO_CATALOG)
    await edit(ds, J({"name": "n", "item": [{"name": "i1"}]}))
    changes = await edit(ds, J({"tags": ["z"]}), default_operation="replace")
    assert data(ds) == {TOP: {"tags": ["z"]}}
    assert ChangeDeleted("/nfo-vim:vims") in changes
    assert ChangeDeleted("/nfo-catalog:catalog") in changes
    assert ChangeDeleted(f"{T}/item[name='i1']") in changes
    assert ChangeCreated(f"{T}/tags[.='z']", "z") in changes
    # an empty replace empties the datastore
    await edit(ds, "{}", default_operation="replace")
    assert data(ds) == {}


# -- create / delete / remove ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_create_existing_is_data_exists(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({"name": "n", "item": [{"name": "i1"}], "extra": {}}))
    cases = {
        "json": [J({"item": [{"name": "i1", **op("create")}]}),
                 J({"name": "m", "@name": {OP: "create"}}),
                 J({"extra": op("create")})],
        "xml": [X('<item nc:operation="create"><name>i1</name></item>'),
                X('<name nc:operation="create">m</name>'),
                X('<extra nc:operation="create"/>')],
    }[fmt]
    paths = [f"{T}/item[name='i1']", f"{T}/name", f"{T}/extra"]
    for text, path in zip(cases, paths, strict=True):
        e = await refused(ds, text, fmt)
        assert (e.tag, e.path, e.app_tag) == ("data-exists", path, None)


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_create_of_a_leaf_present_only_as_default_succeeds(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({"name": "n"}))
    assert top(ds) == {"name": "n"}
    assert top(ds, WithDefaults.REPORT_ALL)["count"] == 7
    text = {"json": J({"count": 7, "@count": {OP: "create"}}),
            "xml": X('<count nc:operation="create">7</count>')}[fmt]
    assert await edit(ds, text, fmt) == [ChangeCreated(f"{T}/count", "7")]
    assert top(ds) == {"name": "n", "count": 7}
    e = await refused(ds, text, fmt)
    assert e.tag == "data-exists"


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_delete_absent_is_data_missing(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({"name": "n", "item": [{"name": "i1"}]}))
    cases = {
        "json": [J({"item": [{"name": "zz", **op("delete")}]}),
                 J({"extra": op("delete")}),
                 J({"sorted": [3], "@sorted": [{OP: "delete"}]}),
                 J({"colour": "nfo-test:red", "@colour": {OP: "delete"}})],
        "xml": [X('<item nc:operation="delete"><name>zz</name></item>'),
                X('<extra nc:operation="delete"/>'),
                X('<sorted nc:operation="delete">3</sorted>'),
                X('<colour nc:operation="delete">t:red</colour>')],
    }[fmt]
    paths = [f"{T}/item[name='zz']", f"{T}/extra", f"{T}/sorted[.='3']", f"{T}/colour"]
    for text, path in zip(cases, paths, strict=True):
        e = await refused(ds, text, fmt)
        assert (e.tag, e.path) == ("data-missing", path)


@pytest.mark.parametrize("operation", ["delete", "remove"])
@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_delete_and_remove_of_present_data(ds: Datastore, fmt: str, operation: str) -> None:
    await edit(ds, J({"name": "n", "item": [{"name": "i1", "size": 3}, {"name": "i2"}],
                      "extra": {"level": 5}}))
    text = {"json": J({"item": [{"name": "i1", **op(operation)}], "extra": op(operation)}),
            "xml": X(f'<item nc:operation="{operation}"><name>i1</name></item>'
                     f'<extra nc:operation="{operation}"/>')}[fmt]
    changes = await edit(ds, text, fmt)
    assert top(ds) == {"name": "n", "item": [{"name": "i2"}]}
    assert changes == [
        ChangeDeleted(f"{T}/item[name='i1']"),
        ChangeDeleted(f"{T}/item[name='i1']/name", "i1"),
        ChangeDeleted(f"{T}/item[name='i1']/size", "3"),
        ChangeDeleted(f"{T}/extra"),
        ChangeDeleted(f"{T}/extra/level", "5"),
    ]


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_remove_absent_is_silent(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({"name": "n"}))
    rev = ds.info().revision
    text = {"json": J({"item": [{"name": "zz", **op("remove")}], "extra": op("remove")}),
            "xml": X('<item nc:operation="remove"><name>zz</name></item>'
                     '<extra nc:operation="remove"/>')}[fmt]
    assert await edit(ds, text, fmt) == []
    assert top(ds) == {"name": "n"}
    assert ds.info().revision == rev
    # remove of a whole absent module subtree as well
    assert await edit(ds, json.dumps({"nfo-vim:vims": op("remove")})) == []


# -- default-operation none --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_none_creates_nothing_unless_a_child_asks(ds: Datastore, fmt: str) -> None:
    text = {"json": J({"name": "n", "tags": ["a"], "item": [{"name": "i1"}]}),
            "xml": X("<name>n</name><tags>a</tags><item><name>i1</name></item>")}[fmt]
    assert await edit(ds, text, fmt, default_operation="none") == []
    assert data(ds) == {}
    # a child with its own operation creates its ancestors
    text = {"json": J({"item": [{"name": "i1", "size": 2, **op("create")}], "name": "n"}),
            "xml": X('<item nc:operation="create"><name>i1</name><size>2</size></item>'
                     "<name>n</name>")}[fmt]
    changes = await edit(ds, text, fmt, default_operation="none")
    assert top(ds) == {"item": [{"name": "i1", "size": 2}]}
    assert ChangeCreated(f"{T}/item[name='i1']/size", "2") in changes
    # with none, existing data named without an operation is left alone
    await edit(ds, J({**BIG_TOP}))
    before = dump(ds)
    assert await edit(ds, J({"name": "other", "tags": ["q"]}), default_operation="none") == []
    assert dump(ds) == before


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_none_delete_under_missing_parent_is_data_missing(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({"name": "n"}))
    text = {"json": J({"extra": {"level": 4, "@level": {OP: "delete"}}}),
            "xml": X('<extra><level nc:operation="delete">4</level></extra>')}[fmt]
    e = await refused(ds, text, fmt, default_operation="none")
    assert (e.tag, e.path) == ("data-missing", f"{T}/extra/level")
    assert "extra" not in top(ds)


# -- ordered-by user ------------------------------------------------------------------------


def names(ds: Datastore) -> list[str]:
    return [i["name"] for i in top(ds).get("item", [])]


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_list_insert_positions(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({"item": [{"name": "b"}, {"name": "c"}]}))

    def ins(name: str, where: str, key: str | None = None) -> str:
        if fmt == "json":
            meta: dict[str, str] = {"yang:insert": where}
            if key:
                meta["yang:key"] = f"[name='{key}']"
            return J({"item": [{"name": name, "@": meta}]})
        k = f" yang:key=\"[t:name='{key}']\"" if key else ""
        return X(f'<item yang:insert="{where}"{k}><name>{name}</name></item>')

    await edit(ds, ins("a", "first"), fmt)
    assert names(ds) == ["a", "b", "c"]
    await edit(ds, ins("z", "last"), fmt)
    assert names(ds) == ["a", "b", "c", "z"]
    await edit(ds, ins("bb", "after", "b"), fmt)
    assert names(ds) == ["a", "b", "bb", "c", "z"]
    changes = await edit(ds, ins("y", "before", "z"), fmt)
    assert names(ds) == ["a", "b", "bb", "c", "y", "z"]
    assert changes == [ChangeCreated(f"{T}/item[name='y']"),
                       ChangeCreated(f"{T}/item[name='y']/name", "y")]
    # moving existing entries
    assert await edit(ds, ins("z", "first"), fmt) == [ChangeMoved(f"{T}/item[name='z']", None)]
    assert names(ds) == ["z", "a", "b", "bb", "c", "y"]
    assert await edit(ds, ins("a", "after", "c"), fmt) == [
        ChangeMoved(f"{T}/item[name='a']", f"{T}/item[name='c']")]
    assert names(ds) == ["z", "b", "bb", "c", "a", "y"]
    assert await edit(ds, ins("b", "last"), fmt) == [
        ChangeMoved(f"{T}/item[name='b']", f"{T}/item[name='y']")]
    assert names(ds) == ["z", "bb", "c", "a", "y", "b"]
    # already in place: no change
    assert await edit(ds, ins("z", "first"), fmt) == []


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_leaf_list_insert_positions(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({"tags": ["b", "c"]}))

    def ins(value: str, where: str, point: str | None = None) -> str:
        if fmt == "json":
            meta = {"yang:insert": where}
            if point:
                meta["yang:value"] = point
            return J({"tags": [value], "@tags": [meta]})
        v = f' yang:value="{point}"' if point else ""
        return X(f'<tags yang:insert="{where}"{v}>{value}</tags>')

    await edit(ds, ins("a", "first"), fmt)
    await edit(ds, ins("z", "last"), fmt)
    await edit(ds, ins("bb", "after", "b"), fmt)
    await edit(ds, ins("y", "before", "z"), fmt)
    assert top(ds)["tags"] == ["a", "b", "bb", "c", "y", "z"]
    assert await edit(ds, ins("c", "first"), fmt) == [ChangeMoved(f"{T}/tags[.='c']", None)]
    assert await edit(ds, ins("a", "before", "z"), fmt) == [
        ChangeMoved(f"{T}/tags[.='a']", f"{T}/tags[.='y']")]
    assert top(ds)["tags"] == ["c", "b", "bb", "y", "a", "z"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_insert_point_missing_is_bad_attribute(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({"tags": ["a"], "item": [{"name": "i1"}]}))
    cases = {
        "json": [J({"item": [{"name": "new", "@": {"yang:insert": "after",
                                                    "yang:key": "[name='nope']"}}]}),
                 J({"item": [{"name": "i1", "@": {"yang:insert": "before",
                                                   "yang:key": "[name='nope']"}}]}),
                 J({"tags": ["new"], "@tags": [{"yang:insert": "before", "yang:value": "nope"}]})],
        "xml": [X("<item yang:insert=\"after\" yang:key=\"[t:name='nope']\">"
                  "<name>new</name></item>"),
                X("<item yang:insert=\"before\" yang:key=\"[t:name='nope']\">"
                  "<name>i1</name></item>"),
                X('<tags yang:insert="before" yang:value="nope">new</tags>')],
    }[fmt]
    paths = [f"{T}/item[name='new']", f"{T}/item[name='i1']", f"{T}/tags[.='new']"]
    for text, path in zip(cases, paths, strict=True):
        e = await refused(ds, text, fmt)
        assert (e.tag, e.app_tag, e.path) == ("bad-attribute", "missing-instance", path)


async def test_insert_relative_to_itself_or_without_point_is_refused(ds: Datastore) -> None:
    await edit(ds, J({"item": [{"name": "i1"}, {"name": "i2"}]}))
    e = await refused(ds, J({"item": [{"name": "i1", "@": {"yang:insert": "after",
                                                          "yang:key": "[name='i1']"}}]}))
    assert (e.tag, e.path) == ("bad-attribute", f"{T}/item[name='i1']")
    e = await refused(ds, J({"item": [{"name": "i1", "@": {"yang:insert": "after"}}]}))
    assert (e.tag, e.path) == ("missing-attribute", f"{T}/item[name='i1']")


# -- leaf-lists, keys, choice, presence, when, defaults, types ------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_system_ordered_leaf_list(ds: Datastore, fmt: str) -> None:
    text = {"json": J({"sorted": [3, 1, 2]}),
            "xml": X("<sorted>3</sorted><sorted>1</sorted><sorted>2</sorted>")}[fmt]
    await edit(ds, text, fmt)
    assert sorted(top(ds)["sorted"]) == [1, 2, 3]
    assert await edit(ds, J({"sorted": [2]})) == []   # already there
    assert await edit(ds, J({"sorted": [1], "@sorted": [{OP: "delete"}]})) == [
        ChangeDeleted(f"{T}/sorted[.='1']", "1")]
    assert sorted(top(ds)["sorted"]) == [2, 3]
    await edit(ds, J({"sorted": [9], **{}}))
    assert sorted(top(ds)["sorted"]) == [2, 3, 9]
    e = await refused(ds, J({"sorted": ["x"]}))
    assert e.tag == "invalid-value"


@pytest.mark.parametrize("key", ["it's", 'say "hi"', "with space", "a/b[c]='d'"])
@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_two_key_list_with_keys_needing_quotes(ds: Datastore, fmt: str, key: str) -> None:
    if fmt == "json":
        create = J({"pair": [{"a": key, "b": -3, "v": "x"}, {"a": key, "b": 4}]})
        again = J({"pair": [{"a": key, "b": -3, **op("create")}]})
        delete = J({"pair": [{"a": key, "b": 4, **op("delete")}]})
    else:
        from xml.sax.saxutils import escape
        k = escape(key)
        create = X(f"<pair><a>{k}</a><b>-3</b><v>x</v></pair><pair><a>{k}</a><b>4</b></pair>")
        again = X(f'<pair nc:operation="create"><a>{k}</a><b>-3</b></pair>')
        delete = X(f'<pair nc:operation="delete"><a>{k}</a><b>4</b></pair>')
    changes = await edit(ds, create, fmt)
    assert top(ds)["pair"] == [{"a": key, "b": -3, "v": "x"}, {"a": key, "b": 4}]
    entry_path = changes[0].path
    assert isinstance(changes[0], ChangeCreated) and entry_path.startswith(f"{T}/pair[a=")
    assert entry_path.endswith("[b='-3']")
    e = await refused(ds, again, fmt)
    assert (e.tag, e.path) == ("data-exists", entry_path)
    await edit(ds, delete, fmt)
    assert top(ds)["pair"] == [{"a": key, "b": -3, "v": "x"}]
    # a path the datastore reports can be used to read the entry back
    t = ds.get("running", entry_path)
    try:
        assert json.loads(t.print("json"))[TOP]["pair"] == [{"a": key, "b": -3, "v": "x"}]
    finally:
        t.free()


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_choice_setting_one_case_removes_the_other(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({"name": "n", "radius": 3}))
    text = {"json": J({"side": 4}), "xml": X("<side>4</side>")}[fmt]
    await edit(ds, text, fmt)
    assert top(ds) == {"name": "n", "side": 4}
    await edit(ds, J({"radius": 5}))
    assert top(ds) == {"name": "n", "radius": 5}



async def test_choice_both_cases_in_one_edit_is_refused(ds: Datastore) -> None:
    e = await refused(ds, J({"radius": 1, "side": 1}))
    assert (e.tag, e.path) == ("invalid-value", f"{T}/shape")
    e = await refused(ds, X("<radius>1</radius><side>1</side>"), "xml")
    assert (e.tag, e.path) == ("invalid-value", f"{T}/shape")


async def test_presence_container(ds: Datastore) -> None:
    await edit(ds, J({"name": "n"}))
    assert "extra" not in top(ds, WithDefaults.REPORT_ALL)
    assert await edit(ds, X("<extra/>"), "xml") == [ChangeCreated(f"{T}/extra")]
    assert top(ds) == {"name": "n", "extra": {}}
    assert top(ds, WithDefaults.REPORT_ALL)["extra"] == {"level": 1}
    await edit(ds, J({"extra": op("delete")}))
    assert top(ds) == {"name": "n"}
    assert "extra" not in top(ds, WithDefaults.REPORT_ALL)


async def test_when_condition(ds: Datastore) -> None:
    """libyang refuses a node created while its when is false, and silently drops an
    existing one whose when becomes false."""
    e = await refused(ds, J({"extra": {"level": 2, "only-when": "w"}}))
    assert (e.tag, e.path) == ("invalid-value", f"{T}/extra/only-when")
    e = await refused(ds, X("<extra><only-when>w</only-when></extra>"), "xml")  # level 1
    assert (e.tag, e.path) == ("invalid-value", f"{T}/extra/only-when")
    await edit(ds, J({"extra": {"level": 5, "only-when": "w"}}))
    assert top(ds) == {"extra": {"level": 5, "only-when": "w"}}
    # deleting level brings back the default 1: only-when disappears
    await edit(ds, J({"extra": {"level": 5, "@level": {OP: "delete"}}}))
    assert top(ds) == {"extra": {}}
    assert top(ds, WithDefaults.REPORT_ALL)["extra"] == {"level": 1}


async def test_defaults(ds: Datastore) -> None:
    await edit(ds, J({"name": "n"}))
    assert "count" not in top(ds)
    assert "count" not in top(ds, WithDefaults.EXPLICIT)
    assert top(ds, WithDefaults.REPORT_ALL)["count"] == 7
    await edit(ds, J({"count": 9}))
    assert top(ds)["count"] == 9
    assert await edit(ds, J({"count": 9, "@count": {OP: "delete"}})) == [
        ChangeDeleted(f"{T}/count", "9")]
    assert "count" not in top(ds)
    assert top(ds, WithDefaults.REPORT_ALL)["count"] == 7
    # deleting a value that exists only as a default is data-missing
    e = await refused(ds, J({"count": 7, "@count": {OP: "delete"}}))
    assert e.tag == "data-missing"


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_identityref(ds: Datastore, fmt: str) -> None:
    await edit(ds, J({**BIG_TOP, "colour": "nfo-test:blue"}))
    text = {"json": J({"colour": "nfo-test:red"}), "xml": X("<colour>t:red</colour>")}[fmt]
    assert await edit(ds, text, fmt) == [
        ChangeModified(f"{T}/colour", "nfo-test:red", "nfo-test:blue")]
    for bad in ({"json": J({"colour": "nfo-test:colour"}), "xml": X("<colour>t:colour</colour>")},
                {"json": J({"colour": "nfo-test:green"}), "xml": X("<colour>t:green</colour>")},
                {"json": J({"colour": "nfo-vim:local"}),
                 "xml": X('<colour xmlns:v="urn:nfo:vim">v:local</colour>')}):
        e = await refused(ds, bad[fmt], fmt)
        assert (e.tag, e.path) == ("invalid-value", f"{T}/colour")


async def test_union(ds: Datastore) -> None:
    await edit(ds, J({"addr": "192.0.2.1"}))
    assert top(ds)["addr"] == "192.0.2.1"
    await edit(ds, J({**BIG_TOP, "addr": 7}))
    assert top(ds)["addr"] == 7
    await edit(ds, X("<addr>8</addr>"), "xml")
    assert top(ds)["addr"] == 8
    for bad in (J({"addr": 300}), J({"addr": "7"}), J({"addr": "300.1.1.1"}), X("<addr>x</addr>")):
        e = await refused(ds, bad, "xml" if bad.startswith("<") else "json")
        assert (e.tag, e.path) == ("invalid-value", f"{T}/addr")


# -- typed changes ---------------------------------------------------------------------------


async def test_typed_changes(ds: Datastore) -> None:
    assert await edit(ds, J({**BIG_TOP, "thing": [{"id": "t1", "label": "L", "needed": "x"}]})) == [
        ChangeCreated(f"{T}/name", "n"),
        ChangeCreated(f"{T}/colour", "nfo-test:red"),
        ChangeCreated(f"{T}/addr", "10.0.0.1"),
        ChangeCreated(f"{T}/tags[.='a']", "a"),
        ChangeCreated(f"{T}/sorted[.='1']", "1"),
        ChangeCreated(f"{T}/thing[id='t1']"),
        ChangeCreated(f"{T}/thing[id='t1']/id", "t1"),
        ChangeCreated(f"{T}/thing[id='t1']/label", "L"),
        ChangeCreated(f"{T}/thing[id='t1']/needed", "x"),
    ]
    assert await edit(ds, J({"name": "m", "addr": 3, "count": 8})) == [
        ChangeModified(f"{T}/name", "m", "n"),
        ChangeCreated(f"{T}/count", "8"),
        ChangeModified(f"{T}/addr", "3", "10.0.0.1"),
    ]
    await edit(ds, J({"item": [{"name": "i1"}, {"name": "i2", "size": 4}]}))
    assert await edit(ds, J({"item": [{"name": "i2", "@": {"yang:insert": "first"}}],
                             "thing": [{"id": "t1", **op("delete")}]})) == [
        ChangeMoved(f"{T}/item[name='i2']", None),
        ChangeDeleted(f"{T}/thing[id='t1']"),
        ChangeDeleted(f"{T}/thing[id='t1']/id", "t1"),
        ChangeDeleted(f"{T}/thing[id='t1']/label", "L"),
        ChangeDeleted(f"{T}/thing[id='t1']/needed", "x"),
    ]
    # test-only validates and reports nothing, stores nothing
    before = dump(ds)
    async with ds.internal_session("t") as s:
        assert await s.edit("running", J({"name": "z"}), "json", test_option="test-only") == []
    assert dump(ds) == before


# -- errors ----------------------------------------------------------------------------------


SEEDED = J({**BIG_TOP, "item": [{"name": "i1", "size": 5}],
            "thing": [{"id": "t1", "label": "L1", "needed": "x"}]})

ERRORS = [
    # id, fmt, text, tag, path, app_tag
    ("malformed-json", "json", '{"nfo-test:top": {', "malformed-message", None, None),
    ("malformed-xml", "xml", f"<top {NS}><name>x</top>", "malformed-message", f"{T}/name", None),
    ("unknown-element-json", "json", J({"bogus": 1}), "unknown-element", T, None),
    ("unknown-element-xml", "xml", X("<bogus>1</bogus>"), "unknown-element", T, None),
    ("unknown-module-json", "json", '{"nfo-bogus:top": {}}', "unknown-element", None, None),
    ("unknown-module-xml", "xml", '<top xmlns="urn:nfo:bogus"/>', "unknown-element", None, None),
    ("wrong-type-json", "json", J({"count": "abc"}), "invalid-value", f"{T}/count", None),
    ("wrong-type-xml", "xml", X("<count>abc</count>"), "invalid-value", f"{T}/count", None),
    ("out-of-range-json", "json", J({"count": 1001}), "invalid-value", f"{T}/count", None),
    ("out-of-range-xml", "xml", X("<count>1001</count>"), "invalid-value", f"{T}/count", None),
    ("length", "json", J({"name": "x" * 33}), "invalid-value", f"{T}/name", None),
    ("must-json", "json", J({"item": [{"name": "i2", "size": 1000}]}),
     "operation-failed", f"{T}/item[name='i2']/size", "size-too-big"),
    ("must-xml", "xml", X("<item><name>i1</name><size>5</size></item>"
                          "<item><name>i2</name><size>4000</size></item>"),
     "operation-failed", f"{T}/item[name='i2']/size", "size-too-big"),
    ("leafref", "json", J({"item": [{"name": "i2", "ref": "t9"}]}),
     "data-missing", f"{T}/item[name='i2']/ref", "instance-required"),
    ("leafref-target-deleted", "json", J({"item": [{"name": "i1", "ref": "t1"}],
                                          "thing": [{"id": "t1", **op("delete")}]}),
     "data-missing", f"{T}/item[name='i1']/ref", "instance-required"),
    ("unique", "json", J({"thing": [{"id": "t2", "label": "L1", "needed": "y"}]}),
     "operation-failed", f"{T}/thing[id='t2']", "data-not-unique"),
    ("state-json", "json", J({"state": {"up": True}}), "invalid-value", f"{T}/state", None),
    ("state-xml", "xml", X("<state><up>true</up></state>"), "invalid-value", f"{T}/state", None),
]


@pytest.mark.parametrize(("fmt", "text", "tag", "path", "app_tag"),
                         [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
async def test_refused_edits(ds: Datastore, fmt: str, text: str, tag: str, path: str | None,
                             app_tag: str | None) -> None:
    await edit(ds, SEEDED)
    e = await refused(ds, text, fmt)
    assert (e.tag, e.path, e.app_tag) == (tag, path, app_tag), e.message
    assert e.message


async def test_must_violation_carries_the_model_message(ds: Datastore) -> None:
    e = await refused(ds, J({"item": [{"name": "i", "size": 1000}]}))
    assert e.message == "size must be below 1000"


async def test_mandatory_missing_is_data_missing(ds: Datastore) -> None:
    await edit(ds, SEEDED)
    e = await refused(ds, J({"thing": [{"id": "t2", "label": "L2"}]}))
    assert e.tag == "data-missing"
    assert e.path is not None and e.path.startswith(f"{T}/thing") and e.path.endswith("/needed")
    assert "needed" in e.message
    # deleting the mandatory leaf of an existing entry as well
    e = await refused(ds, J({"thing": [{"id": "t1", "needed": "x", "@needed": {OP: "delete"}}]}))
    assert e.tag == "data-missing"


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_unknown_operation_value_is_refused(ds: Datastore, fmt: str) -> None:
    await edit(ds, SEEDED)
    text = {"json": J({"name": "x", "@name": {OP: "frob"}}),
            "xml": X('<name nc:operation="frob">x</name>')}[fmt]
    e = await refused(ds, text, fmt)
    assert e.tag in ("bad-attribute", "invalid-value")
    assert "frob" in e.message


async def test_bad_options_are_refused(ds: Datastore) -> None:
    await edit(ds, SEEDED)
    e = await refused(ds, J({"name": "x"}), error_option="continue-on-error")
    assert e.tag == "operation-not-supported"
    e = await refused(ds, J({"name": "x"}), default_operation="frob")
    assert e.tag == "invalid-value"
    e = await refused(ds, J({"name": "x"}), test_option="frob")
    assert e.tag == "invalid-value"
    e = await refused(ds, J({"name": "x"}), "yaml")
    assert e.tag == "malformed-message"


async def test_failing_edit_in_the_middle_of_edit_many_applies_nothing(ds: Datastore) -> None:
    await edit(ds, SEEDED)
    before = dump(ds)
    rev = ds.info().revision
    async with ds.internal_session("t") as s:
        for bad in (J({"item": [{"name": "i9", **op("delete")}]}),     # edit error
                    J({"item": [{"name": "i9", "size": 1000}]}),       # validation error
                    '{"nfo-test:top": {'):                               # parse error
            with pytest.raises(NfoError):
                await s.edit_many("running", [J({"name": "changed", "tags": ["new"]}), bad,
                                              J({"pair": [{"a": "p", "b": 1}]})], "json")
            assert dump(ds) == before
    assert ds.info().revision == rev
    assert len(ds.history("running")) == 1


# -- the nfo model ----------------------------------------------------------------------------

INST = "nfo-instances:nf-instances"


def nf(entry: dict[str, Any]) -> str:
    return json.dumps({INST: {"nf-instance": [entry]}})


@pytest.fixture
async def catalog(ds: Datastore) -> Datastore:
    await edit(ds, DEMO_CATALOG)
    await edit(ds, json.dumps({"nfo-vim:vims": {"vim": [{"name": "sim1", "type": "nfo-vim:sim"}]}}))
    return ds


GOOD = {"name": "echo1", "descriptor": "udp-echo", "parameter": [{"name": "port", "value": "7"}]}
P = "/nfo-instances:nf-instances/nf-instance[name='echo1']"


async def test_nf_instance_accepted(catalog: Datastore) -> None:
    await edit(catalog, nf({**GOOD, "vim": "local"}))
    [entry] = data(catalog)[INST]["nf-instance"]
    assert entry == {**GOOD, "vim": "local"}
    [full] = data(catalog, WithDefaults.REPORT_ALL)[INST]["nf-instance"]
    assert full["admin-state"] == "enabled"


@pytest.mark.parametrize(("entry", "tag", "path", "app_tag", "message"), [
    ({**GOOD, "descriptor": "nope"}, "data-missing", f"{P}/descriptor", "instance-required",
     'Invalid leafref value "nope"'),
    ({**GOOD, "vim": "sim1"}, "operation-failed", f"{P}/vim", "must-violation",
     "the VIM's type is not among the descriptor's vim-types"),
    ({**GOOD, "vim": "nowhere"}, "data-missing", f"{P}/vim", "instance-required",
     'Invalid leafref value "nowhere"'),
    ({"name": "echo1", "descriptor": "udp-echo"}, "operation-failed", P, "must-violation",
     "a mandatory parameter of the descriptor is not set"),
    ({**GOOD, "parameter": [{"name": "port", "value": "7"}, {"name": "colour", "value": "x"}]},
     "operation-failed", f"{P}/parameter[name='colour']/name", "must-violation",
     "the descriptor does not declare this parameter"),
], ids=["no-descriptor", "vim-type-not-allowed", "no-vim", "missing-port", "undeclared-param"])
async def test_nf_instance_refused(catalog: Datastore, entry: dict[str, Any], tag: str, path: str,
                                   app_tag: str, message: str) -> None:
    e = await refused(catalog, nf(entry))
    assert (e.tag, e.path, e.app_tag) == (tag, path, app_tag)
    assert e.message.startswith(message)


async def test_nf_instance_missing_descriptor_leaf(catalog: Datastore) -> None:
    e = await refused(catalog, nf({"name": "echo1"}))
    assert e.tag == "data-missing"
    assert "descriptor" in e.message


async def test_catalog_change_breaking_an_instance_is_refused(catalog: Datastore) -> None:
    await edit(catalog, nf({**GOOD, "vim": "local"}))
    e = await refused(catalog, json.dumps({"nfo-catalog:catalog": {"nf-descriptor": [
        {"id": "udp-echo", "parameter": [{"name": "port", **op("delete")}]}]}}))
    assert (e.tag, e.app_tag) == ("operation-failed", "must-violation")
    assert e.message == "the descriptor does not declare this parameter"
    e = await refused(catalog, json.dumps({"nfo-catalog:catalog": {"nf-descriptor": [
        {"id": "udp-echo", "parameter": [{"name": "extra", "mandatory": True}]}]}}))
    assert e.message == "a mandatory parameter of the descriptor is not set"


# -- leaf lookup regressions ---------------------------------------------------------------

# Regressions for a bug in commit 1351332: _Editor._find used lyd_find_sibling_first,
# which matches a leaf by VALUE unless its parent has a children hash table (libyang
# builds one from LYD_HT_MIN_ITEMS=4 children).  In a parent with fewer than 4
# children a merge/replace of a new value did not find the old leaf and inserted a
# second one: refused as "Duplicate instance" or, depending on the siblings, stored
# twice, after which the datastore no longer opened.  Replay (no implicit defaults
# yet) switched lookups between by-name and by-value, so live and restarted data
# differed.  Fixed in 85a5d1d (nfo.schema.data.find_sibling).


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("before", [
    {"name": "n"},                       # was refused: Duplicate instance of "name"
    {"name": "n", "addr": 1},            # was accepted: name stored twice
], ids=["was-refused", "was-stored-twice"])
async def test_merge_changes_a_leaf_of_a_small_container(
        ds: Datastore, fmt: str, before: dict[str, Any]) -> None:
    await edit(ds, J(before))
    text = {"json": J({"name": "m"}), "xml": X("<name>m</name>")}[fmt]
    changes = await edit(ds, text, fmt)
    assert changes == [ChangeModified(f"{T}/name", "m", "n")]
    assert dump(ds) == json.dumps({TOP: {**before, "name": "m"}}, separators=(",", ":"))


@pytest.mark.parametrize("text", [
    J({"extra": {"level": 6}}),
    J({"extra": {"level": 6, "@level": {OP: "replace"}}}),
    J({"pair": [{"a": "p", "b": 1, "v": "y"}]}),
    J({"item": [{"name": "i1", "size": 6}]}),
], ids=["presence-container", "replace-leaf", "list-entry", "user-ordered-entry"])
async def test_merge_changes_a_leaf_in_a_small_entry(ds: Datastore, text: str) -> None:
    await edit(ds, J({**BIG_TOP, "extra": {"level": 5}, "pair": [{"a": "p", "b": 1, "v": "x"}],
                      "item": [{"name": "i1", "size": 5}]}))
    changes = await edit(ds, text)
    assert len(changes) == 1 and isinstance(changes[0], ChangeModified)


@pytest.mark.parametrize("change", [
    {"name": "n2", "vim": "vs2"},
    {"name": "n2", "vim": "other", "@vim": {OP: "remove"}},
], ids=["modify-unopenable", "remove-undone"])
async def test_accepted_leaf_change_survives_restart(
        schema: Schema, tmp_path: Path, change: dict[str, Any]) -> None:
    path = tmp_path / "nfo.db"
    ds = Datastore.open(schema, SqliteStorage(path))
    await ds.start()
    try:
        await edit(ds, json.dumps({
            "nfo-catalog:catalog": {"nf-descriptor": [{"id": "d2", "vim-types": ["nfo-vim:sim"]}]},
            "nfo-vim:vims": {"vim": [{"name": "vs", "type": "nfo-vim:sim"},
                                     {"name": "vs2", "type": "nfo-vim:sim"}]},
            INST: {"nf-instance": [{"name": "n2", "descriptor": "d2", "vim": "vs"}]}}))
        await edit(ds, nf(change))
        before = dump(ds)
    finally:
        await ds.close()
    ds = Datastore.open(schema, SqliteStorage(path))   # was: "no longer validates"
    try:
        assert dump(ds) == before
    finally:
        await ds.close()


# -- regressions (bugs these tests found, now fixed) --------------------------------------

@pytest.mark.parametrize("case", ["choice", "when", "choice-both"])
async def test_auto_removed_nodes_are_reported_as_deleted(ds: Datastore, case: str) -> None:
    if case == "choice-both":
        # From an empty datastore this edit is refused (test above); with radius
        # present it is accepted, reported as "radius modified to 1 + side created",
        # while libyang in fact deleted radius.
        await edit(ds, J({"name": "n", "radius": 5}))
        try:
            changes = await edit(ds, J({"radius": 1, "side": 1}))
        except NfoError:
            return
        now = top(ds)
        for c in changes:
            if isinstance(c, (ChangeCreated, ChangeModified)):
                assert c.path.rsplit("/", 1)[1] in now, f"{c} but the data is {now}"
    elif case == "choice":
        await edit(ds, J({"radius": 3}))
        changes = await edit(ds, J({"side": 4}))
        assert ChangeDeleted(f"{T}/radius", "3") in changes
    else:
        await edit(ds, J({"extra": {"level": 5, "only-when": "w"}}))
        changes = await edit(ds, J({"extra": {"level": 5, "@level": {OP: "delete"}}}))
        assert ChangeDeleted(f"{T}/extra/only-when", "w") in changes


@pytest.mark.parametrize("text", [
    J({"pair": [{"a": "p", "b": 1}, {"a": "p", "b": 1}]}),
    J({"item": [{"name": "i1"}, {"name": "i1"}]}),
    J({"sorted": [1, 1]}),
    J({"tags": ["a", "a"]}),
    J({"item": [{"name": "i1", "size": 1}, {"name": "i1", "size": 2}]}),
    X("<item><name>i2</name><size>1</size></item><item><name>i2</name><size>2</size></item>"),
], ids=["pair", "item", "leaf-list", "user-leaf-list", "conflicting", "conflicting-xml"])
async def test_duplicate_key_in_one_edit_is_refused(ds: Datastore, text: str) -> None:
    e = await refused(ds, text, "xml" if text.startswith("<") else "json")
    assert e.tag in ("data-exists", "invalid-value", "bad-element")


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_unknown_operation_value_is_bad_attribute(ds: Datastore, fmt: str) -> None:
    """RFC 6241 Appendix A: a bad attribute value is bad-attribute (libyang says
    invalid-value; XML's parser reports it at the enclosing element)."""
    await edit(ds, J({"name": "n"}))
    text = {"json": J({"name": "x", "@name": {OP: "frob"}}),
            "xml": X('<name nc:operation="frob">x</name>')}[fmt]
    e = await refused(ds, text, fmt)
    assert e.tag == "bad-attribute"
    assert e.info == {"bad-attribute": "operation", "bad-element": "name"}
    assert e.path == (f"{T}/name" if fmt == "json" else T)


@pytest.mark.parametrize(("text", "dop"), [
    ('{"nfo-test:top": ', "merge"),
    ('{"nfo-test:top": ', "replace"),
    ('{"nfo-test:top": {"name": "y"}}}', "merge"),
    ('{"nfo-test:top": {"name": "y"}} trailing', "merge"),
], ids=["truncated", "truncated-replace-wipes", "extra-brace", "trailing-text"])
async def test_malformed_json_is_always_refused(ds: Datastore, text: str, dop: str) -> None:
    await edit(ds, J({"name": "x", "tags": ["a"]}))
    e = await refused(ds, text, default_operation=dop)
    assert e.tag == "malformed-message"
