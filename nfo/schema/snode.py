"""Schema nodes as typed objects: what a front end or the datastore may ask of the schema.

A :class:`SNode` wraps one compiled libyang schema node (``struct lysc_node``).
Compiled schemas live as long as their :class:`~nfo.schema.Schema`, so an SNode
is a cheap handle: two handles of one node are equal and hash alike.  Nothing
outside the schema layer sees the C structure behind it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.stype import SType

NOT_YANG_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters outside RFC 7950's ``char`` (section 9.4; XML 1.0's Char): a NUL would
cut the value short on its way into C, the others could never be written as XML."""

__all__ = ["DATA_KINDS", "Kind", "Must", "SNode"]


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


def _opt(p: Any) -> str | None:
    return None if p == ffi.NULL else str(ffi.string(p).decode())


_UNBOUNDED = 0xFFFFFFFF
_TERM = lib.LYS_LEAF | lib.LYS_LEAFLIST
_ELEMENTS = lib.LYS_LIST | lib.LYS_LEAFLIST
_CONSTRAINED = (lib.LYS_CONTAINER | lib.LYS_LIST | lib.LYS_LEAF | lib.LYS_LEAFLIST
                | lib.LYS_ANYDATA | lib.LYS_ANYXML | lib.LYS_NOTIF | lib.LYS_INPUT
                | lib.LYS_OUTPUT)
"""Nodes that may carry must statements."""


_NODE_SIZE = ffi.sizeof("struct lysc_node")


def _member(p: Any, i: int) -> Any:
    """The ``i``-th pointer member after the common ``struct lysc_node`` part of a
    compiled node whose own structure the bindings leave opaque."""
    return ffi.cast("void **", ffi.cast("char *", p) + _NODE_SIZE)[i]


