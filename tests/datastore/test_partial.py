"""Proportional validation (nfo.schema.partial) must never change an outcome.

The core of this file is a differential, property-based test: random sequences
of edits are applied to two fresh datastores, one with
``partial_validation = True`` and one with ``False``; after every edit both must
have accepted or refused it alike and hold the same data, and so must they
after a restart.  Explicit tests pin down the leafref case that crosses the
independent list and the O(touched) size of the working copy; regressions for
the bugs it found are at the end of the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nfo.datastore import Datastore, SqliteStorage
from nfo.errors import DataExists, DataMissing, NfoError
from nfo.schema import Schema, Tree
from nfo.schema import partial as partial_mod

REPO = Path(__file__).resolve().parents[2]
TEST_YANG = Path(__file__).parent / "yang"

OP = "ietf-netconf:operation"
INST = "nfo-instances:nf-instances"
CATALOG = "nfo-catalog:catalog"
VIMS = "nfo-vim:vims"
TOP = "nfo-test:top"
INSTANCE_XPATH = "/nfo-instances:nf-instances/nf-instance"


# -- data builders ----------------------------------------------------------------


def op(operation: str) -> dict[str, Any]:
    return {"@": {OP: operation}}


def descriptor(did: str, vim_types: list[str], *, mandatory_port: bool = True,
               optional: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"id": did, "vim-types": vim_types}
    params = []
    if mandatory_port:
        params.append({"name": "port", "type": "port", "mandatory": True})
    if optional:
        params.append({"name": "opt"})
    if params:
        d["parameter"] = params
    if "nfo-vim:local" in vim_types:
        d["local"] = {"command": ["run", "{param:port}"]}
    return d


def instance(name: str, desc: str = "d1", *, params: tuple[str, ...] = ("port",),
             vim: str | None = None, **extra: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"name": name, "descriptor": desc}
    if vim is not None:
        e["vim"] = vim
    if params:
        e["parameter"] = [{"name": p, "value": "1"} for p in params]
    e.update(extra)
    return e


def instances_doc(*entries: dict[str, Any]) -> str:
    return json.dumps({INST: {"nf-instance": list(entries)}})


SEED = json.dumps({
    CATALOG: {"nf-descriptor": [
        descriptor("d1", ["nfo-vim:local"]),
        descriptor("d2", ["nfo-vim:sim"], mandatory_port=False, optional=True),
    ]},
    VIMS: {"vim": [{"name": "vl", "type": "nfo-vim:local"},
                   {"name": "vs", "type": "nfo-vim:sim"}]},
    INST: {"nf-instance": [
        instance("n1", "d1", vim="vl"),
        instance("n2", "d2", params=(), vim="vs"),
        instance("n3", "d1"),
    ]},
    TOP: {"name": "top-name", "pair": [{"a": "x", "b": 0}, {"a": "it's", "b": 1, "v": "v1"}],
          "thing": [{"id": "t1", "label": "L1", "needed": "yes"}]},
})


def dump(ds: Datastore) -> str:
    t = ds.get("running")
    try:
        return t.print("json")
    finally:
        t.free()


def instance_names(ds: Datastore) -> list[str]:
    doc = json.loads(dump(ds))
    return [e["name"] for e in doc.get(INST, {}).get("nf-instance", [])]


async def edit(ds: Datastore, *docs: str, default_operation: str = "merge") -> list[Any]:
    async with ds.internal_session("test") as s:
        return await s.edit_many("running", list(docs), "json",
                                 default_operation=default_operation)


async def outcome(ds: Datastore, docs: list[str], dop: str) -> tuple[Any, ...]:
    try:
        changes = await edit(ds, *docs, default_operation=dop)
    except NfoError as e:
        # Only the tag: which entry libyang reports first follows the order of the
        # list, and that order differs (test_modifying_an_entry_keeps_its_position).
        return ("refused", e.tag)
    # Sorted: a subtree's changes follow the order of its list entries, which
    # differs between the modes (test_modifying_an_entry_keeps_its_position).
    return ("accepted", tuple(sorted(changes, key=repr)))


def canon(text: str) -> Any:
    """The printed data with the entries of the independent lists in key order.

    Everything else keeps its printed order and duplicate members survive
    (object_pairs_hook), so only the order of ``nf-instance`` and ``pair``
    entries is ignored: see test_modifying_an_entry_keeps_its_position for why.
    """
    def walk(v: Any, key: str | None = None) -> Any:
        if isinstance(v, list) and v and isinstance(v[0], tuple) and v[0] == ("__obj__",):
            return tuple((k, walk(x, k)) for k, x in v[1:])
        if isinstance(v, list):
            items = [walk(x) for x in v]
            if key in ("nf-instance", "pair"):
                return tuple(sorted(items, key=repr))
            return tuple(items)
        return v
    return walk(json.loads(text, object_pairs_hook=lambda pairs: [("__obj__",), *pairs]))


async def open_ds(schema: Schema, path: Path, partial: bool) -> Datastore:
    ds = Datastore.open(schema, SqliteStorage(path))
    ds.partial_validation = partial
    await ds.start()
    return ds


@asynccontextmanager
async def datastore(schema: Schema, path: Path, partial: bool) -> AsyncIterator[Datastore]:
    ds = await open_ds(schema, path, partial)
    try:
        yield ds
    finally:
        await ds.close()


# -- the edit generator ----------------------------------------------------------------

NAMES = ["n1", "n2", "n3", "n4"]
DESCS = ["d1", "d2", "d3"]
VIM_NAMES = ["vl", "vs", "v3"]
VIM_TYPES = ["nfo-vim:local", "nfo-vim:sim"]
# Keys needing quoting in a data path; a key with both quote characters is left
# out here on purpose (see test_key_with_both_quote_characters).
PAIR_A = ["x", "y z", "it's", 'say "hi"']
PAIR_B = [0, 1, -1]
ENTRY_OPS = [None, None, "merge", "create", "replace", "delete", "remove"]


@dataclass(frozen=True)
class Frag:
    ids: tuple[tuple[Any, ...], ...]
    """The keyed entries the fragment names (no entry twice in one transaction)."""
    doc: dict[str, Any]


def with_op(entry: dict[str, Any], operation: str | None) -> dict[str, Any]:
    return {**entry, **op(operation)} if operation else entry


def merge_docs(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge_docs(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    return b


instance_entries = st.builds(
    instance,
    st.sampled_from(NAMES),
    st.sampled_from([*DESCS, "nope"]),
    params=st.sampled_from([(), ("port",), ("port", "opt"), ("port", "undeclared"), ("opt",)]),
    vim=st.sampled_from([None, "vl", "vs", "nov"]),
)


@st.composite
def inst_frag(draw: st.DrawFn) -> Frag:
    name = draw(st.sampled_from(NAMES))
    kind = draw(st.sampled_from(["put", "admin", "descr", "vim", "unset-vim", "delete"]))
    if kind == "put":
        e = with_op({**draw(instance_entries), "name": name}, draw(st.sampled_from(ENTRY_OPS[:5])))
        if draw(st.booleans()):
            e["admin-state"] = draw(st.sampled_from(["enabled", "disabled"]))
    elif kind == "admin":
        e = {"name": name, "admin-state": draw(st.sampled_from(["enabled", "disabled"]))}
    elif kind == "descr":
        e = {"name": name, "description": draw(st.sampled_from(["a", "b"]))}
    elif kind == "vim":
        e = {"name": name, "vim": draw(st.sampled_from([*VIM_NAMES, "nov"]))}
    elif kind == "unset-vim":
        e = {"name": name, "vim": draw(st.sampled_from(VIM_NAMES)),
             "@vim": {OP: draw(st.sampled_from(["delete", "remove"]))}}
    else:
        e = with_op({"name": name}, draw(st.sampled_from(["delete", "remove"])))
    return Frag((("nf-instance", name),), {INST: {"nf-instance": [e]}})


@st.composite
def catalog_frag(draw: st.DrawFn) -> Frag:
    did = draw(st.sampled_from(DESCS))
    kind = draw(st.sampled_from(["put", "delete", "vim-type", "param"]))
    if kind == "put":
        types = draw(st.lists(st.sampled_from(VIM_TYPES), min_size=1, max_size=2, unique=True))
        e = with_op(descriptor(did, types, mandatory_port=draw(st.booleans()),
                               optional=draw(st.booleans())),
                    draw(st.sampled_from([None, "create", "replace"])))
    elif kind == "delete":
        e = with_op({"id": did}, draw(st.sampled_from(["delete", "remove"])))
    elif kind == "vim-type":
        e = {"id": did, "vim-types": [draw(st.sampled_from(VIM_TYPES))]}
        if draw(st.booleans()):
            e["@vim-types"] = [{OP: draw(st.sampled_from(["delete", "remove"]))}]
    else:
        p: dict[str, Any] = {"name": draw(st.sampled_from(["port", "opt", "extra"]))}
        if draw(st.booleans()):
            p["mandatory"] = draw(st.booleans())
        e = {"id": did, "parameter": [with_op(p, draw(st.sampled_from([None, "delete"])))]}
    return Frag((("nf-descriptor", did),), {CATALOG: {"nf-descriptor": [e]}})


@st.composite
def vim_frag(draw: st.DrawFn) -> Frag:
    name = draw(st.sampled_from(VIM_NAMES))
    if draw(st.booleans()):
        e = with_op({"name": name, "type": draw(st.sampled_from(VIM_TYPES))},
                    draw(st.sampled_from([None, None, "create", "replace"])))
    else:
        e = with_op({"name": name}, draw(st.sampled_from(["delete", "remove"])))
    return Frag((("vim", name),), {VIMS: {"vim": [e]}})


@st.composite
def pair_entries(draw: st.DrawFn) -> dict[str, Any]:
    e: dict[str, Any] = {"a": draw(st.sampled_from(PAIR_A)), "b": draw(st.sampled_from(PAIR_B))}
    if draw(st.booleans()):
        e["v"] = draw(st.sampled_from(["v1", "v2"]))
    return e


@st.composite
def pair_frag(draw: st.DrawFn) -> Frag:
    e = with_op(draw(pair_entries()), draw(st.sampled_from(ENTRY_OPS)))
    return Frag((("pair", e["a"], e["b"]),), {TOP: {"pair": [e]}})


@st.composite
def thing_frag(draw: st.DrawFn) -> Frag:
    tid = draw(st.sampled_from(["t1", "t2"]))
    e: dict[str, Any] = {"id": tid}
    if draw(st.booleans()):
        e["label"] = draw(st.sampled_from(["L1", "L2"]))
    if draw(st.integers(0, 3)):
        e["needed"] = "yes"
    e = with_op(e, draw(st.sampled_from(ENTRY_OPS)))
    return Frag((("thing", tid),), {TOP: {"thing": [e]}})


@st.composite
def container_frag(draw: st.DrawFn) -> Frag:
    """An operation on a container above the lists, with a few entries inside."""
    which = draw(st.sampled_from(["nf-instances", "nf-instances", "top", "catalog"]))
    operation = draw(st.sampled_from(["create", "delete", "remove", "replace", "merge"]))
    if which == "nf-instances":
        entries = draw(st.lists(instance_entries, max_size=2, unique_by=lambda e: e["name"]))
        return Frag(tuple(("nf-instance", e["name"]) for e in entries),
                    {INST: {**op(operation), "nf-instance": entries}})
    if which == "top":
        pairs = draw(st.lists(pair_entries(), max_size=2, unique_by=lambda e: (e["a"], e["b"])))
        return Frag(tuple(("pair", e["a"], e["b"]) for e in pairs),
                    {TOP: {**op(operation), "pair": pairs}})
    return Frag((), {CATALOG: op(draw(st.sampled_from(["delete", "remove"])))})


fragments = st.one_of(inst_frag(), inst_frag(), catalog_frag(), vim_frag(), pair_frag(),
                      thing_frag(), container_frag())


@st.composite
def transactions(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    """(default-operation, edits): one edit, or several applied with edit_many."""
    dop = draw(st.sampled_from(["merge"] * 7 + ["none", "none", "replace"]))
    used: set[tuple[Any, ...]] = set()
    edits = []
    for _ in range(draw(st.sampled_from([1, 1, 1, 2]))):
        doc: dict[str, Any] = {}
        for f in draw(st.lists(fragments, min_size=1, max_size=3)):
            # The same entry twice in one transaction is a separate, known bug
            # (test_same_entry_twice_in_one_transaction).
            if used & set(f.ids):
                continue
            used |= set(f.ids)
            doc = merge_docs(doc, f.doc)
        edits.append(doc)
    return dop, edits


# -- the differential property ----------------------------------------------------------


@settings(max_examples=150, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(steps=st.lists(transactions(), min_size=1, max_size=12))
async def test_partial_validation_never_changes_an_outcome(
        schema: Schema, tmp_path_factory: pytest.TempPathFactory,
        steps: list[tuple[str, list[dict[str, Any]]]]) -> None:
    base = tmp_path_factory.mktemp("partial")
    paths = {True: base / "partial.db", False: base / "full.db"}
    dss = {p: await open_ds(schema, paths[p], p) for p in (True, False)}
    try:
        for ds in dss.values():
            await edit(ds, SEED)
        for i, (dop, edits) in enumerate(steps):
            docs = [json.dumps(e) for e in edits]
            res = {p: await outcome(ds, docs, dop) for p, ds in dss.items()}
            event(f"edit {res[False][0]}" + (f" ({res[False][1]})" if res[False][0] ==
                                               "refused" else ""))
            where = f"step {i}: default-operation {dop}, edits {docs}"
            assert res[True] == res[False], where
            assert canon(dump(dss[True])) == canon(dump(dss[False])), where
        before = {p: canon(dump(ds)) for p, ds in dss.items()}
    finally:
        for ds in dss.values():
            await ds.close()
    # Restart both: the same outcome (open or refuse to open) and the same data.
    reopened: dict[bool, Any] = {}
    for p in (True, False):
        try:
            ds = await open_ds(schema, paths[p], p)
        except NfoError as e:
            reopened[p] = ("unopenable", e.tag, e.message)
            continue
        try:
            reopened[p] = ("open", canon(dump(ds)))
        finally:
            await ds.close()
    assert reopened[True] == reopened[False]
    assert before[True] == before[False]
    # Restart fidelity (reopened == before) is not asserted here: edit replay is
    # broken for both modes alike (test_edit.py::test_accepted_leaf_change_survives_restart).
    event(f"restart: {reopened[False][0]}")


# -- explicit cases ------------------------------------------------------------------------


@pytest.mark.parametrize("partial", [True, False])
@pytest.mark.parametrize("deletion", [
    {CATALOG: {"nf-descriptor": [{"id": "d1", **op("delete")}]}},
    {CATALOG: {"nf-descriptor": [{"id": "d1", **op("remove")}]}},
    {CATALOG: op("delete")},
    {CATALOG: {"nf-descriptor": [{"id": "d1", **op("replace"), "vim-types": ["nfo-vim:sim"]}]}},
], ids=["delete-entry", "remove-entry", "delete-catalog", "replace-entry"])
async def test_deleting_a_referenced_descriptor_is_refused(
        ds: Datastore, partial: bool, deletion: dict[str, Any]) -> None:
    """nf-instance is independent, yet an edit of the catalog it reads is validated
    against all its entries: the untouched instance n3 still uses d1."""
    ds.partial_validation = partial
    await edit(ds, SEED)
    # Only untouched entries reference d1 once n1 is moved to d2.
    await edit(ds, instances_doc({"name": "n1", "descriptor": "d2", "vim": "vs",
                                  "parameter": [{"name": "port", **op("delete")}]}))
    before = dump(ds)
    with pytest.raises(NfoError) as ei:
        await edit(ds, json.dumps(deletion))
    e = ei.value
    if "vim-types" in json.dumps(deletion):
        # replace keeps d1 but drops the mandatory parameter and the local type
        assert e.tag == "operation-failed" and e.app_tag == "must-violation"
    else:
        assert isinstance(e, DataMissing)
        assert (e.tag, e.app_tag) == ("data-missing", "instance-required")
        referrers = ["n1", "n3"] if deletion == {CATALOG: op("delete")} else ["n3"]
        assert e.path in [f"{INSTANCE_XPATH}[name='{n}']/descriptor" for n in referrers]
    assert dump(ds) == before


@pytest.mark.parametrize("partial", [True, False])
async def test_deleting_a_referenced_vim_or_changing_its_type_is_refused(
        ds: Datastore, partial: bool) -> None:
    ds.partial_validation = partial
    await edit(ds, SEED)
    before = dump(ds)
    with pytest.raises(DataMissing) as ei:
        await edit(ds, json.dumps({VIMS: {"vim": [{"name": "vl", **op("delete")}]}}))
    assert ei.value.app_tag == "instance-required"
    assert ei.value.path == "/nfo-instances:nf-instances/nf-instance[name='n1']/vim"
    with pytest.raises(NfoError) as ei2:
        await edit(ds, json.dumps({VIMS: {"vim": [{"name": "vl", "type": "nfo-vim:sim"}]}}))
    assert (ei2.value.tag, ei2.value.app_tag) == ("operation-failed", "must-violation")
    assert ei2.value.message == "the VIM's type is not among the descriptor's vim-types"
    assert dump(ds) == before


PRELOAD = 500


async def _preloaded(ds: Datastore) -> None:
    await edit(ds, SEED)
    await edit(ds, instances_doc(*(instance(f"bulk{i:03d}", "d2", params=())
                                   for i in range(PRELOAD))))


def _record_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    orig = partial_mod.Plan.build

    def build(self: partial_mod.Plan, live: Any) -> Any:
        out = orig(self, live)
        sizes.append(len(out.match(INSTANCE_XPATH)))
        return out
    monkeypatch.setattr(partial_mod.Plan, "build", build)
    return sizes


async def test_single_entry_edit_copies_only_the_touched_entries(
        ds: Datastore, monkeypatch: pytest.MonkeyPatch) -> None:
    await _preloaded(ds)
    total = PRELOAD + 3
    sizes = _record_builds(monkeypatch)
    # modify one existing entry
    await edit(ds, instances_doc({"name": "bulk250", "admin-state": "disabled"}))
    # create one
    await edit(ds, instances_doc(instance("fresh", "d2", params=())))
    # delete two
    await edit(ds, instances_doc({"name": "bulk100", **op("delete")},
                                 {"name": "bulk200", **op("remove")}))
    # refused: descriptor missing; nothing may change
    with pytest.raises(DataMissing):
        await edit(ds, instances_doc(instance("bad", "nope")))
    # a pair edit does not touch nf-instance at all
    await edit(ds, json.dumps({TOP: {"pair": [{"a": "new", "b": 5}]}}))
    # the refused create is tried again entry by entry (its error as always): two copies
    assert sizes == [1, 0, 2, 0, 0, 0]
    names = instance_names(ds)
    assert len(names) == total + 1 - 2
    assert "fresh" in names and "bulk100" not in names and "bulk200" not in names
    assert "bad" not in names
    doc = json.loads(dump(ds))
    [e250] = [e for e in doc[INST]["nf-instance"] if e["name"] == "bulk250"]
    assert e250["admin-state"] == "disabled"


async def test_edits_the_plan_cannot_prove_safe_copy_everything(
        ds: Datastore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A catalog change that instances read, a mass operation on their container and
    default-operation replace are each validated against every entry."""
    await _preloaded(ds)
    total = PRELOAD + 3
    copied: list[int] = []
    orig_build = partial_mod.Plan.build
    orig_dup = Tree.dup

    def build(self: partial_mod.Plan, live: Any) -> Any:
        out = orig_build(self, live)
        copied.append(len(out.match(INSTANCE_XPATH)))
        return out

    def dup(self: Tree) -> Tree:
        out = orig_dup(self)
        copied.append(len(out.match(INSTANCE_XPATH)))
        return out
    monkeypatch.setattr(partial_mod.Plan, "build", build)
    monkeypatch.setattr(Tree, "dup", dup)
    await edit(ds, json.dumps({CATALOG: {"nf-descriptor": [
        {"id": "d2", "vim-types": ["nfo-vim:local"], "local": {"command": ["x"]}}]}}))
    await edit(ds, json.dumps({INST: {**op("replace"), "nf-instance": [
        instance("only", "d2", params=())]}}))
    await edit(ds, SEED, default_operation="replace")
    assert copied == [total, total, 1]
    monkeypatch.undo()
    assert instance_names(ds) == ["n1", "n2", "n3"]


