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
what cutting its children needs.  When its content is plain elements and text
(no comment, CDATA section or processing instruction), that scan is done on the
bytes instead (:func:`_plain_content`: the children found by their tags, depth
and balance counted with C-level byte operations, every limit checked with a
bound that can only over-count) and expat parses the content with no Python
handler at all; anything that bound cannot clear is scanned by expat as before,
and a message refused after a plain scan is read again the expat way, so the
refusal is the same.
"""

from __future__ import annotations

import bisect
import codecs
import functools
import itertools
import re
from collections.abc import Callable, Collection
from typing import NoReturn
from xml.parsers import expat

from nfo.errors import MalformedMessage

__all__ = ["MAX_ATTRIBUTES", "MAX_DEPTH", "MAX_NAMESPACES", "Element", "check", "escape", "read"]

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


def escape(text: str) -> str:
    """Text made safe as XML character data or as an attribute value in either quote."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


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


# -- the plain scan of an opaque element's content --------------------------------------

_ATTRIBUTES = rb"(?:\s+[^\s=<>/]+\s*=\s*(?:\"[^\"<]*\"|'[^'<]*'))*"
_START_TAG = re.compile(rb"([^\s<>/!?]+)(" + _ATTRIBUTES + rb")\s*(/?)>")
"""A start tag from just after its ``<``: name, attributes, "/" when empty."""
_EMPTY_TAG = re.compile(rb"<[^\s<>/!?]+" + _ATTRIBUTES + rb"\s*/>")
_ATTRIBUTE = re.compile(rb"\s+([^\s=<>/]+)\s*=")
_MANY_ATTRIBUTES = re.compile(rb"<(?:[^<=]*+=){%d}" % (MAX_ATTRIBUTES + 1))
"""More "=" between a "<" and the next than an element may have attributes."""
_ROOT_TAG = re.compile(rb"<(?=[^\s<>/!?])")
_NOT_MARKS = bytes(b for b in range(256) if b not in (1, 2))
_PLAIN_CHILDREN = 256
"""Children of an opaque element the plain scan walks one by one; more: expat's scan."""
_PLAIN_DEPTH = 64
"""Nesting the plain scan measures; deeper: expat's scan."""
_END_TAGS: dict[bytes, re.Pattern[bytes]] = {}


def _end_tag(qname: bytes) -> re.Pattern[bytes]:
    pattern = _END_TAGS.get(qname)
    if pattern is None:
        if len(_END_TAGS) > 1024:
            _END_TAGS.clear()
        pattern = _END_TAGS[qname] = re.compile(rb"</" + re.escape(qname) + rb"[ \t\r\n]*>")
    return pattern


def _nesting(data: bytes, begin: int, end: int, limit: int) -> int | None:
    """How deep elements nest in ``data[begin:end]`` if that is a balanced run of
    elements and text of at most ``limit`` levels; None if it is not (or might not be).

    Valid only where no comment, CDATA section or processing instruction occurs: then
    every "<" opens a tag and "</" an end tag; each "/>" must end an empty element's
    tag (one in text or in an attribute value: None).  Each pass drops the innermost
    open-close pairs, so the passes are the depth."""
    slashes = data.count(b"/>", begin, end)
    if slashes and len(_EMPTY_TAG.findall(data, begin, end)) != slashes:
        return None
    marks = (data[begin:end].replace(b"</", b"\x02").replace(b"/>", b"\x02")
             .replace(b"<", b"\x01").translate(None, _NOT_MARKS))
    depth = 0
    while marks:
        fewer = marks.replace(b"\x01\x02", b"")
        depth += 1
        if len(fewer) == len(marks) or depth > limit:
            return None
        marks = fewer
    return depth


def _child_end(data: bytes, begin: int, qname: bytes, limit: int) -> int:
    """Where the element named ``qname`` whose content starts at ``begin`` ends (just
    after its end tag), if its content nests at most ``limit`` levels; else -1."""
    close = _end_tag(qname)
    probe = b"</" + qname
    at = begin
    for _ in range(4):
        lt = data.find(probe, at)
        if lt < 0:
            return -1
        m = close.match(data, lt)
        at = lt + len(probe)
        if m is not None and _nesting(data, begin, lt, limit) is not None:
            return m.end()
    return -1


