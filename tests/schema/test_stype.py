"""The typed accessors the UI's schema digest is built from: SType (a leaf's type),
SNode's value properties, and leafref evaluation from a field's parent."""

from __future__ import annotations

import json

import pytest

from nfo.schema import Kind, Schema, Tree
from nfo.schema.leafrefs import from_parent, leafref_scope, leafref_values
from nfo.schema.paths import parse_path
from tests.schema.conftest import node

T = "/nfo-uitest:types/"


def test_types(ui: Schema) -> None:
    def t(name: str):  # type: ignore[no-untyped-def]
        found = node(ui, T + name).type
        assert found is not None
        return found

    assert t("t-binary").base == "binary" and t("t-binary").lengths == ((1, 16),)
    assert t("t-decimal64").fraction_digits == 2
    assert t("t-decimal64").ranges == (("-10.50", "10.25"), ("100.00", "100.00"))
    assert t("t-int64").ranges == (("-9223372036854775808", "9223372036854775807"),)
    assert t("t-int16").ranges is None and t("t-int16").lengths is None
    assert [(p.expr, p.invert, p.error_app_tag) for p in t("t-string").patterns] == [
        ("[a-z]+", False, "lower-case"), ("x.*", True, None)]
    assert [(e.name, e.value) for e in t("t-enumeration").enums] == [("red", 1), ("green", 5)]
    assert [(b.name, b.position) for b in t("t-bits").bits] == [("read", 0), ("write", 3)]
    assert t("t-uint8").typedefs == ("nfo-uitest:small", "nfo-uitest-ids:percent")
    assert t("t-uint8").ranges == ((1, 50),)
    assert t("t-uint16").typedefs == ()
    # a deviation replaced the written type: the compiled one is described
    assert t("t-deviated").base == "string" and t("t-deviated").typedefs == ()
    assert [m.base for m in t("t-union").members] == ["int8", "enumeration", "uint8"]
    assert t("t-union").members[2].typedefs == ("nfo-uitest-ids:percent",)
    assert t("t-instance-identifier").require_instance is False
    lr = t("t-leafref")
    assert lr.leafref_path == "/uit:servers/uit:server/uit:name" and lr.require_instance
    assert lr.real.base == "string" and t("t-string").real.base == "string"
    ids = t("t-identityref")
    assert [b.qualified for b in ids.bases] == ["nfo-uitest-ids:transport"]
    assert [i.qualified for i in ids.identities()] == [
        "nfo-uitest-ids:tcp", "nfo-uitest-ids:udp", "nfo-uitest:sctp", "nfo-uitest:sctp-fast"]
    # a type without these restrictions answers empty
    assert t("t-boolean").enums == () and t("t-boolean").identities() == []
    assert t("t-boolean").leafref_path is None and t("t-boolean").members == ()


def test_typedef_chain_through_imported_modules(ui: Schema) -> None:
    leaf = node(ui, "/ietf-netconf-acm:nacm/denied-operations")
    assert leaf.type is not None and leaf.type.typedefs == (
        "ietf-yang-types:zero-based-counter32", "ietf-yang-types:counter32")


