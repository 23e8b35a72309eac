"""Data trees and their codecs (XML and RFC 7951 JSON), on raw libyang nodes.

A :class:`Tree` owns a top-level sibling list of libyang data nodes and frees
it explicitly (libyang trees are not garbage-collected).  Parsing and printing
go through libyang only; nfo never encodes YANG data by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from nfo.errors import InvalidValue, MalformedMessage
from nfo.schema import ly
from nfo.schema.ly import ffi, lib

__all__ = [
    "Fmt",
    "Tree",
    "WithDefaults",
    "children",
    "find_sibling",
    "get_meta",
    "is_default",
    "node_module",
    "node_name",
    "node_path",
    "node_value",
    "parse_data",
    "parse_op",
    "path_steps",
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
        return int({
            WithDefaults.EXPLICIT: lib.LYD_PRINT_WD_EXPLICIT,
            WithDefaults.TRIM: lib.LYD_PRINT_WD_TRIM,
            WithDefaults.REPORT_ALL: lib.LYD_PRINT_WD_ALL,
            WithDefaults.REPORT_ALL_TAGGED: lib.LYD_PRINT_WD_ALL_TAG,
        }[self])


def _fmt(fmt: Fmt | str) -> Fmt:
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


def parse_data(
    ctx: Any,
    text: str | bytes,
    fmt: Fmt | str,
    *,
    parse_opts: int,
    validate_opts: int = 0,
    what: str = "parsing data",
) -> Any:
    """Parse ``text`` into a new top-level sibling list (NULL for empty data)."""
    raw = text.encode() if isinstance(text, str) else text
    if _fmt(fmt) is Fmt.JSON:
        # libyang 2.1 accepts truncated JSON and ignores trailing text: check first
        try:
            json.loads(raw)
        except ValueError as e:
            raise MalformedMessage(f"malformed JSON: {e}") from None
    out = ffi.new("struct lyd_node **")
    with _ly_input(ctx, raw, what) as inp:
        rc = lib.lyd_parse_data(ctx, ffi.NULL, inp, _fmt(fmt).ly, parse_opts, validate_opts, out)
    if rc != lib.LY_SUCCESS:
        if out[0] != ffi.NULL:
            lib.lyd_free_all(out[0])
        ly.raise_last(ctx, what)
    return out[0]


def parse_op(ctx: Any, text: str | bytes, fmt: Fmt | str, dtype: int, *,
             what: str) -> tuple[Any, Any]:
    """Parse an RPC, action, reply or notification (``dtype``: ``LYD_TYPE_*_YANG``).

    Returns (top of the new tree, the operation node); the caller frees the tree.
    libyang parses strictly but validates nothing else here (``lyd_validate_op``).
    """
    raw = text.encode() if isinstance(text, str) else text
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
    buf = ffi.new("char **")
    rc = lib.lyd_print_mem(buf, node, _fmt(fmt).ly, opts)
    if rc != lib.LY_SUCCESS:
        raise MalformedMessage("libyang could not print the data")
    try:
        if buf[0] == ffi.NULL:
            return "{}" if _fmt(fmt) is Fmt.JSON else ""
        return str(ffi.string(buf[0]).decode("utf-8"))
    finally:
        lib.free(buf[0])


def path_steps(path: str, *, strict: bool = True) -> list[str]:
    """The steps of an absolute libyang data path: ``/a/b[k='x/y']`` gives ``a`` and
    ``b[k='x/y']`` ('/' inside predicates does not split).  ``strict``: InvalidValue when a
    quote or a bracket is left open or a step is empty; else the steps found (libyang
    prints a key holding both quote characters as ``[k="it's "q""]``, which no parser
    reads back)."""
    steps: list[str] = []
    quote = ""
    depth = 0
    start = 1
    for i, ch in enumerate(path):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"" and depth:
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "/" and not depth and i:
            steps.append(path[start:i])
            start = i + 1
    steps.append(path[start:])
    if strict and (not path.startswith("/") or quote or depth or not all(steps)):
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
    """An owned top-level sibling list; ``root`` is NULL for empty data."""

    __slots__ = ("ctx", "root")

    def __init__(self, ctx: Any, root: Any = ffi.NULL) -> None:
        self.ctx = ctx
        self.root = root

    @classmethod
    def parse(cls, ctx: Any, text: str | bytes, fmt: Fmt | str, *, parse_opts: int,
              validate_opts: int = 0) -> Tree:
        return cls(ctx, parse_data(ctx, text, fmt, parse_opts=parse_opts,
                                   validate_opts=validate_opts))

    def first(self) -> Any:
        if self.root == ffi.NULL:
            return self.root
        self.root = lib.lyd_first_sibling(self.root)
        return self.root

    def free(self) -> None:
        if self.root != ffi.NULL:
            lib.lyd_free_all(self.root)
            self.root = ffi.NULL

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()

    def dup(self) -> Tree:
        if self.first() == ffi.NULL:
            return Tree(self.ctx)
        out = ffi.new("struct lyd_node **")
        ly.check(
            lib.lyd_dup_siblings(self.root, ffi.NULL,
                                 lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_FLAGS, out),
            self.ctx, "copying data")
        return Tree(self.ctx, out[0])

    def print(self, fmt: Fmt | str = Fmt.JSON, *, with_defaults: WithDefaults | None = None,
              pretty: bool = False) -> str:
        flags = (with_defaults or WithDefaults.EXPLICIT).ly
        return print_nodes(self.first(), fmt, flags=flags, pretty=pretty)

    def find(self, path: str) -> Any:
        """The node at a data path, or NULL."""
        if self.first() == ffi.NULL:
            return ffi.NULL
        out = ffi.new("struct lyd_node **")
        rc = lib.lyd_find_path(self.root, path.encode(), False, out)
        if rc == lib.LY_SUCCESS:
            return out[0]
        lib.ly_err_clean(self.ctx, ffi.NULL)
        if rc in (lib.LY_ENOTFOUND, lib.LY_EINCOMPLETE):
            return ffi.NULL
        raise InvalidValue(f"invalid data path {path!r}", path=path)

    def xpath(self, expr: str) -> list[Any]:
        """Nodes selected by an XPath 1.0 expression (libyang's JSON prefixes)."""
        if self.first() == ffi.NULL:
            return []
        out = ffi.new("struct ly_set **")
        rc = lib.lyd_find_xpath(self.root, expr.encode(), out)
        if rc != lib.LY_SUCCESS:
            errs = ly.errors_of(self.ctx)
            lib.ly_err_clean(self.ctx, ffi.NULL)
            msg = errs[0][1] if errs else "invalid XPath expression"
            raise InvalidValue(f"{msg}: {expr}")
        try:
            return [out[0].dnodes[i] for i in range(out[0].count)]
        finally:
            lib.ly_set_free(out[0], ffi.NULL)

    def is_empty(self) -> bool:
        return bool(self.first() == ffi.NULL)
