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
from collections.abc import Iterator
from typing import Any

from nfo.errors import DataExists, DataMissing, InvalidValue, NfoError
from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.changes import (
    Change,
    ChangeCreated,
    ChangeDeleted,
    ChangeModified,
    ChangeMoved,
    ChangeSet,
    Run,
)
from nfo.schema.data import (
    Tree,
    after_instances,
    find_sibling,
    get_meta,
    is_default,
    node_path,
    node_value,
    siblings,
)
from nfo.schema.hashes import PER_INSERT, Wear, children_bound, make_room
from nfo.schema.paths import quoted
from nfo.schema.snode import SNode

__all__ = [
    "OPERATIONS",
    "Names",
    "apply_edit",
    "child_path",
    "names_of",
    "used_runs",
    "validate",
    "validation_deletes",
]

OPERATIONS = ("merge", "replace", "create", "delete", "remove", "none")

_TERM = lib.LYS_LEAF | lib.LYS_LEAFLIST
_ANY = lib.LYS_ANYDATA | lib.LYS_ANYXML
_MULTI = lib.LYS_LIST | lib.LYS_LEAFLIST
_DEFAULT = lib.LYD_DEFAULT
_NULL = ffi.NULL
_string = ffi.string


class Names:
    """Path step names per (schema node, parent's module or None at the top level) and
    key leaf names, cached for one :class:`~nfo.schema.Schema` (its ``caches``), since
    the keys are pointers into that schema's compiled nodes."""

    __slots__ = ("keys", "nested", "steps")

    def __init__(self) -> None:
        self.steps: dict[tuple[Any, Any], str] = {}
        self.keys: dict[Any, str] = {}
        self.nested: dict[Any, bool] = {}
        """Per list schema: whether a list or leaf-list lies below it."""


def names_of(schema: Any) -> Names:
    """The step-name cache of a :class:`~nfo.schema.Schema`."""
    names = schema.caches.get("edit.names")
    if names is None:
        names = schema.caches["edit.names"] = Names()
    assert isinstance(names, Names)
    return names
_PREFIX_IN_PRED = re.compile(r"\[[\w.-]+:")


def _xp(p: Any) -> Any:
    return ly.fromx(p)


def _one_key(k: Any) -> bool:
    """Whether ``k``, a list entry's first child, is its only key."""
    ks = k.schema
    if ks == _NULL or not ks.flags & lib.LYS_KEY:
        return False
    nxt = k.next
    return bool(nxt == _NULL or nxt.schema == _NULL or not nxt.schema.flags & lib.LYS_KEY)


def _step(n: Any, sch: Any, pmod: Any, names: Names, new: bool = False) -> str | None:
    """The last step of ``lyd_path(n, LYD_PATH_STD)``, built without asking libyang.

    ``pmod`` is the module of ``n``'s parent (None for a top-level node): the step
    carries a module prefix when the two differ.  Lists get one ``[key='value']``
    predicate per key child, leaf-lists of configuration ``[.='value']``; a value
    containing ``'`` is quoted with ``"`` (libyang's rule, verbatim even when the
    value holds both).  None where libyang prints a positional predicate (keyless
    lists, state leaf-lists): the caller then asks libyang.  ``new``: the node is being
    created, and a value holding both quotes is refused (see :func:`_check_addressable`).
    """
    key = (sch, pmod)
    name = names.steps.get(key)
    if name is None:
        name = _string(sch.name).decode()
        if pmod is None or sch.module != pmod:
            name = _string(sch.module.name).decode() + ":" + name
        names.steps[key] = name
    nt = sch.nodetype
    if not nt & _MULTI:
        return name
    if nt & lib.LYS_LIST:
        if sch.flags & lib.LYS_KEYLESS:
            return None
        parts = [name]
        k = lib.lyd_child(n)
        while k != _NULL:
            ks = k.schema
            if ks == _NULL or not ks.flags & lib.LYS_KEY:
                break
            kname = names.keys.get(ks)
            if kname is None:
                kname = names.keys[ks] = _string(ks.name).decode()
            v = _string(lib.lyd_get_value(k)).decode()
            if new and "'" in v and '"' in v:
                _check_quotes(k, n)
            parts.append(f"[{kname}={quoted(v)}]")
            k = k.next
        return "".join(parts)
    if not sch.flags & lib.LYS_CONFIG_W:
        return None
    v = _string(lib.lyd_get_value(n)).decode()
    if new and "'" in v and '"' in v:
        _check_quotes(n, n)
    return f"{name}[.={quoted(v)}]"


