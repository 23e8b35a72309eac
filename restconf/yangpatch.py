"""YANG Patch (RFC 8072) for the RESTCONF front end.

A YANG Patch is an ordered list of edits, each one an operation (create,
delete, insert, merge, move, replace, remove) on a target below the patch's
target resource.  nfo applies it exactly as it applies an edit-config with
several edits: every edit becomes one edit tree carrying
``ietf-netconf:operation`` (and ``yang:insert``/``yang:key``/``yang:value``
for positions) on its target node, and all of them go to ONE
:meth:`~nfo.datastore.Session.edit_many` call with default-operation
``none``, so the patch is all-or-nothing: one validation of the final
result, one durable commit, or nothing.

Which edit failed?  The datastore refuses a transaction as a whole.  When
that happens, :func:`apply_yang_patch` re-runs the edits with
``test-only`` (nothing is stored, change subscribers are not called): first
none of them (an error that comes back without any edit is global: a lock,
a closed session), then one prefix after the other, and names the first
edit whose prefix reproduces the same error (same tag, path and message).
That is at most n + 1 extra trial transactions, paid only on failure, which
is cheap next to a client round trip for patches of a few hundred edits.
An error no trial reproduces (a change subscriber's veto, or a concurrent
writer changing the data meanwhile) is reported in the global ``errors``.

Errors found while *building* the edits (a bad envelope, target, point or
value; a move of an entry that cannot exist at that point; deleting a leaf
that cannot exist) are reported for their edit straight away, without
trying the edits before it; nothing is applied either way.

``move`` is a ``merge`` with a new position.  A merge would create a missing
entry, so the planner checks that the entry exists in the datastore or is
created by an earlier edit of the same patch (and not deleted after).  The
check reads the live tree before the transaction takes the write lock: a
concurrent writer deleting that very entry in between could let the move
recreate it with only its keys (validation still runs on the result).

The ``ietf-yang-patch:yang-patch-status`` reply is built here, in JSON or
XML; HTTP status codes follow RFC 8040 section 7 (400 for malformed or
invalid input, 409 for conflicts with the data, see :data:`_STATUS`).
"""

from __future__ import annotations

import json
import re
import urllib.parse
import xml.parsers.expat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

from nfo.datastore import Precondition, Session
from nfo.errors import (
    DataMissing,
    ErrorDetail,
    InvalidValue,
    MalformedMessage,
    MissingElement,
    NfoError,
    PreconditionFailed,
    UnknownElement,
    Veto,
)
from nfo.restconf.codec import load_json
from nfo.schema import ly
from nfo.schema.data import Tree, node_path, path_steps, siblings
from nfo.schema.ly import ffi, lib

__all__ = [
    "JSON_MEDIA_TYPE",
    "XML_MEDIA_TYPE",
    "YANG_PATCH_JSON",
    "YANG_PATCH_NS",
    "YANG_PATCH_XML",
    "PatchResult",
    "apply_yang_patch",
]

YANG_PATCH_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-patch"
RESTCONF_NS = "urn:ietf:params:xml:ns:yang:ietf-restconf"
JSON_MEDIA_TYPE = "application/yang-data+json"
XML_MEDIA_TYPE = "application/yang-data+xml"
YANG_PATCH_JSON = "application/yang-patch+json"
"""Request media types of a YANG Patch (RFC 8072 section 4.2.1)."""
YANG_PATCH_XML = "application/yang-patch+xml"

Encoding = Literal["json", "xml"]

_OPERATIONS = ("create", "delete", "insert", "merge", "move", "replace", "remove")
_NC_OP = {"create": "create", "delete": "delete", "insert": "create", "merge": "merge",
          "move": "merge", "replace": "replace", "remove": "remove"}
_WITH_VALUE = ("create", "merge", "replace", "insert")
_WHERE = ("before", "after", "first", "last")
_EDIT_MEMBERS = ("edit-id", "operation", "target", "point", "where", "value")
_PARSE_EDIT = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE
_DATA_NODES = (lib.LYS_CONTAINER | lib.LYS_LIST | lib.LYS_LEAF | lib.LYS_LEAFLIST
               | lib.LYS_ANYDATA | lib.LYS_ANYXML)
_IDENT = re.compile(r"^(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*)$")
_XML_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_PREFIXED = re.compile(r"([A-Za-z_][\w.-]*):")

_STATUS: dict[str, int] = {
    # RFC 8040 section 7, narrowed to what a patch can meet
    "in-use": 409, "lock-denied": 409, "resource-denied": 409, "data-exists": 409,
    "data-missing": 409, "operation-failed": 409, "rollback-failed": 500,
    "partial-operation": 500, "access-denied": 403, "too-big": 413,
    "operation-not-supported": 501,
}
"""error-tag -> HTTP status; every other tag (invalid-value, malformed-message,
missing-element, bad-attribute, unknown-element, ...) is 400.  operation-failed
(a must, unique or min/max constraint of the result) is a conflict with the
data, hence 409."""


