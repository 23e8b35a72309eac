"""The typed schema API: schema nodes, data nodes, trees, operations, pruning."""

from __future__ import annotations

import json

import pytest

from nfo.errors import InvalidValue, MalformedMessage, NfoError
from nfo.schema import Fmt, Kind, Node, Operation, OpKind, Parse, Schema, SNode, Tree
from nfo.schema.prune import (
    annotate_origin,
    filter_origin,
    prune_content,
    prune_depth,
    prune_fields,
    strip_origin,
)

T = "urn:nfo:test"


def top_doc(**top: object) -> str:
    return json.dumps({"nfo-test:top": top})


# -- schema nodes -------------------------------------------------------------------------


def test_schema_nodes(schema: Schema) -> None:
    top = schema.find("/nfo-test:top")
    assert top is not None and top.kind is Kind.CONTAINER and top.module == "nfo-test"
    assert top.namespace == T and top.config and not top.state and top.path == "/nfo-test:top"
    item = top.child("item")
    assert item is not None and item.kind is Kind.LIST and item.keys == ("name",)
    assert item.ordered_by_user and not item.keyless
    pair = schema.find("/nfo-test:top/pair")
    assert pair is not None and pair.keys == ("a", "b")
    assert pair.child("a") is not None and pair.child("a").is_key  # type: ignore[union-attr]
    # choices and cases are looked through
    radius = top.child("radius")
    assert radius is not None and radius.kind is Kind.LEAF and radius.parent == top
    extra = top.child("extra")
    assert extra is not None and extra.presence
    state = top.child("state")
    assert state is not None and state.state and not state.config
    assert top.child("nothing") is None
    assert schema.find("/nfo-test:nothing") is None
    assert schema.find("/nfo-test:ping") == schema.top("nfo-test", "ping")
    assert {n.name for n in schema.rpcs()} >= {"ping"}
    assert "ping" not in {n.name for n in schema.rpcs(exclude=["nfo-test"])}
    assert schema.namespace_of("nfo-test") == T and schema.module_of(T) == "nfo-test"
    assert schema.implemented("nfo-test") and not schema.implemented("nope")
    restart = schema.find("/nfo-instances:nf-instances/nf-instance/restart")
    assert restart is not None and restart.kind is Kind.ACTION
    inst = schema.find("/nfo-instances:nf-instances/nf-instance")
    assert inst is not None and restart in list(inst.children())
    assert len({top, schema.find("/nfo-test:top")}) == 1


# -- data nodes and trees -------------------------------------------------------------------


def test_tree_nodes_and_paths(schema: Schema) -> None:
    text = top_doc(name="n", item=[{"name": "a", "size": 3}, {"name": "b'c"}], tags=["x"])
    with Tree.parse(schema, text, Fmt.JSON) as t:
        (top,) = t.nodes()
        assert top.name == "top" and top.module == "nfo-test" and top.kind is Kind.CONTAINER
        item = t.node("/nfo-test:top/item[name='a']")
        assert item is not None and item.parent == top
        assert [c.name for c in item.children()] == ["name", "size"]
        assert item.children()[0].is_key and item.children()[1].value == "3"
        odd = t.node("/nfo-test:top/item[name=\"b'c\"]")
        assert odd is not None and odd.path == "/nfo-test:top/item[name=\"b'c\"]"
        assert [n.value for n in t.match("/nfo-test:top/item/name")] == ["a", "b'c"]
        assert t.node("/nfo-test:top/item[name='zz']") is None
        with pytest.raises(InvalidValue):
            t.match("/nfo-test:top/[")
        size = t.node("/nfo-test:top/item[name='a']/size")
        assert size is not None and list(size.ancestors())[-1] == top and size.top() == top
        t.remove(item)
        assert [n.value for n in t.match("/nfo-test:top/item/name")] == ["b'c"]


def test_tree_building(schema: Schema) -> None:
    top_s = schema.find("/nfo-test:top")
    assert top_s is not None
    item_s = top_s.child("item")
    assert item_s is not None
    with Tree(schema) as t:
        top = t.new(None, top_s)
        item = t.new(top, item_s, keys=["k1"])
        assert item.path == "/nfo-test:top/item[name='k1']"
        leaf = t.new(item, item_s.child("size"), value="5")  # type: ignore[arg-type]
        assert leaf.value == "5"
        with pytest.raises(NfoError):
            t.new(item, item_s.child("size"), value="not a number")  # type: ignore[arg-type]
        added = t.parse_under(top, top_doc(name="q")[len('{"nfo-test:top":'):-1], Fmt.JSON)
        assert [n.name for n in added] == ["name"]
        n = t.new_path("/nfo-test:top/pair[a='x'][b='2']/v", "vv")
        assert n.value == "vv"
        assert json.loads(t.print(Fmt.JSON))["nfo-test:top"]["pair"] == [
            {"a": "x", "b": 2, "v": "vv"}]
    with Tree(schema) as t2:
        (n,) = t2.parse_under(None, top_doc(name="z"), Fmt.JSON)
        assert n.name == "top" and t2.nodes() == [n]
        with pytest.raises(MalformedMessage):
            t2.parse_under(None, b'{"nfo-test:top": {', Fmt.JSON)
        with pytest.raises(NfoError):
            t2.parse_under(None, top_doc(nope=1), Fmt.JSON)
        assert len(t2.nodes()) == 1


