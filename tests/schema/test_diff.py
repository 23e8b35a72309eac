"""The difference of two configuration trees (nfo.schema.diff): typed changes with
values, subtrees as RFC 7951 JSON, the fewest moves, defaults counted as absent."""

from __future__ import annotations

import json
from typing import Any

from nfo.schema import Fmt, Schema, Tree
from nfo.schema.diff import Difference, diff_trees
from nfo.schema.edit import validate

TOP = "/nfo-test:top"


def tree(schema: Schema, **top: Any) -> Tree:
    t = Tree.parse(schema, json.dumps({"nfo-test:top": top}), Fmt.JSON)
    validate(schema, t)  # defaults added, as in a live datastore
    return t


def diff(schema: Schema, before: dict[str, Any], after: dict[str, Any]) -> list[Difference]:
    with tree(schema, **before) as b, tree(schema, **after) as a:
        return diff_trees(b, a)


def test_identical_trees_have_no_difference(schema: Schema) -> None:
    doc = {"name": "n", "tags": ["a", "b"], "item": [{"name": "i", "size": 3}]}
    assert diff(schema, doc, doc) == []
    assert diff(schema, {}, {}) == []


def test_leaves_created_modified_deleted(schema: Schema) -> None:
    assert diff(schema, {"name": "a", "addr": "1.2.3.4"}, {"name": "b", "count": 9}) == [
        Difference("delete", f"{TOP}/addr", prev_value="1.2.3.4"),
        Difference("modify", f"{TOP}/name", value="b", prev_value="a"),
        Difference("create", f"{TOP}/count", value="9"),
    ]


def test_an_explicit_default_differs_from_the_implicit_one(schema: Schema) -> None:
    # count defaults to 7: setting it to 7 creates it, dropping it deletes it
    assert diff(schema, {}, {"count": 7}) == [Difference("create", f"{TOP}/count", value="7")]
    assert diff(schema, {"count": 7}, {}) == [
        Difference("delete", f"{TOP}/count", prev_value="7")]


def test_effective_values_count_implicit_defaults_as_set(schema: Schema) -> None:
    # count defaults to 7: an explicit 7 is the value in force either way
    with tree(schema, count=7) as explicit, tree(schema) as implicit, \
            tree(schema, count=8) as other:
        assert diff_trees(implicit, explicit, effective=True) == []
        assert diff_trees(explicit, implicit, effective=True) == []
        assert diff_trees(other, implicit, effective=True) == [
            Difference("modify", f"{TOP}/count", value="7", prev_value="8")]


def test_entries_created_and_deleted_carry_their_subtree(schema: Schema) -> None:
    out = diff(schema, {"thing": [{"id": "t1", "needed": "x", "label": "L"}]},
               {"pair": [{"a": "p", "b": 1, "v": "z"}]})
    assert [(d.operation, d.path) for d in out] == [
        ("delete", f"{TOP}/thing[id='t1']"), ("create", f"{TOP}/pair[a='p'][b='1']")]
    assert json.loads(out[0].data or "") == {
        "nfo-test:thing": [{"id": "t1", "label": "L", "needed": "x"}]}
    assert json.loads(out[1].data or "") == {"nfo-test:pair": [{"a": "p", "b": 1, "v": "z"}]}


def test_non_presence_containers_are_looked_through(schema: Schema) -> None:
    # top exists only to hold its children: the entry is what was created
    out = diff(schema, {}, {"item": [{"name": "i"}]})
    assert [(d.operation, d.path) for d in out] == [("create", f"{TOP}/item[name='i']")]
    # a presence container is itself a change
    out = diff(schema, {}, {"extra": {"level": 5}})
    assert [(d.operation, d.path) for d in out] == [("create", f"{TOP}/extra")]
    assert json.loads(out[0].data or "") == {"nfo-test:extra": {"level": 5}}


def test_changes_inside_an_entry(schema: Schema) -> None:
    out = diff(schema, {"item": [{"name": "i", "size": 1}, {"name": "j"}]},
               {"item": [{"name": "i", "size": 2}, {"name": "j"}]})
    assert out == [Difference("modify", f"{TOP}/item[name='i']/size", value="2",
                              prev_value="1")]


def test_leaf_list_values(schema: Schema) -> None:
    out = diff(schema, {"sorted": [1, 2]}, {"sorted": [2, 3]})
    assert out == [Difference("delete", f"{TOP}/sorted[.='1']", prev_value="1"),
                   Difference("create", f"{TOP}/sorted[.='3']", value="3")]


def test_the_fewest_moves_of_ordered_by_user_entries(schema: Schema) -> None:
    out = diff(schema, {"tags": ["a", "b", "c", "d"]}, {"tags": ["b", "c", "d", "a"]})
    assert out == [Difference("move", f"{TOP}/tags[.='a']", after=f"{TOP}/tags[.='d']")]
    out = diff(schema, {"item": [{"name": "x"}, {"name": "y"}, {"name": "z"}]},
               {"item": [{"name": "z"}, {"name": "x"}, {"name": "y"}]})
    assert out == [Difference("move", f"{TOP}/item[name='z']", after=None)]
    # a new entry is a create; the others keep their relative order: no move
    out = diff(schema, {"tags": ["a", "b"]}, {"tags": ["n", "a", "b"]})
    assert out == [Difference("create", f"{TOP}/tags[.='n']", value="n")]


def test_system_ordered_lists_ignore_order(schema: Schema) -> None:
    out = diff(schema, {"pair": [{"a": "x", "b": 1}, {"a": "y", "b": 2}]},
               {"pair": [{"a": "y", "b": 2}, {"a": "x", "b": 1}]})
    assert out == []


def test_other_top_level_modules(schema: Schema) -> None:
    with Tree(schema) as empty, Tree.parse(schema, json.dumps(
            {"nfo-vim:vims": {"vim": [{"name": "v", "type": "local"}]}}), Fmt.JSON) as vims:
        out = diff_trees(empty, vims)
        assert [(d.operation, d.path) for d in out] == [
            ("create", "/nfo-vim:vims/vim[name='v']")]
        assert [(d.operation, d.path) for d in diff_trees(vims, empty)] == [
            ("delete", "/nfo-vim:vims/vim[name='v']")]


def test_long_lists_with_changes_in_the_middle(schema: Schema) -> None:
    # entries standing at the same place are paired directly, the others by key
    before = [{"a": f"k{i}", "b": i, "v": "x"} for i in range(50)]
    after = [dict(e) for e in before if e["a"] != "k10"]
    after.insert(20, {"a": "new", "b": 1})
    after[30]["v"] = "y"
    out = diff(schema, {"pair": before}, {"pair": after})
    assert [(d.operation, d.path) for d in out] == [
        ("delete", f"{TOP}/pair[a='k10'][b='10']"),
        ("create", f"{TOP}/pair[a='new'][b='1']"),
        ("modify", f"{TOP}/pair[a='{after[30]['a']}'][b='{after[30]['b']}']/v"),
    ]
