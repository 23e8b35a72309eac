"""The one error table: every :class:`~nfo.errors.NfoError` as an HTTP status, a
RESTCONF ``errors`` body (JSON or XML) and a NETCONF ``rpc-error``.

Both front ends (and YANG Patch, and the event streams) answer failures through
these functions only, so one failure reads the same whichever way it arrived.

RFC 8040 section 7 leaves room in two places; nfo's choices:

- ``operation-failed`` (412 or 500 in the RFC): a write whose precondition
  failed (If-Match, If-Unmodified-Since, ...) is 412; a change subscriber's
  veto is 409 (the request conflicts with the system's state); a validation
  failure of the client's data that carries an error-app-tag (RFC 7950 section
  15: ``must-violation``, ``data-not-unique``, ``too-many-elements``,
  ``too-few-elements``, or a ``must`` statement's own app-tag) is 400, since the
  client must change its data; anything else is 500.
- ``operation-not-supported`` is 501, except where the front end answers 405
  for a method a resource does not allow (an :class:`HttpError`).
- List pagination (draft-ietf-netconf-list-pagination-rc): an ``offset`` past
  the end is 416 (app-tag ``offset-out-of-range``), an unknown ``locale`` 501
  (``locale-unavailable``), a pagination parameter on a target that is not a list
  or leaf-list 400 with ``operation-not-supported``.
- ``resource-denied`` (409 in the RFC) is 429 Too Many Requests (RFC 6585) with
  ``Retry-After`` when a rate limit refused the request unexamined
  (:class:`~nfo.errors.Throttled`: the login throttle), and 507 Insufficient
  Storage (RFC 4918) when the disk holding the datastore is full
  (:class:`~nfo.errors.StorageFull`, error-app-tag ``nfo-storage-full``): the
  server, not the request, is at fault, and the same request succeeds once space
  returns.
- ``operation-failed`` with error-app-tag ``nfo-storage-unavailable``
  (:class:`~nfo.errors.StorageUnavailable`: the etcd cluster of replicas has no leader
  or cannot be reached) is 503 Service Unavailable, for the same reason; with
  ``nfo-replica-conflict`` (:class:`~nfo.errors.StorageConflict`: another replica
  committed first) it is 409 Conflict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nfo.errors import (
    ErrorDetail,
    LocaleUnavailable,
    NfoError,
    NotPageable,
    OffsetOutOfRange,
    PreconditionFailed,
    StorageConflict,
    StorageFull,
    StorageUnavailable,
    Throttled,
    Veto,
)
from nfo.protocol.paths import xml_instance_id

__all__ = [
    "RESTCONF_NS",
    "STATUS_BY_TAG",
    "HttpError",
    "NamespaceOf",
    "error_items",
    "errors_xml",
    "http_headers",
    "http_status",
    "restconf_errors",
    "rpc_errors",
    "xml_text",
]

RESTCONF_NS = "urn:ietf:params:xml:ns:yang:ietf-restconf"

NamespaceOf = Callable[[str], "str | None"]
"""Module name -> XML namespace (for error-path prefixes)."""

STATUS_BY_TAG: dict[str, int] = {
    "in-use": 409,
    "invalid-value": 400,
    "too-big": 413,
    "missing-attribute": 400,
    "bad-attribute": 400,
    "unknown-attribute": 400,
    "bad-element": 400,
    "unknown-element": 400,
    "unknown-namespace": 400,
    "access-denied": 403,
    "lock-denied": 409,
    "resource-denied": 409,
    "rollback-failed": 500,
    "data-exists": 409,
    "data-missing": 409,
    "operation-not-supported": 501,
    "operation-failed": 500,
    "partial-operation": 500,
    "malformed-message": 400,
    "missing-element": 400,
}
"""RFC 8040 section 7: the status of each error-tag where nothing more specific applies."""


class HttpError(NfoError):
    """An error whose HTTP status the RESTCONF front end decides itself (a resource
    that does not exist: 404; a method it does not allow: 405; 406, 415, 401),
    with headers to send along (Allow, WWW-Authenticate, Retry-After)."""

    def __init__(self, status: int, message: str, *, tag: str = "invalid-value",
                 error_type: str = "protocol", path: str | None = None,
                 app_tag: str | None = None, headers: Mapping[str, str] | None = None,
                 info: Mapping[str, str] | None = None) -> None:
        super().__init__(message, tag=tag, error_type=error_type, path=path, app_tag=app_tag,
                         info=info)
        self.status = status
        self.headers: dict[str, str] = dict(headers or {})


_STATUS_BY_CLASS: tuple[tuple[type[NfoError], int], ...] = (
    (PreconditionFailed, 412), (Throttled, 429), (Veto, 409), (StorageFull, 507),
    (StorageUnavailable, 503), (StorageConflict, 409), (OffsetOutOfRange, 416),
    (LocaleUnavailable, 501), (NotPageable, 400))
"""Errors whose class decides their status (before their error-tag does)."""


def http_status(err: NfoError) -> int:
    """The one mapping from an error to an HTTP status."""
    if isinstance(err, HttpError):
        return err.status
    for cls, status in _STATUS_BY_CLASS:
        if isinstance(err, cls):
            return status
    if err.tag == "operation-failed" and err.app_tag:
        return 400
    return STATUS_BY_TAG.get(err.tag, 500)


def http_headers(err: NfoError) -> dict[str, str]:
    """The headers that go with an error's status (Retry-After with a 429)."""
    headers = dict(err.headers) if isinstance(err, HttpError) else {}
    if isinstance(err, Throttled):
        headers["Retry-After"] = str(max(1, err.retry_after))
    return headers


