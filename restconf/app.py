"""The RESTCONF server (RFC 8040, with the NMDA datastores of RFC 8527) as an ASGI app.

:func:`create_app` composes everything once: the routes (the API root, the YANG
library version, module sources, operations, data resources in
:mod:`nfo.restconf.resources`, event streams in :mod:`nfo.restconf.streams`)
and the exception handlers.  Endpoints only raise: every
:class:`~nfo.errors.NfoError` becomes an ``ietf-restconf:errors`` reply in ONE
Starlette exception handler, through the one error table of
:mod:`nfo.protocol.errors`, in the encoding the request negotiated.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from nfo.datastore import Datastore
from nfo.errors import NfoError, OperationFailed
from nfo.protocol.errors import HttpError, http_headers, http_status, restconf_errors
from nfo.restconf.codec import (
    media_type,
    negotiate,
    operations_document,
    restconf_document,
    yang_library_version_document,
)
from nfo.restconf.paths import parse_operation
from nfo.restconf.resources import DataResources, bound_session, options, raw_path
from nfo.restconf.streams import stream_endpoint, streams_data
from nfo.restconf.ui import UiResources
from nfo.schema import Fmt

__all__ = ["CAPABILITIES", "OWNER", "Restconf", "create_app", "read_body"]

log = logging.getLogger(__name__)

AuthFn = Callable[[Request], Awaitable[str]]

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_METHODS = frozenset(_ALL_METHODS)
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
    # draft-ietf-netconf-list-pagination-rc (all but cursor)
    "urn:ietf:params:restconf:capability:limit:1.0",
    "urn:ietf:params:restconf:capability:offset:1.0",
    "urn:ietf:params:restconf:capability:direction:1.0",
    "urn:ietf:params:restconf:capability:sort-by:1.0",
    "urn:ietf:params:restconf:capability:locale:1.0",
    "urn:ietf:params:restconf:capability:where:1.0",
    "urn:ietf:params:restconf:capability:sublist-limit:1.0",
)
OWNER = "nfo-restconf"
"""The owner of the operational data the server publishes about itself."""
_DATA_ROUTE = re.compile(r"/restconf/(data(/.*)?|ds/[^/]+(/.*)?)", re.DOTALL)
"""The paths of the data resource routes below (``{path:path}`` matching across a line
feed, see :func:`_any_path`)."""
_NETCONF_ONLY = ("ietf-netconf", "ietf-netconf-nmda", "ietf-netconf-monitoring")
"""Modules whose RPCs are NETCONF protocol operations, not offered as RESTCONF operations."""


async def read_body(request: Request, limit: int) -> bytes:
    """A request body of at most ``limit`` bytes: 413 when its Content-Length says more
    (before anything is read), or as soon as what arrives grows beyond it."""
    cl = request.headers.get("content-length")
    if cl is not None:
        try:
            n = int(cl)
        except ValueError:
            raise HttpError(400, "invalid Content-Length", tag="malformed-message") from None
        if n > limit:
            raise HttpError(413, f"the body of {n} bytes exceeds the limit of {limit} bytes",
                            tag="too-big", error_type="transport")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the body exceeds the limit of {limit} bytes",
                            tag="too-big", error_type="transport")
        chunks.append(chunk)
    return b"".join(chunks)


class Restconf:
    """One RESTCONF server: its datastore, authentication and body limit, and the
    endpoints built on them."""

    def __init__(self, ds: Datastore, auth: AuthFn | None, max_body: int) -> None:
        self.ds = ds
        self.schema = ds.schema
        self.auth = auth
        self.max_body = max_body
        self.data_resources = DataResources(ds)
        self.state_session = ds.internal_session(OWNER)
        """The server's own session: it pushes what the server says about itself."""
        library = self.schema.module("ietf-yang-library")
        self.yang_library_version = (library.revision if library is not None
                                     and library.revision else "2019-01-04")
        self.rpcs = [(r.module, r.name, r.namespace)
                     for r in self.schema.rpcs(exclude=_NETCONF_ONLY)]

    # -- what every request needs ------------------------------------------------------
    async def user(self, request: Request) -> str:
        """Who sends the request: its long-lived session's user (authenticated when
        the session was bound to it), else what ``auth`` says."""
        bound = bound_session(request)
        if bound is not None:
            return bound.user
        if self.auth is None:
            return "anonymous"
        try:
            return await self.auth(request)
        except HTTPException as e:
            tag = "access-denied" if e.status_code in (401, 403) else "invalid-value"
            raise HttpError(e.status_code, e.detail or "authentication failed", tag=tag,
                            headers=dict(e.headers or {})) from e
        except NfoError as e:
            if e.tag == "access-denied" and not isinstance(e, HttpError):
                # a plain access-denied from authentication: not authenticated, 401
                raise HttpError(401, e.message, tag="access-denied") from e
            raise

    async def read_body(self, request: Request) -> bytes:
        """The request body, refused with 413 beyond ``max_body`` before it is parsed."""
        return await read_body(request, self.max_body)

    @staticmethod
    def reply_format(request: Request) -> Fmt:
        """The reply encoding: Accept, the body's encoding winning ties (406 if none);
        recorded on the request for the error handler."""
        ct = accept = None
        for name, value in request.scope["headers"]:  # the first of each, as Headers.get
            if name == b"content-type" and ct is None:
                ct = value.decode("latin-1")
            elif name == b"accept" and accept is None:
                accept = value.decode("latin-1")
        prefer, fmt = _formats(ct, accept)
        if fmt is None:
            request.state.fmt = prefer
            return negotiate(accept, prefer)  # raises the 406
        request.state.fmt = fmt
        return fmt

    @staticmethod
    def only(request: Request, allowed: tuple[str, ...]) -> None:
        if request.method not in allowed:
            raise HttpError(405, f"{request.method} is not allowed on this resource",
                            tag="operation-not-supported",
                            headers={"Allow": ", ".join(allowed)})

    # -- endpoints -------------------------------------------------------------------
    async def host_meta(self, request: Request) -> Response:
        with contextlib.suppress(HttpError):
            self.reply_format(request)  # the encoding of an error reply
        self.only(request, ("GET", "HEAD"))
        return Response(_HOST_META, media_type="application/xrd+xml")

    async def root(self, request: Request) -> Response:
        fmt = self.reply_format(request)
        await self.user(request)
        self.only(request, ("GET", "HEAD", "OPTIONS"))
        if request.method == "OPTIONS":
            return options(["GET", "HEAD", "OPTIONS"])
        return Response(restconf_document(fmt, self.yang_library_version),
                        media_type=media_type(fmt))

    async def library_version(self, request: Request) -> Response:
        fmt = self.reply_format(request)
        await self.user(request)
        self.only(request, ("GET", "HEAD", "OPTIONS"))
        if request.method == "OPTIONS":
            return options(["GET", "HEAD", "OPTIONS"])
        return Response(yang_library_version_document(fmt, self.yang_library_version),
                        media_type=media_type(fmt))

    async def module(self, request: Request) -> Response:
        self.reply_format(request)
        await self.user(request)
        self.only(request, ("GET", "HEAD", "OPTIONS"))
        if request.method == "OPTIONS":
            return options(["GET", "HEAD", "OPTIONS"])
        name = request.path_params["name"]
        rev = request.path_params.get("revision")
        info = self.schema.module(name)
        if info is None or (rev and info.revision != rev):
            raise HttpError(404, f"no module {name}" + (f"@{rev}" if rev else ""),
                            tag="invalid-value", error_type="application")
        try:
            text = self.schema.module_source(name, rev or None)
        except NfoError as e:
            raise HttpError(404, e.message, tag="invalid-value") from e
        return Response(text, media_type="application/yang")

    async def operations(self, request: Request) -> Response:
        fmt = self.reply_format(request)
        user = await self.user(request)
        rest = raw_path(request)[len("/restconf/operations"):]
        if rest.strip("/") == "":
            self.only(request, ("GET", "HEAD", "OPTIONS"))
            if request.method == "OPTIONS":
                return options(["GET", "HEAD", "OPTIONS"])
            return Response(operations_document(fmt, self.rpcs), media_type=media_type(fmt))
        op = parse_operation(self.schema, rest)
        if op.module in _NETCONF_ONLY:
            raise HttpError(404, f"{op.module}:{op.name} is a NETCONF operation",
                            tag="invalid-value")
        self.only(request, ("POST", "OPTIONS"))
        if request.method == "OPTIONS":
            return options(["POST", "OPTIONS"])
        body = await self.read_body(request)
        return await self.data_resources.invoke(request, body, fmt, user, (), op)

    async def data(self, request: Request) -> Response:
        fmt = self.reply_format(request)
        user = await self.user(request)
        return await self.data_resources.handle(request, user, fmt, self.read_body)

    # -- errors --------------------------------------------------------------------------
    def error_response(self, request: Request, err: NfoError) -> Response:
        """The one place an error becomes a reply (through the one error table)."""
        fmt: Fmt = getattr(request.state, "fmt", Fmt.JSON)
        headers = http_headers(err)
        status = http_status(err)
        if status >= 500 and status != 503:  # 503: the connection limits log their own
            log.warning("RESTCONF %s %s failed: %s", request.method, request.url.path, err)
        body = restconf_errors(err, fmt is Fmt.JSON, self.schema.namespace_of)
        return Response(b"" if request.method == "HEAD" else body.encode(), status, headers,
                        media_type=media_type(fmt))

    # -- what the server says about itself ---------------------------------------------
    def publish_state(self) -> None:
        """Push what the server reports about itself into the operational datastore:
        the YANG library (RFC 8525), the RESTCONF capabilities (RFC 8040 9.1) and the
        event streams (RFC 8040 9.2)."""
        s = self.state_session
        try:
            s.delete_oper("/ietf-yang-library:yang-library", owner=OWNER)
            s.delete_oper("/ietf-yang-library:modules-state", owner=OWNER)
            s.set_oper(_with_locations(self.schema.yang_library(self.schema.content_id())),
                       Fmt.JSON, owner=OWNER)
            state = streams_data(self.ds.notifications)
            state["ietf-restconf-monitoring:restconf-state"]["capabilities"] = {
                "capability": list(CAPABILITIES)}
            s.set_oper(json.dumps(state), Fmt.JSON, owner=OWNER)
        except NfoError as e:
            log.warning("RESTCONF: could not publish its state: %s", e)


