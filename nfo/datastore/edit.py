"""NETCONF edit semantics (RFC 6241 section 7.2) applied to a libyang tree.

libyang has no "apply edit-config" (sysrepo carries its own); this is nfo's.
An edit is a data tree parsed with ``LYD_PARSE_ONLY`` whose nodes may carry
``ietf-netconf:operation`` and ``yang:insert``/``yang:key``/``yang:value``
metadata.  :func:`apply_edit` walks it against a working tree, mutates the
working tree in place and returns the typed changes it made.  It works in
time proportional to the size of the edit (sibling lookups are hashed), which
is what keeps a single-entry edit cheap in a large datastore.
"""

from __future__ import annotations

import re
from typing import Any

from nfo.datastore.changes import (
    Change,
    ChangeCreated,
    ChangeDeleted,
    ChangeModified,
    ChangeMoved,
)
from nfo.errors import DataExists, DataMissing, InvalidValue, NfoError
from nfo.schema import ly
from nfo.schema.data import (
    Tree,
    find_sibling,
    get_meta,
    is_default,
    node_path,
    node_value,
    siblings,
)
from nfo.schema.ly import ffi, lib

__all__ = ["OPERATIONS", "apply_edit", "validation_deletes"]

OPERATIONS = ("merge", "replace", "create", "delete", "remove", "none")

_TERM = lib.LYS_LEAF | lib.LYS_LEAFLIST
_MULTI = lib.LYS_LIST | lib.LYS_LEAFLIST
_DEFAULT = lib.LYD_DEFAULT
_NAMES: dict[tuple[Any, Any], str] = {}
"""Child-path segment per (schema node, parent's module); schemas live as long as the process."""
_PREFIX_IN_PRED = re.compile(r"\[[\w.-]+:")


def _xp(p: Any) -> Any:
    return ly.fromx(p)