def _plain_content(data: bytes, begin: int, qname: bytes, room: int,
                   namespace_room: int) -> tuple[int, _Scan] | None:
    """The scan of an opaque element named ``qname`` whose content starts at ``begin``,
    read from the bytes: (where its end tag starts, the scan), or None whenever expat's
    scan is needed (also whenever a limit might be exceeded: expat's scan says how).

    ``room``: levels of elements its content may nest; ``namespace_room``: namespace
    declarations its content may add.  The result is only right for a message expat
    then finds well-formed."""
    limit = min(room, _PLAIN_DEPTH)
    if limit < 1:
        return None
    scan = _Scan()
    at = begin
    while True:
        lt = data.find(b"<", at)
        if lt < 0:
            return None
        if lt > at:
            text = data[at:lt]
            if text.strip(b" \t\r\n"):
                if b"&" in text:  # a reference may stand for whitespace
                    return None
                scan.has_text = True
        if data.startswith(b"</", lt):
            if _end_tag(qname).match(data, lt) is None:
                return None
            end = lt
            break
        if len(scan.starts) == _PLAIN_CHILDREN:
            return None
        tag = _START_TAG.match(data, lt + 1)
        if tag is None:
            return None
        if tag.group(3):
            at = tag.end()
        else:
            at = _child_end(data, tag.end(), tag.group(1), limit - 1)
            if at < 0:
                return None
        prefixes = [name[6:].decode() if name != b"xmlns" else ""
                    for name in _ATTRIBUTE.findall(tag.group(2))
                    if name == b"xmlns" or name.startswith(b"xmlns:")]
        if prefixes:
            scan.own[len(scan.starts)] = prefixes
        scan.starts.append(lt)
    if (data.find(b"<!", begin, end) >= 0 or data.find(b"<?", begin, end) >= 0
            or data.count(b"xmlns", begin, end) > namespace_room):
        return None
    if (data.count(b"=", begin, end) > MAX_ATTRIBUTES
            and _MANY_ATTRIBUTES.search(data, begin, end) is not None):
        return None
    return end, scan


# -- small messages by shape ---------------------------------------------------------

_SHAPE_MAX = 8192
"""Bytes of a message at most that is read by its shape."""
_SHAPES_MAX = 256
"""Shapes remembered at most (all forgotten when full)."""
_VARIABLE = re.compile(rb"(>[^<>]+(?=<)|=\"[^\"<>]*\"|='[^'<>]*')")
"""What differs between messages of one shape: text between tags (after the ">" that
ends a tag), attribute values (after "=", quoted)."""
_UNUSUAL = bytes(range(0x09)) + b"\x0b\x0c\r" + bytes(range(0x0e, 0x20)) + b"&"
"""Bytes that keep a message from being read by its shape: control characters,
carriage returns (line ends are normalised), references."""
_LEARN_NAME = rb"[A-Za-z_][A-Za-z0-9._-]*(?::[A-Za-z_][A-Za-z0-9._-]*)?"
_LEARN_START = re.compile(rb"(" + _LEARN_NAME + rb")((?:[ \t\n]+" + _LEARN_NAME
                          + rb"[ \t\n]*=[ \t\n]*(?:\"[^\"<]*\"|'[^'<]*'))*)[ \t\n]*/?")
_LEARN_ATTRIBUTE = re.compile(rb"[ \t\n]+(" + _LEARN_NAME
                              + rb")[ \t\n]*=[ \t\n]*(?:\"([^\"<]*)\"|'([^'<]*)')")
_ATTRIBUTE_SPACES = bytes.maketrans(b"\t\n", b"  ")
"""Attribute-value normalisation (XML 1.0 section 3.3.3; carriage returns never get here)."""
_Place = tuple[int, int]
"""A byte position as (index of a fixed part, offset in it)."""


class _Spec:
    """One element of a shape: what it has of its own, and where its values are."""

    __slots__ = ("attrs", "name", "ns", "nsmap", "own", "parent", "start", "stop", "text")

    def __init__(self, el: Element, parent: int, start: _Place) -> None:
        self.ns = el.ns
        self.name = el.name
        self.nsmap = el.nsmap
        self.own = el._own
        self.parent = parent
        self.start = start
        self.stop: _Place | None = None
        self.attrs: list[tuple[tuple[str, str], int]] = []
        """(attribute, the variable part holding its value)."""
        self.text: list[int] = []
        """The variable parts holding the element's text, in order."""


