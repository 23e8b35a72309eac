"""Operation trees: RPCs, actions, their replies, and notifications.

libyang parses an operation into a tree of its own (an action or a nested
notification with its ancestors) and validates it separately, against the
data it may refer to.  :class:`Operation` owns such a tree and knows its
operation node, so that callers never walk the tree to find it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from nfo.errors import InvalidValue
from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.data import Fmt, Tree, _ctx, _fmt, _ly_input, _raw, siblings
from nfo.schema.dnode import Node
from nfo.schema.snode import Kind, SNode

__all__ = ["OpKind", "Operation"]


def _ancestors(node: SNode) -> list[SNode]:
    out = []
    p = node.parent
    while p is not None:
        out.append(p)
        p = p.parent
    return out


class OpKind(StrEnum):
    RPC = "rpc"
    """An RPC or action with its input."""
    REPLY = "reply"
    """An RPC or action with its output."""
    NOTIFICATION = "notification"

    @property
    def ly(self) -> int:
        return int({OpKind.RPC: lib.LYD_TYPE_RPC_YANG, OpKind.REPLY: lib.LYD_TYPE_REPLY_YANG,
                    OpKind.NOTIFICATION: lib.LYD_TYPE_NOTIF_YANG}[self])


class Operation:
    """An owned operation tree and its operation node."""

    __slots__ = ("kind", "op", "tree")

    def __init__(self, tree: Tree, op: Node, kind: OpKind) -> None:
        self.tree = tree
        self.op = op
        self.kind = kind

    @classmethod
    def parse(cls, schema: Any, text: str | bytes, fmt: Fmt | str, kind: OpKind, *,
              under: tuple[Tree, Node] | None = None, what: str = "parsing an operation"
              ) -> Operation:
        """Parse an RPC/action (``kind`` RPC), a reply or a notification.

        ``under``: (tree, node) to parse the operation as a child of ``node`` (an
        action's parent built from a RESTCONF URI); the new operation then owns that
        tree.  libyang parses strictly but validates nothing else here (see
        :meth:`validate`).
        """
        ctx = _ctx(schema)
        raw = _raw(text, fmt)
        tree_out = ffi.new("struct lyd_node **")
        op_out = ffi.new("struct lyd_node **")
        parent = under[1]._p if under is not None else ffi.NULL
        with _ly_input(ctx, raw, what) as inp:
            rc = lib.lyd_parse_op(ctx, parent, inp, _fmt(fmt).ly, kind.ly, tree_out, op_out)
        tree = under[0] if under is not None else Tree(ctx, tree_out[0])
        if rc != lib.LY_SUCCESS:
            if under is None:
                tree.free()
            ly.raise_last(ctx, what)
        if op_out[0] == ffi.NULL:
            # empty input ("{}", "") parses successfully into nothing
            if under is None:
                tree.free()
            lib.ly_err_clean(ctx, ffi.NULL)
            raise InvalidValue(f"{what}: the content holds no "
                               + ("notification" if kind is OpKind.NOTIFICATION
                                  else "operation"))
        if under is None:
            tree._root = lib.lyd_first_sibling(tree._root)
        return cls(tree, Node(op_out[0], ctx), kind)

    def free(self) -> None:
        self.tree.free()

    def __enter__(self) -> Operation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()

    # -- what it is --------------------------------------------------------------------
    @property
    def schema_path(self) -> str:
        """``/mod:rpc`` or, for an action, ``/mod:cont/list/action`` (no predicates)."""
        parts = []
        prev = None
        for n in reversed(list(self.op.ancestors())):
            mod = n.module
            parts.append(f"{mod}:{n.name}" if mod != prev else n.name)
            prev = mod
        return "/" + "/".join(parts)

    @property
    def parent_path(self) -> str | None:
        """The data path of the node an action or nested notification belongs to."""
        parent = self.op.parent
        return None if parent is None else parent.path

    def output(self) -> list[Node]:
        """The operation node's children (input, output or notification content)."""
        return self.op.children()

    # -- checking ----------------------------------------------------------------------
    def validate(self, data: Tree | None) -> None:
        """Validate against ``data`` (leafrefs, when, must may read it).  libyang links
        the operation into ``data`` while it checks and unlinks it again."""
        dep = data._first() if data is not None else ffi.NULL
        rc = lib.lyd_validate_op(self.tree._first(), dep, self.kind.ly, ffi.NULL)
        if rc != lib.LY_SUCCESS:
            what = "a notification" if self.kind is OpKind.NOTIFICATION else (
                "RPC input" if self.kind is OpKind.RPC else "RPC output")
            ly.raise_last(self.tree.ctx, f"validating {what}")

    def selects(self, xpath: str) -> bool:
        """Whether ``xpath`` selects at least one node of the tree (an expression that
        is not a node set selects nothing)."""
        try:
            return bool(self.tree._xpath(xpath))
        except InvalidValue:
            return False

    def referenced_paths(self) -> list[str]:
        """Data paths of the list entries this operation's leafrefs name (a leafref to
        the key of a one-key list that is no other list's child): what a notification
        is about, for deciding who may receive it."""
        out = []
        for n in self.op.children():
            target = n.schema.leafref_target
            if target is None or not target.is_key or n.value is None:
                continue
            owner = target.parent
            if owner is None or len(owner.keys) != 1:
                continue
            if any(a.kind is Kind.LIST for a in _ancestors(owner)):
                continue
            value = n.value
            quoted = f"'{value}'" if "'" not in value else f'"{value}"'
            out.append(f"{owner.path}[{target.name}={quoted}]")
        return out

    # -- replies -----------------------------------------------------------------------
    def reply(self) -> Operation:
        """A reply tree for this RPC or action: the operation node with its ancestors,
        without its input, to be filled with :meth:`set_output`."""
        ctx = self.tree.ctx
        out = ffi.new("struct lyd_node **")
        ly.check(lib.lyd_dup_single(self.op._p, ffi.NULL, lib.LYD_DUP_WITH_PARENTS, out), ctx,
                 "building an RPC reply")
        rop = out[0]
        top = rop
        while top.parent != ffi.NULL:
            top = ffi.cast("struct lyd_node *", top.parent)
        for child in list(siblings(lib.lyd_child(rop))):
            lib.lyd_free_tree(child)
        return Operation(Tree(ctx, top), Node(rop, ctx), OpKind.REPLY)

    def set_output(self, path: str, value: str) -> None:
        """Set an output leaf, ``path`` relative to the operation node."""
        ctx = self.tree.ctx
        ly.check(lib.lyd_new_path(self.op._p, ctx, path.encode(), value.encode(),
                                  lib.LYD_NEW_PATH_OUTPUT | lib.LYD_NEW_PATH_UPDATE, ffi.NULL),
                 ctx, "building RPC output")

    def print(self, fmt: Fmt | str = Fmt.JSON) -> str:
        return self.tree.print(fmt)
