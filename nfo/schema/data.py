"""Data trees and their codecs (XML and RFC 7951 JSON), on raw libyang nodes.

A :class:`Tree` owns a top-level sibling list of libyang data nodes and frees
it explicitly (libyang trees are not garbage-collected).  Parsing and printing
go through libyang only; nfo never encodes YANG data by hand.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from nfo.errors import InvalidValue, MalformedMessage, NfoError
from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.dnode import Node
from nfo.schema.hashes import PER_INSERT, make_room
from nfo.schema.snode import NOT_YANG_CHAR, SNode

__all__ = [
    "Fmt",
    "Parse",
    "Tree",
    "WithDefaults",
    "after_instances",
    "check_chars",
    "children",
    "find_sibling",
    "get_meta",
    "is_default",
    "json_text",
    "node_module",
    "node_name",
    "node_path",
    "node_value",
    "parse_data",
    "parse_op",
    "path_steps",
    "plain_text",
    "print_node",
    "print_nodes",
    "rfc6243_xml",
    "siblings",
]


class Fmt(StrEnum):
    JSON = "json"
    XML = "xml"

    @property
    def ly(self) -> int:
        return int(lib.LYD_JSON if self is Fmt.JSON else lib.LYD_XML)


class WithDefaults(StrEnum):
    """RFC 6243 with-defaults retrieval modes."""

    EXPLICIT = "explicit"
    TRIM = "trim"
    REPORT_ALL = "report-all"
    REPORT_ALL_TAGGED = "report-all-tagged"

    @property
    def ly(self) -> int:
        return _WD_FLAGS[self]


_WD_FLAGS = {
    WithDefaults.EXPLICIT: int(lib.LYD_PRINT_WD_EXPLICIT),
    WithDefaults.TRIM: int(lib.LYD_PRINT_WD_TRIM),
    WithDefaults.REPORT_ALL: int(lib.LYD_PRINT_WD_ALL),
    WithDefaults.REPORT_ALL_TAGGED: int(lib.LYD_PRINT_WD_ALL_TAG),
}


_PARSE_WHEN_TRUE = 0x800000
_PARSE_NO_NEW = 0x1000000
"""libyang 2.1's ``LYD_PARSE_WHEN_TRUE`` and ``LYD_PARSE_NO_NEW`` (not in the bindings)."""


class Parse(StrEnum):
    """How a text becomes a tree (never validated here: the datastore validates)."""

    CONFIG = "config"
    """Configuration, or an edit of it: state nodes refused, edit metadata kept."""
    DATA = "data"
    """Configuration and state (operational data)."""
    VALIDATED = "validated"
    """Configuration libyang printed from a tree it had validated, under the same
    schema: its nodes are marked valid (as validation leaves them: a later edit's
    nodes then replace a choice's other case, and nodes under a ``when`` go when it
    turns false) and read in the order printed."""

    @property
    def ly(self) -> int:
        opts = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT
        if self is Parse.DATA:
            return int(opts)
        opts |= lib.LYD_PARSE_NO_STATE
        if self is Parse.VALIDATED:
            opts |= lib.LYD_PARSE_ORDERED | _PARSE_WHEN_TRUE | _PARSE_NO_NEW
        return int(opts)


def _ctx(schema: Any) -> Any:
    """The libyang context of a :class:`~nfo.schema.Schema` (or a context itself)."""
    return getattr(schema, "cdata", schema)


def _fmt(fmt: Fmt | str) -> Fmt:
    if fmt.__class__ is Fmt:
        return fmt
    try:
        return Fmt(fmt)
    except ValueError:
        raise MalformedMessage(f"unknown data encoding {fmt!r}") from None


@contextmanager
def _ly_input(ctx: Any, raw: bytes, what: str) -> Iterator[Any]:
    """A libyang input handle over ``raw``, freed when the block ends."""
    buf = ffi.new("char[]", raw)
    inp = ffi.new("struct ly_in **")
    ly.check(lib.ly_in_new_memory(buf, inp), ctx, what)
    try:
        yield inp[0]
    finally:
        lib.ly_in_free(inp[0], 0)


_ESCAPE = re.compile(rb"\\(?:u([dD][89a-fA-F][0-9a-fA-F]{2})"
                     rb"(?:\\u([dD][c-fC-F][0-9a-fA-F]{2}))?|.)", re.DOTALL)
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _pair(m: re.Match[bytes]) -> bytes:
    high, low = m.group(1), m.group(2)
    if high is None:
        return m.group(0)
    if low is None or int(high, 16) >= 0xDC00:
        raise MalformedMessage("malformed JSON: a \\u escape of a lone UTF-16 surrogate")
    return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00).encode()


def json_text(body: bytes) -> bytes:
    """``body`` with each UTF-16 surrogate pair escape (``\\ud83d\\ude80``, valid JSON
    that libyang refuses) written as the character itself; a lone surrogate escape is
    malformed."""
    if _SURROGATE.search(body) is None:
        return body
    return _ESCAPE.sub(_pair, body)


def _raw(text: str | bytes, fmt: Fmt | str) -> bytes:
    """The text as bytes, JSON with its surrogate pairs written out (:func:`json_text`)."""
    raw = text.encode() if isinstance(text, str) else text
    return json_text(raw) if _fmt(fmt) is Fmt.JSON else raw