class _Editor:
    def __init__(self, ctx: Any, tree: Tree) -> None:
        self.ctx = ctx
        self.tree = tree
        self.changes: list[Change] = []
        self._seen: set[str] = set()

    # -- lookups -----------------------------------------------------------
    def _first_child(self, parent: Any) -> Any:
        return self.tree.first() if parent == ffi.NULL else lib.lyd_child(parent)

    def _find(self, parent: Any, e: Any) -> Any:
        return find_sibling(self._first_child(parent), e)

    # -- recording ---------------------------------------------------------
    def _record_subtree(self, node: Any, created: bool, path: str | None = None) -> None:
        """One change per node of a created or deleted subtree, parents first.

        This runs for every node of a bulk edit, so it is written for speed: an
        explicit stack, child paths built from the parent's, names cached per schema.
        """
        if not created and node.flags & _DEFAULT:
            return
        out = self.changes
        cls = ChangeCreated if created else ChangeDeleted
        names = _NAMES
        null = ffi.NULL
        string = ffi.string
        get_value = lib.lyd_get_value
        stack = [(node, path or node_path(node))]
        while stack:
            n, p = stack.pop()
            sch = n.schema
            if sch.nodetype & _TERM:
                v = get_value(n)
                out.append(cls(p, string(v).decode() if v != null else None))
                continue
            out.append(cls(p, None))
            kids = []
            c = lib.lyd_child(n)
            while c != null:
                if created or not c.flags & _DEFAULT:
                    cs = c.schema
                    if cs.nodetype & _MULTI:
                        kids.append((c, node_path(c)))
                    else:
                        key = (cs, sch.module)
                        name = names.get(key)
                        if name is None:
                            name = string(cs.name).decode()
                            if cs.module != sch.module:
                                name = string(cs.module.name).decode() + ":" + name
                            names[key] = name
                        kids.append((c, p + "/" + name))
                c = c.next
            kids.reverse()
            stack.extend(kids)

    # -- mutations ---------------------------------------------------------
    def _insert(self, parent: Any, node: Any) -> None:
        if parent != ffi.NULL:
            ly.check(lib.lyd_insert_child(parent, node), self.ctx, "inserting data")
            return
        first = self.tree.first()
        if first == ffi.NULL:
            self.tree.root = node
            return
        out = ly.xffi.new("void **")
        ly.check(ly.xlib.lyd_insert_sibling(ly.xnode(first), ly.xnode(node), out), self.ctx,
                 "inserting data")
        self.tree.root = _xp(out[0])

    def _unlink_free(self, t: Any) -> None:
        if t.parent == ffi.NULL and t == self.tree.first():
            self.tree.root = t.next
        lib.lyd_free_tree(t)

    def _delete(self, t: Any) -> None:
        self._record_subtree(t, created=False)
        self._unlink_free(t)

    def _dup(self, e: Any, recursive: bool) -> Any:
        out = ly.xffi.new("void **")
        opts = lib.LYD_DUP_NO_META | (lib.LYD_DUP_RECURSIVE if recursive else 0)
        ly.check(ly.xlib.lyd_dup_single(ly.xnode(e), ly.xffi.NULL, opts, out), self.ctx,
                 "copying edit data")
        return _xp(out[0])

    def _create(self, e: Any, parent: Any, recursive: bool = True) -> Any:
        node = self._dup(e, recursive)
        self._insert(parent, node)
        self._position(node, e, created=True)
        if recursive:
            self._record_subtree(node, created=True)
        else:
            path = node_path(node)
            self.changes.append(ChangeCreated(path, node_value(node)))
            if node.schema.nodetype & lib.LYS_LIST:
                for k in siblings(lib.lyd_child(node)):
                    if not k.schema.flags & lib.LYS_KEY:
                        break
                    self.changes.append(ChangeCreated(node_path(k), node_value(k)))
        return node

    # -- ordered-by-user positions ------------------------------------------
    def _instances(self, node: Any) -> list[Any]:
        return [s for s in siblings(lib.lyd_first_sibling(node)) if s.schema == node.schema]

    def _position(self, t: Any, e: Any, created: bool) -> None:
        if not (t.schema.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST)
                and t.schema.flags & lib.LYS_ORDBY_USER):
            return
        where = get_meta(self.ctx, e, "yang", "insert")
        if where is None:
            return
        insts = self._instances(t)
        before = insts[insts.index(t) - 1] if insts.index(t) > 0 else None
        if where == "first":
            if insts[0] != t:
                ly.check(ly.xlib.lyd_insert_before(ly.xnode(insts[0]), ly.xnode(t)), self.ctx,
                         "moving data")
        elif where == "last":
            if insts[-1] != t:
                ly.check(ly.xlib.lyd_insert_after(ly.xnode(insts[-1]), ly.xnode(t)), self.ctx,
                         "moving data")
        elif where in ("before", "after"):
            point = self._point(t, e)
            if point == t:
                raise InvalidValue("an entry cannot be inserted relative to itself",
                                   tag="bad-attribute", path=node_path(t))
            fn = ly.xlib.lyd_insert_before if where == "before" else ly.xlib.lyd_insert_after
            ly.check(fn(ly.xnode(point), ly.xnode(t)), self.ctx, "moving data")
        else:
            raise InvalidValue(f"invalid insert value {where!r}", tag="bad-attribute",
                               path=node_path(t))
        if t.parent == ffi.NULL:
            self.tree.root = lib.lyd_first_sibling(t)
        insts = self._instances(t)
        now_before = insts[insts.index(t) - 1] if insts.index(t) > 0 else None
        if not created and now_before != before:
            self.changes.append(ChangeMoved(node_path(t),
                                            node_path(now_before) if now_before else None))

    def _point(self, t: Any, e: Any) -> Any:
        is_list = bool(t.schema.nodetype & lib.LYS_LIST)
        ref = get_meta(self.ctx, e, "yang", "key" if is_list else "value")
        if ref is None:
            raise InvalidValue(
                f"insert before/after needs the yang:{'key' if is_list else 'value'} attribute",
                tag="missing-attribute", path=node_path(t))
        if is_list:
            ref = _PREFIX_IN_PRED.sub("[", ref)
        out = ly.xffi.new("void **")
        raw = ref.encode()
        rc = ly.xlib.lyd_find_sibling_val(ly.xnode(lib.lyd_first_sibling(t)),
                                          ly.xnode(t.schema), raw, len(raw), out)
        if rc != lib.LY_SUCCESS:
            lib.ly_err_clean(self.ctx, ffi.NULL)
            raise NfoError(f"insert point {ref} does not exist", tag="bad-attribute",
                           app_tag="missing-instance", path=node_path(t))
        return _xp(out[0])

    # -- the walk ----------------------------------------------------------
    def process(self, e: Any, parent: Any, inherited: str) -> None:
        op = get_meta(self.ctx, e, "ietf-netconf", "operation") or inherited
        if e.schema.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST):
            where = node_path(e)
            if where in self._seen:
                raise DataExists("the edit names this entry twice", path=where)
            self._seen.add(where)
        if op not in OPERATIONS:
            raise InvalidValue(f"unknown operation {op!r}", tag="bad-attribute")
        t = self._find(parent, e)
        dflt = t != ffi.NULL and is_default(t) and bool(e.schema.nodetype & _TERM)
        present = t != ffi.NULL and not dflt
        if is_default(e) and e.schema.nodetype & _TERM and op in ("merge", "replace", "none"):
            # an implicit default in a validated source (copy-config, rollback): the
            # target needs no explicit value; validation adds the default back
            if present and op == "replace":
                self._delete(t)
            return
        if op in ("delete", "remove"):
            if not present:
                if op == "delete":
                    raise DataMissing("the data to delete does not exist", path=node_path(e))
                return
            self._delete(t)
            return
        if op == "create" and present and not (
                e.schema.nodetype & lib.LYS_CONTAINER and is_default(t)):
            raise DataExists("the data to create already exists", path=node_path(e))
        if dflt:
            self._unlink_free(t)
            t, present = ffi.NULL, False
        is_term = bool(e.schema.nodetype & _TERM)
        if op == "none" and t == ffi.NULL and is_term:
            return
        if op in ("create", "replace", "merge") and t == ffi.NULL and not _has_ops(e):
            self._create(e, parent)
            return
        if is_term:
            if e.schema.nodetype & lib.LYS_LEAF and op != "none":
                self._set_leaf(t, e)
            elif op != "none":
                self._position(t, e, created=False)
            return
        if t == ffi.NULL:
            mark = len(self.changes)
            t = self._create(e, parent, recursive=False)
            self._children(e, t, op)
            if op == "none" and len(self.changes) == mark + 1 + _keys(e):
                del self.changes[mark:]
                self._unlink_free(t)
            return
        if op == "replace":
            self._replace_children(t, e)
        else:
            self._children(e, t, op)
        if op != "none":
            self._position(t, e, created=False)

    def replace_top(self, edit: Tree) -> None:
        """default-operation replace: top-level data absent from the edit goes."""
        efirst = edit.first()
        for c in list(siblings(self.tree.first())):
            if is_default(c):
                continue
            if find_sibling(efirst, c) == ffi.NULL:
                self._delete(c)

    def _children(self, e: Any, t: Any, op: str) -> None:
        for c in siblings(lib.lyd_child_no_keys(e)):
            self.process(c, t, op)

    def _set_leaf(self, t: Any, e: Any) -> None:
        new = node_value(e)
        old = node_value(t)
        if new == old or new is None or old is None:
            return
        rc = ly.xlib.lyd_change_term(ly.xnode(t), new.encode())
        if rc not in (lib.LY_SUCCESS, lib.LY_EEXIST, lib.LY_ENOT):
            ly.raise_last(self.ctx, "changing a value")
        self.changes.append(ChangeModified(node_path(t), new, old))

    def _replace_children(self, t: Any, e: Any) -> None:
        echild = lib.lyd_child_no_keys(e)
        for c in list(siblings(lib.lyd_child_no_keys(t))):
            if is_default(c):
                continue
            if find_sibling(echild, c) == ffi.NULL:
                self._delete(c)
        self._children(e, t, "replace")
        self._follow_order(t, e)

    def _follow_order(self, t: Any, e: Any) -> None:
        """After a replace, user-ordered entries take the order given in the edit."""
        prev_by_schema: dict[int, Any] = {}
        for c in siblings(lib.lyd_child_no_keys(e)):
            s = c.schema
            if not (s.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST)
                    and s.flags & lib.LYS_ORDBY_USER):
                continue
            cur = self._find(t, c)
            if cur == ffi.NULL:
                continue
            key = ly.addr(s)
            prev = prev_by_schema.get(key)
            if prev is not None and cur.prev != prev:
                ly.check(ly.xlib.lyd_insert_after(ly.xnode(prev), ly.xnode(cur)), self.ctx,
                         "moving data")
                self.changes.append(ChangeMoved(node_path(cur), node_path(prev)))
            elif prev is None:
                first = self._instances(cur)[0]
                if first != cur:
                    ly.check(ly.xlib.lyd_insert_before(ly.xnode(first), ly.xnode(cur)),
                             self.ctx, "moving data")
                    self.changes.append(ChangeMoved(node_path(cur), None))
            prev_by_schema[key] = cur


