"""An edit that gives an existing anydata node other content replaces it (its content
is its value: it has no children an edit could merge into), and the same content
changes nothing."""

from __future__ import annotations

import json

import pytest

from nfo.schema import Fmt, Schema, Tree
from nfo.schema.changes import ChangeCreated, ChangeDeleted
from nfo.schema.edit import apply_edit

BLOB = "/nfo-uitest:blob"


def edited(schema: Schema, before: object, after: object, op: str) -> tuple[object, list[object]]:
    with Tree.parse(schema, json.dumps({"nfo-uitest:blob": before}), Fmt.JSON) as tree, \
            Tree.parse(schema, json.dumps({"nfo-uitest:blob": after}), Fmt.JSON) as edit:
        changes = list(apply_edit(schema, tree, edit, op))
        return json.loads(tree.print(Fmt.JSON))["nfo-uitest:blob"], changes


@pytest.mark.parametrize("op", ["merge", "replace"])
def test_other_content_replaces_it(ui: Schema, op: str) -> None:
    content, changes = edited(ui, {"n": {"v": 1}}, {"n": {"v": 2}, "m": "x"}, op)
    assert content == {"n": {"v": 2}, "m": "x"}
    assert [(type(c), c.path) for c in changes] == [(ChangeDeleted, BLOB),  # type: ignore[attr-defined]
                                                    (ChangeCreated, BLOB)]


@pytest.mark.parametrize("op", ["merge", "replace", "none"])
def test_the_same_content_changes_nothing(ui: Schema, op: str) -> None:
    content, changes = edited(ui, {"n": {"v": 1}}, {"n": {"v": 1}}, op)
    assert content == {"n": {"v": 1}} and changes == []