def _checked(text: str | bytes, fmt: Fmt | str) -> bytes:
    """The text as bytes; JSON is checked first, since libyang 2.1 accepts truncated JSON
    and ignores trailing text."""
    raw = _raw(text, fmt)
    if _fmt(fmt) is Fmt.JSON:
        try:
            json.loads(raw)
        except ValueError as e:
            raise MalformedMessage(f"malformed JSON: {e}") from None
    return raw


def parse_data(
    ctx: Any,
    text: str | bytes,
    fmt: Fmt | str,
    *,
    parse_opts: int,
    validate_opts: int = 0,
    what: str = "parsing data",
    trusted: bool = False,
) -> Any:
    """Parse ``text`` into a new top-level sibling list (NULL for empty data);
    ``trusted``: JSON libyang printed itself (not checked for truncation first)."""
    raw = _raw(text, fmt) if trusted else _checked(text, fmt)
    return _parse_raw(ctx, raw, fmt, parse_opts, validate_opts, what)


def _parse_raw(ctx: Any, raw: bytes, fmt: Fmt | str, parse_opts: int, validate_opts: int,
               what: str) -> Any:
    out = ffi.new("struct lyd_node **")
    with _ly_input(ctx, raw, what) as inp:
        rc = lib.lyd_parse_data(ctx, ffi.NULL, inp, _fmt(fmt).ly, parse_opts, validate_opts, out)
    if rc != lib.LY_SUCCESS:
        if out[0] != ffi.NULL:
            lib.lyd_free_all(out[0])
        try:
            ly.raise_last(ctx, what)
        except InvalidValue as e:
            raise _bad_attribute(e, raw, _fmt(fmt)) or e from None
    return out[0]


_XMLNS_DECL = re.compile(rb'xmlns(?::[\w.-]+)?[ \t\r\n]*=[ \t\r\n]*"[^"=]*"')
_XML_DECL = re.compile(rb'[ \t\r\n]*<\?xml[^<>?=]*(?:=[ \t\r\n]*"[^"<>?=]*"[^<>?=]*)*\?>')


def plain_text(raw: bytes, fmt: Fmt | str) -> bool:
    """Whether ``raw`` provably parses into nodes that carry no metadata and values that
    hold no apostrophe (``'``); False whenever that is not certain.

    XML metadata come only from attributes: every ``=`` must be that of a namespace
    declaration (each matched declaration holds exactly one, so an attribute of any
    other name would leave one over; a leading XML declaration is set aside).  An
    apostrophe can only be written as itself, ``&apos;`` or a character reference;
    ``<!`` (DOCTYPE, CDATA, comments) is not looked into.  JSON metadata are members
    named ``@...``, and any ``\\u`` escape might spell ``@`` or ``'``."""
    if _fmt(fmt) is Fmt.JSON:
        return b"@" not in raw and b"'" not in raw and b"\\u" not in raw
    # one-byte searches first: they run at memory speed
    if b"'" in raw or (b"&" in raw and (b"&#" in raw or b"&apos;" in raw)) or (
            b"!" in raw and b"<!" in raw):
        return False
    start = 0
    if raw[:1] != b"<" or raw[:5] == b"<?xml":
        head = _XML_DECL.match(raw)
        start = head.end() if head else 0
    equals = raw.count(b"=", start)
    decls = 0
    i = raw.find(b"xmlns", start)
    while i >= 0 and decls < equals:
        if raw[i - 1:i] in (b" ", b"\t", b"\r", b"\n") and _XMLNS_DECL.match(raw, i):
            decls += 1
        i = raw.find(b"xmlns", i + 5)
    return decls == equals


_BAD_ENUM = re.compile(r'^Invalid enumeration value "(.*)"\.$')
_EDIT_ATTRS = ("operation", "insert")


def _bad_attribute(e: InvalidValue, raw: bytes, fmt: Fmt) -> NfoError | None:
    """libyang reports a bad ``nc:operation`` or ``yang:insert`` value like a bad leaf
    value; RFC 6241 Appendix A calls it bad-attribute.  The value is recognised in the
    input as that attribute's (libyang's path is the element's in JSON, its parent's
    in XML, whose parser reports an attribute before the element exists)."""
    m = _BAD_ENUM.match(e.message)
    if m is None:
        return None
    value = re.escape(m.group(1))
    text = raw.decode("utf-8", "replace")
    for attr in _EDIT_ATTRS:
        if fmt is Fmt.JSON:
            pat = rf'"(?:ietf-netconf|yang):{attr}"\s*:\s*"{value}"'
            elem = None
        else:
            pat = rf"<(?:[\w.-]+:)?([\w.-]+)[^<>]*?:{attr}\s*=\s*([\"']){value}\2"
        found = re.search(pat, text)
        if found is not None:
            elem = found.group(1) if fmt is Fmt.XML else (e.path or "").rpartition("/")[2]
            return NfoError(f"invalid value {m.group(1)!r} of the {attr} attribute",
                            tag="bad-attribute", error_type="protocol", path=e.path,
                            info={"bad-attribute": attr, "bad-element": elem or ""})
    return None


