"""libyang's child hash tables under in-place edits (nfo.schema.hashes).

libyang 2.1.30 (Debian 12) dereferences NULL inserting into a child table that has no
empty record left and whose collision chain wraps around; removals leave tombstones
and only removals rehash, so a tree edited in place wears its tables out.  The
RESTCONF fuzzer found it (a SIGSEGV after ~20,000 requests).  The sequence below is
the one traced on the fuzzer's server, replayed through the plain tree API."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from nfo.schema import Fmt, Parse, Schema, Tree, hashes
from nfo.schema.edit import apply_edit
from tests.conftest import TEST_YANG

WEAR = textwrap.dedent("""
    def merge(tree, body):
        tree.merge(Tree.parse(schema, json.dumps({"nfo-test:top": body}), Fmt.JSON,
                              mode=Parse.DATA), long_lived=GUARD)

    def remove(tree, name):
        for c in tree.node("/nfo-test:top").children():
            if c.name == name:
                tree.remove(c)

    def wear(tree):
        merge(tree, {"count": 1, "colour": "nfo-test:red", "tags": ["a"], "radius": 0})
        remove(tree, "tags"); remove(tree, "radius"); merge(tree, {"sorted": [-5]})
        for _ in range(2):
            remove(tree, "count"); merge(tree, {"count": 1})
            remove(tree, "colour"); merge(tree, {"colour": "nfo-test:red"})
            remove(tree, "sorted"); merge(tree, {"sorted": [-5]})
            merge(tree, {"extra": {}})
""")

THING = {"thing": [{"id": "b", "needed": "l"}]}


def _child(guard: bool) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from nfo.schema import Fmt, Parse, Schema, Tree
        GUARD = {guard!r}
        schema = Schema(extra_dirs=[Path({str(TEST_YANG)!r})])
    """) + WEAR + textwrap.dedent(f"""
        tree = Tree(schema)
        wear(tree)
        merge(tree, {THING!r})
        print(tree.print(Fmt.JSON))
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_a_tree_edited_in_place_takes_the_insert_that_crashed() -> None:
    out = _child(guard=True)
    assert out.returncode == 0, out.stderr[-2000:]
    top = json.loads(out.stdout)["nfo-test:top"]
    assert top["thing"] == [{"id": "b", "needed": "l"}] and top["sorted"] == [-5]


@pytest.mark.skipif(not hashes._open_addressing(), reason="libyang without the old table")
def test_the_sequence_still_crashes_unguarded() -> None:
    """Keeps the test above honest: on this libyang the same edits without the guard
    end in a segmentation fault."""
    assert _child(guard=False).returncode == -11


@pytest.mark.skipif(not hashes._open_addressing(), reason="libyang without the old table")
def test_make_room_rebuilds_a_worn_table(schema: Schema) -> None:
    ns: dict[str, object] = {"json": json, "Tree": Tree, "Fmt": Fmt, "Parse": Parse,
                             "schema": schema, "GUARD": False}
    exec(WEAR, ns)
    tree = Tree(schema)
    try:
        ns["wear"](tree)  # type: ignore[operator]
        top = tree.node("/nfo-test:top")
        assert top is not None
        assert hashes.room(top._p) == 0
        before = tree.print(Fmt.JSON)
        hashes.make_room(schema.cdata, top._p, 6)
        assert hashes.tombstones(top._p) == 0
        assert tree.print(Fmt.JSON) == before
        for c in top.children():
            assert tree.node(c.path) is not None
        ns["merge"](tree, THING)  # type: ignore[operator]
        assert tree.node("/nfo-test:top/thing[id='b']") is not None
    finally:
        tree.free()


@pytest.mark.skipif(not hashes._open_addressing(), reason="libyang without the old table")
def test_an_edit_leaves_room_for_what_validation_adds(schema: Schema) -> None:
    """An edit that removes children leaves their parent room for every default and
    non-presence container validation may put back."""
    tree = Tree.parse(schema, json.dumps({"nfo-test:top": {
        "name": "n", "count": 3, "colour": "nfo-test:red", "addr": 1, "tags": ["a"],
        "radius": 4, "extra": {"level": 2}}}), Fmt.JSON)
    edit = Tree.parse(schema, (
        '<top xmlns="urn:nfo:test" xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0">'
        '<count nc:operation="delete">3</count><colour nc:operation="delete">red</colour>'
        '<addr nc:operation="delete">1</addr></top>'), Fmt.XML, mode=Parse.CONFIG)
    try:
        apply_edit(schema, tree, edit)
        top = tree.node("/nfo-test:top")
        assert top is not None
        room = hashes.room(top._p)
        need = hashes.PER_INSERT * hashes._implicit_children(int(
            hashes.ffi.cast("uintptr_t", top._p.schema)))
        assert room is None or room > need or hashes.tombstones(top._p) == 0
    finally:
        tree.free()
        edit.free()


@pytest.mark.skipif(not hashes._open_addressing(), reason="libyang without the old table")
def test_children_bound_counts_at_least_every_child(schema: Schema) -> None:
    things = [{"id": f"t{i}", "needed": "n"} for i in range(40)]
    with Tree.parse(schema, json.dumps({"nfo-test:top": {"thing": things, "radius": 1}}),
                    Fmt.JSON) as tree:
        top = tree.node("/nfo-test:top")
        assert top is not None
        assert hashes.children_bound(top._p) >= 41  # from the table
        for i in range(0, 40, 2):
            tree.remove_all(f"/nfo-test:top/thing[id='t{i}']")
        assert hashes.tombstones(top._p)
        assert hashes.children_bound(top._p) >= len(top.children()) == 21
    with Tree.parse(schema, json.dumps({"nfo-test:top": {"radius": 1}}), Fmt.JSON) as tree:
        top = tree.node("/nfo-test:top")
        assert top is not None
        assert hashes.children_bound(top._p) == 1  # no table: counted
