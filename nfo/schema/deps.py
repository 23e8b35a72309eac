"""Which data a constraint can see: the basis of proportional validation.

libyang validates a whole tree at a time, so a datastore that re-validates
everything on every edit pays O(size) per edit (sysrepo does).  Most large
lists are independent: an entry's must/when/leafref constraints look only
inside the entry and at data outside the list, and nothing outside the list
looks into it.  For such a list, an edit that touches a few entries needs
only those entries (plus the rest of the data) validated; the untouched
entries were valid before and nothing they depend on changed.

This module finds those lists by asking libyang for the schema nodes every
constraint's XPath can reach (``lys_find_expr_atoms``).  Anything it cannot
prove independent is validated in full.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib

__all__ = ["Independence", "ListInfo", "analyse", "independence", "when_read_tops"]

_UNBOUNDED = 0xFFFFFFFF
_DATA = (lib.LYS_CONTAINER | lib.LYS_LIST | lib.LYS_LEAF | lib.LYS_LEAFLIST | lib.LYS_CHOICE
         | lib.LYS_CASE | lib.LYS_ANYDATA | lib.LYS_ANYXML)


@dataclass
class ListInfo:
    schema: Any
    ancestors: frozenset[int]
    """Schema addresses of the list's data ancestors (containers)."""
    refs_out: frozenset[int]
    """Schema nodes outside the list that constraints inside it read."""


@dataclass
class Independence:
    lists: dict[int, ListInfo] = field(default_factory=dict)
    """Independent lists by schema address."""
    ancestor_of: dict[int, set[int]] = field(default_factory=dict)
    """Container schema address -> independent lists below it."""
    top_schemas: list[Any] = field(default_factory=list)
    """Every top-level config data schema node of the implemented modules."""
    disabled: str | None = None
    """Why no list may be treated as independent (e.g. an instance-identifier)."""

    def children(self, parent: Any, module: Any = ffi.NULL) -> list[Any]:
        """Config data schema children of ``parent`` (NULL: top-level nodes of ``module``)."""
        out = []
        s = lib.lys_getnext(ffi.NULL, parent, module, 0)
        while s != ffi.NULL:
            if s.flags & lib.LYS_CONFIG_W:
                out.append(s)
            s = lib.lys_getnext(s, parent, module, 0)
        return out


def _atoms(ctx_node: Any, cur_mod: Any, expr: Any, prefixes: Any) -> set[int]:
    return {ly.addr(n) for n in _atom_nodes(ctx_node, cur_mod, expr, prefixes)}


def _atom_nodes(ctx_node: Any, cur_mod: Any, expr: Any, prefixes: Any) -> list[Any]:
    """The schema nodes an XPath expression can reach (libyang's atoms)."""
    out = ly.xffi.new("void **")
    rc = ly.xlib.lys_find_expr_atoms(ly.xnode(ctx_node), ly.xnode(cur_mod), ly.xnode(expr),
                                     ly.xnode(prefixes), 0, out)
    if rc != lib.LY_SUCCESS:
        raise ValueError(f"cannot atomize {ffi.string(lib.lyxp_get_expr(expr)).decode()!r}")
    s = ffi.cast("struct ly_set *", ly.addr(ly.fromx(out[0], "void *")))
    try:
        return [s.snodes[i] for i in range(s.count)]
    finally:
        lib.ly_set_free(s, ffi.NULL)


def when_read_tops(ctx: Any, modules: list[Any]) -> frozenset[str] | None:
    """The top-level data nodes (``/module:name``) that some ``when`` of the config
    data of ``modules`` reads: a change under any other top cannot turn a ``when``
    false.  None when that cannot be told (an expression libyang cannot atomize, or
    one that reads through a top-level choice)."""
    tops: set[str] = set()
    unknown = False

    def visit(node: Any) -> None:
        nonlocal unknown
        whens = ly.fromx(ly.xlib.lysc_node_when(ly.xnode(node)), "struct lysc_when **")
        for i in range(ly.count(whens)):
            w = whens[i]
            try:
                # a NULL context is the root (a top-level uses' or augment's when)
                atoms = _atom_nodes(w.context, node.module, w.cond, w.prefixes)
            except ValueError:
                lib.ly_err_clean(ctx, ffi.NULL)
                unknown = True
                return
            for a in atoms:
                top = a
                while top.parent != ffi.NULL:
                    top = top.parent
                if not top.nodetype & (lib.LYS_CONTAINER | lib.LYS_LIST | lib.LYS_LEAF
                                       | lib.LYS_LEAFLIST | lib.LYS_ANYDATA | lib.LYS_ANYXML):
                    unknown = True
                    return
                tops.add(f"/{ffi.string(top.module.name).decode()}:"
                         f"{ffi.string(top.name).decode()}")

    for top in _tops(modules):
        _walk_single(top, visit)
    return None if unknown else frozenset(tops)


def _tops(modules: list[Any]) -> Iterator[Any]:
    """The top-level schema nodes of ``modules`` (through choices)."""
    for mod in modules:
        top = lib.lys_getnext(ffi.NULL, ffi.NULL, mod.compiled, 0)
        while top != ffi.NULL:
            yield top
            top = lib.lys_getnext(top, ffi.NULL, mod.compiled, 0)