def parse_op(ctx: Any, text: str | bytes, fmt: Fmt | str, dtype: int, *,
             what: str) -> tuple[Any, Any]:
    """Parse an RPC, action, reply or notification (``dtype``: ``LYD_TYPE_*_YANG``).

    Returns (top of the new tree, the operation node); the caller frees the tree.
    libyang parses strictly but validates nothing else here (``lyd_validate_op``).
    """
    raw = _raw(text, fmt)
    tree = ffi.new("struct lyd_node **")
    op = ffi.new("struct lyd_node **")
    with _ly_input(ctx, raw, what) as inp:
        rc = lib.lyd_parse_op(ctx, ffi.NULL, inp, _fmt(fmt).ly, dtype, tree, op)
    if rc != lib.LY_SUCCESS:
        if tree[0] != ffi.NULL:
            lib.lyd_free_all(tree[0])
        ly.raise_last(ctx, what)
    if tree[0] == ffi.NULL or op[0] == ffi.NULL:
        # empty input ("{}", "") parses successfully into nothing
        if tree[0] != ffi.NULL:
            lib.lyd_free_all(tree[0])
        lib.ly_err_clean(ctx, ffi.NULL)
        raise InvalidValue(f"{what}: the content holds no operation")
    return lib.lyd_first_sibling(tree[0]), op[0]


def print_nodes(node: Any, fmt: Fmt | str, *, siblings: bool = True, flags: int = 0,
                pretty: bool = False) -> str:
    """Print a node (and with ``siblings`` its following siblings) as text."""
    if node == ffi.NULL:
        return "{}" if _fmt(fmt) is Fmt.JSON else ""
    opts = flags | (lib.LYD_PRINT_WITHSIBLINGS if siblings else 0)
    if not pretty:
        opts |= lib.LYD_PRINT_SHRINK
    fmt = _fmt(fmt)
    buf = ffi.new("char **")
    rc = lib.lyd_print_mem(buf, node, fmt.ly, opts)
    if rc != lib.LY_SUCCESS:
        raise MalformedMessage("libyang could not print the data")
    try:
        if buf[0] == ffi.NULL:
            return "{}" if fmt is Fmt.JSON else ""
        return str(ffi.string(buf[0]).decode("utf-8"))
    finally:
        lib.free(buf[0])


def split_top(text: str, sep: str) -> tuple[list[str], bool]:
    """``text`` split at each ``sep`` outside brackets, parentheses and quotes, and
    whether every quote and bracket it opened was closed."""
    parts: list[str] = []
    quote = ""
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == sep and not depth:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts, not quote and not depth


def path_steps(path: str, *, strict: bool = True) -> list[str]:
    """The steps of an absolute libyang data path: ``/a/b[k='x/y']`` gives ``a`` and
    ``b[k='x/y']`` ('/' inside predicates does not split).  ``strict``: InvalidValue when a
    quote or a bracket is left open or a step is empty; else the steps found (libyang
    prints a key holding both quote characters as ``[k="it's "q""]``, which no parser
    reads back)."""
    parts, closed = split_top(path, "/")
    steps = parts[1:] if path.startswith("/") else parts
    if strict and (not path.startswith("/") or not closed or not all(steps)):
        raise InvalidValue(f"malformed data path {path!r}")
    return steps


_WD_MODULE_ATTR = 'xmlns:ncwd="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"'


def rfc6243_xml(xml: str) -> str:
    """XML printed with report-all-tagged, its default tags as the protocols want them.

    libyang tags defaults with its ietf-netconf-with-defaults annotation (and only
    parses that form back); RFC 6243 section 6, which RFC 8040 section 4.8.9 reuses,
    puts the attribute in urn:ietf:params:xml:ns:netconf:default:1.0.
    """
    return xml.replace(_WD_MODULE_ATTR, 'xmlns:wd="urn:ietf:params:xml:ns:netconf:default:1.0"'
                       ).replace(" ncwd:default=", " wd:default=")


def siblings(node: Any) -> Iterator[Any]:
    while node != ffi.NULL:
        nxt = node.next
        yield node
        node = nxt


def children(node: Any) -> Iterator[Any]:
    """Children of an inner node, keys included."""
    return siblings(lib.lyd_child(node))


def node_path(node: Any) -> str:
    p = lib.lyd_path(node, lib.LYD_PATH_STD, ffi.NULL, 0)
    try:
        return str(ffi.string(p).decode())
    finally:
        lib.free(p)


def node_name(node: Any) -> str:
    return str(ffi.string(node.schema.name).decode())


def node_module(node: Any) -> str:
    return str(ffi.string(node.schema.module.name).decode())


def node_value(node: Any) -> str | None:
    """Canonical value of a leaf or leaf-list node; None for other nodes."""
    if node.schema == ffi.NULL or not node.schema.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
        return None
    v = lib.lyd_get_value(node)
    return None if v == ffi.NULL else str(ffi.string(v).decode())


def after_instances(parent: Any, schema: Any, out: Any) -> Any:
    """The child of the inner node ``parent`` right after its instances of ``schema``
    (NULL: they come last), found by hashed lookups as the first instance of a later
    sibling schema: libyang keeps children in schema order (unless a text was parsed
    with ``LYD_PARSE_ORDERED``).  None when neither explains the last child (an opaque
    node); ``out`` is a ``void **`` result slot."""
    child = lib.lyd_child(parent)
    if child == ffi.NULL or child.prev.schema == schema:
        return ffi.NULL
    s = lib.lys_getnext(schema, parent.schema, ffi.NULL, 0)
    while s != ffi.NULL:
        if ly.xlib.lyd_find_sibling_val(child, s, ly.xffi.NULL, 0, out) == lib.LY_SUCCESS:
            return ffi.cast("struct lyd_node *", out[0])
        s = lib.lys_getnext(s, parent.schema, ffi.NULL, 0)
    return None


