"""Data nodes as typed objects, borrowed from the tree that owns them.

A :class:`Node` is a handle on one libyang data node (``struct lyd_node``).  It
does not own the node: the :class:`~nfo.schema.data.Tree` it came from does, and
the handle is valid while that tree lives and the node is in it.  Structural
changes (removing, merging) go through the tree, so that the tree always knows
its first node.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.snode import Kind, SNode

__all__ = ["Node"]


def _str(p: Any) -> str:
    return str(ffi.string(p).decode())


class Node:
    """A handle on one data node."""

    __slots__ = ("_ctx", "_p")

    def __init__(self, p: Any, ctx: Any) -> None:
        self._p = p
        self._ctx = ctx

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and self._p == other._p

    def __hash__(self) -> int:
        return hash(ly.addr(self._p))

    def __repr__(self) -> str:
        # never dereferenced: a handle may outlive its tree (in a traceback, say)
        return f"Node(0x{ly.addr(self._p):x})"

    # -- what it is --------------------------------------------------------------
    @property
    def schema(self) -> SNode:
        return SNode(self._p.schema)

    @property
    def kind(self) -> Kind:
        return self.schema.kind

    @property
    def name(self) -> str:
        return _str(self._p.schema.name)

    @property
    def module(self) -> str:
        return _str(self._p.schema.module.name)

    @property
    def value(self) -> str | None:
        """The canonical value of a leaf or leaf-list entry; None for other nodes."""
        if not self._p.schema.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
            return None
        v = lib.lyd_get_value(self._p)
        return None if v == ffi.NULL else _str(v)

    @property
    def path(self) -> str:
        """The data path (``/mod:list[key='v']/leaf``), as libyang prints it."""
        p = lib.lyd_path(self._p, lib.LYD_PATH_STD, ffi.NULL, 0)
        try:
            return _str(p)
        finally:
            lib.free(p)

    @property
    def is_default(self) -> bool:
        """An implicit default (or a container holding only those)."""
        return bool(self._p.flags & lib.LYD_DEFAULT)

    @property
    def is_key(self) -> bool:
        return bool(self._p.schema.flags & lib.LYS_KEY)

    @property
    def state(self) -> bool:
        return bool(self._p.schema.flags & lib.LYS_CONFIG_R)

    # -- navigation ----------------------------------------------------------------
    @property
    def parent(self) -> Node | None:
        p = self._p.parent
        return None if p == ffi.NULL else Node(ffi.cast("struct lyd_node *", p), self._ctx)

    @property
    def next(self) -> Node | None:
        n = self._p.next
        return None if n == ffi.NULL else Node(n, self._ctx)

    def top(self) -> Node:
        """The top-level ancestor (the node itself at the top)."""
        p = self._p
        while p.parent != ffi.NULL:
            p = ffi.cast("struct lyd_node *", p.parent)
        return Node(p, self._ctx)

    def children(self) -> list[Node]:
        """Child nodes in order, list keys first."""
        out = []
        c = lib.lyd_child(self._p)
        while c != ffi.NULL:
            out.append(Node(c, self._ctx))
            c = c.next
        return out

    def ancestors(self) -> Iterator[Node]:
        """The node itself, then each parent up to the top."""
        p = self._p
        while p != ffi.NULL:
            yield Node(p, self._ctx)
            p = ffi.cast("struct lyd_node *", p.parent) if p.parent != ffi.NULL else ffi.NULL

    # -- metadata --------------------------------------------------------------------
    def meta(self, name: str) -> str | None:
        """The value of metadata ``module:name`` on this node (e.g. ``ietf-origin:origin``)."""
        module, _, local = name.partition(":")
        m = self._p.meta
        while m != ffi.NULL:
            if _str(m.name) == local and _str(m.annotation.module.name) == module:
                v = lib.lyd_value_get_canonical(self._ctx, ffi.addressof(m.value))
                return None if v == ffi.NULL else _str(v)
            m = m.next
        return None

    def set_meta(self, name: str, value: str) -> None:
        """Attach metadata ``module:name`` (``ietf-netconf:operation``, ``yang:insert``...)."""
        ctx = self._ctx
        rc = ly.xlib.lyd_new_meta(ly.xnode(ctx), ly.xnode(self._p), ly.xffi.NULL,
                                  name.encode(), value.encode(), 0, ly.xffi.NULL)
        if rc != lib.LY_SUCCESS:
            ly.raise_last(ctx, f"setting {name}")

    def remove_meta(self, name: str, *, recursive: bool = False) -> None:
        """Remove metadata ``module:name`` from this node (and its descendants)."""
        module, _, local = name.partition(":")
        stack = [self._p]
        while stack:
            n = stack.pop()
            m = n.meta
            while m != ffi.NULL:
                nxt = m.next
                if _str(m.name) == local and _str(m.annotation.module.name) == module:
                    lib.lyd_free_meta_single(m)
                m = nxt
            if recursive:
                c = lib.lyd_child(n)
                while c != ffi.NULL:
                    stack.append(c)
                    c = c.next

    def has_meta(self) -> bool:
        """Whether this node or any descendant carries metadata."""
        stack = [self._p]
        while stack:
            n = stack.pop()
            if n.meta != ffi.NULL:
                return True
            if n.schema != ffi.NULL and n.schema.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
                continue
            c = lib.lyd_child(n)
            while c != ffi.NULL:
                stack.append(c)
                c = c.next
        return False