def _check_addressable(n: Any, sch: Any) -> None:
    """Refuse to create a list entry whose key, or a leaf-list entry whose value, holds
    both quote characters: no path (libyang's, RESTCONF's, an instance-identifier)
    could name it afterwards."""
    if sch.nodetype & lib.LYS_LIST:
        k = lib.lyd_child(n)
        while k != _NULL and k.schema != _NULL and k.schema.flags & lib.LYS_KEY:
            _check_quotes(k, n)
            k = k.next
    elif sch.nodetype & lib.LYS_LEAFLIST:
        _check_quotes(n, n)


def _check_quotes(n: Any, entry: Any) -> None:
    v = lib.lyd_get_value(n)
    if v == _NULL:
        return
    text = _string(v).decode()
    if "'" in text and '"' in text:
        holder = entry.parent
        raise InvalidValue(
            f"{_string(n.schema.name).decode()} {text!r} holds both ' and \", so no path "
            "could address the entry: use at most one kind of quote",
            path=None if holder == _NULL else node_path(ffi.cast("struct lyd_node *", holder)))


def child_path(ppath: str, n: Any, names: Names) -> str:
    """``lyd_path(n)`` given the path of ``n``'s parent ("" at the top level)."""
    p = n.parent
    step = _step(n, n.schema, None if p == _NULL else p.schema.module, names)
    return node_path(n) if step is None else ppath + "/" + step


def _nested_multi(sch: Any, names: Names) -> bool:
    """Whether a list or leaf-list lies anywhere below the list schema ``sch``."""
    found = names.nested.get(sch)
    if found is None:
        found = False
        stack = [sch]
        while stack and not found:
            parent = stack.pop()
            c = lib.lys_getnext(ffi.NULL, parent, ffi.NULL, 0)
            while c != _NULL:
                if c.nodetype & _MULTI:
                    found = True
                    break
                if c.nodetype & lib.LYS_CONTAINER:
                    stack.append(c)
                c = lib.lys_getnext(c, parent, ffi.NULL, 0)
        names.nested[sch] = found
    return found


_RUN_OPS = ("merge", "create", "replace")


