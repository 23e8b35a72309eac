"""Operational data: pushed by its owners, merged over config on read.

Owners (the workload manager, drivers, the server itself) push state subtrees
with ``set``; each owner's data lives in its own tree, so one owner's push
never rewrites another's.  Pushes are stored per record (one list entry at
the shallowest list level, or one top-level node) so that persisting a
state change costs one small durable write.  Reads merge running with every
owner's tree and, when asked, tag nodes with their RFC 8342 origin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from nfo.datastore.storage.base import Storage
from nfo.errors import InvalidValue
from nfo.schema import ly
from nfo.schema.data import (
    Fmt,
    Tree,
    children,
    find_sibling,
    is_default,
    node_path,
    node_value,
    parse_data,
    siblings,
)
from nfo.schema.ly import ffi, lib

__all__ = ["OperProvider", "OperStore", "annotate_origin"]

log = logging.getLogger(__name__)

OperProvider = Callable[[], str]
"""Returns RFC 7951 JSON for the subtree it was registered for, computed at read time."""

_PARSE_OPER = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT


def _record_roots(node: Any) -> Iterator[Any]:
    """Nodes a push is stored by: the shallowest list entries, else the top node."""
    if node.schema.nodetype & lib.LYS_LIST:
        yield node
        return
    if node.schema.nodetype & lib.LYS_CONTAINER:
        kids = [c for c in children(node)]
        if kids and all(c.schema.nodetype & (lib.LYS_LIST | lib.LYS_CONTAINER) for c in kids):
            for c in kids:
                yield from _record_roots(c)
            return
    yield node


class OperStore:
    def __init__(self, ctx: Any, storage: Storage) -> None:
        self.ctx = ctx
        self.storage = storage
        self.owners: dict[str, Tree] = {}
        self._keys: dict[str, set[str]] = {}
        self.providers: dict[str, OperProvider] = {}

    def load(self) -> None:
        for rec in self.storage.load_oper():
            tree = self.owners.setdefault(rec.owner, Tree(self.ctx))
            part = parse_data(self.ctx, rec.content, Fmt.JSON, parse_opts=_PARSE_OPER)
            self._merge(tree, part)
            self._keys.setdefault(rec.owner, set()).add(rec.key)

    def close(self) -> None:
        for t in self.owners.values():
            t.free()
        self.owners.clear()

    def _merge(self, tree: Tree, part: Any) -> None:
        if part == ffi.NULL:
            return
        if tree.first() == ffi.NULL:
            tree.root = part
            return
        holder = ffi.new("struct lyd_node **", tree.root)
        ly.check(lib.lyd_merge_siblings(holder, part, lib.LYD_MERGE_DESTRUCT), self.ctx,
                 "merging operational data")
        tree.root = holder[0]

    def _persist(self, owner: str, tree: Tree, key: str) -> None:
        node = tree.find(key)
        if node == ffi.NULL:
            self.storage.put_oper(owner, key, None)
            self._keys.get(owner, set()).discard(key)
            return
        out = ffi.new("struct lyd_node **")
        ly.check(lib.lyd_dup_single(node, ffi.NULL,
                                    lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_PARENTS, out),
                 self.ctx, "copying operational data")
        top = out[0]
        while top.parent != ffi.NULL:
            top = ffi.cast("struct lyd_node *", top.parent)
        try:
            text = Tree(self.ctx, top).print(Fmt.JSON)
        finally:
            lib.lyd_free_all(top)
        self.storage.put_oper(owner, key, text)
        self._keys.setdefault(owner, set()).add(key)

    def set(self, owner: str, content: str | bytes, fmt: Fmt | str, *,
            replace: bool = False) -> None:
        """Merge a pushed subtree into the owner's data and persist what it touched.

        With ``replace``, each pushed record (list entry) replaces the owner's
        previous one instead of merging into it, so leaves left out are removed.
        """
        part = parse_data(self.ctx, content, fmt, parse_opts=_PARSE_OPER,
                          what="parsing operational data")
        if part == ffi.NULL:
            return
        keys = [node_path(r) for top in siblings(part) for r in _record_roots(top)]
        tree = self.owners.setdefault(owner, Tree(self.ctx))
        if replace:
            for k in keys:
                old = tree.find(k)
                if old != ffi.NULL:
                    if old.parent == ffi.NULL and old == tree.first():
                        tree.root = old.next
                    lib.lyd_free_tree(old)
        self._merge(tree, part)
        for k in keys:
            self._persist(owner, tree, k)

    def delete(self, owner: str, path: str) -> bool:
        """Remove the owner's node at ``path`` (and its subtree); False if absent."""
        tree = self.owners.get(owner)
        if tree is None:
            return False
        node = tree.find(path)
        if node == ffi.NULL:
            return False
        if node.parent == ffi.NULL and node == tree.first():
            tree.root = node.next
        lib.lyd_free_tree(node)
        for key in list(self._keys.get(owner, ())):
            if key == path or key.startswith(path + "/") or key.startswith(path + "["):
                self.storage.put_oper(owner, key, None)
                self._keys[owner].discard(key)
            elif path.startswith(key + "/"):
                self._persist(owner, tree, key)
        return True

    def clear(self, owner: str) -> None:
        tree = self.owners.pop(owner, None)
        if tree is not None:
            tree.free()
        self._keys.pop(owner, None)
        self.storage.clear_oper(owner)

    def provide(self, path: str, provider: OperProvider) -> None:
        """Register data computed when it is read (sysrepo's operational get
        subscription): session lists, counters, anything too volatile to push."""
        if path in self.providers:
            raise InvalidValue(f"{path} already has an operational data provider")
        self.providers[path] = provider

    def unprovide(self, path: str) -> None:
        self.providers.pop(path, None)

    def _provided(self, select: str | None) -> Iterator[Tree]:
        for path, provider in list(self.providers.items()):
            if select is not None and not (select.startswith(path) or path.startswith(select)):
                continue
            try:
                text = provider()
                part = parse_data(self.ctx, text, Fmt.JSON, parse_opts=_PARSE_OPER,
                                  what=f"operational data provided for {path}")
            except Exception:
                log.exception("operational data provider for %s failed", path)
                continue
            tree = Tree(self.ctx, part)
            try:
                yield tree
            finally:
                tree.free()

    def merged_into(self, base: Tree, select: str | None = None) -> None:
        """Merge (copies of) every owner's data and every provider's, or the part at
        ``select``, into ``base``."""
        for tree in self.owners.values():
            self._merge_selected(base, tree, select)
        for tree in self._provided(select):
            self._merge_selected(base, tree, select)

    def _merge_selected(self, base: Tree, tree: Tree, select: str | None) -> None:
        if tree.first() == ffi.NULL:
            return
        if select is None:
            self._merge(base, tree.dup().root)
            return
        for node in tree.xpath(select):
            out = ffi.new("struct lyd_node **")
            ly.check(lib.lyd_dup_single(node, ffi.NULL,
                                        lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_PARENTS,
                                        out), self.ctx, "copying operational data")
            top = out[0]
            while top.parent != ffi.NULL:
                top = ffi.cast("struct lyd_node *", top.parent)
            self._merge(base, top)


