"""Cutting a private copy of data down to what a read asked for.

RESTCONF's ``content``, ``depth`` and ``fields`` and NETCONF's ``config-filter``,
``max-depth`` and origin filters ask the same things of a tree: keep only
configuration or only state (with the keys and ancestors that locate it), keep
only the levels below the selected nodes that were asked for, keep only some
descendants, keep only some origins.  These functions do it in place on a copy
(never on a live datastore tree), walking libyang nodes directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.data import Tree, siblings
from nfo.schema.dnode import Node

__all__ = [
    "ORIGIN",
    "annotate_origin",
    "filter_origin",
    "prune_content",
    "prune_depth",
    "prune_fields",
    "strip_origin",
]

ORIGIN = "ietf-origin:origin"
_TERM = lib.LYS_LEAF | lib.LYS_LEAFLIST


def _is_key(p: Any) -> bool:
    return bool(p.schema != ffi.NULL and p.schema.flags & lib.LYS_KEY)


def _is_term(p: Any) -> bool:
    return bool(p.schema.nodetype & _TERM)


def _undefault(p: Any) -> None:
    """A container we pruned is no longer 'default only': keep it printable."""
    if p.flags & lib.LYD_DEFAULT and p.schema.nodetype & lib.LYS_CONTAINER:
        p.flags = p.flags & ~lib.LYD_DEFAULT


def _free(tree: Tree, p: Any) -> None:
    if p.parent == ffi.NULL and p == tree._first():
        tree._root = p.next
    lib.lyd_free_tree(p)


def _keep_content(tree: Tree, p: Any, config: bool) -> bool:
    """Remove the state (``config``) or configuration (not ``config``) below ``p``;
    False when ``p`` itself is to go."""
    state = bool(p.schema.flags & lib.LYS_CONFIG_R)
    if config:
        if state:
            return False
        if not _is_term(p):
            for c in list(siblings(lib.lyd_child(p))):
                if not _keep_content(tree, c, config):
                    _free(tree, c)
        return True
    if state:
        return True
    if _is_term(p):
        return False
    keep = False
    for c in list(siblings(lib.lyd_child(p))):
        if _is_key(c):
            continue
        if _keep_content(tree, c, config):
            keep = True
        else:
            _free(tree, c)
    if keep:
        _undefault(p)
    return keep


def prune_content(tree: Tree, anchors: Iterable[Node], *, config: bool) -> list[Node]:
    """Keep only configuration (``config``) or only state below each anchor, with the
    list keys and ancestors that locate what stays.  Returns the anchors still there
    (an anchor with nothing of the kind left is removed)."""
    kept = []
    for a in anchors:
        if _keep_content(tree, a._p, config):
            kept.append(a)
        else:
            _free(tree, a._p)
    return kept


def _ancestors(nodes: Iterable[Node]) -> set[int]:
    out: set[int] = set()
    for n in nodes:
        p = n._p
        while p != ffi.NULL:
            out.add(ly.addr(p))
            p = ffi.cast("struct lyd_node *", p.parent) if p.parent != ffi.NULL else ffi.NULL
    return out


def _keep_fields(tree: Tree, p: Any, selected: set[int], anchors: set[int]) -> bool:
    a = ly.addr(p)
    if a in selected:
        return True
    if a not in anchors:
        return False
    for c in list(siblings(lib.lyd_child(p))):
        if not _is_key(c) and not _keep_fields(tree, c, selected, anchors):
            _free(tree, c)
    _undefault(p)
    return True


def prune_fields(tree: Tree, anchors: Iterable[Node], selected: Iterable[Node]) -> list[Node]:
    """Keep, below each anchor, only the ``selected`` nodes (whole) with their
    ancestors and list keys.  Returns the anchors still there."""
    sel = list(selected)
    chosen = {ly.addr(n._p) for n in sel}
    up = _ancestors(sel)
    kept = []
    for a in anchors:
        if _keep_fields(tree, a._p, chosen, up):
            kept.append(a)
        else:
            _free(tree, a._p)
    return kept


def prune_depth(tree: Tree, anchors: Iterable[Node], depth: int,
                level_one: Iterable[Node] = ()) -> None:
    """RFC 8040 section 4.8.2 and RFC 8526 max-depth: each anchor is level 1, and so
    is every node of ``level_one`` and its ancestors (RESTCONF ``fields``); nodes
    deeper than ``depth`` go, list keys stay."""
    reset = _ancestors(level_one)
    stack: list[tuple[Any, int]] = [(a._p, 1) for a in anchors]
    while stack:
        p, level = stack.pop()
        if ly.addr(p) in reset:
            level = 1
        if _is_term(p):
            continue
        for c in list(siblings(lib.lyd_child(p))):
            if _is_key(c):
                continue
            if level >= depth and ly.addr(c) not in reset:
                _free(tree, c)
                _undefault(p)
            else:
                stack.append((c, level + 1))


# -- RFC 8342 origin ---------------------------------------------------------------------


def annotate_origin(merged: Tree, running: Tree) -> None:
    """Tag nodes of ``merged`` (operational data) with their origin where it differs
    from their parent's: ``intended`` (as in running), ``default``, else ``learned``."""
    from nfo.schema.data import find_sibling, is_default, node_value

    ctx = merged.ctx
    stack: list[tuple[Any, Any, str | None]] = [(merged._first(), running._first(), None)]
    while stack:
        first, rfirst, parent_origin = stack.pop()
        for n in siblings(first):
            counterpart = find_sibling(rfirst, n)
            if counterpart != ffi.NULL and node_value(counterpart) != node_value(n):
                counterpart = ffi.NULL
            if is_default(n):
                origin = "ietf-origin:default"
            elif counterpart != ffi.NULL:
                origin = "ietf-origin:intended"
            else:
                origin = "ietf-origin:learned"
            if origin != parent_origin and not _is_key(n):
                rc = ly.xlib.lyd_new_meta(ly.xnode(ctx), ly.xnode(n), ly.xffi.NULL,
                                          ORIGIN.encode(), origin.encode(), 0, ly.xffi.NULL)
                if rc != lib.LY_SUCCESS:
                    ly.raise_last(ctx, "tagging origin")
            if not _is_term(n):
                rchild = lib.lyd_child(counterpart) if counterpart != ffi.NULL else ffi.NULL
                stack.append((lib.lyd_child(n), rchild, origin))


