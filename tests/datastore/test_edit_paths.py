"""Change paths built by edit.py without libyang equal libyang's own ``lyd_path``.

``nfo.schema.edit`` derives a node's data path from its parent's path, its
name and its key predicates instead of calling ``lyd_path`` per node.  These
differential tests hold the derivation to libyang's output byte for byte: odd
key values (quotes of both kinds, brackets, slashes, non-ASCII, empty), several
keys, leaf-lists, a child from another module (augment), nodes at the top.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nfo.errors import InvalidValue
from nfo.schema import Fmt, Schema, Tree
from nfo.schema._ly import ffi, lib
from nfo.schema.changes import ChangeCreated, ChangeDeleted
from nfo.schema.data import node_path, node_value, path_steps, siblings
from nfo.schema.edit import apply_edit, child_path, names_of

TEST_YANG = Path(__file__).parent / "yang"
_PARSE = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE

AUG = """module nfo-test-aug {
  yang-version 1.1;
  namespace "urn:nfo:test-aug";
  prefix a;
  import nfo-test { prefix t; }
  description "Children of nfo-test from another module.";
  revision 2026-12-03 { description "Initial."; }
  augment "/t:top/t:pair" {
    description "Per pair.";
    leaf-list note { type string; description "Notes."; }
    list mark { key "k"; description "Marks."; leaf k { type string; description "K."; } }
  }
  list loose { key "id"; description "Top level."; leaf id { type string; description "Id."; } }
}
"""

ODD = ["a'b", 'a"b', "'", '"', "x]y", "p/q", "", "é ü", "a\\b", "[k='v']", " sp ",
       "a=b", "*", "..", "\u2028", "tab\there"]
# a key or leaf-list value holding both quotes is refused at creation (no path can
# address it): see test_quotes_as_libyang_prints_them
text = st.one_of(st.sampled_from(ODD),
                 st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Co"))
                         | st.sampled_from("'\"[]/=\t"), max_size=6)
                 .filter(lambda v: not ("'" in v and '"' in v)))


@pytest.fixture(scope="module")
def aug_schema(tmp_path_factory: pytest.TempPathFactory) -> Schema:
    d = tmp_path_factory.mktemp("yang")
    (d / "nfo-test-aug.yang").write_text(AUG)
    return Schema(extra_dirs=[TEST_YANG, d])


def _ctx(schema: Schema) -> Any:
    return schema.ctx.cdata if hasattr(schema.ctx, "cdata") else schema.ctx


def preorder(node: Any) -> Iterator[Any]:
    for n in siblings(node):
        yield n
        if not n.schema.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
            yield from preorder(lib.lyd_child(n))


def content(items: list[str], pairs: list[tuple[str, int]], tags: list[str],
            notes: list[str]) -> dict[str, Any]:
    top: dict[str, Any] = {}
    if items:
        top["item"] = [{"name": n, "size": i} for i, n in enumerate(items)]
    if pairs:
        top["pair"] = [{"a": a, "b": b, "v": "x",
                        **({"nfo-test-aug:note": notes,
                            "nfo-test-aug:mark": [{"k": k} for k in notes]} if notes else {})}
                       for a, b in pairs]
    if tags:
        top["tags"] = tags
    doc: dict[str, Any] = {"nfo-test:top": top}
    if items:
        doc["nfo-test-aug:loose"] = [{"id": n} for n in items]
    return doc


edits = st.tuples(
    st.lists(text, unique=True, max_size=5),
    st.lists(st.tuples(text, st.integers(-128, 127)), unique=True, max_size=4),
    st.lists(text, unique=True, max_size=4),
    st.lists(text, unique=True, max_size=3),
)


def parse(ctx: Any, doc: dict[str, Any]) -> Tree:
    return Tree.parse(ctx, json.dumps(doc, ensure_ascii=False), "json", parse_opts=_PARSE)


SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(edit=edits)
def test_child_path_is_lyd_path(aug_schema: Schema, edit: tuple[Any, ...]) -> None:
    with parse(_ctx(aug_schema), content(*edit)) as t:
        for n in preorder(t._first()):
            top = n.parent == ffi.NULL
            pp = "" if top else node_path(ffi.cast("struct lyd_node *", n.parent))
            assert child_path(pp, n, names_of(aug_schema)) == node_path(n)


def _created(nodes: Iterator[Any]) -> list[Any]:
    return [ChangeCreated(node_path(n), node_value(n)) for n in nodes]


def subtree(n: Any) -> Iterator[Any]:
    yield n
    if not n.schema.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
        yield from preorder(lib.lyd_child(n))


def entries(work: Tree) -> Iterator[Any]:
    """The list entries the edits name: item, pair (under top) and loose."""
    for n in siblings(work._first()):
        if node_path(n) == "/nfo-test:top":
            yield from (c for c in siblings(lib.lyd_child(n))
                        if ffi.string(c.schema.name).decode() in ("item", "pair"))
        else:
            yield n


@SETTINGS
@given(edit=edits, existing=st.booleans())
def test_change_paths_are_lyd_paths(aug_schema: Schema, edit: tuple[Any, ...],
                                    existing: bool) -> None:
    """Creating entries (under an existing container, or the container with them) and
    deleting them again records exactly the lyd_path of every node, parents first."""
    ctx = _ctx(aug_schema)
    doc = content(*edit)
    work = parse(ctx, {"nfo-test:top": {"name": "n"}} if existing else {})
    try:
        with parse(ctx, doc) as e:
            changes = apply_edit(aug_schema, work, e, "merge")
        expected = []
        for n in siblings(work._first()):
            if existing and node_path(n) == "/nfo-test:top":
                expected += [c for c in _created(preorder(lib.lyd_child(n)))
                             if c.path != "/nfo-test:top/name"]
            else:
                expected += _created(subtree(n))
        assert sorted(changes, key=repr) == sorted(expected, key=repr)
        # the same entries deleted name the same paths, the entries' own included
        deleted = [ChangeDeleted(node_path(n), node_value(n))
                   for entry in entries(work) for n in subtree(entry)]
        op = {"@": {"ietf-netconf:operation": "delete"}}
        top = doc["nfo-test:top"]
        removal: dict[str, Any] = {"nfo-test:top": {
            k: [{**{kk: vv for kk, vv in x.items() if kk in ("name", "a", "b")}, **op}
                for x in v] for k, v in top.items() if k in ("item", "pair")}}
        if "nfo-test-aug:loose" in doc:
            removal["nfo-test-aug:loose"] = [{"id": x["id"], **op}
                                             for x in doc["nfo-test-aug:loose"]]
        with parse(ctx, removal) as e:
            gone = apply_edit(aug_schema, work, e, "merge")
        assert sorted(gone, key=repr) == sorted(deleted, key=repr)
    finally:
        work.free()


def test_quotes_as_libyang_prints_them(schema: Schema) -> None:
    ctx = _ctx(schema)
    doc = {"nfo-test:top": {"item": [{"name": n} for n in ("a'b", 'a"b')],
                            "tags": ["x'y"]}}
    work = Tree(ctx)
    try:
        with parse(ctx, {"nfo-test:top": {}}) as e:
            apply_edit(schema, work, e, "merge")
        with parse(ctx, doc) as e:
            paths = [c.path for c in apply_edit(schema, work, e, "merge")]
    finally:
        work.free()
    assert paths == [
        "/nfo-test:top/tags[.=\"x'y\"]",
        "/nfo-test:top/item[name=\"a'b\"]", "/nfo-test:top/item[name=\"a'b\"]/name",
        "/nfo-test:top/item[name='a\"b']", "/nfo-test:top/item[name='a\"b']/name",
    ]
    # created inside a new top (the subtree walk) and as the edit's own nodes
    for both in ({"item": [{"name": "a'\"b"}]}, {"tags": ["a'\"b"]},
                 {"pair": [{"a": "p", "b": 1}, {"a": "'\"", "b": 2}]}):
        work = Tree(ctx)
        try:
            if "tags" in both:
                with parse(ctx, {"nfo-test:top": {}}) as e:
                    apply_edit(schema, work, e, "merge")
            with parse(ctx, {"nfo-test:top": both}) as e, pytest.raises(
                    InvalidValue, match="holds both ' and \"") as err:
                apply_edit(schema, work, e, "merge")
            assert err.value.path is not None and "'\"" not in err.value.path
        finally:
            work.free()


@pytest.mark.parametrize(("path", "steps"), [
    ("/a:x", ["a:x"]),
    ("/a:x/y[k='p/q']/z", ["a:x", "y[k='p/q']", "z"]),
    ("/a:x/y[k=\"it's/\"][j='[']/z", ["a:x", "y[k=\"it's/\"][j='[']", "z"]),
    ("/a:l[.='/']", ["a:l[.='/']"]),
])
def test_path_steps(path: str, steps: list[str]) -> None:
    assert path_steps(path) == steps


@pytest.mark.parametrize("bad", ["a:x", "/a:x/", "/a:y[k='x]", "/a:y[k='x'", "//a"])
def test_path_steps_refuses_malformed(bad: str) -> None:
    with pytest.raises(InvalidValue):
        path_steps(bad)


def test_default_none_passes_through_an_entry_no_path_could_name(schema: Schema) -> None:
    """NETCONF fuzzer: under default-operation none, a remove below a missing entry whose
    key holds both quotes changes nothing (as for any other key); the entry, created only
    to hold the remove, was refused as if the edit created it.  An edit that would really
    create it is still refused."""
    ctx = _ctx(schema)
    remove = {"ietf-netconf:operation": "remove"}
    work = Tree(ctx)
    try:
        with parse(ctx, {"nfo-test:top": {"name": "n"}}) as e:
            apply_edit(schema, work, e, "merge")
        before = work.print(Fmt.JSON)
        for key in ("plain", "a'\"b"):
            with parse(ctx, {"nfo-test:top": {"item": [
                    {"name": key, "size": 5, "@size": remove}]}}) as e:
                assert apply_edit(schema, work, e, "none") == []
            assert work.print(Fmt.JSON) == before
        create = {"@size": {"ietf-netconf:operation": "create"}}
        with parse(ctx, {"nfo-test:top": {"item": [{"name": "a'\"b", "size": 5, **create}]}}
                   ) as e, pytest.raises(InvalidValue, match="holds both ' and \""):
            apply_edit(schema, work, e, "none")
    finally:
        work.free()
