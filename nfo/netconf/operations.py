"""NETCONF operations: one handler per operation and the one table that finds it.

A handler reads its parameters from the parsed operation element, makes the
:class:`~nfo.datastore.Session` call, and returns the reply's content (the
envelope is :func:`nfo.netconf.protocol.handle`'s).  Configuration and YANG
RPC bodies reach the datastore as the bytes the client sent; reads go through
:func:`nfo.protocol.read.query` (off the event loop).  :data:`OPERATIONS` maps (namespace, name) to
the handler; any other operation of a known module is a YANG RPC or action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from nfo.datastore.notifications import NETCONF_STREAM
from nfo.errors import (
    InvalidValue,
    MalformedMessage,
    MissingElement,
    NfoError,
    OperationNotSupported,
    UnknownElement,
)
from nfo.netconf.filters import filter_xpath, nmda_filter, notification_filter, xpath_at
from nfo.netconf.messages import MON_NS, NC_NS, NMDA_NS, NOTIF_NS, OK, WD_NS, YANG_NS
from nfo.protocol.errors import xml_text
from nfo.protocol.formats import READABLE, WRITABLE, datastore, parse_time
from nfo.protocol.read import (
    LIVE_DEFAULTS,
    PAGING_PARAMS,
    Content,
    Paging,
    ReadQuery,
    depth_of,
    encode,
    encode_with_ancestors,
    paging_of,
    query,
    with_defaults_of,
)
from nfo.schema import Fmt, Kind, Node, Schema, print_node
from nfo.wire.xml import Element

if TYPE_CHECKING:
    from nfo.netconf.protocol import NetconfContext

__all__ = ["EAGER", "OPERATIONS", "Handler", "handler_for", "operation_path"]

Handler = Callable[["NetconfContext", Element], Awaitable[str]]
"""An operation: the session's context and the operation element -> the reply content."""

_CONFIG_DS = ("running", "candidate", "startup")
_ORIGIN_MODULE = "ietf-origin"
LPGNC_NS = "urn:ietf:params:xml:ns:yang:ietf-list-pagination-nc"


# -- parameters -----------------------------------------------------------------------


def _text(el: Element | None) -> str | None:
    return None if el is None else el.text.strip()


def _ds_of(op: Element, which: str, *, allow_config: bool = False
           ) -> tuple[str | None, Element | None]:
    """(datastore name, inline config element) of a source/target parameter."""
    el = op.child(which, NC_NS)
    if el is None:
        raise MissingElement(f"<{which}> is missing", tag="missing-element",
                             error_type="protocol", info={"bad-element": which})
    if len(el.children) != 1:
        raise InvalidValue(f"<{which}> must name exactly one datastore",
                           info={"bad-element": which})
    kid = el.children[0]
    if kid.ns == NC_NS and kid.name in _CONFIG_DS:
        return kid.name, None
    if kid.ns == NC_NS and kid.name == "config" and allow_config:
        return None, kid
    if kid.ns == NC_NS and kid.name == "url":
        raise OperationNotSupported("the :url capability is not supported")
    raise InvalidValue(f"unknown datastore {kid.name!r}", info={"bad-element": kid.name})


def _datastore(op: Element, which: str) -> str:
    name, _ = _ds_of(op, which)
    assert name is not None
    return name


def _content(config: Element) -> bytes:
    """The children of an inline <config>, as the client wrote them."""
    if config.has_text:
        raise MalformedMessage("<config> holds text beside its elements",
                               info={"bad-element": "config"})
    return config.content_xml()


def _config(op: Element) -> bytes:
    """The <config> parameter of edit-config or edit-data (in the operation's namespace)."""
    config = op.child("config")
    if config is None:
        if op.child("url") is not None:
            raise OperationNotSupported("the :url capability is not supported")
        raise MissingElement("<config> is missing", error_type="protocol",
                             info={"bad-element": "config"})
    return _content(config)


def _nmda_datastore(ctx: NetconfContext, op: Element, allowed: tuple[str, ...]) -> str:
    el = op.child("datastore", NMDA_NS)
    text = _text(el)
    if el is None or not text:
        raise MissingElement("<datastore> is missing", error_type="protocol",
                             info={"bad-element": "datastore"})
    try:
        return datastore(xpath_at(el, text, ctx.schema.module_of), allowed)
    except InvalidValue as e:
        raise InvalidValue(e.message, info={"bad-element": "datastore"}) from None