class _Shape:
    """How to build the element tree of any message whose fixed parts are one
    message's (learnt from expat's reading of it): the elements, and which variable
    part is which text or attribute value; every other variable part (a namespace
    declaration, the XML declaration's values) must be as it was."""

    __slots__ = ("fixed", "specs")

    def __init__(self, specs: list[_Spec], fixed: dict[int, bytes]) -> None:
        self.specs = [(s.ns, s.name, s.nsmap, s.own, s.parent, s.start, s.stop or (0, 0),
                       tuple(s.attrs), tuple(s.text)) for s in specs]
        self.fixed = fixed

    def build(self, buf: bytes, parts: list[bytes]) -> Element | None:
        for i, value in self.fixed.items():
            if parts[i] != value:
                return None
        at = list(itertools.accumulate(map(len, parts), initial=0))
        doc = _Document(buf)
        made: list[Element] = []
        for ns, name, nsmap, own, up, start, stop, attrs, text in self.specs:
            parent = made[up] if up >= 0 else None
            el = Element(doc, ns, name,
                         {key: parts[i][2:-1].translate(_ATTRIBUTE_SPACES).decode()
                          for key, i in attrs} if attrs else {},
                         nsmap, parent, at[start[0]] + start[1], own)
            if text:
                el.text = b"".join([parts[i][1:] for i in text]).decode()
            if parent is not None:
                el._stop = at[stop[0]] + stop[1]
                parent.children.append(el)
            made.append(el)
        made[0]._stop = len(buf)
        return made[0]


_ShapeKey = tuple[frozenset[tuple[str, str]], bytes, bytes]
_SHAPES: dict[_ShapeKey, _Shape] = {}
_SEEN: dict[_ShapeKey, bool] = {}
"""Shapes seen but not learnt: once (True: learn it next time), or for good (False: a
shape that does not give expat's tree back)."""


def _key(parts: list[bytes], opaque_names: frozenset[tuple[str, str]]) -> _ShapeKey:
    """The fixed parts, and what kind each variable part is (its first byte)."""
    return opaque_names, b"\x00".join(parts[0::2]), bytes([p[0] for p in parts[1::2]])


def _plain(buf: bytes) -> bool:
    """Whether ``buf`` may be read by its shape: small, ASCII, nothing of
    :data:`_UNUSUAL`, no CDATA end."""
    return (len(buf) <= _SHAPE_MAX and buf.isascii()
            and len(buf.translate(None, _UNUSUAL)) == len(buf) and b"]]>" not in buf)


def _by_shape(buf: bytes, opaque_names: frozenset[tuple[str, str]]
              ) -> tuple[Element | None, list[bytes] | None]:
    """The tree of ``buf`` built from a shape learnt before, or (None, the parts to
    learn its shape from once expat has read it; None if it has none)."""
    if not _plain(buf):
        return None, None
    parts = _VARIABLE.split(buf)
    key = _key(parts, opaque_names)
    shape = _SHAPES.get(key)
    if shape is not None:
        return shape.build(buf, parts), None
    seen = _SEEN.get(key)
    if seen is None:  # learnt the second time it is seen
        if len(_SEEN) >= _SHAPES_MAX:
            _SEEN.clear()
        _SEEN[key] = True
        return None, None
    return None, parts if seen else None


def _learn(buf: bytes, parts: list[bytes], opaque_names: frozenset[tuple[str, str]],
           root: Element) -> None:
    """Remember the shape of ``buf`` from ``root``, expat's reading of it, if the shape
    gives that same tree back (a message with comments, processing instructions,
    references or opaque elements has none: that is remembered too)."""
    key = _key(parts, opaque_names)
    shape = _shape_of(buf, parts, root)
    if shape is None:
        _SEEN[key] = False
        return
    if len(_SHAPES) >= _SHAPES_MAX:
        _SHAPES.clear()
        _SEEN.clear()
    _SHAPES[key] = shape