def _type_refs(node: Any, t: Any, acc: list[tuple[Any, set[int]]]) -> bool:
    """Collect leafref atoms of a type; False if the type can point anywhere."""
    if t.basetype == lib.LY_TYPE_LEAFREF:
        lr = ffi.cast("struct lysc_type_leafref *", t)
        cur = lr.cur_mod if lr.cur_mod != ffi.NULL else node.module
        acc.append((node, _atoms(node, cur, lr.path, lr.prefixes)))
    elif t.basetype == lib.LY_TYPE_INST:
        return False
    elif t.basetype == lib.LY_TYPE_UNION:
        u = ffi.cast("struct lysc_type_union *", t)
        for i in range(ly.count(u.types)):
            if not _type_refs(node, u.types[i], acc):
                return False
    return True


def _constraints(node: Any, acc: list[tuple[Any, set[int]]]) -> bool:
    musts = ly.fromx(ly.xlib.lysc_node_musts(ly.xnode(node)), "struct lysc_must *")
    for i in range(ly.count(musts)):
        m = musts[i]
        acc.append((node, _atoms(node, node.module, m.cond, m.prefixes)))
    whens = ly.fromx(ly.xlib.lysc_node_when(ly.xnode(node)), "struct lysc_when **")
    for i in range(ly.count(whens)):
        w = whens[i]
        # a NULL context is the root (a top-level uses' or augment's when)
        acc.append((node, _atoms(w.context, node.module, w.cond, w.prefixes)))
    if node.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
        leaf = ffi.cast("struct lysc_node_leaf *", node)
        return _type_refs(node, leaf.type, acc)
    return True


def _walk(node: Any, visit: Any) -> None:
    while node != ffi.NULL:
        if node.nodetype & _DATA and node.flags & lib.LYS_CONFIG_W:
            visit(node)
            child = ly.fromx(ly.xlib.lysc_node_child(ly.xnode(node)), "struct lysc_node *")
            _walk(child, visit)
        node = node.next


def independence(schema: Any) -> Independence:
    """The independent lists of a :class:`~nfo.schema.Schema`'s implemented modules."""
    return analyse(schema.cdata, [m.cdata for m in schema.ctx if m.implemented()])


def analyse(ctx: Any, modules: list[Any]) -> Independence:
    """Find the independent lists of the implemented ``modules`` (``struct lys_module *``)."""
    result = Independence()
    constraints: list[tuple[Any, set[int]]] = []
    lists: list[Any] = []
    ok = True

    def visit(node: Any) -> None:
        nonlocal ok
        try:
            if not _constraints(node, constraints):
                ok = False
        except ValueError:
            lib.ly_err_clean(ctx, ffi.NULL)
            ok = False
        if node.nodetype & lib.LYS_LIST:
            lists.append(node)

    for top in _tops(modules):
        if top.flags & lib.LYS_CONFIG_W:
            result.top_schemas.append(top)
        _walk_single(top, visit)
    if not ok:
        result.disabled = "a constraint may reference any data (instance-identifier or an " \
            "expression libyang cannot atomize)"
        return result
    for lst in lists:
        info = _judge(lst, constraints)
        if info is not None:
            key = ly.addr(lst)
            result.lists[key] = info
            for a in info.ancestors:
                result.ancestor_of.setdefault(a, set()).add(key)
    return result


def _walk_single(node: Any, visit: Any) -> None:
    if node.nodetype & _DATA and node.flags & lib.LYS_CONFIG_W:
        visit(node)
        child = ly.fromx(ly.xlib.lysc_node_child(ly.xnode(node)), "struct lysc_node *")
        _walk(child, visit)


def _judge(lst: Any, constraints: list[tuple[Any, set[int]]]) -> ListInfo | None:
    if not lst.flags & lib.LYS_CONFIG_W or lst.flags & lib.LYS_ORDBY_USER:
        return None
    ln = ffi.cast("struct lysc_node_list *", lst)
    if ly.count(ln.uniques) or ln.min != 0 or ln.max != _UNBOUNDED:
        return None
    ancestors: set[int] = set()
    p = lst.parent
    while p != ffi.NULL:
        if p.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST):
            return None
        if p.nodetype & lib.LYS_CONTAINER:
            if p.flags & lib.LYS_PRESENCE or not p.flags & lib.LYS_CONFIG_W:
                return None
            ancestors.add(ly.addr(p))
        elif not p.nodetype & (lib.LYS_CHOICE | lib.LYS_CASE):
            return None
        p = p.parent
    inside: set[int] = set()

    def mark(n: Any) -> None:
        inside.add(ly.addr(n))
    _walk_single(lst, mark)
    refs_out: set[int] = set()
    for owner, atoms in constraints:
        if ly.addr(owner) in inside:
            if atoms & ancestors:
                return None
            refs_out |= atoms - inside
        elif atoms & inside:
            return None
    return ListInfo(lst, frozenset(ancestors), frozenset(refs_out))