class _Editor:
    def __init__(self, ctx: Any, tree: Tree, names: Names, bulk: bool = False,
                 plain: bool = False) -> None:
        self.ctx = ctx
        self.tree = tree
        self.names = names
        self.changes = ChangeSet()
        self.bulk = bulk
        """Create runs of plain new list entries at once (see :meth:`_run`)."""
        self.plain = plain
        """The edit is known to carry no metadata and no apostrophe in any value
        (:attr:`Tree.plain`): every entry is plain, none needs looking into."""
        self._runs: dict[tuple[int, int], list[Run]] = {}
        self._seen: set[str] = set()
        self._out = ffi.new("struct lyd_node **")
        self._xout = ly.xffi.new("void **")
        self.wear = Wear()

    # -- lookups -----------------------------------------------------------
    def _first_child(self, parent: Any) -> Any:
        return self.tree._first() if parent == ffi.NULL else lib.lyd_child(parent)

    def _find(self, parent: Any, e: Any) -> Any:
        first = self.tree._first() if parent == _NULL else lib.lyd_child(parent)
        return find_sibling(first, e, self._xout)

    def _parent_path(self, parent: Any) -> str:
        return "" if parent == _NULL else node_path(parent)

    # -- recording ---------------------------------------------------------
    def _record_subtree(self, node: Any, created: bool, path: str | None = None) -> None:
        """One change per node of a created or deleted subtree, parents first.

        This runs for every node of a bulk edit, so it is written for speed: leaves are
        recorded inline (only inner nodes recurse), child paths are built from the
        parent's (:func:`_step`), names cached per schema.
        """
        if not created and node.flags & _DEFAULT:
            return
        self._record(node, path or node_path(node), ChangeCreated if created else ChangeDeleted,
                     created, self.changes)

    def _record(self, n: Any, p: str, cls: Any, created: bool,
                out: ChangeSet | list[Change]) -> None:
        sch = n.schema
        null = _NULL
        if sch.nodetype & _TERM:
            v = lib.lyd_get_value(n)
            out.append(cls(p, _string(v).decode() if v != null else None))
            return
        out.append(cls(p, None))
        names = self.names.steps
        get_value = lib.lyd_get_value
        mod = sch.module
        c = lib.lyd_child(n)
        while c != null:
            if created or not c.flags & _DEFAULT:
                cs = c.schema
                nt = cs.nodetype
                if nt & _MULTI:
                    step = _step(c, cs, mod, self.names, created)
                    cp = node_path(c) if step is None else p + "/" + step
                else:
                    key = (cs, mod)
                    name = names.get(key)
                    if name is None:
                        name = _string(cs.name).decode()
                        if cs.module != mod:
                            name = _string(cs.module.name).decode() + ":" + name
                        names[key] = name
                    cp = p + "/" + name
                if nt & _TERM:
                    v = get_value(c)
                    out.append(cls(cp, _string(v).decode() if v != null else None))
                else:
                    self._record(c, cp, cls, created, out)
            c = c.next

    # -- mutations ---------------------------------------------------------
    def _insert(self, parent: Any, node: Any) -> None:
        if parent != ffi.NULL:
            make_room(self.ctx, parent)
            if lib.lyd_insert_child(parent, node) != lib.LY_SUCCESS:
                ly.raise_last(self.ctx, "inserting data")
            return
        first = self.tree._first()
        if first == ffi.NULL:
            self.tree._root = node
            return
        out = self._xout
        ly.check(ly.xlib.lyd_insert_sibling(first, node, out), self.ctx, "inserting data")
        self.tree._root = ffi.cast("struct lyd_node *", out[0])

    def _unlink_free(self, t: Any) -> None:
        self.wear.removing(t)
        if t.parent == ffi.NULL and t == self.tree._first():
            self.tree._root = t.next
        lib.lyd_free_tree(t)

    def _delete(self, t: Any, path: str | None = None) -> None:
        self._record_subtree(t, created=False, path=path)
        self._unlink_free(t)

    def _dup(self, e: Any, recursive: bool) -> Any:
        out = self._out
        opts = lib.LYD_DUP_NO_META | (lib.LYD_DUP_RECURSIVE if recursive else 0)
        if lib.lyd_dup_single(e, ffi.NULL, opts, out) != lib.LY_SUCCESS:
            ly.raise_last(self.ctx, "copying edit data")
        return out[0]

    def _create(self, e: Any, parent: Any, recursive: bool = True,
                path: str | None = None, provisional: bool = False) -> Any:
        """Copy ``e`` under ``parent``; ``path``, when given, is the new node's lyd_path.
        ``provisional``: created only to hold its children's edits, and checked by the
        caller if it stays."""
        if e.schema.nodetype & _MULTI and not provisional:
            _check_addressable(e, e.schema)
        node = self._dup(e, recursive)
        self._insert(parent, node)
        if node.schema.flags & lib.LYS_ORDBY_USER:
            self._position(node, e, created=True)
        if recursive:
            self._record_subtree(node, created=True, path=path)
        else:
            if path is None:
                path = node_path(node)
            self.changes.append(ChangeCreated(path, node_value(node)))
            if node.schema.nodetype & lib.LYS_LIST:
                mod = node.schema.module
                for k in siblings(lib.lyd_child(node)):
                    if not k.schema.flags & lib.LYS_KEY:
                        break
                    step = _step(k, k.schema, mod, self.names)
                    self.changes.append(ChangeCreated(f"{path}/{step}", node_value(k)))
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
            self.tree._root = lib.lyd_first_sibling(t)
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
    def process(self, e: Any, parent: Any, inherited: str, ppath: str | None = None) -> None:
        """Apply edit node ``e`` under ``parent`` of the working tree (NULL: the top).

        ``ppath`` is ``parent``'s data path ("" at the top; None: not known yet).  The
        edit node and its target share their path (same names, same key values), so
        one string serves the duplicate check and the change records.
        """
        sch = e.schema
        nt = sch.nodetype
        op = (inherited if e.meta == _NULL
              else get_meta(self.ctx, e, "ietf-netconf", "operation") or inherited)
        if ppath is None:
            ppath = self._parent_path(parent)
        p = e.parent
        step = _step(e, sch, None if p == _NULL else p.schema.module, self.names)
        where = None if step is None else ppath + "/" + step
        if nt & _MULTI:
            seen = node_path(e) if where is None else where
            if self._runs:
                self._seen_runs(parent, sch)
            if seen in self._seen:
                raise DataExists("the edit names this entry twice", path=seen)
            self._seen.add(seen)
        if op not in OPERATIONS:
            raise InvalidValue(f"unknown operation {op!r}", tag="bad-attribute")
        t = self._find(parent, e)
        is_term = bool(nt & _TERM)
        dflt = t != _NULL and is_term and bool(t.flags & _DEFAULT)
        present = t != _NULL and not dflt
        if is_term and e.flags & _DEFAULT and op in ("merge", "replace", "none"):
            # an implicit default in a validated source (copy-config, rollback): the
            # target needs no explicit value; validation adds the default back
            if present and op == "replace":
                self._delete(t, where)
            return
        if op in ("delete", "remove"):
            if not present:
                if op == "delete":
                    raise DataMissing("the data to delete does not exist", path=node_path(e))
                return
            self._delete(t, where)
            return
        if op == "create" and present and not (
                e.schema.nodetype & lib.LYS_CONTAINER and is_default(t)):
            raise DataExists("the data to create already exists", path=node_path(e))
        if dflt:
            self._unlink_free(t)
            t, present = ffi.NULL, False
        if op == "none" and t == ffi.NULL and is_term:
            return
        if op in ("create", "replace", "merge") and t == ffi.NULL and (
                self.plain or not _has_ops(e)):
            if self.bulk and where is not None and _plain_container(e):
                # its lists' entries may be runs (the same changes, in the same order)
                t = self._create(e, parent, recursive=False, path=where)
                self._children(e, t, op, where)
                return
            self._create(e, parent, path=where)
            return
        if nt & _ANY:
            # its content is its value (no children to merge): a different one replaces it
            if op != "none" and ly.xlib.lyd_compare_single(
                    ly.xnode(t), ly.xnode(e), 0) != lib.LY_SUCCESS:
                self._delete(t, where)
                self._create(e, parent, path=where)
            return
        if is_term:
            if nt & lib.LYS_LEAF and op != "none":
                self._set_leaf(t, e, where)
            elif op != "none":
                self._position(t, e, created=False)
            return
        if t == ffi.NULL:
            mark = self.changes.mark()
            t = self._create(e, parent, recursive=False, path=where, provisional=op == "none")
            self._children(e, t, op, where)
            if op == "none":
                if self.changes.since(mark) == 1 + _keys(e):
                    self.changes.truncate(mark)
                    self._unlink_free(t)
                elif e.schema.nodetype & _MULTI:
                    _check_addressable(e, e.schema)
            return
        if op == "replace":
            self._replace_children(t, e, where)
        else:
            self._children(e, t, op, where)
        if op != "none":
            self._position(t, e, created=False)

    def replace_top(self, edit: Tree) -> None:
        """default-operation replace: top-level data absent from the edit goes."""
        efirst = edit._first()
        for c in list(siblings(self.tree._first())):
            if is_default(c):
                continue
            if find_sibling(efirst, c) == ffi.NULL:
                self._delete(c)

    def _children(self, e: Any, t: Any, op: str, tpath: str | None = None) -> None:
        process = self.process
        runs = self.bulk and op in _RUN_OPS and tpath is not None
        c = lib.lyd_child_no_keys(e)
        while c != _NULL:
            if runs and c.meta == _NULL and c.schema.nodetype & lib.LYS_LIST:
                assert tpath is not None
                after = self._run(c, t, tpath)
                if after is not None:
                    c = after
                    continue
            nxt = c.next
            process(c, t, op, tpath)
            c = nxt

    # -- bulk creation ------------------------------------------------------
    def _run(self, first: Any, t: Any, tpath: str) -> Any:
        """Create, at once, the entries of one list that start at edit node ``first``
        (under target ``t``, whose path is ``tpath``) when every one of them is plain
        (no metadata inside) and absent from ``t``; record them as one :class:`Run`.
        Returns the edit node after them, or None (nothing done: the caller processes
        them one by one, as does everything that is not such a run).

        A run ends at the first entry that is not plain or exists already (the caller
        processes that one, and may start another run after it).  Two entries of one
        run with the same keys are left to validation, which refuses the duplicate;
        the transaction then applies the edit again without runs for the error it has
        always given.  An entry processed later that duplicates one of a run is caught
        as always (:meth:`_seen_runs`)."""
        sch = first.schema
        if sch.flags & (lib.LYS_KEYLESS | lib.LYS_ORDBY_USER) or (
                not self.plain and _nested_multi(sch, self.names)):
            # a run's changes are built late: a nested key that no path could name
            # must be refused now, which a plain edit (no apostrophe) rules out
            return None
        tfirst = lib.lyd_child(t)
        out = self._xout
        has = tfirst != _NULL and ly.xlib.lyd_find_sibling_val(
            tfirst, sch, ly.xffi.NULL, 0, out) == lib.LY_SUCCESS
        n = first
        count = 0
        eparent = ffi.cast("struct lyd_node *", first.parent)
        end = after_instances(eparent, sch, out) if self.plain and not has else None
        if end is not None:
            # every instance is in the run, up to ``end`` (the edit is in schema order)
            n = end
            make_room(self.ctx, t, PER_INSERT * children_bound(eparent))
        else:
            plain = self.plain
            while n != _NULL and n.schema == sch and (plain or self._plain(n, sch)):
                if has and find_sibling(tfirst, n, out) != _NULL:
                    break
                count += 1
                n = n.next
            if not count:
                return None
            make_room(self.ctx, t, PER_INSERT * count)
        dup = self._out
        opts = lib.LYD_DUP_NO_META | lib.LYD_DUP_RECURSIVE
        if n == _NULL:
            rc = lib.lyd_dup_siblings(first, ffi.cast("struct lyd_node_inner *", t), opts, dup)
            if rc != lib.LY_SUCCESS:
                ly.raise_last(self.ctx, "copying edit data")
        else:
            x = first
            while x != n:
                if lib.lyd_dup_single(x, ffi.cast("struct lyd_node_inner *", t), opts,
                                      dup) != lib.LY_SUCCESS:
                    ly.raise_last(self.ctx, "copying edit data")
                x = x.next
        run = self._make_run(first, n, count or None, t, tpath)
        self.changes.append(run)
        self._runs.setdefault((ly.addr(t), ly.addr(sch)), []).append(run)
        return n

    @staticmethod
    def _plain(n: Any, sch: Any) -> bool:
        """Whether list entry ``n`` carries no metadata, nor anything below it; refuses
        keys no path could name (see :func:`_check_addressable`)."""
        if n.meta != _NULL:
            return False
        k = lib.lyd_child(n)
        while k != _NULL:
            if k.meta != _NULL:
                return False
            ks = k.schema
            if ks.flags & lib.LYS_KEY:
                v = _string(lib.lyd_get_value(k))
                if b"'" in v and b'"' in v:
                    _check_addressable(n, sch)
            elif not ks.nodetype & _TERM and _has_ops(k):
                return False
            k = k.next
        return True

    def _make_run(self, first: Any, end: Any, count: int | None, t: Any, tpath: str) -> Run:
        """The run of the edit's entries from ``first`` up to ``end`` (NULL: the last);
        ``count``: how many (None: counted if asked)."""
        pmod = t.schema.module
        names = self.names

        def nodes() -> Iterator[Any]:
            x = first
            while x != end:
                yield x
                x = x.next

        def entries() -> Iterator[tuple[Any, str]]:
            for x in nodes():
                step = _step(x, x.schema, pmod, names)
                yield x, (node_path(x) if step is None else tpath + "/" + step)

        def build() -> list[Change]:
            out: list[Change] = []
            for x, path in entries():
                self._record(x, path, ChangeCreated, True, out)
            return out

        def heads() -> list[str]:
            k = lib.lyd_child(first)
            if k == _NULL or not _one_key(k):
                return [path for _, path in entries()]
            # one key, the entry's first child: every head is the same step but its value
            step = _step(first, first.schema, pmod, names)
            assert step is not None
            head = f"{tpath}/{step[:step.index('=') + 1]}"
            out: list[str] = []
            for x in nodes():
                v = _string(lib.lyd_get_value(lib.lyd_child(x))).decode()
                out.append(f"{head}{quoted(v)}]")
            return out

        return Run(tpath[1:].split("/", 1)[0].split(":", 1)[0], tpath,
                   count if count is not None else lambda: sum(1 for _ in nodes()), build,
                   heads)

    def _seen_runs(self, parent: Any, sch: Any) -> None:
        """Before an entry is looked up where runs created entries of its list, those
        entries count as named by the edit (the duplicate check)."""
        runs = self._runs.pop((ly.addr(parent), ly.addr(sch)), None) if parent != _NULL else None
        for run in runs or ():
            self._seen.update(run.heads())

    def _set_leaf(self, t: Any, e: Any, path: str | None = None) -> None:
        new = node_value(e)
        old = node_value(t)
        if new == old or new is None or old is None:
            return
        rc = ly.xlib.lyd_change_term(ly.xnode(t), new.encode())
        if rc not in (lib.LY_SUCCESS, lib.LY_EEXIST, lib.LY_ENOT):
            ly.raise_last(self.ctx, "changing a value")
        self.changes.append(ChangeModified(node_path(t) if path is None else path, new, old))

    def _replace_children(self, t: Any, e: Any, tpath: str | None = None) -> None:
        echild = lib.lyd_child_no_keys(e)
        for c in list(siblings(lib.lyd_child_no_keys(t))):
            if is_default(c):
                continue
            if find_sibling(echild, c) == ffi.NULL:
                self._delete(c, None if tpath is None else child_path(tpath, c, self.names))
        self._children(e, t, "replace", tpath)
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
    c = lib.lyd_child(e)
    while c != _NULL:
        if c.meta != _NULL:
            return True
        if not (c.schema.nodetype & _TERM) and _has_ops(c):
            return True
        c = c.next
    return False