def find_sibling(first: Any, node: Any, out: Any = None) -> Any:
    """The instance among ``first``'s siblings that ``node`` (from another tree) stands for.

    Lists match by keys and leaf-lists by value; a leaf or a container matches
    by schema alone (libyang's own lookup compares leaf values when a parent
    has few children, which is not what an edit means).  It runs on hot paths
    (per touched entry): xlib's ``void *`` parameters take the bindings'
    pointers as they are, and a caller may pass its own ``out`` slot
    (``ly.xffi.new("void **")``) to reuse.
    """
    if first == ffi.NULL:
        return ffi.NULL
    if out is None:
        out = ly.xffi.new("void **")
    if node.schema.nodetype & _BY_SCHEMA:
        rc = ly.xlib.lyd_find_sibling_val(first, node.schema, ly.xffi.NULL, 0, out)
    else:
        rc = ly.xlib.lyd_find_sibling_first(first, node, out)
    if rc == lib.LY_SUCCESS:
        return ffi.cast("struct lyd_node *", out[0])
    if rc not in (lib.LY_ENOTFOUND, lib.LY_EINCOMPLETE):
        raise MalformedMessage("libyang could not look up a sibling")
    return ffi.NULL


_BY_SCHEMA = lib.LYS_LEAF | lib.LYS_CONTAINER | lib.LYS_ANYDATA | lib.LYS_ANYXML
_TERM_NODES = lib.LYS_LEAF | lib.LYS_LEAFLIST | lib.LYS_ANYDATA | lib.LYS_ANYXML
_INNER_NODES = lib.LYS_CONTAINER | lib.LYS_LIST | lib.LYS_RPC | lib.LYS_ACTION | lib.LYS_NOTIF


def is_default(node: Any) -> bool:
    return bool(node.flags & lib.LYD_DEFAULT)


def get_meta(ctx: Any, node: Any, module: str, name: str) -> str | None:
    meta = node.meta
    while meta != ffi.NULL:
        if (ffi.string(meta.name).decode() == name
                and ffi.string(meta.annotation.module.name).decode() == module):
            v = lib.lyd_value_get_canonical(ctx, ffi.addressof(meta.value))
            return None if v == ffi.NULL else str(ffi.string(v).decode())
        meta = meta.next
    return None


