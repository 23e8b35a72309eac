"""Schema nodes as typed objects: what a front end or the datastore may ask of the schema.

A :class:`SNode` wraps one compiled libyang schema node (``struct lysc_node``).
Compiled schemas live as long as their :class:`~nfo.schema.Schema`, so an SNode
is a cheap handle: two handles of one node are equal and hash alike.  Nothing
outside the schema layer sees the C structure behind it.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib

__all__ = ["DATA_KINDS", "Kind", "SNode"]


class Kind(StrEnum):
    CONTAINER = "container"
    LIST = "list"
    LEAF = "leaf"
    LEAFLIST = "leaf-list"
    ANYDATA = "anydata"
    ANYXML = "anyxml"
    CHOICE = "choice"
    CASE = "case"
    RPC = "rpc"
    ACTION = "action"
    NOTIFICATION = "notification"
    INPUT = "input"
    OUTPUT = "output"


_KINDS: tuple[tuple[int, Kind], ...] = (
    (lib.LYS_CONTAINER, Kind.CONTAINER),
    (lib.LYS_LIST, Kind.LIST),
    (lib.LYS_LEAF, Kind.LEAF),
    (lib.LYS_LEAFLIST, Kind.LEAFLIST),
    (lib.LYS_ANYDATA, Kind.ANYDATA),
    (lib.LYS_ANYXML, Kind.ANYXML),
    (lib.LYS_CHOICE, Kind.CHOICE),
    (lib.LYS_CASE, Kind.CASE),
    (lib.LYS_RPC, Kind.RPC),
    (lib.LYS_ACTION, Kind.ACTION),
    (lib.LYS_NOTIF, Kind.NOTIFICATION),
    (lib.LYS_INPUT, Kind.INPUT),
    (lib.LYS_OUTPUT, Kind.OUTPUT),
)
_KIND_OF = dict(_KINDS)
DATA_KINDS = frozenset({Kind.CONTAINER, Kind.LIST, Kind.LEAF, Kind.LEAFLIST, Kind.ANYDATA,
                        Kind.ANYXML})
"""Kinds that stand for data nodes (instances in a data tree)."""
_DATA = (lib.LYS_CONTAINER | lib.LYS_LIST | lib.LYS_LEAF | lib.LYS_LEAFLIST | lib.LYS_ANYDATA
         | lib.LYS_ANYXML)


def _str(p: Any) -> str:
    return str(ffi.string(p).decode())


class SNode:
    """A handle on one compiled schema node."""

    __slots__ = ("_p",)

    def __init__(self, p: Any) -> None:
        self._p = p

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SNode) and self._p == other._p

    def __hash__(self) -> int:
        return hash(int(ffi.cast("uintptr_t", self._p)))

    def __repr__(self) -> str:
        return f"SNode({self.path})"

    # -- identity --------------------------------------------------------------
    @property
    def name(self) -> str:
        return _str(self._p.name)

    @property
    def module(self) -> str:
        """The name of the module defining the node (augments included)."""
        return _str(self._p.module.name)

    @property
    def namespace(self) -> str:
        return _str(self._p.module.ns)

    @property
    def kind(self) -> Kind:
        t = int(self._p.nodetype)
        kind = _KIND_OF.get(t)
        if kind is None:
            raise ValueError(f"unknown schema node type {t}")
        return kind

    @property
    def path(self) -> str:
        """The schema path, e.g. ``/nfo-vim:vims/vim/name``."""
        p = lib.lysc_path(self._p, lib.LYSC_PATH_DATA, ffi.NULL, 0)
        try:
            return _str(p)
        finally:
            lib.free(p)

    # -- properties ------------------------------------------------------------
    @property
    def is_data(self) -> bool:
        return bool(self._p.nodetype & _DATA)

    @property
    def is_term(self) -> bool:
        """A leaf or leaf-list: a node with a value."""
        return bool(self._p.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST))

    @property
    def config(self) -> bool:
        """Configuration (``config true``)."""
        return bool(self._p.flags & lib.LYS_CONFIG_W)

    @property
    def state(self) -> bool:
        """State data (``config false``)."""
        return bool(self._p.flags & lib.LYS_CONFIG_R)

    @property
    def is_key(self) -> bool:
        return bool(self._p.flags & lib.LYS_KEY)

    @property
    def presence(self) -> bool:
        return bool(self._p.nodetype & lib.LYS_CONTAINER and self._p.flags & lib.LYS_PRESENCE)

    @property
    def keyless(self) -> bool:
        return bool(self._p.nodetype & lib.LYS_LIST and self._p.flags & lib.LYS_KEYLESS)

    @property
    def ordered_by_user(self) -> bool:
        return bool(self._p.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST)
                    and self._p.flags & lib.LYS_ORDBY_USER)

    @property
    def keys(self) -> tuple[str, ...]:
        """Key leaf names of a list, in key order (libyang puts keys first)."""
        if not self._p.nodetype & lib.LYS_LIST:
            return ()
        out = []
        c = lib.lysc_node_child(self._p)
        while c != ffi.NULL and c.flags & lib.LYS_KEY:
            out.append(_str(c.name))
            c = c.next
        return tuple(out)

    @property
    def extensions(self) -> tuple[tuple[str, str, str | None], ...]:
        """(module, name, argument) of every extension instance on the node."""
        exts = self._p.exts
        if exts == ffi.NULL:
            return ()
        out = []
        for i in range(int(ffi.cast("uint64_t *", exts)[-1])):
            d = getattr(exts[i], "def")
            arg = exts[i].argument
            out.append((_str(d.module.name), _str(d.name),
                        None if arg == ffi.NULL else _str(arg)))
        return tuple(out)

    @property
    def leafref_target(self) -> SNode | None:
        """The leaf a leafref leaf (or leaf-list) points at; None for other nodes."""
        if not self._p.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
            return None
        t = ffi.cast("struct lysc_node_leaf *", self._p).type
        if t.basetype != lib.LY_TYPE_LEAFREF:
            return None
        lr = ffi.cast("struct lysc_type_leafref *", t)
        cur = lr.cur_mod if lr.cur_mod != ffi.NULL else self._p.module
        out = ly.xffi.new("void **")
        rc = ly.xlib.lys_find_expr_atoms(ly.xnode(self._p), ly.xnode(cur), ly.xnode(lr.path),
                                         ly.xnode(lr.prefixes), 0, out)
        if rc != lib.LY_SUCCESS:
            lib.ly_err_clean(self._p.module.ctx, ffi.NULL)
            return None
        found = ffi.cast("struct ly_set *", ly.addr(ly.fromx(out[0], "void *")))
        try:
            leaves = [found.snodes[i] for i in range(found.count)
                      if found.snodes[i].nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST)]
        finally:
            lib.ly_set_free(found, ffi.NULL)
        if not leaves:
            return None
        return SNode(max(leaves, key=lambda n: len(SNode(n).path)))

    # -- navigation ------------------------------------------------------------
    @property
    def parent(self) -> SNode | None:
        """The nearest ancestor that is not a choice or a case (None at the top)."""
        p = self._p.parent
        while p != ffi.NULL and p.nodetype & (lib.LYS_CHOICE | lib.LYS_CASE):
            p = p.parent
        return None if p == ffi.NULL else SNode(p)

    def children(self, *, output: bool = False) -> Iterator[SNode]:
        """Data-tree children (choices and cases looked through; actions and
        notifications included; an RPC's or action's input, or output with ``output``)."""
        opts = lib.LYS_GETNEXT_OUTPUT if output else 0
        c = lib.lys_getnext(ffi.NULL, self._p, ffi.NULL, opts)
        while c != ffi.NULL:
            yield SNode(c)
            c = lib.lys_getnext(c, self._p, ffi.NULL, opts)
        if self._p.nodetype & (lib.LYS_CONTAINER | lib.LYS_LIST):
            for head in (lib.lysc_node_actions(self._p), lib.lysc_node_notifs(self._p)):
                a = ffi.cast("struct lysc_node *", head)
                while a != ffi.NULL:
                    yield SNode(a)
                    a = a.next

    def child(self, name: str, module: str | None = None) -> SNode | None:
        """The child named ``name`` of ``module`` (default: this node's module), choices
        and cases looked through; actions and notifications included."""
        want_name = name.encode()
        want_mod = module.encode() if module is not None else ffi.string(self._p.module.name)
        c = lib.lys_getnext(ffi.NULL, self._p, ffi.NULL, 0)
        while c != ffi.NULL:
            if ffi.string(c.name) == want_name and ffi.string(c.module.name) == want_mod:
                return SNode(c)
            c = lib.lys_getnext(c, self._p, ffi.NULL, 0)
        for found in self.children():
            if found.kind in (Kind.ACTION, Kind.NOTIFICATION) and found.name == name \
                    and found.module == want_mod.decode():
                return found
        return None