@dataclass(frozen=True)
class PatchResult:
    """What the route sends back: HTTP status, body and its media type."""

    status: int
    body: str
    content_type: str


# -- the patch envelope ------------------------------------------------------


@dataclass
class _Edit:
    edit_id: str
    operation: str
    target: str
    point: str | None = None
    where: str | None = None
    value: str | None = None
    """The value's content as text in the request's encoding (JSON object or XML elements)."""


@dataclass
class _Patch:
    patch_id: str
    comment: str | None
    edits: list[_Edit] = field(default_factory=list)


class _Refused(Exception):
    """The patch is refused before anything is tried; ``edit_id`` names the culprit."""

    def __init__(self, error: NfoError, patch_id: str | None = None,
                 edit_id: str | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.patch_id = patch_id
        self.edit_id = edit_id


def _bad(message: str, cls: type[NfoError] = InvalidValue, **kw: Any) -> NfoError:
    return cls(message, error_type="protocol", **kw)


def _check_edits(patch: _Patch) -> None:
    """The envelope rules of RFC 8072 (mandatory leaves, when-conditions, keys)."""
    seen: set[str] = set()
    for e in patch.edits:
        def refuse(msg: str, cls: type[NfoError] = InvalidValue, e: _Edit = e) -> _Refused:
            return _Refused(_bad(msg, cls), patch.patch_id, e.edit_id or None)
        if not e.edit_id:
            raise _Refused(_bad("every edit needs an edit-id", MissingElement,
                                info={"bad-element": "edit-id"}), patch.patch_id)
        if e.edit_id in seen:
            raise _Refused(_bad(f"edit-id {e.edit_id!r} is used twice",
                                info={"bad-element": "edit-id"}), patch.patch_id)
        seen.add(e.edit_id)
        if not e.operation:
            raise refuse("the edit has no operation", MissingElement)
        if e.operation not in _OPERATIONS:
            raise refuse(f"unknown operation {e.operation!r} (use one of "
                         f"{', '.join(_OPERATIONS)})")
        if not e.target:
            raise refuse("the edit has no target", MissingElement)
        if e.operation in _WITH_VALUE and e.value is None:
            raise refuse(f"operation {e.operation} needs a value", MissingElement)
        if e.operation not in _WITH_VALUE and e.value is not None:
            raise refuse(f"operation {e.operation} takes no value")
        if e.operation in ("insert", "move"):
            if e.where is not None and e.where not in _WHERE:
                raise refuse(f"invalid where {e.where!r} (use one of {', '.join(_WHERE)})")
            if e.where in ("before", "after") and e.point is None:
                raise refuse(f"where {e.where} needs a point", MissingElement)
            if e.where not in ("before", "after") and e.point is not None:
                raise refuse("point is only allowed with where before or after")
        elif e.where is not None or e.point is not None:
            raise refuse("where and point are only allowed with insert and move")


# JSON --------------------------------------------------------------------------


def _parse_json(body: bytes) -> _Patch:
    try:
        doc = load_json(body)
    except MalformedMessage as e:
        raise _Refused(e) from None
    except UnicodeDecodeError as e:
        raise _Refused(_bad(f"malformed JSON: {e}", MalformedMessage)) from None
    if not isinstance(doc, dict) or list(doc) != ["ietf-yang-patch:yang-patch"]:
        raise _Refused(_bad("the body must be one ietf-yang-patch:yang-patch object",
                            MalformedMessage))
    yp = doc["ietf-yang-patch:yang-patch"]
    if not isinstance(yp, dict):
        raise _Refused(_bad("ietf-yang-patch:yang-patch must be an object", MalformedMessage))
    for k in yp:
        if k not in ("patch-id", "comment", "edit"):
            raise _Refused(_bad(f"unknown member {k!r} in yang-patch", UnknownElement,
                                info={"bad-element": k}))
    pid = yp.get("patch-id")
    if not isinstance(pid, str) or not pid:
        raise _Refused(_bad("the patch needs a patch-id (a string)", MissingElement,
                            info={"bad-element": "patch-id"}))
    comment = yp.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise _Refused(_bad("comment must be a string"), pid)
    edits = yp.get("edit", [])
    if not isinstance(edits, list):
        raise _Refused(_bad("edit must be an array"), pid)
    patch = _Patch(pid, comment)
    for raw in edits:
        if not isinstance(raw, dict):
            raise _Refused(_bad("every edit must be an object"), pid)
        eid = raw.get("edit-id")
        eid_s = eid if isinstance(eid, str) else None
        for k, v in raw.items():
            if k not in _EDIT_MEMBERS:
                raise _Refused(_bad(f"unknown member {k!r} in an edit", UnknownElement,
                                    info={"bad-element": k}), pid, eid_s)
            if k != "value" and not isinstance(v, str):
                raise _Refused(_bad(f"{k} must be a string"), pid, eid_s)
        value = raw.get("value")
        text: str | None = None
        if "value" in raw:
            if not isinstance(value, dict):
                raise _Refused(_bad("value must be an object holding the target node"),
                               pid, eid_s)
            text = json.dumps(value, ensure_ascii=False)
        patch.edits.append(_Edit(
            edit_id=raw.get("edit-id", ""), operation=raw.get("operation", ""),
            target=raw.get("target", ""), point=raw.get("point"), where=raw.get("where"),
            value=text))
    return patch


# XML ---------------------------------------------------------------------------


@dataclass
class _XNode:
    """A minimal element tree that keeps every element's in-scope prefixes
    (identityref and instance-identifier values use them in text)."""

    ns: str
    name: str
    attrs: dict[str, str]
    nsmap: dict[str, str]
    content: list[_XNode | str] = field(default_factory=list)

    def elements(self) -> list[_XNode]:
        return [c for c in self.content if isinstance(c, _XNode)]

    def text(self) -> str:
        return "".join(c for c in self.content if isinstance(c, str))


def _xml_tree(body: bytes) -> _XNode:
    """Parse with expat; a DOCTYPE (and with it any ENTITY) is refused outright."""
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[_XNode] = []
    pending: dict[str, str] = {}
    root: list[_XNode] = []

    def refuse(*_: Any) -> None:
        raise ValueError("DOCTYPE and ENTITY declarations are not allowed")

    def ns_decl(prefix: str | None, uri: str | None) -> None:
        pending[prefix or ""] = uri or ""

    def split(name: str) -> tuple[str, str]:
        ns, _, local = name.rpartition(" ")
        return ns, local

    def start(name: str, attrs: dict[str, str]) -> None:
        nsmap = dict(stack[-1].nsmap) if stack else {}
        nsmap.update(pending)
        pending.clear()
        ns, local = split(name)
        node = _XNode(ns, local, dict(attrs), nsmap)
        if stack:
            stack[-1].content.append(node)
        else:
            root.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1].content.append(data)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartNamespaceDeclHandler = ns_decl
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except (xml.parsers.expat.ExpatError, ValueError) as e:
        raise _Refused(_bad(f"malformed XML: {e}", MalformedMessage)) from None
    return root[0]