class Tree:
    """An owned top-level sibling list; ``root`` is NULL for empty data.

    The tree frees its nodes when :meth:`free` is called (or its ``with`` block
    ends); :class:`~nfo.schema.dnode.Node` handles taken from it are valid until then.
    """

    __slots__ = ("_root", "ctx", "plain")

    def __init__(self, ctx: Any, root: Any = ffi.NULL) -> None:
        self.ctx = _ctx(ctx)
        self._root = root
        self.plain = False
        """Parsed, in libyang's schema order, from text that proves no node carries
        metadata and no value holds an apostrophe (:func:`plain_text`); what lets a bulk
        edit skip checking and counting each entry.  Anything that adds nodes, or hands
        them out, clears it."""

    @classmethod
    def parse(cls, ctx: Any, text: str | bytes, fmt: Fmt | str, *,
              mode: Parse | None = None, parse_opts: int | None = None,
              validate_opts: int = 0, what: str = "parsing data",
              trusted: bool = False) -> Tree:
        """Parse ``text``; ``ctx`` is a :class:`~nfo.schema.Schema` (or its context);
        ``trusted``: text nfo stored itself (see :func:`parse_data`)."""
        opts = parse_opts if parse_opts is not None else (mode or Parse.CONFIG).ly
        c = _ctx(ctx)
        raw = _raw(text, fmt) if trusted else _checked(text, fmt)
        tree = cls(c, _parse_raw(c, raw, fmt, opts, validate_opts, what))
        tree.plain = not opts & lib.LYD_PARSE_ORDERED and plain_text(raw, fmt)
        return tree

    def _first(self) -> Any:
        if self._root == ffi.NULL:
            return self._root
        self._root = lib.lyd_first_sibling(self._root)
        return self._root

    def free(self) -> None:
        if self._root != ffi.NULL:
            lib.lyd_free_all(self._root)
            self._root = ffi.NULL

    def free_soon(self) -> None:
        """Free the nodes once the running event loop's current step is over (a large
        edit's tree then goes after the reply it was parsed for); at once without a
        running loop.  The tree is empty from now on either way."""
        if self._root == ffi.NULL:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.free()
            return
        held = Tree(self.ctx, self._root)
        self._root = ffi.NULL
        loop.call_soon(held.free)

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()

    def dup(self) -> Tree:
        if self._first() == ffi.NULL:
            return Tree(self.ctx)
        out = ffi.new("struct lyd_node **")
        ly.check(
            lib.lyd_dup_siblings(self._root, ffi.NULL,
                                 lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_FLAGS, out),
            self.ctx, "copying data")
        return Tree(self.ctx, out[0])

    def print(self, fmt: Fmt | str = Fmt.JSON, *, with_defaults: WithDefaults | None = None,
              pretty: bool = False, keep_empty: bool = False) -> str:
        """The whole tree as text; ``keep_empty`` prints empty non-presence containers."""
        flags = (with_defaults or WithDefaults.EXPLICIT).ly
        if keep_empty:
            flags |= lib.LYD_PRINT_KEEPEMPTYCONT
        return print_nodes(self._first(), fmt, flags=flags, pretty=pretty)

    def _find(self, path: str) -> Any:
        """The node at a data path, or NULL."""
        if self._first() == ffi.NULL:
            return ffi.NULL
        out = ffi.new("struct lyd_node **")
        rc = lib.lyd_find_path(self._root, path.encode(), False, out)
        if rc == lib.LY_SUCCESS:
            return out[0]
        lib.ly_err_clean(self.ctx, ffi.NULL)
        if rc in (lib.LY_ENOTFOUND, lib.LY_EINCOMPLETE):
            return ffi.NULL
        raise InvalidValue(f"invalid data path {path!r}", path=path)

    def _xpath(self, expr: str) -> list[Any]:
        """Nodes selected by an XPath 1.0 expression (libyang's JSON prefixes)."""
        if self._first() == ffi.NULL:
            return []
        out = ffi.new("struct ly_set **")
        rc = lib.lyd_find_xpath(self._root, expr.encode(), out)
        if rc != lib.LY_SUCCESS:
            errs = ly.errors_of(self.ctx)
            lib.ly_err_clean(self.ctx, ffi.NULL)
            msg = errs[0][1] if errs else "invalid XPath expression"
            raise InvalidValue(f"{msg}: {expr}")
        try:
            return [out[0].dnodes[i] for i in range(out[0].count)]
        finally:
            lib.ly_set_free(out[0], ffi.NULL)

    def _xpath_parts(self, expr: str) -> list[Any]:
        """The nodes an XPath selects, each once, in no set order: a union's parts are
        evaluated one by one, since libyang 2.1 unites node sets in time quadratic in
        their size (400,000 nodes: 2.8 s, against 0.2 s in parts)."""
        parts, closed = split_top(expr, "|")
        if len(parts) == 1 or not closed:
            return self._xpath(expr)
        seen: set[int] = set()
        out = []
        try:
            for part in parts:
                for p in self._xpath(part):
                    at = int(ffi.cast("uintptr_t", p))
                    if at not in seen:
                        seen.add(at)
                        out.append(p)
        except InvalidValue:  # not a union of node sets after all: as libyang reads it
            return self._xpath(expr)
        return out

    def _lookup(self, path: str) -> list[Any]:
        """The node a data path naming one node finds (a list of at most one); XPath
        decides what a lookup cannot (a key value its type refuses)."""
        if self._first() == ffi.NULL:
            return []
        found = ffi.new("struct lyd_node **")
        rc = lib.lyd_find_path(self._root, path.encode(), False, found)
        if rc == lib.LY_SUCCESS:
            return [found[0]]
        lib.ly_err_clean(self.ctx, ffi.NULL)
        if rc in (lib.LY_ENOTFOUND, lib.LY_EINCOMPLETE):
            return []
        return self._xpath(path)

    def is_empty(self) -> bool:
        return bool(self._first() == ffi.NULL)

    # -- typed access ----------------------------------------------------------------
    def nodes(self) -> list[Node]:
        """The top-level nodes, in order."""
        self.plain = False
        return [Node(n, self.ctx) for n in siblings(self._first())]

    def node(self, path: str) -> Node | None:
        """The node at a data path, or None."""
        self.plain = False
        p = self._find(path)
        return None if p == ffi.NULL else Node(p, self.ctx)

    def match(self, expr: str, *, one: bool = False) -> list[Node]:
        """The nodes an XPath 1.0 expression (module names as prefixes) selects (``one``:
        a data path naming at most one node, looked up as :meth:`extract` does)."""
        self.plain = False
        return [Node(p, self.ctx) for p in (self._lookup(expr) if one else self._xpath(expr))]

    def remove(self, node: Node) -> None:
        """Unlink and free ``node`` with its subtree (the handle is dead afterwards)."""
        p = node._p
        if p.parent == ffi.NULL and p == self._first():
            self._root = p.next
        lib.lyd_free_tree(p)

    def remove_all(self, expr: str) -> None:
        """Remove every node an XPath expression selects, with its subtree."""
        for p in self._xpath(expr):
            if p.parent == ffi.NULL and p == self._first():
                self._root = p.next
            lib.lyd_free_tree(p)

    def take(self, other: Tree) -> None:
        """Replace this tree's nodes (freed) by ``other``'s; ``other`` is emptied."""
        self.plain = False
        self.free()
        self._root = other._first()
        other._root = ffi.NULL

    def merge(self, other: Tree, *, long_lived: bool = False) -> None:
        """Move ``other``'s nodes into this tree, merging equal nodes; ``other`` is emptied.

        ``long_lived``: this tree is kept and edited in place (nodes are removed from it
        over time), so its indexes are given room first (:mod:`nfo.schema.hashes`)."""
        self.plain = False
        part = other._first()
        other._root = ffi.NULL
        if long_lived:
            _make_room_for(self.ctx, self._first(), part)
        _merge_into(self, part)

    @classmethod
    def copy_of(cls, node: Node, *, with_parents: bool = True, meta: bool = True,
                recursive: bool = True) -> Tree:
        """A new tree holding a copy of ``node``'s subtree (only the node and its list
        keys if not ``recursive``; with its ancestors, their list keys only, when
        ``with_parents``)."""
        ctx = node._ctx
        opts = lib.LYD_DUP_WITH_FLAGS | (lib.LYD_DUP_RECURSIVE if recursive else 0)
        if with_parents:
            opts |= lib.LYD_DUP_WITH_PARENTS
        if not meta:
            opts |= lib.LYD_DUP_NO_META
        out = ffi.new("struct lyd_node **")
        ly.check(lib.lyd_dup_single(node._p, ffi.NULL, opts, out), ctx, "copying data")
        top = out[0]
        while top.parent != ffi.NULL:
            top = ffi.cast("struct lyd_node *", top.parent)
        return cls(ctx, top)

    def extract(self, expr: str | None, into: Tree | None = None, *, one: bool = False) -> Tree:
        """A copy of what ``expr`` selects (all data for None, "" or "/"), each selected
        node with its ancestors: a new tree, or merged into ``into`` (returned).
        ``one``: ``expr`` is a data path naming at most one node
        (:meth:`Schema.names_one`), looked up directly."""
        if expr is None or expr in ("/", ""):
            if into is None:
                return self.dup()
            into.merge(self.dup())
            return into
        if into is None and not one:
            whole = self._copy_list(expr)
            if whole is not None:
                return whole
        out = Tree(self.ctx) if into is None else into
        slot = ffi.new("struct lyd_node **")
        opts = lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_PARENTS | lib.LYD_DUP_WITH_FLAGS
        try:
            for p in self._lookup(expr) if one else self._xpath_parts(expr):
                ly.check(lib.lyd_dup_single(p, ffi.NULL, opts, slot), self.ctx, "copying data")
                top = slot[0]
                while top.parent != ffi.NULL:
                    top = ffi.cast("struct lyd_node *", top.parent)
                _merge_into(out, top)
        except BaseException:
            if into is None:
                out.free()
            raise
        return out

    def _holder_of(self, parent: Any) -> tuple[Tree, Any]:
        """A new tree holding a copy of ``parent`` (a node of this tree, or NULL for the
        top level) with its ancestors, list keys only; and that copy, where copies of
        its children go (``struct lyd_node_inner *``; NULL for the top level)."""
        out = Tree(self.ctx)
        if parent == ffi.NULL:
            return out, ffi.NULL
        dup = ffi.new("struct lyd_node **")
        ly.check(lib.lyd_dup_single(ffi.cast("struct lyd_node *", parent), ffi.NULL,
                                    lib.LYD_DUP_WITH_PARENTS | lib.LYD_DUP_WITH_FLAGS, dup),
                 self.ctx, "copying data")
        top = dup[0]
        under = ffi.cast("struct lyd_node_inner *", top)
        while top.parent != ffi.NULL:
            top = ffi.cast("struct lyd_node *", top.parent)
        out._root = top
        return out, under

    def _copy_list(self, expr: str) -> Tree | None:
        """What :meth:`extract` makes of ``<a data path naming one node>/<list>``, every
        instance of a list or leaf-list under one parent, copied by libyang in one call
        (libyang keeps a list's instances together); None for any other expression."""
        head, _, step = expr.rpartition("/")
        if not _STEP.match(step) or (head and (not head.startswith("/") or "//" in head)):
            return None
        parent = ffi.NULL
        if head:
            if self._first() == ffi.NULL:
                return None
            found = ffi.new("struct lyd_node **")
            if lib.lyd_find_path(self._root, head.encode(), False, found) != lib.LY_SUCCESS:
                lib.ly_err_clean(self.ctx, ffi.NULL)
                return None  # not a data path naming one node: never evaluated here
            parent = found[0]
        first = lib.lyd_child(parent) if parent != ffi.NULL else self._first()
        ctx_node = parent.schema if parent != ffi.NULL else ffi.NULL
        snode = lib.lys_find_path(self.ctx, ctx_node, step.encode(), 0)
        lib.ly_err_clean(self.ctx, ffi.NULL)
        if (snode == ffi.NULL or first == ffi.NULL
                or not snode.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST)):
            return None
        slot = ly.xffi.new("void **")
        rc = ly.xlib.lyd_find_sibling_val(ly.xnode(first), ly.xnode(snode), ly.xffi.NULL, 0,
                                          slot)
        if rc != lib.LY_SUCCESS:
            lib.ly_err_clean(self.ctx, ffi.NULL)
            return None
        out, under = self._holder_of(parent)
        dup = ffi.new("struct lyd_node **")
        try:
            ly.check(lib.lyd_dup_siblings(ly.fromx(slot[0]), under,
                                          lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_FLAGS, dup),
                     self.ctx, "copying data")
            if under == ffi.NULL:
                out._root = dup[0]
            # the siblings after the list's instances came along: drop them
            last = (dup[0] if under == ffi.NULL
                    else lib.lyd_child(ffi.cast("struct lyd_node *", under))).prev
            while last.schema != snode:
                before = last.prev
                lib.lyd_free_tree(last)
                last = before
        except BaseException:
            out.free()
            raise
        return out

    def add_defaults(self, *, config_only: bool = False) -> None:
        """Create the implicit default nodes (for reading; never stored); ``config_only``:
        as validation of configuration adds them, the whole tree's (top-level ones
        included)."""
        self.plain = False
        if config_only:
            holder = ffi.new("struct lyd_node **", self._first())
            ly.check(lib.lyd_new_implicit_all(holder, self.ctx, lib.LYD_IMPLICIT_NO_STATE,
                                              ffi.NULL), self.ctx, "adding defaults")
            self._root = holder[0]
            return
        for top in list(siblings(self._first())):
            ly.check(ly.xlib.lyd_new_implicit_tree(ly.xnode(top), 0, ly.xffi.NULL), self.ctx,
                     "adding defaults")

    def parse_under(self, parent: Node | None, text: str | bytes, fmt: Fmt | str, *,
                    mode: Parse = Parse.CONFIG, what: str = "parsing data") -> list[Node]:
        """Parse ``text`` as children of ``parent`` (a node of this tree; None: as
        top-level nodes) and return the nodes it added, checked against the schema
        exactly where they land."""
        self.plain = False
        raw = _checked(text, fmt)
        pp = parent._p if parent is not None else ffi.NULL
        before = {ly.addr(n) for n in (siblings(lib.lyd_child(pp)) if pp != ffi.NULL
                                       else siblings(self._first()))}
        out = ffi.new("struct lyd_node **")
        with _ly_input(self.ctx, raw, what) as inp:
            rc = lib.lyd_parse_data(self.ctx, pp, inp, _fmt(fmt).ly, mode.ly, 0, out)
        if pp == ffi.NULL and out[0] != ffi.NULL:
            if rc == lib.LY_SUCCESS:
                _append_top(self, out[0])
            else:
                lib.lyd_free_all(out[0])
        if rc != lib.LY_SUCCESS:
            try:
                ly.raise_last(self.ctx, what)
            except NfoError as e:
                raise _under(e, parent) from None
        kids = siblings(lib.lyd_child(pp)) if pp != ffi.NULL else siblings(self._first())
        return [Node(n, self.ctx) for n in kids if ly.addr(n) not in before]

    def new(self, parent: Node | None, snode: SNode, *, keys: Sequence[str] = (),
            value: str | None = None) -> Node:
        """Create one node of schema ``snode`` under ``parent`` (None: top level): a
        container, a list entry with its ``keys`` values (in key order), or a leaf or
        leaf-list entry with ``value``.  Values are checked by their YANG types (and,
        first, for characters no YANG value may hold: libyang's parsers refuse them,
        its node constructors do not)."""
        self.plain = False
        for v in (*keys, *(() if value is None else (value,))):
            check_chars(v, snode.name)
        pp = parent._p if parent is not None else ffi.NULL
        sp = snode._p
        mod = sp.module if pp == ffi.NULL else ffi.NULL
        name = sp.name
        out = ffi.new("struct lyd_node **")
        nodetype = sp.nodetype
        if nodetype & lib.LYS_CONTAINER:
            rc = lib.lyd_new_inner(pp, mod, name, 0, out)
        elif nodetype & lib.LYS_LIST:
            vals = [ffi.new("char[]", v.encode()) for v in keys]
            rc = lib.lyd_new_list(pp, mod, name, 0, out, *vals)
        elif nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
            rc = lib.lyd_new_term(pp, mod, name, (value or "").encode(), 0, out)
        else:
            raise InvalidValue(f"{snode.name!r} is a {snode.kind.value}: no data node of it "
                               "is built")
        if rc != lib.LY_SUCCESS:
            ly.raise_last(self.ctx, f"creating {snode.name}")
        if pp == ffi.NULL:
            _append_top(self, out[0])
        return Node(out[0], self.ctx)

    def new_path(self, path: str, value: str | None = None) -> Node:
        """Create the node at a data path (and its missing ancestors, with list keys)."""
        self.plain = False
        check_chars(path, path)
        if value is not None:
            check_chars(value, path)
        out = ffi.new("struct lyd_node **")
        parent = self._first()
        v = value.encode() if value is not None else ffi.NULL
        ly.check(lib.lyd_new_path(parent, self.ctx, path.encode(), v, 0, out), self.ctx,
                 f"creating {path}")
        if self._root == ffi.NULL:
            top = out[0]
            while top.parent != ffi.NULL:
                top = ffi.cast("struct lyd_node *", top.parent)
            self._root = top
        node = self.node(path)
        if node is None:
            raise InvalidValue(f"{path}: could not be built", path=path)
        return node


