"""NETCONF's own messages: hello, capabilities, the rpc-reply envelope, notifications.

Everything here is NETCONF framing of content made elsewhere: the capabilities
come from the live module set, replies wrap what an operation produced (or
the one error table's ``rpc-error`` elements), notifications wrap an event
the datastore rendered.  The namespaces NETCONF messages use live here too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from xml.sax.saxutils import quoteattr, unescape

from nfo.errors import NfoError
from nfo.protocol.errors import NamespaceOf, rpc_errors, xml_text
from nfo.protocol.formats import format_time
from nfo.schema import Schema
from nfo.wire import xml

__all__ = [
    "BASE_1_0",
    "BASE_1_1",
    "MON_NS",
    "NC_NS",
    "NMDA_NS",
    "NOTIF_NS",
    "NOTIF_STATUS_NS",
    "OK",
    "WD_NS",
    "YANG_NS",
    "Attributes",
    "HelloError",
    "client_hello",
    "content_id",
    "error_reply",
    "message_id",
    "notification_message",
    "reply",
    "server_capabilities",
    "server_hello",
    "status_notification",
]

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
WD_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
YANG_NS = "urn:ietf:params:xml:ns:yang:1"
MON_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NOTIF_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
"""RFC 5277: create-subscription and the <notification> envelope."""
NOTIF_STATUS_NS = "urn:ietf:params:xml:ns:netmod:notification"
"""RFC 5277: replayComplete and notificationComplete."""
NMDA_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
BASE_1_0 = "urn:ietf:params:netconf:base:1.0"
BASE_1_1 = "urn:ietf:params:netconf:base:1.1"
OK = "<ok/>"
_CAP = "urn:ietf:params:netconf:capability:"
_XML_NS = "http://www.w3.org/XML/1998/namespace"


class HelloError(Exception):
    """The client's hello is unusable: the session must close."""


# -- hello ----------------------------------------------------------------------------


def content_id(schema: Schema) -> str:
    """The YANG library content-id, the one RESTCONF's yang-library data carries."""
    return schema.content_id()


def server_capabilities(schema: Schema) -> list[str]:
    caps = [
        BASE_1_0,
        BASE_1_1,
        _CAP + "writable-running:1.0",
        _CAP + "candidate:1.0",
        _CAP + "confirmed-commit:1.1",
        _CAP + "rollback-on-error:1.0",
        _CAP + "validate:1.1",
        _CAP + "startup:1.0",
        _CAP + "xpath:1.0",
        _CAP + "notification:1.0",
        _CAP + "interleave:1.0",
        _CAP + "with-defaults:1.0?basic-mode=explicit"
        "&also-supported=report-all,report-all-tagged,trim",
    ]
    for m in sorted(schema.modules(), key=lambda m: m.name):
        if m.implemented:
            rev = f"&revision={m.revision}" if m.revision else ""
            caps.append(f"{m.namespace}?module={m.name}{rev}")
    caps.append(_CAP + f"yang-library:1.1?revision=2019-01-04&content-id={content_id(schema)}")
    return caps


def server_hello(schema: Schema, session_id: int) -> bytes:
    caps = "".join(f"<capability>{xml_text(c)}</capability>"
                   for c in server_capabilities(schema))
    return (f'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="{NC_NS}"><capabilities>'
            f"{caps}</capabilities><session-id>{session_id}</session-id></hello>").encode()


def client_hello(data: bytes) -> tuple[str, list[str]]:
    """The negotiated base version and the client's capabilities; HelloError if unusable."""
    try:
        root = xml.read(data, error_type="rpc")
    except NfoError as e:
        raise HelloError(e.message) from None
    if (root.ns, root.name) != (NC_NS, "hello"):
        raise HelloError("the first message must be a hello")
    if root.child("session-id") is not None:
        raise HelloError("a client hello must not carry a session-id")
    caps_el = root.child("capabilities")
    if caps_el is None:
        raise HelloError("the hello has no capabilities")
    caps = [c.text.strip() for c in caps_el.children_named("capability")]
    if BASE_1_1 in caps:
        return BASE_1_1, caps
    if BASE_1_0 in caps:
        return BASE_1_0, caps
    raise HelloError("no common base protocol version")


# -- replies --------------------------------------------------------------------------

Attributes = Mapping[tuple[str, str], str]
"""The <rpc> element's attributes, (namespace URI or "", local name) -> value; RFC 6241
section 4.2 has the reply carry them all."""


def _quoted(value: str) -> str:
    if _PLAIN_VALUE.fullmatch(value) is not None:
        return f'"{value}"'
    return quoteattr(value)


_PLAIN_VALUE = re.compile(r'[^&<>"\t\n\r]*')
"""An attribute value that needs no escape."""


def _reply_open(attrs: Attributes) -> str:
    parts = [f'<rpc-reply xmlns="{NC_NS}"']
    n = 0
    for (ns, local), value in attrs.items():
        if ns == _XML_NS:
            parts.append(f" xml:{local}={_quoted(value)}")
        elif ns and ns != NC_NS:
            parts.append(f" xmlns:a{n}={_quoted(ns)} a{n}:{local}={_quoted(value)}")
            n += 1
        else:
            parts.append(f" {local}={_quoted(value)}")
    parts.append(">")
    return "".join(parts)


def reply(attrs: Attributes, body: str) -> bytes:
    """An <rpc-reply> holding ``body`` (XML text)."""
    return (_reply_open(attrs) + body + "</rpc-reply>").encode()


def error_reply(err: NfoError, attrs: Attributes, namespace_of: NamespaceOf) -> bytes:
    """An <rpc-reply> with one <rpc-error> per error, from the one error table."""
    return reply(attrs, rpc_errors(err, namespace_of))


_MESSAGE_ID = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?rpc[\s][^>]*?\bmessage-id\s*=\s*"
                         rb"(?:\"([^\"<]{0,256})\"|'([^'<]{0,256})')")


def message_id(head: bytes) -> Attributes:
    """The ``message-id`` of an <rpc> from the first bytes of a message that will never
    be parsed (cut for its size or time), as reply attributes; empty if not found."""
    m = _MESSAGE_ID.search(head)
    if m is None:
        return {}
    value = (m.group(1) if m.group(1) is not None else m.group(2)).decode("utf-8", "replace")
    return {("", "message-id"): unescape(value, {"&quot;": '"', "&apos;": "'"})}


# -- notifications (RFC 5277) ----------------------------------------------------------


def notification_message(event_time: float, body: str) -> bytes:
    """One RFC 5277 <notification> message."""
    return (f'<notification xmlns="{NOTIF_NS}"><eventTime>{format_time(event_time)}'
            f"</eventTime>{body}</notification>").encode()


def status_notification(name: str) -> bytes:
    """replayComplete or notificationComplete (RFC 5277 section 4)."""
    return notification_message(time.time(), f'<{name} xmlns="{NOTIF_STATUS_NS}"/>')
