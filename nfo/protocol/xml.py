"""The one XML reader of nfo: every XML message a client sends is read here.

Why one reader: each message is parsed once, by expat, under one set of
hardening rules, and both front ends get the same element tree, which knows
the namespace bindings in scope at every element (prefixed values such as
identityrefs need them).  The rules, applied by :func:`read` and :func:`check`
alike:

1. UTF-8 only (RFC 6241 section 3; RESTCONF refuses other encodings too): no
   UTF-16/32 byte-order mark, no NUL byte, no XML declaration naming another
   encoding; expat is made to decode UTF-8 whatever the document says.  A
   UTF-8 byte-order mark is dropped.
2. Leading ASCII whitespace is dropped (scrapli sends a newline before
   ``<?xml``).
3. No document type declaration, entity declaration or other markup
   declaration: any ``<!`` not opening a comment or CDATA section is refused
   before expat runs, and expat's declaration handlers refuse too.  Only the
   predefined entities and character references are ever expanded.
4. No element nested deeper than :data:`MAX_DEPTH`, none with more than
   :data:`MAX_ATTRIBUTES` attributes, and no more than :data:`MAX_NAMESPACES`
   namespace declarations in scope at any element (its own and its ancestors'):
   libyang's parser slows down quadratically with them.
5. The message must be well-formed (namespaces included).

Data meant for libyang is not rebuilt: :meth:`Element.xml` and
:meth:`Element.content_xml` cut the client's own bytes out of the message,
adding to each cut element only the namespace declarations it inherited, so
that libyang parses what the client wrote.  An *opaque* element (a NETCONF
``<config>`` holding thousands of list entries) is not materialised below
itself: its subtree is only scanned, with the cheapest expat callbacks, for
what cutting its children needs.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Collection
from typing import NoReturn
from xml.parsers import expat

from nfo.errors import MalformedMessage

__all__ = ["MAX_ATTRIBUTES", "MAX_DEPTH", "MAX_NAMESPACES", "Element", "check", "read"]

MAX_DEPTH = 256
"""Elements nested deeper than this are refused (YANG data is never that deep)."""
MAX_NAMESPACES = 256
"""Namespace declarations in scope at one element, its ancestors' included."""
MAX_ATTRIBUTES = 64
"""Attributes of one element (namespace declarations not counted)."""

_SEP = " "  # between namespace URI and local name in expat's names; no local name has one
_WS = " \t\r\n"
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_LEADING_WS = re.compile(rb"[ \t\r\n]*")
_DECLARATION = re.compile(rb"<!(?!--|\[CDATA\[)([A-Za-z]{0,16})")
_QNAME = re.compile(rb"<[^ \t\r\n/>]+")
_ENCODINGS = frozenset({"utf-8", "utf8", "us-ascii"})
_NO_PREFIXES: tuple[str, ...] = ()
_BAD_CHARACTER = frozenset(expat.errors.codes[m] for m in (
    expat.errors.XML_ERROR_INVALID_TOKEN, expat.errors.XML_ERROR_PARTIAL_CHAR))


class _Refused(Exception):
    """Raised inside an expat callback; the reader reports it with the position."""