def _has_ops(e: Any) -> bool:
    """Whether any descendant of ``e`` carries its own operation or insert metadata."""
    for c in siblings(lib.lyd_child(e)):
        if c.meta != ffi.NULL:
            return True
        if not (c.schema.nodetype & _TERM) and _has_ops(c):
            return True
    return False


def _keys(e: Any) -> int:
    if not e.schema.nodetype & lib.LYS_LIST:
        return 0
    n = 0
    for k in siblings(lib.lyd_child(e)):
        if not k.schema.flags & lib.LYS_KEY:
            break
        n += 1
    return n


def apply_edit(ctx: Any, tree: Tree, edit: Tree, default_operation: str = "merge") -> list[Change]:
    """Apply ``edit`` to ``tree`` in place; return the changes, in order.

    On error the working tree may be partly changed: callers apply edits to a
    copy (or discard the tree) to get all-or-nothing behaviour.
    """
    if default_operation not in ("merge", "replace", "none"):
        raise InvalidValue(f"invalid default-operation {default_operation!r}")
    ed = _Editor(ctx, tree)
    if default_operation == "replace":
        ed.replace_top(edit)
    for e in list(siblings(edit.first())):
        ed.process(e, ffi.NULL, default_operation)
    return ed.changes


def validation_deletes(ctx: Any, diff: Any) -> list[Change]:
    """Nodes libyang removed while validating (the other case of a choice, a node
    whose ``when`` turned false), from its validation diff, as changes."""
    ed = _Editor(ctx, Tree(ctx))
    _walk_diff(ed, diff)
    return ed.changes


def _walk_diff(ed: _Editor, node: Any) -> None:
    for n in siblings(node):
        op = get_meta(ed.ctx, n, "yang", "operation")
        if op == "delete":
            ed._record_subtree(n, created=False)
        elif op in (None, "none") and not n.schema.nodetype & _TERM:
            _walk_diff(ed, lib.lyd_child(n))