def _origin_filter(ctx: NetconfContext, op: Element, ds: str
                   ) -> tuple[frozenset[str] | None, bool]:
    """(origin identity names, negated) of an RFC 8526 origin filter."""
    plain = op.children_named("origin-filter", NMDA_NS)
    negated = op.children_named("negated-origin-filter", NMDA_NS)
    if not plain and not negated:
        return None, False
    if plain and negated:
        raise InvalidValue("give origin-filter or negated-origin-filter, not both",
                           info={"bad-element": "negated-origin-filter"})
    if ds != "operational":
        raise InvalidValue("origin filters apply to the operational datastore only",
                           info={"bad-element": "origin-filter"})
    names: set[str] = set()
    for el in plain or negated:
        text = el.text.strip()
        module, _, name = xpath_at(el, text, ctx.schema.module_of).rpartition(":")
        if not name or module != _ORIGIN_MODULE:
            raise InvalidValue(f"{text!r} is not an ietf-origin identity",
                               info={"bad-element": el.name})
        names.add(name)
    return frozenset(names), bool(negated)


def _paging(ctx: NetconfContext, op: Element) -> Paging | None:
    """The ``list-pagination`` input of draft-ietf-netconf-list-pagination-nc."""
    el = op.child("list-pagination", LPGNC_NS)
    if el is None:
        return None
    params: dict[str, str] = {}
    for kid in el.children:
        if kid.ns != LPGNC_NS or kid.name not in (*PAGING_PARAMS, "cursor"):
            raise UnknownElement(f"unknown list-pagination parameter <{kid.name}>",
                                 error_type="protocol", info={"bad-element": kid.name})
        if kid.name in params:
            raise InvalidValue(f"<{kid.name}> is given more than once",
                               info={"bad-element": kid.name})
        params[kid.name] = kid.text.strip()
    if "cursor" in params:
        raise OperationNotSupported("the cursor parameter is not supported: page with offset",
                                    info={"bad-element": "cursor"})
    for name in ("where", "sort-by"):
        if params.get(name) and params[name] not in ("unfiltered", "none", "."):
            params[name] = xpath_at(el, params[name], ctx.schema.module_of)
    return paging_of(params) or Paging()


# -- reads ----------------------------------------------------------------------------


async def _data(ctx: NetconfContext, ds: str, op: Element) -> str:
    select = None
    f = op.child("filter", NC_NS)
    if f is not None:
        select = filter_xpath(f, ctx.schema.module_of)
        if select is None:
            return "<data/>"
    wd = with_defaults_of(_text(op.child("with-defaults", WD_NS)))
    one = select is not None and ctx.schema.names_one(select)
    direct = None
    if ds != "operational" and wd in LIVE_DEFAULTS:
        # (the ancestors of an operational node may have state defaults a copy adds)
        def direct(node: Node) -> str:
            return encode_with_ancestors(node, Fmt.XML, wd)
    body = await query(ctx.session, ReadQuery(ds, select, paging=_paging(ctx, op),
                                              select_one=one),
                       lambda tree, _: encode(tree, Fmt.XML, wd), direct)
    return f"<data>{body}</data>"


async def _get(ctx: NetconfContext, op: Element) -> str:
    return await _data(ctx, "operational", op)


async def _get_config(ctx: NetconfContext, op: Element) -> str:
    return await _data(ctx, _datastore(op, "source"), op)


async def _get_data(ctx: NetconfContext, op: Element) -> str:
    ds = _nmda_datastore(ctx, op, READABLE)
    present, select = nmda_filter(op, ctx.schema.module_of)
    if present and select is None:
        return f'<data xmlns="{NMDA_NS}"/>'
    cf = _text(op.child("config-filter"))
    if cf not in (None, "true", "false"):
        raise InvalidValue("config-filter must be true or false",
                           info={"bad-element": "config-filter"})
    content = Content.ALL if cf is None else Content.CONFIG if cf == "true" else Content.NONCONFIG
    depth = depth_of(_text(op.child("max-depth")), "max-depth")
    origins, negated = _origin_filter(ctx, op, ds)
    wd = with_defaults_of(_text(op.child("with-defaults", WD_NS)))
    q = ReadQuery(ds, select, content, depth, with_origin=op.child("with-origin") is not None,
                  origins=origins, negate_origins=negated, paging=_paging(ctx, op))
    body = await query(ctx.session, q,
                       lambda tree, _: encode(tree, Fmt.XML, wd, keep_empty=depth is not None))
    return f'<data xmlns="{NMDA_NS}">{body}</data>'