@dataclass(frozen=True)
class Must:
    """A must statement: its XPath as written, and what a violation reports."""

    xpath: str
    error_message: str | None
    error_app_tag: str | None


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
        for i in range(ly.count(exts)):
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
            lib.ly_err_clean(ly.module_ctx(self._p.module), ffi.NULL)
            return None
        found = ffi.cast("struct ly_set *", ly.addr(ly.fromx(out[0], "void *")))
        try:
            leaves = [found.snodes[i] for i in range(found.count)
                      if found.snodes[i].nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST)]
        finally:
            lib.ly_set_free(found, ffi.NULL)
        if not leaves:
            return None
        # the atoms include what the predicates read: the target is named last
        last = _str(lib.lyxp_get_expr(lr.path)).rstrip().rsplit("/", 1)[-1]
        named = [n for n in leaves if _str(n.name) == last.rsplit(":", 1)[-1].strip()]
        return SNode(max(named or leaves, key=lambda n: len(SNode(n).path)))

    # -- what the schema says about values ---------------------------------------
    @property
    def prefix(self) -> str:
        """The prefix of the module defining the node."""
        return _str(self._p.module.prefix)

    @property
    def description(self) -> str | None:
        return _opt(self._p.dsc)

    @property
    def status(self) -> str:
        """``current``, ``deprecated`` or ``obsolete``."""
        flags = self._p.flags
        if flags & lib.LYS_STATUS_OBSLT:
            return "obsolete"
        if flags & lib.LYS_STATUS_DEPRC:
            return "deprecated"
        return "current"

    @property
    def mandatory(self) -> bool:
        """``mandatory true`` (a leaf, choice, anydata or anyxml), or a list or
        leaf-list with min-elements above 0."""
        return bool(self._p.flags & lib.LYS_MAND_TRUE)

    @property
    def type(self) -> SType | None:
        """The type of a leaf or leaf-list; None for other nodes."""
        if not self._p.nodetype & _TERM:
            return None
        leaf = ffi.cast("struct lysc_node_leaf *", self._p)
        parsed = ffi.NULL
        if self._p.priv != ffi.NULL:
            parsed = ffi.addressof(ffi.cast("struct lysp_node_leaf *", self._p.priv), "type")
        return SType(leaf.type, parsed)

    def accepts(self, value: str) -> bool:
        """Whether a leaf or leaf-list takes ``value`` (JSON encoding) by its type alone:
        False also when the type needs the data to decide (a leafref, an
        instance-identifier that requires an instance), and for a character no YANG
        value may hold."""
        if not self._p.nodetype & _TERM or NOT_YANG_CHAR.search(value):
            return False
        raw = value.encode()
        return bool(lib.lyd_value_validate(ffi.NULL, self._p, raw, len(raw), ffi.NULL,
                                           ffi.NULL, ffi.NULL) == lib.LY_SUCCESS)

    @property
    def units(self) -> str | None:
        if not self._p.nodetype & _TERM:
            return None
        return _opt(ffi.cast("struct lysc_node_leaf *", self._p).units)

    @property
    def defaults(self) -> tuple[str, ...]:
        """The canonical default value(s) of a leaf or leaf-list (none when absent);
        a choice's default case name."""
        t = self._p.nodetype
        ctx = ly.module_ctx(self._p.module)
        if t & lib.LYS_LEAF:
            d = ffi.cast("struct lysc_node_leaf *", self._p).dflt
            return () if d == ffi.NULL else (_str(lib.lyd_value_get_canonical(ctx, d)),)
        if t & lib.LYS_LEAFLIST:
            ds = ffi.cast("struct lysc_node_leaflist *", self._p).dflts
            return tuple(_str(lib.lyd_value_get_canonical(ctx, ds[i]))
                         for i in range(ly.count(ds)))
        if t & lib.LYS_CHOICE:
            # struct lysc_node_choice: the node, then cases, when and dflt
            case = _member(self._p, 2)
            return () if case == ffi.NULL else (_str(ffi.cast("struct lysc_node *", case).name),)
        return ()

    @property
    def min_elements(self) -> int | None:
        """A list's or leaf-list's min-elements (None for other nodes)."""
        if not self._p.nodetype & _ELEMENTS:
            return None
        return int(ffi.cast("struct lysc_node_list *", self._p).min) \
            if self._p.nodetype & lib.LYS_LIST \
            else int(ffi.cast("struct lysc_node_leaflist *", self._p).min)

    @property
    def max_elements(self) -> int | None:
        """A list's or leaf-list's max-elements (None: unbounded, or another node)."""
        if not self._p.nodetype & _ELEMENTS:
            return None
        n = int(ffi.cast("struct lysc_node_list *", self._p).max) \
            if self._p.nodetype & lib.LYS_LIST \
            else int(ffi.cast("struct lysc_node_leaflist *", self._p).max)
        return None if n in (0, _UNBOUNDED) else n

    @property
    def when(self) -> tuple[str, ...]:
        """The XPath of each when condition on the node (from uses and augment too)."""
        whens = ly.fromx(ly.xlib.lysc_node_when(ly.xnode(self._p)), "struct lysc_when **")
        return tuple(_str(lib.lyxp_get_expr(whens[i].cond)) for i in range(ly.count(whens)))

    @property
    def musts(self) -> tuple[Must, ...]:
        if not self._p.nodetype & _CONSTRAINED:
            return ()
        musts = ly.fromx(ly.xlib.lysc_node_musts(ly.xnode(self._p)), "struct lysc_must *")
        return tuple(Must(_str(lib.lyxp_get_expr(musts[i].cond)), _opt(musts[i].emsg),
                          _opt(musts[i].eapptag)) for i in range(ly.count(musts)))

    def schema_children(self) -> Iterator[SNode]:
        """The children as the schema nests them: choices and cases included; an RPC's
        or action's input and output; then actions and notifications."""
        t = self._p.nodetype
        if t & (lib.LYS_RPC | lib.LYS_ACTION):
            # struct lysc_node_action: the node, when, then the input node, whose
            # next sibling is the output node
            base = ffi.cast("char *", self._p) + _NODE_SIZE + ffi.sizeof("void *")
            inp = ffi.cast("struct lysc_node *", base)
            yield SNode(inp)
            yield SNode(inp.next)
            return
        c = lib.lysc_node_child(self._p)
        # a case's children are linked with the other cases' children
        while c != ffi.NULL and c.parent == self._p:
            yield SNode(c)
            c = c.next
        if t & (lib.LYS_CONTAINER | lib.LYS_LIST):
            for head in (lib.lysc_node_actions(self._p), lib.lysc_node_notifs(self._p)):
                a = ffi.cast("struct lysc_node *", head)
                while a != ffi.NULL:
                    yield SNode(a)
                    a = a.next

    # -- navigation ------------------------------------------------------------
    @property
    def parent(self) -> SNode | None:
        """The nearest ancestor that is not a choice or a case (None at the top)."""
        p = self._p.parent
        while p != ffi.NULL and p.nodetype & (lib.LYS_CHOICE | lib.LYS_CASE):
            p = p.parent
        return None if p == ffi.NULL else SNode(p)

    @property
    def in_case(self) -> bool:
        """Whether the node belongs to a case of a choice (directly, or through a nested
        choice)."""
        p = self._p.parent
        while p != ffi.NULL and p.nodetype & (lib.LYS_CHOICE | lib.LYS_CASE):
            if p.nodetype & lib.LYS_CASE:
                return True
            p = p.parent
        return False

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
