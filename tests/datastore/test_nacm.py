"""The access control engine alone: rule semantics on paths, tree filtering, exec and
notification checks, against real libyang trees of a test module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nfo.datastore.nacm import Access, Identity, Nacm, NacmConfig
from nfo.errors import AccessDenied
from nfo.schema import Fmt, Node, Schema, Step, Tree, parse_path
from nfo.schema.changes import (
    Change,
    ChangeCreated,
    ChangeDeleted,
    ChangeModified,
    ChangeSet,
    Run,
)
from nfo.schema.paths import StepCache, schema_path_of, schema_paths

YANG = Path(__file__).parent / "nacm_yang"

DATA: dict[str, Any] = {
    "nt:top": {
        "item": [
            {"name": "a", "value": "1", "secret": "s-a", "endpoint": "e-a",
             "sub": {"x": "x1", "y": "y1"}, "nt-aug:extra": "ex"},
            {"name": "b", "value": "2", "secret": "s-b", "sub": {"x": "x2"}},
        ],
        "tags": ["t1", "t2"],
        "locked": {"y": "l"},
        "hidden": {"z": "h"},
    },
    "nt:other": {"a": "A"},
}

ALICE = Identity("alice")


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(extra_dirs=[YANG], with_nfo_modules=False)


def nacm_of(schema: Schema, nacm: dict[str, Any] | None, data: dict[str, Any] = DATA
            ) -> tuple[Nacm, Tree]:
    doc = dict(data)
    if nacm is not None:
        doc["ietf-netconf-acm:nacm"] = nacm
    tree = Tree.parse(schema, json.dumps(doc), Fmt.JSON)
    return Nacm(schema, lambda: tree), tree


def rules(*rs: dict[str, Any], group: str = "g", **top: Any) -> dict[str, Any]:
    """A nacm config: alice in group g, one rule-list for ``group`` with ``rs``."""
    named = [{"name": f"r{i}", **r} for i, r in enumerate(rs)]
    return {"groups": {"group": [{"name": "g", "user-name": ["alice"]}]},
            "rule-list": [{"name": "l", "group": [group], "rule": named}], **top}


def all_paths(tree: Tree) -> set[str]:
    out: set[str] = set()

    def walk(n: Node) -> None:
        out.add(n.path)
        for c in n.children():
            walk(c)
    for top in tree.nodes():
        walk(top)
    return out


# -- paths ---------------------------------------------------------------------------


def test_parse_path() -> None:
    assert parse_path("/nt:top/item[name='a']/sub/x") == (
        Step("nt", "top"), Step("nt", "item", (("name", "a"),)), Step("nt", "sub"),
        Step("nt", "x"))
    assert parse_path("/nt:top/item[name=\"it's\"]/nt-aug:extra")[-1] == Step("nt-aug", "extra")
    assert parse_path("/nt:top/tags[.='t1']")[-1].preds == ((".", "t1"),)
    assert parse_path("/m:l[b='2'][a='1']")[0].preds == (("a", "1"), ("b", "2"))
    assert parse_path("/m:l[3]")[0].preds == (("#", "3"),)
    with pytest.raises(ValueError):
        parse_path("top/item")
    with pytest.raises(ValueError):
        parse_path("/nt:top[starts-with(name,'a')]")


def test_step_cache_parses_a_walk_like_parse_path() -> None:
    walk = ["/nt:top", "/nt:top/item[name='a/b']", "/nt:top/item[name='a/b']/value",
            "/nt:top/item[name='a/b']/sub", "/nt:top/item[name='a/b']/sub/x",
            "/nt:top/item[name='a']", "/nt:top/item[name='a']/nt-aug:extra",
            "/nt:top/item[name='a/b']/value", "/nt:other/a", "/nt:top/tags[.='t1']"]
    cache = StepCache()
    assert [cache.steps(p) for p in walk] == [parse_path(p) for p in walk]
    assert [schema_path_of(p) for p in walk] == [
        list(schema_paths(parse_path(p)))[-1] for p in walk]
    assert schema_path_of("/nt:top/item[name='x]/y'][b=\"]\"]/sub") == "/nt:top/item/sub"


# -- verdicts on one path -----------------------------------------------------------


def access(schema: Schema, nacm: dict[str, Any] | None, who: Identity = ALICE) -> Access:
    n, _ = nacm_of(schema, nacm)
    return n.access(who)


def test_defaults_without_config(schema: Schema) -> None:
    a = access(schema, None)
    assert a.allowed("/nt:top/item[name='a']/value", "read")
    assert not a.allowed("/nt:top/item[name='a']/value", "update")
    assert not a.allowed("/nt:top/hidden/z", "read")          # default-deny-all
    assert not a.allowed("/nt:top/item[name='a']/secret", "read")
    a.check_exec("/nt:ping")                                   # exec-default permit
    with pytest.raises(AccessDenied):
        a.check_exec("/nt:danger")                             # default-deny-all RPC
    a.check_exec("/ietf-netconf:get-config")


def test_first_matching_rule_wins_in_order(schema: Schema) -> None:
    a = access(schema, rules(
        {"path": "/nt:top/item[name='a']", "access-operations": "read", "action": "deny"},
        {"module-name": "nt", "access-operations": "*", "action": "permit"},
        {"path": "/nt:top/item[name='b']", "access-operations": "*", "action": "deny"},
    ))
    assert not a.allowed("/nt:top/item[name='a']/value", "read")
    assert a.allowed("/nt:top/item[name='a']/value", "update")
    assert a.allowed("/nt:top/item[name='b']/value", "read")   # the module rule came first
    assert a.allowed("/nt:other/a", "delete")


def test_key_predicate_names_one_entry(schema: Schema) -> None:
    a = access(schema, rules({"path": "/nt:top/item[name='a']/sub", "action": "deny"}))
    assert not a.allowed("/nt:top/item[name='a']/sub/x", "read")
    assert a.allowed("/nt:top/item[name='b']/sub/x", "read")
    assert a.allowed("/nt:top/item[name='a']/value", "read")


def test_operations_are_distinct(schema: Schema) -> None:
    a = access(schema, rules({"path": "/nt:top", "access-operations": "update",
                              "action": "permit"}))
    assert a.allowed("/nt:top/item[name='a']/value", "update")
    assert not a.allowed("/nt:top/item[name='a']/value", "create")
    assert not a.allowed("/nt:top/item[name='a']/value", "delete")


def test_groups(schema: Schema) -> None:
    deny = {"module-name": "nt", "access-operations": "read", "action": "deny"}
    assert not access(schema, rules(deny)).allowed("/nt:other/a", "read")
    # a rule-list of another group does not apply; "*" applies to everyone
    assert access(schema, rules(deny, group="h")).allowed("/nt:other/a", "read")
    assert not access(schema, rules(deny, group="*"), Identity("nobody")).allowed(
        "/nt:other/a", "read")
    # external groups count unless disabled
    ext = Identity("bob", frozenset({"h"}))
    assert not access(schema, rules(deny, group="h"), ext).allowed("/nt:other/a", "read")
    assert access(schema, rules(deny, group="h", **{"enable-external-groups": False}),
                  ext).allowed("/nt:other/a", "read")


def test_module_rule_is_scoped_to_its_module(schema: Schema) -> None:
    a = access(schema, rules({"module-name": "nt", "access-operations": "read",
                              "action": "deny"}))
    assert not a.allowed("/nt:top/item[name='a']/value", "read")
    # an augmenting module's node is defined there (RFC 8341 3.4.5 step 6)
    assert a.allowed("/nt:top/item[name='a']/nt-aug:extra", "read")


def test_deny_write_and_deny_all_marks(schema: Schema) -> None:
    a = access(schema, rules(**{"write-default": "permit"}))
    assert a.allowed("/nt:top/item[name='a']/value", "create")
    assert not a.allowed("/nt:top/locked/y", "update")
    assert a.allowed("/nt:top/locked/y", "read")
    assert not a.allowed("/nt:top/hidden/z", "update")
    # a matching rule overrides the marks (RFC 8341), even a module-wide one
    b = access(schema, rules({"module-name": "nt", "action": "permit"}))
    assert b.allowed("/nt:top/locked/y", "update")
    assert b.allowed("/nt:top/hidden/z", "read")


def test_credentials_need_a_rule_that_names_them(schema: Schema) -> None:
    everything = rules({"module-name": "*", "access-operations": "*", "action": "permit"})
    assert not access(schema, everything).allowed("/nt:top/item[name='a']/secret", "read")
    # ... but writing them follows RFC 8341: the rule matches
    assert access(schema, everything).allowed("/nt:top/item[name='a']/secret", "update")
    ancestor = rules({"path": "/nt:top/item", "action": "permit"})
    assert not access(schema, ancestor).allowed("/nt:top/item[name='a']/secret", "read")
    named = rules({"path": "/nt:top/item[name='a']/secret", "action": "permit"})
    a = access(schema, named)
    assert a.allowed("/nt:top/item[name='a']/secret", "read")
    assert not a.allowed("/nt:top/item[name='b']/secret", "read")
    # NACM off: everything is allowed, still no credential to a network reader
    off = access(schema, {"enable-nacm": False})
    assert off.allowed("/nt:top/hidden/z", "read")
    assert not off.allowed("/nt:top/item[name='a']/secret", "read")


def test_internal_identity_is_never_checked(schema: Schema) -> None:
    a = access(schema, rules({"module-name": "*", "action": "deny"}),
               Identity.server("workload"))
    assert a.allowed("/nt:top/item[name='a']/secret", "read")
    a.check_exec("/nt:danger")
    a.check_write([ChangeCreated("/nt:top/locked/y", "v")], lambda p: False)


# -- writes ----------------------------------------------------------------------------


def test_check_write_names_the_denied_node_and_counts(schema: Schema) -> None:
    n, _ = nacm_of(schema, rules(
        {"path": "/nt:top/item/value", "access-operations": "*", "action": "deny"},
        {"path": "/nt:top/item", "access-operations": "create update", "action": "permit"}))
    a = n.access(ALICE)
    created = [ChangeCreated("/nt:top"), ChangeCreated("/nt:top/item[name='c']"),
               ChangeCreated("/nt:top/item[name='c']/name", "c"),
               ChangeCreated("/nt:top/item[name='c']/sub"),
               ChangeCreated("/nt:top/item[name='c']/sub/x", "1")]
    a.check_write(created, lambda p: False)
    assert n.counters.data_writes == 0
    with pytest.raises(AccessDenied) as e:
        a.check_write([*created, ChangeCreated("/nt:top/item[name='c']/value", "v")],
                      lambda p: False)
    assert e.value.path == "/nt:top/item[name='c']/value"
    assert n.counters.data_writes == 1
    with pytest.raises(AccessDenied):
        a.check_write([ChangeDeleted("/nt:top/item[name='a']")], lambda p: False)
    a.check_write([ChangeModified("/nt:top/item[name='a']/sub/x", "2", "1")],
                  lambda p: False)
    assert n.counters.data_writes == 2


def test_child_permission_does_not_create_the_parent_entry(schema: Schema) -> None:
    a = access(schema, rules({"path": "/nt:top/item/sub", "access-operations": "create",
                              "action": "permit"}))
    a.check_write([ChangeCreated("/nt:top/item[name='a']/sub/x", "1")], lambda p: False)
    with pytest.raises(AccessDenied) as e:
        a.check_write([ChangeCreated("/nt:top/item[name='c']"),
                       ChangeCreated("/nt:top/item[name='c']/name", "c"),
                       ChangeCreated("/nt:top/item[name='c']/sub/x", "1")],
                      lambda p: False)
    assert e.value.path == "/nt:top/item[name='c']"


def test_credential_target_needs_the_credential(schema: Schema) -> None:
    everything = rules({"module-name": "*", "access-operations": "*", "action": "permit"})
    a = access(schema, everything)
    change = [ChangeModified("/nt:top/item[name='a']/endpoint", "evil", "e-a")]
    with pytest.raises(AccessDenied) as e:
        a.check_write(change, lambda p: False)
    assert e.value.app_tag == "nfo-credentials-required"
    a.check_write(change, lambda p: p == "/nt:top/item[name='a']/secret")
    # a user allowed to read the credential may re-point it without repeating it
    named = rules({"path": "/nt:top/item/secret", "access-operations": "read",
                   "action": "permit"},
                  {"module-name": "*", "access-operations": "*", "action": "permit"})
    access(schema, named).check_write(change, lambda p: False)


# -- operations and notifications ---------------------------------------------------------


def test_exec_rules(schema: Schema) -> None:
    n, _ = nacm_of(schema, rules(
        {"rpc-name": "ping", "access-operations": "exec", "action": "deny"},
        {"path": "/nt:top/item[name='a']/poke", "access-operations": "exec",
         "action": "permit"},
        {"rpc-name": "danger", "module-name": "nt", "access-operations": "exec",
         "action": "permit"},
        **{"exec-default": "deny"}))
    a = n.access(ALICE)
    with pytest.raises(AccessDenied) as e:
        a.check_exec("/nt:ping")
    assert e.value.error_type == "protocol"
    a.check_exec("/nt:danger")
    a.check_exec("/nt:top/item/poke", "/nt:top/item[name='a']/poke")
    with pytest.raises(AccessDenied):
        a.check_exec("/nt:top/item/poke", "/nt:top/item[name='b']/poke")
    a.check_exec("/ietf-netconf:close-session")
    assert n.counters.operations == 2


def test_action_needs_read_on_its_parent(schema: Schema) -> None:
    a = access(schema, rules({"path": "/nt:top/item[name='a']", "access-operations": "read",
                              "action": "deny"}))
    with pytest.raises(AccessDenied):
        a.check_exec("/nt:top/item/poke", "/nt:top/item[name='a']/poke")
    a.check_exec("/nt:top/item/poke", "/nt:top/item[name='b']/poke")


def test_notifications(schema: Schema) -> None:
    n, _ = nacm_of(schema, rules(
        {"path": "/nt:top/item[name='a']", "access-operations": "read", "action": "deny"},
        {"notification-name": "event", "access-operations": "read", "action": "permit"}))
    a = n.access(ALICE)
    assert a.notification_allowed("/nt:event", ["/nt:top/item[name='b']"])
    assert not a.notification_allowed("/nt:event", ["/nt:top/item[name='a']"])
    assert n.counters.notifications == 1
    b = access(schema, rules({"notification-name": "event", "access-operations": "read",
                              "action": "deny"}))
    assert not b.notification_allowed("/nt:event")


def test_rules_follow_running(schema: Schema) -> None:
    trees = [Tree.parse(schema, json.dumps({"ietf-netconf-acm:nacm": rules(
        {"module-name": "nt", "access-operations": "read", "action": "deny"})}), Fmt.JSON),
        Tree(schema)]
    state = {"tree": trees[0]}
    n = Nacm(schema, lambda: state["tree"])
    assert not n.access(ALICE).allowed("/nt:other/a", "read")
    state["tree"] = trees[1]
    n.changed([ChangeModified("/nt:other/a", "x", "y")])
    assert not n.access(ALICE).allowed("/nt:other/a", "read")  # not a rule: kept
    n.changed([ChangeDeleted("/ietf-netconf-acm:nacm/rule-list[name='l']")])
    assert n.access(ALICE).allowed("/nt:other/a", "read")
    assert n.config == NacmConfig()
    for t in trees:
        t.free()


# -- reads: the tree filter agrees with the path verdicts ----------------------------------


def pruned(schema: Schema, nacm: dict[str, Any] | None, who: Identity = ALICE) -> set[str]:
    n, tree = nacm_of(schema, nacm)
    with tree, Tree.parse(schema, json.dumps(DATA), Fmt.JSON) as data:
        n.access(who).prune(data)
        return all_paths(data)


def test_read_default_deny_gives_nothing(schema: Schema) -> None:
    assert pruned(schema, rules(**{"read-default": "deny"})) == set()


def test_permitted_descendant_keeps_ancestors_and_keys(schema: Schema) -> None:
    got = pruned(schema, rules({"path": "/nt:top/item/sub/x", "access-operations": "read",
                                "action": "permit"}, **{"read-default": "deny"}))
    assert got == {"/nt:top", "/nt:top/item[name='a']", "/nt:top/item[name='a']/name",
                   "/nt:top/item[name='a']/sub", "/nt:top/item[name='a']/sub/x",
                   "/nt:top/item[name='b']", "/nt:top/item[name='b']/name",
                   "/nt:top/item[name='b']/sub", "/nt:top/item[name='b']/sub/x"}


def test_keys_stay_when_denied_by_a_rule(schema: Schema) -> None:
    got = pruned(schema, rules({"path": "/nt:top/item/name", "access-operations": "read",
                                "action": "deny"}))
    assert "/nt:top/item[name='a']/name" in got


def test_credentials_leave_every_read(schema: Schema) -> None:
    everything = rules({"module-name": "*", "access-operations": "*", "action": "permit"})
    got = pruned(schema, everything)
    assert "/nt:top/item[name='a']/secret" not in got
    assert "/nt:top/hidden/z" in got
    assert "/nt:top/item[name='a']/secret" not in pruned(schema, {"enable-nacm": False})
    assert "/nt:top/item[name='a']/secret" in pruned(schema, None, Identity.server("x"))


_PATHS = ["/nt:top", "/nt:top/item", "/nt:top/item[name='a']", "/nt:top/item[name='b']/sub",
          "/nt:top/item/sub/x", "/nt:top/item/name", "/nt:top/item[name='a']/secret",
          "/nt:top/item/secret", "/nt:top/tags", "/nt:top/hidden", "/nt:other/a",
          "/nt:top/item/nt-aug:extra", "/nt:top/locked"]

_rule = st.one_of(
    st.fixed_dictionaries({"path": st.sampled_from(_PATHS)}),
    st.fixed_dictionaries({"module-name": st.sampled_from(["nt", "nt-aug", "*"])}),
    st.fixed_dictionaries({"module-name": st.sampled_from(["nt", "*"]),
                           "path": st.sampled_from(_PATHS)}),
    st.fixed_dictionaries({"rpc-name": st.just("ping")}),
).flatmap(lambda r: st.fixed_dictionaries({
    **{k: st.just(v) for k, v in r.items()},
    "access-operations": st.sampled_from(["*", "read", "update", "read update"]),
    "action": st.sampled_from(["permit", "deny"])}))


def expected(access: Access, tree: Tree) -> set[str]:
    """What the RFC says one path at a time: a node stays if it may be read, or if
    something below it may (as structure), or if it is a key of an entry that stays."""
    kept: set[str] = set()

    def walk(n: Node) -> bool:
        below = False
        for c in n.children():
            below = walk(c) or below
        ok = access.allowed(n.path, "read") or below
        if ok:
            kept.add(n.path)
        return ok

    for top in tree.nodes():
        walk(top)
    for path in list(kept):
        node = tree.node(path)
        assert node is not None
        kept.update(c.path for c in node.children() if c.is_key)
    return kept


@settings(max_examples=300, deadline=None)
@given(st.lists(_rule, max_size=6), st.sampled_from(["permit", "deny"]))
def test_tree_filter_agrees_with_path_verdicts(schema: Schema, rs: list[dict[str, Any]],
                                               default: str) -> None:
    n, tree = nacm_of(schema, rules(*rs, **{"read-default": default}))
    with tree, Tree.parse(schema, json.dumps(DATA), Fmt.JSON) as data:
        a = n.access(ALICE)
        want = expected(a, data)
        a.prune(data)
        assert all_paths(data) == want


def test_rule_paths_are_checked_by_libyang(schema: Schema) -> None:
    with pytest.raises(Exception, match="prefix"):
        nacm_of(schema, rules({"path": "/nope:top", "action": "deny"}))


def test_check_write_builds_a_run_only_when_a_check_could_refuse(schema: Schema) -> None:
    built: list[str] = []

    def run(parent: str, *changes: Change) -> Run:
        def build() -> list[Change]:
            built.append(parent)
            return list(changes)
        return Run("nt", parent, 1, build, lambda: [changes[0].path])

    entry = (ChangeCreated("/nt:top/item[name='c']"),
             ChangeCreated("/nt:top/item[name='c']/name", "c"),
             ChangeCreated("/nt:top/item[name='c']/value", "v"))
    denied = access(schema, rules(
        {"path": "/nt:top/item/value", "access-operations": "*", "action": "deny"},
        {"path": "/nt:top/item", "access-operations": "create", "action": "permit"}))
    with pytest.raises(AccessDenied) as e:
        denied.check_write(ChangeSet([run("/nt:top", *entry)]), lambda p: False)
    assert e.value.path == "/nt:top/item[name='c']/value" and built == ["/nt:top"]
    # everything permitted: a run is built only where a credential target lies
    built.clear()
    everything = access(schema, rules({"module-name": "*", "access-operations": "*",
                                       "action": "permit"}))
    everything.check_write(ChangeSet([run("/nt:top", *entry)]), lambda p: False)
    assert built == ["/nt:top"]  # nt has a credential target (item/endpoint)
    built.clear()
    other = Run("nt-other", "/nt-other:x", 1, lambda: built.append("x") or [],
                lambda: ["/nt-other:x/y"])
    everything.check_write(ChangeSet([other]), lambda p: False)
    assert built == []
