"""RESTCONF encodings: media types, request bodies as edits, replies and errors.

Everything YANG-encoded goes through libyang: a request body is parsed as the
children of its parent resource (``lyd_parse_data`` with a parent built from
the URI), so the body is checked against the schema exactly where it lands;
the edit is that small tree with ``ietf-netconf:operation`` metadata on the
target node, applied by the datastore with NETCONF semantics.  Replies print
the target node itself (RFC 8040: the body is the target resource, without its
ancestors) after ``content``, ``fields`` and ``depth`` have pruned a private
copy.  No HTTP here: :mod:`nfo.restconf.app` maps the errors to status codes.
"""

from __future__ import annotations

import json
import re
import xml.dom.minidom
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from xml.parsers.expat import ExpatError

from nfo.errors import ErrorDetail, InvalidValue, MalformedMessage, NfoError
from nfo.restconf import security
from nfo.restconf.paths import (
    Kind,
    ResourcePath,
    Segment,
    build_chain,
    key_names,
    kind_of,
    schema_module,
)
from nfo.schema import ly
from nfo.schema.data import (
    Fmt,
    Tree,
    WithDefaults,
    node_path,
    node_value,
    print_nodes,
    rfc6243_xml,
    siblings,
)
from nfo.schema.ly import ffi, lib

__all__ = [
    "JSON_TYPE",
    "RESTCONF_NS",
    "XML_TYPE",
    "Content",
    "HttpError",
    "Insert",
    "ReadOptions",
    "add_meta",
    "check_xml_safe",
    "child_edit",
    "data_root_edit",
    "delete_edit",
    "encode_data",
    "encode_errors",
    "load_json",
    "media_type",
    "negotiate",
    "operations_document",
    "parse_under",
    "request_format",
    "restconf_document",
    "rpc_input",
    "rpc_output",
    "target_edit",
    "xml_instance_id",
    "yang_library_version_document",
]

JSON_TYPE = "application/yang-data+json"
XML_TYPE = "application/yang-data+xml"
RESTCONF_NS = "urn:ietf:params:xml:ns:yang:ietf-restconf"
_ALIASES = {
    JSON_TYPE: Fmt.JSON,
    XML_TYPE: Fmt.XML,
    # plain JSON / XML are accepted as the YANG-data ones (clients often send them)
    "application/json": Fmt.JSON,
    "application/xml": Fmt.XML,
    "text/xml": Fmt.XML,
}
_PARSE_EDIT = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE


class HttpError(NfoError):
    """An error whose HTTP status the front end decides itself (not by its tag)."""

    def __init__(self, status: int, message: str, *, tag: str = "invalid-value",
                 error_type: str = "protocol", path: str | None = None,
                 app_tag: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, tag=tag, error_type=error_type, path=path, app_tag=app_tag)
        self.status = status
        self.headers = dict(headers or {})


def media_type(fmt: Fmt) -> str:
    return JSON_TYPE if fmt is Fmt.JSON else XML_TYPE


# -- content negotiation (RFC 8040 section 5.2, RFC 9110 section 12.5.1) ------

def _media_ranges(accept: str) -> list[tuple[str, float]]:
    out = []
    for part in accept.split(","):
        items = [p.strip() for p in part.split(";")]
        mt = items[0].lower()
        if not mt:
            continue
        q = 1.0
        for p in items[1:]:
            k, _, v = p.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v.strip())
                except ValueError:
                    q = 0.0
        out.append((mt, max(0.0, min(q, 1.0))))
    return out