def test_node_properties(ui: Schema) -> None:
    tags = node(ui, T + "t-tags")
    assert tags.defaults == ("a", "b") and tags.min_elements == 0 and tags.max_elements == 4
    assert node(ui, T + "t-uint16").units == "seconds"
    assert node(ui, T + "t-old").status == "deprecated"
    assert node(ui, "/nfo-uitest:types").status == "current"
    assert node(ui, "/nfo-uitest:counters").mandatory
    assert node(ui, "/nfo-uitest:links/link/server").mandatory
    fast = node(ui, "/nfo-uitest:links/link/fast")
    assert fast.when == ("../transport = 'uit:sctp-fast'",) and fast.musts == ()
    must = node(ui, "/nfo-uitest:links/link/transport").musts[0]
    assert (must.error_message, must.error_app_tag) == ("a transport", "transport")
    link = node(ui, "/nfo-uitest:links/link")
    kids = list(link.schema_children())
    assert [c.kind for c in kids][-3:] == [Kind.CHOICE, Kind.ACTION, Kind.NOTIFICATION]
    choice = next(c for c in kids if c.name == "kind")  # pacing: nfo-uiwhen's
    assert choice.defaults == ("plain",)
    assert [c.name for c in choice.schema_children()] == ["plain", "tunnel"]
    # a case's children stop at its own (all cases' children are linked together)
    assert [[g.name for g in c.schema_children()] for c in choice.schema_children()] == [
        ["plain"], ["tunnel"]]
    io = list(kids[-2].schema_children())
    assert [(c.kind, c.name) for c in io] == [(Kind.INPUT, "input"), (Kind.OUTPUT, "output")]
    assert [c.name for c in io[1].schema_children()] == ["ok"]
    assert [n.name for n in ui.schema_tops("nfo-uitest")] == [
        "types", "counters", "servers", "links", "blob", "legacy", "reset", "alarm"]
    assert ui.features("nfo-uitest") == ["fancy"] and node(ui, T + "t-fancy").type is not None


def test_leafref_target_is_the_path_end_not_a_predicate(ui: Schema) -> None:
    port = node(ui, "/nfo-uitest:links/link/port").leafref_target
    assert port is not None and port.path == "/nfo-uitest:servers/server/port/number"


@pytest.mark.parametrize(("path", "top", "expected"), [
    ("../x", False, "x"),
    ("../../x/y", False, "../x/y"),
    ("/a:x[k = current()/../y]/z", False, "/a:x[k = current()/y]/z"),
    ("/x[k = current() / .. / .. / y]", False, "/x[k = current()/.. / y]"),
    ("../x[k = current()/../y]/z", True, "/x[k = /y]/z"),
    ("deref(../x)/../y", False, None),
])
def test_from_parent(path: str, top: bool, expected: str | None) -> None:
    assert from_parent(path, top=top) == expected


DATA = {"nfo-uitest:servers": {"server": [
            {"name": "a", "port": [{"number": 1}, {"number": 2}]},
            {"name": "b", "port": [{"number": 3}]}]},
        "nfo-uitest:links": {"link": [{"id": "l1", "server": "b"}]}}


def test_leafref_values(ui: Schema) -> None:
    with Tree.parse(ui, json.dumps(DATA), "json") as tree:
        l1 = tree.node("/nfo-uitest:links/link[id='l1']")
        assert l1 is not None

        def values(parent: object, path: str) -> list[str]:
            return leafref_values(tree, parent, node(ui, path))  # type: ignore[arg-type]

        assert values(l1, "/nfo-uitest:links/link/server") == ["a", "b"]
        assert values(l1, "/nfo-uitest:links/link/port") == ["3"]
        assert values(l1, "/nfo-uitest:links/link/backup") == ["a", "b"]
        fresh = tree.new_path("/nfo-uitest:links/link[id='l2']")
        assert values(fresh, "/nfo-uitest:links/link/port") == []
        tree.new_path("/nfo-uitest:links/link[id='l2']/server", "a")
        assert values(fresh, "/nfo-uitest:links/link/port") == ["1", "2"]


def test_leafref_scope(ui: Schema) -> None:
    l1 = parse_path("/nfo-uitest:links/link[id='l1']")
    assert leafref_scope(node(ui, "/nfo-uitest:links/link/server"), l1) == [
        "/nfo-uitest:servers"]
    # the predicate reads the field's own entry: that entry, not the whole list
    assert leafref_scope(node(ui, "/nfo-uitest:links/link/port"), l1) == [
        "/nfo-uitest:servers", "/nfo-uitest:links/link[id='l1']"]
    assert leafref_scope(node(ui, T + "t-leafref"), parse_path("/nfo-uitest:types")) == [
        "/nfo-uitest:servers"]
    assert leafref_scope(node(ui, T + "t-string"), ()) == []