def _xml_fragment(node: _XNode, parent_nsmap: dict[str, str]) -> str:
    """``node`` as standalone XML: it declares its namespace and every prefix in
    scope that its parent (the one it was cut from, or nothing) did not."""
    attrs = [f"xmlns={quoteattr(node.ns)}"]
    for pfx, uri in sorted(node.nsmap.items()):
        if pfx and parent_nsmap.get(pfx) != uri:
            attrs.append(f"xmlns:{pfx}={quoteattr(uri)}")
    for name, value in node.attrs.items():
        ns, _, local = name.rpartition(" ")
        if not ns:
            attrs.append(f"{local}={quoteattr(value)}")
            continue
        if ns == _XML_NS:
            prefix: str | None = "xml"
        else:
            prefix = next((p for p, u in sorted(node.nsmap.items()) if p and u == ns), None)
        if prefix is None:
            raise _Refused(_bad(f"attribute {local!r} has an undeclared namespace",
                                MalformedMessage))
        attrs.append(f"{prefix}:{local}={quoteattr(value)}")
    inner = "".join(_xml_fragment(c, node.nsmap) if isinstance(c, _XNode) else escape(c)
                    for c in node.content)
    return f"<{node.name} {' '.join(attrs)}>{inner}</{node.name}>"


def _parse_xml(body: bytes) -> _Patch:
    root = _xml_tree(body)
    if (root.ns, root.name) != (YANG_PATCH_NS, "yang-patch"):
        raise _Refused(_bad(f"the body must be a yang-patch element in namespace "
                            f"{YANG_PATCH_NS}", MalformedMessage))
    if root.text().strip():
        raise _Refused(_bad("unexpected text in yang-patch", MalformedMessage))

    def leaf(el: _XNode, pid: str | None, eid: str | None) -> str:
        if el.elements():
            raise _Refused(_bad(f"{el.name} must hold text only"), pid, eid)
        return el.text()

    fields: dict[str, str] = {}
    edit_elements: list[_XNode] = []
    for el in root.elements():
        if el.ns != YANG_PATCH_NS or el.name not in ("patch-id", "comment", "edit"):
            raise _Refused(_bad(f"unknown element {el.name!r} in yang-patch", UnknownElement,
                                info={"bad-element": el.name}))
        if el.name == "edit":
            edit_elements.append(el)
        elif el.name in fields:
            raise _Refused(_bad(f"{el.name} is given twice"))
        else:
            fields[el.name] = leaf(el, None, None)
    pid = fields.get("patch-id")
    if not pid:
        raise _Refused(_bad("the patch needs a patch-id", MissingElement,
                            info={"bad-element": "patch-id"}))
    patch = _Patch(pid, fields.get("comment"))
    for ed in edit_elements:
        found: dict[str, _XNode] = {}
        for el in ed.elements():
            if el.ns != YANG_PATCH_NS or el.name not in _EDIT_MEMBERS:
                raise _Refused(_bad(f"unknown element {el.name!r} in an edit", UnknownElement,
                                    info={"bad-element": el.name}), pid)
            if el.name in found:
                raise _Refused(_bad(f"{el.name} is given twice in an edit"), pid)
            found[el.name] = el
        eid = leaf(found["edit-id"], pid, None) if "edit-id" in found else ""
        vals = {k: leaf(v, pid, eid or None) for k, v in found.items() if k != "value"}
        value: str | None = None
        if "value" in found:
            v = found["value"]
            if v.text().strip():
                raise _Refused(_bad("value must hold elements, not text"), pid, eid or None)
            value = "".join(_xml_fragment(c, {}) for c in v.elements())
        patch.edits.append(_Edit(
            edit_id=eid, operation=vals.get("operation", ""), target=vals.get("target", ""),
            point=vals.get("point"), where=vals.get("where"), value=value))
    return patch