def negotiate(accept: str | None, prefer: Fmt = Fmt.JSON) -> Fmt:
    """The reply encoding for an ``Accept`` header; ``prefer`` wins ties (the request
    body's encoding, else JSON).  406 when neither YANG encoding is acceptable."""
    if not accept or not accept.strip():
        return prefer
    ranges = _media_ranges(accept)
    best: dict[Fmt, float] = {}
    for fmt in (Fmt.JSON, Fmt.XML):
        names = [m for m, f in _ALIASES.items() if f is fmt]
        score, spec = 0.0, -1
        for mt, q in ranges:
            if mt in names:
                s = 2
            elif mt == "application/*":
                s = 1
            elif mt == "*/*":
                s = 0
            else:
                continue
            if s > spec or (s == spec and q > score):
                score, spec = q, s
        best[fmt] = score
    order = [prefer, Fmt.XML if prefer is Fmt.JSON else Fmt.JSON]
    fmt = max(order, key=lambda f: best[f])
    if best[fmt] <= 0:
        raise HttpError(406, f"none of the accepted media types ({accept}) can be served; "
                        f"use {JSON_TYPE} or {XML_TYPE}")
    return fmt


def request_format(content_type: str | None) -> Fmt:
    """The encoding of a request body from its ``Content-Type``; 415 otherwise."""
    mt = (content_type or "").split(";")[0].strip().lower()
    fmt = _ALIASES.get(mt)
    if fmt is None:
        raise HttpError(415, f"unsupported Content-Type {content_type or '(none)'!r}; use "
                        f"{JSON_TYPE} or {XML_TYPE}")
    return fmt


# -- request bodies -----------------------------------------------------------

def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise MalformedMessage(f"malformed JSON: member {k!r} appears twice")
        out[k] = v
    return out


def load_json(body: bytes) -> Any:
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates)
    except MalformedMessage:
        raise
    except (ValueError, RecursionError) as e:
        raise MalformedMessage(f"malformed JSON: {e}") from None


_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def check_xml_safe(body: bytes) -> None:
    """Refuse XML with a document type or entity declaration before any parser sees it
    (the strict check of :mod:`nfo.restconf.security`: also UTF-16/32 disguises)."""
    if _DTD.search(body):
        raise MalformedMessage("XML with a DOCTYPE or ENTITY declaration is refused")
    security.check_xml_safe(body)


def _xml_root(body: bytes) -> Any:
    """The root element of an XML body (well-formedness checked, no DTD allowed)."""
    check_xml_safe(body)
    try:
        doc = xml.dom.minidom.parseString(body)
    except ExpatError as e:
        raise MalformedMessage(f"malformed XML: {e}") from None
    return doc.documentElement


def _check_body(body: bytes, fmt: Fmt) -> None:
    if not body.strip():
        raise MalformedMessage("the request needs a message body")
    if fmt is Fmt.JSON:
        if not isinstance(load_json(body), dict):
            raise MalformedMessage("the JSON body must be an object")
    else:
        _xml_root(body)


def add_meta(ctx: Any, node: Any, name: str, value: str) -> None:
    """Attach metadata (``ietf-netconf:operation``, ``yang:insert``, ...) to a node."""
    rc = lib.lyd_new_meta(ctx, node, ffi.NULL, name.encode(), value.encode(), 0, ffi.NULL)
    ly.check(rc, ctx, f"setting {name}")


def _kids(parent: Any, top: Any) -> list[Any]:
    first = lib.lyd_child(parent) if parent != ffi.NULL else top
    if first != ffi.NULL and parent == ffi.NULL:
        first = lib.lyd_first_sibling(first)
    return list(siblings(first))


def parse_under(ctx: Any, body: bytes, fmt: Fmt,
                parents: Sequence[Segment]) -> tuple[Tree, list[Any]]:
    """Parse ``body`` as children of the resource ``parents`` names (the datastore when
    empty).  Returns the whole edit tree (ancestors built from the URI) and the nodes
    the body added."""
    _check_body(body, fmt)
    top, parent = build_chain(ctx, parents)
    tree = Tree(ctx, top)
    try:
        before = {ly.addr(n) for n in _kids(parent, top)} if parent != ffi.NULL else set()
        buf = ffi.new("char[]", body)
        inp = ffi.new("struct ly_in **")
        ly.check(lib.ly_in_new_memory(buf, inp), ctx, "reading the body")
        out = ffi.new("struct lyd_node **")
        try:
            rc = lib.lyd_parse_data(ctx, parent, inp[0], fmt.ly, _PARSE_EDIT, 0, out)
        finally:
            lib.ly_in_free(inp[0], 0)
        if parent == ffi.NULL:
            tree.root = out[0]
        if rc != lib.LY_SUCCESS:
            ly.raise_last(ctx, "parsing the message body")
        new = [n for n in _kids(parent, tree.first()) if ly.addr(n) not in before]
    except BaseException:
        tree.free()
        raise
    return tree, new