_STEP = re.compile(r"^[A-Za-z_][\w.-]*(:[A-Za-z_][\w.-]*)?$")
"""One XPath step naming a node, without predicates."""


def check_chars(text: str, what: str) -> None:
    bad = NOT_YANG_CHAR.search(text)
    if bad is not None:
        raise InvalidValue(f"{what}: the value holds the character U+{ord(bad.group()):04X}, "
                           "which no YANG value may hold")


def _under(e: NfoError, parent: Node | None) -> NfoError:
    """libyang reports a parse error below ``parent`` with a path that starts at the
    parsed data (``/mod:child/...``); the error as it reads from the root."""
    if parent is None or not e.path or e.path.startswith(parent.path + "/"):
        return e
    steps = path_steps(e.path, strict=False)
    module, colon, rest = steps[0].partition(":")
    if colon and "[" not in module and module == parent.module:
        steps[0] = rest
    path = parent.path + "/" + "/".join(steps)
    return type(e)(e.message, tag=e.tag, path=path, app_tag=e.app_tag,
                   error_type=e.error_type, info=e.info)


def print_node(node: Node, fmt: Fmt | str, *, with_defaults: WithDefaults | None = None,
               keep_empty: bool = False, following: bool = False) -> str:
    """One node with its subtree (without its siblings, or with the ones after it for
    ``following``) as text."""
    flags = (with_defaults or WithDefaults.EXPLICIT).ly
    if keep_empty:
        flags |= lib.LYD_PRINT_KEEPEMPTYCONT
    return print_nodes(node._p, fmt, siblings=following, flags=flags)


