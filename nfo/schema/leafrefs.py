"""What a leafref may point at in given data: its path evaluated by libyang.

A leafref's path is an XPath relative to the leaf itself (``current()`` is the
leaf).  A user interface asks for the values of a leaf that may not exist yet
(a new entry being filled in), so the path is evaluated from the leaf's parent
instead: the first ``..`` of a relative path and the first ``..`` after each
``current()`` (RFC 7950 section 9.9.2's grammar has at least one in both places)
are dropped.  The path's prefixes become module names as libyang resolved them
when it compiled the type (an unprefixed name is in the module that wrote it).
"""

from __future__ import annotations

import re
from typing import Any

from nfo.errors import InvalidValue
from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.data import Tree
from nfo.schema.dnode import Node
from nfo.schema.paths import Step, render_path
from nfo.schema.snode import SNode

__all__ = ["from_parent", "leafref_reach", "leafref_scope", "leafref_values", "needs_position"]

_FIRST_UP = re.compile(r"^\s*\.\.\s*/\s*")
_CURRENT_UP = re.compile(r"current\s*\(\s*\)\s*/\s*\.\.\s*/\s*")
_TOKEN = re.compile(r"'[^']*'|\"[^\"]*\"|(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*)(\s*\()?")
"""A string literal, or a node identifier (a function name when followed by "(")."""


def _leafref(leaf: SNode) -> Any:
    p = leaf._p
    if not p.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
        return ffi.NULL
    t = ffi.cast("struct lysc_node_leaf *", p).type
    if t.basetype != lib.LY_TYPE_LEAFREF:
        return ffi.NULL
    return ffi.cast("struct lysc_type_leafref *", t)


def from_parent(path: str, *, top: bool) -> str | None:
    """A leafref path rewritten to be evaluated from the leaf's parent (``top``: the
    leaf is a top-level node, its parent the root); None for a path this cannot
    rewrite (``deref()``)."""
    if "deref" in path:
        return None
    if not path.lstrip().startswith("/"):
        m = _FIRST_UP.match(path)
        if m is None:
            return None
        path = ("/" if top else "") + path[m.end():]
    if top:
        return _CURRENT_UP.sub("/", path)
    return _CURRENT_UP.sub("current()/", path)


def _module_names(lr: Any) -> dict[str | None, str]:
    """Prefix (None: none written) -> module name, as libyang compiled the path."""
    arr = ly.xffi.cast("struct lysc_prefix *", ly.addr(lr.prefixes))
    out: dict[str | None, str] = {}
    for i in range(ly.count(arr)):
        p = arr[i].prefix
        mod = ffi.cast("struct lys_module *", ly.addr(arr[i].mod))
        out[None if p == ly.xffi.NULL else str(ly.xffi.string(p).decode())] = \
            str(ffi.string(mod.name).decode())
    return out


