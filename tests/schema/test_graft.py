"""The graft's move of a list's instances (:func:`nfo.schema.partial._move_all`): one
pass up to the first instance of a later sibling schema, every instance moved in order
after those the target holds, nothing else moved."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nfo.schema import Fmt, Schema, Tree
from nfo.schema import _ly as ly
from nfo.schema._ly import lib
from nfo.schema.partial import _move_all

TOP = "nfo-test:top"


def pairs(keys: list[str]) -> list[dict[str, Any]]:
    return [{"a": k, "b": 1} for k in keys]


@pytest.mark.parametrize("after", [
    {},  # the pairs are the last children
    {"thing": [{"id": "t1", "needed": "n"}, {"id": "t2", "needed": "n"}], "radius": 3},
])
def test_move_all_moves_every_instance_in_order_and_nothing_else(
        schema: Schema, after: dict[str, Any]) -> None:
    new = [f"k{i}" for i in range(30)]
    work_doc = {TOP: {"name": "w", "pair": pairs(new), **after}}
    live_doc = {TOP: {"name": "l", "pair": pairs(["old"]), "sorted": [1]}}
    with Tree.parse(schema, json.dumps(work_doc), Fmt.JSON) as work, \
            Tree.parse(schema, json.dumps(live_doc), Fmt.JSON) as live:
        wtop, ltop = work._first(), live._first()
        pair = lib.lyd_child(wtop)
        while pair.schema == lib.lyd_child(wtop).schema:  # the leaf "name" comes first
            pair = pair.next
        _move_all(schema.cdata, lib.lyd_child(wtop), pair.schema, ltop, ly.xffi.new("void **"))
        moved = json.loads(live.print(Fmt.JSON))[TOP]
        left = json.loads(work.print(Fmt.JSON))[TOP]
    assert [p["a"] for p in moved["pair"]] == ["old", *new]
    assert moved["name"] == "l" and moved["sorted"] == [1] and "thing" not in moved
    assert left == {"name": "w", **after}