def _plain_container(e: Any) -> bool:
    """Whether ``e`` is a container whose leaves (its containers' too) hold no implicit
    default (a validated source's: created whole, they would become explicit)."""
    if not e.schema.nodetype & lib.LYS_CONTAINER:
        return False
    c = lib.lyd_child(e)
    while c != _NULL:
        nt = c.schema.nodetype
        if (nt & _TERM and c.flags & _DEFAULT) or (nt & lib.LYS_CONTAINER
                                                   and not _plain_container(c)):
            return False
        c = c.next
    return True


def _keys(e: Any) -> int:
    if not e.schema.nodetype & lib.LYS_LIST:
        return 0
    n = 0
    for k in siblings(lib.lyd_child(e)):
        if not k.schema.flags & lib.LYS_KEY:
            break
        n += 1
    return n


def apply_edit(schema: Any, tree: Tree, edit: Tree, default_operation: str = "merge", *,
               bulk: bool = False, into: ChangeSet | None = None) -> ChangeSet:
    """Apply ``edit`` to ``tree`` in place; return the changes, in order.

    On error the working tree may be partly changed: callers apply edits to a
    copy (or discard the tree) to get all-or-nothing behaviour.  ``bulk``: plain new
    list entries are created a run at a time and their changes built only when asked
    for (valid while ``edit`` is); an entry named twice is then left to validation,
    so an error after a bulk apply is the first apply's to explain (see
    :func:`used_runs`).  ``into``: the changes are added there (and returned), so a
    caller sees the runs made before an error too.
    """
    if default_operation not in ("merge", "replace", "none"):
        raise InvalidValue(f"invalid default-operation {default_operation!r}")
    ed = _Editor(schema.cdata, tree, names_of(schema), bulk, edit.plain)
    if into is not None:
        ed.changes = into
    if default_operation == "replace":
        ed.replace_top(edit)
    for e in list(siblings(edit._first())):
        ed.process(e, ffi.NULL, default_operation, "")
    ed.wear.settle(ed.ctx)
    return ed.changes