def _parse_patch(body: bytes, fmt: str) -> _Patch:
    patch = _parse_json(body) if fmt == "json" else _parse_xml(body)
    _check_edits(patch)
    return patch


# -- paths -------------------------------------------------------------------


@dataclass(frozen=True)
class _Seg:
    snode: Any
    """The schema node (``struct lysc_node *``)."""
    module: str
    text: str
    """The segment of a libyang data path: ``[module:]name[predicates]``."""


def _module_of(snode: Any) -> str:
    return str(ffi.string(snode.module.name).decode())


def _find_child(ctx: Any, parent: Any, module: str | None, name: str, where: str) -> Any:
    """The data schema node ``module:name`` below ``parent`` (NULL: top level);
    choices and cases are looked through."""
    if parent == ffi.NULL:
        if module is None:
            raise InvalidValue(f"{where}: a top-level node needs its module name "
                               f"({name!r} is not qualified)")
        mod = lib.ly_ctx_get_module_latest(ctx, module.encode())
        if mod == ffi.NULL or not mod.implemented:
            raise UnknownElement(f"{where}: unknown module {module!r}",
                                 info={"bad-element": f"{module}:{name}"})
        compiled, sparent = mod.compiled, ffi.NULL
    else:
        module = module or _module_of(parent)
        compiled, sparent = ffi.NULL, parent
    c = lib.lys_getnext(ffi.NULL, sparent, compiled, 0)
    while c != ffi.NULL:
        if (c.nodetype & _DATA_NODES and ffi.string(c.name).decode() == name
                and _module_of(c) == module):
            return c
        c = lib.lys_getnext(c, sparent, compiled, 0)
    raise UnknownElement(f"{where}: no data node {module}:{name}"
                         + (f" below {ffi.string(parent.name).decode()}"
                            if parent != ffi.NULL else ""),
                         info={"bad-element": name})


def _split_ly(path: str) -> list[str]:
    """The segments of a libyang data path (quotes in predicates respected)."""
    if path in ("", "/"):
        return []
    if not path.startswith("/"):
        raise InvalidValue(f"the target {path!r} is not an absolute data path")
    return path_steps(path)


def _resolve_ly(ctx: Any, path: str) -> list[_Seg]:
    """Schema nodes along a libyang data path (the patch target)."""
    segs: list[_Seg] = []
    parent = ffi.NULL
    for raw in _split_ly(path):
        head = raw.split("[", 1)[0]
        m = _IDENT.match(head)
        if not m:
            raise InvalidValue(f"malformed data path {path!r}")
        snode = _find_child(ctx, parent, m.group(1), m.group(2), "the patch target")
        segs.append(_Seg(snode, _module_of(snode), raw))
        parent = snode
    return segs


