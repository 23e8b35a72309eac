"""``Tree.extract`` of every instance of one list or leaf-list (libyang copies them in one
call): the same copy as the general path, whatever siblings surround the list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nfo.schema import Fmt, Schema, Tree

DOC = {"nfo-test:top": {
    "name": "n", "tags": ["b", "a"], "sorted": [3, 1, 2],
    "item": [{"name": "z", "size": 1}, {"name": "a"}],
    "pair": [{"a": "x", "b": 1, "v": "v"}, {"a": "x", "b": 2}],
    "thing": [{"id": "t1", "label": "l", "needed": "y"}],
    "extra": {"level": 2}}}


@pytest.mark.parametrize("expr", [
    "/nfo-test:top/item", "/nfo-test:top/pair", "/nfo-test:top/thing",
    "/nfo-test:top/nfo-test:tags", "/nfo-test:top/sorted",
    "/nfo-test:top/nosuch", "/nfo-test:top/name", "/nfo-test:top[name='n']/item",
    "/nfo-test:top[name='m']/item",
])
def test_same_copy_as_the_general_path(schema: Schema, expr: str) -> None:
    with Tree.parse(schema, json.dumps(DOC), Fmt.JSON) as tree, Tree(schema) as general:
        tree.extract(expr, into=general)  # ``into``: never the one-call copy
        with tree.extract(expr) as fast:
            assert fast.print(Fmt.JSON) == general.print(Fmt.JSON)
            assert [n.path for n in fast.match(expr)] == [n.path for n in general.match(expr)]


def test_top_level_lists() -> None:
    schema = Schema(extra_dirs=[Path(__file__).parents[1] / "protocol" / "yang"],
                    with_nfo_modules=False)
    doc = {"nfo-paging-test:label": [{"name": "b"}, {"name": "a"}],
           "nfo-paging-test:members": {"member": [{"id": "x", "numbers": [1, 2]},
                                                  {"id": "y", "numbers": [3]}]},
           "nfo-paging-test:word": ["w2", "w1"]}
    with Tree.parse(schema, json.dumps(doc), Fmt.JSON) as tree:
        for expr in ("/nfo-paging-test:label", "/nfo-paging-test:word",
                     "/nfo-paging-test:members/member/numbers"):
            with Tree(schema) as general:
                tree.extract(expr, into=general)
                with tree.extract(expr) as fast:
                    assert fast.print(Fmt.JSON) == general.print(Fmt.JSON)
                    assert len(fast.match(expr)) in (2, 3)