@pytest.mark.parametrize("partial", [True, False])
async def test_partial_and_full_agree_after_restart(
        schema: Schema, tmp_path: Path, partial: bool) -> None:
    """Entries created, changed and deleted through the partial path replay identically."""
    path = tmp_path / "nfo.db"
    async with datastore(schema, path, partial) as ds:
        await edit(ds, SEED)
        await edit(ds, instances_doc(instance("n4", "d2", params=("opt",), vim="vs")))
        await edit(ds, instances_doc({"name": "n2", "admin-state": "disabled"}))
        await edit(ds, instances_doc({"name": "n3", **op("delete")}))
        await edit(ds, json.dumps({TOP: {"pair": [{"a": "x", "b": 0, **op("delete")},
                                                  {"a": 'say "hi"', "b": -1, "v": "q"}]}}))
        before = canon(dump(ds))
    async with datastore(schema, path, partial) as ds:
        assert canon(dump(ds)) == before
        assert sorted(instance_names(ds)) == ["n1", "n2", "n4"]


# -- regressions: bugs these tests found, now fixed ------------------------------------------


async def seed_both_quotes(ds: Datastore, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry whose key holds both quotes, as a release that did not refuse them
    stored it (nfo refuses to create one now: no path can address it)."""
    with monkeypatch.context() as m:
        m.setattr("nfo.schema.edit._check_addressable", lambda *_: None)
        await edit(ds, json.dumps({TOP: {"pair": [{"a": key, "b": 1, "v": "x"}]}}))


async def test_key_with_both_quote_characters(ds: Datastore,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    key = "b'o\"th"
    await seed_both_quotes(ds, key, monkeypatch)
    before = dump(ds)
    with pytest.raises(DataExists):
        await edit(ds, json.dumps({TOP: {"pair": [{"a": key, "b": 1, **op("create")}]}}))
    assert dump(ds) == before
    await edit(ds, json.dumps({TOP: {"pair": [{"a": key, "b": 1, **op("delete")}]}}))
    assert "pair" not in dump(ds)


async def test_key_with_both_quote_characters_full_validation(
        ds: Datastore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same scenario as above passes with partial validation off."""
    ds.partial_validation = False
    key = "b'o\"th"
    await seed_both_quotes(ds, key, monkeypatch)
    before = dump(ds)
    with pytest.raises(DataExists):
        await edit(ds, json.dumps({TOP: {"pair": [{"a": key, "b": 1, **op("create")}]}}))
    assert dump(ds) == before
    await edit(ds, json.dumps({TOP: {"pair": [{"a": key, "b": 1, **op("delete")}]}}))
    assert "pair" not in dump(ds)


async def test_same_entry_twice_in_one_transaction(ds: Datastore) -> None:
    await edit(ds, json.dumps({TOP: {"pair": [{"a": "p", "b": 2}]}}))
    await edit(ds, json.dumps({TOP: {"pair": [{"a": "p", "b": 2, "v": "x"}]}}),
               json.dumps({TOP: {"pair": [{"a": "p", "b": 2}]}}))
    assert json.loads(dump(ds)) == {TOP: {"pair": [{"a": "p", "b": 2, "v": "x"}]}}


@pytest.mark.parametrize("partial", [
    True,
    False,
])
async def test_modifying_an_entry_keeps_its_position(
        schema: Schema, tmp_path: Path, partial: bool) -> None:
    path = tmp_path / "nfo.db"
    async with datastore(schema, path, partial) as ds:
        for a in ("z", "y", "x"):
            await edit(ds, json.dumps({TOP: {"pair": [{"a": a, "b": 1}]}}))
        await edit(ds, json.dumps({TOP: {"pair": [{"a": "y", "b": 1, "v": "q"}]}}))
        order = [p["a"] for p in json.loads(dump(ds))[TOP]["pair"]]
    async with datastore(schema, path, partial) as ds:
        after_restart = [p["a"] for p in json.loads(dump(ds))[TOP]["pair"]]
    assert order == after_restart == ["z", "y", "x"]


_CRASH_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    from nfo.datastore import Datastore, SqliteStorage
    from nfo.schema import Schema
    schema = Schema(extra_dirs=[Path(sys.argv[2])])
    async def main():
        ds = Datastore.open(schema, SqliteStorage(Path(sys.argv[1])))
        await ds.start()
        s = ds.internal_session("u")
        await s.edit("running", sys.argv[3], "json")
        await s.edit("running", sys.argv[4], "json")
        t = ds.get("running"); print(t.print("json")); t.free()
        await ds.close()
    asyncio.run(main())
""")


async def test_two_existing_entries_in_one_edit_do_not_crash(tmp_path: Path) -> None:
    """Regression (fixed in 1351332): Plan._graft_schema read live_first once and then
    freed the touched entries, so a merge changing the first and another entry walked
    freed memory (SIGSEGV).  Run in a child process so a regression cannot kill pytest."""
    second = instances_doc({"name": "n1", "admin-state": "disabled"},
                           {"name": "n2", "admin-state": "disabled"})
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, str(tmp_path / "nfo.db"), str(TEST_YANG),
         SEED, second], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"rc={proc.returncode} {proc.stderr[-2000:]}"
    entries = json.loads(proc.stdout)[INST]["nf-instance"]
    assert [e.get("admin-state") for e in entries if e["name"] in ("n1", "n2")] == \
        ["disabled", "disabled"]