def _origin_of(ctx: Any, p: Any) -> str | None:
    m = p.meta
    while m != ffi.NULL:
        if ffi.string(m.name) == b"origin":
            v = lib.lyd_value_get_canonical(ctx, ffi.addressof(m.value))
            return str(ffi.string(v).decode()).rpartition(":")[2] if v != ffi.NULL else None
        m = m.next
    return None


def filter_origin(tree: Tree, names: set[str], *, negated: bool = False) -> None:
    """Keep the nodes whose origin is (not, if ``negated``) one of ``names`` (identity
    names of ietf-origin, derived ones included), with their ancestors and list keys
    (RFC 8526 section 3.1.1).  Nodes need their origin tagged (:func:`annotate_origin`)."""
    def matches(origin: str) -> bool:
        hit = origin in names or "origin" in names  # every origin derives from or:origin
        return hit != negated

    def keep(p: Any, inherited: str) -> bool:
        origin = _origin_of(tree.ctx, p) or inherited
        kept_child = False
        for c in list(siblings(lib.lyd_child(p))):
            if _is_key(c):
                continue
            if keep(c, origin):
                kept_child = True
            else:
                _free(tree, c)
        return kept_child or matches(origin)

    for top in list(siblings(tree._first())):
        if not keep(top, "intended"):
            _free(tree, top)


def strip_origin(tree: Tree) -> None:
    """Remove every origin tag."""
    for top in tree.nodes():
        top.remove_meta(ORIGIN, recursive=True)
