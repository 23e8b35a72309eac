"""Whether a node's ``when`` conditions hold in given data, as libyang evaluates them.

A user interface hides a field whose ``when`` is false for the entry being edited,
and that entry, or the field, may not exist yet.  libyang keeps, per compiled
node, the conditions written on it and those it inherited from an enclosing
``uses`` or ``augment``, each with its context node (``lysc_when.context``: the
node itself, or the closest ancestor data node; NULL for the root); the
conditions of enclosing choices and cases are on those nodes.  Validation
evaluates the node's list, then each enclosing choice's and case's (RFC 7950
section 7.21.5; libyang's ``lyd_validate_node_when``), with the module and prefixes
the condition was compiled with; so does :func:`when_holds`.

A node that does not exist is tentatively created in the (private) tree, with
its missing ancestors: a container or list entry as itself, any other node (and
a list or leaf-list named without keys or value: all its instances) as a dummy
without a value (an opaque node); everything created is removed again before
:func:`when_holds` returns.  A node that exists is its own context node,
as in validation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nfo.errors import InvalidValue
from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.data import Tree, _append_top
from nfo.schema.dnode import Node
from nfo.schema.hashes import make_room
from nfo.schema.paths import parse_path, render_path
from nfo.schema.snode import Kind, SNode

__all__ = ["When", "when_holds", "when_scope", "whens"]

_CHOICE_CASE = lib.LYS_CHOICE | lib.LYS_CASE
_BUILT = (Kind.CONTAINER, Kind.LIST)
"""Kinds created as themselves when missing; others get a dummy without a value."""


@dataclass(frozen=True, eq=False)
class When:
    """One condition a node depends on."""

    condition: str
    """The XPath as written (prefixes of the module that wrote it)."""
    own: bool
    """The context node is the node itself (else its closest ancestor data node)."""
    holder: SNode
    """The node the condition is compiled on: the node, or an enclosing choice or case."""
    _p: Any
    """``struct lysc_when *``"""


def whens(snode: SNode) -> tuple[When, ...]:
    """The conditions ``snode`` depends on, in the order validation evaluates them:
    its own list (with those of an enclosing ``uses`` or ``augment``), then each
    enclosing choice's and case's."""
    out: list[When] = []
    p = snode._p
    while True:
        arr = ly.fromx(ly.xlib.lysc_node_when(ly.xnode(p)), "struct lysc_when **")
        holder = SNode(p)
        for i in range(ly.count(arr)):
            w = arr[i]
            out.append(When(str(ffi.string(lib.lyxp_get_expr(w.cond)).decode()),
                            w.context == snode._p, holder, w))
        p = p.parent
        if p == ffi.NULL or not p.nodetype & _CHOICE_CASE:
            return tuple(out)


def _reach(w: When) -> list[SNode] | None:
    """The schema nodes a condition reads (None: libyang cannot tell)."""
    if w._p.prefixes == ffi.NULL:
        return None
    out = ly.xffi.new("void **")
    rc = ly.xlib.lys_find_expr_atoms(ly.xnode(w._p.context), ly.xnode(w.holder._p.module),
                                     ly.xnode(w._p.cond), ly.xnode(w._p.prefixes), 0, out)
    if rc != lib.LY_SUCCESS:
        lib.ly_err_clean(ly.module_ctx(w.holder._p.module), ffi.NULL)
        return None
    found = ffi.cast("struct ly_set *", ly.addr(ly.fromx(out[0], "void *")))
    try:
        return [SNode(found.snodes[i]) for i in range(found.count)]
    finally:
        lib.ly_set_free(found, ffi.NULL)


def _top(n: SNode) -> SNode:
    while (up := n.parent) is not None:
        n = up
    return n


def when_scope(nodes: Iterable[SNode]) -> list[str] | None:
    """Top-level data paths (``/mod:name``) whose subtrees hold everything
    :func:`when_holds` reads for ``nodes``: the nodes' own top-level ancestors and
    those of every node their conditions read; None when a condition's reach is
    unknown (everything, then)."""
    tops: dict[str, None] = {}
    for n in nodes:
        read = [n]
        for w in whens(n):
            got = _reach(w)
            if got is None:
                return None
            read += got
        for r in read:
            t = _top(r)
            if t.kind in (Kind.CONTAINER, Kind.LIST, Kind.LEAF, Kind.LEAFLIST, Kind.ANYDATA,
                          Kind.ANYXML):
                tops[f"/{t.module}:{t.name}"] = None
    return list(tops)


def _existing(tree: Tree, path: str) -> Node | None:
    try:
        return tree.node(path)
    except InvalidValue:
        return None


def _dummy(tree: Tree, parent: Node | None, snode: SNode) -> Node:
    """An opaque node named as ``snode``, without a value, under ``parent``."""
    out = ly.xffi.new("void **")
    module = snode.module.encode()
    rc = ly.xlib.lyd_new_opaq(ly.xnode(parent._p) if parent is not None else ly.xffi.NULL,
                              ly.xnode(tree.ctx), snode.name.encode(), ly.xffi.NULL, module,
                              module, out)
    if rc != lib.LY_SUCCESS:
        ly.raise_last(tree.ctx, f"creating a dummy {snode.name}")
    node = ly.fromx(out[0])
    if parent is None:
        _append_top(tree, node)
    return Node(node, tree.ctx)


def _materialize(tree: Tree, snode: SNode, path: str) -> tuple[Node, Node | None]:
    """The node at ``path`` in ``tree``, created if missing; and the topmost node
    created (None: nothing was)."""
    steps = parse_path(path)
    # a list or leaf-list without keys or value names all its instances: a dummy stands
    # for them (RFC 7950 section 7.21.5)
    every = snode.kind in (Kind.LIST, Kind.LEAFLIST) and not steps[-1].preds
    found = None if every else _existing(tree, path)
    if found is not None:
        return found, None
    anchor = None
    for k in range(len(steps) - 1, 0, -1):
        anchor = _existing(tree, render_path(steps[:k]))
        if anchor is not None:
            break
    if anchor is not None:
        make_room(tree.ctx, anchor._p)
    if snode.kind in _BUILT and not every:
        node = tree.new_path(path)
    else:
        parent = None
        if len(steps) > 1:
            parent_path = render_path(steps[:-1])
            parent = _existing(tree, parent_path) or tree.new_path(parent_path)
        node = _dummy(tree, parent, snode)
    top = node
    while (up := top.parent) is not None and up != anchor:
        top = up
    return node, top


def _holds(tree: Tree, w: When, context: Node | None) -> bool:
    expr = w.condition
    if context is None:
        # the root as context node: a node-set of the root, filtered by the condition
        expr = f"(/)[boolean({expr})]"
        ctx_node = ly.xnode(tree._first())
    else:
        ctx_node = ly.xnode(context._p)
    result = ly.xffi.new("unsigned char *")
    rc = ly.xlib.lyd_eval_xpath3(ctx_node, ly.xnode(w.holder._p.module), expr.encode(),
                                 lib.LY_VALUE_SCHEMA_RESOLVED, ly.xnode(w._p.prefixes),
                                 ly.xffi.NULL, result)
    if rc != lib.LY_SUCCESS:
        ly.raise_last(tree.ctx, f"evaluating the when condition {w.condition!r}")
    return bool(result[0])


def when_holds(tree: Tree, snode: SNode, path: str) -> bool | None:
    """Whether every condition of ``snode`` holds for its instance at the data path
    ``path`` in ``tree`` (which is changed while evaluating and restored before
    returning); None when the node has no condition."""
    conditions = whens(snode)
    if not conditions:
        return None
    node, created = _materialize(tree, snode, path)
    try:
        parent = node.parent
        return all(_holds(tree, w, node if w.own else parent) for w in conditions)
    finally:
        if created is not None:
            tree.remove(created)