# -- encoders ----------------------------------------------------------------------------

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_XML_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")


def xml_text(text: str) -> str:
    """Text as XML character data or attribute value: escaped, and characters XML 1.0
    cannot carry replaced by '?'."""
    return (_XML_ILLEGAL.sub("?", text).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&quot;"))


def error_items(errors: Sequence[ErrorDetail]) -> list[dict[str, Any]]:
    """The ``error`` list of an ``ietf-restconf:errors`` container, RFC 7951 JSON."""
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
            item["error-info"] = {str(k): str(v) for k, v in e.info.items()}
        items.append(item)
    return items


def _fields_xml(e: ErrorDetail, namespace_of: NamespaceOf | None, *, netconf: bool) -> str:
    out = [f"<error-type>{xml_text(e.error_type)}</error-type>"
           f"<error-tag>{xml_text(e.tag)}</error-tag>"]
    if netconf:
        out.append("<error-severity>error</error-severity>")
    if e.app_tag:
        out.append(f"<error-app-tag>{xml_text(e.app_tag)}</error-app-tag>")
    if e.path:
        text, decls = xml_instance_id(e.path, namespace_of or (lambda _m: None))
        attrs = "".join(f' xmlns:{p}="{xml_text(ns)}"' for p, ns in sorted(decls.items()))
        out.append(f"<error-path{attrs}>{xml_text(text)}</error-path>")
    if e.message:
        lang = ' xml:lang="en"' if netconf else ""
        out.append(f"<error-message{lang}>{xml_text(e.message)}</error-message>")
    info = [(k, v) for k, v in e.info.items()
            if _XML_NAME.match(k) and not k.lower().startswith("xml")]
    if info:
        out.append("<error-info>")
        out += [f"<{k}>{xml_text(str(v))}</{k}>" for k, v in info]
        out.append("</error-info>")
    return "".join(out)


def errors_xml(errors: Sequence[ErrorDetail], namespace_of: NamespaceOf | None = None, *,
               xmlns: str | None = RESTCONF_NS) -> str:
    """An ``errors`` element (RFC 8040 section 7.1).  ``xmlns`` None leaves the
    namespace to the enclosing element (YANG Patch's edit-status)."""
    ns = f' xmlns="{xmlns}"' if xmlns else ""
    body = "".join(f"<error>{_fields_xml(e, namespace_of, netconf=False)}</error>"
                   for e in errors)
    return f"<errors{ns}>{body}</errors>"


def restconf_errors(err: NfoError, json_format: bool,
                    namespace_of: NamespaceOf | None = None) -> str:
    """The ``ietf-restconf:errors`` reply body of an error."""
    if json_format:
        return json.dumps({"ietf-restconf:errors": {"error": error_items(err.errors)}},
                          ensure_ascii=False)
    return errors_xml(err.errors, namespace_of)


def rpc_errors(err: NfoError, namespace_of: NamespaceOf | None = None) -> str:
    """The ``rpc-error`` elements of a NETCONF reply (RFC 6241 section 4.3)."""
    return "".join(f"<rpc-error>{_fields_xml(e, namespace_of, netconf=True)}</rpc-error>"
                   for e in err.errors)