class _Document:
    """The bytes expat parsed, shared by every element of one message."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _Scan:
    """What the scan of an opaque element recorded about its children."""

    __slots__ = ("end", "has_text", "own", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.own: dict[int, list[str]] = {}  # child index -> prefixes the child declares
        self.has_text = False
        self.end = -1


class Element:
    """One element of a parsed message.

    ``ns`` is the namespace URI ("" for none) and ``name`` the local name;
    ``attrs`` maps (namespace URI or "", local name) to the value.  ``nsmap``
    maps every prefix in scope at the element, its own declarations included
    ("" for the default namespace), to its URI; elements that declare nothing
    share their parent's dictionary, so treat it as read-only.  ``text`` is the
    character data directly inside, concatenated as it came.  An opaque element
    (see :func:`read`) has no ``children`` and no ``text``; ``child_count`` and
    ``has_text`` still describe it, and :meth:`content_xml` cuts its content.
    Every element of a message refers to the one copy of its bytes.
    """

    __slots__ = ("_doc", "_own", "_scan", "_start", "_stop", "attrs", "children", "name",
                 "ns", "nsmap", "parent", "text")

    def __init__(self, doc: _Document, ns: str, name: str, attrs: dict[tuple[str, str], str],
                 nsmap: dict[str, str], parent: Element | None, start: int,
                 own: tuple[str, ...]) -> None:
        self.ns = ns
        self.name = name
        self.attrs = attrs
        self.nsmap = nsmap
        self.children: list[Element] = []
        self.parent = parent
        self.text = ""
        self._doc = doc
        self._start = start
        self._stop = -1
        self._own = own
        self._scan: _Scan | None = None

    def __repr__(self) -> str:
        return f"<Element {{{self.ns}}}{self.name}>" if self.ns else f"<Element {self.name}>"

    @property
    def opaque(self) -> bool:
        """True when the children were only scanned, not materialised."""
        return self._scan is not None

    @property
    def has_text(self) -> bool:
        """Non-whitespace character data directly inside the element."""
        if self._scan is not None:
            return self._scan.has_text
        return bool(self.text.strip(_WS))

    @property
    def child_count(self) -> int:
        if self._scan is not None:
            return len(self._scan.starts)
        return len(self.children)

    def child(self, name: str, ns: str | None = None) -> Element | None:
        """The first child named ``name`` in ``ns`` (None: this element's namespace)."""
        want = self.ns if ns is None else ns
        for c in self.children:
            if c.name == name and c.ns == want:
                return c
        return None

    def children_named(self, name: str, ns: str | None = None) -> list[Element]:
        want = self.ns if ns is None else ns
        return [c for c in self.children if c.name == name and c.ns == want]

    def attr(self, name: str, ns: str = "") -> str | None:
        return self.attrs.get((ns, name))

    def resolve(self, prefix: str) -> str | None:
        """The namespace URI ``prefix`` is bound to here ("" for the default namespace)."""
        uri = self.nsmap.get(prefix)
        if uri is None and prefix == "xml":
            return _XML_NS
        return uri

    def xml(self) -> bytes:
        """This element as a standalone fragment cut from the message.

        The bytes run from its start tag to its next sibling (or its parent's
        end tag), so whitespace and comments after it come along; the root is
        the whole message.  The start tag gains a declaration of every binding
        in scope at the parent that the element does not make itself.
        """
        parent = self.parent
        if parent is None:
            return self._doc.data
        own = {0: list(self._own)} if self._own else {}
        return _cut(self._doc.data, [self._start], own, self._stop, parent.nsmap)

    def content_xml(self) -> bytes:
        """The child elements, each cut as :meth:`xml` cuts it, concatenated."""
        scan = self._scan
        if scan is not None:
            if not scan.starts:
                return b""
            return _cut(self._doc.data, scan.starts, scan.own, scan.end, self.nsmap)
        kids = self.children
        if not kids:
            return b""
        own = {i: list(c._own) for i, c in enumerate(kids) if c._own}
        return _cut(self._doc.data, [c._start for c in kids], own, kids[-1]._stop, self.nsmap)


def _quote(value: str) -> str:
    return '"' + (value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
                  .replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")) + '"'


def _declarations(scope: dict[str, str], own: Collection[str]) -> bytes:
    out = [f" xmlns:{p}={_quote(uri)}" if p else f" xmlns={_quote(uri)}"
           for p, uri in scope.items() if p not in own]
    return "".join(out).encode()


def _cut(data: bytes, starts: list[int], own: dict[int, list[str]], end: int,
         scope: dict[str, str]) -> bytes:
    """The elements starting at ``starts`` (the last one ending at ``end``), each given
    the declarations of ``scope`` that it does not make itself (``own``)."""
    base = _declarations(scope, _NO_PREFIXES)
    if not base:
        return data[starts[0]:end]
    pieces: list[bytes] = []
    at = starts[0]
    for i, start in enumerate(starts):
        mine = own.get(i)
        extra = base if mine is None else _declarations(scope, mine)
        if not extra:
            continue
        m = _QNAME.match(data, start)
        if m is None:
            raise AssertionError(f"no start tag at byte {start}")
        pieces += (data[at:m.end()], extra)
        at = m.end()
    pieces.append(data[at:end])
    return b"".join(pieces)


# -- reading ---------------------------------------------------------------------------


class _Source:
    """A message made ready for expat (rules 1 to 3 before parsing), and how to report
    positions in the bytes the client sent."""

    __slots__ = ("buf", "cols", "error_type", "lines", "skip")

    def __init__(self, data: bytes, error_type: str) -> None:
        self.error_type = error_type
        if type(data) is not bytes:
            data = bytes(data)
        if data.startswith(_WIDE_BOMS) or b"\x00" in data:
            self.refuse("XML messages must be UTF-8 (a UTF-16 or UTF-32 encoding was found)")
        skip = 3 if data.startswith(_UTF8_BOM) else 0
        m = _LEADING_WS.match(data, skip)
        skip = m.end() if m is not None else skip
        prefix = data[:skip]
        self.lines = prefix.count(b"\n")
        self.cols = len(prefix[prefix.rfind(b"\n") + 1:].removeprefix(_UTF8_BOM))
        self.skip = skip
        self.buf = data[skip:] if skip else data
        decl = _DECLARATION.search(self.buf)
        if decl is not None:
            self.refuse(f"XML with <!{decl.group(1).decode('ascii')} is not accepted: no "
                        "document type, entity or other markup declaration")

    def where(self, line: int, column: int) -> str:
        if line == 1:
            column += self.cols
        return f"line {line + self.lines}, column {column}"

    def refuse(self, message: str) -> NoReturn:
        raise MalformedMessage(message, error_type=self.error_type)

    def parse(self, p: expat.XMLParserType) -> None:
        try:
            p.Parse(self.buf, True)
        except _Refused as e:
            self.refuse(f"{e} ({self.where(p.CurrentLineNumber, p.CurrentColumnNumber)})")
        except expat.ExpatError as e:
            self.refuse(self._explain(e, p.ErrorByteIndex))

    def _explain(self, e: expat.ExpatError, index: int) -> str:
        at = self.where(e.lineno, e.offset)
        if e.code in _BAD_CHARACTER:
            # decoding only up to the error keeps a refusal as cheap as the parse was
            upto = self.buf[:index + 4]
            try:
                codecs.utf_8_decode(upto, "strict", len(upto) == len(self.buf))
            except UnicodeDecodeError as u:
                return f"not UTF-8: invalid byte sequence at byte {u.start + self.skip} ({at})"
        return f"not well-formed XML: {expat.ErrorString(e.code)} ({at})"


def _refuse_declaration(*_: object) -> NoReturn:
    raise _Refused("XML with a document type or entity declaration is not accepted")


def _xml_declaration(_version: str, encoding: str | None, _standalone: int) -> None:
    if encoding is not None and encoding.lower().replace("_", "-") not in _ENCODINGS:
        raise _Refused(f"XML messages must be UTF-8, not {encoding[:40]!r}")


def _parser() -> expat.XMLParserType:
    p = expat.ParserCreate(encoding="UTF-8", namespace_separator=_SEP)
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.buffer_text = True
    p.ordered_attributes = True
    p.XmlDeclHandler = _xml_declaration
    p.StartDoctypeDeclHandler = _refuse_declaration
    p.EntityDeclHandler = _refuse_declaration
    p.UnparsedEntityDeclHandler = _refuse_declaration
    p.ElementDeclHandler = _refuse_declaration
    p.AttlistDeclHandler = _refuse_declaration
    p.NotationDeclHandler = _refuse_declaration
    p.ExternalEntityRefHandler = _refuse_declaration
    p.SkippedEntityHandler = _refuse_declaration
    return p


def _too_deep() -> NoReturn:
    raise _Refused(f"elements nested deeper than {MAX_DEPTH} levels are not accepted")


def _too_many_namespaces() -> NoReturn:
    raise _Refused(f"more than {MAX_NAMESPACES} namespace declarations in scope at one "
                   "element are not accepted")


def _too_many_attributes() -> NoReturn:
    raise _Refused(f"elements with more than {MAX_ATTRIBUTES} attributes are not accepted")


class _Scopes:
    """Counts the namespace declarations in scope while expat walks a message:
    ``declare`` for each declaration, then ``enter`` at the element's start,
    ``leave`` at its end (with the depth it was entered at)."""

    __slots__ = ("pending", "stack", "total")

    def __init__(self) -> None:
        self.pending = 0
        self.total = 0
        self.stack: list[tuple[int, int]] = []  # (depth, declarations) of declaring elements

    def declare(self) -> None:
        self.pending += 1
        if self.total + self.pending > MAX_NAMESPACES:
            _too_many_namespaces()

    def enter(self, depth: int) -> None:
        self.stack.append((depth, self.pending))
        self.total += self.pending
        self.pending = 0

    def leave(self, depth: int) -> None:
        if self.stack[-1][0] == depth:
            self.total -= self.stack.pop()[1]


def read(data: bytes, *, opaque: Collection[tuple[str, str]] = (), opaque_root: bool = False,
         error_type: str = "protocol") -> Element:
    """Parse one message and return its root element.

    Elements whose (namespace URI, local name) is in ``opaque``, and the root
    when ``opaque_root`` is true, are opaque: below them no element is built,
    only their children's positions, own namespace declarations and count and
    whether text stands directly inside are recorded.  Raises
    :class:`~nfo.errors.MalformedMessage` (of ``error_type``) on anything the
    hardening rules refuse or that is not well-formed.
    """
    src = _Source(data, error_type)
    doc = _Document(src.buf)
    opaque_names = frozenset(opaque)
    p = _parser()
    stack: list[Element] = []
    pending: list[tuple[str, str]] = []
    pieces: dict[Element, list[str]] = {}
    top: list[Element] = []
    # state of the opaque element being scanned
    scan = _Scan()
    depth = 0
    room = 0
    text_seen = False
    scopes = _Scopes()

    def ns_start(prefix: str | None, uri: str | None) -> None:
        scopes.declare()
        pending.append((prefix or "", uri or ""))

    def start(name: str, attrs: list[str]) -> None:
        at = p.CurrentByteIndex
        if len(attrs) > 2 * MAX_ATTRIBUTES:
            _too_many_attributes()
        ns, _, local = name.rpartition(_SEP)
        parent: Element | None
        if stack:
            if len(stack) >= MAX_DEPTH:
                _too_deep()
            parent = stack[-1]
            siblings = parent.children
            if siblings:
                siblings[-1]._stop = at
            nsmap = parent.nsmap
        else:
            parent = None
            nsmap = {}
        own = _NO_PREFIXES
        if pending:
            nsmap = dict(nsmap)
            for prefix, uri in pending:
                if uri:
                    nsmap[prefix] = uri
                else:
                    nsmap.pop(prefix, None)
            own = tuple(prefix for prefix, _ in pending)
            pending.clear()
            scopes.enter(len(stack))
        attr_map: dict[tuple[str, str], str] = {}
        for i in range(0, len(attrs), 2):
            a_ns, _, a_local = attrs[i].rpartition(_SEP)
            attr_map[(a_ns, a_local)] = attrs[i + 1]
        el = Element(doc, ns, local, attr_map, nsmap, parent, at, own)
        if parent is None:
            top.append(el)
        else:
            parent.children.append(el)
        stack.append(el)
        if (opaque_root and parent is None) or (opaque_names and (ns, local) in opaque_names):
            enter(el)

    def end(_name: str) -> None:
        el = stack.pop()
        if el._own:
            scopes.leave(len(stack))
        if el.children:
            el.children[-1]._stop = p.CurrentByteIndex
        if pieces:
            parts = pieces.pop(el, None)
            if parts is not None:
                el.text = "".join(parts)

    def chars(text: str) -> None:
        el = stack[-1]
        if not el.text:
            el.text = text
            return
        parts = pieces.get(el)
        if parts is None:
            pieces[el] = [el.text, text]
        else:
            parts.append(text)

    def enter(el: Element) -> None:
        nonlocal scan, depth, room, text_seen
        scan = el._scan = _Scan()
        depth = 0
        room = MAX_DEPTH - len(stack)
        text_seen = False
        p.StartElementHandler = scan_start
        p.EndElementHandler = scan_end
        p.StartNamespaceDeclHandler = scan_ns
        p.CharacterDataHandler = scan_chars

    def scan_ns(prefix: str | None, _uri: str | None) -> None:
        scopes.declare()
        if depth == 0:
            scan.own.setdefault(len(scan.starts), []).append(prefix or "")

    def scan_start(_name: str, attrs: list[str]) -> None:
        nonlocal depth
        if depth == 0:
            scan.starts.append(p.CurrentByteIndex)
            p.CharacterDataHandler = None
        depth += 1
        if depth > room:
            _too_deep()
        if scopes.pending:
            scopes.enter(len(stack) + depth)
        if len(attrs) > 2 * MAX_ATTRIBUTES:
            _too_many_attributes()

    def scan_end(name: str) -> None:
        nonlocal depth
        if scopes.stack:
            scopes.leave(len(stack) + depth)
        depth -= 1
        if depth > 0:
            return
        if depth == 0:
            if not text_seen:
                p.CharacterDataHandler = scan_chars
            return
        scan.end = p.CurrentByteIndex
        p.StartElementHandler = start
        p.EndElementHandler = end
        p.StartNamespaceDeclHandler = ns_start
        p.CharacterDataHandler = chars
        end(name)

    def scan_chars(text: str) -> None:
        nonlocal text_seen
        if text.strip(_WS):
            text_seen = scan.has_text = True

    p.StartElementHandler = start
    p.EndElementHandler = end
    p.StartNamespaceDeclHandler = ns_start
    p.CharacterDataHandler = chars
    src.parse(p)
    top[0]._stop = len(doc.data)
    return top[0]


def check(data: bytes, *, error_type: str = "protocol") -> None:
    """Apply the hardening rules and check well-formedness without building elements,
    for a body that is handed whole to libyang."""
    src = _Source(data, error_type)
    p = _parser()
    depth = 0
    scopes = _Scopes()

    def ns_start(_prefix: str | None, _uri: str | None) -> None:
        scopes.declare()

    def start(_name: str, attrs: list[str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            _too_deep()
        if scopes.pending:
            scopes.enter(depth)
        if len(attrs) > 2 * MAX_ATTRIBUTES:
            _too_many_attributes()

    def end(_name: str) -> None:
        nonlocal depth
        if scopes.stack:
            scopes.leave(depth)
        depth -= 1

    p.StartNamespaceDeclHandler = ns_start
    p.StartElementHandler = start
    p.EndElementHandler = end
    src.parse(p)
