"""RESTCONF encodings: media types, request bodies as edits, replies and documents.

Everything YANG-encoded goes through libyang: a request body is parsed as the
children of its parent resource (a parent built from the URI), so the body is
checked against the schema exactly where it lands; the edit is that small
tree with ``ietf-netconf:operation`` metadata on the target node, applied by
the datastore with NETCONF semantics.  XML bodies pass the one hardened reader
(:mod:`nfo.wire.xml`) and reach libyang as the client wrote them.
Replies print the target node itself (RFC 8040: the body is the target
resource, without its ancestors) from what :func:`nfo.protocol.read.read`
selected and pruned.  No HTTP here: :mod:`nfo.restconf.app` maps errors to
statuses through :mod:`nfo.protocol.errors`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nfo.errors import InvalidValue, MalformedMessage, NfoError
from nfo.protocol.errors import RESTCONF_NS, HttpError, xml_text
from nfo.protocol.read import encode, encode_node
from nfo.restconf.paths import Kind, ResourcePath, Segment, build_chain
from nfo.schema import Fmt, Node, Operation, OpKind, Schema, Tree, WithDefaults, json_text
from nfo.wire import xml

__all__ = [
    "JSON_TYPE",
    "XML_LIST_TYPE",
    "XML_TYPE",
    "Insert",
    "child_edit",
    "data_root_edit",
    "delete_edit",
    "encode_targets",
    "encode_xml_list",
    "load_json",
    "media_type",
    "negotiate",
    "operations_document",
    "parse_under",
    "request_format",
    "restconf_document",
    "rpc_input",
    "rpc_output",
    "set_position",
    "target_edit",
    "wants_xml_list",
    "yang_library_version_document",
]

JSON_TYPE = "application/yang-data+json"
XML_TYPE = "application/yang-data+xml"
XML_LIST_TYPE = "application/yang-data+xml-list"
"""draft-ietf-netconf-list-pagination-rc: the entries of a list or leaf-list resource in
XML, wrapped in one ``<xml-list>`` element."""
_ACCEPTED = {XML_LIST_TYPE: Fmt.XML}
"""Reply types beside :data:`_ALIASES` (never a request body's)."""
_ALIASES = {
    JSON_TYPE: Fmt.JSON,
    XML_TYPE: Fmt.XML,
    # plain JSON / XML are accepted as the YANG-data ones (clients often send them)
    "application/json": Fmt.JSON,
    "application/xml": Fmt.XML,
    "text/xml": Fmt.XML,
}


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
    fmt = _negotiated(accept, prefer)
    if fmt is None:
        raise HttpError(406, f"none of the accepted media types ({accept}) can be served; "
                        f"use {JSON_TYPE} or {XML_TYPE}")
    return fmt


@functools.lru_cache(maxsize=256)
def _negotiated(accept: str, prefer: Fmt) -> Fmt | None:
    """:func:`negotiate`'s answer (None: 406); clients send the same few headers."""
    ranges = _media_ranges(accept)
    best: dict[Fmt, float] = {}
    for fmt in (Fmt.JSON, Fmt.XML):
        names = [m for m, f in (*_ALIASES.items(), *_ACCEPTED.items()) if f is fmt]
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
    return fmt if best[fmt] > 0 else None


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
        return json.loads(json_text(body), object_pairs_hook=_no_duplicates)
    except MalformedMessage:
        raise
    except (ValueError, RecursionError) as e:
        raise MalformedMessage(f"malformed JSON: {e}") from None


def _check_body(body: bytes, fmt: Fmt) -> None:
    if not body.strip():
        raise MalformedMessage("the request needs a message body")
    if fmt is Fmt.JSON:
        if not isinstance(load_json(body), dict):
            raise MalformedMessage("the JSON body must be an object")
    else:
        xml.check(body)


def parse_under(schema: Schema, body: bytes, fmt: Fmt,
                parents: Sequence[Segment]) -> tuple[Tree, list[Node]]:
    """Parse ``body`` as children of the resource ``parents`` names (the datastore when
    empty).  Returns the whole edit tree (ancestors built from the URI) and the nodes
    the body added."""
    _check_body(body, fmt)  # surrogate pairs are written out where libyang reads JSON
    tree = Tree(schema)
    try:
        parent = build_chain(tree, parents)
        new = tree.parse_under(parent, body, fmt, what="parsing the message body")
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
    root = xml.read(body, opaque_root=True)
    if root.ns != RESTCONF_NS or root.name != "data":
        raise InvalidValue(f'a datastore body is <data xmlns="{RESTCONF_NS}">...</data>',
                           error_type="protocol")
    if root.has_text:
        raise MalformedMessage("text directly inside <data> is not allowed")
    return root.content_xml()


@dataclass(frozen=True)
class Insert:
    """``insert``/``point`` query parameters (RFC 8040 sections 4.8.5, 4.8.6)."""

    where: str
    point: ResourcePath | None = None


def set_position(node: Node, ins: Insert | None) -> None:
    """Mark ``node`` for insertion at a position of its ordered-by user list
    (``yang:insert`` with ``yang:key`` or ``yang:value`` for a point)."""
    if ins is None:
        return
    sn = node.schema
    if not sn.ordered_by_user:
        raise InvalidValue("insert applies only to an ordered-by user list or leaf-list",
                           error_type="protocol", path=node.path)
    node.set_meta("yang:insert", ins.where)
    if ins.where not in ("before", "after"):
        return
    pt = ins.point
    if pt is None:
        raise InvalidValue(f"insert={ins.where} needs the point parameter",
                           error_type="protocol", path=node.path)
    if pt.is_root or pt.target.schema != sn or not pt.target.is_instance:
        raise InvalidValue("point must name an entry of the same list or leaf-list",
                           error_type="protocol", path=node.path)
    parent = node.parent
    if pt.parent_path != (parent.path if parent is not None else None):
        raise InvalidValue("point must name an entry under the same parent",
                           error_type="protocol", path=node.path)
    if sn.kind is Kind.LIST:
        assert pt.data_path is not None
        last = pt.data_path[len(pt.parent_path or ""):]
        node.set_meta("yang:key", last[last.index("["):])
    else:
        assert pt.target.value is not None
        node.set_meta("yang:value", pt.target.value)


def target_edit(schema: Schema, body: bytes, fmt: Fmt, rp: ResourcePath, operation: str,
                insert: Insert | None = None) -> Tree:
    """PUT (``replace``) or plain PATCH (``merge``) of a target resource: the body is
    the target itself (same node; same keys or value as the URI)."""
    if rp.is_root:
        return data_root_edit(schema, body, fmt)
    t = rp.target
    if t.schema.is_key:
        raise InvalidValue("a list key cannot be written on its own",
                           error_type="protocol", path=rp.data_path)
    if not t.is_instance:
        raise InvalidValue(f"the {t.kind.value} {t.name!r} needs its "
                           + ("key values" if t.kind is Kind.LIST else "value")
                           + " in the URI", error_type="protocol", path=rp.data_path)
    tree, new = parse_under(schema, body, fmt, rp.segments[:-1])
    try:
        if len(new) != 1:
            raise InvalidValue(f"the body must hold exactly one {t.name!r} "
                               f"(it holds {len(new)} nodes)", error_type="protocol",
                               path=rp.data_path)
        node = new[0]
        if node.schema != t.schema:
            raise InvalidValue(f"the body names {node.module}:{node.name}, not the target "
                               f"{t.module}:{t.name}", error_type="protocol",
                               path=rp.data_path)
        if t.kind in (Kind.LIST, Kind.LEAFLIST) and node.path != rp.data_path:
            raise InvalidValue("the key values in the body differ from those in the URI"
                               if t.kind is Kind.LIST else
                               "the value in the body differs from the one in the URI",
                               error_type="protocol", path=rp.data_path)
        node.set_meta("ietf-netconf:operation", operation)
        set_position(node, insert)
    except BaseException:
        tree.free()
        raise
    return tree


def child_edit(schema: Schema, body: bytes, fmt: Fmt, rp: ResourcePath,
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
    tree, new = parse_under(schema, body, fmt, rp.segments)
    try:
        if len(new) != 1:
            raise InvalidValue(f"the body of a POST must hold exactly one child resource "
                               f"(it holds {len(new)})", error_type="protocol",
                               path=rp.data_path)
        node = new[0]
        if node.is_key:
            raise InvalidValue("a list key cannot be created on its own",
                               error_type="protocol", path=node.path)
        node.set_meta("ietf-netconf:operation", "create")
        set_position(node, insert)
        step = _step_of(node)
    except BaseException:
        tree.free()
        raise
    return tree, step


def _step_of(node: Node) -> Segment:
    """The resource-path step naming ``node`` (for a Location header)."""
    sn = node.schema
    keys = None
    value = None
    if sn.kind is Kind.LIST:
        vals = {k.name: k.value or "" for k in node.children() if k.is_key}
        keys = tuple((n, vals.get(n, "")) for n in sn.keys)
    elif sn.kind is Kind.LEAFLIST:
        value = node.value
    return Segment(sn.module, sn.name, sn.kind, sn, keys, value)


def data_root_edit(schema: Schema, body: bytes, fmt: Fmt) -> Tree:
    """PUT or PATCH on the datastore: ``ietf-restconf:data`` holding top-level nodes.
    The caller applies it with default-operation ``replace`` (PUT) or ``merge``."""
    inner = _unwrap_data(body, fmt)
    if not inner.strip() or inner.strip() == b"{}":
        return Tree(schema)
    tree, _ = parse_under(schema, inner, fmt, ())
    return tree


def delete_edit(existing: Node) -> Tree:
    """DELETE: a copy of the existing node (with its ancestors, keys only) marked delete."""
    tree = Tree.copy_of(existing, meta=False, recursive=False)
    try:
        node = tree.node(existing.path)
        assert node is not None
        node.set_meta("ietf-netconf:operation", "delete")
    except BaseException:
        tree.free()
        raise
    return tree


# -- replies ------------------------------------------------------------------

def encode_targets(tree: Tree | None, targets: Sequence[Node], rp: ResourcePath, fmt: Fmt,
                   with_defaults: WithDefaults | None, *, page: bool = False) -> str | None:
    """The reply body for the target resource of ``rp``: the datastore wrapped in
    ``ietf-restconf:data``, else the target nodes themselves.  None when nothing of
    the target is left to report (404).  ``page``: the targets are a page of list
    pagination, the only children of their parent besides its keys."""
    if page and targets and targets[0].kind is Kind.LEAFLIST and (
            fmt is Fmt.JSON or len(targets) == 1):
        return encode_node(targets[0], fmt, with_defaults, following=True)
    if rp.is_root:
        assert tree is not None, "the datastore resource prints the tree"
        printed = encode(tree, fmt, with_defaults)
        if fmt is Fmt.JSON:
            return '{"ietf-restconf:data":' + (printed or "{}") + "}"
        return f'<data xmlns="{RESTCONF_NS}">{printed}</data>'
    if len(targets) == 1:  # the usual case: one target
        one = encode_node(targets[0], fmt, with_defaults)
        return one if one and one != "{}" else None
    pieces = [encode_node(n, fmt, with_defaults) for n in targets]
    pieces = [p for p in pieces if p and p != "{}"]
    if not pieces:
        return None
    if len(pieces) == 1:
        return pieces[0]
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


def wants_xml_list(accept: str | None) -> bool:
    """Whether ``Accept`` names ``application/yang-data+xml-list`` (with q > 0)."""
    return bool(accept) and any(mt == XML_LIST_TYPE and q > 0
                                for mt, q in _media_ranges(accept or ""))


def encode_xml_list(targets: Sequence[Node], with_defaults: WithDefaults | None, *,
                    page: bool = False) -> str:
    """The entries of a list or leaf-list resource in one ``<xml-list>`` (``page``: a
    page of list pagination, see :func:`encode_targets`)."""
    if page and targets and targets[0].kind is Kind.LEAFLIST:
        inner = encode_node(targets[0], Fmt.XML, with_defaults, following=True)
    else:
        inner = "".join(encode_node(n, Fmt.XML, with_defaults) for n in targets)
    return f"<xml-list>{inner}</xml-list>"


# -- operations ---------------------------------------------------------------

def rpc_input(schema: Schema, body: bytes, fmt: Fmt, chain: Sequence[Segment],
              op: Segment) -> str:
    """A RESTCONF operation input (``{"mod:input": {...}}`` / ``<input xmlns=..>``, or
    no body) as the RFC 7951 JSON of the RPC or action (with its ancestors), which
    :meth:`nfo.datastore.Session.rpc` takes."""
    mod = op.module
    ns = op.schema.namespace
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
        root = xml.read(body, opaque_root=True)
        if root.name != "input" or root.ns != ns:
            raise InvalidValue(f'the input of {qualified} is <input xmlns="{ns}">...</input>',
                               error_type="protocol")
        if root.has_text:
            raise MalformedMessage("text directly inside <input> is not allowed")
        text = (f'<{op.name} xmlns="{xml_text(ns)}">'.encode() + root.content_xml()
                + f"</{op.name}>".encode())
        pfmt = Fmt.XML
    tree = Tree(schema)
    try:
        parent = build_chain(tree, chain)
        under = (tree, parent) if parent is not None else None
        parsed = Operation.parse(schema, text, pfmt, OpKind.RPC, under=under,
                                 what=f"parsing the input of {qualified}")
        if under is None:
            tree.free()
            tree = parsed.tree
        return tree.print(Fmt.JSON)
    finally:
        tree.free()


def rpc_output(reply: Tree, op: Segment, fmt: Fmt) -> str | None:
    """The reply's output as ``{"mod:output": {...}}`` / ``<output xmlns=..>``; None
    when the operation has no output to report (204)."""
    nodes = reply.nodes()
    node = nodes[0] if nodes else None
    while node is not None and node.schema != op.schema:
        node = next((c for c in node.children() if not c.is_key), None)
    if node is None or not node.children():
        return None
    printed = encode_node(node, fmt)
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
    inner = "".join(f'<{n} xmlns="{xml_text(ns)}"/>' for _, n, ns in ops)
    return f'<operations xmlns="{RESTCONF_NS}">{inner}</operations>'