async def _get_schema(ctx: NetconfContext, op: Element) -> str:
    ident = _text(op.child("identifier"))
    if not ident:
        raise MissingElement("<identifier> is missing", error_type="protocol",
                             info={"bad-element": "identifier"})
    fmt = _text(op.child("format"))
    if fmt not in (None, "yang", "ncm:yang") and not (fmt or "").endswith(":yang"):
        raise InvalidValue(f"unsupported schema format {fmt!r}")
    text = ctx.schema.module_source(ident, _text(op.child("version")) or None)
    return f'<data xmlns="{MON_NS}">{xml_text(text)}</data>'


# -- writes ---------------------------------------------------------------------------


async def _edit_config(ctx: NetconfContext, op: Element) -> str:
    target = _datastore(op, "target")
    await ctx.session.edit(
        target, _config(op), Fmt.XML,
        default_operation=_text(op.child("default-operation")) or "merge",
        test_option=_text(op.child("test-option")) or "test-then-set",
        error_option=_text(op.child("error-option")) or "rollback-on-error",
        report=False,
    )
    return OK


async def _edit_data(ctx: NetconfContext, op: Element) -> str:
    ds = _nmda_datastore(ctx, op, WRITABLE)
    await ctx.session.edit(ds, _config(op), Fmt.XML,
                           default_operation=_text(op.child("default-operation")) or "merge",
                           report=False)
    return OK


async def _copy_config(ctx: NetconfContext, op: Element) -> str:
    target = _datastore(op, "target")
    source, config = _ds_of(op, "source", allow_config=True)
    if config is None:
        await ctx.session.copy_config(target, str(source), source_is_datastore=True)
    else:
        await ctx.session.copy_config(target, _content(config), Fmt.XML)
    return OK


async def _delete_config(ctx: NetconfContext, op: Element) -> str:
    await ctx.session.delete_config(_datastore(op, "target"))
    return OK


async def _validate(ctx: NetconfContext, op: Element) -> str:
    source, config = _ds_of(op, "source", allow_config=True)
    if config is None:
        ctx.session.validate(str(source))
    else:
        ctx.session.validate(_content(config), Fmt.XML, source_is_datastore=False)
    return OK


async def _lock(ctx: NetconfContext, op: Element) -> str:
    ctx.session.lock(_datastore(op, "target"))
    return OK


async def _unlock(ctx: NetconfContext, op: Element) -> str:
    ctx.session.unlock(_datastore(op, "target"))
    return OK


async def _commit(ctx: NetconfContext, op: Element) -> str:
    timeout_text = _text(op.child("confirm-timeout"))
    timeout = 600.0
    if timeout_text is not None:
        if not timeout_text.isdigit() or int(timeout_text) == 0:
            raise InvalidValue("confirm-timeout must be a positive integer",
                               info={"bad-element": "confirm-timeout"})
        timeout = float(timeout_text)
    await ctx.session.commit(
        confirmed=op.child("confirmed") is not None, timeout=timeout,
        persist=_text(op.child("persist")), persist_id=_text(op.child("persist-id")))
    return OK


async def _discard_changes(ctx: NetconfContext, op: Element) -> str:
    await ctx.session.discard_changes()
    return OK


async def _cancel_commit(ctx: NetconfContext, op: Element) -> str:
    await ctx.session.cancel_commit(_text(op.child("persist-id")))
    return OK


# -- sessions -------------------------------------------------------------------------


async def _close_session(ctx: NetconfContext, op: Element) -> str:
    ctx.close_requested = True
    return OK


async def _kill_session(ctx: NetconfContext, op: Element) -> str:
    sid = _text(op.child("session-id"))
    if sid is None:
        raise MissingElement("<session-id> is missing", error_type="protocol",
                             info={"bad-element": "session-id"})
    if not sid.isdigit():
        raise InvalidValue("session-id must be a number", info={"bad-element": "session-id"})
    await ctx.session.kill(int(sid))
    return OK


