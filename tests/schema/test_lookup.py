"""Direct lookups instead of XPath: which paths name one node (``Schema.names_one``),
and that looking them up selects exactly what evaluating them does."""

from __future__ import annotations

import json

import pytest

from nfo.schema import Schema, Tree

DOC = json.dumps({"nfo-test:top": {
    "name": "n", "tags": ["a", "b|c", "it's"], "sorted": [3, 1],
    "item": [{"name": "x"}, {"name": "y/z", "size": 3}, {"name": 'say "hi"'}],
    "pair": [{"a": "p", "b": 1, "v": "one"}, {"a": "p", "b": 2}],
    "thing": [{"id": "t", "needed": "yes"}]}})


@pytest.mark.parametrize(("path", "one"), [
    ("/nfo-test:top", True),
    ("/nfo-test:top/name", True),
    ("/nfo-test:top/item[name='x']", True),
    ("/nfo-test:top/item[name='y/z']/size", True),
    ("/nfo-test:top/item[name='a|b']", True),
    ("/nfo-test:top/item[name=\"it's\"]", True),
    ("/nfo-test:top/pair[a='p'][b='1']", True),
    ("/nfo-test:top/pair[b='1'][a='p']/v", True),
    ("/nfo-test:top/tags[.='b|c']", True),
    ("/nfo-test:top/item", False),                      # a whole list
    ("/nfo-test:top/pair[a='p']", False),               # a key missing
    ("/nfo-test:top/pair[a='p'][a='q'][b='1']", False),  # a key twice
    ("/nfo-test:top/item[name='x'][size='3']", False),  # not a key
    ("/nfo-test:top/tags", False),                      # a whole leaf-list
    ("/nfo-test:top/item[1]", False),
    ("/nfo-test:top/item[name='x'] | /nfo-test:top/name", False),
    ("/nfo-test:top/item[name='x']/..", False),
    ("/nfo-test:top//name", False),
    ("/nfo-test:nothing", False),
    ("/nfo-test:top/name[.='n']", False),
])
def test_which_paths_name_one_node(schema: Schema, path: str, one: bool) -> None:
    assert schema.names_one(path) is one
    assert schema.names_one(path) is one  # the remembered answer too


@pytest.mark.parametrize("path", [
    "/nfo-test:top/item[name='x']",
    "/nfo-test:top/item[name='y/z']",
    "/nfo-test:top/item[name='y/z']/size",
    "/nfo-test:top/item[name='missing']",
    "/nfo-test:top/item[name='missing']/size",
    "/nfo-test:top/item[name='say \"hi\"']",
    "/nfo-test:top/pair[b='2'][a='p']",
    "/nfo-test:top/pair[a='p'][b='300']",     # a key value its type refuses
    "/nfo-test:top/pair[a='p'][b='x']",
    "/nfo-test:top/tags[.='b|c']",
    "/nfo-test:top/tags[.=\"it's\"]",
    "/nfo-test:top/sorted[.='1']",
    "/nfo-test:top/sorted[.='01']",
    "/nfo-test:top/name",
    "/nfo-test:top/count",
    "/nfo-test:top/extra",
])
def test_a_lookup_selects_what_xpath_selects(schema: Schema, path: str) -> None:
    assert schema.names_one(path)
    with Tree.parse(schema, DOC, "json") as tree:
        by_xpath = [n.path for n in tree.match(path)]
        assert [n.path for n in tree.match(path, one=True)] == by_xpath
        with tree.extract(path) as a, tree.extract(path, one=True) as b:
            assert a.print("json") == b.print("json")


def test_an_empty_tree_has_nothing_to_look_up(schema: Schema) -> None:
    with Tree(schema) as tree:
        assert tree.match("/nfo-test:top/name", one=True) == []
        with tree.extract("/nfo-test:top/name", one=True) as out:
            assert out.is_empty()


def test_instance_paths_are_judged_by_their_shape(schema: Schema) -> None:
    assert schema.is_instance_path("/nfo-test:top/item[name='a | /b]']")
    assert schema.is_instance_path("/nfo-test:top/item[name='x'] | /nfo-test:top/name")
    assert not schema.is_instance_path("/nfo-test:top/item[name=concat('a', 'b')]")
    assert not schema.is_instance_path("/nfo-test:top/item[size='3']")
    assert not schema.is_instance_path("/nfo-test:top/item[name='unterminated]")
