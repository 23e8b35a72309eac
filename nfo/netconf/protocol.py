"""One NETCONF session's protocol state and :func:`handle`: one message in, one reply out.

Pure with respect to the transport: the server hands :func:`handle` a framed
message and writes back what it returns (or, to start a read in its receive path,
:func:`prepare`, synchronous: parse, dispatch, access check; then :meth:`Call.run`).
Each message is parsed once, by the hardened reader (:mod:`nfo.wire.xml`);
inline ``<config>`` elements are only scanned, so their content reaches libyang as
the client wrote it.  The operation is dispatched through
:data:`~nfo.netconf.operations.OPERATIONS`, and every failure is answered from the one error table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nfo.datastore import Datastore, Session
from nfo.datastore.notifications import NotificationSubscription
from nfo.errors import MalformedMessage, NfoError, OperationFailed
from nfo.netconf.messages import BASE_1_0, NC_NS, NMDA_NS, Attributes, error_reply, reply
from nfo.netconf.operations import EAGER, Handler, handler_for, operation_path
from nfo.schema import Schema
from nfo.wire import xml

__all__ = ["Call", "NetconfContext", "handle", "prepare"]

log = logging.getLogger(__name__)

_OPAQUE = frozenset({(NC_NS, "config"), (NMDA_NS, "config")})
"""Inline configuration: scanned, never built element by element."""


@dataclass
class NetconfContext:
    """One NETCONF session's protocol state."""

    session: Session
    schema: Schema
    base: str = BASE_1_0
    close_requested: bool = False
    subscription: NotificationSubscription | None = None
    """The session's RFC 5277 subscription; the transport delivers its events."""
    in_rpcs: int = 0
    in_bad_rpcs: int = 0
    out_rpc_errors: int = 0
    out_notifications: int = 0
    """RFC 6022 counters (the transport counts notifications)."""

    @property
    def datastore(self) -> Datastore:
        return self.session.datastore


class Call:
    """One parsed, authorised <rpc>, ready to run: :meth:`run` gives the reply."""

    __slots__ = ("attrs", "ctx", "eager", "handler", "op")

    def __init__(self, ctx: NetconfContext, op: xml.Element, handler: Handler,
                 attrs: Attributes) -> None:
        self.ctx = ctx
        self.op = op
        self.handler = handler
        self.attrs = attrs
        self.eager = handler in EAGER
        """Whether the transport may start it at once in its receive path (see
        :data:`~nfo.netconf.operations.EAGER`)."""

    async def run(self) -> bytes:
        """The <rpc-reply> (never raises NfoError)."""
        ctx = self.ctx
        try:
            body = await self.handler(ctx, self.op)
        except Exception as e:
            return _failed(ctx, self.op, self.attrs, e)
        return reply(self.attrs, body)


def _failed(ctx: NetconfContext, op: xml.Element, attrs: Attributes, e: Exception) -> bytes:
    """The rpc-error answering ``op``'s failure; anything but an NfoError is a bug of
    ours: logged, answered as an internal error, and the session goes on."""
    if not isinstance(e, NfoError):
        log.error("netconf %s failed", op.name, exc_info=e)
        e = OperationFailed("internal error while processing the request")
    ctx.out_rpc_errors += 1
    return error_reply(e, attrs, ctx.schema.namespace_of)


def prepare(ctx: NetconfContext, message: bytes) -> Call | bytes:
    """Parse one <rpc> message, find its handler and check access to the operation:
    the :class:`Call` to run, or the error reply (never raises NfoError)."""
    attrs: Attributes = {}
    try:
        root = xml.read(message, opaque=_OPAQUE, error_type="rpc")
        if (root.ns, root.name) != (NC_NS, "rpc"):
            raise MalformedMessage(f"expected an <rpc> element, got {root.name!r}",
                                   info={"bad-element": root.name})
        attrs = root.attrs
        if root.attr("message-id") is None:
            raise NfoError("the rpc has no message-id", tag="missing-attribute",
                           error_type="rpc",
                           info={"bad-attribute": "message-id", "bad-element": "rpc"})
        if len(root.children) != 1:
            raise MalformedMessage("an <rpc> must hold exactly one operation")
    except NfoError as e:
        ctx.in_bad_rpcs += 1
        ctx.out_rpc_errors += 1
        return error_reply(e, attrs, ctx.schema.namespace_of)
    op = root.children[0]
    ctx.in_rpcs += 1
    try:
        handler = handler_for(op, ctx.schema)
        checked = operation_path(op, ctx.schema)
        if checked is not None:
            ctx.session.authorize(checked)
    except Exception as e:
        return _failed(ctx, op, attrs, e)
    return Call(ctx, op, handler, attrs)


async def handle(ctx: NetconfContext, message: bytes) -> bytes:
    """Process one <rpc> message and return the <rpc-reply> (never raises NfoError)."""
    call = prepare(ctx, message)
    if isinstance(call, bytes):
        return call
    return await call.run()