def _unwrap_data(body: bytes, fmt: Fmt) -> bytes:
    """The content of an ``ietf-restconf:data`` body (PUT/PATCH on the datastore)."""
    if fmt is Fmt.JSON:
        obj = load_json(body)
        if not isinstance(obj, dict) or list(obj) != ["ietf-restconf:data"]:
            raise InvalidValue('a datastore body is {"ietf-restconf:data": {...}}',
                               error_type="protocol")
        inner = obj["ietf-restconf:data"]
        if not isinstance(inner, dict):
            raise InvalidValue('"ietf-restconf:data" must be an object', error_type="protocol")
        return json.dumps(inner, ensure_ascii=False).encode()
    root = _xml_root(body)
    if root.namespaceURI != RESTCONF_NS or root.localName != "data":
        raise InvalidValue(f'a datastore body is <data xmlns="{RESTCONF_NS}">...</data>',
                           error_type="protocol")
    decls = {a.name: a.value for a in root.attributes.values()
             if a.name.startswith("xmlns:")}
    parts = []
    try:
        for c in root.childNodes:
            if c.nodeType == c.ELEMENT_NODE:
                for k, v in decls.items():
                    if not c.hasAttribute(k):
                        c.setAttribute(k, v)
                parts.append(c.toxml())
            elif c.nodeType == c.TEXT_NODE and c.data.strip():
                raise MalformedMessage("text directly inside <data> is not allowed")
    except RecursionError:
        raise MalformedMessage("the XML body is nested too deeply") from None
    return "".join(parts).encode()


@dataclass(frozen=True)
class Insert:
    """``insert``/``point`` query parameters (RFC 8040 sections 4.8.5, 4.8.6)."""

    where: str
    point: ResourcePath | None = None


def _apply_insert(ctx: Any, node: Any, ins: Insert | None) -> None:
    if ins is None:
        return
    sn = node.schema
    if not (sn.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST) and sn.flags & lib.LYS_ORDBY_USER):
        raise InvalidValue("insert applies only to an ordered-by user list or leaf-list",
                           error_type="protocol", path=node_path(node))
    add_meta(ctx, node, "yang:insert", ins.where)
    if ins.where not in ("before", "after"):
        return
    pt = ins.point
    if pt is None:
        raise InvalidValue(f"insert={ins.where} needs the point parameter",
                           error_type="protocol", path=node_path(node))
    if pt.is_root or pt.target.schema != sn or not pt.target.is_instance:
        raise InvalidValue("point must name an entry of the same list or leaf-list",
                           error_type="protocol", path=node_path(node))
    parent_path = (node_path(ffi.cast("struct lyd_node *", node.parent))
                   if node.parent != ffi.NULL else None)
    if pt.parent_path != parent_path:
        raise InvalidValue("point must name an entry under the same parent",
                           error_type="protocol", path=node_path(node))
    if sn.nodetype & lib.LYS_LIST:
        assert pt.data_path is not None
        last = pt.data_path[len(pt.parent_path or ""):]
        add_meta(ctx, node, "yang:key", last[last.index("["):])
    else:
        assert pt.target.value is not None
        add_meta(ctx, node, "yang:value", pt.target.value)


