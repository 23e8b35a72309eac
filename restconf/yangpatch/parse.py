"""The YANG Patch envelope (RFC 8072 section 2): patch-id, comment, ordered edits.

JSON is read with the RESTCONF codec's duplicate-refusing loader; XML with the
one hardened reader, each ``value`` left unread (opaque) so that its content
reaches libyang as the client wrote it.  The envelope rules of RFC 8072 (the
mandatory leaves, the when-conditions of ``point`` and ``where``, unique
edit-ids) are checked here, before any edit is planned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nfo.errors import InvalidValue, MalformedMessage, MissingElement, NfoError, UnknownElement
from nfo.restconf.codec import load_json
from nfo.schema import Fmt
from nfo.wire import xml

__all__ = [
    "EDIT_MEMBERS",
    "OPERATIONS",
    "WITH_VALUE",
    "YANG_PATCH_JSON",
    "YANG_PATCH_NS",
    "YANG_PATCH_XML",
    "Edit",
    "Patch",
    "Refused",
    "parse_patch",
]

YANG_PATCH_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-patch"
YANG_PATCH_JSON = "application/yang-patch+json"
"""Request media types of a YANG Patch (RFC 8072 section 4.2.1)."""
YANG_PATCH_XML = "application/yang-patch+xml"

OPERATIONS = ("create", "delete", "insert", "merge", "move", "replace", "remove")
WITH_VALUE = ("create", "merge", "replace", "insert")
_WHERE = ("before", "after", "first", "last")
EDIT_MEMBERS = ("edit-id", "operation", "target", "point", "where", "value")


@dataclass
class Edit:
    edit_id: str
    operation: str
    target: str
    point: str | None = None
    where: str | None = None
    value: bytes | None = None
    """The value's content in the request's encoding (a JSON object, or XML elements
    cut from the request)."""


@dataclass
class Patch:
    patch_id: str
    comment: str | None
    fmt: Fmt
    edits: list[Edit] = field(default_factory=list)


class Refused(Exception):
    """The patch is refused before anything is tried; ``edit_id`` names the culprit."""

    def __init__(self, error: NfoError, patch_id: str | None = None,
                 edit_id: str | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.patch_id = patch_id
        self.edit_id = edit_id


def _bad(message: str, cls: type[NfoError] = InvalidValue, **kw: Any) -> NfoError:
    return cls(message, error_type="protocol", **kw)


def _check_edits(patch: Patch) -> None:
    seen: set[str] = set()
    for e in patch.edits:
        def refuse(msg: str, cls: type[NfoError] = InvalidValue, e: Edit = e) -> Refused:
            return Refused(_bad(msg, cls), patch.patch_id, e.edit_id or None)
        if not e.edit_id:
            raise Refused(_bad("every edit needs an edit-id", MissingElement,
                               info={"bad-element": "edit-id"}), patch.patch_id)
        if e.edit_id in seen:
            raise Refused(_bad(f"edit-id {e.edit_id!r} is used twice",
                               info={"bad-element": "edit-id"}), patch.patch_id)
        seen.add(e.edit_id)
        if not e.operation:
            raise refuse("the edit has no operation", MissingElement)
        if e.operation not in OPERATIONS:
            raise refuse(f"unknown operation {e.operation!r} (use one of "
                         f"{', '.join(OPERATIONS)})")
        if not e.target:
            raise refuse("the edit has no target", MissingElement)
        if e.operation in WITH_VALUE and e.value is None:
            raise refuse(f"operation {e.operation} needs a value", MissingElement)
        if e.operation not in WITH_VALUE and e.value is not None:
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


def _parse_json(body: bytes) -> Patch:
    try:
        doc = load_json(body)
    except MalformedMessage as e:
        raise Refused(e) from None
    except UnicodeDecodeError as e:
        raise Refused(_bad(f"malformed JSON: {e}", MalformedMessage)) from None
    if not isinstance(doc, dict) or list(doc) != ["ietf-yang-patch:yang-patch"]:
        raise Refused(_bad("the body must be one ietf-yang-patch:yang-patch object",
                           MalformedMessage))
    yp = doc["ietf-yang-patch:yang-patch"]
    if not isinstance(yp, dict):
        raise Refused(_bad("ietf-yang-patch:yang-patch must be an object", MalformedMessage))
    for k in yp:
        if k not in ("patch-id", "comment", "edit"):
            raise Refused(_bad(f"unknown member {k!r} in yang-patch", UnknownElement,
                               info={"bad-element": k}))
    pid = yp.get("patch-id")
    if not isinstance(pid, str) or not pid:
        raise Refused(_bad("the patch needs a patch-id (a string)", MissingElement,
                           info={"bad-element": "patch-id"}))
    comment = yp.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise Refused(_bad("comment must be a string"), pid)
    edits = yp.get("edit", [])
    if not isinstance(edits, list):
        raise Refused(_bad("edit must be an array"), pid)
    patch = Patch(pid, comment, Fmt.JSON)
    for raw in edits:
        if not isinstance(raw, dict):
            raise Refused(_bad("every edit must be an object"), pid)
        eid = raw.get("edit-id")
        eid_s = eid if isinstance(eid, str) else None
        for k, v in raw.items():
            if k not in EDIT_MEMBERS:
                raise Refused(_bad(f"unknown member {k!r} in an edit", UnknownElement,
                                   info={"bad-element": k}), pid, eid_s)
            if k != "value" and not isinstance(v, str):
                raise Refused(_bad(f"{k} must be a string"), pid, eid_s)
        value: bytes | None = None
        if "value" in raw:
            if not isinstance(raw["value"], dict):
                raise Refused(_bad("value must be an object holding the target node"),
                              pid, eid_s)
            value = json.dumps(raw["value"], ensure_ascii=False).encode()
        patch.edits.append(Edit(
            edit_id=raw.get("edit-id", ""), operation=raw.get("operation", ""),
            target=raw.get("target", ""), point=raw.get("point"), where=raw.get("where"),
            value=value))
    return patch


def _leaf(el: xml.Element, pid: str | None, eid: str | None) -> str:
    if el.children:
        raise Refused(_bad(f"{el.name} must hold text only"), pid, eid)
    return el.text


def _parse_xml(body: bytes) -> Patch:
    try:
        root = xml.read(body, opaque={(YANG_PATCH_NS, "value")})
    except NfoError as e:
        raise Refused(e) from None
    if (root.ns, root.name) != (YANG_PATCH_NS, "yang-patch"):
        raise Refused(_bad(f"the body must be a yang-patch element in namespace "
                           f"{YANG_PATCH_NS}", MalformedMessage))
    if root.text.strip():
        raise Refused(_bad("unexpected text in yang-patch", MalformedMessage))
    fields: dict[str, str] = {}
    edit_elements: list[xml.Element] = []
    for el in root.children:
        if el.ns != YANG_PATCH_NS or el.name not in ("patch-id", "comment", "edit"):
            raise Refused(_bad(f"unknown element {el.name!r} in yang-patch", UnknownElement,
                               info={"bad-element": el.name}))
        if el.name == "edit":
            edit_elements.append(el)
        elif el.name in fields:
            raise Refused(_bad(f"{el.name} is given twice"))
        else:
            fields[el.name] = _leaf(el, None, None)
    pid = fields.get("patch-id")
    if not pid:
        raise Refused(_bad("the patch needs a patch-id", MissingElement,
                           info={"bad-element": "patch-id"}))
    patch = Patch(pid, fields.get("comment"), Fmt.XML)
    for ed in edit_elements:
        found: dict[str, xml.Element] = {}
        for el in ed.children:
            if el.ns != YANG_PATCH_NS or el.name not in EDIT_MEMBERS:
                raise Refused(_bad(f"unknown element {el.name!r} in an edit", UnknownElement,
                                   info={"bad-element": el.name}), pid)
            if el.name in found:
                raise Refused(_bad(f"{el.name} is given twice in an edit"), pid)
            found[el.name] = el
        eid = _leaf(found["edit-id"], pid, None) if "edit-id" in found else ""
        vals = {k: _leaf(v, pid, eid or None) for k, v in found.items() if k != "value"}
        value: bytes | None = None
        if "value" in found:
            v = found["value"]
            if v.has_text:
                raise Refused(_bad("value must hold elements, not text"), pid, eid or None)
            value = v.content_xml()
        patch.edits.append(Edit(
            edit_id=eid, operation=vals.get("operation", ""), target=vals.get("target", ""),
            point=vals.get("point"), where=vals.get("where"), value=value))
    return patch


def parse_patch(body: bytes, fmt: Fmt) -> Patch:
    """The patch in ``body``; :class:`Refused` for an envelope RFC 8072 does not allow."""
    patch = _parse_json(body) if fmt is Fmt.JSON else _parse_xml(body)
    _check_edits(patch)
    return patch
