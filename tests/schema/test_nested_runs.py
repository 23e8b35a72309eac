"""Runs of new list entries that hold lists of their own (nf-instances with parameters):
a plain edit creates them a run at a time, and must give what the entry-by-entry apply
gives: the same data, the same changes in the same order, the same refusal.  An edit
that is not plain leaves such entries to the entry-by-entry apply, which checks their
nested keys at once."""

from __future__ import annotations

import pytest

from nfo.errors import NfoError
from nfo.schema import Fmt, Schema, Tree
from nfo.schema.changes import ChangeSet
from nfo.schema.edit import apply_edit, used_runs, validate

INST = "urn:nfo:instances"
BASE = ('<vims xmlns="urn:nfo:vim"><vim><name>sim1</name><type>sim</type></vim></vims>'
        '<catalog xmlns="urn:nfo:catalog"><nf-descriptor><id>fw</id>'
        '<vim-types xmlns:v="urn:nfo:vim">v:sim</vim-types>'
        "<parameter><name>size</name></parameter><parameter><name>zone</name></parameter>"
        "</nf-descriptor></catalog>"
        f'<nf-instances xmlns="{INST}"><nf-instance><name>old</name>'
        "<descriptor>fw</descriptor></nf-instance></nf-instances>")


def instance(name: str, *params: tuple[str, str]) -> str:
    return (f"<nf-instance><name>{name}</name><descriptor>fw</descriptor>"
            + "".join(f"<parameter><name>{p}</name><value>{v}</value></parameter>"
                      for p, v in params) + "</nf-instance>")


def instances(*body: str) -> str:
    return f'<nf-instances xmlns="{INST}">{"".join(body)}</nf-instances>'


EDITS = [
    # new entries, each with its own list (in no order) and none
    instances(*(instance(f"i{i}", ("zone", f"z{i}"), ("size", str(i))) for i in range(30)),
              instance("bare")),
    # an existing entry amid new ones
    instances(instance("a", ("size", "1")), instance("old", ("zone", "x")),
              instance("b")),
    # a nested entry twice in one entry; the same entry twice in one run
    instances(instance("d", ("size", "1"), ("size", "2"))),
    instances(instance("d", ("size", "1")), instance("d", ("zone", "2"))),
    # a parameter the descriptor does not declare (a must); a value holding markup
    instances(instance("e", ("speed", "9"))),
    instances(instance("f", ("zone", 'a&lt;b&gt;"c"'))),
]


def outcome(schema: Schema, text: str, dop: str, bulk: bool) -> tuple[object, ...]:
    """What the write pipeline makes of ``text`` (``Transactions._stage``: an error
    after runs is given by the entry-by-entry apply)."""
    with Tree.parse(schema, BASE, Fmt.XML) as t, Tree.parse(schema, text, Fmt.XML) as e:
        validate(schema, t)
        assert e.plain
        changes = ChangeSet()
        try:
            apply_edit(schema, t, e, dop, bulk=bulk, into=changes)
            validate(schema, t, changes)
        except NfoError as err:
            if bulk and used_runs(changes):
                return outcome(schema, text, dop, False)
            return ("error", type(err), err.tag, err.app_tag, err.message, err.path)
        return tuple(changes.materialize()), t.print(Fmt.XML)


@pytest.mark.parametrize("text", EDITS)
@pytest.mark.parametrize("dop", ["merge", "replace"])
def test_a_run_with_nested_lists_gives_what_entry_by_entry_gives(schema: Schema, text: str,
                                                                 dop: str) -> None:
    assert outcome(schema, text, dop, True) == outcome(schema, text, dop, False)


def test_entries_with_nested_lists_are_a_run_only_in_a_plain_edit(schema: Schema) -> None:
    for plain in (True, False):
        with Tree.parse(schema, BASE, Fmt.XML) as t, \
                Tree.parse(schema, EDITS[0], Fmt.XML) as e:
            e.plain = plain
            changes = apply_edit(schema, t, e, "merge", bulk=True)
            assert used_runs(changes) is plain
            validate(schema, t, changes)
            assert len(t.match("/nfo-instances:nf-instances/nf-instance"
                               "[name='i7']/parameter")) == 2
