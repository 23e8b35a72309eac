"""The difference between two configuration trees, as typed changes.

A commit's own changes come from the edit that made it (:mod:`nfo.schema.edit`); this
answers the other question, what separates two whole trees (running and a candidate, a
datastore before and after a commit), for people reviewing a change.  The walk pairs
siblings by hashed lookup and lets libyang compare a matched pair's subtrees in C
(``lyd_compare_single``), so only subtrees that differ are visited in Python.  Implicit
defaults count as absent, and non-presence containers only hold their children.  A
created or deleted list entry or presence container is one change carrying its subtree
as RFC 7951 JSON.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.data import (
    Fmt,
    Tree,
    find_sibling,
    is_default,
    node_path,
    node_value,
    print_nodes,
    siblings,
)

__all__ = ["Difference", "diff_trees"]

_FULL_RECURSION = 0x01
_DEFAULTS = 0x02
_TERM = lib.LYS_LEAF | lib.LYS_LEAFLIST
_MULTI = lib.LYS_LIST | lib.LYS_LEAFLIST


@dataclass(frozen=True, slots=True)
class Difference:
    """One change between two trees."""

    operation: str
    """``create``, ``delete``, ``modify`` (a leaf's value) or ``move`` (an entry of an
    ordered-by-user list or leaf-list now at another position)."""
    path: str
    """The libyang data path of the node."""
    value: str | None = None
    """The new value of a created or modified leaf (or leaf-list entry)."""
    prev_value: str | None = None
    """The value a modified or deleted leaf had."""
    data: str | None = None
    """A created or deleted inner node's subtree, RFC 7951 JSON."""
    after: str | None = None
    """For ``move``: the path of the entry it now follows (None: it is first)."""


def diff_trees(before: Tree, after: Tree, *, effective: bool = False) -> list[Difference]:
    """What turns ``before`` into ``after``: deletes, creates, modifications and moves,
    parents before children, in ``after``'s order (deletes of a sibling list first).

    ``effective``: compare the values in force, for trees whose defaults were added
    (validated): an implicit default counts as configured, so a leaf set to its default
    equals the default left implicit, and only a differing value is a change."""
    out: list[Difference] = []
    _walk(before._first(), after._first(), out, effective)
    return out


def _np(node: Any) -> bool:
    """A non-presence container: it exists only to hold its children, so its children
    are compared, never the container itself."""
    return bool(node.schema.nodetype & lib.LYS_CONTAINER
                and not node.schema.flags & lib.LYS_PRESENCE)


def _present(first: Any, effective: bool) -> Iterator[Any]:
    return (n for n in siblings(first) if effective or _np(n) or not is_default(n))


def _match(first: Any, node: Any, slot: Any, effective: bool) -> Any:
    found = find_sibling(first, node, slot)
    if found != ffi.NULL and not effective and is_default(found) and not _np(found):
        return ffi.NULL
    return found


def _walk(bfirst: Any, afirst: Any, out: list[Difference], effective: bool) -> None:
    slot = ly.xffi.new("void **")
    compare = ly.xlib.lyd_compare_single
    xnode = ly.xnode
    full = _FULL_RECURSION if effective else _FULL_RECURSION | _DEFAULTS
    # each node of ``after`` with its counterpart (NULL: created); the counterpart is
    # looked for at the same place first (where most entries are), then by hash
    seq: list[tuple[Any, Any, bool]] = []  # (node, counterpart, whether identical)
    matched: set[Any] = set()
    b = bfirst
    for a in _present(afirst, effective):
        same = False
        if b != ffi.NULL and b.schema == a.schema and (effective or _np(b) or not is_default(b)):
            xa, xb = xnode(a), xnode(b)
            same = compare(xa, xb, full) == lib.LY_SUCCESS
            m = b if same or compare(xa, xb, 0) == lib.LY_SUCCESS else _match(bfirst, a, slot,
                                                                                 effective)
        else:
            m = _match(bfirst, a, slot, effective)
        seq.append((a, m, same))
        if m != ffi.NULL:
            matched.add(m)
            b = m.next
    for b in _present(bfirst, effective):
        if b not in matched:
            if _np(b):
                _walk(lib.lyd_child(b), ffi.NULL, out, effective)
            else:
                out.append(_whole("delete", b))
    ordered: dict[int, list[Any]] = {}
    for a, b, same in seq:
        if b == ffi.NULL:
            if _np(a):
                _walk(ffi.NULL, lib.lyd_child(a), out, effective)
            else:
                out.append(_whole("create", a))
            continue
        sch = a.schema
        if sch.nodetype & _MULTI and sch.flags & lib.LYS_ORDBY_USER:
            ordered.setdefault(ly.addr(sch), []).append((a, b))
        if same or compare(xnode(a), xnode(b), full) == lib.LY_SUCCESS:
            continue
        if sch.nodetype & lib.LYS_LEAF:
            value, prev = node_value(a), node_value(b)
            if value != prev:
                out.append(Difference("modify", node_path(a), value, prev))
        elif not sch.nodetype & _TERM:
            _walk(lib.lyd_child_no_keys(b), lib.lyd_child_no_keys(a), out, effective)
    for pairs in ordered.values():
        _moves(pairs, out)


def _moves(pairs: list[tuple[Any, Any]], out: list[Difference]) -> None:
    """The fewest moves among the entries both trees hold: those outside a longest run
    kept in their old relative order, each reported at its new place."""
    first = pairs[0][1]
    rank = {ly.addr(n): i for i, n in enumerate(
        n for n in siblings(lib.lyd_first_sibling(first)) if n.schema == first.schema)}
    ranks = [rank[ly.addr(b)] for _, b in pairs]
    for i in sorted(set(range(len(pairs))) - _increasing(ranks)):
        a = pairs[i][0]
        p = a.prev
        follows = p != a and p.next != ffi.NULL and p.schema == a.schema
        out.append(Difference("move", node_path(a),
                              after=node_path(p) if follows else None))


def _increasing(seq: list[int]) -> set[int]:
    """Indexes of one longest strictly increasing subsequence of ``seq``."""
    tails: list[int] = []  # index of the smallest tail of each length
    values: list[int] = []  # and its value
    back: list[int] = []
    for i, v in enumerate(seq):
        lo = bisect.bisect_left(values, v)
        back.append(tails[lo - 1] if lo else -1)
        if lo == len(tails):
            tails.append(i)
            values.append(v)
        else:
            tails[lo] = i
            values[lo] = v
    keep: set[int] = set()
    i = tails[-1] if tails else -1
    while i >= 0:
        keep.add(i)
        i = back[i]
    return keep


def _whole(operation: str, node: Any) -> Difference:
    path = node_path(node)
    if node.schema.nodetype & _TERM:
        v = node_value(node)
        return (Difference(operation, path, value=v) if operation == "create"
                else Difference(operation, path, prev_value=v))
    return Difference(operation, path, data=print_nodes(node, Fmt.JSON, siblings=False))