@functools.lru_cache(maxsize=256)
def _formats(content_type: str | None, accept: str | None) -> tuple[Fmt, Fmt | None]:
    """The encoding a request's body prefers and the reply's (None: 406), by the two
    headers' values: clients send the same few."""
    prefer = Fmt.XML if content_type and "xml" in content_type.lower() else Fmt.JSON
    try:
        return prefer, negotiate(accept, prefer)
    except HttpError:
        return prefer, None


def _with_locations(library: str) -> str:
    """Link every module of the YANG library to its source download (RFC 8525 location)."""
    doc = json.loads(library)
    for mset in doc.get("ietf-yang-library:yang-library", {}).get("module-set", []):
        for mod in mset.get("module", []):
            rev = f"/{mod['revision']}" if mod.get("revision") else ""
            mod["location"] = [f"/restconf/modules/{mod['name']}{rev}"]
    return json.dumps(doc)


def _any_path(route: Route) -> Route:
    """Starlette's ``path`` parameters stop at a line feed (``.*``); a RESTCONF key or
    leaf-list value may hold one (percent-encoded), so these routes match across it."""
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route


def create_app(ds: Datastore, *, auth: AuthFn | None = None, max_body: int = 4 << 20,
               keepalive: float = 15.0, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The RESTCONF ASGI application serving ``ds``.

    ``auth`` authenticates a request and returns the user name.  It may raise an
    :class:`~nfo.protocol.errors.HttpError` with its status and headers (such as
    ``nfo.restconf.security.Unauthorized``), a plain ``access-denied`` one (401),
    or ``HTTPException(401, headers={"WWW-Authenticate": ...})``; without it every
    request runs as ``anonymous``.  Bodies above ``max_body`` bytes are refused with
    413.  Event streams send a keep-alive comment after ``keepalive`` idle seconds.
    ``extra_routes`` (the web UI's) come after RESTCONF's and share its error handler.
    """
    server = Restconf(ds, auth, max_body)
    server.publish_state()
    streams = stream_endpoint(ds, keepalive=keepalive)
    ui = UiResources(server)

    async def stream(request: Request) -> Response:
        request.state.user = await server.user(request)
        return await streams(request)

    methods = _ALL_METHODS
    routes = [
        Route("/.well-known/host-meta", server.host_meta, methods=methods),
        Route("/restconf", server.root, methods=methods),
        Route("/restconf/", server.root, methods=methods),
        Route("/restconf/yang-library-version", server.library_version, methods=methods),
        Route("/restconf/data", server.data, methods=methods),
        _any_path(Route("/restconf/data/{path:path}", server.data, methods=methods)),
        Route("/restconf/ds/{datastore}", server.data, methods=methods),
        _any_path(Route("/restconf/ds/{datastore}/{path:path}", server.data, methods=methods)),
        Route("/restconf/operations", server.operations, methods=methods),
        _any_path(Route("/restconf/operations/{op:path}", server.operations, methods=methods)),
        Route("/restconf/modules/{name}", server.module, methods=methods),
        Route("/restconf/modules/{name}/{revision}", server.module, methods=methods),
        Route("/restconf/streams/{name}/{encoding}", stream, methods=["GET", "HEAD"]),
        Route("/restconf/ui/schema", ui.schema_digest, methods=methods),
        Route("/restconf/ui/values", ui.values, methods=methods),
        Route("/restconf/ui/access", ui.access, methods=methods),
        *extra_routes,
    ]

    async def on_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, NfoError):
            return server.error_response(request, exc)
        if isinstance(exc, HTTPException):  # Starlette's own 404/405: no such route
            status = exc.status_code
            tag = {404: "invalid-value", 405: "operation-not-supported"}.get(
                status, "operation-failed")
            with contextlib.suppress(HttpError):
                server.reply_format(request)
            return server.error_response(request, HttpError(
                status, "no such resource" if status == 404 else str(exc.detail), tag=tag))
        log.error("RESTCONF %s %s: internal error", request.method, request.url.path,
                  exc_info=exc)
        return server.error_response(request, OperationFailed(
            f"internal error: {type(exc).__name__}", error_type="application"))

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        NfoError: on_error, HTTPException: on_error, Exception: on_error}
    app = _App(server.data, on_error, routes=routes, exception_handlers=handlers)
    app.state.restconf = server
    return app


class _App(Starlette):
    """Starlette, except that a request for a data resource goes straight to its
    endpoint (the same endpoint, errors through the same handler) without the
    middleware stack and the route table in between: the hottest requests there are."""

    def __init__(self, data: Callable[[Request], Awaitable[Response]],
                 on_error: Callable[[Request, Exception], Awaitable[Response]],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._data = data
        self._on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or scope["method"] not in _METHODS or scope.get("root_path")
                or not (path.startswith("/restconf/data") or path.startswith("/restconf/ds/"))
                or not _DATA_ROUTE.fullmatch(path)):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        request = Request(scope, receive, send)
        try:
            response = await self._data(request)
        except Exception as exc:
            response = await self._on_error(request, exc)
            if not isinstance(exc, NfoError | HTTPException):
                await response(scope, receive, send)
                raise  # as Starlette does: the server logs it
        await response(scope, receive, send)