def test_copy_extract_merge_meta(schema: Schema) -> None:
    text = top_doc(name="n", item=[{"name": "a", "size": 3}, {"name": "b", "size": 4}])
    with Tree.parse(schema, text, Fmt.JSON) as t:
        size = t.node("/nfo-test:top/item[name='b']/size")
        assert size is not None
        with Tree.copy_of(size) as c:
            assert json.loads(c.print()) == {"nfo-test:top": {"item": [{"name": "b", "size": 4}]}}
        with t.extract("/nfo-test:top/item[name='a']") as e:
            assert json.loads(e.print()) == {"nfo-test:top": {"item": [{"name": "a", "size": 3}]}}
            with t.extract("/nfo-test:top/name") as other:
                e.merge(other)
                assert other.is_empty()
            assert json.loads(e.print())["nfo-test:top"]["name"] == "n"
        item = t.node("/nfo-test:top/item[name='a']")
        assert item is not None and not item.has_meta()
        item.set_meta("ietf-netconf:operation", "delete")
        assert item.meta("ietf-netconf:operation") == "delete" and item.has_meta()
        item.remove_meta("ietf-netconf:operation")
        assert item.meta("ietf-netconf:operation") is None


# -- operations -----------------------------------------------------------------------------


def test_rpc_parse_validate_reply(schema: Schema) -> None:
    with Operation.parse(schema, '{"nfo-test:ping": {"msg": "hi"}}', Fmt.JSON, OpKind.RPC) as op:
        assert op.schema_path == "/nfo-test:ping" and op.parent_path is None
        op.validate(None)
        with op.reply() as reply:
            assert reply.output() == []
            reply.set_output("echo", "hi")
            reply.validate(None)
            assert json.loads(reply.print()) == {"nfo-test:ping": {"echo": "hi"}}
    with Operation.parse(schema, '{"nfo-test:ping": {}}', Fmt.JSON, OpKind.RPC) as op:
        with pytest.raises(NfoError) as e:
            op.validate(None)
        assert e.value.tag == "data-missing"
    with pytest.raises(InvalidValue):
        Operation.parse(schema, "{}", Fmt.JSON, OpKind.RPC)


def test_action_under_parent(schema: Schema) -> None:
    inst = schema.find("/nfo-instances:nf-instances/nf-instance")
    nfis = schema.find("/nfo-instances:nf-instances")
    assert inst is not None and nfis is not None
    t = Tree(schema)
    parent = t.new(t.new(None, nfis), inst, keys=["i1"])
    with Operation.parse(schema, '{"nfo-instances:restart": {}}', Fmt.JSON, OpKind.RPC,
                         under=(t, parent)) as op:
        assert op.schema_path == "/nfo-instances:nf-instances/nf-instance/restart"
        assert op.parent_path == "/nfo-instances:nf-instances/nf-instance[name='i1']"


def test_notification(schema: Schema) -> None:
    with Operation.parse(schema, '{"nfo-test:bell": {"rung": 3}}', Fmt.JSON,
                         OpKind.NOTIFICATION) as n:
        n.validate(None)
        assert n.selects("/nfo-test:bell[rung=3]") and not n.selects("/nfo-test:bell[rung=4]")
        assert not n.selects("1 = 1")
    with pytest.raises(InvalidValue, match="notification"):
        Operation.parse(schema, "{}", Fmt.JSON, OpKind.NOTIFICATION)


# -- pruning --------------------------------------------------------------------------------


def state_and_config(schema: Schema) -> Tree:
    t = Tree.parse(schema, top_doc(name="n", item=[{"name": "a", "size": 1}],
                                   state={"up": True}), Fmt.JSON, mode=Parse.DATA)
    return t


def test_prune_content(schema: Schema) -> None:
    with state_and_config(schema) as t:
        kept = prune_content(t, t.nodes(), config=True)
        assert len(kept) == 1
        assert "state" not in json.loads(t.print())["nfo-test:top"]
    with state_and_config(schema) as t:
        prune_content(t, t.nodes(), config=False)
        assert json.loads(t.print()) == {"nfo-test:top": {"state": {"up": True}}}
    with Tree.parse(schema, top_doc(name="n"), Fmt.JSON) as t:
        assert prune_content(t, t.nodes(), config=False) == [] and t.is_empty()


