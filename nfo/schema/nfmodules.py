"""The YANG modules of one NF (network function), in a libyang context of their own.

nfo configures a running NF over NETCONF with the NF's own modules, which a catalog
descriptor ships as text.  Those modules are not nfo's: they never join the served
:class:`~nfo.schema.Schema`, and two NFs may ship different revisions of one module.
:class:`NfModules` holds one such module set (with the IETF modules it imports) and
does what configuring the NF needs before any NETCONF call: it validates the day-1
template and day-2 data as complete configurations, merges them, and turns the
device's configuration and the desired one into the ``<edit-config>`` content that
makes one into the other, or into lines for a drift summary.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nfo.errors import InvalidValue, NfoError, OperationFailed
from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.context import ietf_dir, module_name_in, nfo_yang_dir
from nfo.schema.data import (
    Fmt,
    Parse,
    Tree,
    WithDefaults,
    check_chars,
    node_path,
    node_value,
    path_steps,
    siblings,
)
from nfo.schema.diff import Difference, diff_trees
from nfo.schema.edit import validate
from nfo.wire.xml import escape

__all__ = ["BAD_MODULE", "ModuleText", "NfModules", "render"]

BAD_MODULE = "nfo-bad-nf-module"
"""The error-app-tag of a module set libyang refuses."""

_CACHE_SIZE = 32
_TERM = lib.LYS_LEAF | lib.LYS_LEAFLIST
_MULTI = lib.LYS_LIST | lib.LYS_LEAFLIST
_VALUE_CHARS = 40


@dataclass(frozen=True)
class ModuleText:
    """One YANG module (or submodule) of an NF, as source text."""

    name: str
    text: str
    revision: str | None = None


class _Loader:
    """Serves the module set's texts to libyang's import callback, so modules import
    and include each other from memory in any order; anything else comes from the
    search directories."""

    def __init__(self, modules: Sequence[ModuleText]) -> None:
        self._texts = {m.name: ffi.new("char[]", m.text.encode()) for m in modules}
        self._revs = {m.name: m.revision for m in modules}
        self.clb = ly.xffi.callback("ly_module_imp_clb", self._serve,
                                    error=int(lib.LY_ENOTFOUND))

    def _serve(self, mod_name: Any, mod_rev: Any, submod_name: Any, submod_rev: Any,
               user_data: Any, fmt: Any, data: Any, free_data: Any) -> int:
        x = ly.xffi
        name = x.string(submod_name if submod_name != x.NULL else mod_name).decode()
        rev_p = submod_rev if submod_name != x.NULL else mod_rev
        text = self._texts.get(name)
        want = x.string(rev_p).decode() if rev_p != x.NULL else None
        if text is None or (want and self._revs[name] and self._revs[name] != want):
            return int(lib.LY_ENOTFOUND)
        fmt[0] = lib.LYS_IN_YANG
        data[0] = x.cast("const char *", ly.addr(text))
        return int(lib.LY_SUCCESS)


def _set_digest(modules: Sequence[ModuleText]) -> str:
    h = hashlib.sha256()
    for m in sorted(modules, key=lambda m: (m.name, m.revision or "")):
        for part in (m.name, m.revision or "", m.text):
            h.update(part.encode() + b"\0")
    return h.hexdigest()


def _implemented(ctx: Any) -> dict[str, str]:
    """Name -> namespace of every implemented module of a context."""
    out = {}
    idx = ffi.new("uint32_t *", 0)
    mod = lib.ly_ctx_get_module_iter(ctx, idx)
    while mod != ffi.NULL:
        if mod.implemented:
            out[ffi.string(mod.name).decode()] = ffi.string(mod.ns).decode()
        mod = lib.ly_ctx_get_module_iter(ctx, idx)
    return out


_NOISE = re.compile(r'^(Parsing module|Loading|Data model) "[^"]+"')
_PARSE_FAILED = re.compile(r'^Parsing module "([^"]+)" failed')


def _bad_module(name: str, ctx: Any, fallback: str, given: Sequence[str] = ()) -> InvalidValue:
    """libyang's recorded errors about loading ``name`` as one InvalidValue, naming the
    module of the set whose text failed (``name`` or one it imports)."""
    errs = ly.errors_of(ctx, clean=False)
    lib.ly_err_clean(ctx, ffi.NULL)
    failed = [m.group(1) for _, message, _, _ in errs
              if (m := _PARSE_FAILED.match(message)) and m.group(1) in given]
    echo = {f'"{name}"', *(f'"{f}"' for f in failed)}
    name = failed[0] if failed else name
    parts = []
    for _, message, raw, _ in errs:
        if _NOISE.match(message) and any(e in message for e in echo):
            continue  # libyang's own echo of the failure being reported
        where = ly.where_of(raw)
        text = f"{message} ({where})" if where else message
        if text and text not in parts:
            parts.append(text)
    detail = " ".join(parts[:4]) or fallback
    return InvalidValue(f"NF YANG module {name!r}: {detail}", app_tag=BAD_MODULE,
                        info={"module": name})


def _check_set(modules: Sequence[ModuleText]) -> None:
    if not modules:
        raise InvalidValue("an NF module set needs at least one YANG module",
                           app_tag=BAD_MODULE)
    seen: set[str] = set()
    for m in modules:
        if m.name in seen:
            raise InvalidValue(f"NF YANG module {m.name!r} is given twice", app_tag=BAD_MODULE,
                               info={"module": m.name})
        seen.add(m.name)
        found = module_name_in(m.text.encode())
        if found is None or found[0] != m.name or "\0" in m.text:
            said = ("it holds a NUL character" if "\0" in m.text
                    else "no module statement" if found is None
                    else f"it declares {found[0]!r}")
            raise InvalidValue(f"NF YANG module {m.name!r}: {said}", app_tag=BAD_MODULE,
                               info={"module": m.name})


class NfModules:
    """A libyang context holding only an NF's modules (plus the IETF modules they
    import), separate from nfo's own :class:`~nfo.schema.Schema`.

    Trees it returns belong to its context and keep it alive; free them (``Tree.free``
    or a ``with`` block) when done.  Use :meth:`cached` rather than :meth:`build`:
    compiling a module set costs milliseconds.
    """

    def __init__(self, cdata: Any, digest: str, namespaces: dict[str, str]) -> None:
        self.cdata = cdata
        self.digest = digest
        """Content digest of the module set (names, revisions, texts)."""
        self.namespaces = namespaces
        """Module name -> XML namespace, of the implemented modules of the set."""
        self.names = sorted(namespaces)
        self.caches: dict[str, Any] = {}
        """Per-context caches of the layer (:func:`nfo.schema.edit.apply_edit`'s names)."""
        self._nc = lib.ly_ctx_get_module_latest(cdata, b"ietf-netconf")
        self._yang = lib.ly_ctx_get_module_latest(cdata, b"yang")

    @classmethod
    def build(cls, modules: Sequence[ModuleText]) -> NfModules:
        """Compile a module set (every feature enabled); a module libyang refuses is an
        InvalidValue with app-tag ``nfo-bad-nf-module`` naming it."""
        _check_set(modules)
        ly.setup_logging()
        dirs = [d for d in (nfo_yang_dir() / "ietf", ietf_dir()) if d.is_dir()]
        out = ffi.new("struct ly_ctx **")
        opts = lib.LY_CTX_DISABLE_SEARCHDIR_CWD | lib.LY_CTX_NO_YANGLIBRARY
        if lib.ly_ctx_new(":".join(str(d) for d in dirs).encode(), opts, out) != lib.LY_SUCCESS:
            raise OperationFailed("could not create a libyang context")
        ctx = ffi.gc(out[0], lib.ly_ctx_destroy)
        before = _implemented(ctx)
        loader = _Loader(modules)
        ly.xlib.ly_ctx_set_module_imp_clb(ly.xnode(ctx), loader.clb, ly.xffi.NULL)
        star = ffi.new("char[]", b"*")
        features = ffi.new("char *[]", [star, ffi.NULL])
        try:
            for m in modules:
                if module_name_in(m.text.encode()) != (m.name, False):
                    continue  # a submodule: its module includes it
                rev = m.revision.encode() if m.revision else ffi.NULL
                if lib.ly_ctx_load_module(ctx, m.name.encode(), rev, features) == ffi.NULL:
                    raise _bad_module(m.name, ctx, "it does not compile",
                                      [t.name for t in modules])
        finally:
            ly.xlib.ly_ctx_set_module_imp_clb(ly.xnode(ctx), ly.xffi.NULL, ly.xffi.NULL)
        now = _implemented(ctx)
        namespaces = {n: ns for n, ns in now.items() if n not in before}
        # for nc:operation in the edits this set's data turns into
        if lib.ly_ctx_load_module(ctx, b"ietf-netconf", ffi.NULL, ffi.NULL) == ffi.NULL:
            raise _bad_module("ietf-netconf", ctx, "it cannot be loaded beside the set")
        return cls(ctx, _set_digest(modules), namespaces)

    @staticmethod
    def cached(modules: Sequence[ModuleText]) -> NfModules:
        """The compiled set for these texts: one per content digest, the least recently
        used dropped beyond a few dozen (its trees keep its context alive)."""
        key = _set_digest(modules)
        with _LOCK:
            found = _CACHE.get(key)
            if found is not None:
                _CACHE.move_to_end(key)
                return found
        built = NfModules.build(modules)
        with _LOCK:
            found = _CACHE.setdefault(key, built)
            _CACHE.move_to_end(key)
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        return found

    def _mine(self, *trees: Tree) -> None:
        """Refuse trees of another context (libyang would mix dictionaries)."""
        if any(t.ctx != self.cdata for t in trees):
            raise InvalidValue("a data tree of another module set was given to this NF's "
                               "module set")

    # -- data ----------------------------------------------------------------------
    def parse(self, text: str, fmt: str = "xml", *, what: str = "NF configuration",
              validate: bool = True) -> Tree:
        """A complete configuration of these modules (XML or RFC 7951 JSON; empty text is
        the empty configuration), strictly parsed (unknown and state nodes refused) and
        validated (must, leafref, mandatory, unique), defaults added.  ``validate=False``
        checks only the nodes and their values (for a device's configuration that breaks
        a constraint: it can still be compared and edited)."""
        if not text.strip():
            tree = Tree(self)
        else:
            try:
                tree = Tree.parse(self, text, fmt, mode=Parse.CONFIG, what=what)
            except NfoError as e:
                raise _about(e, what) from None
        if validate:
            self._validate(tree, what)
            return tree
        try:
            tree.add_defaults(config_only=True)
        except BaseException:
            tree.free()
            raise
        return tree

    def _validate(self, tree: Tree, what: str) -> None:
        try:
            validate(self, tree)
        except NfoError as e:
            tree.free()
            raise _about(e, what) from None

    def merged(self, base: Tree, overlay: Tree, *,
               what: str = "merged NF configuration") -> Tree:
        """A new tree: ``overlay`` merged onto ``base`` (its values win, its entries are
        added; its implicit defaults never replace a value of ``base``), validated."""
        self._mine(base, overlay)
        out = base.dup()
        try:
            out.merge(overlay.dup())
        except BaseException:
            out.free()
            raise
        self._validate(out, what)
        return out

    def print(self, tree: Tree, fmt: str = "xml", *, defaults: bool = False) -> str:
        """The configuration as text, implicit defaults left out unless ``defaults``."""
        self._mine(tree)
        return tree.print(fmt, with_defaults=WithDefaults.REPORT_ALL if defaults
                          else WithDefaults.EXPLICIT)

    def digest_of(self, tree: Tree) -> str:
        """A digest of the configuration in force: equal for trees that differ only in
        defaults (left implicit or set explicitly) or in the order of entries the
        system orders."""
        self._mine(tree)
        lines: list[str] = []
        _digest_lines(tree._first(), lines)
        return hashlib.sha256("\0".join(sorted(lines)).encode()).hexdigest()

    # -- from the device's configuration to the desired one ------------------------
    def edit(self, current: Tree, desired: Tree) -> str:
        """The ``<edit-config>`` content (XML, without ``<config>``) that turns
        ``current`` into ``desired`` and nothing else; "" when nothing differs.

        Created and changed nodes are merged; a removed node, or a leaf going back to an
        implicit default, carries ``nc:operation="delete"``.  An ordered-by-user list or
        leaf-list whose order a merge would not give is sent whole with its parent, which
        carries ``nc:operation="replace"``; at the top level, where there is no parent, its
        entries from the first place where the orders part carry ``yang:insert`` after
        their predecessor (docs/devices.md)."""
        self._mine(current, desired)
        diffs = diff_trees(current, desired, effective=True)
        if not diffs:
            return ""
        with Tree(self) as out:
            ordered: dict[tuple[int, int], Any] = {}
            for d in diffs:
                self._add(out, current, desired, d, ordered)
            replaced: list[str] = []
            for node in sorted(ordered.values(), key=lambda n: _depth(n)):
                self._reorder(out, current, desired, node, replaced)
            return self.print(out, Fmt.XML)

    def _add(self, out: Tree, current: Tree, desired: Tree, d: Difference,
             ordered: dict[tuple[int, int], Any]) -> None:
        want = desired._find(d.path) if d.operation != "delete" else ffi.NULL
        if d.operation == "delete" or (d.operation == "modify" and want.flags & lib.LYD_DEFAULT):
            _copy_into(out, current._find(d.path), whole=False, meta=(self._nc, "delete"))
            return
        if d.operation != "move":
            _copy_into(out, want, whole=d.operation == "create", flags=d.operation == "create")
        sch = want.schema
        if sch.nodetype & _MULTI and sch.flags & lib.LYS_ORDBY_USER:
            ordered.setdefault((ly.addr(want.parent), ly.addr(sch)), want)

    def _reorder(self, out: Tree, current: Tree, desired: Tree, node: Any,
                 replaced: list[str]) -> None:
        """Put ``node``'s ordered-by-user list or leaf-list (a node of the desired tree) in
        the desired order, where the deletes and appended creates of a merge would not:
        its parent replaced (servers differ in ``yang:insert`` on existing entries), or at
        the top level each entry from the first misplaced one inserted after its
        predecessor."""
        parent = ffi.cast("struct lyd_node *", node.parent)
        ppath = "" if parent == ffi.NULL else node_path(parent)
        if any(ppath == r or ppath.startswith(r + "/") for r in replaced):
            return  # a replaced ancestor carries the order already
        want = _instances(node)
        cur_parent = current._find(ppath) if ppath else ffi.NULL
        cur_first = (current._first() if not ppath else
                     lib.lyd_child(cur_parent) if cur_parent != ffi.NULL else ffi.NULL)
        had = [node_path(n) for n in siblings(cur_first) if n.schema == node.schema]
        wanted = [node_path(n) for n in want]
        kept, old = set(wanted), set(had)
        merged = [p for p in had if p in kept] + [p for p in wanted if p not in old]
        k = 0
        while k < len(wanted) and wanted[k] == merged[k]:
            k += 1
        if k == len(wanted):
            return
        if parent != ffi.NULL:
            self._replace(out, parent, ppath, replaced)
            return
        is_list = bool(node.schema.nodetype & lib.LYS_LIST)
        for i in range(k, len(want)):
            n, path = want[i], wanted[i]
            there = out._find(path)
            if there == ffi.NULL:
                _copy_into(out, n, whole=False)
                there = out._find(path)
            point = wanted[i - 1] if i else merged[0] if path in old else None
            where = "after" if i else "before" if point else "first"
            _set_meta(out.ctx, there, self._yang, "insert", where)
            if point is not None and is_list:
                step = path_steps(point, strict=False)[-1]
                _set_meta(out.ctx, there, self._yang, "key", step[step.index("["):])
            elif point is not None:
                _set_meta(out.ctx, there, self._yang, "value",
                          node_value(desired._find(point)) or "")
            last = _instances(there)[-1]
            if last != there:
                ly.check(ly.xlib.lyd_insert_after(ly.xnode(last), ly.xnode(there)), out.ctx,
                         "ordering an edit")

    def _replace(self, out: Tree, parent: Any, ppath: str, replaced: list[str]) -> None:
        """Send ``parent`` (a node of the desired tree) whole, replacing the device's."""
        there = out.node(ppath)
        if there is not None:
            out.remove(there)
        _copy_into(out, parent, whole=True, flags=True, meta=(self._nc, "replace"))
        replaced.append(ppath)

    def differences(self, current: Tree, desired: Tree, *, limit: int = 20) -> list[str]:
        """What separates the device's configuration from the desired one, one short line
        per difference ("missing PATH", "unexpected PATH", "modified PATH: 'a' -> 'b'",
        "out of order PATH"), at most ``limit`` of them and then "... and N more"."""
        self._mine(current, desired)
        lines = [_line(d) for d in diff_trees(current, desired, effective=True)]
        if len(lines) > limit:
            return [*lines[:limit], f"... and {len(lines) - limit} more"]
        return lines

    def filter_xml(self) -> str:
        """The content of a NETCONF subtree filter (without ``<filter>``) selecting the
        top-level configuration nodes of this set's modules, each in its namespace, so a
        ``<get-config>`` reads only their data; "" if they have none."""
        parts = []
        for name in self.names:
            mod = lib.ly_ctx_get_module_latest(self.cdata, name.encode())
            c = lib.lys_getnext(ffi.NULL, ffi.NULL, mod.compiled, 0)
            while c != ffi.NULL:
                if c.nodetype & (lib.LYS_CONTAINER | lib.LYS_LIST | _TERM | lib.LYS_ANYDATA
                                 | lib.LYS_ANYXML) and c.flags & lib.LYS_CONFIG_W:
                    tag = ffi.string(c.name).decode()
                    parts.append(f'<{tag} xmlns="{escape(self.namespaces[name])}"/>')
                c = lib.lys_getnext(c, ffi.NULL, mod.compiled, 0)
        return "".join(parts)


_CACHE: OrderedDict[str, NfModules] = OrderedDict()
_LOCK = threading.Lock()


def _about(e: NfoError, what: str) -> NfoError:
    """``e`` with ``what`` (whose data it was) before its message."""
    return type(e)(f"{what}: {e.message}", tag=e.tag, path=e.path, app_tag=e.app_tag,
                   error_type=e.error_type, info=e.info)


def _depth(node: Any) -> int:
    n = 0
    while node.parent != ffi.NULL:
        n += 1
        node = node.parent
    return n


def _instances(node: Any) -> list[Any]:
    return [s for s in siblings(lib.lyd_first_sibling(node)) if s.schema == node.schema]


def _copy_into(out: Tree, node: Any, *, whole: bool, flags: bool = False,
               meta: tuple[Any, str] | None = None) -> None:
    """Merge a copy of ``node`` (with its subtree if ``whole``; its list keys always)
    and its ancestors into ``out``; ``flags`` keeps default flags, so implicit defaults
    stay unprinted; ``meta``: (module, value) of an ``operation`` on the copy."""
    opts = lib.LYD_DUP_WITH_PARENTS | lib.LYD_DUP_NO_META
    if whole:
        opts |= lib.LYD_DUP_RECURSIVE
    if flags:
        opts |= lib.LYD_DUP_WITH_FLAGS
    dup = ffi.new("struct lyd_node **")
    ly.check(lib.lyd_dup_single(node, ffi.NULL, opts, dup), out.ctx, "copying data")
    if meta is not None:
        _set_meta(out.ctx, dup[0], meta[0], "operation", meta[1])
    top = dup[0]
    while top.parent != ffi.NULL:
        top = ffi.cast("struct lyd_node *", top.parent)
    out.merge(Tree(out.ctx, top))


def _set_meta(ctx: Any, node: Any, module: Any, name: str, value: str) -> None:
    ly.check(lib.lyd_new_meta(ctx, node, module, name.encode(), value.encode(), 0, ffi.NULL),
             ctx, f"annotating an edit with {name}")


def _digest_lines(first: Any, out: list[str]) -> None:
    for n in siblings(first):
        sch = n.schema
        if sch.nodetype & lib.LYS_CONTAINER and not sch.flags & lib.LYS_PRESENCE:
            _digest_lines(lib.lyd_child(n), out)
            continue
        if sch.nodetype & _TERM and ly.xlib.lyd_is_default(ly.xnode(n)):
            continue
        line = node_path(n)
        if sch.nodetype & lib.LYS_LEAF:
            line += "=" + (node_value(n) or "")
        if sch.nodetype & _MULTI and sch.flags & lib.LYS_ORDBY_USER:
            line += f"#{_instances(n).index(n)}"
        out.append(line)
        if not sch.nodetype & _TERM:
            _digest_lines(lib.lyd_child_no_keys(n), out)


def _short(value: str | None) -> str:
    v = value or ""
    return repr(v if len(v) <= _VALUE_CHARS else v[:_VALUE_CHARS] + "...")


def _line(d: Difference) -> str:
    if d.operation == "modify":
        return f"modified {d.path}: {_short(d.prev_value)} -> {_short(d.value)}"
    if d.operation == "move":
        return f"out of order {d.path}"
    word = "missing" if d.operation == "create" else "unexpected"
    value = d.value if d.operation == "create" else d.prev_value
    leaf = value is not None and not d.path.endswith("]")
    return f"{word} {d.path}" + (f": {_short(value)}" if leaf else "")


_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BARE = re.compile(r"\{param:([^{}\s\"]*)\}")
_JSON_LITERAL = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")


def render(template: str, fmt: str, params: Mapping[str, str]) -> str:
    """A configuration template with its ``{param:NAME}`` placeholders replaced by the
    parameters' values, escaped for ``fmt``: XML text or attribute escaping; in JSON,
    string escaping inside a string, and outside one a number or ``true``/``false`` as
    it is, anything else as a JSON string.  ``{{`` and ``}}`` are literal braces (in
    JSON inside strings only: braces of its structure are written once).  An unknown
    parameter or placeholder is an InvalidValue naming it."""

    def value(name: str) -> str:
        if name not in params:
            raise InvalidValue(f"the configuration template names parameter {name!r}, "
                               "which is not set", info={"parameter": name})
        v = str(params[name])
        check_chars(v, f"parameter {name!r}")
        return v

    def text(escape: Any) -> Any:
        def sub(m: re.Match[str]) -> str:
            token = m.group(0)
            if token in ("{{", "}}"):
                return token[0]
            name = m.group(1)
            if not name.startswith("param:"):
                raise InvalidValue(f"unknown placeholder {token} in the configuration "
                                   "template (write {{ and }} for literal braces)")
            return str(escape(value(name[len("param:"):])))
        return sub

    if fmt not in (Fmt.XML, Fmt.JSON):
        raise InvalidValue(f"unknown template encoding {fmt!r} (xml or json)")
    if fmt == Fmt.XML:
        return _TOKEN.sub(text(escape), template)

    def bare(m: re.Match[str]) -> str:
        v = value(m.group(1))
        return v if _JSON_LITERAL.fullmatch(v) else json.dumps(v, ensure_ascii=False)

    in_string = text(lambda v: json.dumps(v, ensure_ascii=False)[1:-1])
    out = []
    pos = 0
    for m in _JSON_STRING.finditer(template):
        out.append(_JSON_BARE.sub(bare, template[pos:m.start()]))
        out.append(_TOKEN.sub(in_string, m.group(0)))
        pos = m.end()
    out.append(_JSON_BARE.sub(bare, template[pos:]))
    return "".join(out)
