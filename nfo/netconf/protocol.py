"""NETCONF (RFC 6241) protocol operations: parse a request, call the datastore, encode a reply.

Pure with respect to the transport: :func:`handle` takes one framed message and
returns the reply bytes.  The envelope is parsed with ElementTree (no DTD
processing; any DOCTYPE or ENTITY is refused before parsing); configuration
and RPC content is handed to libyang through the datastore API.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import time
import xml.etree.ElementTree as ET
import xml.parsers.expat
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from nfo.datastore import Datastore, Session
from nfo.datastore.notifications import NETCONF_STREAM, NotificationSubscription
from nfo.errors import (
    ErrorDetail,
    InvalidValue,
    MalformedMessage,
    MissingElement,
    NfoError,
    OperationFailed,
    OperationNotSupported,
)
from nfo.protocol.formats import format_time, parse_time
from nfo.schema import Schema
from nfo.schema.data import (
    Fmt,
    Tree,
    WithDefaults,
    children,
    print_nodes,
    rfc6243_xml,
    siblings,
)
from nfo.schema.ly import ffi, lib

__all__ = [
    "BASE_1_0",
    "BASE_1_1",
    "NC_NS",
    "NMDA_NS",
    "NOTIF_NS",
    "NOTIF_STATUS_NS",
    "HelloError",
    "NetconfContext",
    "check_xml_safe",
    "client_hello",
    "handle",
    "notification_message",
    "rpc_error_reply",
    "server_capabilities",
    "server_hello",
    "status_notification",
    "subtree_to_xpath",
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
DS_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
BASE_1_0 = "urn:ietf:params:netconf:base:1.0"
BASE_1_1 = "urn:ietf:params:netconf:base:1.1"
_CAP = "urn:ietf:params:netconf:capability:"
log = logging.getLogger(__name__)
_UNSAFE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_PREFIX_IN_PATH = re.compile(r"([A-Za-z_][\w.-]*):")


class HelloError(Exception):
    """The client's hello is unusable: the session must close."""


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
    _ns_to_module: dict[str, str] = field(default_factory=dict)

    @property
    def datastore(self) -> Datastore:
        return self.session.datastore

    def module_of(self, ns: str) -> str | None:
        if not self._ns_to_module:
            self._ns_to_module = {m.namespace: m.name for m in self.schema.modules()}
        return self._ns_to_module.get(ns)

    def namespace_of(self, module: str) -> str | None:
        for m in self.schema.modules():
            if m.name == module:
                return m.namespace
        return None


# -- XML helpers --------------------------------------------------------------------


def check_xml_safe(data: bytes) -> None:
    """Refuse DTDs and entity declarations (no entity expansion, no external fetches)."""
    if _UNSAFE.search(data):
        raise MalformedMessage("DOCTYPE and ENTITY declarations are not allowed")


def _parse(data: bytes) -> tuple[ET.Element, dict[str, str]]:
    """The root element and every prefix declared in the document (prefix -> namespace)."""
    check_xml_safe(data)
    # Whitespace between framed messages (scrapli sends a newline after ]]>]]>) would
    # put the XML declaration off the start of the document.
    data = data.lstrip(b" \t\r\n")
    prefixes: dict[str, str] = {}
    root: ET.Element | None = None
    try:
        for event, item in ET.iterparse(io.BytesIO(data), events=("start", "start-ns")):
            if event == "start-ns":
                prefix, uri = item
                if prefix:
                    prefixes[str(prefix)] = str(uri)
            elif root is None:
                root = item
    except ET.ParseError as e:
        raise MalformedMessage(f"not well-formed XML: {e}") from None
    if root is None:
        raise MalformedMessage("no XML element")
    return root, prefixes


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _child(el: ET.Element, name: str, ns: str = NC_NS) -> ET.Element | None:
    return el.find(f"{{{ns}}}{name}")


def _text(el: ET.Element | None) -> str | None:
    if el is None:
        return None
    return (el.text or "").strip()


def _serialize(el: ET.Element, prefixes: dict[str, str]) -> str:
    """An element as standalone XML, re-declaring the document's prefixes so that
    prefixed values (identityrefs, instance-identifiers) still resolve."""
    copy = _copy(el)
    for p, uri in prefixes.items():
        if not re.fullmatch(r"ns\d+", p):
            copy.set(f"xmlns:{p}", uri)
    return ET.tostring(copy, encoding="unicode")


def _copy(el: ET.Element) -> ET.Element:
    out = ET.Element(el.tag, dict(el.attrib))
    out.text = el.text
    out.tail = None
    for c in el:
        cc = _copy(c)
        cc.tail = c.tail
        out.append(cc)
    return out


# -- hello ----------------------------------------------------------------------------