def target_edit(ctx: Any, body: bytes, fmt: Fmt, rp: ResourcePath, operation: str,
                insert: Insert | None = None) -> Tree:
    """PUT (``replace``) or plain PATCH (``merge``) of a target resource: the body is
    the target itself (same node; same keys or value as the URI)."""
    if rp.is_root:
        return data_root_edit(ctx, body, fmt)
    t = rp.target
    if t.schema.flags & lib.LYS_KEY:
        raise InvalidValue("a list key cannot be written on its own",
                           error_type="protocol", path=rp.data_path)
    if not t.is_instance:
        raise InvalidValue(f"the {t.kind.value} {t.name!r} needs its "
                           + ("key values" if t.kind is Kind.LIST else "value")
                           + " in the URI", error_type="protocol", path=rp.data_path)
    tree, new = parse_under(ctx, body, fmt, rp.segments[:-1])
    try:
        if len(new) != 1:
            raise InvalidValue(f"the body must hold exactly one {t.name!r} "
                               f"(it holds {len(new)} nodes)", error_type="protocol",
                               path=rp.data_path)
        node = new[0]
        if node.schema != t.schema:
            raise InvalidValue(f"the body names {_qname(node)}, not the target "
                               f"{t.module}:{t.name}", error_type="protocol",
                               path=rp.data_path)
        if t.kind in (Kind.LIST, Kind.LEAFLIST) and node_path(node) != rp.data_path:
            raise InvalidValue("the key values in the body differ from those in the URI"
                               if t.kind is Kind.LIST else
                               "the value in the body differs from the one in the URI",
                               error_type="protocol", path=rp.data_path)
        add_meta(ctx, node, "ietf-netconf:operation", operation)
        _apply_insert(ctx, node, insert)
    except BaseException:
        tree.free()
        raise
    return tree


def child_edit(ctx: Any, body: bytes, fmt: Fmt, rp: ResourcePath,
               insert: Insert | None = None) -> tuple[Tree, Segment]:
    """POST: create the one child resource the body holds under the target (a
    container, a list entry or the datastore).  Returns the edit and the child's step."""
    if not rp.is_root:
        t = rp.target
        if t.kind not in (Kind.CONTAINER, Kind.LIST) or not t.is_instance:
            raise HttpError(405, f"POST creates children of a container, a list entry or "
                            f"the datastore; {t.name!r} is a "
                            + (t.kind.value if t.is_instance else f"whole {t.kind.value}"),
                            tag="operation-not-supported", path=rp.data_path)
    tree, new = parse_under(ctx, body, fmt, rp.segments)
    try:
        if len(new) != 1:
            raise InvalidValue(f"the body of a POST must hold exactly one child resource "
                               f"(it holds {len(new)})", error_type="protocol",
                               path=rp.data_path)
        node = new[0]
        if node.schema.flags & lib.LYS_KEY:
            raise InvalidValue("a list key cannot be created on its own",
                               error_type="protocol", path=node_path(node))
        add_meta(ctx, node, "ietf-netconf:operation", "create")
        _apply_insert(ctx, node, insert)
        step = _step_of(node)
    except BaseException:
        tree.free()
        raise
    return tree, step


def _qname(node: Any) -> str:
    return f"{schema_module(node.schema)}:{ffi.string(node.schema.name).decode()}"


def _step_of(node: Any) -> Segment:
    """The resource-path step naming ``node`` (for a Location header)."""
    sn = node.schema
    kind = kind_of(sn)
    keys = None
    value = None
    if kind is Kind.LIST:
        names = key_names(sn)
        vals = {}
        for k in siblings(lib.lyd_child(node)):
            if not k.schema.flags & lib.LYS_KEY:
                break
            vals[ffi.string(k.schema.name).decode()] = node_value(k) or ""
        keys = tuple((n, vals.get(n, "")) for n in names)
    elif kind is Kind.LEAFLIST:
        value = node_value(node)
    return Segment(schema_module(sn), ffi.string(sn.name).decode(), kind, sn, keys, value)


def data_root_edit(ctx: Any, body: bytes, fmt: Fmt) -> Tree:
    """PUT or PATCH on the datastore: ``ietf-restconf:data`` holding top-level nodes.
    The caller applies it with default-operation ``replace`` (PUT) or ``merge``."""
    inner = _unwrap_data(body, fmt)
    if not inner.strip() or inner.strip() == b"{}":
        return Tree(ctx)
    tree, _ = parse_under(ctx, inner, fmt, ())
    return tree


