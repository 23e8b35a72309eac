"""List pagination (draft-ietf-netconf-list-pagination) on a read's private copy.

A read that targets a list or leaf-list may ask for a page of its entries: the
entries matching ``where`` (XPath 1.0, each entry the context node), sorted by
the typed value of one descendant leaf (``sort-by``), walked forwards or
backwards, ``offset`` skipped, at most ``limit`` kept; the first entry returned
carries ``ietf-list-pagination:remaining`` when the limit left some out.
``sublist-limit`` cuts every descendant list and leaf-list the same way.

The work is proportional to the page where it can be: one XPath evaluation
filters the whole list, one more finds every entry's sort value (read once, no
printing), and only the page's entries are copied into the tree that is
printed.  Access control has already pruned the copy: what a user may not
read is never counted, sorted or reported in ``remaining``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from nfo.errors import InvalidValue, LocaleUnavailable, NotPageable, OffsetOutOfRange
from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.data import Tree, node_path, siblings
from nfo.schema.dnode import Node
from nfo.schema.snode import Kind, SNode

__all__ = [
    "LOCALE",
    "LOCALES",
    "REMAINING",
    "Direction",
    "Paging",
    "SortKey",
    "limit_sublists",
    "paginate",
    "sort_key",
    "target_of",
]

REMAINING = "ietf-list-pagination:remaining"
LOCALE = "ietf-list-pagination:locale"
LOCALES = ("C", "C.UTF-8", "POSIX")
"""The one collation nfo sorts by: Unicode code points."""
_UINT32_MAX = 2**32 - 1
_LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"")
_NAME = re.compile(r"(?<![\w.$:-])(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)(?![\w.-]|\s*\(|\s*::)")
"""The local names of an XPath's name tests (not functions, node types, axes, variables)."""
_OPERATORS = {"and", "or", "div", "mod"}
_INTS = {lib.LY_TYPE_INT8, lib.LY_TYPE_INT16, lib.LY_TYPE_INT32, lib.LY_TYPE_INT64,
         lib.LY_TYPE_UINT8, lib.LY_TYPE_UINT16, lib.LY_TYPE_UINT32, lib.LY_TYPE_UINT64}


class Direction(StrEnum):
    FORWARDS = "forwards"
    BACKWARDS = "backwards"


@dataclass(frozen=True)
class Paging:
    """The pagination parameters of one read (all optional)."""

    where: str | None = None
    """XPath 1.0 (module names as prefixes), evaluated with each entry as context."""
    sort_by: str | None = None
    """A descendant schema node identifier of the entries (``.`` a leaf-list's value)."""
    locale: str | None = None
    direction: Direction = Direction.FORWARDS
    offset: int = 0
    limit: int | None = None
    sublist_limit: int | None = None

    @property
    def pages(self) -> bool:
        """Whether the read targets the entries of one list or leaf-list."""
        return (self.where is not None or self.sort_by is not None or self.locale is not None
                or self.direction is Direction.BACKWARDS or self.offset != 0
                or self.limit is not None)


@dataclass(frozen=True)
class SortKey:
    """How to find and compare the ``sort-by`` value of an entry."""

    steps: tuple[Any, ...]
    """Schema nodes (``struct lysc_node *``) from the entry down to the leaf; empty:
    the entry itself (a leaf-list)."""
    base: int
    """libyang's base type of the value (after following leafrefs)."""

    def value(self, text: str) -> Any:
        if self.base in _INTS:
            return int(text)
        if self.base == lib.LY_TYPE_DEC64:
            return Decimal(text)
        return text

    def keys(self, tree: Tree, base: str, entries: list[Node]) -> list[tuple[int, Any]]:
        """Each entry's (0, value), or (1, None) when it has no value (missing values sort
        after all others): the values found by one XPath below the list (``base``)."""
        if not self.steps:
            return [(0, self.value(str(n.value))) for n in entries]
        rel = "/".join(f"{_str(s.module.name)}:{_str(s.name)}" for s in self.steps)
        up = len(self.steps)
        found: dict[Any, Any] = {}  # cffi pointers hash and compare by address
        for leaf in tree._xpath(f"{base}/{rel}"):
            v = lib.lyd_get_value(leaf)
            e = leaf
            for _ in range(up):
                e = e.parent
            if v != ffi.NULL:
                found[e] = self.value(ffi.string(v).decode())
        missing = (1, None)
        return [missing if (v := found.get(n._p, missing)) is missing else (0, v)
                for n in entries]


def _str(p: Any) -> str:
    return str(ffi.string(p).decode())