def test_prune_depth_and_fields(schema: Schema) -> None:
    doc = top_doc(name="n", item=[{"name": "a", "size": 1}], extra={"level": 2})
    with Tree.parse(schema, doc, Fmt.JSON) as t:
        prune_depth(t, t.nodes(), 2)
        assert json.loads(t.print(keep_empty=True)) == {
            "nfo-test:top": {"name": "n", "item": [{"name": "a"}], "extra": {}}}
    with Tree.parse(schema, doc, Fmt.JSON) as t:
        items = t.match("/nfo-test:top/item")
        prune_depth(t, items, 1)
        assert json.loads(t.print()) == {
            "nfo-test:top": {"name": "n", "item": [{"name": "a"}], "extra": {"level": 2}}}
    with Tree.parse(schema, doc, Fmt.JSON) as t:
        sel = t.match("/nfo-test:top/item/size")
        prune_fields(t, t.nodes(), sel)
        assert json.loads(t.print()) == {"nfo-test:top": {"item": [{"name": "a", "size": 1}]}}


def test_origin(schema: Schema) -> None:
    with Tree.parse(schema, top_doc(name="n"), Fmt.JSON) as running, \
            state_and_config(schema) as merged:
        merged.add_defaults()
        annotate_origin(merged, running)
        top = merged.nodes()[0]
        assert top.meta("ietf-origin:origin") == "ietf-origin:intended"
        item = merged.node("/nfo-test:top/item[name='a']")
        count = merged.node("/nfo-test:top/count")
        assert item is not None and count is not None
        assert item.meta("ietf-origin:origin") == "ietf-origin:learned"
        assert count.meta("ietf-origin:origin") == "ietf-origin:default"
        filter_origin(merged, {"learned"})
        assert set(json.loads(merged.print())["nfo-test:top"]) - {"@"} == {"item", "state"}
        strip_origin(merged)
        assert not any(n.has_meta() for n in merged.nodes())


def test_handles_compare_by_node(schema: Schema) -> None:
    with Tree.parse(schema, top_doc(name="n"), Fmt.JSON) as t:
        a = t.node("/nfo-test:top/name")
        b = t.match("/nfo-test:top/name")[0]
        assert isinstance(a, Node) and a == b and hash(a) == hash(b)
        assert isinstance(a.schema, SNode) and a.schema == schema.find("/nfo-test:top/name")


def test_autodeleting_tops_are_those_with_a_when_a_choice_or_a_default_leaf_list(
        schema: Schema) -> None:
    """Validation may remove nodes on its own only under these tops; its diff elsewhere
    is only the defaults it added, and is not walked."""
    tops = schema.autodeleting_tops()
    assert "/nfo-catalog:catalog" in tops  # choices (deployment kinds)
    assert "/ietf-netconf-acm:nacm" in tops  # a rule's choice rule-type
    assert "/nfo-instances:nf-instances" not in tops
    assert "/nfo-users:users" not in tops


def test_keyed_path_spells_as_libyang_and_cuts_before_a_step_naming_several_entries(
        schema: Schema) -> None:
    pair = "/nfo-test:top/pair"
    assert schema.keyed_path('/nfo-test:top/nfo-test:pair[b="1"][a="x"]/v') == (
        f"{pair}[a='x'][b='1']/v", True)
    assert schema.keyed_path(f"{pair}[a='it''s']") is None  # not a data path
    assert schema.keyed_path(f"{pair}[b='1']") == (pair, False)  # some of the keys
    assert schema.keyed_path(f"{pair}/v") == (pair, False)  # every entry's leaf
    assert schema.keyed_path(pair) == (pair, True)  # the whole list
    assert schema.keyed_path("/nfo-test:top/tags[.='a']") == ("/nfo-test:top/tags[.='a']", True)
    assert schema.keyed_path("/nfo-test:nothing") is None
    # the cut is cached by shape, the values are each path's own
    assert schema.keyed_path(f"{pair}[b='2']") == (pair, False)
    assert schema.keyed_path(f"{pair}[a='y'][b='2']") == (f"{pair}[a='y'][b='2']", True)


def test_a_union_is_extracted_part_by_part_each_node_once(schema: Schema) -> None:
    items = [{"name": n, "size": k} for k, n in enumerate("abc")]
    with Tree.parse(schema, top_doc(name="t", item=items), Fmt.JSON) as t:
        union = ("/nfo-test:top/item/size | /nfo-test:top/item[name='b'] | "
                 "/nfo-test:top/name | /nfo-test:top/item[name='b']/size")
        with t.extract(union) as out:
            assert json.loads(out.print(Fmt.JSON)) == {"nfo-test:top": {"name": "t", "item": [
                {"name": "a", "size": 0}, {"name": "b", "size": 1}, {"name": "c", "size": 2}]}}
        with t.extract("/nfo-test:top/item[name='a' or name='c'] | /nfo-test:nothing") as out:
            assert [i["name"] for i in json.loads(out.print(Fmt.JSON))["nfo-test:top"][
                "item"]] == ["a", "c"]
        with pytest.raises(InvalidValue):
            t.extract("/nfo-test:top/name | 1 = 1")  # not a node set, in parts or whole