def _quote(value: str, what: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise InvalidValue(f"{what}: a key value with both quote characters cannot be addressed")


def _data_path(ctx: Any, path: str, parent: Any = ffi.NULL) -> list[_Seg]:
    """A RESTCONF data resource path (RFC 8040 section 3.5.3), relative to the
    schema node ``parent`` (NULL: the datastore root), as libyang path segments.

    ``/mod:cont/list=k1,k2`` gives ``/mod:cont``, ``list[a='k1'][b='k2']``;
    a leaf-list entry ``/mod:ll=v`` gives ``ll[.='v']``.  Values are percent-
    decoded; the module prefix is required at the top and where the module
    changes, and kept only there.  "/" alone gives no segment.
    (restconf/paths.py will carry the public version of this.)
    """
    if not path.startswith("/"):
        raise InvalidValue(f"the path {path!r} must start with '/'")
    if path == "/":
        return []
    segs: list[_Seg] = []
    for raw in path[1:].split("/"):
        ident, eq, keys = raw.partition("=")
        try:
            ident = urllib.parse.unquote(ident, errors="strict")
            values = [urllib.parse.unquote(k, errors="strict") for k in keys.split(",")]
        except UnicodeDecodeError:
            raise InvalidValue(f"{path!r}: bad percent-encoding") from None
        m = _IDENT.match(ident)
        if not m:
            raise InvalidValue(f"{path!r}: malformed segment {raw!r}")
        snode = _find_child(ctx, parent, m.group(1), m.group(2), repr(path))
        if snode.flags & lib.LYS_CONFIG_R:
            raise InvalidValue(f"{path!r}: {ident} is not configuration data")
        module = _module_of(snode)
        name = m.group(2)
        text = name if parent != ffi.NULL and module == _module_of(parent) else f"{module}:{name}"
        kind = snode.nodetype
        if kind == lib.LYS_LIST:
            key_names = _key_names(snode)
            if not eq or len(values) != len(key_names):
                raise InvalidValue(f"{path!r}: list {name} needs its {len(key_names)} key "
                                   f"value(s) ({', '.join(key_names)})",
                                   info={"bad-element": name})
            text += "".join(f"[{k}={_quote(v, repr(path))}]"
                            for k, v in zip(key_names, values, strict=True))
        elif kind == lib.LYS_LEAFLIST:
            if not eq or len(values) != 1:
                raise InvalidValue(f"{path!r}: leaf-list {name} needs one value",
                                   info={"bad-element": name})
            text += f"[.={_quote(values[0], repr(path))}]"
        elif eq:
            raise InvalidValue(f"{path!r}: {name} is not a list or leaf-list; it takes "
                               f"no key value", info={"bad-element": name})
        segs.append(_Seg(snode, module, text))
        parent = snode
    return segs


def _key_names(snode: Any) -> list[str]:
    out = []
    c = lib.lysc_node_child(snode)
    while c != ffi.NULL and c.flags & lib.LYS_KEY:
        out.append(ffi.string(c.name).decode())
        c = c.next
    return out


def _join(segs: Sequence[_Seg]) -> str:
    return "".join("/" + s.text for s in segs)


def _under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor + "/")


# -- building edit trees -----------------------------------------------------


@dataclass
class _Planned:
    edit: _Edit
    path: str
    """Data path of the target node."""
    tree: Tree | None
    """The edit tree; None for a remove of something that cannot exist."""


def _find(ctx: Any, tree: Tree, path: str) -> Any:
    """The node at ``path`` in ``tree``, or NULL."""
    root = tree.first()
    if root == ffi.NULL:
        return ffi.NULL
    out = ffi.new("struct lyd_node **")
    rc = lib.lyd_find_path(root, path.encode(), False, out)
    if rc == lib.LY_SUCCESS:
        return out[0]
    lib.ly_err_clean(ctx, ffi.NULL)
    return ffi.NULL


def _new_path(ctx: Any, tree: Tree, path: str) -> Any:
    """Create ``path`` (and its parents, with list keys) in ``tree``; the node."""
    out = ffi.new("struct lyd_node **")
    parent = tree.first() if tree.first() != ffi.NULL else ffi.NULL
    ly.check(lib.lyd_new_path(parent, ctx, path.encode(), ffi.NULL, 0, out), ctx,
             "building an edit")
    if tree.root == ffi.NULL:
        top = out[0]
        while top.parent != ffi.NULL:
            top = ffi.cast("struct lyd_node *", top.parent)
        tree.root = top
    node = _find(ctx, tree, path)
    if node == ffi.NULL:
        raise InvalidValue(f"{path}: could not be built")
    return node


def _set_meta(ctx: Any, node: Any, name: str, value: str) -> None:
    rc = ly.xlib.lyd_new_meta(ly.xnode(ctx), ly.xnode(node), ly.xffi.NULL, name.encode(),
                              value.encode(), 0, ly.xffi.NULL)
    if rc != lib.LY_SUCCESS:
        ly.raise_last(ctx, f"setting {name}")


def _has_meta(node: Any) -> bool:
    if node.meta != ffi.NULL:
        return True
    if node.schema != ffi.NULL and node.schema.nodetype & (lib.LYS_LEAF | lib.LYS_LEAFLIST):
        return False
    return any(_has_meta(c) for c in siblings(lib.lyd_child(node)))


def _parse_value(ctx: Any, parent: Any, text: str, fmt: str) -> Any:
    """Parse ``text`` as children of ``parent`` (NULL: top level); returns the
    first new top-level node when ``parent`` is NULL."""
    raw = text.encode()
    buf = ffi.new("char[]", raw)
    inp = ffi.new("struct ly_in **")
    ly.check(lib.ly_in_new_memory(buf, inp), ctx, "reading a value")
    out = ffi.new("struct lyd_node **")
    try:
        rc = lib.lyd_parse_data(ctx, parent, inp[0], lib.LYD_JSON if fmt == "json"
                                else lib.LYD_XML, _PARSE_EDIT, 0, out)
    finally:
        lib.ly_in_free(inp[0], 0)
    if rc != lib.LY_SUCCESS:
        if parent == ffi.NULL and out[0] != ffi.NULL:
            lib.lyd_free_all(out[0])
        ly.raise_last(ctx, "parsing the edit value")
    return out[0] if parent == ffi.NULL else ffi.NULL


