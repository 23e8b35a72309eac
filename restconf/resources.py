"""RESTCONF data resources (RFC 8040 section 3.5, RFC 8527 datastores) and operations.

One request, one path: the URI becomes a :class:`~nfo.restconf.paths.ResourcePath`,
the method picks a reader or writer below, a body becomes an edit tree through
:mod:`nfo.restconf.codec` (or a YANG Patch through :mod:`nfo.restconf.yangpatch`),
the datastore session applies it with the request's conditional headers as a
precondition (:mod:`nfo.restconf.conditional`), and the reply is encoded by the
codec.  Every failure is an :class:`~nfo.errors.NfoError` that the application's
exception handler turns into an ``errors`` reply.

A request runs in a datastore session opened for it and closed after it, unless the
ASGI scope carries a long-lived one under :data:`SESSION_KEY` (put there by whatever
authenticated the request, e.g. the web UI's login session, whose session may have a
private candidate): then reads, writes and operations run in that session, and its
candidate is the one ``/restconf/ds/ietf-datastores:candidate`` addresses.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from nfo.datastore import Datastore, Identity, Session, WriteView
from nfo.errors import InvalidValue, NfoError, NotPageable
from nfo.protocol.errors import HttpError
from nfo.protocol.formats import datastore as datastore_name
from nfo.protocol.read import (
    LIVE_DEFAULTS,
    PAGING_PARAMS,
    Content,
    ReadQuery,
    depth_of,
    paging_of,
    query,
    with_defaults_of,
)
from nfo.restconf.codec import (
    JSON_TYPE,
    XML_LIST_TYPE,
    XML_TYPE,
    Insert,
    child_edit,
    data_root_edit,
    delete_edit,
    encode_targets,
    encode_xml_list,
    media_type,
    request_format,
    rpc_input,
    rpc_output,
    target_edit,
    wants_xml_list,
)
from nfo.restconf.conditional import (
    Validators,
    check_read,
    conditional_headers,
    raw_validator_headers,
    state_validators,
    validator_headers,
    validators,
    write_precondition,
)
from nfo.restconf.paths import (
    Kind,
    ResourcePath,
    Segment,
    decode,
    parse_fields,
    parse_resource,
    segment_uri,
)
from nfo.restconf.yangpatch import YANG_PATCH_JSON, YANG_PATCH_XML, apply_yang_patch
from nfo.schema import Fmt, Node, Tree

__all__ = ["DataResources", "Query", "Target", "options", "parse_query", "raw_path"]

_READ_ONLY = ("intended", "operational")
_READS = ("GET", "HEAD")
_OPERATIONS = (Kind.ACTION, Kind.RPC)
_READ_PARAMS = {"content", "depth", "fields", "with-defaults", *PAGING_PARAMS}
_WRITE_PARAMS = {"insert", "point"}


SESSION_KEY = "nfo.session"
"""The ASGI scope key of a request's long-lived datastore :class:`Session`, if any."""
ALIVE_KEY = "nfo.web-session-alive"
"""In a request authenticated by a session cookie: whether that session still lets its
requests in (an event stream opened in it ends with it)."""


def bound_session(request: Request) -> Session | None:
    """The long-lived session a request runs in (see :data:`SESSION_KEY`), or None."""
    s = request.scope.get(SESSION_KEY)
    if s is None:
        return None
    if not isinstance(s, Session) or s.closed:
        raise HttpError(401, "the session has ended", tag="access-denied")
    return s


@dataclass(frozen=True)
class Target:
    """What a data request addresses."""

    user: str
    datastore: str | None
    """``running``, ``candidate``, ... as named in /restconf/ds/; None for /restconf/data."""
    path: ResourcePath
    fmt: Fmt
    """The negotiated reply encoding."""
    base: str
    """The URI prefix of the datastore resource (``/restconf/data`` or ``/restconf/ds/..``)."""
    session: Session | None = None
    """The request's long-lived session (None: one is opened per write)."""

    @property
    def write_datastore(self) -> str:
        return "running" if self.datastore is None else self.datastore

    @property
    def who(self) -> Identity:
        return Identity(self.user)


@dataclass(frozen=True)
class Query:
    params: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.params.get(name)

    def only(self, allowed: set[str], method: str) -> None:
        for name in self.params:
            if name not in allowed and name in PAGING_PARAMS:
                raise NotPageable(f"the pagination parameter {name!r} is for GET and HEAD "
                                  f"of a list or leaf-list, not {method}")
            if name not in allowed:
                raise InvalidValue(f"the query parameter {name!r} is not supported for "
                                   f"{method} on this resource", error_type="protocol")


