"""Proportional transactions: validate what an edit touches, not the whole datastore.

For an edit that creates, changes or deletes a few entries of independent
lists (see :mod:`nfo.schema.deps`), the transaction works on a *partial copy*
of the datastore: everything except the untouched entries of those lists.
libyang validates that copy in full; after the commit is durable, the copy's
content is grafted into the live tree, entry by entry.  The cost of an edit
is then proportional to the edit plus the data outside large independent
lists, instead of to the whole datastore.  Anything the plan cannot prove
safe falls back to a full copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.data import Tree, after_instances, find_sibling, get_meta, siblings
from nfo.schema.deps import Independence
from nfo.schema.hashes import PER_INSERT, children_bound, make_room

__all__ = ["Plan", "plan_edits"]

_MASS_OPS = ("replace", "delete", "remove", "create")


@dataclass
class Plan:
    ctx: Any
    ind: Independence
    pruned: set[int]
    """Addresses of the list schemas whose untouched entries stay out of the copy."""
    touched: dict[int, list[Any]] = field(default_factory=dict)
    """Per pruned list, the edit's nodes for the entries it names (valid while the
    transaction runs; entries are matched by key, never through printed paths)."""
    anc: set[int] = field(default_factory=set)
    found: dict[int, int] = field(default_factory=dict)
    """Per pruned list, how many of its touched entries the live tree held when the copy
    was built (none: the graft only adds)."""
    out: Any = field(default_factory=lambda: ly.xffi.new("void **"), repr=False)
    """Result slot of this plan's sibling lookups (one allocation per transaction)."""

    # -- building the partial copy ------------------------------------------
    def build(self, live: Tree) -> Tree:
        out = Tree(self.ctx)
        self.found.clear()
        for schema in self.ind.top_schemas:
            self._copy_schema(live._first(), ffi.NULL, schema, out)
        return out

    def _copy_schema(self, live_first: Any, out_parent: Any, schema: Any, out: Tree) -> None:
        key = ly.addr(schema)
        if key in self.pruned:
            seen: set[int] = set()
            if _first_instance(live_first, schema, self.out) != ffi.NULL:
                for enode in self.touched.get(key, ()):
                    node = find_sibling(live_first, enode, self.out)
                    if node != ffi.NULL and ly.addr(node) not in seen:
                        seen.add(ly.addr(node))
                        _insert(self.ctx, out, out_parent, _dup(self.ctx, node, True))
            self.found[key] = self.found.get(key, 0) + len(seen)
            return
        insts = _instances(live_first, schema)
        if key in self.anc:
            for inst in insts:
                copy = _dup(self.ctx, inst, False)
                _insert(self.ctx, out, out_parent, copy)
                for child_schema in self.ind.children(schema):
                    self._copy_schema(lib.lyd_child(inst), copy, child_schema, out)
            return
        for inst in insts:
            _insert(self.ctx, out, out_parent, _dup(self.ctx, inst, True))

    # -- grafting the validated copy back ------------------------------------
    def graft(self, live: Tree, work: Tree) -> None:
        """Move the copy's content into ``live``; ``work`` keeps only leftovers."""
        for schema in self.ind.top_schemas:
            self._graft_schema(live, ffi.NULL, work, ffi.NULL, schema)

    def _graft_schema(self, live: Tree, live_parent: Any, work: Tree, work_parent: Any,
                      schema: Any) -> None:
        key = ly.addr(schema)

        def lfirst() -> Any:
            return live._first() if live_parent == ffi.NULL else lib.lyd_child(live_parent)

        def wfirst() -> Any:
            return work._first() if work_parent == ffi.NULL else lib.lyd_child(work_parent)

        if key in self.pruned:
            moved: set[int] = set()
            for enode in self.touched.get(key, ()) if self.found.get(key, 1) else ():
                old = find_sibling(lfirst(), enode, self.out)
                if old == ffi.NULL:
                    continue
                new = find_sibling(wfirst(), old, self.out)
                if new == ffi.NULL:
                    _unlink_free(live, old)
                    continue
                if ly.addr(new) in moved:
                    continue
                # the entry keeps its place (order survives a restart): swap its content
                for c in list(siblings(lib.lyd_child_no_keys(old))):
                    lib.lyd_free_tree(c)
                for c in list(siblings(lib.lyd_child_no_keys(new))):
                    ly.xlib.lyd_unlink_tree(c)
                    make_room(self.ctx, old)
                    ly.check(lib.lyd_insert_child(old, c), self.ctx, "grafting data")
                moved.add(ly.addr(new))
            # under a parent on both sides, lyd_insert_child unlinks the entry itself
            direct = live_parent != ffi.NULL and work_parent != ffi.NULL
            if direct and not moved:
                _move_all(self.ctx, wfirst(), schema, live_parent, self.out)
                return
            for inst in _instances(wfirst(), schema):
                if moved and ly.addr(inst) in moved:
                    continue
                if not direct:
                    _move(self.ctx, work, inst, live, live_parent)
                else:
                    make_room(self.ctx, live_parent)
                    if lib.lyd_insert_child(live_parent, inst) != lib.LY_SUCCESS:
                        ly.raise_last(self.ctx, "grafting data")
            return
        if key in self.anc:
            winsts = _instances(wfirst(), schema)
            linsts = _instances(lfirst(), schema)
            if winsts and linsts:
                for child_schema in self.ind.children(schema):
                    self._graft_schema(live, linsts[0], work, winsts[0], child_schema)
                return
            for inst in linsts:
                _unlink_free(live, inst)
            for inst in winsts:
                _move(self.ctx, work, inst, live, live_parent)
            return
        for inst in _instances(lfirst(), schema):
            _unlink_free(live, inst)
        for inst in _instances(wfirst(), schema):
            _move(self.ctx, work, inst, live, live_parent)