def _with_module_names(expr: str, names: dict[str | None, str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(2) is None or m.group(3) is not None:
            return m.group(0)
        module = names.get(m.group(1))
        if module is None:
            raise InvalidValue(f"the leafref path {expr!r} has an unknown prefix")
        return f"{module}:{m.group(2)}"

    return _TOKEN.sub(one, expr)


_NAME = r"(?:([A-Za-z_][\w.-]*)\s*:\s*)?([A-Za-z_][\w.-]*)"
_MAIN_ABSOLUTE = re.compile(r"^\s*/\s*" + _NAME)
_MAIN_RELATIVE = re.compile(r"^\s*((?:\.\.\s*/\s*)+)" + _NAME)
_KEY_EXPR = re.compile(r"current\s*\(\s*\)\s*/\s*((?:\.\.\s*/\s*)+)" + _NAME)


def leafref_scope(leaf: SNode, parent: tuple[Step, ...]) -> list[str]:
    """Data paths (with list keys) whose subtrees hold everything the leafref path of
    ``leaf`` under ``parent`` (its steps; () at the top) can read: for each part of
    the path, the ancestor it climbs to, or the top-level node it descends into from
    the root.  Empty for a node that is not a leafref."""
    lr = _leafref(leaf)
    if lr == ffi.NULL:
        return []
    text = str(ffi.string(lib.lyxp_get_expr(lr.path)).decode())
    names = _module_names(lr)
    if "deref" in text:
        target = leaf.leafref_target
        return [] if target is None else ["/" + target.path[1:].split("/", 1)[0]]
    out: list[str] = []

    def climb(ups: str, prefix: str | None, name: str) -> None:
        depth = len(parent) + 1 - ups.count("..")
        if depth > 0:
            out.append(render_path(parent[:depth]))
        else:
            out.append(f"/{names.get(prefix, leaf.module)}:{name}")

    m = _MAIN_ABSOLUTE.match(text)
    if m is not None:
        out.append(f"/{names.get(m.group(1), leaf.module)}:{m.group(2)}")
    else:
        m = _MAIN_RELATIVE.match(text)
        if m is None:
            raise InvalidValue(f"unexpected leafref path {text!r}")
        climb(m.group(1), m.group(2), m.group(3))
    for k in _KEY_EXPR.finditer(text):
        climb(k.group(1), k.group(2), k.group(3))
    keep: list[str] = []
    for p in sorted(set(out), key=len):
        if not any(p.startswith(k) and p[len(k):len(k) + 1] in ("", "/", "[") for k in keep):
            keep.append(p)
    return keep


def leafref_reach(leaf: SNode) -> list[SNode]:
    """The schema nodes a leafref's path reads: its target and every node its
    predicates compare (empty for a node that is not a leafref)."""
    lr = _leafref(leaf)
    if lr == ffi.NULL:
        return []
    p = leaf._p
    out = ly.xffi.new("void **")
    rc = ly.xlib.lys_find_expr_atoms(ly.xnode(p), ly.xnode(p.module), ly.xnode(lr.path),
                                     ly.xnode(lr.prefixes), 0, out)
    if rc != lib.LY_SUCCESS:
        lib.ly_err_clean(ly.module_ctx(p.module), ffi.NULL)
        return []
    found = ffi.cast("struct ly_set *", ly.addr(ly.fromx(out[0], "void *")))
    try:
        return [SNode(found.snodes[i]) for i in range(found.count)]
    finally:
        lib.ly_set_free(found, ffi.NULL)


def leafref_values(tree: Tree, parent: Node | None, leaf: SNode) -> list[str]:
    """The values in ``tree`` the leafref ``leaf`` may take, for a leaf under ``parent``
    (a node of ``tree``; None: a top-level leaf), which need not exist; in document
    order, repeated values included.  ``tree`` is only read (a live tree will do)."""
    lr = _leafref(leaf)
    if lr == ffi.NULL:
        raise InvalidValue(f"{leaf.name!r} is not a leafref")
    root = tree._first()
    if root == ffi.NULL:
        return []
    text = str(ffi.string(lib.lyxp_get_expr(lr.path)).decode())
    expr = from_parent(text, top=parent is None)
    if expr is None:
        target = leaf.leafref_target
        return [] if target is None else [v for n in tree.match(target.path)
                                          if (v := n.value) is not None]
    expr = _with_module_names(expr, _module_names(lr))
    out = ly.xffi.new("void **")
    ctx_node = ly.xnode(parent._p) if parent is not None else ly.xffi.NULL
    rc = ly.xlib.lyd_find_xpath4(ctx_node, ly.xnode(root), expr.encode(), lib.LY_VALUE_JSON,
                                 ly.xffi.NULL, ly.xffi.NULL, out)
    if rc != lib.LY_SUCCESS:
        ly.raise_last(tree.ctx, f"evaluating the leafref path {text!r}")
    found = ffi.cast("struct ly_set *", ly.addr(ly.fromx(out[0], "void *")))
    try:
        nodes, get, text_of = found.dnodes, lib.lyd_get_value, ffi.string
        # a leafref's target is a leaf or leaf-list (libyang checked): each has a value
        return [text_of(get(nodes[i])).decode() for i in range(found.count)]
    finally:
        lib.ly_set_free(found, ffi.NULL)


def needs_position(leaf: SNode) -> bool:
    """Whether a leafref's values depend on where the leaf is (a relative path, or a
    predicate reading ``current()``); False for other nodes."""
    lr = _leafref(leaf)
    if lr == ffi.NULL:
        return False
    text = str(ffi.string(lib.lyxp_get_expr(lr.path)).decode())
    return not text.lstrip().startswith("/") or "current" in text