def parse_query(raw: bytes) -> Query:
    out: dict[str, str] = {}
    text = raw.decode("latin-1")
    for part in text.split("&") if text else ():
        if not part:
            continue
        k, _, v = part.partition("=")
        name = decode(k, "a query parameter name")
        if name in out:
            raise InvalidValue(f"the query parameter {name!r} is given more than once",
                               error_type="protocol")
        out[name] = decode(v, f"the query parameter {name!r}")
    return Query(out)


def raw_path(request: Request) -> str:
    """The request path as the client wrote it (percent-encoding kept)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else str(request.scope["path"])
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path.split("?", 1)[0]


def options(allowed: list[str], accept_patch: str | None = None) -> Response:
    headers = {"Allow": ", ".join(allowed)}
    if accept_patch:
        headers["Accept-Patch"] = accept_patch
    return Response(status_code=200, headers=headers)


class _Reply(Response):
    """The 200 answer of a read, as Starlette's ``Response(body, 200, validator
    headers, media_type=...)`` would be (the same head, in the same order), with its
    head built directly."""

    def __init__(self, body: str, v: Validators, content_type: str) -> None:
        self.status_code = 200
        self.background = None
        self.body = body.encode("utf-8")
        self.raw_headers = [*raw_validator_headers(v),
                            (b"content-length", str(len(self.body)).encode("latin-1")),
                            (b"content-type", content_type.encode("latin-1"))]


class DataResources:
    """``/restconf/data``, ``/restconf/ds/<datastore>`` and the operations they carry."""

    accept_patch = ", ".join([JSON_TYPE, XML_TYPE, YANG_PATCH_JSON, YANG_PATCH_XML])

    def __init__(self, ds: Datastore) -> None:
        self.ds = ds
        self.schema = ds.schema

    @contextlib.asynccontextmanager
    async def session(self, user: str, bound: Session | None) -> AsyncIterator[Session]:
        """The request's long-lived session, else a new one closed when done."""
        if bound is not None:
            yield bound
            return
        s = self.ds.session(user, per_request=True)
        try:
            yield s
        finally:
            await s.close()

    # -- routing -------------------------------------------------------------------
    def split(self, request: Request) -> tuple[str | None, str, str]:
        """(datastore or None for /restconf/data, the resource path, the base URI)."""
        raw = raw_path(request)
        if raw == "/restconf/data" or raw.startswith("/restconf/data/"):
            return None, raw[len("/restconf/data"):], "/restconf/data"
        rest = raw[len("/restconf/ds/"):]
        seg, _, path = rest.partition("/")
        name = decode(seg, "the datastore name")
        try:
            short = datastore_name(name)
        except NfoError as e:  # RFC 8527: a datastore resource that does not exist
            raise HttpError(404, e.message, tag="invalid-value") from None
        return short, "/" + path if path else "", f"/restconf/ds/{seg}"

    @staticmethod
    def allowed(datastore: str | None, rp: ResourcePath) -> list[str]:
        if not rp.is_root and rp.target.kind is Kind.ACTION:
            return ["POST", "OPTIONS"] if datastore in (None, "operational") else ["OPTIONS"]
        if not rp.is_root and rp.target.kind is Kind.RPC:
            return ["OPTIONS"]
        read_methods = ["GET", "HEAD"]
        if datastore in _READ_ONLY:
            return [*read_methods, "OPTIONS"]
        if rp.is_root:
            return [*read_methods, "POST", "PUT", "PATCH", "OPTIONS"]
        t = rp.target
        if not t.is_instance:
            return [*read_methods, "OPTIONS"]
        writes = ["PUT", "PATCH", "DELETE"]
        if t.kind in (Kind.CONTAINER, Kind.LIST):
            writes.insert(0, "POST")
        if not t.config or t.schema.is_key:
            writes = []
        return [*read_methods, *writes, "OPTIONS"]

    async def handle(self, request: Request, user: str, fmt: Fmt,
                     read_body: Callable[[Request], Awaitable[bytes]]) -> Response:
        datastore, raw, base = self.split(request)
        rp = parse_resource(self.schema, raw)
        method = request.method
        if method in _READS and (rp.is_root or rp.target.kind not in _OPERATIONS):
            # every resource but an operation is read with GET and HEAD
            params = parse_query(request.scope.get("query_string", b""))
            return await self.read(request, Target(user, datastore, rp, fmt, base,
                                                   bound_session(request)), params)
        allowed = self.allowed(datastore, rp)
        if method not in allowed:
            what = "the datastore" if rp.is_root else (
                f"the {rp.target.kind.value} {rp.target.module}:{rp.target.name}"
                + ("" if rp.target.is_instance else " (all instances)"))
            why = (f"the {datastore} datastore is read-only" if datastore in _READ_ONLY
                   and method in ("POST", "PUT", "PATCH", "DELETE")
                   else f"{method} is not allowed on {what}")
            raise HttpError(405, why, tag="operation-not-supported",
                            headers={"Allow": ", ".join(allowed)}, path=rp.data_path)
        params = parse_query(request.scope.get("query_string", b""))
        target = Target(user, datastore, rp, fmt, base, bound_session(request))
        if method == "OPTIONS":
            params.only(set(), method)
            return options(allowed, self.accept_patch if "PATCH" in allowed else None)
        if method in ("GET", "HEAD"):
            return await self.read(request, target, params)
        if method == "POST" and not rp.is_root and rp.target.kind is Kind.ACTION:
            params.only(set(), method)
            # decided on the path before anything is said about the data
            self.ds.nacm.access(target.who).check_exec(rp.target.schema.path, rp.data_path)
            if rp.parent_path is None or not self.ds.exists(rp.parent_path):
                raise HttpError(404, "the node the action is invoked on does not exist",
                                tag="data-missing", error_type="application",
                                path=rp.parent_path)
            body = await read_body(request)
            return await self.invoke(request, body, fmt, user, rp.segments[:-1], rp.target)
        if method == "DELETE":
            params.only(set(), method)
            return await self.delete(request, target)
        body = await read_body(request)
        ct = request.headers.get("content-type")
        mt = (ct or "").split(";")[0].strip().lower()
        if method == "PATCH" and mt in (YANG_PATCH_JSON, YANG_PATCH_XML):
            params.only(set(), method)
            return await self.yang_patch(request, target, body,
                                         Fmt.XML if mt == YANG_PATCH_XML else Fmt.JSON)
        in_fmt = request_format(ct)
        if method == "PATCH":
            params.only(set(), method)
            return await self.patch(request, target, body, in_fmt)
        params.only(_WRITE_PARAMS, method)
        insert = self.insert(params)
        if method == "POST":
            return await self.post(request, target, body, in_fmt, insert)
        return await self.put(request, target, body, in_fmt, insert)

    def insert(self, query: Query) -> Insert | None:
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
            return Insert(where, parse_resource(self.schema,
                                                point.removeprefix("/restconf/data")))
        if point is not None:
            raise InvalidValue("point is only used with insert=before or after",
                               error_type="protocol")
        return Insert(where)

    # -- reads ---------------------------------------------------------------------
    def read_query(self, query: Query, rp: ResourcePath, datastore: str | None) -> ReadQuery:
        if not query.params:  # the plain read: every knob at its default
            return ReadQuery(datastore or "operational", rp.data_path,
                             select_one=rp.data_path is not None
                             and self.schema.names_one(rp.data_path))
        c = query.get("content") or "all"
        try:
            content = Content(c)
        except ValueError:
            raise InvalidValue(f"content must be config, nonconfig or all, not {c!r}",
                               error_type="protocol") from None
        fields = None
        f = query.get("fields")
        if f is not None:
            steps = parse_fields(self.schema, f, None if rp.is_root else rp.target.schema)
            base = "" if rp.is_root else rp.data_path
            fields = " | ".join(f"{base}/{step}" for step in steps)
        with_origin = False
        if "with-origin" in query.params:
            if query.params["with-origin"] not in ("", "true"):
                raise InvalidValue("with-origin takes no value", error_type="protocol")
            with_origin = True
        if datastore is None:
            datastore = "running" if content is Content.CONFIG else "operational"
        paging = paging_of(query.params)
        if paging is not None and paging.pages and (
                rp.is_root or rp.target.is_instance
                or rp.target.kind not in (Kind.LIST, Kind.LEAFLIST)):
            what = "the datastore" if rp.is_root else (
                f"the {rp.target.kind.value} entry" if rp.target.is_instance
                else f"the {rp.target.kind.value}")
            raise NotPageable(f"pagination applies to list and leaf-list resources, not {what}",
                              path=rp.data_path)
        return ReadQuery(datastore, rp.data_path, content,
                         depth_of(query.get("depth"), "depth"), fields, with_origin,
                         select_one=rp.data_path is not None
                         and self.schema.names_one(rp.data_path), paging=paging)

    async def read(self, request: Request, target: Target, params: Query) -> Response:
        rp = target.path
        if params.params:
            allowed = set(_READ_PARAMS)
            if target.datastore == "operational":
                allowed.add("with-origin")
            params.only(allowed, request.method)
        q = self.read_query(params, rp, target.datastore)
        wd = with_defaults_of(params.get("with-defaults"))
        # operational data (owners may push any node) changes without a commit
        state = q.datastore == "operational"
        v = validators(self.ds, q.datastore, target.session)
        conditional = conditional_headers(request.scope["headers"])
        if not state and conditional and check_read(request.headers, v):
            return Response(status_code=304, headers=validator_headers(v))
        page = q.paging is not None and q.paging.pages
        as_list = (target.fmt is Fmt.XML and not rp.is_root and not rp.target.is_instance
                   and rp.target.kind in (Kind.LIST, Kind.LEAFLIST)
                   and wants_xml_list(request.headers.get("accept")))
        reader = target.session or self.ds.reader(target.who)
        direct = None
        if not as_list and wd in LIVE_DEFAULTS:
            def direct(node: Node) -> str | None:
                return encode_targets(None, [node], rp, target.fmt, wd)
        body = await query(reader, q,
                           lambda tree, targets: encode_xml_list(targets, wd, page=page)
                           if as_list else encode_targets(tree, targets, rp, target.fmt, wd,
                                                          page=page), direct)
        if as_list and body == "<xml-list></xml-list>" and not page:
            body = None
        if body is None and page and target.fmt is Fmt.JSON:
            body = json.dumps({f"{rp.target.module}:{rp.target.name}": []})
        if body is None:
            raise HttpError(404, "the resource does not exist", tag="data-missing",
                            error_type="application", path=rp.data_path)
        if state:
            v = state_validators(v, body)
            if conditional and check_read(request.headers, v):
                return Response(status_code=304, headers=validator_headers(v))
        return _Reply(body, v, XML_LIST_TYPE if as_list else media_type(target.fmt))

    # -- writes --------------------------------------------------------------------
    def present(self, target: Target, path: str | None) -> Node | None:
        """The live node at ``path`` in the target's configuration datastore, or None
        (implicit defaults count as absent, and so does a node the user may not read:
        a write's answer does not tell that it exists)."""
        if path is None:
            return None
        ds_name = target.write_datastore
        tree = (target.session.candidate_tree() if target.session is not None
                and ds_name == "candidate" else self.ds.tree(ds_name))
        node = tree.node(path)
        if node is not None and node.is_default:
            return None  # an implicit default (or a container holding only those)
        if node is not None and not self.ds.nacm.access(target.who).allowed(path, "read"):
            return None
        return node

    def present_in(self, view: WriteView, target: Target, path: str | None) -> bool:
        """:meth:`present` asked of a write's view of the datastore."""
        return (path is not None and view.exists(path)
                and self.ds.nacm.access(target.who).allowed(path, "read"))

    def exists(self, target: Target, rp: ResourcePath, view: WriteView | None = None) -> bool:
        """Whether the target exists (in ``view`` if given, else live); a non-presence
        container exists when its parent does."""
        if rp.is_root:
            return True
        t = rp.target
        if t.kind is Kind.CONTAINER and not t.schema.presence:
            return self.exists(target, rp.parent, view)
        if view is not None:
            return self.present_in(view, target, rp.data_path)
        return self.present(target, rp.data_path) is not None

    @staticmethod
    def location(request: Request, target: Target, child: Segment) -> str:
        rp = target.path
        prev = None if rp.is_root else rp.target.module
        uri = rp.uri()
        step = segment_uri(child, child.module != prev)
        base = str(request.base_url).rstrip("/") + target.base
        return f"{base}/{uri}/{step}" if uri else f"{base}/{step}"

    async def write(self, request: Request, target: Target, edit: Tree,
                    default_operation: str,
                    exists_check: Callable[[WriteView], bool]) -> tuple[Validators, bool]:
        """The edit, its conditional headers checked by the datastore under its own
        write lock (no writer of any front end commits in between).  Returns the new
        validators and whether the target existed before."""
        ds_name = target.write_datastore
        existed: list[bool] = []
        async with self.session(target.user, target.session) as session:
            await session.edit_many(
                ds_name, [edit], default_operation=default_operation,
                label=f"restconf {request.method} {target.path.data_path or '/'}",
                precondition=write_precondition(self.ds, request.headers, exists_check,
                                                existed, target.session), report=False)
            return validators(self.ds, ds_name, target.session), existed[0]

    async def put(self, request: Request, target: Target, body: bytes, fmt: Fmt,
                  insert: Insert | None) -> Response:
        rp = target.path
        if rp.is_root:
            if insert is not None:
                raise InvalidValue("insert does not apply to the datastore",
                                   error_type="protocol")
            with data_root_edit(self.schema, body, fmt) as edit:
                v, _ = await self.write(request, target, edit, "replace", lambda _view: True)
            return Response(status_code=204, headers=validator_headers(v))
        with target_edit(self.schema, body, fmt, rp, "replace", insert) as edit:
            v, existed = await self.write(
                request, target, edit, "merge",
                lambda view: self.present_in(view, target, rp.data_path))
        return Response(status_code=204 if existed else 201, headers=validator_headers(v))

    async def patch(self, request: Request, target: Target, body: bytes, fmt: Fmt) -> Response:
        rp = target.path
        if rp.is_root:
            edit = data_root_edit(self.schema, body, fmt)
        else:
            if not self.exists(target, rp):
                raise HttpError(404, "PATCH does not create its target: it does not exist",
                                tag="data-missing", error_type="application", path=rp.data_path)
            edit = target_edit(self.schema, body, fmt, rp, "merge")
        with edit:
            v, _ = await self.write(request, target, edit, "merge",
                                    lambda view: self.exists(target, rp, view))
        return Response(status_code=204, headers=validator_headers(v))

    async def post(self, request: Request, target: Target, body: bytes, fmt: Fmt,
                   insert: Insert | None) -> Response:
        rp = target.path
        if not rp.is_root and not self.exists(target, rp):
            raise HttpError(404, "the parent resource of the new child does not exist",
                            tag="data-missing", error_type="application", path=rp.data_path)
        edit, child = child_edit(self.schema, body, fmt, rp, insert)
        with edit:
            v, _ = await self.write(request, target, edit, "merge", lambda _view: True)
        headers = validator_headers(v)
        headers["Location"] = self.location(request, target, child)
        return Response(status_code=201, headers=headers)

    async def delete(self, request: Request, target: Target) -> Response:
        rp = target.path
        node = self.present(target, rp.data_path)
        if node is None:
            raise HttpError(404, "the resource to delete does not exist", tag="data-missing",
                            error_type="application", path=rp.data_path)
        with delete_edit(node) as edit:
            v, _ = await self.write(
                request, target, edit, "merge",
                lambda view: self.present_in(view, target, rp.data_path))
        return Response(status_code=204, headers=validator_headers(v))

    async def yang_patch(self, request: Request, target: Target, body: bytes,
                         in_fmt: Fmt) -> Response:
        ds_name = target.write_datastore
        precondition = write_precondition(self.ds, request.headers, lambda _view: True,
                                          session=target.session)
        # refused before the patch is read, as HTTP orders it; checked again atomically
        self.ds.check_precondition(ds_name, precondition=precondition)
        async with self.session(target.user, target.session) as session:
            result = await apply_yang_patch(session, ds_name, target.path, body, in_fmt,
                                            target.fmt, precondition=precondition)
        headers = (validator_headers(validators(self.ds, ds_name, target.session))
                   if result.status < 300 else {})
        return Response(result.body, result.status, headers, media_type=result.content_type)

    # -- operations ----------------------------------------------------------------
    async def invoke(self, request: Request, body: bytes, fmt: Fmt, user: str,
                     chain: tuple[Segment, ...], op: Segment) -> Response:
        parse_query(request.scope.get("query_string", b"")).only(set(), "POST")
        in_fmt = request_format(request.headers.get("content-type")) if body.strip() else fmt
        text = rpc_input(self.schema, body, in_fmt, chain, op)
        async with self.session(user, bound_session(request)) as session:
            reply = await session.rpc(text, Fmt.JSON)
        with reply:
            out = rpc_output(reply, op, fmt)
        if out is None:
            return Response(status_code=204)
        return Response(out, 200, media_type=media_type(fmt))