def plan_edits(schema: Any, ind: Independence, edits: list[tuple[Tree, str]]) -> Plan | None:
    """A partial plan for ``edits``, or None when only a full copy is safe."""
    ctx = schema.cdata
    if ind.disabled or not ind.lists:
        return None
    candidates = set(ind.lists)
    touched_schema: set[int] = set()
    touched: dict[int, list[Any]] = {}
    for edit, dop in edits:
        if dop == "replace":
            return None
        for top in siblings(edit._first()):
            _scan(ctx, ind, top, dop, candidates, touched_schema, touched)
    pruned = {k for k in candidates
              if not (ind.lists[k].refs_out & touched_schema)}
    if not pruned:
        return None
    anc: set[int] = set()
    for k in pruned:
        anc |= ind.lists[k].ancestors
    return Plan(ctx, ind, pruned, {k: v for k, v in touched.items() if k in pruned}, anc)


def _scan(ctx: Any, ind: Independence, n: Any, inherited: str, candidates: set[int],
          touched_schema: set[int], touched: dict[int, list[Any]]) -> None:
    op = (inherited if n.meta == ffi.NULL
          else get_meta(ctx, n, "ietf-netconf", "operation") or inherited)
    key = ly.addr(n.schema)
    if key in ind.lists:
        touched.setdefault(key, []).append(n)
        return
    below = ind.ancestor_of.get(key)
    if below is not None:
        if op in _MASS_OPS:
            candidates -= below
            touched_schema.add(key)
    else:
        touched_schema.add(key)
    if n.schema.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
        return
    # the entries of a large list are many consecutive siblings: a tight loop for them
    lists = ind.lists
    null = ffi.NULL
    c = lib.lyd_child(n)
    while c != null:
        sch = c.schema
        skey = ly.addr(sch)
        if skey in lists:
            put = touched.setdefault(skey, []).append
            while c != null and c.schema == sch:
                put(c)
                c = c.next
            continue
        _scan(ctx, ind, c, op, candidates, touched_schema, touched)
        c = c.next


# -- small tree helpers -------------------------------------------------------

def _instances(first: Any, schema: Any) -> list[Any]:
    if first == ffi.NULL:
        return []
    out = ly.xffi.new("void **")
    rc = ly.xlib.lyd_find_sibling_val(first, schema, ly.xffi.NULL, 0, out)
    if rc != lib.LY_SUCCESS:
        return []
    node = ffi.cast("struct lyd_node *", out[0])
    res = []
    while node != ffi.NULL and node.schema == schema:
        res.append(node)
        node = node.next
    return res


def _first_instance(first: Any, schema: Any, out: Any) -> Any:
    if first == ffi.NULL:
        return ffi.NULL
    rc = ly.xlib.lyd_find_sibling_val(first, schema, ly.xffi.NULL, 0, out)
    return ffi.cast("struct lyd_node *", out[0]) if rc == lib.LY_SUCCESS else ffi.NULL


def _move_all(ctx: Any, first: Any, schema: Any, parent: Any, out: Any) -> None:
    """Move the instances of ``schema`` among the siblings ``first`` under ``parent``
    of another tree, in one pass that compares no schema: up to the first instance of a
    later sibling schema (a validated tree's children are in schema order), found by
    hashed lookups; ``parent``'s index is given room once, for as many nodes as their
    own parent's index holds."""
    node = _first_instance(first, schema, out)
    if node == ffi.NULL:
        return
    held = ffi.cast("struct lyd_node *", node.parent)
    make_room(ctx, parent, PER_INSERT * children_bound(held))
    insert = lib.lyd_insert_child
    end = after_instances(held, schema, out)
    if end is None:  # something libyang does not order (an opaque node) comes last
        while node != ffi.NULL and node.schema == schema:
            nxt = node.next
            if insert(parent, node) != lib.LY_SUCCESS:
                ly.raise_last(ctx, "grafting data")
            node = nxt
        return
    ok = lib.LY_SUCCESS
    while node != end:
        nxt = node.next
        if insert(parent, node) != ok:
            ly.raise_last(ctx, "grafting data")
        node = nxt


def _dup(ctx: Any, node: Any, recursive: bool) -> Any:
    out = ffi.new("struct lyd_node **")
    opts = lib.LYD_DUP_WITH_FLAGS | (lib.LYD_DUP_RECURSIVE if recursive else 0)
    ly.check(lib.lyd_dup_single(node, ffi.NULL, opts, out), ctx, "copying data")
    return out[0]


def _insert(ctx: Any, tree: Tree, parent: Any, node: Any) -> None:
    if parent != ffi.NULL:
        make_room(ctx, parent)
        ly.check(lib.lyd_insert_child(parent, node), ctx, "inserting data")
        return
    first = tree._first()
    if first == ffi.NULL:
        tree._root = node
        return
    out = ly.xffi.new("void **")
    ly.check(ly.xlib.lyd_insert_sibling(first, node, out), ctx, "inserting data")
    tree._root = ffi.cast("struct lyd_node *", out[0])


def _unlink(tree: Tree, node: Any) -> None:
    if node.parent == ffi.NULL and node == tree._first():
        tree._root = node.next
    ly.xlib.lyd_unlink_tree(node)


def _unlink_free(tree: Tree, node: Any) -> None:
    _unlink(tree, node)
    lib.lyd_free_tree(node)


def _move(ctx: Any, src: Tree, node: Any, dst: Tree, dst_parent: Any) -> None:
    _unlink(src, node)
    _insert(ctx, dst, dst_parent, node)