def _append_top(tree: Tree, part: Any) -> None:
    """Append the sibling list ``part`` to ``tree``'s top level (no merging)."""
    first = tree._first()
    if first == ffi.NULL:
        tree._root = lib.lyd_first_sibling(part)
        return
    slot = ly.xffi.new("void **")
    for n in list(siblings(lib.lyd_first_sibling(part))):
        ly.check(ly.xlib.lyd_insert_sibling(ly.xnode(tree._root), ly.xnode(n), slot), tree.ctx,
                 "inserting data")
        tree._root = ly.fromx(slot[0])


def _make_room_for(ctx: Any, first: Any, part: Any) -> None:
    """Room in every existing node that merging the siblings ``part`` may add to."""
    out = ly.xffi.new("void **")
    for n in siblings(part):
        if n.schema == ffi.NULL or n.schema.nodetype & _TERM_NODES:
            continue
        there = find_sibling(first, n, out)
        if there == ffi.NULL:
            continue
        kids = lib.lyd_child(n)
        make_room(ctx, there, PER_INSERT * sum(1 for _ in siblings(kids)))
        _make_room_for(ctx, lib.lyd_child(there), kids)


MERGE_RUN = 256
"""Children of one node that one ``lyd_merge_siblings`` call is given at most."""

_MERGE_LOOK_DEPTH = 2
_MERGE_LOOK_WIDTH = 16


