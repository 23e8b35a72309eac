"""``when`` conditions evaluated for a node that may not exist yet (the UI's access
resource): the node's own, those inherited from an augment, a uses and a case,
the root as context; checked against what libyang's validation decides."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nfo.errors import NfoError
from nfo.schema import Fmt, Schema, Tree
from nfo.schema.changes import ChangeDeleted
from nfo.schema.edit import apply_edit, validate
from nfo.schema.whens import when_holds, when_scope, whens
from tests.schema.conftest import node

LINK = "/nfo-uitest:links/link"
W = "nfo-uiwhen:"


def link(lid: str, **extra: Any) -> dict[str, Any]:
    return {"id": lid, "server": "a", **extra}


def data(*links: dict[str, Any]) -> dict[str, Any]:
    return {"nfo-uitest:servers": {"server": [{"name": "a"}, {"name": "b"}]},
            "nfo-uitest:links": {"link": list(links)}}


SEED = data(link("l1", transport="nfo-uitest:sctp-fast"),
            link("l2", transport="nfo-uitest-ids:udp", **{W + "jitter": 5}),
            {"id": "l3", "server": "b", "transport": "nfo-uitest-ids:udp",
             "backup": ["a", "b"]},
            link("slow", transport="nfo-uitest-ids:udp"))


def holds(schema: Schema, doc: dict[str, Any], schema_path: str, path: str) -> bool | None:
    with Tree.parse(schema, json.dumps(doc), "json") as tree:
        before = tree.print()
        got = when_holds(tree, node(schema, schema_path), path)
        assert tree.print() == before  # whatever was created is gone again
        return got


def test_conditions_and_their_context(ui: Schema) -> None:
    assert [(w.condition, w.own) for w in whens(node(ui, LINK + "/fast"))] == [
        ("../transport = 'uit:sctp-fast'", True)]
    # augment's on the node; uses' and augment's; the leaf's own, its case's, and the
    # augment's, on the choice
    assert [(w.condition, w.own) for w in whens(node(ui, f"{LINK}/{W}jitter"))] == [
        ("uit:transport = 'uids:udp'", False)]
    assert [w.condition for w in whens(node(ui, f"{LINK}/{W}window"))] == [
        "uit:server = 'a'", "uit:transport = 'uids:udp'"]
    burst = whens(node(ui, f"{LINK}/{W}burst"))
    assert [(w.condition, w.own, w.holder.name) for w in burst] == [
        ("../uit:id != 'slow'", True, "burst"),
        ("count(uit:backup) < 2", False, "burst"),
        ("uit:transport = 'uids:udp'", False, "pacing")]
    assert [w.condition for w in whens(node(ui, f"/{W}global"))] == ["uit:servers/uit:server"]
    assert whens(node(ui, f"/{W}global/level")) == ()
    assert whens(node(ui, LINK + "/transport")) == ()


@pytest.mark.parametrize(("schema_path", "path", "expected"), [
    (LINK + "/fast", LINK + "[id='l1']/fast", True),
    (LINK + "/fast", LINK + "[id='l2']/fast", False),
    # a field of a new entry: the entry and the field are created for the evaluation
    (LINK + "/fast", LINK + "[id='new']/fast", False),
    (LINK + "/transport", LINK + "[id='l1']/transport", None),
    (f"{LINK}/{W}jitter", f"{LINK}[id='l2']/{W}jitter", True),
    (f"{LINK}/{W}jitter", f"{LINK}[id='l1']/{W}jitter", False),
    (f"{LINK}/{W}window", f"{LINK}[id='l2']/{W}window", True),
    (f"{LINK}/{W}window", f"{LINK}[id='l3']/{W}window", False),  # server b
    (f"{LINK}/{W}burst", f"{LINK}[id='l2']/{W}burst", True),
    (f"{LINK}/{W}burst", f"{LINK}[id='l3']/{W}burst", False),  # two backups: the case
    (f"{LINK}/{W}burst", f"{LINK}[id='slow']/{W}burst", False),  # its own
    (f"{LINK}/{W}burst", f"{LINK}[id='l1']/{W}burst", False),  # the augment's
    (f"{LINK}/{W}rate", f"{LINK}[id='l2']/{W}rate", True),
    (f"/{W}global", f"/{W}global", True),
])
def test_verdicts(ui: Schema, schema_path: str, path: str, expected: bool | None) -> None:
    assert holds(ui, SEED, schema_path, path) is expected


def test_the_root_as_context(ui: Schema) -> None:
    g = node(ui, f"/{W}global")
    with Tree(ui) as empty:
        assert when_holds(empty, g, f"/{W}global") is False
        assert empty.is_empty()
    assert holds(ui, data(), f"/{W}global", f"/{W}global") is True
    assert holds(ui, {"nfo-uitest:links": {}}, f"/{W}global", f"/{W}global") is False


def test_an_existing_node_is_its_own_context(ui: Schema) -> None:
    doc = data(link("l4", transport="nfo-uitest-ids:udp", **{W + "burst": 7}))
    assert holds(ui, doc, f"{LINK}/{W}burst", f"{LINK}[id='l4']/{W}burst") is True


def _valid(schema: Schema, doc: dict[str, Any]) -> bool:
    try:
        with Tree.parse(schema, json.dumps(doc), "json") as tree:
            validate(schema, tree)
    except NfoError as e:
        assert "when" in e.message.lower(), e.message
        return False
    return True


@pytest.mark.parametrize("extra", [
    {"transport": "nfo-uitest:sctp-fast"}, {"transport": "nfo-uitest-ids:udp"},
    {"transport": "nfo-uitest-ids:tcp"}, {},
    {"transport": "nfo-uitest-ids:udp", "backup": ["a", "b"]},
    {"transport": "nfo-uitest-ids:udp", "server": "b"},
])
@pytest.mark.parametrize(("field", "value"), [
    ("fast", True), (W + "jitter", 3), (W + "window", 3), (W + "burst", 3), (W + "rate", 3)])
@pytest.mark.parametrize("lid", ["l9", "slow"])
def test_agrees_with_validation(ui: Schema, extra: dict[str, Any], field: str, value: Any,
                                lid: str) -> None:
    """The verdict for the new entry's field is whether libyang accepts the entry with
    the field set."""
    entry = {**link(lid), **extra}
    path = f"{LINK}[id='{lid}']/{field}"
    verdict = holds(ui, data(entry), f"{LINK}/{field}", path)
    assert verdict is _valid(ui, data({**entry, field: value}))


def test_scope(ui: Schema) -> None:
    assert when_scope([node(ui, LINK + "/fast")]) == ["/nfo-uitest:links"]
    assert sorted(when_scope([node(ui, f"/{W}global"), node(ui, f"{LINK}/{W}window")])
                  or []) == ["/nfo-uitest:links", "/nfo-uitest:servers",
                             "/nfo-uiwhen:global"]


@pytest.mark.parametrize(("doc", "expected"), [
    ({f"{W}global": {"level": 2, "zone": [{"name": "z1"}]}}, True),
    ({f"{W}global": {"level": 1, "zone": [{"name": "z1"}]}}, False),
    ({f"{W}global": {"level": 2}}, True),
    ({}, False),
])
def test_a_whole_list(ui: Schema, doc: dict[str, Any], expected: bool) -> None:
    """A list named without keys (its list view) stands for all its entries: a dummy
    entry is the context node; an entry named by its keys is created as itself."""
    doc = {**data(), **doc}
    zone = f"/{W}global/zone"
    assert holds(ui, doc, zone, zone) is expected
    assert holds(ui, doc, zone, f"{zone}[name='z1']") is expected
    assert holds(ui, doc, zone, f"{zone}[name='new']") is expected


def test_a_when_reading_another_top_removes_its_node_and_the_change_says_so(
        ui: Schema) -> None:
    """Validation's diff (what it removed) is asked for whenever an edit touches a top
    that a ``when`` reads, although nothing under that top itself could go."""
    servers = "/nfo-uitest:servers"
    triggers = ui.autodelete_triggers()
    assert servers not in ui.autodeleting_tops()
    assert triggers is not None and servers in triggers
    assert "/nfo-instances:nf-instances" not in triggers
    doc = {"nfo-uitest:servers": {"server": [{"name": "a"}]}, f"{W}global": {"level": 1}}
    edit = ('<servers xmlns="urn:nfo:uitest" '
            'xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0">'
            '<server nc:operation="delete"><name>a</name></server></servers>')
    with Tree.parse(ui, json.dumps(doc), "json") as tree, \
            Tree.parse(ui, edit, Fmt.XML) as e:
        validate(ui, tree)
        changes = apply_edit(ui, tree, e, "merge")
        validate(ui, tree, changes)
        assert tree.node(f"/{W}global") is None
        flat = changes.materialize()
        assert ChangeDeleted(f"/{W}global") in flat
        assert ChangeDeleted(f"/{W}global/level", "1") in flat