def content_id(schema: Schema) -> str:
    h = hashlib.sha256()
    for m in sorted(schema.modules(), key=lambda m: m.name):
        h.update(f"{m.name}@{m.revision}:{m.implemented};".encode())
    return h.hexdigest()[:16]


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
    caps = "".join(f"<capability>{escape(c)}</capability>" for c in server_capabilities(schema))
    return (f'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="{NC_NS}"><capabilities>'
            f"{caps}</capabilities><session-id>{session_id}</session-id></hello>").encode()


def client_hello(data: bytes) -> tuple[str, list[str]]:
    """The negotiated base version and the client's capabilities; HelloError if unusable."""
    try:
        root, _ = _parse(data)
    except NfoError as e:
        raise HelloError(e.message) from None
    if root.tag != f"{{{NC_NS}}}hello":
        raise HelloError("the first message must be a hello")
    if _child(root, "session-id") is not None:
        raise HelloError("a client hello must not carry a session-id")
    caps_el = _child(root, "capabilities")
    if caps_el is None:
        raise HelloError("the hello has no capabilities")
    caps = [(_text(c) or "") for c in caps_el.findall(f"{{{NC_NS}}}capability")]
    if BASE_1_1 in caps:
        return BASE_1_1, caps
    if BASE_1_0 in caps:
        return BASE_1_0, caps
    raise HelloError("no common base protocol version")


# -- replies --------------------------------------------------------------------------


def _reply_open(attrs: Iterable[tuple[str, str]]) -> str:
    parts = [f'<rpc-reply xmlns="{NC_NS}"']
    n = 0
    for key, value in attrs:
        ns, local = _split(key)
        if ns and ns != NC_NS:
            parts.append(f" xmlns:a{n}={quoteattr(ns)} a{n}:{local}={quoteattr(value)}")
            n += 1
        else:
            parts.append(f" {local}={quoteattr(value)}")
    parts.append(">")
    return "".join(parts)


def _reply(attrs: Iterable[tuple[str, str]], body: str) -> bytes:
    return (_reply_open(attrs) + body + "</rpc-reply>").encode()


def _error_xml(err: ErrorDetail, ctx: NetconfContext | None) -> str:
    out = [f"<rpc-error><error-type>{escape(err.error_type)}</error-type>"
           f"<error-tag>{escape(err.tag)}</error-tag><error-severity>error</error-severity>"]
    if err.app_tag:
        out.append(f"<error-app-tag>{escape(err.app_tag)}</error-app-tag>")
    if err.path:
        decls = ""
        if ctx is not None:
            for mod in dict.fromkeys(_PREFIX_IN_PATH.findall(err.path)):
                ns = ctx.namespace_of(mod)
                if ns is not None:
                    decls += f" xmlns:{mod}={quoteattr(ns)}"
        out.append(f"<error-path{decls}>{escape(err.path)}</error-path>")
    out.append(f'<error-message xml:lang="en">{escape(err.message)}</error-message>')
    info = [(k, v) for k, v in err.info.items() if re.fullmatch(r"[A-Za-z_][\w.-]*", k)]
    if info:
        out.append("<error-info>")
        out += [f"<{k}>{escape(str(v))}</{k}>" for k, v in info]
        out.append("</error-info>")
    out.append("</rpc-error>")
    return "".join(out)


def rpc_error_reply(e: NfoError, attrs: Iterable[tuple[str, str]] = (),
                    ctx: NetconfContext | None = None) -> bytes:
    return _reply(attrs, "".join(_error_xml(d, ctx) for d in e.errors))


_OK = "<ok/>"


# -- filters --------------------------------------------------------------------------