class _Planner:
    def __init__(self, ctx: Any, live: Tree, base: list[_Seg], base_path: str,
                 fmt: str) -> None:
        self.ctx = ctx
        self.live = live
        self.base = base
        self.base_path = base_path.rstrip("/")
        self.fmt = fmt
        self.done: list[_Planned] = []

    def _resolve(self, rel: str) -> tuple[str, str, Any, str]:
        """(target path, parent path, schema node, last segment) of a relative target."""
        parent_snode = self.base[-1].snode if self.base else ffi.NULL
        segs = _data_path(self.ctx, rel, parent_snode)
        if segs:
            return (self.base_path + _join(segs), self.base_path + _join(segs[:-1]),
                    segs[-1].snode, segs[-1].text)
        if not self.base:
            raise InvalidValue("an edit target must identify a data resource, not the "
                               "datastore")
        parent = "".join("/" + s.text for s in self.base[:-1])
        return self.base_path, parent, self.base[-1].snode, self.base[-1].text

    def plan(self, e: _Edit) -> _Planned:
        path, parent_path, snode, last = self._resolve(e.target)
        tree = Tree(self.ctx)
        try:
            planned = _Planned(e, path, tree)
            if e.operation in ("insert", "move"):
                self._check_ordered(snode, path)
            if e.value is not None:
                node = self._with_value(tree, e, path, parent_path)
            elif snode.nodetype & lib.LYS_LEAF:
                node = self._leaf(tree, e, path, parent_path)
                if node is None:
                    tree.free()
                    planned.tree = None
                    return planned
            else:
                if e.operation == "move":
                    self._check_exists(path)
                node = _new_path(self.ctx, tree, path)
            _set_meta(self.ctx, node, "ietf-netconf:operation", _NC_OP[e.operation])
            if e.operation in ("insert", "move"):
                self._position(node, snode, e, parent_path, last)
        except BaseException:
            tree.free()
            raise
        return planned

    def _check_ordered(self, snode: Any, path: str) -> None:
        if not (snode.nodetype & (lib.LYS_LIST | lib.LYS_LEAFLIST)
                and snode.flags & lib.LYS_ORDBY_USER):
            raise InvalidValue("insert and move need an entry of an ordered-by user list "
                               "or leaf-list", path=path)

    def _with_value(self, tree: Tree, e: _Edit, path: str, parent_path: str) -> Any:
        assert e.value is not None
        if parent_path:
            parent = _new_path(self.ctx, tree, parent_path)
            before = {ly.addr(c) for c in siblings(lib.lyd_child(parent))}
            _parse_value(self.ctx, parent, e.value, self.fmt)
            new = [c for c in siblings(lib.lyd_child(parent)) if ly.addr(c) not in before]
        else:
            tree.root = _parse_value(self.ctx, ffi.NULL, e.value, self.fmt)
            new = list(siblings(tree.first()))
        if len(new) != 1:
            raise InvalidValue(f"the value must hold exactly one instance of the target "
                               f"node (it holds {len(new)})", path=path)
        node = new[0]
        if _find(self.ctx, tree, path) != node:
            raise InvalidValue("the value does not match the edit target (name or key "
                               f"values differ): {node_path(node)}", path=path)
        if _has_meta(node):
            raise InvalidValue("a value may not carry metadata (operations, positions)",
                               path=path)
        return node

    def _leaf(self, tree: Tree, e: _Edit, path: str, parent_path: str) -> Any | None:
        """delete/remove of a leaf: the edit node needs some valid value; it is taken
        from the datastore or an earlier edit.  None: the leaf cannot exist there."""
        source = ffi.NULL
        for p in reversed(self.done):
            if p.tree is not None:
                source = _find(self.ctx, p.tree, path)
                if source != ffi.NULL:
                    break
        if source == ffi.NULL:
            source = _find(self.ctx, self.live, path)
        if source == ffi.NULL or source.flags & lib.LYD_DEFAULT:
            if e.operation == "remove":
                return None
            raise DataMissing("the data to delete does not exist", path=path)
        parent = _new_path(self.ctx, tree, parent_path) if parent_path else ffi.NULL
        out = ly.xffi.new("void **")
        ly.check(ly.xlib.lyd_dup_single(ly.xnode(source), ly.xnode(parent)
                                        if parent != ffi.NULL else ly.xffi.NULL,
                                        lib.LYD_DUP_NO_META, out), self.ctx, "building an edit")
        node = ly.fromx(out[0])
        if parent == ffi.NULL:
            tree.root = node
        return node

    def _check_exists(self, path: str) -> None:
        """A move needs the entry to exist when the move is applied."""
        exists = _find(self.ctx, self.live, path) != ffi.NULL
        for p in self.done:
            op = p.edit.operation
            if op in ("delete", "remove") and _under(path, p.path):
                exists = False
            elif op in _WITH_VALUE and p.tree is not None:
                if _find(self.ctx, p.tree, path) != ffi.NULL:
                    exists = True
                elif op == "replace" and _under(path, p.path):
                    exists = False
        if not exists:
            raise DataMissing("the entry to move does not exist", path=path)

    def _position(self, node: Any, snode: Any, e: _Edit, parent_path: str, last: str) -> None:
        where = e.where or "last"
        _set_meta(self.ctx, node, "yang:insert", where)
        if where not in ("before", "after"):
            return
        assert e.point is not None
        ppath, pparent, psnode, plast = self._resolve(e.point)
        if psnode != snode or pparent != parent_path:
            raise InvalidValue(f"the point {e.point!r} is not an entry of the same list "
                               f"or leaf-list as the target", path=ppath)
        pred = plast[plast.index("["):]
        if snode.nodetype & lib.LYS_LIST:
            _set_meta(self.ctx, node, "yang:key", pred)
        else:
            _set_meta(self.ctx, node, "yang:value", _unquote_pred(pred))