def _time(op: Element, name: str) -> float | None:
    text = _text(op.child(name))
    if text is None:
        return None
    try:
        return parse_time(text, f"<{name}>")
    except InvalidValue as e:
        raise InvalidValue(e.message, info={"bad-element": name}) from None


async def _create_subscription(ctx: NetconfContext, op: Element) -> str:
    if ctx.subscription is not None and not ctx.subscription.closed:
        raise NfoError("this session already has a notification subscription",
                       tag="in-use", error_type="protocol")
    stream = _text(op.child("stream")) or NETCONF_STREAM
    xpath = notification_filter(op, ctx.schema.module_of)
    start = _time(op, "startTime")
    stop = _time(op, "stopTime")
    ctx.subscription = ctx.datastore.notifications.subscribe(
        stream, start=start, stop=stop, xpath=xpath, who=ctx.session.identity)
    return OK


# -- YANG RPCs and actions ------------------------------------------------------------


def _operation_node(nodes: list[Node]) -> Node | None:
    """The RPC or action node of a reply tree, or None."""
    for n in nodes:
        if n.kind in (Kind.RPC, Kind.ACTION):
            return n
        found = _operation_node(n.children())
        if found is not None:
            return found
    return None


async def _yang_rpc(ctx: NetconfContext, op: Element) -> str:
    """Any other RPC, or an action (wrapped in yang:action), through Session.rpc."""
    content = op
    if (op.ns, op.name) == (YANG_NS, "action"):
        if len(op.children) != 1:
            raise MalformedMessage("<action> must hold exactly one data node")
        content = op.children[0]
    with await ctx.session.rpc(content.xml(), Fmt.XML) as reply:
        rop = _operation_node(reply.nodes())
        body = "".join(print_node(c, Fmt.XML) for c in rop.children()) if rop else ""
    return body or OK


OPERATIONS: dict[tuple[str, str], Handler] = {
    (NC_NS, "get"): _get,
    (NC_NS, "get-config"): _get_config,
    (NC_NS, "edit-config"): _edit_config,
    (NC_NS, "copy-config"): _copy_config,
    (NC_NS, "delete-config"): _delete_config,
    (NC_NS, "lock"): _lock,
    (NC_NS, "unlock"): _unlock,
    (NC_NS, "close-session"): _close_session,
    (NC_NS, "kill-session"): _kill_session,
    (NC_NS, "commit"): _commit,
    (NC_NS, "discard-changes"): _discard_changes,
    (NC_NS, "cancel-commit"): _cancel_commit,
    (NC_NS, "validate"): _validate,
    (NMDA_NS, "get-data"): _get_data,
    (NMDA_NS, "edit-data"): _edit_data,
    (NOTIF_NS, "create-subscription"): _create_subscription,
    (MON_NS, "get-schema"): _get_schema,
    (YANG_NS, "action"): _yang_rpc,
}
"""Every operation nfo implements itself, by (namespace, name)."""

EAGER: frozenset[Handler] = frozenset({_get, _get_config, _get_data, _get_schema})
"""Handlers the transport may start in its receive path when the session is idle: reads,
which need no running task (no ``asyncio.timeout``, no ``current_task``) and whose
awaits (a read handed to a worker thread) are plain futures."""


def operation_path(op: Element, schema: Schema) -> str | None:
    """The schema path access control checks for one of :data:`OPERATIONS`
    (``/ietf-netconf:lock``); None for a YANG RPC or action (the datastore checks
    those) or an element of no known module."""
    if (op.ns, op.name) not in OPERATIONS or op.ns == YANG_NS:
        return None
    module = schema.module_of(op.ns)
    return None if module is None else f"/{module}:{op.name}"


def handler_for(op: Element, schema: Schema) -> Handler:
    """The handler of an operation element: from :data:`OPERATIONS`, else the YANG
    RPC path for an operation of a known module other than ietf-netconf."""
    handler = OPERATIONS.get((op.ns, op.name))
    if handler is not None:
        return handler
    if op.ns and op.ns != NC_NS and schema.module_of(op.ns) is not None:
        return _yang_rpc
    raise OperationNotSupported(f"operation {op.name!r} is not supported",
                                info={"bad-element": op.name})