def _shape_of(buf: bytes, parts: list[bytes], root: Element) -> _Shape | None:
    """The shape of ``buf`` (cut into ``parts``) if it gives ``root`` back."""
    at = list(itertools.accumulate(map(len, parts), initial=0))
    # a variable part holds a text after its ">", an attribute value after its '="'
    slots = {at[i] + (1 if parts[i][:1] == b">" else 2): i for i in range(1, len(parts), 2)}
    fixed_at = at[0::2]

    def place(pos: int) -> _Place | None:
        k = bisect.bisect_right(fixed_at, pos) - 1
        if k < 0 or pos >= fixed_at[k] + len(parts[2 * k]):
            return None
        return 2 * k, pos - fixed_at[k]

    def slot(pos: int, size: int, text: bool) -> int | None:
        i = slots.get(pos)
        if i is None or (parts[i][:1] == b">") != text:
            return None
        return i if len(parts[i]) - (1 if text else 3) == size else None

    order = _walk(root)
    if any(el.opaque for el in order):
        return None
    index = {id(el): n for n, el in enumerate(order)}
    specs: list[_Spec] = []
    claimed: set[int] = set()
    pieces = buf.split(b"<")
    pos = len(pieces[0])
    depth: list[_Spec] = []
    count = 0
    for piece in pieces[1:]:
        start = pos
        pos = start + 1 + len(piece)
        tag, gt, text = piece.partition(b">")
        if not gt or tag[:1] in (b"!", b"?"):
            if tag.startswith(b"?xml") and count == 0 and not depth:
                continue
            return None
        if tag[:1] == b"/":
            depth.pop()
        else:
            m = _LEARN_START.fullmatch(tag)
            if m is None or count >= len(order):
                return None
            el = order[count]
            where = place(start)
            if where is None:
                return None
            parent = index[id(el.parent)] if el.parent is not None else -1
            spec = _Spec(el, parent, where)
            count += 1
            for a in _LEARN_ATTRIBUTE.finditer(m.group(2)):
                name = a.group(1)
                if name == b"xmlns" or name.startswith(b"xmlns:"):
                    continue
                g = 2 if a.group(2) is not None else 3
                i = slot(start + 1 + m.start(2) + a.start(g), a.end(g) - a.start(g), False)
                if i is None:
                    return None
                prefix, colon, local = name.decode().rpartition(":")
                ns = el.nsmap.get(prefix) if colon else ""
                if ns is None:
                    return None
                spec.attrs.append(((ns, local), i))
                claimed.add(i)
            specs.append(spec)
            if not tag.endswith(b"/"):
                depth.append(spec)
        if text and depth:
            i = slot(pos - len(text), len(text), True)
            if i is None:
                return None
            depth[-1].text.append(i)
            claimed.add(i)
    if count != len(order) or depth:
        return None
    for spec, el in zip(specs, order, strict=True):
        if el.parent is not None:
            spec.stop = place(el._stop)
            if spec.stop is None:
                return None
    shape = _Shape(specs, {i: parts[i] for i in range(1, len(parts), 2) if i not in claimed})
    built = shape.build(buf, parts)
    return shape if built is not None and _facts(built) == _facts(root) else None


def _walk(el: Element) -> list[Element]:
    """``el`` and its descendants in document order."""
    out = [el]
    for c in el.children:
        out += _walk(c)
    return out


def _facts(el: Element) -> tuple[object, ...]:
    """Everything an element tree tells, for comparing two readings of one message."""
    return (el.ns, el.name, el.attrs, el.nsmap, el.text, el._start, el._stop, el._own,
            el.opaque, [_facts(c) for c in el.children])


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
        if data[:1] == b"<":  # (most messages: nothing to drop)
            self.lines = self.cols = self.skip = 0
            self.buf = data
        else:
            skip = 3 if data.startswith(_UTF8_BOM) else 0
            m = _LEADING_WS.match(data, skip)
            skip = m.end() if m is not None else skip
            prefix = data[:skip]
            self.lines = prefix.count(b"\n")
            self.cols = len(prefix[prefix.rfind(b"\n") + 1:].removeprefix(_UTF8_BOM))
            self.skip = skip
            self.buf = data[skip:] if skip else data
        decl = _DECLARATION.search(self.buf) if b"<!" in self.buf else None
        if decl is not None:
            self.refuse(f"XML with <!{decl.group(1).decode('ascii')} is not accepted: no "
                        "document type, entity or other markup declaration")

    def where(self, line: int, column: int) -> str:
        if line == 1:
            column += self.cols
        return f"line {line + self.lines}, column {column}"

    def refuse(self, message: str) -> NoReturn:
        raise MalformedMessage(message, error_type=self.error_type)

    def parse(self, p: expat.XMLParserType, feed: Callable[[], None] | None = None) -> None:
        """Run ``p`` over the message (``feed``: a function that does, in pieces)."""
        try:
            if feed is None:
                p.Parse(self.buf, True)
            else:
                feed()
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
    opaque_names = frozenset(opaque)
    if opaque_root:
        parts = None
    else:
        known, parts = _by_shape(src.buf, opaque_names)
        if known is not None:
            return known
    root = _expat_read(src, opaque_names, opaque_root)
    if parts is not None:
        _learn(src.buf, parts, opaque_names, root)
    return root


