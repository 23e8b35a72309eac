"""Keeps libyang's per-node child hash tables from wearing out.

libyang before 2.1.128 (Debian 12 ships 2.1.30) keeps an inner node's children in
an open-addressing hash table.  A removal leaves a tombstone, an insertion may take
an empty record, and only a removal ever rehashes; once a table has no empty record
left, inserting a value whose collision chain wraps around the table dereferences
NULL (``lyht_find_collision``; a segmentation fault in ``lyd_insert_child``).  Trees
that live long and are edited in place wear tables out this way: running under
partial commits (:mod:`nfo.schema.partial`), the operational owners' trees, a working
copy that an edit removes from and then adds to.

A table without tombstones is always safe (it grows at 75 % use), and one insertion
adds at most two records (the node, and a list's first-instance record).  So before
a node takes children, :func:`make_room` drops its table when it holds tombstones and
no more empty records than the insertions could take; libyang builds a fresh one,
without tombstones, at the next insertion, which :func:`make_room` makes at once.

The table's counters are read from libyang's private layout, only for the library
versions that have this table (found from the loaded file's name); on any other
version :func:`room` is None and nothing is touched.
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import Any

import cffi

from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib

__all__ = ["PER_INSERT", "Wear", "children_bound", "make_room", "room", "tombstones"]

PER_INSERT = 2
"""Hash records one ``lyd_insert_child`` of a single node adds at most."""

_FIXED_SO_MINOR = 41  # libyang 2.1.128 (so 2.41) replaced the table

# libyang 2.1.30's private layout: struct lyd_node_inner (node, child, children_ht) and
# struct hash_table; records of node pointers are 16 bytes ({hash, hits} packed + pointer)
_layout = cffi.FFI()
_layout.cdef("""
    struct nfo_ht { uint32_t used; uint32_t size; uint32_t invalid; uint32_t _pad;
                    void *val_equal; void *cb_data; uint16_t resize; uint16_t rec_size;
                    uint32_t _pad2; void *recs; };
    struct nfo_inner { uint8_t node[56]; void *child; struct nfo_ht *children_ht; };
""")
_REC_SIZE = 16
_INNER = lib.LYS_CONTAINER | lib.LYS_LIST | lib.LYS_RPC | lib.LYS_ACTION | lib.LYS_NOTIF


def _loaded_so_version(maps: str = "/proc/self/maps") -> tuple[int, ...] | None:
    try:
        with open(maps) as f:
            paths = {line.split()[-1] for line in f if "libyang.so" in line}
    except OSError:
        return None
    for p in paths:
        m = re.search(r"libyang\.so\.(\d+)\.(\d+)\.(\d+)$", os.path.realpath(p))
        if m:
            return tuple(int(x) for x in m.groups())
    return None


@cache
def _open_addressing() -> bool:
    """Whether the loaded libyang has the table this module guards."""
    v = _loaded_so_version()
    return v is not None and v[0] == 2 and v[1] < _FIXED_SO_MINOR


# the layout above is that of 64-bit builds
_GUARDED = _open_addressing() and ffi.sizeof("struct lyd_node") == 56


def _table(node: Any) -> Any:
    """``node``'s child table, NULL if it has none; None where there is nothing to read
    (another libyang, not an inner node, a table of an unknown shape)."""
    if (not _GUARDED or node == ffi.NULL or node.schema == ffi.NULL
            or not node.schema.nodetype & _INNER):
        return None
    ht = _layout.cast("struct nfo_inner *", node).children_ht
    if ht != _layout.NULL and (ht.rec_size != _REC_SIZE or ht.size < 8
                               or ht.size & (ht.size - 1) or ht.used + ht.invalid > ht.size):
        return None
    return ht


def room(node: Any) -> int | None:
    """Empty records left in ``node``'s child table (None: see :func:`_table`)."""
    ht = _table(node)
    return None if ht is None or ht == _layout.NULL else int(ht.size - ht.used - ht.invalid)


def tombstones(node: Any) -> int | None:
    """Removed records still held in ``node``'s child table."""
    ht = _table(node)
    return None if ht is None or ht == _layout.NULL else int(ht.invalid)


def children_bound(node: Any) -> int:
    """At least the number of the inner node ``node``'s children, for :func:`make_room`
    (its table's record count, without walking them; 0 where nothing is guarded)."""
    if not _GUARDED:
        return 0
    ht = _table(node)
    if ht is not None and ht != _layout.NULL:
        return int(ht.used)
    n = 0
    c = lib.lyd_child(node)
    while c != ffi.NULL:
        n += 1
        c = c.next
    return n


def make_room(ctx: Any, node: Any, records: int = PER_INSERT) -> None:
    """Make sure the child table of the inner node ``node`` can take ``records`` more
    hash records (see the module's docstring); rebuilds the table when it cannot."""
    if not _GUARDED:
        return
    ht = _layout.cast("struct nfo_inner *", node).children_ht
    if ht == _layout.NULL or ht.invalid == 0 or ht.size - ht.used - ht.invalid > records:
        return  # a table without tombstones takes any number of insertions
    if _table(node) is None:
        return
    _layout.cast("struct nfo_inner *", node).children_ht = _layout.NULL
    ly.xlib.free(ht.recs)
    ly.xlib.free(ht)
    last = lib.lyd_child(node)
    if last == ffi.NULL:
        return
    last = last.prev
    if last.schema == ffi.NULL or last.schema.flags & lib.LYS_KEY:
        return  # libyang rebuilds it at the next insertion; lookups scan until then
    ly.xlib.lyd_unlink_tree(ly.xnode(last))
    ly.check(lib.lyd_insert_child(node, last), ctx, "rebuilding an index")


@cache
def _implicit_children(schema_addr: int) -> int:
    """How many nodes validation may add under one instance of a schema node: its
    leaves and containers (defaults, non-presence containers) and the defaults of its
    leaf-lists."""
    parent = ffi.cast("struct lysc_node *", schema_addr)
    n = 0
    c = lib.lys_getnext(ffi.NULL, parent, ffi.NULL, 0)
    while c != ffi.NULL:
        if c.nodetype & lib.LYS_LEAFLIST:
            dflts = ffi.cast("struct lysc_node_leaflist *", c).dflts
            n += int(ffi.cast("uint64_t *", dflts)[-1]) if dflts != ffi.NULL else 0
        elif c.nodetype & (lib.LYS_LEAF | lib.LYS_CONTAINER):
            n += 1
        c = lib.lys_getnext(c, parent, ffi.NULL, 0)
    return n


class Wear:
    """The nodes one edit removed children from: before libyang validates the edited
    tree (which may add default nodes there), :meth:`settle` leaves each of them room
    for everything validation could add."""

    def __init__(self) -> None:
        self._parents: dict[int, Any] = {}

    def removing(self, node: Any) -> None:
        """Call before ``node`` is freed: its parent is worn, its subtree is gone."""
        if self._parents:
            for key, p in list(self._parents.items()):
                while p != ffi.NULL:
                    if p == node:
                        del self._parents[key]
                        break
                    p = p.parent
        parent = node.parent
        if parent != ffi.NULL and _GUARDED:
            self._parents[ly.addr(parent)] = ffi.cast("struct lyd_node *", parent)

    def settle(self, ctx: Any) -> None:
        for p in self._parents.values():
            make_room(ctx, p, PER_INSERT * _implicit_children(ly.addr(p.schema)))
        self._parents.clear()
