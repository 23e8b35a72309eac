"""The RESTCONF server (RFC 8040, with the NMDA datastores of RFC 8527) as an ASGI app.

Transport only: every request is mapped onto the datastore API
(:meth:`Session.edit_many`, :meth:`Datastore.get`, :meth:`Session.rpc`) through
:mod:`nfo.restconf.paths` (URI -> data path) and :mod:`nfo.restconf.codec`
(bodies <-> edit trees and replies), and every :class:`NfoError` becomes an
``ietf-restconf:errors`` reply through one table (:func:`status_of`).

Entity tags are the datastore's commit revision (``"<revision>"``), so a client
that sends ``If-Match`` with the tag it read cannot overwrite a change it has
not seen.  Replies that include state data (which changes without a commit)
carry ``"<revision>-s<digest of the body>"`` and no Last-Modified; as an
``If-Match`` on a write, such a tag matches while the revision is unchanged.
The candidate, which has no revision of its own once edited, is tagged
``"<revision>-c<digest of its content>"``.

Extension points for the other RESTCONF parts (authentication, YANG Patch,
event streams) are the ``auth`` callable of :func:`create_app` and the
:class:`Restconf` object in ``app.state.restconf`` (``patch_handlers`` by media
type, :meth:`Restconf.error_response`, :meth:`Restconf.read_body`).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nfo.datastore import CommitInfo, Datastore, Precondition, WriteView
from nfo.errors import (
    InvalidValue,
    NfoError,
    OperationFailed,
    PreconditionFailed,
    Veto,
)
from nfo.restconf.codec import (
    JSON_TYPE,
    XML_TYPE,
    Content,
    HttpError,
    Insert,
    ReadOptions,
    check_xml_safe,
    child_edit,
    data_root_edit,
    delete_edit,
    encode_data,
    encode_errors,
    media_type,
    negotiate,
    operations_document,
    request_format,
    restconf_document,
    rpc_input,
    rpc_output,
    target_edit,
    yang_library_version_document,
)
from nfo.restconf.paths import (
    Kind,
    ResourcePath,
    Segment,
    decode,
    parse_fields,
    parse_operation,
    parse_resource,
    schema_name,
    segment_uri,
)
from nfo.schema.data import Fmt, WithDefaults, is_default
from nfo.schema.ly import ffi, lib

__all__ = ["STATUS_BY_TAG", "Restconf", "Target", "create_app", "status_of"]

log = logging.getLogger(__name__)

AuthFn = Callable[[Request], Awaitable[str]]
PatchHandler = Callable[[Request, "Target", bytes], Awaitable[Response]]

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
"""RFC 8040 section 7: the status of each error-tag when the context does not
decide otherwise (a missing read/delete target is 404, a method a resource does
not allow 405; those are raised as :class:`HttpError` with their status)."""


def status_of(err: NfoError) -> int:
    """The one mapping from an :class:`NfoError` to an HTTP status."""
    if isinstance(err, HttpError):
        return int(err.status)
    own = getattr(err, "status_code", None)  # an error that knows its status (security.py)
    if isinstance(own, int) and 400 <= own <= 599:
        return own
    if isinstance(err, PreconditionFailed):
        return 412  # a conditional write (If-Match, ...) found the resource changed
    if isinstance(err, Veto):
        return 409  # a subscriber refused the change: a conflict with the system's state
    if err.tag == "operation-failed" and err.app_tag:
        return 400  # validation (must, unique, min/max-elements, ...) of the client's data
    return STATUS_BY_TAG.get(str(err.tag), 500)


DATASTORES = {
    "ietf-datastores:running": "running",
    "ietf-datastores:intended": "intended",
    "ietf-datastores:operational": "operational",
    "ietf-datastores:candidate": "candidate",
    "ietf-datastores:startup": "startup",
}
_READ_ONLY = ("intended", "operational")
_READ_PARAMS = {"content", "depth", "fields", "with-defaults"}
_WRITE_PARAMS = {"insert", "point"}
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_HOST_META = ("<?xml version='1.0' encoding='UTF-8'?>\n"
              "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
              "  <Link rel='restconf' href='/restconf'/>\n"
              "</XRD>\n")
CAPABILITIES = (
    "urn:ietf:params:restconf:capability:defaults:1.0?basic-mode=explicit",
    "urn:ietf:params:restconf:capability:depth:1.0",
    "urn:ietf:params:restconf:capability:fields:1.0",
    "urn:ietf:params:restconf:capability:with-defaults:1.0",
    "urn:ietf:params:restconf:capability:with-origin:1.0",
)
OWNER = "nfo-restconf"
_NETCONF_ONLY = ("ietf-netconf", "ietf-netconf-nmda", "ietf-netconf-monitoring")
"""Modules whose RPCs are NETCONF protocol operations, not offered as RESTCONF operations."""


@dataclass(frozen=True)
class Target:
    """What a data request addresses, for handlers outside this module (YANG Patch)."""

    user: str
    datastore: str | None
    """``running``, ``candidate``, ... as named in /restconf/ds/; None for /restconf/data."""
    path: ResourcePath
    fmt: Fmt
    """The negotiated reply encoding."""
    base: str
    """The URI prefix of the datastore resource (``/restconf/data`` or ``/restconf/ds/..``)."""

    @property
    def write_datastore(self) -> str:
        return "running" if self.datastore is None else self.datastore


@dataclass(frozen=True)
class _Query:
    params: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.params.get(name)


def _parse_query(raw: bytes) -> _Query:
    out: dict[str, str] = {}
    text = raw.decode("latin-1")
    if not text:
        return _Query(out)
    for part in text.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        name = decode(k, "a query parameter name")
        if name in out:
            raise InvalidValue(f"the query parameter {name!r} is given more than once",
                               error_type="protocol")
        out[name] = decode(v, f"the query parameter {name!r}")
    return _Query(out)


def _http_date(ts: float) -> str:
    return email.utils.formatdate(int(ts), usegmt=True)


def _parse_date(value: str) -> float | None:
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if dt is None or dt.tzinfo is None:
        return None
    return dt.timestamp()


def _etags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def _weak_eq(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


@dataclass(frozen=True)
class _Validators:
    etag: str
    last_modified: float | None


class Restconf:
    """The server's state: the datastore, the module namespaces, the patch handlers."""

    def __init__(self, ds: Datastore, auth: AuthFn | None, max_body: int) -> None:
        self.ds = ds
        self.ctx: Any = ds.ctx
        self.auth = auth
        self.max_body = max_body
        self.namespaces = {m.name: m.namespace for m in ds.schema.modules()}
        self.patch_handlers: dict[str, PatchHandler] = {}
        """PATCH bodies of other media types (YANG Patch), by media type."""
        self.state_session = ds.session(OWNER)
        """The server's own session: it pushes what the server reports about itself."""
        mod = lib.ly_ctx_get_module_latest(self.ctx, b"ietf-yang-library")
        self.yang_library_version = (ffi.string(mod.revision).decode()
                                     if mod != ffi.NULL and mod.revision != ffi.NULL
                                     else "2019-01-04")
        self.rpcs = self._operations()

    # -- setup ---------------------------------------------------------------
    def _operations(self) -> list[tuple[str, str, str]]:
        out = []
        for m in self.ds.schema.modules():
            if not m.implemented or m.name in _NETCONF_ONLY:
                continue
            mod = lib.ly_ctx_get_module_latest(self.ctx, m.name.encode())
            if mod == ffi.NULL or mod.compiled == ffi.NULL:
                continue
            c = lib.lys_getnext(ffi.NULL, ffi.NULL, mod.compiled, 0)
            while c != ffi.NULL:
                if c.nodetype & lib.LYS_RPC:
                    out.append((m.name, schema_name(c), m.namespace))
                c = lib.lys_getnext(c, ffi.NULL, mod.compiled, 0)
        return out

    def publish_state(self) -> None:
        """Push what the server reports about itself into the operational datastore:
        the YANG library (RFC 8525) and the RESTCONF capabilities (RFC 8040 9.1)."""
        digest = hashlib.sha256(
            "\n".join(f"{m.name}@{m.revision}:{m.implemented}"
                      for m in sorted(self.ds.schema.modules(), key=lambda m: m.name)).encode()
        ).hexdigest()[:16]
        s = self.state_session
        try:
            s.delete_oper("/ietf-yang-library:yang-library", owner=OWNER)
            s.delete_oper("/ietf-yang-library:modules-state", owner=OWNER)
            s.set_oper(_with_locations(self.ds.schema.yang_library(f"nfo-{digest}")),
                       Fmt.JSON, owner=OWNER)
            s.set_oper(json.dumps({"ietf-restconf-monitoring:restconf-state": {
                "capabilities": {"capability": list(CAPABILITIES)}}}), Fmt.JSON, owner=OWNER)
        except NfoError as e:
            log.warning("RESTCONF: could not publish the YANG library: %s", e)

    # -- helpers for every endpoint ------------------------------------------
    def error_response(self, err: NfoError, fmt: Fmt, *, headers: dict[str, str] | None = None,
                       head: bool = False) -> Response:
        status = status_of(err)
        hdrs = dict(headers or {})
        extra = getattr(err, "headers", None)  # WWW-Authenticate, Retry-After, Allow, ...
        if isinstance(extra, dict):
            hdrs.update({str(k): str(v) for k, v in extra.items()})
        body = encode_errors(err.errors, fmt, self.namespaces)
        return Response(b"" if head else body.encode(), status, hdrs, media_type=media_type(fmt))

    async def read_body(self, request: Request) -> bytes:
        """The request body, refused with 413 beyond ``max_body`` before it is parsed."""
        cl = request.headers.get("content-length")
        if cl is not None:
            try:
                n = int(cl)
            except ValueError:
                raise HttpError(400, "invalid Content-Length", tag="malformed-message") from None
            if n > self.max_body:
                raise HttpError(413, f"the body of {n} bytes exceeds the limit of "
                                f"{self.max_body} bytes", tag="too-big", error_type="transport")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise HttpError(413, f"the body exceeds the limit of {self.max_body} bytes",
                                tag="too-big", error_type="transport")
            chunks.append(chunk)
        return b"".join(chunks)

    async def user(self, request: Request) -> str:
        if self.auth is None:
            return "anonymous"
        try:
            return await self.auth(request)
        except HTTPException as e:
            tag = "access-denied" if e.status_code in (401, 403) else "invalid-value"
            raise HttpError(e.status_code, e.detail or "authentication failed", tag=tag,
                            headers=dict(e.headers or {})) from e
        except NfoError as e:
            if e.tag == "access-denied" and status_of(e) == STATUS_BY_TAG["access-denied"]:
                # a plain access-denied from authentication: not authenticated, 401
                raise HttpError(401, e.message, tag="access-denied") from e
            raise

    def reply_format(self, request: Request) -> Fmt:
        prefer = Fmt.JSON
        ct = request.headers.get("content-type")
        if ct and "xml" in ct.lower():
            prefer = Fmt.XML
        return Fmt(negotiate(request.headers.get("accept"), prefer))

    async def guard(self, request: Request,
                    handler: Callable[[Request, Fmt], Awaitable[Response]]) -> Response:
        """Negotiate the encoding, run the handler, turn every failure into an error reply."""
        head = request.method == "HEAD"
        try:
            fmt = self.reply_format(request)
        except HttpError as e:
            ct = request.headers.get("content-type", "")
            return self.error_response(e, Fmt.XML if "xml" in ct else Fmt.JSON, head=head)
        try:
            return await handler(request, fmt)
        except NfoError as e:
            if status_of(e) >= 500:
                log.warning("RESTCONF %s %s failed: %s", request.method, request.url.path, e)
            return self.error_response(e, fmt, head=head)
        except Exception as e:
            log.exception("RESTCONF %s %s: internal error", request.method, request.url.path)
            return self.error_response(OperationFailed(f"internal error: {type(e).__name__}",
                                                       error_type="application"), fmt, head=head)

    # -- validators ----------------------------------------------------------
    def validators(self, datastore: str) -> _Validators:
        """ETag and Last-Modified of a configuration datastore."""
        name = "running" if datastore in ("intended", "operational") else datastore
        return self._validators_of(name, self.ds.info(name))

    def _validators_of(self, name: str, info: CommitInfo) -> _Validators:
        ds = self.ds
        if name == "candidate" and ds.tree("candidate") is not ds.tree("running"):
            digest = hashlib.sha1(ds.tree("candidate").print(Fmt.JSON).encode(),
                                  usedforsecurity=False).hexdigest()[:12]
            return _Validators(f'"{info.revision}-c{digest}"', None)
        return _Validators(f'"{info.revision}"', info.timestamp)

    @staticmethod
    def _etag_matches_for_write(tag: str, current: str) -> bool:
        if tag.startswith("W/"):
            return False  # If-Match uses the strong comparison
        if tag == current:
            return True
        rev = current.strip('"')
        return "-" not in rev and tag.startswith(f'"{rev}-s')

    def write_precondition(self, request: Request,
                           exists: Callable[[WriteView], bool]) -> Precondition:
        """If-Match / If-Unmodified-Since / If-None-Match of a write as the precondition
        the datastore checks under its write lock, on the state the edit is applied to
        (:class:`PreconditionFailed`, 412, when it does not hold).  ``exists``: whether
        the target resource exists in that state."""
        h = request.headers
        if_match = h.get("if-match")
        since = h.get("if-unmodified-since")
        if_none_match = h.get("if-none-match")

        def check(view: WriteView) -> None:
            v = self._validators_of(view.datastore, view.info)
            if if_match is not None:
                tags = _etags(if_match)
                ok = exists(view) if tags == ["*"] else any(
                    self._etag_matches_for_write(t, v.etag) for t in tags)
                if not ok:
                    raise PreconditionFailed("If-Match does not match: the datastore has "
                                             "changed")
            elif since is not None:
                when = _parse_date(since)
                if when is not None and (v.last_modified is None
                                         or int(v.last_modified) > when):
                    raise PreconditionFailed("the datastore was modified since " + since)
            if if_none_match is not None:
                tags = _etags(if_none_match)
                hit = exists(view) if tags == ["*"] else any(_weak_eq(t, v.etag)
                                                             for t in tags)
                if hit:
                    raise PreconditionFailed("If-None-Match matches the current resource")
        return check

    @staticmethod
    def read_preconditions(request: Request, v: _Validators) -> int | None:
        """If-Match / If-Unmodified-Since (412) and If-None-Match / If-Modified-Since
        (304) on a read; returns 304 or None."""
        h = request.headers
        if "if-match" in h:
            tags = _etags(h["if-match"])
            if tags != ["*"] and not any(t == v.etag for t in tags):
                raise HttpError(412, "If-Match does not match", tag="operation-failed")
        elif "if-unmodified-since" in h:
            since = _parse_date(h["if-unmodified-since"])
            if since is not None and (v.last_modified is None or int(v.last_modified) > since):
                raise HttpError(412, "modified since " + h["if-unmodified-since"],
                                tag="operation-failed")
        if "if-none-match" in h:
            tags = _etags(h["if-none-match"])
            if tags == ["*"] or any(_weak_eq(t, v.etag) for t in tags):
                return 304
        elif "if-modified-since" in h and v.last_modified is not None:
            since = _parse_date(h["if-modified-since"])
            if since is not None and int(v.last_modified) <= since:
                return 304
        return None

    @staticmethod
    def validator_headers(v: _Validators) -> dict[str, str]:
        out = {"ETag": v.etag}
        if v.last_modified is not None:
            out["Last-Modified"] = _http_date(v.last_modified)
        return out

    # -- endpoints -----------------------------------------------------------
    async def host_meta(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(status_code=405, headers={"Allow": "GET, HEAD"})
        return Response(_HOST_META, media_type="application/xrd+xml")

    async def root(self, request: Request) -> Response:
        async def run(request: Request, fmt: Fmt) -> Response:
            await self.user(request)
            self._only(request, ("GET", "HEAD", "OPTIONS"))
            if request.method == "OPTIONS":
                return _options(["GET", "HEAD", "OPTIONS"])
            return Response(restconf_document(fmt, self.yang_library_version),
                            media_type=media_type(fmt))
        return await self.guard(request, run)

    async def library_version(self, request: Request) -> Response:
        async def run(request: Request, fmt: Fmt) -> Response:
            await self.user(request)
            self._only(request, ("GET", "HEAD", "OPTIONS"))
            if request.method == "OPTIONS":
                return _options(["GET", "HEAD", "OPTIONS"])
            return Response(yang_library_version_document(fmt, self.yang_library_version),
                            media_type=media_type(fmt))
        return await self.guard(request, run)

    async def module(self, request: Request) -> Response:
        async def run(request: Request, fmt: Fmt) -> Response:
            await self.user(request)
            self._only(request, ("GET", "HEAD", "OPTIONS"))
            if request.method == "OPTIONS":
                return _options(["GET", "HEAD", "OPTIONS"])
            name = request.path_params["name"]
            rev = request.path_params.get("revision")
            known = {m.name: m for m in self.ds.schema.modules()}
            info = known.get(name)
            if info is None or (rev and info.revision != rev):
                raise HttpError(404, f"no module {name}" + (f"@{rev}" if rev else ""),
                                tag="invalid-value", error_type="application")
            try:
                text = self.ds.schema.module_source(name, rev or None)
            except NfoError as e:
                raise HttpError(404, e.message, tag="invalid-value") from e
            return Response(text, media_type="application/yang")
        return await self.guard(request, run)

    async def operations(self, request: Request) -> Response:
        async def run(request: Request, fmt: Fmt) -> Response:
            user = await self.user(request)
            raw = _raw_path(request)
            rest = raw[len("/restconf/operations"):]
            if rest.strip("/") == "":
                self._only(request, ("GET", "HEAD", "OPTIONS"))
                if request.method == "OPTIONS":
                    return _options(["GET", "HEAD", "OPTIONS"])
                return Response(operations_document(fmt, self.rpcs),
                                media_type=media_type(fmt))
            op = parse_operation(self.ctx, rest)
            if op.module in _NETCONF_ONLY:
                raise HttpError(404, f"{op.module}:{op.name} is a NETCONF operation",
                                tag="invalid-value")
            self._only(request, ("POST", "OPTIONS"))
            if request.method == "OPTIONS":
                return _options(["POST", "OPTIONS"])
            return await self._invoke(request, fmt, user, (), op)
        return await self.guard(request, run)

    async def data(self, request: Request) -> Response:
        return await self.guard(request, self._data)

    # -- data resources ------------------------------------------------------
    @staticmethod
    def _only(request: Request, allowed: tuple[str, ...]) -> None:
        if request.method not in allowed:
            raise HttpError(405, f"{request.method} is not allowed on this resource",
                            tag="operation-not-supported",
                            headers={"Allow": ", ".join(allowed)})

    def _split(self, request: Request) -> tuple[str | None, str, str]:
        """(datastore or None for /restconf/data, the resource path, the base URI)."""
        raw = _raw_path(request)
        if raw == "/restconf/data" or raw.startswith("/restconf/data/"):
            return None, raw[len("/restconf/data"):], "/restconf/data"
        rest = raw[len("/restconf/ds/"):]
        seg, _, path = rest.partition("/")
        name = decode(seg, "the datastore name")
        short = DATASTORES.get(name)
        if short is None:
            raise HttpError(404, f"no datastore {name!r} (RFC 8527: "
                            + ", ".join(DATASTORES) + ")", tag="invalid-value")
        return short, "/" + path if path else "", f"/restconf/ds/{seg}"

    def _allowed(self, datastore: str | None, rp: ResourcePath) -> list[str]:
        if not rp.is_root and rp.target.kind is Kind.ACTION:
            if datastore in (None, "operational"):
                return ["POST", "OPTIONS"]
            return ["OPTIONS"]
        if not rp.is_root and rp.target.kind is Kind.RPC:
            return ["OPTIONS"]
        read = ["GET", "HEAD"]
        if datastore in _READ_ONLY:
            return [*read, "OPTIONS"]
        if rp.is_root:
            return [*read, "POST", "PUT", "PATCH", "OPTIONS"]
        t = rp.target
        if not t.is_instance:
            return [*read, "OPTIONS"]
        writes = ["PUT", "PATCH", "DELETE"]
        if t.kind in (Kind.CONTAINER, Kind.LIST):
            writes.insert(0, "POST")
        if not t.config or t.schema.flags & lib.LYS_KEY:
            writes = []
        return [*read, *writes, "OPTIONS"]

    async def _data(self, request: Request, fmt: Fmt) -> Response:
        user = await self.user(request)
        datastore, raw, base = self._split(request)
        rp = parse_resource(self.ctx, raw)
        allowed = self._allowed(datastore, rp)
        method = request.method
        if method not in allowed:
            what = "the datastore" if rp.is_root else (
                f"the {rp.target.kind.value} {rp.target.module}:{rp.target.name}"
                + ("" if rp.target.is_instance else " (all instances)"))
            why = (f"the {datastore} datastore is read-only" if datastore in _READ_ONLY
                   and method in ("POST", "PUT", "PATCH", "DELETE")
                   else f"{method} is not allowed on {what}")
            raise HttpError(405, why, tag="operation-not-supported",
                            headers={"Allow": ", ".join(allowed)}, path=rp.data_path)
        query = _parse_query(request.scope.get("query_string", b""))
        target = Target(user, datastore, rp, fmt, base)
        if method == "OPTIONS":
            self._check_params(query, set(), method)
            return _options(allowed, self._accept_patch() if "PATCH" in allowed else None)
        if method in ("GET", "HEAD"):
            return await self._read(request, target, query)
        if method == "POST" and not rp.is_root and rp.target.kind is Kind.ACTION:
            self._check_params(query, set(), method)
            if rp.parent_path is None or not self.ds.exists(rp.parent_path):
                raise HttpError(404, "the node the action is invoked on does not exist",
                                tag="data-missing", error_type="application",
                                path=rp.parent_path)
            return await self._invoke(request, fmt, user, rp.segments[:-1], rp.target)
        if method == "DELETE":
            self._check_params(query, set(), method)
            return await self._delete(request, target)
        body = await self.read_body(request)
        ct = request.headers.get("content-type")
        if ct and "xml" in ct.lower():
            check_xml_safe(body)
        if method == "PATCH" and ct:
            mt = ct.split(";")[0].strip().lower()
            handler = self.patch_handlers.get(mt)
            if handler is not None:
                return await handler(request, target, body)
        in_fmt = request_format(ct)
        if method == "PATCH":
            self._check_params(query, set(), method)
            return await self._patch(request, target, body, in_fmt)
        self._check_params(query, _WRITE_PARAMS, method)
        insert = self._insert(query)
        if method == "POST":
            return await self._post(request, target, body, in_fmt, insert)
        return await self._put(request, target, body, in_fmt, insert)

    def _accept_patch(self) -> str:
        return ", ".join([JSON_TYPE, XML_TYPE, *self.patch_handlers])

    @staticmethod
    def _check_params(query: _Query, allowed: set[str], method: str) -> None:
        for name in query.params:
            if name not in allowed:
                raise InvalidValue(f"the query parameter {name!r} is not supported for "
                                   f"{method} on this resource", error_type="protocol")

    def _insert(self, query: _Query) -> Insert | None:
        where = query.get("insert")
        point = query.get("point")
        if where is None:
            if point is not None:
                raise InvalidValue("point needs insert=before or insert=after",
                                   error_type="protocol")
            return None
        if where not in ("first", "last", "before", "after"):
            raise InvalidValue(f"insert must be first, last, before or after, not {where!r}",
                               error_type="protocol")
        if where in ("before", "after"):
            if point is None:
                raise InvalidValue(f"insert={where} needs the point parameter",
                                   error_type="protocol")
            p = point.removeprefix("/restconf/data")
            return Insert(where, parse_resource(self.ctx, p))
        if point is not None:
            raise InvalidValue("point is only used with insert=before or after",
                               error_type="protocol")
        return Insert(where)

    def _read_options(self, query: _Query, rp: ResourcePath) -> ReadOptions:
        depth: int | None = None
        d = query.get("depth")
        if d is not None and d != "unbounded":
            if not d.isdigit() or not 1 <= int(d) <= 65535:
                raise InvalidValue(f"depth must be 1..65535 or 'unbounded', not {d!r}",
                                   error_type="protocol")
            depth = int(d)
        c = query.get("content") or "all"
        try:
            content = Content(c)
        except ValueError:
            raise InvalidValue(f"content must be config, nonconfig or all, not {c!r}",
                               error_type="protocol") from None
        w = query.get("with-defaults")
        try:
            wd = WithDefaults(w) if w is not None else WithDefaults.EXPLICIT
        except ValueError:
            raise InvalidValue("with-defaults must be report-all, trim, explicit or "
                               f"report-all-tagged, not {w!r}", error_type="protocol") from None
        fields: tuple[str, ...] = ()
        f = query.get("fields")
        if f is not None:
            anchor = ffi.NULL if rp.is_root else rp.target.schema
            fields = tuple(parse_fields(self.ctx, f, anchor))
        return ReadOptions(depth, fields, content, wd)

    async def _read(self, request: Request, target: Target, query: _Query) -> Response:
        rp = target.path
        datastore = target.datastore
        allowed = set(_READ_PARAMS)
        if datastore == "operational":
            allowed.add("with-origin")
        self._check_params(query, allowed, request.method)
        opts = self._read_options(query, rp)
        with_origin = False
        if "with-origin" in query.params:
            if query.params["with-origin"] not in ("", "true"):
                raise InvalidValue("with-origin takes no value", error_type="protocol")
            with_origin = True
        if datastore is None:
            source = "running" if opts.content is Content.CONFIG else "operational"
        elif datastore == "intended":
            source = "running"
        else:
            source = datastore
        # operational data (owners may push any node) changes without a commit
        state = source == "operational"
        v = self.validators(source if source != "operational" else "running")
        if not state:
            status = self.read_preconditions(request, v)
            if status == 304:
                return Response(status_code=304, headers=self.validator_headers(v))
        tree = self.ds.get(source, rp.data_path, with_origin=with_origin)
        try:
            body = encode_data(tree, rp, target.fmt, opts)
        finally:
            tree.free()
        if body is None:
            raise HttpError(404, "the resource does not exist", tag="data-missing",
                            error_type="application", path=rp.data_path)
        if state:
            digest = hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()[:12]
            v = _Validators(f'{v.etag[:-1]}-s{digest}"', None)
            status = self.read_preconditions(request, v)
            if status == 304:
                return Response(status_code=304, headers=self.validator_headers(v))
        return Response(body, 200, self.validator_headers(v), media_type=media_type(target.fmt))

    # -- writes --------------------------------------------------------------
    def _present(self, datastore: str, path: str | None) -> Any:
        """The live node at ``path`` in a configuration datastore, or NULL (implicit
        defaults count as absent)."""
        if path is None:
            return ffi.NULL
        node = self.ds.tree(datastore).find(path)
        if node != ffi.NULL and is_default(node):
            return ffi.NULL  # an implicit default (or a container holding only those)
        return node

    def _exists(self, datastore: str, rp: ResourcePath) -> bool:
        return _resource_exists(rp, lambda path: self._present(datastore, path) != ffi.NULL)

    def _location(self, request: Request, target: Target, child: Segment) -> str:
        rp = target.path
        prev = None if rp.is_root else rp.target.module
        uri = rp.uri()
        step = segment_uri(child, child.module != prev)
        base = str(request.base_url).rstrip("/") + target.base
        return f"{base}/{uri}/{step}" if uri else f"{base}/{step}"

    async def _write(self, request: Request, target: Target, edit: Any,
                     default_operation: str,
                     exists_check: Callable[[WriteView], bool]) -> tuple[_Validators, bool]:
        """Preconditions and the edit as one step: the datastore checks the preconditions
        under its write lock.  Returns the new validators and whether the target existed
        right before the edit."""
        ds_name = target.write_datastore
        existed: list[bool] = []
        check = self.write_precondition(request, lambda _: existed[-1])

        def precondition(view: WriteView) -> None:
            existed.append(exists_check(view))
            check(view)
        session = self.ds.session(target.user)
        try:
            await session.edit_many(ds_name, [edit], default_operation=default_operation,
                                    label=f"restconf {request.method} "
                                          f"{target.path.data_path or '/'}",
                                    precondition=precondition)
            return self.validators(ds_name), existed[-1]
        finally:
            await session.close()

    async def _put(self, request: Request, target: Target, body: bytes, fmt: Fmt,
                   insert: Insert | None) -> Response:
        rp = target.path
        if rp.is_root:
            if insert is not None:
                raise InvalidValue("insert does not apply to the datastore",
                                   error_type="protocol")
            edit = data_root_edit(self.ctx, body, fmt)
            with edit:
                v, _ = await self._write(request, target, edit, "replace", lambda _: True)
            return Response(status_code=204, headers=self.validator_headers(v))
        edit = target_edit(self.ctx, body, fmt, rp, "replace", insert)
        with edit:
            v, existed = await self._write(request, target, edit, "merge",
                                           lambda view: _present_in(view, rp.data_path))
        return Response(status_code=204 if existed else 201, headers=self.validator_headers(v))

    async def _patch(self, request: Request, target: Target, body: bytes, fmt: Fmt) -> Response:
        rp = target.path
        ds_name = target.write_datastore
        if rp.is_root:
            edit = data_root_edit(self.ctx, body, fmt)
        else:
            if not self._exists(ds_name, rp):
                raise HttpError(404, "PATCH does not create its target: it does not exist",
                                tag="data-missing", error_type="application", path=rp.data_path)
            edit = target_edit(self.ctx, body, fmt, rp, "merge")
        with edit:
            v, _ = await self._write(request, target, edit, "merge",
                                     lambda view: _resource_exists(rp, view.exists))
        return Response(status_code=204, headers=self.validator_headers(v))

    async def _post(self, request: Request, target: Target, body: bytes, fmt: Fmt,
                    insert: Insert | None) -> Response:
        rp = target.path
        ds_name = target.write_datastore
        if not rp.is_root and not self._exists(ds_name, rp):
            raise HttpError(404, "the parent resource of the new child does not exist",
                            tag="data-missing", error_type="application", path=rp.data_path)
        edit, child = child_edit(self.ctx, body, fmt, rp, insert)
        with edit:
            v, _ = await self._write(request, target, edit, "merge", lambda _: True)
        headers = self.validator_headers(v)
        headers["Location"] = self._location(request, target, child)
        return Response(status_code=201, headers=headers)

    async def _delete(self, request: Request, target: Target) -> Response:
        rp = target.path
        ds_name = target.write_datastore
        node = self._present(ds_name, rp.data_path)
        if node == ffi.NULL:
            raise HttpError(404, "the resource to delete does not exist", tag="data-missing",
                            error_type="application", path=rp.data_path)
        edit = delete_edit(self.ctx, node)
        with edit:
            v, _ = await self._write(request, target, edit, "merge",
                                     lambda view: _present_in(view, rp.data_path))
        return Response(status_code=204, headers=self.validator_headers(v))

    # -- operations ----------------------------------------------------------
    async def _invoke(self, request: Request, fmt: Fmt, user: str,
                      chain: tuple[Segment, ...], op: Segment) -> Response:
        query = _parse_query(request.scope.get("query_string", b""))
        self._check_params(query, set(), "POST")
        body = await self.read_body(request)
        in_fmt = fmt
        if body.strip():
            in_fmt = request_format(request.headers.get("content-type"))
            if in_fmt is Fmt.XML:
                check_xml_safe(body)
        text = rpc_input(self.ctx, body, in_fmt, chain, op)
        session = self.ds.session(user)
        try:
            reply = await session.rpc(text, Fmt.JSON)
        finally:
            await session.close()
        with reply:
            out = rpc_output(reply, op, fmt)
        if out is None:
            return Response(status_code=204)
        return Response(out, 200, media_type=media_type(fmt))


def _present_in(view: WriteView, path: str | None) -> bool:
    return path is not None and view.exists(path)


def _resource_exists(rp: ResourcePath, present: Callable[[str], bool]) -> bool:
    """Whether the target exists; a non-presence container exists when its parent does."""
    if rp.is_root:
        return True
    t = rp.target
    if t.kind is Kind.CONTAINER and not t.schema.flags & lib.LYS_PRESENCE:
        return _resource_exists(rp.parent, present)
    return rp.data_path is not None and present(rp.data_path)


def _options(allowed: list[str], accept_patch: str | None = None) -> Response:
    headers = {"Allow": ", ".join(allowed)}
    if accept_patch:
        headers["Accept-Patch"] = accept_patch
    return Response(status_code=200, headers=headers)


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else str(request.scope["path"])
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path.split("?", 1)[0]


async def _not_found(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no route) as RESTCONF errors."""
    server: Restconf = request.app.state.restconf
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    try:
        fmt = server.reply_format(request)
    except HttpError:
        fmt = Fmt.JSON
    tag = {404: "invalid-value", 405: "operation-not-supported"}.get(status, "operation-failed")
    err = HttpError(status, "no such resource" if status == 404 else str(exc), tag=tag)
    return server.error_response(err, fmt, head=request.method == "HEAD")


def _with_locations(library: str) -> str:
    """Link every module of the YANG library to its source download (RFC 8525 location)."""
    doc = json.loads(library)
    for mset in doc.get("ietf-yang-library:yang-library", {}).get("module-set", []):
        for mod in mset.get("module", []):
            rev = f"/{mod['revision']}" if mod.get("revision") else ""
            mod["location"] = [f"/restconf/modules/{mod['name']}{rev}"]
    return json.dumps(doc)


def create_app(ds: Datastore, *, auth: AuthFn | None = None,
               max_body: int = 4 << 20) -> Starlette:
    """The RESTCONF ASGI application serving ``ds``.

    ``auth`` authenticates a request and returns the user name.  It may raise an
    :class:`NfoError` carrying ``status_code`` and ``headers`` (such as
    ``nfo.restconf.security.Unauthorized``), a plain ``access-denied`` one (401),
    or ``HTTPException(401, headers={"WWW-Authenticate": ...})``; without it every
    request runs as ``anonymous``.  Bodies above ``max_body`` bytes are refused with 413.
    """
    server = Restconf(ds, auth, max_body)
    server.publish_state()
    methods = _ALL_METHODS
    routes = [
        Route("/.well-known/host-meta", server.host_meta, methods=methods),
        Route("/restconf", server.root, methods=methods),
        Route("/restconf/", server.root, methods=methods),
        Route("/restconf/yang-library-version", server.library_version, methods=methods),
        Route("/restconf/data", server.data, methods=methods),
        Route("/restconf/data/{path:path}", server.data, methods=methods),
        Route("/restconf/ds/{datastore}", server.data, methods=methods),
        Route("/restconf/ds/{datastore}/{path:path}", server.data, methods=methods),
        Route("/restconf/operations", server.operations, methods=methods),
        Route("/restconf/operations/{op:path}", server.operations, methods=methods),
        Route("/restconf/modules/{name}", server.module, methods=methods),
        Route("/restconf/modules/{name}/{revision}", server.module, methods=methods),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _not_found})
    app.state.restconf = server
    return app