_ORIGIN = "ietf-origin:origin"


def annotate_origin(ctx: Any, merged: Tree, running: Tree) -> None:
    """Tag nodes with their RFC 8342 origin where it differs from their parent's."""
    _annotate(ctx, merged.first(), running.first(), None)


def _annotate(ctx: Any, node: Any, rfirst: Any, parent_origin: str | None) -> None:
    for n in siblings(node):
        counterpart = find_sibling(rfirst, n)
        if counterpart != ffi.NULL and node_value(counterpart) != node_value(n):
            counterpart = ffi.NULL
        if is_default(n):
            origin = "ietf-origin:default"
        elif counterpart != ffi.NULL:
            origin = "ietf-origin:intended"
        else:
            origin = "ietf-origin:learned"
        if origin != parent_origin and not (n.schema.flags & lib.LYS_KEY):
            rc = ly.xlib.lyd_new_meta(ly.xnode(ctx), ly.xnode(n), ly.xffi.NULL,
                                      _ORIGIN.encode(), origin.encode(), 0, ly.xffi.NULL)
            if rc != lib.LY_SUCCESS:
                ly.raise_last(ctx, "tagging origin")
        if not n.schema.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
            rchild = lib.lyd_child(counterpart) if counterpart != ffi.NULL else ffi.NULL
            _annotate(ctx, lib.lyd_child(n), rchild, origin)


def check_owner(owner: str) -> str:
    if not owner or len(owner) > 128:
        raise InvalidValue("an operational data owner needs a name of 1..128 characters")
    return owner
