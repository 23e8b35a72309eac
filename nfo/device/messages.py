"""The client side of NETCONF messages (RFC 6241), as pure code: the hello, the ``<rpc>``
envelope, and the one checker that turns every reply into a result or a
:class:`~nfo.device.errors.DeviceError`.

Why apart from :mod:`nfo.device.client`: no socket is needed to say what a reply means, so
the classification is tested on canned replies, and the session code only moves bytes.
Replies are read by :func:`nfo.wire.xml.read`, the one hardened XML reader, with
``<data>`` opaque: a large configuration is cut out of the reply, not rebuilt.
"""

from __future__ import annotations

from nfo.device.errors import DeviceError
from nfo.errors import MalformedMessage
from nfo.wire import xml
from nfo.wire.xml import Element, escape

__all__ = ["BASE_1_0", "BASE_1_1", "NC", "Hello", "check_reply", "client_hello",
           "parse_hello", "parse_message", "rpc_errors", "rpc_message"]

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
BASE_1_0 = "urn:ietf:params:netconf:base:1.0"
BASE_1_1 = "urn:ietf:params:netconf:base:1.1"
_OPAQUE = frozenset({(NC, "data")})
_FIELDS = (("error-type", "type"), ("error-tag", "tag"), ("error-severity", "severity"),
           ("error-app-tag", "app-tag"), ("error-path", "path"), ("error-message", "message"))


def client_hello() -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="{NC}"><capabilities>'
            f"<capability>{BASE_1_0}</capability><capability>{BASE_1_1}</capability>"
            "</capabilities></hello>").encode()


def rpc_message(message_id: str, inner_xml: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><rpc xmlns="{NC}" '
            f'message-id="{escape(message_id)}">{inner_xml}</rpc>').encode()


def parse_message(data: bytes) -> Element:
    """One message from the device, read by the hardened reader."""
    try:
        return xml.read(data, opaque=_OPAQUE)
    except MalformedMessage as e:
        raise DeviceError("protocol", f"the device sent a message that is not acceptable "
                          f"XML: {e}") from None


class Hello:
    """What the device's ``<hello>`` said."""

    __slots__ = ("capabilities", "session_id")

    def __init__(self, capabilities: frozenset[str], session_id: int) -> None:
        self.capabilities = capabilities
        self.session_id = session_id


def parse_hello(root: Element) -> Hello:
    if root.ns != NC or root.name != "hello":
        raise DeviceError("protocol", f"the device began with <{root.name}>, not <hello>")
    caps_el = root.child("capabilities")
    caps = frozenset(c.text.strip() for c in caps_el.children_named("capability")
                     ) if caps_el is not None else frozenset()
    if BASE_1_0 not in caps and BASE_1_1 not in caps:
        raise DeviceError("protocol", "the device's hello names no NETCONF base capability")
    sid = root.child("session-id")
    text = sid.text.strip() if sid is not None else ""
    if not text.isdigit() or int(text) < 1:
        raise DeviceError("protocol", "the device's hello has no valid session-id")
    return Hello(caps, int(text))


def rpc_errors(reply: Element) -> list[dict[str, str]]:
    """Every ``<rpc-error>`` of a reply as a dict of its fields (only those present)."""
    out = []
    for err in reply.children_named("rpc-error", NC):
        fields: dict[str, str] = {}
        for element, key in _FIELDS:
            child = err.child(element, NC)
            if child is not None and (value := child.text.strip()):
                fields[key] = value
        out.append(fields)
    return out


def _describe(operation: str, errors: list[dict[str, str]]) -> str:
    first = errors[0]
    what = first.get("tag", "an unnamed error")
    where = f" at {first['path']}" if "path" in first else ""
    said = f": {first['message']}" if "message" in first else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{operation} refused by the device: {what}{where}{said}{more}"


def check_reply(reply: Element, operation: str) -> Element:
    """``reply`` if it is an ``<rpc-reply>`` without errors (warnings are let through);
    else the DeviceError that describes it (kind "rpc", or "protocol" for a message that is
    no reply at all)."""
    if reply.ns != NC or reply.name != "rpc-reply":
        raise DeviceError("protocol", f"{operation}: the device answered with "
                          f"<{reply.name}>, not <rpc-reply>")
    errors = rpc_errors(reply)
    if any(e.get("severity", "error") != "warning" for e in errors):
        raise DeviceError("rpc", _describe(operation, errors), errors=errors)
    return reply