def target_of(ctx: Any, select: str) -> SNode | None:
    """The one schema node an XPath selects instances of (None if several or none)."""
    out = ffi.new("struct ly_set **")
    rc = lib.lys_find_xpath(ctx, ffi.NULL, select.encode(), 0, out)
    if rc != lib.LY_SUCCESS:
        lib.ly_err_clean(ctx, ffi.NULL)
        return None
    try:
        found = {ly.addr(out[0].snodes[i]): out[0].snodes[i] for i in range(out[0].count)}
    finally:
        lib.ly_set_free(out[0], ffi.NULL)
    return SNode(next(iter(found.values()))) if len(found) == 1 else None


def _base_type(leaf: Any) -> int:
    t = ffi.cast("struct lysc_node_leaf *", leaf).type
    while t.basetype == lib.LY_TYPE_LEAFREF:
        t = ffi.cast("struct lysc_type_leafref *", t).realtype
    return int(t.basetype)


def sort_key(target: SNode, sort_by: str) -> SortKey:
    """The sort key of ``target``'s entries named by ``sort_by``: ``.`` for a leaf-list,
    else ``[module:]name[/[module:]name]...`` down to a leaf that is not inside a
    descendant list (one value per entry)."""
    bad = {"bad-element": "sort-by"}
    if sort_by == ".":
        if target.kind is not Kind.LEAFLIST:
            raise InvalidValue("sort-by '.' names the value of a leaf-list entry",
                               info=bad)
        return SortKey((), _base_type(target._p))
    if target.kind is not Kind.LIST:
        raise InvalidValue("the entries of a leaf-list are sorted by '.'", info=bad)
    node = target
    steps = []
    for step in sort_by.split("/"):
        module, colon, name = step.rpartition(":")
        child = node.child(name, module if colon else None) if name else None
        if child is None or not child.is_data:
            raise InvalidValue(f"sort-by {sort_by!r}: no node {step!r} in "
                               f"{node.module}:{node.name}", info=bad)
        if child.kind in (Kind.LIST, Kind.LEAFLIST):
            raise InvalidValue(f"sort-by {sort_by!r}: {step!r} has several values per entry",
                               info=bad)
        steps.append(child._p)
        node = child
    if node.kind is not Kind.LEAF:
        raise InvalidValue(f"sort-by {sort_by!r} does not name a leaf", info=bad)
    return SortKey(tuple(steps), _base_type(node._p))


def _check_locale(p: Paging) -> None:
    if p.locale is None:
        return
    if p.sort_by is None:
        raise InvalidValue("locale is given only with sort-by", info={"bad-element": "locale"})
    if p.locale not in LOCALES:
        raise LocaleUnavailable(f"locale {p.locale!r} is not available: nfo sorts by "
                                f"Unicode code points ({', '.join(LOCALES)})",
                                info={"bad-element": "locale"})


def _list_xpath(entry: Node) -> str:
    """An XPath selecting ``entry`` and its siblings of the same list."""
    parent = entry.parent
    step = f"{entry.module}:{entry.name}"
    return f"{node_path(parent._p)}/{step}" if parent is not None else f"/{step}"


def _check_where(ctx: Any, target: SNode, where: str) -> None:
    """Refuse a ``where`` that is not XPath or names nodes the schema does not have
    (libyang resolves the expression against the schema; a name it did not resolve
    is unknown)."""
    slot = ly.xffi.new("void **")
    expr = f"{target.path}[boolean({where})]"
    rc = ly.xlib.lys_find_xpath_atoms(ly.xnode(ctx), ly.xffi.NULL, expr.encode(), 0, slot)
    if rc != lib.LY_SUCCESS:
        errs = ly.errors_of(ctx)
        lib.ly_err_clean(ctx, ffi.NULL)
        msg = errs[0][1] if errs else "cannot be evaluated"
        raise InvalidValue(f"where {where!r}: {msg}", info={"bad-element": "where"})
    atoms = ly.fromx(slot[0], "struct ly_set *")
    try:
        known = {_str(atoms.snodes[i].name) for i in range(atoms.count)}
    finally:
        lib.ly_set_free(atoms, ffi.NULL)
    for name in _NAME.findall(_LITERAL.sub("''", where)):
        if name not in known and name not in _OPERATORS:
            raise InvalidValue(f"where {where!r}: no node {name!r} in the schema",
                               info={"bad-element": "where"})


def _where(tree: Tree, entries: list[Node], where: str) -> list[Node]:
    """The entries for which ``where`` is true: one XPath over the list, intersected
    with the entries (an expression cannot select anything else)."""
    try:
        matched = set(tree._xpath(f"{_list_xpath(entries[0])}[boolean({where})]"))
    except InvalidValue as e:
        raise InvalidValue(f"where: {e.message}", info={"bad-element": "where"}) from None
    return [n for n in entries if n._p in matched]