def _unquote_pred(pred: str) -> str:
    """``[.='v']`` -> ``v``."""
    return pred[len("[.="):-1][1:-1]


# -- applying ----------------------------------------------------------------


def _signature(e: NfoError) -> tuple[str, str | None, str]:
    return (e.tag, e.path, e.message)


async def _locate(session: Session, datastore: str, planned: list[_Planned],
                  error: NfoError) -> _Edit | None:
    """The first edit whose prefix reproduces ``error`` with test-only; None: global."""
    if isinstance(error, Veto):
        return None
    want = _signature(error)
    trees: list[Tree] = []
    for i in range(len(planned) + 1):
        if i > 0:
            t = planned[i - 1].tree
            if t is None:
                continue
            trees.append(t)
        try:
            await session.edit_many(datastore, trees, default_operation="none",
                                    test_option="test-only")
        except NfoError as e:
            if _signature(e) == want:
                return planned[i - 1].edit if i > 0 else None
    return None


async def apply_yang_patch(
    session: Session,
    datastore: str,
    target: str,
    body: bytes,
    fmt: Encoding | str,
    reply_fmt: Encoding | str | None = None,
    *,
    precondition: Precondition | None = None,
) -> PatchResult:
    """Apply a YANG Patch document to ``datastore``, all or nothing.

    ``target``: libyang data path of the patch's target resource ("" or "/"
    for the datastore root); ``fmt``: the body's encoding (``json`` for
    application/yang-patch+json, ``xml``); ``reply_fmt``: the encoding of the
    yang-patch-status reply (from Accept; default ``fmt``).  The route checks
    that the target resource exists (404) before calling: the edits' parent
    nodes are built with operation ``none``, which would create them.
    ``precondition`` is checked by the datastore under its write lock right
    before the patch is applied.  Returns the reply; raises only on programming
    errors (bad ``fmt``), on non-NfoError failures of the datastore and with the
    :class:`PreconditionFailed` that refused the patch.
    """
    out: str = reply_fmt or fmt
    if fmt not in ("json", "xml") or out not in ("json", "xml"):
        raise ValueError(f"unknown encoding {fmt!r}/{out!r}")
    ctx = session.datastore.ctx
    try:
        patch = _parse_patch(body, fmt)
    except _Refused as r:
        return _refused(ctx, r, out)
    planned: list[_Planned] = []
    try:
        try:
            live = session.datastore.tree(datastore)
            base = _resolve_ly(ctx, target)
        except NfoError as err:
            return _report(ctx, patch.patch_id, out, err)
        planner = _Planner(ctx, live, base, target, fmt)
        planner.done = planned
        for e in patch.edits:
            try:
                planned.append(planner.plan(e))
            except NfoError as err:
                return _report(ctx, patch.patch_id, out, err, e.edit_id)
        trees = [p.tree for p in planned if p.tree is not None]
        label = f"yang-patch {patch.patch_id}" + (f": {patch.comment}" if patch.comment else "")
        try:
            await session.edit_many(datastore, trees, default_operation="none", label=label,
                                    precondition=precondition)
        except PreconditionFailed:
            raise
        except NfoError as err:
            failed = await _locate(session, datastore, planned, err)
            return _report(ctx, patch.patch_id, out, err,
                           failed.edit_id if failed is not None else None)
        return PatchResult(200, _status_doc(ctx, out, patch.patch_id), _media(out))
    finally:
        for p in planned:
            if p.tree is not None:
                p.tree.free()