def delete_edit(ctx: Any, existing: Any) -> Tree:
    """DELETE: a copy of the existing node (and its ancestors, keys only) marked delete."""
    out = ffi.new("struct lyd_node **")
    ly.check(lib.lyd_dup_single(existing, ffi.NULL, lib.LYD_DUP_WITH_PARENTS, out), ctx,
             "copying the target")
    node = out[0]
    top = node
    while top.parent != ffi.NULL:
        top = ffi.cast("struct lyd_node *", top.parent)
    tree = Tree(ctx, top)
    try:
        add_meta(ctx, node, "ietf-netconf:operation", "delete")
    except BaseException:
        tree.free()
        raise
    return tree


# -- replies ------------------------------------------------------------------

class Content(StrEnum):
    CONFIG = "config"
    NONCONFIG = "nonconfig"
    ALL = "all"


@dataclass(frozen=True)
class ReadOptions:
    depth: int | None = None
    fields: tuple[str, ...] = ()
    content: Content = Content.ALL
    with_defaults: WithDefaults = WithDefaults.EXPLICIT


def _free(node: Any) -> None:
    lib.lyd_free_tree(node)


def _is_key(node: Any) -> bool:
    return bool(node.schema != ffi.NULL and node.schema.flags & lib.LYS_KEY)


def _is_term(node: Any) -> bool:
    return bool(node.schema.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST))


def _undefault(node: Any) -> None:
    """A container we pruned is no longer 'default only': keep it printable."""
    if node.flags & lib.LYD_DEFAULT and node.schema.nodetype & lib.LYS_CONTAINER:
        node.flags = node.flags & ~lib.LYD_DEFAULT


def _prune_content(node: Any, content: Content) -> bool:
    """Remove config (``nonconfig``) or state (``config``) nodes below ``node``;
    False when ``node`` itself is to go."""
    state = bool(node.schema.flags & lib.LYS_CONFIG_R)
    if content is Content.CONFIG:
        if state:
            return False
        if not _is_term(node):
            for c in list(siblings(lib.lyd_child(node))):
                if not _prune_content(c, content):
                    _free(c)
        return True
    # nonconfig
    if state:
        return True
    if _is_term(node):
        return False
    keep = False
    for c in list(siblings(lib.lyd_child(node))):
        if _is_key(c):
            continue
        if _prune_content(c, content):
            keep = True
        else:
            _free(c)
    if keep:
        _undefault(node)
    return keep


def _prune_fields(node: Any, selected: set[int], anchors: set[int]) -> bool:
    """Keep selected nodes (whole), their ancestors and keys; False when ``node`` goes."""
    a = ly.addr(node)
    if a in selected:
        return True
    if a not in anchors:
        return False
    for c in list(siblings(lib.lyd_child(node))):
        if not _is_key(c) and not _prune_fields(c, selected, anchors):
            _free(c)
    _undefault(node)
    return True


def _prune_depth(node: Any, level: int, depth: int, anchors: set[int]) -> None:
    """RFC 8040 4.8.2: the target is level 1; with ``fields``, selected nodes and their
    ancestors are level 1 too.  Children deeper than ``depth`` go (keys stay)."""
    if ly.addr(node) in anchors:
        level = 1
    if _is_term(node):
        return
    for c in list(siblings(lib.lyd_child(node))):
        if _is_key(c):
            continue
        if level >= depth and ly.addr(c) not in anchors:
            _free(c)
            _undefault(node)
        else:
            _prune_depth(c, level + 1, depth, anchors)


def _ancestors(nodes: Iterable[Any]) -> set[int]:
    out = set()
    for n in nodes:
        p = n
        while p != ffi.NULL:
            out.add(ly.addr(p))
            p = ffi.cast("struct lyd_node *", p.parent) if p.parent != ffi.NULL else ffi.NULL
    return out


def _targets(tree: Tree, rp: ResourcePath) -> list[Any]:
    if rp.is_root:
        return list(siblings(tree.first()))
    assert rp.data_path is not None
    return tree.xpath(rp.data_path)


