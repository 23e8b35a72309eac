"""Bulk creation in :func:`nfo.schema.edit.apply_edit`: runs of new list entries made at
once, their changes (:class:`ChangeSet`, :class:`Run`) built only when asked for, and
the same changes and data as the entry-by-entry apply."""

from __future__ import annotations

import json

import pytest

from nfo.schema import Fmt, Schema, Tree
from nfo.schema.changes import ChangeCreated, ChangeSet, Run
from nfo.schema.edit import apply_edit, used_runs, validate

TOP = "nfo-test:top"


def pairs(keys: list[str], **extra: object) -> str:
    return json.dumps({TOP: {"pair": [{"a": k, "b": 1, "v": f"v-{k}", **extra}
                                      for k in keys]}})


BASE = json.dumps({TOP: {"name": "n", "pair": [{"a": "old", "b": 1}],
                         "thing": [{"id": "t", "needed": "x"}]}})

EDITS = [
    pairs([f"k{i}" for i in range(50)]),
    json.dumps({TOP: {"pair": [{"a": "x", "b": 2}, {"a": "y", "b": 3}],
                      "thing": [{"id": f"t{i}", "needed": "n"} for i in range(5)],
                      "sorted": [3, 1]}}),
    json.dumps({TOP: {"pair": [{"a": "old", "b": 1, "v": "changed"}, {"a": "new", "b": 1}]}}),
    json.dumps({TOP: {"pair": [{"a": "a'b", "b": 1}, {"a": 'c"d', "b": 1}]}}),
    json.dumps({TOP: {"pair": [{"a": "p", "b": 1,
                                "@": {"ietf-netconf:operation": "create"}},
                               {"a": "q", "b": 1}]}}),
]


def applied(schema: Schema, text: str, bulk: bool, dop: str = "merge") -> tuple[list[object],
                                                                                 str, bool]:
    with Tree.parse(schema, BASE, Fmt.JSON) as base, Tree.parse(schema, text, Fmt.JSON) as e:
        validate(schema, base)
        changes = apply_edit(schema, base, e, dop, bulk=bulk)
        runs = used_runs(changes)
        flat = list(changes)
        validate(schema, base)
        return flat, base.print(Fmt.JSON), runs


@pytest.mark.parametrize("text", EDITS)
@pytest.mark.parametrize("dop", ["merge", "replace"])
def test_runs_give_the_same_changes_and_data(schema: Schema, text: str, dop: str) -> None:
    slow = applied(schema, text, False, dop)
    fast = applied(schema, text, True, dop)
    assert fast[:2] == slow[:2]
    assert not slow[2]


def test_a_bulk_create_is_a_run(schema: Schema) -> None:
    flat, _, runs = applied(schema, EDITS[0], True)
    assert runs
    assert flat[0] == ChangeCreated(f"/{TOP}/pair[a='k0'][b='1']")
    assert ChangeCreated(f"/{TOP}/pair[a='k49'][b='1']/v", "v-k49") in flat


def test_entries_with_operations_or_present_are_not_a_run(schema: Schema) -> None:
    assert not applied(schema, pairs(["old"]), True)[2]  # it exists
    assert not applied(schema, pairs(["p", "q"], **{"@": {"ietf-netconf:operation":
                                                          "create"}}), True)[2]


def test_run_changes_are_built_on_demand(schema: Schema) -> None:
    with Tree.parse(schema, "{}", Fmt.JSON) as base, \
            Tree.parse(schema, pairs(["a", "b"]), Fmt.JSON) as e:
        changes = apply_edit(schema, base, e, bulk=True)
        items = changes.items()
        assert len(items) == 2 and isinstance(items[1], Run)  # the container, then a run
        assert items[0] == ChangeCreated(f"/{TOP}")
        run = items[1]
        assert (run.module, run.parent, run.count) == ("nfo-test", f"/{TOP}", 2)
        assert changes.for_module("nfo-vim") == []
        assert isinstance(changes.items()[1], Run)  # not built for another module
        assert run.heads() == [f"/{TOP}/pair[a='a'][b='1']", f"/{TOP}/pair[a='b'][b='1']"]
        assert len(changes.for_module("nfo-test")) == 1 + 2 * 4
        assert changes == list(changes) and len(changes) == 9
        assert not any(isinstance(i, Run) for i in changes.items())


def test_change_set_marks() -> None:
    cs = ChangeSet([ChangeCreated("/m:a")])
    mark = cs.mark()
    cs.append(ChangeCreated("/m:a/b", "1"))
    assert cs.since(mark) == 1
    cs.append(Run("m", "/m:a", 1, lambda: [ChangeCreated("/m:a/c")], lambda: ["/m:a/c"]))
    assert cs.since(mark) is None
    cs.truncate(mark)
    assert cs == [ChangeCreated("/m:a")] and cs != ChangeSet()


def test_run_heads_of_a_one_key_list_are_its_entries_paths(schema: Schema) -> None:
    """A one-key list's heads are made from the key's value alone: the same paths, and
    quoted the same way, as the entries' own changes."""
    keys = ["t0", "a'b", 'c"d', "x y", "é"]
    text = json.dumps({TOP: {"thing": [{"id": k, "needed": "n"} for k in keys]}})
    with Tree.parse(schema, "{}", Fmt.JSON) as base, Tree.parse(schema, text, Fmt.JSON) as e:
        changes = apply_edit(schema, base, e, bulk=True)
        run = changes.items()[1]
        assert isinstance(run, Run)
        heads = run.heads()
        assert heads == [c.path for c in run.build()
                         if isinstance(c, ChangeCreated) and c.path.endswith("]")]
        assert heads[1] == f"/{TOP}/thing[id=\"a'b\"]" and heads[2] == f"/{TOP}/thing[id='c\"d']"
        assert [base.node(h) is not None for h in heads] == [True] * len(keys)