# -- replies -----------------------------------------------------------------


def _media(fmt: str) -> str:
    return JSON_MEDIA_TYPE if fmt == "json" else XML_MEDIA_TYPE


def _http_status(e: NfoError) -> int:
    return _STATUS.get(e.tag, 400)


def _refused(ctx: Any, r: _Refused, fmt: str) -> PatchResult:
    if r.patch_id is None:
        body = (json.dumps({"ietf-restconf:errors": _errors_json(r.error.errors)})
                if fmt == "json" else _errors_xml(ctx, r.error.errors, RESTCONF_NS))
        return PatchResult(_http_status(r.error), body, _media(fmt))
    return _report(ctx, r.patch_id, fmt, r.error, r.edit_id)


def _report(ctx: Any, patch_id: str, fmt: str, error: NfoError,
            edit_id: str | None = None) -> PatchResult:
    return PatchResult(_http_status(error),
                       _status_doc(ctx, fmt, patch_id, error=error, edit_id=edit_id),
                       _media(fmt))


def _errors_json(errors: list[ErrorDetail]) -> dict[str, Any]:
    out = []
    for d in errors:
        e: dict[str, Any] = {"error-type": d.error_type, "error-tag": d.tag}
        if d.app_tag:
            e["error-app-tag"] = d.app_tag
        if d.path:
            e["error-path"] = d.path
        e["error-message"] = d.message
        if d.info:
            e["error-info"] = dict(d.info)
        out.append(e)
    return {"error": out}


def _x(text: str) -> str:
    return escape(_XML_BAD_CHARS.sub("?", text))


def _xml_path(ctx: Any, path: str) -> tuple[str, dict[str, str]]:
    """A libyang (JSON-prefixed) path with XML prefixes: the module names serve as
    prefixes, declared with their namespaces."""
    decls: dict[str, str] = {}
    out: list[str] = []
    i = 0
    quote: str | None = None
    while i < len(path):
        ch = path[i]
        if quote is not None:
            if ch == quote:
                quote = None
            out.append(ch)
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            out.append(ch)
            i += 1
            continue
        m = _PREFIXED.match(path, i)
        if m and (i == 0 or path[i - 1] in "/[("):
            mod = lib.ly_ctx_get_module_latest(ctx, m.group(1).encode())
            if mod != ffi.NULL:
                decls[m.group(1)] = ffi.string(mod.ns).decode()
            out.append(m.group(0))
            i = m.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out), decls


def _errors_xml(ctx: Any, errors: list[ErrorDetail], ns: str | None = None) -> str:
    xmlns = f" xmlns={quoteattr(ns)}" if ns else ""
    parts = [f"<errors{xmlns}>"]
    for d in errors:
        parts.append("<error>")
        parts.append(f"<error-type>{_x(d.error_type)}</error-type>")
        parts.append(f"<error-tag>{_x(d.tag)}</error-tag>")
        if d.app_tag:
            parts.append(f"<error-app-tag>{_x(d.app_tag)}</error-app-tag>")
        if d.path:
            text, decls = _xml_path(ctx, d.path)
            attrs = "".join(f" xmlns:{p}={quoteattr(u)}" for p, u in sorted(decls.items()))
            parts.append(f"<error-path{attrs}>{_x(text)}</error-path>")
        parts.append(f"<error-message>{_x(d.message)}</error-message>")
        if d.info:
            info = "".join(f"<{k}>{_x(v)}</{k}>" for k, v in d.info.items()
                           if _XML_NAME.match(k) and not k.lower().startswith("xml"))
            parts.append(f"<error-info>{info}</error-info>")
        parts.append("</error>")
    parts.append("</errors>")
    return "".join(parts)


def _status_doc(ctx: Any, fmt: str, patch_id: str, *, error: NfoError | None = None,
                edit_id: str | None = None) -> str:
    """The ietf-yang-patch:yang-patch-status document (RFC 8072 section 2.3)."""
    if fmt == "json":
        st: dict[str, Any] = {"patch-id": patch_id}
        if error is None:
            st["ok"] = [None]
        elif edit_id is None:
            st["errors"] = _errors_json(error.errors)
        else:
            st["edit-status"] = {"edit": [{"edit-id": edit_id,
                                           "errors": _errors_json(error.errors)}]}
        return json.dumps({"ietf-yang-patch:yang-patch-status": st})
    parts = [f"<yang-patch-status xmlns={quoteattr(YANG_PATCH_NS)}>",
             f"<patch-id>{_x(patch_id)}</patch-id>"]
    if error is None:
        parts.append("<ok/>")
    elif edit_id is None:
        parts.append(_errors_xml(ctx, error.errors))
    else:
        parts.append(f"<edit-status><edit><edit-id>{_x(edit_id)}</edit-id>"
                     f"{_errors_xml(ctx, error.errors)}</edit></edit-status>")
    parts.append("</yang-patch-status>")
    return "".join(parts)