def encode_data(tree: Tree, rp: ResourcePath, fmt: Fmt, opts: ReadOptions) -> str | None:
    """Print the target resource of ``rp`` from ``tree`` (a private copy, pruned in
    place).  None when nothing of the target is left to report (404)."""
    targets = _targets(tree, rp)
    if not rp.is_root and not targets:
        return None
    if opts.content is not Content.ALL:
        kept = []
        for n in targets:
            if _prune_content(n, opts.content):
                kept.append(n)
            else:
                if n.parent == ffi.NULL and n == tree.first():
                    tree.root = n.next
                _free(n)
        targets = kept
    anchors: set[int] = set()
    if opts.fields:
        base = "" if rp.is_root else rp.data_path
        expr = " | ".join(f"{base}/{f}" for f in opts.fields)
        selected = tree.xpath(expr) if targets else []
        sel = {ly.addr(n) for n in selected}
        anchors = _ancestors(selected)
        kept = []
        for n in targets:
            if _prune_fields(n, sel, anchors):
                kept.append(n)
            else:
                if n.parent == ffi.NULL and n == tree.first():
                    tree.root = n.next
                _free(n)
        targets = kept
    if opts.depth is not None:
        for n in targets:
            _prune_depth(n, 1, opts.depth, anchors)
    flags = opts.with_defaults.ly
    if rp.is_root:
        return _tagged(_wrap_data(_print_all(targets, fmt, flags), fmt), fmt, opts)
    pieces = [print_nodes(n, fmt, siblings=False, flags=flags) for n in targets]
    pieces = [p for p in pieces if p and p != "{}"]
    if not pieces:
        return None
    if len(pieces) == 1:
        return _tagged(pieces[0], fmt, opts)
    if fmt is Fmt.XML:
        raise InvalidValue(f"{len(pieces)} instances match: an XML reply has one root, so "
                           "address one entry or ask for JSON", error_type="protocol",
                           path=rp.data_path)
    merged: dict[str, Any] = {}
    for p in pieces:
        for k, v in json.loads(p).items():
            if isinstance(v, list) and isinstance(merged.get(k), list):
                merged[k] += v
            else:
                merged[k] = v
    return json.dumps(merged, ensure_ascii=False, separators=(",", ":"))


def _tagged(text: str, fmt: Fmt, opts: ReadOptions) -> str:
    if fmt is Fmt.XML and opts.with_defaults is WithDefaults.REPORT_ALL_TAGGED:
        return rfc6243_xml(text)
    return text


def _print_all(nodes: list[Any], fmt: Fmt, flags: int) -> str:
    if not nodes:
        return "{}" if fmt is Fmt.JSON else ""
    return print_nodes(nodes[0], fmt, siblings=True, flags=flags)


def _wrap_data(printed: str, fmt: Fmt) -> str:
    if fmt is Fmt.JSON:
        return '{"ietf-restconf:data":' + (printed or "{}") + "}"
    return f'<data xmlns="{RESTCONF_NS}">{printed}</data>'


# -- operations ---------------------------------------------------------------

_INPUT_START = re.compile(
    r"^((?:\s|<\?.*?\?>|<!--.*?-->)*)<(?:([A-Za-z_][\w.-]*):)?input(?=[\s/>])", re.DOTALL)