def _merge_into(tree: Tree, part: Any) -> None:
    """Merge the sibling list ``part`` (consumed) into ``tree``.

    libyang 2.1 remembers each target node one merge call matched in an array it scans
    for every source node of that level, so merging n entries of one list costs n²
    (100,000 states into the instances they describe: about 20 s).  The children of a
    crowded node are therefore merged :data:`MERGE_RUN` at a time, each run moved under
    a copy of its parents of its own (:func:`_crowded` says where to look)."""
    if part == ffi.NULL:
        return
    if tree._first() == ffi.NULL:
        tree._root = lib.lyd_first_sibling(part)
        return
    for crowded in _crowded(lib.lyd_first_sibling(part), 1):
        while True:
            run = _take_run(tree.ctx, crowded)
            if run == ffi.NULL:
                break
            _merge_call(tree, run)
    _merge_call(tree, part)


def _merge_call(tree: Tree, part: Any) -> None:
    holder = ffi.new("struct lyd_node **", tree._root)
    ly.check(lib.lyd_merge_siblings(holder, part, lib.LYD_MERGE_DESTRUCT
                                    | lib.LYD_MERGE_WITH_FLAGS), tree.ctx, "merging data")
    tree._root = holder[0]


def _crowded(first: Any, depth: int) -> Iterator[Any]:
    """Inner nodes among ``first``'s siblings and their descendants with more than
    :data:`MERGE_RUN` children; looked for down to a few levels, below nodes with few
    children (a list's entries, or containers on the way to them)."""
    for n in siblings(first):
        if n.schema == ffi.NULL or not n.schema.nodetype & _INNER_NODES:
            continue
        count = 0
        for _ in siblings(lib.lyd_child(n)):
            count += 1
            if count > MERGE_RUN:
                break
        if count > MERGE_RUN:
            yield n
        elif count <= _MERGE_LOOK_WIDTH and depth < _MERGE_LOOK_DEPTH:
            yield from _crowded(lib.lyd_child(n), depth + 1)


def _take_run(ctx: Any, node: Any) -> Any:
    """The top of a copy of ``node``'s parents and of ``node`` (keys only) holding the
    first :data:`MERGE_RUN` of its other children, moved out of it; NULL once it holds
    no more than that."""
    child = lib.lyd_child_no_keys(node)
    rest = child
    for _ in range(MERGE_RUN):
        if rest == ffi.NULL:
            return ffi.NULL
        rest = rest.next
    if rest == ffi.NULL:
        return ffi.NULL
    out = ffi.new("struct lyd_node **")
    ly.check(lib.lyd_dup_single(node, ffi.NULL, lib.LYD_DUP_WITH_PARENTS
                                | lib.LYD_DUP_WITH_FLAGS, out), ctx, "copying data")
    holder = top = out[0]
    while top.parent != ffi.NULL:
        top = ffi.cast("struct lyd_node *", top.parent)
    try:
        for _ in range(MERGE_RUN):
            nxt = child.next
            ly.check(lib.lyd_insert_child(holder, child), ctx, "moving data")
            child = nxt
    except BaseException:
        lib.lyd_free_all(top)
        raise
    return top