def used_runs(changes: ChangeSet) -> bool:
    """Whether a bulk :func:`apply_edit` created runs (see its ``bulk``)."""
    return any(isinstance(i, Run) for i in changes.items())


def validation_deletes(schema: Any, diff: Any) -> list[Change]:
    """Nodes libyang removed while validating (the other case of a choice, a node
    whose ``when`` turned false), from its validation diff, as changes."""
    ed = _Editor(schema.cdata, Tree(schema.cdata), names_of(schema))
    tops = schema.autodeleting_tops()
    for top in siblings(diff):
        if SNode(top.schema).path in tops:
            _walk_one(ed, top)
    return ed.changes.materialize()


def _walk_diff(ed: _Editor, node: Any) -> None:
    for n in siblings(node):
        _walk_one(ed, n)


def _walk_one(ed: _Editor, n: Any) -> None:
    op = get_meta(ed.ctx, n, "yang", "operation")
    if op == "delete":
        ed._record_subtree(n, created=False)
    elif op in (None, "none") and not n.schema.nodetype & _TERM:
        _walk_diff(ed, lib.lyd_child(n))


def validate(schema: Any, tree: Tree, changes: ChangeSet | None = None) -> None:
    """Validate a configuration tree in place (libyang: must, when, leafref, unique,
    mandatory, min/max-elements; defaults added).  With ``changes`` (what an edit did),
    append what validation itself removed (the other case of a choice, a node whose
    ``when`` turned false)."""
    ctx = schema.cdata
    holder = ffi.new("struct lyd_node **", tree._first())
    diff = (ffi.new("struct lyd_node **")
            if changes is not None and _diff_needed(schema, changes) else ffi.NULL)
    rc = lib.lyd_validate_all(holder, ctx, lib.LYD_VALIDATE_NO_STATE, diff)
    tree._root = holder[0]
    if diff != ffi.NULL and diff[0] != ffi.NULL:
        try:
            if rc == lib.LY_SUCCESS and changes is not None:
                _fold_deletes(changes, validation_deletes(schema, diff[0]))
        finally:
            lib.lyd_free_all(diff[0])
    ly.check(rc, ctx, "validating data")