def _expat_read(src: _Source, opaque_names: frozenset[tuple[str, str]],
                opaque_root: bool) -> Element:
    if opaque_names or opaque_root:
        try:
            return _read(src, opaque_names, opaque_root, plain=True)
        except _ReadAgain:
            pass
    return _read(src, opaque_names, opaque_root, plain=False)


class _ReadAgain(Exception):
    """A message refused after a plain scan: read it again with expat's scan."""


@functools.lru_cache(maxsize=64)
def _opaque_tags(names: frozenset[tuple[str, str]]) -> re.Pattern[bytes] | None:
    """Where a start tag of one of ``names`` may begin (whatever its prefix)."""
    locals_ = sorted({re.escape(local.encode()) for _, local in names})
    if not locals_:
        return None
    return re.compile(rb"<(?:[^\s<>/!?:]+:)?(?:" + b"|".join(locals_) + rb")(?=[\s/>])")


def _read(src: _Source, opaque_names: frozenset[tuple[str, str]], opaque_root: bool, *,
          plain: bool) -> Element:
    doc = _Document(src.buf)
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

    def skip_content(start_at: int, begin: int, qname: bytes) -> int:
        """At ``begin``, just after the start tag at ``start_at``: when that tag opened
        an opaque element whose content the bytes can be scanned for, let expat parse
        the content without handlers and return where it ends; else ``begin``."""
        nonlocal scan, text_seen
        if not stack or stack[-1]._start != start_at or scan is not stack[-1]._scan:
            return begin
        found = _plain_content(data, begin, qname, room,
                               MAX_NAMESPACES - scopes.total - scopes.pending)
        if found is None:
            return begin
        end, plain_scan = found
        handlers = (p.StartElementHandler, p.EndElementHandler, p.StartNamespaceDeclHandler,
                    p.CharacterDataHandler)
        p.StartElementHandler = p.EndElementHandler = None
        p.StartNamespaceDeclHandler = p.CharacterDataHandler = None
        used_plain.append(True)
        p.Parse(view[begin:end], False)
        el = stack[-1]
        el._scan = scan = plain_scan
        text_seen = scan.has_text
        (p.StartElementHandler, p.EndElementHandler, p.StartNamespaceDeclHandler,
         p.CharacterDataHandler) = handlers
        if text_seen:
            p.CharacterDataHandler = None

        def closing(name: str) -> None:  # the next end tag must be the one found
            if p.CurrentByteIndex != end:
                raise _Refused("the plain scan misplaced an end tag")
            p.EndElementHandler = scan_end
            scan_end(name)

        p.EndElementHandler = closing
        return end

    def feed() -> None:
        """Parse the message in pieces: up to each start tag that may open an opaque
        element, then that element's content, plainly scanned where it can be."""
        at = 0
        look = 0
        while True:
            if opaque_root and look == 0:
                m = _ROOT_TAG.search(data)
            else:
                m = tags.search(data, look) if tags is not None else None
            if m is None:
                p.Parse(view[at:], True)
                return
            tag = _START_TAG.match(data, m.start() + 1)
            look = m.end()
            if tag is None or tag.group(3):
                continue
            p.Parse(view[at:tag.end()], False)
            at = look = skip_content(m.start(), tag.end(), tag.group(1))

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
        nonlocal scan, text_seen
        if text.strip(_WS):
            text_seen = scan.has_text = True

    p.StartElementHandler = start
    p.EndElementHandler = end
    p.StartNamespaceDeclHandler = ns_start
    p.CharacterDataHandler = chars
    data = src.buf
    view = memoryview(data)
    tags = _opaque_tags(opaque_names)
    used_plain: list[bool] = []
    try:
        src.parse(p, feed if plain else None)
    except MalformedMessage:
        if used_plain:
            raise _ReadAgain() from None
        raise
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