def _quote(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return "concat('" + "', \"'\", '".join(value.split("'")) + "')"


def subtree_to_xpath(filter_el: ET.Element, module_of: Callable[[str], str | None]) -> str | None:
    """An XPath (libyang JSON prefixes) selecting what an RFC 6241 subtree filter selects.

    Containment nodes become steps, content-match nodes predicates (and are
    selected too), selection nodes steps.  Returns None for an empty filter (select
    nothing) and raises InvalidValue for elements of unknown namespaces.
    """
    paths: list[str] = []

    def name_of(el: ET.Element) -> str:
        ns, local = _split(el.tag)
        mod = module_of(ns) if ns else None
        if mod is None:
            raise InvalidValue(f"the filter element {local!r} is in no known namespace",
                               tag="unknown-namespace" if ns else "unknown-element",
                               info={"bad-element": local})
        return f"{mod}:{local}"

    def walk(el: ET.Element, prefix: str) -> None:
        step = prefix + "/" + name_of(el)
        kids = list(el)
        matches = [k for k in kids if len(k) == 0 and (k.text or "").strip()]
        others = [k for k in kids if k not in matches]
        pred = "".join(f"[{name_of(k)}={_quote((k.text or '').strip())}]" for k in matches)
        if not others:
            paths.append(step + pred)
            return
        for k in matches:
            paths.append(step + pred + "/" + name_of(k))
        for k in others:
            walk(k, step + pred)

    for top in filter_el:
        walk(top, "")
    return " | ".join(paths) if paths else None


def _filter_xpath(op: ET.Element, ctx: NetconfContext,
                  prefixes: dict[str, str] | None = None) -> tuple[bool, str | None]:
    """(whether a filter is present, the XPath it means, XML prefixes made module names)."""
    f = _child(op, "filter")
    if f is None:
        return False, None
    ftype = f.get("type", "subtree")
    if ftype == "xpath":
        select = f.get("select")
        if select is None:
            raise MissingElement("an xpath filter needs a select attribute",
                                 tag="missing-attribute", error_type="protocol",
                                 info={"bad-attribute": "select", "bad-element": "filter"})
        return True, _xml_xpath(select, prefixes or {}, ctx)
    if ftype != "subtree":
        raise InvalidValue(f"unknown filter type {ftype!r}", tag="bad-attribute",
                           error_type="protocol",
                           info={"bad-attribute": "type", "bad-element": "filter"})
    return True, subtree_to_xpath(f, ctx.module_of)


def _with_defaults(op: ET.Element) -> WithDefaults | None:
    v = _text(_child(op, "with-defaults", WD_NS))
    if v is None:
        return None
    try:
        return WithDefaults(v)
    except ValueError:
        raise InvalidValue(f"unknown with-defaults mode {v!r}", info={
            "bad-element": "with-defaults"}) from None


def _print_xml(first: Any, wd: WithDefaults | None, extra_flags: int = 0) -> str:
    """Data as NETCONF XML; report-all-tagged marks defaults as RFC 6243 section 6 says."""
    text = print_nodes(first, Fmt.XML, flags=(wd or WithDefaults.EXPLICIT).ly | extra_flags)
    return rfc6243_xml(text) if wd is WithDefaults.REPORT_ALL_TAGGED else text


def _data_reply(ctx: NetconfContext, datastore: str, op: ET.Element,
                attrs: list[tuple[str, str]], prefixes: dict[str, str] | None = None) -> bytes:
    present, xpath = _filter_xpath(op, ctx, prefixes)
    wd = _with_defaults(op)
    if present and xpath is None:
        return _reply(attrs, "<data/>")
    tree = ctx.datastore.get(datastore, xpath)
    try:
        body = _print_xml(tree.first(), wd)
    finally:
        tree.free()
    return _reply(attrs, f"<data>{body}</data>")


# -- datastore references -------------------------------------------------------------

_CONFIG_DS = ("running", "candidate", "startup")


def _ds_of(op: ET.Element, which: str, *, allow_config: bool = False
           ) -> tuple[str | None, ET.Element | None]:
    """(datastore name, inline config element) of a source/target parameter."""
    el = _child(op, which)
    if el is None:
        raise MissingElement(f"<{which}> is missing", tag="missing-element",
                             error_type="protocol", info={"bad-element": which})
    kids = list(el)
    if len(kids) != 1:
        raise InvalidValue(f"<{which}> must name exactly one datastore",
                           info={"bad-element": which})
    ns, local = _split(kids[0].tag)
    if ns == NC_NS and local in _CONFIG_DS:
        return local, None
    if ns == NC_NS and local == "config" and allow_config:
        return None, kids[0]
    if ns == NC_NS and local == "url":
        raise OperationNotSupported("the :url capability is not supported")
    raise InvalidValue(f"unknown datastore {local!r}", info={"bad-element": local})


def _config_text(config: ET.Element, prefixes: dict[str, str]) -> str:
    raw = _raw_children(config, prefixes)
    if raw is not None:
        return raw
    return "".join(_serialize(c, prefixes) for c in config)


# -- inline configuration as the client sent it -------------------------------------

_REQUEST: ContextVar[list[Any] | None] = ContextVar("nfo_netconf_request", default=None)
"""The request :func:`handle` is processing: [its bytes, its parsed root].  The list is
emptied when the request ends, so tasks started meanwhile (which copy the context)
do not keep a large request alive."""
_QNAME_END = re.compile(rb"<[^\s/>]+")
_XML_DECL = re.compile(rb"<\?xml[^>]*encoding\s*=\s*[\"']([^\"']+)", re.IGNORECASE)


class _Stop(Exception):
    pass


def _index_path(root: ET.Element, target: ET.Element, depth: int = 3) -> list[int] | None:
    """Child indexes from ``root`` down to ``target`` (found within ``depth`` levels)."""
    for i, c in enumerate(root):
        if c is target:
            return [i]
    if depth > 1:
        for i, c in enumerate(root):
            sub = _index_path(c, target, depth - 1)
            if sub is not None:
                return [i, *sub]
    return None


def _raw_children(config: ET.Element, prefixes: dict[str, str]) -> str | None:
    """The children of an inline ``<config>`` cut from the request bytes, each start
    tag given the namespace declarations it relied on from its ancestors; None when
    that cannot be done exactly (then the element is serialized again by ElementTree).

    A large edit's content is then handed to libyang as the client wrote it, instead
    of being rebuilt node by node in Python.  Each child is declared what
    :func:`_serialize` declares (every prefix of the document, so that prefixed
    values still resolve) plus the declarations in scope at ``<config>``, which win,
    the default namespace included; a child's own declarations stay its own.
    Comments, processing instructions, CDATA sections, text beside the children and
    encodings other than UTF-8 take the ElementTree path.
    """
    req = _REQUEST.get()
    if not req or len(config) == 0:
        return None
    data, root = req
    ws = " \t\r\n"
    if (config.text and config.text.strip(ws)) or any(c.tail and c.tail.strip(ws)
                                                      for c in config):
        return None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return None
    decl = _XML_DECL.match(data)
    if decl is not None and decl.group(1).lower().replace(b"_", b"-") not in (b"utf-8",
                                                                              b"utf8"):
        return None
    where = _index_path(root, config)
    if where is None:
        return None
    try:
        found = _scan_children(data, where)
    except (xml.parsers.expat.ExpatError, ValueError):
        return None
    if found is None:
        return None
    scope, kids, end = found
    if len(kids) != len(config):
        return None
    base = {**prefixes, **scope}
    out = []
    for i, (start, own) in enumerate(kids):
        stop = kids[i + 1][0] if i + 1 < len(kids) else end
        chunk = data[start:stop]
        m = _QNAME_END.match(chunk)
        if m is None:
            return None
        extra = "".join(
            f" xmlns={quoteattr(u)}" if not p else f" xmlns:{p}={quoteattr(u)}"
            for p, u in base.items() if p not in own)
        out.append(chunk[:m.end()].decode() + extra + chunk[m.end():].decode())
    return "".join(out)


def _scan_children(data: bytes, where: list[int]
                   ) -> tuple[dict[str, str], list[tuple[int, set[str]]], int] | None:
    """Find, with expat, the element at child indexes ``where`` below the root: the
    namespace declarations in scope at it ("" is the default namespace), the byte
    offset and own declarations of each child, and the offset of its end tag.

    Inside the element the handlers only count depth (they run once per node)."""
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    scopes: list[dict[str, str]] = []
    counts = [0]
    pending: dict[str, str] = {}
    scope: dict[str, str] = {}
    kids: list[tuple[int, set[str]]] = []
    k = len(where)
    matched = 0
    depth = 0
    end_at = -1
    inside = False

    def ns_start(prefix: str | None, uri: str | None) -> None:
        pending[prefix or ""] = uri or ""

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal matched, depth, inside
        d = len(scopes)
        i = counts[-1]
        counts[-1] += 1
        counts.append(0)
        scopes.append(dict(pending))
        pending.clear()
        if matched == d and (d == 0 or (d <= k and where[d - 1] == i)):
            matched = d + 1
            if d == k:
                for sc in scopes:
                    scope.update(sc)
                depth = 0
                inside = True
                parser.StartElementHandler = inner_start
                parser.EndElementHandler = inner_end

    def end(name: str) -> None:
        nonlocal matched
        scopes.pop()
        counts.pop()
        matched = min(matched, len(scopes))

    def inner_start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        if depth == 0:
            kids.append((parser.CurrentByteIndex, set(pending)))
        if pending:
            pending.clear()
        depth += 1

    def inner_end(name: str) -> None:
        nonlocal depth, end_at
        depth -= 1
        if depth < 0:
            end_at = parser.CurrentByteIndex
            raise _Stop

    def refuse(*_: Any) -> None:
        if inside:
            raise ValueError("markup the raw path does not carry")

    parser.StartNamespaceDeclHandler = ns_start
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CommentHandler = refuse
    parser.ProcessingInstructionHandler = refuse
    parser.StartCdataSectionHandler = refuse
    with contextlib.suppress(_Stop):
        parser.Parse(data, True)
    if end_at < 0:
        return None
    return scope, kids, end_at


# -- operations -----------------------------------------------------------------------


async def _edit_config(ctx: NetconfContext, op: ET.Element, prefixes: dict[str, str]) -> str:
    target, _ = _ds_of(op, "target")
    assert target is not None
    config = _child(op, "config")
    if config is None:
        if _child(op, "url") is not None:
            raise OperationNotSupported("the :url capability is not supported")
        raise MissingElement("<config> is missing", error_type="protocol",
                             info={"bad-element": "config"})
    await ctx.session.edit(
        target, _config_text(config, prefixes), Fmt.XML,
        default_operation=_text(_child(op, "default-operation")) or "merge",
        test_option=_text(_child(op, "test-option")) or "test-then-set",
        error_option=_text(_child(op, "error-option")) or "rollback-on-error",
    )
    return _OK


async def _copy_config(ctx: NetconfContext, op: ET.Element, prefixes: dict[str, str]) -> str:
    target, _ = _ds_of(op, "target")
    assert target is not None
    source, config = _ds_of(op, "source", allow_config=True)
    if source is not None:
        await ctx.session.copy_config(target, source, source_is_datastore=True)
    else:
        assert config is not None
        await ctx.session.copy_config(target, _config_text(config, prefixes), Fmt.XML)
    return _OK


async def _validate(ctx: NetconfContext, op: ET.Element, prefixes: dict[str, str]) -> str:
    source, config = _ds_of(op, "source", allow_config=True)
    if source is not None:
        ctx.session.validate(source)
    else:
        assert config is not None
        ctx.session.validate(_config_text(config, prefixes), Fmt.XML, source_is_datastore=False)
    return _OK


async def _commit(ctx: NetconfContext, op: ET.Element) -> str:
    timeout_text = _text(_child(op, "confirm-timeout"))
    timeout = 600.0
    if timeout_text is not None:
        if not timeout_text.isdigit() or int(timeout_text) == 0:
            raise InvalidValue("confirm-timeout must be a positive integer",
                               info={"bad-element": "confirm-timeout"})
        timeout = float(timeout_text)
    await ctx.session.commit(
        confirmed=_child(op, "confirmed") is not None, timeout=timeout,
        persist=_text(_child(op, "persist")), persist_id=_text(_child(op, "persist-id")))
    return _OK


async def _kill_session(ctx: NetconfContext, op: ET.Element) -> str:
    sid = _text(_child(op, "session-id"))
    if sid is None:
        raise MissingElement("<session-id> is missing", error_type="protocol",
                             info={"bad-element": "session-id"})
    if not sid.isdigit():
        raise InvalidValue("session-id must be a number", info={"bad-element": "session-id"})
    await ctx.session.kill(int(sid))
    return _OK


def _get_schema(ctx: NetconfContext, op: ET.Element) -> str:
    ident = _text(_child(op, "identifier", MON_NS))
    if not ident:
        raise MissingElement("<identifier> is missing", error_type="protocol",
                             info={"bad-element": "identifier"})
    fmt = _text(_child(op, "format", MON_NS))
    if fmt not in (None, "yang", "ncm:yang") and not (fmt or "").endswith(":yang"):
        raise InvalidValue(f"unsupported schema format {fmt!r}")
    text = ctx.schema.module_source(ident, _text(_child(op, "version", MON_NS)) or None)
    return f'<data xmlns="{MON_NS}">{escape(text)}</data>'


# -- NMDA (RFC 8526) -------------------------------------------------------------------

_NMDA_DS = ("running", "candidate", "startup", "operational")


def _nmda_datastore(op: ET.Element, prefixes: dict[str, str], allowed: tuple[str, ...]) -> str:
    text = _text(_child(op, "datastore", NMDA_NS))
    if not text:
        raise MissingElement("<datastore> is missing", error_type="protocol",
                             info={"bad-element": "datastore"})
    prefix, _, local = text.rpartition(":")
    if prefix != "ietf-datastores" and prefixes.get(prefix) != DS_NS:
        raise InvalidValue(f"unknown datastore {text!r}", info={"bad-element": "datastore"})
    if local not in allowed:
        raise InvalidValue(f"datastore {text!r} is not supported here",
                           info={"bad-element": "datastore"})
    return local


def _xml_xpath(xpath: str, prefixes: dict[str, str], ctx: NetconfContext) -> str:
    """An XPath using the request's XML prefixes rewritten to module names."""
    def repl(m: re.Match[str]) -> str:
        ns = prefixes.get(m.group(1))
        mod = ctx.module_of(ns) if ns is not None else None
        return f"{mod or m.group(1)}:"
    return _PREFIX_IN_PATH.sub(repl, xpath)


def _is_state(node: Any) -> bool:
    return bool(node.schema.flags & lib.LYS_CONFIG_R)


def _is_key(node: Any) -> bool:
    return bool(node.schema.flags & lib.LYS_KEY)


def _prune_siblings(first: Any, drop: Callable[[Any, int], bool], depth: int) -> Any:
    """Free the nodes ``drop(node, depth)`` selects, recursively; the first survivor."""
    survivor: Any = None
    for n in list(siblings(first)):
        if drop(n, depth):
            lib.lyd_free_tree(n)
            continue
        if survivor is None:
            survivor = n
        child = lib.lyd_child(n)
        if child != ffi.NULL:
            _prune_siblings(child, drop, depth + 1)
    return survivor


def _has_state(node: Any) -> bool:
    if _is_state(node):
        return True
    return any(_has_state(c) for c in children(node))


def _prune(tree: Tree, drop: Callable[[Any, int], bool]) -> None:
    first = tree.first()
    if first == ffi.NULL:
        return
    survivor = _prune_siblings(first, drop, 1)
    tree.root = ffi.NULL if survivor is None else survivor


OR_NS = "urn:ietf:params:xml:ns:yang:ietf-origin"


def _origin_filter(op: ET.Element, prefixes: dict[str, str], ds: str
                   ) -> tuple[set[str], bool] | None:
    """(origin identity names, negated) of an RFC 8526 origin filter, or None."""
    plain = op.findall(f"{{{NMDA_NS}}}origin-filter")
    negated = op.findall(f"{{{NMDA_NS}}}negated-origin-filter")
    if not plain and not negated:
        return None
    if plain and negated:
        raise InvalidValue("give origin-filter or negated-origin-filter, not both",
                           info={"bad-element": "negated-origin-filter"})
    if ds != "operational":
        raise InvalidValue("origin filters apply to the operational datastore only",
                           info={"bad-element": "origin-filter"})
    names: set[str] = set()
    for el in plain or negated:
        prefix, _, name = (_text(el) or "").rpartition(":")
        if not name or (prefix != "ietf-origin" and prefixes.get(prefix) != OR_NS):
            raise InvalidValue(f"{_text(el)!r} is not an ietf-origin identity",
                               info={"bad-element": _split(el.tag)[1]})
        names.add(name)
    return names, bool(negated)


def _meta_origin(node: Any) -> str | None:
    m = node.meta
    while m != ffi.NULL:
        if ffi.string(m.name) == b"origin":
            # struct lyd_value starts with its canonical string ("ietf-origin:learned")
            canon = ffi.cast("char **", ffi.addressof(m, "value"))[0]
            return str(ffi.string(canon).decode()).rpartition(":")[2]
        m = m.next
    return None


def _filter_by_origin(tree: Tree, names: set[str], negated: bool) -> None:
    """Keep the nodes whose origin is (not, if ``negated``) one of ``names`` or derived
    from it, with their ancestors and list keys (RFC 8526 section 3.1.1)."""
    def matches(origin: str) -> bool:
        hit = origin in names or "origin" in names  # every origin derives from or:origin
        return hit != negated

    def keep(node: Any, inherited: str) -> bool:
        origin = _meta_origin(node) or inherited
        kept_child = False
        for c in list(children(node)):
            if _is_key(c):
                continue
            if keep(c, origin):
                kept_child = True
            else:
                lib.lyd_free_tree(c)
        return kept_child or matches(origin)

    survivor: Any = None
    for top in list(siblings(tree.first())):
        if keep(top, "intended"):
            survivor = survivor or top
        else:
            lib.lyd_free_tree(top)
    tree.root = ffi.NULL if survivor is None else survivor


def _strip_origin(first: Any) -> None:
    for n in siblings(first):
        m = n.meta
        while m != ffi.NULL:
            nxt = m.next
            if ffi.string(m.name) == b"origin":
                lib.lyd_free_meta_single(m)
            m = nxt
        _strip_origin(lib.lyd_child(n))


async def _get_data(ctx: NetconfContext, op: ET.Element, prefixes: dict[str, str]) -> str:
    ds = _nmda_datastore(op, prefixes, _NMDA_DS)
    subtree = _child(op, "subtree-filter", NMDA_NS)
    xpath_text = _text(_child(op, "xpath-filter", NMDA_NS))
    if subtree is not None and xpath_text is not None:
        raise InvalidValue("give a subtree-filter or an xpath-filter, not both",
                           info={"bad-element": "xpath-filter"})
    xpath: str | None = None
    if subtree is not None:
        xpath = subtree_to_xpath(subtree, ctx.module_of)
        if xpath is None:
            return f'<data xmlns="{NMDA_NS}"/>'
    elif xpath_text is not None:
        xpath = _xml_xpath(xpath_text, prefixes, ctx)
    cf = _text(_child(op, "config-filter", NMDA_NS))
    if cf not in (None, "true", "false"):
        raise InvalidValue("config-filter must be true or false",
                           info={"bad-element": "config-filter"})
    md = _text(_child(op, "max-depth", NMDA_NS))
    max_depth: int | None = None
    if md is not None and md != "unbounded":
        if not md.isdigit() or not 1 <= int(md) <= 65535:
            raise InvalidValue("max-depth must be 1..65535 or unbounded",
                               info={"bad-element": "max-depth"})
        max_depth = int(md)
    with_origin = _child(op, "with-origin", NMDA_NS) is not None
    if with_origin and ds != "operational":
        raise InvalidValue("with-origin applies to the operational datastore only",
                           info={"bad-element": "with-origin"})
    origins = _origin_filter(op, prefixes, ds)
    wd = _with_defaults(op)
    tree = ctx.datastore.get(ds, xpath, with_origin=with_origin or origins is not None)
    try:
        if origins is not None:
            _filter_by_origin(tree, *origins)
            if not with_origin:
                _strip_origin(tree.first())
        if cf == "true":
            _prune(tree, lambda n, _d: _is_state(n))
        elif cf == "false":
            _prune(tree, lambda n, _d: not _is_key(n) and not _has_state(n))
        if max_depth is not None:
            limit = max_depth
            _prune(tree, lambda n, d: d > limit and not _is_key(n))
            # Containers cut at the depth limit are still reported, empty.
            body = _print_xml(tree.first(), wd, lib.LYD_PRINT_KEEPEMPTYCONT)
        else:
            body = _print_xml(tree.first(), wd)
    finally:
        tree.free()
    return f'<data xmlns="{NMDA_NS}">{body}</data>'


async def _edit_data(ctx: NetconfContext, op: ET.Element, prefixes: dict[str, str]) -> str:
    ds = _nmda_datastore(op, prefixes, _CONFIG_DS)
    config = _child(op, "config", NMDA_NS)
    if config is None:
        if _child(op, "url", NMDA_NS) is not None:
            raise OperationNotSupported("the :url capability is not supported")
        raise MissingElement("<config> is missing", error_type="protocol",
                             info={"bad-element": "config"})
    await ctx.session.edit(
        ds, _config_text(config, prefixes), Fmt.XML,
        default_operation=_text(_child(op, "default-operation", NMDA_NS)) or "merge")
    return _OK


# -- notifications (RFC 5277) ----------------------------------------------------------


def _parse_time(op: ET.Element, name: str) -> float | None:
    text = _text(_child(op, name, NOTIF_NS))
    if text is None:
        return None
    try:
        return parse_time(text, f"<{name}>")
    except InvalidValue as e:
        raise InvalidValue(e.message, info={"bad-element": name}) from None


def _notif_filter(op: ET.Element, ctx: NetconfContext,
                  prefixes: dict[str, str] | None = None) -> str | None:
    # RFC 5277 puts <filter> in its own namespace; clients (ncclient) also use the base one.
    f = _child(op, "filter", NOTIF_NS)
    if f is None:
        f = _child(op, "filter")
    if f is None:
        return None
    ftype = f.get("type", "subtree")
    if ftype == "xpath":
        select = f.get("select")
        if select is None:
            raise MissingElement("an xpath filter needs a select attribute",
                                 tag="missing-attribute", error_type="protocol",
                                 info={"bad-attribute": "select", "bad-element": "filter"})
        return _xml_xpath(select, prefixes or {}, ctx)
    if ftype != "subtree":
        raise InvalidValue(f"unknown filter type {ftype!r}", tag="bad-attribute",
                           error_type="protocol",
                           info={"bad-attribute": "type", "bad-element": "filter"})
    xpath = subtree_to_xpath(f, ctx.module_of)
    if xpath is None:
        raise InvalidValue("an empty subtree filter selects no notification",
                           info={"bad-element": "filter"})
    return xpath


def _create_subscription(ctx: NetconfContext, op: ET.Element,
                         prefixes: dict[str, str] | None = None) -> str:
    if ctx.subscription is not None and not ctx.subscription.closed:
        raise NfoError("this session already has a notification subscription",
                       tag="in-use", error_type="protocol")
    stream = _text(_child(op, "stream", NOTIF_NS)) or NETCONF_STREAM
    xpath = _notif_filter(op, ctx, prefixes)
    start = _parse_time(op, "startTime")
    stop = _parse_time(op, "stopTime")
    ctx.subscription = ctx.datastore.notifications.subscribe(
        stream, start=start, stop=stop, xpath=xpath)
    return _OK


def notification_message(event_time: float, body: str) -> bytes:
    """One RFC 5277 <notification> message."""
    return (f'<notification xmlns="{NOTIF_NS}"><eventTime>{format_time(event_time)}'
            f"</eventTime>{body}</notification>").encode()


def status_notification(name: str) -> bytes:
    """replayComplete or notificationComplete (RFC 5277 section 4)."""
    return notification_message(time.time(), f'<{name} xmlns="{NOTIF_STATUS_NS}"/>')


async def _yang_rpc(ctx: NetconfContext, op: ET.Element, prefixes: dict[str, str]) -> str:
    """Any other RPC, or an action (wrapped in yang:action), through Session.rpc."""
    ns, local = _split(op.tag)
    if ns == YANG_NS and local == "action":
        kids = list(op)
        if len(kids) != 1:
            raise MalformedMessage("<action> must hold exactly one data node")
        content = kids[0]
    else:
        content = op
    reply = await ctx.session.rpc(_serialize(content, prefixes), Fmt.XML)
    try:
        rop = _find_op(reply.first())
        body = "".join(print_nodes(c, Fmt.XML, siblings=False) for c in
                       (list(children(rop)) if rop is not None else []))
    finally:
        reply.free()
    return body or _OK


def _find_op(node: Any) -> Any:
    """The RPC or action node of a reply tree, or None."""
    for n in siblings(node):
        if n.schema.nodetype & (lib.LYS_RPC | lib.LYS_ACTION):
            return n
        found = _find_op(lib.lyd_child(n))
        if found is not None:
            return found
    return None


async def handle(ctx: NetconfContext, rpc_xml: bytes) -> bytes:
    """Process one <rpc> message and return the <rpc-reply> (never raises NfoError)."""
    attrs: list[tuple[str, str]] = []
    try:
        root, prefixes = _parse(rpc_xml)
        if root.tag != f"{{{NC_NS}}}rpc":
            raise MalformedMessage(f"expected an <rpc> element, got {_split(root.tag)[1]!r}",
                                   info={"bad-element": _split(root.tag)[1]})
        attrs = list(root.attrib.items())
        if "message-id" not in root.attrib:
            raise NfoError("the rpc has no message-id", tag="missing-attribute",
                           error_type="rpc",
                           info={"bad-attribute": "message-id", "bad-element": "rpc"})
        ops = list(root)
        if len(ops) != 1:
            raise MalformedMessage("an <rpc> must hold exactly one operation")
    except NfoError as e:
        ctx.in_bad_rpcs += 1
        ctx.out_rpc_errors += 1
        return rpc_error_reply(e, attrs, ctx)
    ctx.in_rpcs += 1
    request = [rpc_xml.lstrip(b" \t\r\n"), root]
    token = _REQUEST.set(request)
    try:
        body = await _dispatch(ctx, ops[0], prefixes, attrs)
    except NfoError as e:
        ctx.out_rpc_errors += 1
        return rpc_error_reply(e, attrs, ctx)
    except Exception:  # a bug of ours: answer it, keep the session
        log.exception("netconf %s failed", _split(ops[0].tag)[1])
        ctx.out_rpc_errors += 1
        return rpc_error_reply(OperationFailed("internal error while processing the request"),
                               attrs, ctx)
    finally:
        request.clear()
        _REQUEST.reset(token)
    if isinstance(body, bytes):
        return body
    return _reply(attrs, body)


async def _dispatch(ctx: NetconfContext, op: ET.Element, prefixes: dict[str, str],
                    attrs: list[tuple[str, str]]) -> str | bytes:
    ns, name = _split(op.tag)
    s = ctx.session
    if ns == NC_NS:
        if name == "get":
            return _data_reply(ctx, "operational", op, attrs, prefixes)
        if name == "get-config":
            source, _ = _ds_of(op, "source")
            assert source is not None
            return _data_reply(ctx, source, op, attrs, prefixes)
        if name == "edit-config":
            return await _edit_config(ctx, op, prefixes)
        if name == "copy-config":
            return await _copy_config(ctx, op, prefixes)
        if name == "delete-config":
            target, _ = _ds_of(op, "target")
            assert target is not None
            await s.delete_config(target)
            return _OK
        if name in ("lock", "unlock"):
            target, _ = _ds_of(op, "target")
            assert target is not None
            (s.lock if name == "lock" else s.unlock)(target)
            return _OK
        if name == "close-session":
            ctx.close_requested = True
            return _OK
        if name == "kill-session":
            return await _kill_session(ctx, op)
        if name == "commit":
            return await _commit(ctx, op)
        if name == "discard-changes":
            await s.discard_changes()
            return _OK
        if name == "cancel-commit":
            await s.cancel_commit(_text(_child(op, "persist-id")))
            return _OK
        if name == "validate":
            return await _validate(ctx, op, prefixes)
        raise OperationNotSupported(f"operation {name!r} is not supported",
                                    info={"bad-element": name})
    if ns == NMDA_NS and name == "get-data":
        return await _get_data(ctx, op, prefixes)
    if ns == NMDA_NS and name == "edit-data":
        return await _edit_data(ctx, op, prefixes)
    if ns == NOTIF_NS and name == "create-subscription":
        return _create_subscription(ctx, op, prefixes)
    if ns == MON_NS and name == "get-schema":
        return _get_schema(ctx, op)
    if ns == YANG_NS and name == "action":
        return await _yang_rpc(ctx, op, prefixes)
    if ns and ctx.module_of(ns) is not None:
        return await _yang_rpc(ctx, op, prefixes)
    raise OperationNotSupported(f"operation {name!r} is not supported",
                                info={"bad-element": name})