def _diff_needed(schema: Any, changes: ChangeSet) -> bool:
    """Whether validation may remove a node after ``changes``: one of them is under a
    top where it can, or under a top a ``when`` reads.  Otherwise libyang's diff
    (which costs as much as the validation, one node per default it adds) is not
    asked for."""
    triggers = schema.autodelete_triggers()
    if triggers is None:
        return True
    if not triggers:
        return False
    heads = tuple(t + c for t in triggers for c in "/[")
    for item in changes.items():
        p = item.parent if isinstance(item, Run) else item.path
        if p in triggers or p.startswith(heads):
            return True
    return False


def _fold_deletes(changes: ChangeSet, deletes: list[Change]) -> None:
    """Add what validation removed; a node this same edit created and validation then
    removed (both cases of a choice given) was never there, so neither is reported."""
    if not deletes:
        return
    flat = changes.materialize()
    gone = {c.path for c in deletes}

    def under(path: str) -> str | None:
        for g in gone:
            if path == g or path.startswith(g + "/"):
                return g
        return None
    created_then_gone = {g for c in flat if isinstance(c, ChangeCreated)
                         and (g := under(c.path)) is not None and g == c.path}
    kept = [c for c in flat if not (isinstance(c, ChangeCreated | ChangeModified)
                                    and under(c.path) is not None)]
    changes.replace(kept + [c for c in deletes if under(c.path) not in created_then_gone])