def paginate(tree: Tree, target: SNode, entries: Sequence[Node],
             p: Paging) -> tuple[Tree, list[Node]]:
    """A new tree holding the page of ``entries`` (the instances of ``target`` in
    ``tree``, under one parent) that ``p`` asks for, with their ancestors, in page
    order; and the page's entries in it.  ``tree`` is left as it was."""
    if target.kind not in (Kind.LIST, Kind.LEAFLIST):
        raise NotPageable(f"{target.module}:{target.name} is a {target.kind.value}: "
                          "pagination applies to a list or leaf-list")
    key = sort_key(target, p.sort_by) if p.sort_by not in (None, "none") else None
    _check_locale(p)
    if p.where is not None:
        _check_where(tree.ctx, target, p.where)
    work = list(entries)
    if len({n._p.parent for n in work}) > 1:
        raise InvalidValue("pagination needs the entries of one list: the selection spans "
                           "several parents", info={"bad-element": "filter"})
    if work and p.where is not None:
        work = _where(tree, work, p.where)
    if key is not None and work:
        keys = key.keys(tree, _list_xpath(work[0]), work)
        order = sorted(range(len(work)), key=keys.__getitem__)
        work = [work[i] for i in order]
    if p.direction is Direction.BACKWARDS:
        work.reverse()
    if p.offset > len(work):
        raise OffsetOutOfRange(f"offset {p.offset} is past the {len(work)} entries "
                               "of the working result set", info={"bad-element": "offset"})
    end = len(work) if p.limit is None else p.offset + p.limit
    page = work[p.offset:end]
    remaining = len(work) - p.offset - len(page)
    out, copies = _copy_page(tree, page)
    if copies:
        if p.limit is not None and remaining > 0:
            copies[0].set_meta(REMAINING, str(min(remaining, _UINT32_MAX)))
        if key is not None:
            copies[0].set_meta(LOCALE, p.locale or "C.UTF-8")
    return out, copies


def _copy_page(tree: Tree, page: list[Node]) -> tuple[Tree, list[Node]]:
    """Copies of ``page`` (siblings, in this order) with their ancestors (list keys
    only) in a new tree."""
    if not page:
        return Tree(tree.ctx), []
    out, under = tree._holder_of(page[0]._p.parent)
    slot = ffi.new("struct lyd_node **")
    copies: list[Node] = []
    opts = lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_FLAGS
    xslot = ly.xffi.new("void **")
    try:
        for n in page:
            ly.check(lib.lyd_dup_single(n._p, under, opts, slot), tree.ctx, "copying data")
            dup = slot[0]
            if under == ffi.NULL:
                if out._root == ffi.NULL:
                    out._root = dup
                else:
                    ly.check(ly.xlib.lyd_insert_sibling(ly.xnode(out._root), ly.xnode(dup),
                                                        xslot), tree.ctx, "copying data")
                    out._root = ly.fromx(xslot[0])
            copies.append(Node(dup, tree.ctx))
    except BaseException:
        out.free()
        raise
    return out, copies


def limit_sublists(tree: Tree, roots: Sequence[Node] | None, limit: int) -> None:
    """Keep at most ``limit`` entries of every list and leaf-list below ``roots`` (the
    whole tree, top-level lists included, for None); the first entry kept carries
    ``remaining``."""
    if roots is None:
        _limit_siblings(tree, tree._first(), limit)
        return
    for r in roots:
        if not r.schema.is_term:
            _limit_siblings(tree, lib.lyd_child(r._p), limit)


def _limit_siblings(tree: Tree, first: Any, limit: int) -> None:
    run_schema = ffi.NULL
    run: list[Any] = []
    inner: list[Any] = []

    def close() -> None:
        if len(run) > limit:
            for extra in run[limit:]:
                if extra.parent == ffi.NULL and extra == tree._first():
                    tree._root = extra.next
                lib.lyd_free_tree(extra)
            Node(run[0], tree.ctx).set_meta(REMAINING, str(min(len(run) - limit,
                                                               _UINT32_MAX)))
        inner.extend(n for n in run[:limit] if not n.schema.nodetype & lib.LYS_LEAFLIST)

    for n in list(siblings(first)):
        s = n.schema
        if s == ffi.NULL:
            continue
        if s.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST):
            if s != run_schema:
                close()
                run, run_schema = [], s
            run.append(n)
            continue
        close()
        run, run_schema = [], ffi.NULL
        if not s.nodetype & (lib.LYS_LEAF | lib.LYS_ANYDATA | lib.LYS_ANYXML):
            inner.append(n)
    close()
    for n in inner:
        _limit_siblings(tree, lib.lyd_child(n), limit)
