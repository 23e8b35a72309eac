"""RESTCONF extensions for the web UI (docs/ui-api.md), under ``/restconf/ui/``.

The page is generated from the live module set, so it needs three things the
RFC 8040 resources do not give: a digest of the schema (``GET .../schema``),
the values a reference field may take now (``GET .../values``) and what the
calling user may do with given nodes, and whether their ``when`` conditions hold
(``POST .../access``).  Each request is
authenticated like every RESTCONF request, answers JSON, and fails through the
app's one error handler.  The work itself lives below: the digest in
:mod:`nfo.protocol.uischema`, values, access verdicts and ``when``
in :mod:`nfo.protocol.uidata` (access control's own code decides).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from nfo.datastore import Identity
from nfo.errors import InvalidValue, MalformedMessage
from nfo.protocol.errors import HttpError
from nfo.protocol.formats import READABLE, read_source
from nfo.protocol.formats import datastore as datastore_name
from nfo.protocol.uidata import access_of, leaf_values, when_verdicts
from nfo.protocol.uischema import digest
from nfo.restconf.conditional import Validators, check_read
from nfo.restconf.paths import Kind, decode, parse_resource
from nfo.restconf.resources import bound_session, parse_query
from nfo.schema import Fmt, SNode
from nfo.schema.leafrefs import needs_position

if TYPE_CHECKING:
    from nfo.restconf.app import Restconf

__all__ = ["MAX_ACCESS_PATHS", "MAX_VALUES", "UiResources"]

MAX_VALUES = 1000
"""The largest ``limit`` of one values request."""
MAX_ACCESS_PATHS = 500
"""The most paths one access request may ask about."""
_JSON = "application/json"
_CACHE = "private, no-cache"


class UiResources:
    """``/restconf/ui/schema``, ``/restconf/ui/values`` and ``/restconf/ui/access``."""

    def __init__(self, server: Restconf) -> None:
        self.server = server
        self.ds = server.ds
        self.schema = server.schema

    async def _begin(self, request: Request, allowed: tuple[str, ...]) -> str:
        """Negotiation (JSON only), authentication and the method check; the user."""
        if self.server.reply_format(request) is not Fmt.JSON:
            raise HttpError(406, "the UI resources are served as JSON only")
        user = await self.server.user(request)
        self.server.only(request, allowed)
        return user

    # -- the schema digest -------------------------------------------------------------
    async def schema_digest(self, request: Request) -> Response:
        await self._begin(request, ("GET", "HEAD"))
        query = parse_query(request.scope.get("query_string", b""))
        query.only({"module"}, request.method)
        module = query.get("module")
        if module is not None and not self.schema.implemented(module):
            raise HttpError(404, f"no implemented module {module!r}", tag="invalid-value",
                            error_type="application")
        v = Validators(f'"{self.schema.content_id()}"', None)
        headers = {"ETag": v.etag, "Cache-Control": _CACHE}
        if check_read(request.headers, v):
            return Response(status_code=304, headers=headers)
        body = digest(self.schema, module)
        return Response(b"" if request.method == "HEAD" else body, 200, headers,
                        media_type=_JSON)

    # -- values of a field -----------------------------------------------------------
    async def values(self, request: Request) -> Response:
        user = await self._begin(request, ("GET", "HEAD"))
        query = parse_query(request.scope.get("query_string", b""))
        query.only({"path", "prefix", "limit", "datastore"}, request.method)
        raw = query.get("path")
        if not raw:
            raise InvalidValue("the path query parameter names the field (a data resource "
                               "path such as mod:list=key/leaf)", error_type="protocol")
        field, parent_path = self._field(raw.removeprefix("/restconf/data"))
        limit = _limit(query.get("limit"))
        ds_name = _datastore(query.get("datastore"),
                             "running" if field.config else "operational")
        found = await leaf_values(self.ds, Identity(user), ds_name, field, parent_path,
                                  prefix=query.get("prefix") or "", limit=limit,
                                  session=bound_session(request))
        body = json.dumps(found.json(), separators=(",", ":")).encode()
        return Response(b"" if request.method == "HEAD" else body, 200,
                        {"Cache-Control": "no-store"}, media_type=_JSON)

    def _field(self, raw: str) -> tuple[SNode, str | None]:
        """The leaf or leaf-list a values request names, and its parent's data path
        (None at the top, and for a field of an RPC's or action's input)."""
        try:
            rp = parse_resource(self.schema, raw)
        except InvalidValue as e:
            found = self._schema_field(raw)
            if found is None:
                raise e from None
            return found
        if rp.is_root:
            raise InvalidValue("the path names the datastore, not a field",
                               error_type="protocol")
        target = rp.target
        if target.kind not in (Kind.LEAF, Kind.LEAFLIST):
            raise InvalidValue(f"{target.module}:{target.name} is a {target.kind.value}: values "
                               "are listed for leaves and leaf-lists", path=rp.data_path)
        return target.schema, rp.parent_path

    def _schema_field(self, raw: str) -> tuple[SNode, str | None] | None:
        """A field a data resource path cannot name, found by its node names alone: in
        an RPC's or action's input (``mod:rpc/leaf``, ``mod:list=k/action/leaf``), or
        under a list entry whose keys a new entry's form does not know yet
        (``mod:list/leaf``).  Only a field whose values do not depend on its position;
        None if ``raw`` names no leaf or leaf-list."""
        node: SNode | None = None
        module = ""
        for step in raw.strip("/").split("/"):
            ident = decode(step.partition("=")[0], "a node name")
            mod, colon, name = ident.rpartition(":")
            module = mod if colon else module
            if not module or not self.schema.implemented(module):
                return None
            node = self.schema.top(module, name) if node is None else node.child(name, module)
            if node is None:
                return None
        if node is None or node.kind not in (Kind.LEAF, Kind.LEAFLIST):
            return None
        if needs_position(node):
            raise InvalidValue(f"the values of {node.name!r} depend on its position: name "
                               "each list entry with its keys (an operation's input has no "
                               "position in the data)", error_type="protocol")
        return node, None

    # -- what the user may do ------------------------------------------------------------
    async def access(self, request: Request) -> Response:
        user = await self._begin(request, ("POST",))
        query = parse_query(request.scope.get("query_string", b""))
        query.only({"datastore"}, request.method)
        ds_name = _datastore(query.get("datastore"), "running")
        ct = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ct not in (_JSON, "application/yang-data+json"):
            raise HttpError(415, "the access request is a JSON body ({\"paths\": [...]})",
                            tag="invalid-value")
        body = await self.server.read_body(request)
        paths = _paths(body)
        who = Identity(user)
        access = self.ds.nacm.access(who)
        out: list[dict[str, Any]] = []
        nodes: list[tuple[SNode, str]] = []
        for raw in paths:
            rp = parse_resource(self.schema, raw.removeprefix("/restconf/data"))
            if rp.is_root or rp.data_path is None:
                raise InvalidValue("a path names the datastore, not a node",
                                   error_type="protocol")
            out.append({"path": raw, **access_of(access, rp.target.schema, rp.data_path)})
            nodes.append((rp.target.schema, rp.data_path))
        verdicts = await when_verdicts(self.ds, who, ds_name, nodes,
                                       session=bound_session(request))
        for entry, holds in zip(out, verdicts, strict=True):
            if holds is not None:
                entry["when"] = holds
        return Response(json.dumps({"access": out}, separators=(",", ":")).encode(), 200,
                        {"Cache-Control": "no-store"}, media_type=_JSON)


def _datastore(name: str | None, default: str) -> str:
    """The datastore a ``datastore`` query parameter names (an ``ietf-datastores``
    identity, its module optional)."""
    if name is None:
        return default
    return read_source(datastore_name(name if ":" in name else f"ietf-datastores:{name}",
                                      READABLE))


def _limit(text: str | None) -> int:
    if text is None:
        return 50
    if not text.isdigit() or not 1 <= int(text) <= MAX_VALUES:
        raise InvalidValue(f"limit must be 1..{MAX_VALUES}, not {text!r}",
                           error_type="protocol", info={"bad-element": "limit"})
    return int(text)


def _paths(body: bytes) -> list[str]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedMessage("the access request is not JSON", error_type="protocol") from None
    paths = doc.get("paths") if isinstance(doc, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise InvalidValue('the access request is {"paths": ["mod:node/...", ...]}',
                           error_type="protocol")
    if len(paths) > MAX_ACCESS_PATHS:
        raise HttpError(413, f"at most {MAX_ACCESS_PATHS} paths per access request, not "
                        f"{len(paths)}", tag="too-big", error_type="application")
    return paths