def rpc_input(ctx: Any, body: bytes, fmt: Fmt, chain: Sequence[Segment], op: Segment) -> str:
    """A RESTCONF operation input (``{"mod:input": {...}}`` / ``<input xmlns=..>``, or
    no body) as the RFC 7951 JSON of the RPC or action (with its ancestors), which
    :meth:`nfo.datastore.Session.rpc` takes."""
    mod = op.module
    ns = ffi.string(op.schema.module.ns).decode()
    qualified = f"{mod}:{op.name}"
    if not body.strip():
        text = json.dumps({qualified: {}}).encode()
        pfmt = Fmt.JSON
    elif fmt is Fmt.JSON:
        obj = load_json(body)
        if not isinstance(obj, dict) or (obj and list(obj) != [f"{mod}:input"]):
            raise InvalidValue(f'the input of {qualified} is {{"{mod}:input": {{...}}}}',
                               error_type="protocol")
        inner = obj.get(f"{mod}:input", {})
        if not isinstance(inner, dict):
            raise MalformedMessage(f'"{mod}:input" must be an object')
        text = json.dumps({qualified: inner}, ensure_ascii=False).encode()
        pfmt = Fmt.JSON
    else:
        root = _xml_root(body)
        if root.localName != "input" or root.namespaceURI != ns:
            raise InvalidValue(f'the input of {qualified} is <input xmlns="{ns}">...</input>',
                               error_type="protocol")
        try:
            s = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("the XML body is not UTF-8") from None
        m = _INPUT_START.match(s)
        if m is None:
            raise MalformedMessage("could not find the <input> element")
        prefix = f"{m.group(2)}:" if m.group(2) else ""
        s = f"{m.group(1)}<{prefix}{op.name}{s[m.end():]}"
        end = s.rstrip()
        close = f"</{prefix}input>"
        tail = re.search(r"</" + re.escape(prefix) + r"input\s*>\s*$", end)
        if tail is not None:
            s = end[:tail.start()] + f"</{prefix}{op.name}>"
        elif not re.search(r"/>\s*$", end):
            raise MalformedMessage(f"could not find {close}")
        text = s.encode()
        pfmt = Fmt.XML
    top, parent = build_chain(ctx, chain)
    tree = Tree(ctx, top)
    try:
        buf = ffi.new("char[]", text)
        inp = ffi.new("struct ly_in **")
        ly.check(lib.ly_in_new_memory(buf, inp), ctx, "reading the input")
        t = ffi.new("struct lyd_node **")
        opn = ffi.new("struct lyd_node **")
        try:
            rc = lib.lyd_parse_op(ctx, parent, inp[0], pfmt.ly, lib.LYD_TYPE_RPC_YANG, t, opn)
        finally:
            lib.ly_in_free(inp[0], 0)
        if top == ffi.NULL:
            tree.root = t[0]
        if rc != lib.LY_SUCCESS:
            ly.raise_last(ctx, f"parsing the input of {qualified}")
        if opn[0] == ffi.NULL:
            raise InvalidValue(f"no input for {qualified}", error_type="protocol")
        return print_nodes(tree.first(), Fmt.JSON)
    finally:
        tree.free()


def rpc_output(reply: Tree, op: Segment, fmt: Fmt) -> str | None:
    """The reply's output as ``{"mod:output": {...}}`` / ``<output xmlns=..>``; None
    when the operation has no output to report (204)."""
    node = reply.first()
    while node != ffi.NULL and node.schema != op.schema:
        nxt = ffi.NULL
        for c in siblings(lib.lyd_child(node)):
            if not _is_key(c):
                nxt = c
                break
        node = nxt
    if node == ffi.NULL or lib.lyd_child(node) == ffi.NULL:
        return None
    printed = print_nodes(node, fmt, siblings=False)
    if fmt is Fmt.JSON:
        head = f'{{"{op.module}:{op.name}":'
        if not printed.startswith(head):
            raise NfoError("unexpected output encoding")
        return f'{{"{op.module}:output":' + printed[len(head):]
    head = f"<{op.name}"
    tail = f"</{op.name}>"
    if not printed.startswith(head) or not printed.endswith(tail):
        raise NfoError("unexpected output encoding")
    return "<output" + printed[len(head):-len(tail)] + "</output>"


# -- protocol documents -------------------------------------------------------

def restconf_document(fmt: Fmt, yang_library_version: str) -> str:
    if fmt is Fmt.JSON:
        return json.dumps({"ietf-restconf:restconf": {
            "data": {}, "operations": {}, "yang-library-version": yang_library_version}})
    return (f'<restconf xmlns="{RESTCONF_NS}"><data/><operations/>'
            f"<yang-library-version>{yang_library_version}</yang-library-version></restconf>")


def yang_library_version_document(fmt: Fmt, version: str) -> str:
    if fmt is Fmt.JSON:
        return json.dumps({"ietf-restconf:yang-library-version": version})
    return f'<yang-library-version xmlns="{RESTCONF_NS}">{version}</yang-library-version>'


def operations_document(fmt: Fmt, ops: Sequence[tuple[str, str, str]]) -> str:
    """``ops``: (module, rpc name, namespace) of each operation the server offers."""
    if fmt is Fmt.JSON:
        return json.dumps({"ietf-restconf:operations": {f"{m}:{n}": [None] for m, n, _ in ops}})
    inner = "".join(f'<{n} xmlns="{_xml_escape(ns)}"/>' for _, n, ns in ops)
    return f'<operations xmlns="{RESTCONF_NS}">{inner}</operations>'


# -- errors (RFC 8040 section 7.1) --------------------------------------------

def _xml_escape(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


_XML_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")


def xml_instance_id(path: str, namespaces: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A libyang (JSON-style) data path as an XML instance-identifier: every node name
    prefixed, with the module names themselves as prefixes.  Returns the text and
    the prefix->namespace declarations it needs (modules unknown are left as is)."""
    out = []
    decls: dict[str, str] = {}
    cur: list[str | None] = [None]
    i = 0
    n = len(path)
    expect_name = True
    while i < n:
        ch = path[i]
        if ch in "'\"":
            j = path.find(ch, i + 1)
            j = n - 1 if j < 0 else j
            out.append(path[i:j + 1])
            i = j + 1
            continue
        if ch in "/[":
            out.append(ch)
            expect_name = True
            i += 1
            continue
        if expect_name and (ch.isalpha() or ch == "_"):
            m = re.match(r"([A-Za-z_][\w.-]*)(?::([A-Za-z_][\w.-]*))?", path[i:])
            assert m is not None
            if m.group(2):
                mod, name = m.group(1), m.group(2)
                if path[i - 1:i] == "/" or i == 0:
                    cur[0] = mod
            else:
                mod, name = cur[0], m.group(1)
            if mod and mod in namespaces:
                decls[mod] = namespaces[mod]
                out.append(f"{mod}:{name}")
            else:
                out.append(m.group(0))
            i += m.end()
            expect_name = False
            continue
        out.append(ch)
        if ch not in " \t":
            expect_name = False
        i += 1
    return "".join(out), decls


def encode_errors(errors: Sequence[ErrorDetail], fmt: Fmt,
                  namespaces: dict[str, str] | None = None) -> str:
    """An ``ietf-restconf:errors`` body.  ``namespaces`` (module -> namespace) lets
    error-path be written as a proper XML instance-identifier."""
    if fmt is Fmt.JSON:
        items = []
        for e in errors:
            item: dict[str, Any] = {"error-type": e.error_type, "error-tag": e.tag}
            if e.app_tag:
                item["error-app-tag"] = e.app_tag
            if e.path:
                item["error-path"] = e.path
            if e.message:
                item["error-message"] = e.message
            if e.info:
                item["error-info"] = dict(e.info)
            items.append(item)
        return json.dumps({"ietf-restconf:errors": {"error": items}}, ensure_ascii=False)
    parts = [f'<errors xmlns="{RESTCONF_NS}">']
    for e in errors:
        parts.append("<error>")
        parts.append(f"<error-type>{_xml_escape(e.error_type)}</error-type>")
        parts.append(f"<error-tag>{_xml_escape(e.tag)}</error-tag>")
        if e.app_tag:
            parts.append(f"<error-app-tag>{_xml_escape(e.app_tag)}</error-app-tag>")
        if e.path:
            text, decls = xml_instance_id(e.path, namespaces or {})
            attrs = "".join(f' xmlns:{p}="{_xml_escape(ns)}"' for p, ns in sorted(decls.items()))
            parts.append(f"<error-path{attrs}>{_xml_escape(text)}</error-path>")
        if e.message:
            parts.append(f'<error-message>{_xml_escape(e.message)}</error-message>')
        if e.info:
            parts.append("<error-info>")
            for k, v in e.info.items():
                tag = k if _XML_NAME.match(k) and not k.lower().startswith("xml") else "info"
                parts.append(f"<{tag}>{_xml_escape(str(v))}</{tag}>")
            parts.append("</error-info>")
        parts.append("</error>")
    parts.append("</errors>")
    return "".join(parts)
