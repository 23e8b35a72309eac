"""nfo.wire.xml: the one hardened XML reader.

Cuts are checked against an independent oracle: xml.dom.minidom parses the
original message and each cut fragment standalone, and every element of a cut
must have the namespace, local name, resolved attributes, text and in-scope
namespace bindings that the original says it has in that place.
"""

from __future__ import annotations

import codecs
import json
import re
import xml.dom.minidom
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nfo.errors import MalformedMessage
from nfo.schema import Schema, Tree
from nfo.wire import xml as nx
from nfo.wire.xml import MAX_ATTRIBUTES, MAX_DEPTH, MAX_NAMESPACES, Element, check, read

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
YANG = "urn:ietf:params:xml:ns:yang:1"
T = "urn:nfo:test"
VIM = "urn:nfo:vim"
CAT = "urn:nfo:catalog"
XML_NS = "http://www.w3.org/XML/1998/namespace"
CONFIG = (NC, "config")


def edit_config(config: str, rpc_attrs: str = "", config_attrs: str = "",
                prefix: str = "") -> str:
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{NC}"' if prefix else f'xmlns="{NC}"'
    return (f'<{p}rpc {xmlns} message-id="1" {rpc_attrs}><{p}edit-config><{p}target>'
            f'<{p}running/></{p}target><{p}config {config_attrs}>{config}</{p}config>'
            f'<{p}default-operation>merge</{p}default-operation></{p}edit-config></{p}rpc>')


DOCS = {
    "plain": edit_config(f'<top xmlns="{T}"><name>a</name><item><name>i1</name></item></top>'),
    "operation prefix on rpc": edit_config(
        f'<top xmlns="{T}"><item nc:operation="delete"><name>a</name></item></top>',
        f'xmlns:nc="{NC}"'),
    "all prefixed": edit_config(
        f'<t:top xmlns:t="{T}"><t:colour>t:red</t:colour></t:top>', prefix="nc"),
    "value prefix on rpc": edit_config(
        f'<top xmlns="{T}"><colour>t:blue</colour></top>', f'xmlns:t="{T}"'),
    "child redeclares a prefix": edit_config(
        f'<top xmlns="{T}" xmlns:t="{T}"><colour>t:red</colour></top>',
        'xmlns:t="urn:elsewhere"'),
    "child repeats its parent's binding": edit_config(
        f'<top xmlns="{T}" xmlns:nc="{NC}"><name>x</name></top>', f'xmlns:nc="{NC}"'),
    "prefix declared on config": edit_config(
        '<t:top><t:name>x</t:name></t:top>', config_attrs=f'xmlns:t="{T}"'),
    "default namespace from rpc": edit_config("<top><name>x</name></top>"),
    "default namespace undeclared": edit_config(
        f'<top xmlns=""><name>x</name><t:sub xmlns:t="{T}"><leaf/></t:sub></top>'),
    "several children, whitespace": edit_config(
        f'\n  <top xmlns="{T}">\n    <name>n</name>\n  </top>\n  '
        f'<top xmlns="{T}"><sorted>3</sorted></top>\n'),
    "insert attributes": edit_config(
        f'<top xmlns="{T}"><tags yang:insert="first">z</tags>'
        f'<item yang:insert="after" yang:key="[t:name=\'a/>\']"><name>b</name></item></top>',
        f'xmlns:yang="{YANG}" xmlns:t="{T}"'),
    "references": edit_config(
        f'<top xmlns="{T}"><name>a&amp;b&#x41;&lt;&gt;&quot;&#10;</name></top>'),
    "attribute with markup characters": edit_config(
        f'<top xmlns="{T}"><item nc:operation="merge" yang:key="a>b/>c"><name>q</name>'
        f"</item><item yang:key='x>\"/>'/></top>", f'xmlns:nc="{NC}" xmlns:yang="{YANG}"'),
    "self-closing": edit_config(f'<top xmlns="{T}"/><top xmlns="{T}"><extra/></top>'),
    "non-ascii": edit_config(f'<top xmlns="{T}"><name>é∑𝄞</name><é>ü</é></top>'),
    "xml declaration": '<?xml version="1.0" encoding="UTF-8"?>\n' + edit_config(
        f'<top xmlns="{T}"><name>d</name></top>'),
    "comments, CDATA and PIs in content": edit_config(
        f'<!-- first --><top xmlns="{T}"><!-- c --><name><![CDATA[a<b]]>&amp;</name>'
        f'<?app data?><name>x<!-- in text -->y</name></top><!-- between -->'
        f'<?pi?><top xmlns="{T}"/>'),
    "escaped namespace URI": edit_config(
        '<p:top><p:name>p:x</p:name></p:top>',
        'xmlns:p="urn:a&amp;b&quot;c&lt;d&#9;e"'),
    "xml:lang and namespaced attributes": edit_config(
        f'<top xmlns="{T}" xml:lang="en"><name xml:lang="fr" x:a="1" b="2" '
        f'xmlns:x="urn:x">n</name></top>'),
    "whitespace inside tags": edit_config(
        f'<top\n  xmlns="{T}"\r\n\tb = "1"  ><name\t>n</name\n></top  >'),
    "crlf": edit_config(f'\r\n<top xmlns="{T}">\r\n<name>a\r\nb</name>\r\n</top>\r\n'),
    "deep": edit_config(
        f'<a xmlns="{T}" xmlns:q="urn:q"><b xmlns:q="urn:q2"><c q:x="1"><d>q:v</d></c></b>'
        '</a>'),
}


# -- the oracle ------------------------------------------------------------------------


def dom_elements(node: Any) -> list[Any]:
    return [c for c in node.childNodes if c.nodeType == c.ELEMENT_NODE]


def dom_scope(el: Any) -> dict[str, str]:
    chain = []
    while el is not None and el.nodeType == el.ELEMENT_NODE:
        chain.append(el)
        el = el.parentNode
    scope: dict[str, str] = {}
    for n in reversed(chain):
        for prefix, uri in dom_own(n).items():
            if uri:
                scope[prefix] = uri
            else:
                scope.pop(prefix, None)
    return scope


def dom_own(el: Any) -> dict[str, str]:
    own = {}
    for a in el.attributes.values():
        if a.name == "xmlns":
            own[""] = a.value
        elif a.name.startswith("xmlns:"):
            own[a.name[6:]] = a.value
    return own


def dom_view(el: Any) -> tuple[Any, ...]:
    attrs = {(a.namespaceURI or "", a.localName): a.value for a in el.attributes.values()
             if a.name != "xmlns" and not a.name.startswith("xmlns:")}
    text = "".join(c.data for c in el.childNodes
                   if c.nodeType in (c.TEXT_NODE, c.CDATA_SECTION_NODE))
    return (el.namespaceURI or "", el.localName, attrs, text, dom_scope(el),
            [dom_view(c) for c in dom_elements(el)])


def view(el: Element) -> tuple[Any, ...]:
    return (el.ns, el.name, el.attrs, el.text, el.nsmap, [view(c) for c in el.children])


def pairs(el: Element, dom: Any) -> list[tuple[Element, Any]]:
    """Each element with its minidom counterpart (iteratively, document order)."""
    out, todo = [], [(el, dom)]
    while todo:
        e, d = todo.pop()
        out.append((e, d))
        kids = dom_elements(d)
        assert len(kids) == len(e.children)
        todo += reversed(list(zip(e.children, kids, strict=True)))
    return out


def walk(root: Element) -> list[Element]:
    out, todo = [], [root]
    while todo:
        el = todo.pop()
        out.append(el)
        todo += reversed(el.children)
    return out


def strip_inserted(cut: bytes, count: int) -> bytes:
    """``cut`` without the ``count`` declarations inserted after its start tag's name."""
    name = re.match(rb"<[^ \t\r\n/>]+", cut)
    assert name is not None
    at = name.end()
    for _ in range(count):
        decl = re.compile(rb' xmlns(:[^=\s]+)?="[^"]*"').match(cut, at)
        assert decl is not None, cut
        at = decl.end()
    return cut[:name.end()] + cut[at:]


def inserted(dom_el: Any) -> int:
    parent = dom_el.parentNode
    return len(set(dom_scope(parent)) - set(dom_own(dom_el)))


# -- reading and namespaces -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCS))
def test_tree_matches_minidom(name: str) -> None:
    data = DOCS[name].encode()
    root = read(data)
    assert view(root) == dom_view(xml.dom.minidom.parseString(data).documentElement)


def test_namespaces() -> None:
    root = read(
        f'<r xmlns="{NC}" xmlns:a="urn:a"><x xmlns:b="urn:b"><a:y b:at="1" plain="2">'
        '<z xmlns="urn:z" xmlns:a="urn:a2"><a:w/></z></a:y></x></r>'.encode())
    assert (root.ns, root.name) == (NC, "r")
    x = root.children[0]
    assert (x.ns, x.name) == (NC, "x")
    y = x.children[0]
    assert (y.ns, y.name) == ("urn:a", "y")
    assert y.attrs == {("urn:b", "at"): "1", ("", "plain"): "2"}
    assert y.attr("at", "urn:b") == "1" and y.attr("plain") == "2" and y.attr("at") is None
    z = y.children[0]
    assert (z.ns, z.name) == ("urn:z", "z")
    assert z.children[0].ns == "urn:a2"
    assert z.resolve("") == "urn:z" and z.resolve("a") == "urn:a2" and z.resolve("b") == "urn:b"
    assert y.resolve("a") == "urn:a" and y.resolve("") == NC
    assert root.resolve("b") is None and root.resolve("nope") is None
    assert root.resolve("xml") == XML_NS
    assert z.nsmap == {"": "urn:z", "a": "urn:a2", "b": "urn:b"}
    assert z.parent is y and y.parent is x and x.parent is root and root.parent is None


def test_no_namespace_and_undeclared_default() -> None:
    root = read(b'<r xmlns="urn:r"><a xmlns=""><b/></a></r>')
    a = root.children[0]
    assert (a.ns, a.children[0].ns) == ("", "")
    assert a.resolve("") is None and "" not in a.nsmap
    assert a.xml() == b'<a xmlns=""><b/></a>'
    assert a.children[0].xml() == b"<b/>"


def test_child_lookup() -> None:
    root = read(f'<r xmlns="{NC}" xmlns:o="urn:o"><a>1</a><o:a>2</o:a><a>3</a><b/></r>'.encode())
    assert root.child("a") is root.children[0]
    assert root.child("a", "urn:o") is root.children[1]
    assert root.child("a", "") is None
    assert root.child("c") is None
    assert [c.text for c in root.children_named("a")] == ["1", "3"]
    assert [c.text for c in root.children_named("a", "urn:o")] == ["2"]
    assert root.children_named("zz") == []


def test_text() -> None:
    root = read(b"<r> x <a>&amp;<![CDATA[<y>]]>&#x263A;</a>tail<b>\n </b><c/></r>")
    a, b, c = root.children
    assert root.text == " x tail" and root.has_text
    assert a.text == "&<y>\u263a" and a.has_text
    assert b.text == "\n " and not b.has_text
    assert c.text == "" and not c.has_text
    assert read("<r>\u00a0</r>".encode()).has_text  # only XML whitespace is whitespace
    assert root.child_count == 3 and not root.opaque


def test_long_text_in_many_chunks() -> None:
    body = "".join(f"x{i}&amp;<!---->" for i in range(20_000))
    root = read(f"<r>{body}<a/>{body}</r>".encode())
    expected = "".join(f"x{i}&" for i in range(20_000))
    assert root.text == expected * 2


# -- cutting -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCS))
def test_cut_elements_mean_what_the_original_says(name: str) -> None:
    data = DOCS[name].encode()
    root = read(data)
    dom_root = xml.dom.minidom.parseString(data).documentElement
    for el, dom_el in pairs(root, dom_root)[1:]:
        cut = el.xml()
        standalone = xml.dom.minidom.parseString(cut).documentElement
        assert dom_view(standalone) == dom_view(dom_el), cut
        assert strip_inserted(cut, inserted(dom_el)) in data


@pytest.mark.parametrize("name", sorted(DOCS))
def test_content_is_the_children_cut(name: str) -> None:
    data = DOCS[name].encode()
    root = read(data)
    dom_root = xml.dom.minidom.parseString(data).documentElement
    for el, dom_el in pairs(root, dom_root):
        content = el.content_xml()
        assert content == b"".join(c.xml() for c in el.children)
        if not el.children:
            assert content == b""
            continue
        wrapped = xml.dom.minidom.parseString(b"<w>" + content + b"</w>").documentElement
        assert [dom_view(c) for c in dom_elements(wrapped)] == [
            dom_view(c) for c in dom_elements(dom_el)]
        # the client's bytes, from the first child to the parent's end tag
        raw = b"".join(strip_inserted(c.xml(), inserted(d))
                       for c, d in zip(el.children, dom_elements(dom_el), strict=True))
        assert raw.startswith(b"<") and raw + b"</" in data


_PREFIXES = ["", "a", "b", "nc"]
_URIS = ["urn:x", "urn:y", 'urn:q&"<\'z', NC]
_TEXT = st.lists(st.sampled_from(["a", " ", "\n", ">", "/>", "&", "<", "'", '"', "é", "𝄞", "]]"]),
                 max_size=6).map("".join)


def _escape(text: str, quote: str = "") -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    if not quote:
        return text.replace("]]>", "]]&gt;")
    return text.replace(quote, "&quot;" if quote == '"' else "&apos;")


@st.composite
def _element(draw: st.DrawFn, depth: int, scope: frozenset[str]) -> str:
    decls = draw(st.dictionaries(st.sampled_from(_PREFIXES), st.sampled_from(["", *_URIS]),
                                 max_size=2))
    decls = {p: u for p, u in decls.items() if u or not p}  # only xmlns="" undeclares
    scope = scope | {p for p, u in decls.items() if u}
    if "" in decls and not decls[""]:
        scope -= {""}
    prefixes = sorted(p for p in scope if p)
    prefix = draw(st.sampled_from(["", *prefixes]))
    qname = (f"{prefix}:" if prefix else "") + draw(st.sampled_from(["e", "é", "f-g", "h.i"]))
    parts = [f"<{qname}"]
    for p, uri in decls.items():
        q = draw(st.sampled_from(["'", '"']))
        parts.append(f" xmlns{':' + p if p else ''}={q}{_escape(uri, q)}{q}")
    for i in range(draw(st.integers(0, 2))):
        q = draw(st.sampled_from(["'", '"']))
        ap = draw(st.sampled_from(["", *prefixes]))
        parts.append(f"{draw(st.sampled_from([' ', chr(10), chr(9)]))}"
                     f"{ap + ':' if ap else ''}at{i}={q}{_escape(draw(_TEXT), q)}{q}")
    kids = draw(st.lists(_element(depth + 1, scope), max_size=3)) if depth < 3 else []
    if not kids and draw(st.booleans()):
        parts.append("/>")
        return "".join(parts)
    parts.append(">")
    if kids:
        fillers = st.sampled_from(["", " ", "\n  ", "<!-- c > -->", "<?pi />?>", "\r\n"])
        for kid in kids:
            parts += (draw(fillers), kid)
        parts.append(draw(fillers))
    else:
        text = draw(_TEXT)
        parts.append(draw(st.sampled_from([_escape(text), f"<![CDATA[{text.replace(']]', '')}]]>",
                                           "&#x263A;&lt;&amp;&gt;&quot;"])))
    parts.append(f"</{qname}>")
    return "".join(parts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_element(0, frozenset()))
def test_cuts_of_generated_documents(doc: str) -> None:
    data = doc.encode()
    dom_root = xml.dom.minidom.parseString(data).documentElement
    root = read(data)
    assert view(root) == dom_view(dom_root)
    for el, dom_el in pairs(root, dom_root)[1:]:
        cut = el.xml()
        assert dom_view(xml.dom.minidom.parseString(cut).documentElement) == dom_view(dom_el)
        assert strip_inserted(cut, inserted(dom_el)) in data
        scanned = [e for e in walk(read(data, opaque={(el.ns, el.name)}))
                   if e._start == el._start]
        if not scanned:
            continue  # inside an opaque element of the same name
        assert scanned[0].opaque and scanned[0].child_count == el.child_count
        assert scanned[0].has_text == el.has_text
        assert scanned[0].content_xml() == el.content_xml()


def test_cut_inserts_after_the_name() -> None:
    data = (f'<nc:rpc xmlns:nc="{NC}" xmlns="urn:d" xmlns:v="{VIM}"><nc:config>'
            f'<v:vims a="x/>y"><v:vim/></v:vims>  <!-- c -->\n<e/></nc:config></nc:rpc>')
    config = read(data.encode()).children[0]
    decls = f' xmlns:nc="{NC}" xmlns="urn:d" xmlns:v="{VIM}"'
    assert config.children[0].xml() == (
        f'<v:vims{decls} a="x/>y"><v:vim/></v:vims>  <!-- c -->\n').encode()
    assert config.children[1].xml() == f"<e{decls}/>".encode()
    assert config.xml() == (
        f'<nc:config{decls}><v:vims a="x/>y"><v:vim/></v:vims>  <!-- c -->\n<e/>'
        "</nc:config>").encode()


def test_cut_quotes_uris() -> None:
    root = read(b'<r xmlns:p="a&amp;b&quot;c&lt;&#9;&#10;&#13;&gt;\'"><p:x/></r>')
    assert root.resolve("p") == "a&b\"c<\t\n\r>'"
    cut = root.children[0].xml()
    assert cut == b'<p:x xmlns:p="a&amp;b&quot;c&lt;&#9;&#10;&#13;>\'"/>'
    standalone = xml.dom.minidom.parseString(cut).documentElement
    assert standalone is not None and standalone.namespaceURI == "a&b\"c<\t\n\r>'"


def test_root_cut_is_the_message() -> None:
    data = b'\xef\xbb\xbf \n<?xml version="1.0"?>\n<!-- c --><r><a/></r>\n<!-- after -->\n'
    root = read(data)
    assert root.xml() == data[5:]
    assert root.content_xml() == b"<a/>"


def test_cut_of_mixed_content_keeps_the_text() -> None:
    root = read(b"<r><a/>tail<b/> </r>")
    assert root.children[0].xml() == b"<a/>tail"
    assert root.content_xml() == b"<a/>tail<b/> "


def test_elements_share_the_message() -> None:
    data = b"<r>" + b"<a><b/></a>" * 10 + b"</r>"
    root = read(data)
    kids = root.children
    assert all(k._doc is root._doc for k in kids) and root._doc.data is data


# -- libyang parses what is cut --------------------------------------------------------


VIMS_RPC = (
    f'<rpc xmlns="{NC}" xmlns:nc="{NC}" xmlns:v="{VIM}" message-id="7">'
    "<edit-config><target><candidate/></target><config>\n"
    f'  <vims xmlns="{VIM}">\n'
    '    <vim nc:operation="create"><name>a</name><type>v:sim</type>'
    "<sim><latency><mean>5</mean></latency></sim></vim>\n"
    '    <vim nc:operation="delete"><name>b</name></vim>\n'
    "  </vims>\n"
    f'  <catalog xmlns="{CAT}"><!-- descriptors -->\n'
    "    <nf-descriptor><id>d1</id><name>D &amp; 1</name>"
    "<vim-types>v:sim</vim-types><vim-types>v:local</vim-types></nf-descriptor>\n"
    "  </catalog>\n"
    "</config></edit-config></rpc>")
VIMS_JSON = {
    "nfo-vim:vims": {"vim": [
        {"@": {"ietf-netconf:operation": "create"}, "name": "a", "type": "nfo-vim:sim",
         "sim": {"latency": {"mean": 5}}},
        {"@": {"ietf-netconf:operation": "delete"}, "name": "b"},
    ]},
    "nfo-catalog:catalog": {"nf-descriptor": [
        {"id": "d1", "name": "D & 1", "vim-types": ["nfo-vim:sim", "nfo-vim:local"]},
    ]},
}


def _libyang_json(schema: Schema, text: bytes) -> Any:
    with Tree.parse(schema, text, "xml") as t:
        return json.loads(t.print("json"))


@pytest.mark.parametrize("opaque", [False, True])
def test_libyang_parses_the_cut_config(schema: Schema, opaque: bool) -> None:
    root = read(VIMS_RPC.encode(), opaque={CONFIG} if opaque else ())
    config = root.child("edit-config")
    assert config is not None
    config = config.child("config")
    assert config is not None and config.opaque is opaque
    assert _libyang_json(schema, config.content_xml()) == VIMS_JSON


def test_libyang_parses_a_cut_element(schema: Schema) -> None:
    root = read(VIMS_RPC.encode())
    vims = root.children[0].children[1].children[0]
    assert vims.name == "vims"
    assert _libyang_json(schema, vims.xml()) == {"nfo-vim:vims": VIMS_JSON["nfo-vim:vims"]}


def test_libyang_parses_an_all_prefixed_config(schema: Schema) -> None:
    data = (f'<nc:rpc xmlns:nc="{NC}" xmlns:v="{VIM}" message-id="1"><nc:edit-config>'
            "<nc:target><nc:running/></nc:target><nc:config>"
            '<v:vims><v:vim nc:operation="replace"><v:name>x</v:name><v:type>v:local</v:type>'
            "</v:vim></v:vims></nc:config></nc:edit-config></nc:rpc>")
    root = read(data.encode(), opaque={CONFIG})
    config = root.children[0].children[1]
    assert _libyang_json(schema, config.content_xml()) == {"nfo-vim:vims": {"vim": [
        {"@": {"ietf-netconf:operation": "replace"}, "name": "x", "type": "nfo-vim:local"}]}}


# -- opaque elements ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCS))
def test_opaque_config_cuts_as_the_full_read(name: str) -> None:
    data = DOCS[name].encode()
    full = read(data)
    scanned = read(data, opaque=[CONFIG])
    config = next(c for c in full.children[0].children if c.name == "config")
    opaque = next(c for c in scanned.children[0].children if c.name == "config")
    assert opaque.opaque and not config.opaque
    assert opaque.children == [] and opaque.text == ""
    assert opaque.child_count == config.child_count == len(config.children)
    assert opaque.has_text == config.has_text
    assert opaque.content_xml() == config.content_xml()
    assert opaque.xml() == config.xml()
    assert opaque.nsmap == config.nsmap and opaque.attrs == config.attrs
    # the element after the opaque one is read again
    after_full = full.children[0].children[-1]
    after_scanned = scanned.children[0].children[-1]
    assert view(after_scanned) == view(after_full)


def test_opaque_text_and_counts() -> None:
    data = b"<r><o> <a>x<b/></a>\n<c/>text<d>&amp;</d></o><o/><o>\n <a>y</a> </o></r>"
    root = read(data, opaque={("", "o")})
    first, empty, last = root.children
    assert [o.opaque for o in root.children] == [True, True, True]
    assert (first.child_count, first.has_text) == (3, True)
    assert (empty.child_count, empty.has_text, empty.content_xml()) == (0, False, b"")
    assert (last.child_count, last.has_text, last.content_xml()) == (1, False, b"<a>y</a> ")
    assert first.content_xml() == b"<a>x<b/></a>\n<c/>text<d>&amp;</d>"
    assert not read(b"<r><o><a>text only below</a></o></r>", opaque={("", "o")}
                    ).children[0].has_text
    assert read(b"<r><o>&#160;</o></r>", opaque={("", "o")}).children[0].has_text
    assert read(b"<r><o><![CDATA[x]]></o></r>", opaque={("", "o")}).children[0].has_text


def test_opaque_children_keep_their_declarations() -> None:
    data = (b'<r xmlns="urn:r" xmlns:p="urn:p"><o><a xmlns="urn:a"><b xmlns:p="urn:deep"/></a>'
            b'<p:c xmlns:p="urn:p2" xmlns:q="urn:q"/><d/></o></r>')
    for opaque in ((), {("urn:r", "o")}):
        o = read(data, opaque=opaque).children[0]
        assert o.content_xml() == (
            b'<a xmlns:p="urn:p" xmlns="urn:a"><b xmlns:p="urn:deep"/></a>'
            b'<p:c xmlns="urn:r" xmlns:p="urn:p2" xmlns:q="urn:q"/>'
            b'<d xmlns="urn:r" xmlns:p="urn:p"/>')


def test_opaque_root() -> None:
    data = b'<data xmlns="urn:ietf:params:xml:ns:yang:ietf-restconf"><a xmlns="urn:a"/>x</data>'
    root = read(data, opaque_root=True)
    assert root.opaque and root.children == [] and root.child_count == 1 and root.has_text
    assert root.content_xml() == b'<a xmlns="urn:a"/>x'
    assert root.xml() == data
    assert read(b"<a/>", opaque_root=True).child_count == 0


def test_elements_after_an_opaque_one_are_read() -> None:
    root = read(b'<r xmlns:p="urn:p"><o><x><y/></x></o><a p:k="1">t<b/></a><o/></r>',
                opaque={("", "o")})
    o, a, o2 = root.children
    assert o.opaque and o2.opaque and not a.opaque
    assert a.attrs == {("urn:p", "k"): "1"} and a.text == "t" and a.children[0].name == "b"
    assert a.xml() == b'<a xmlns:p="urn:p" p:k="1">t<b/></a>'


def test_large_opaque_config() -> None:
    entries = "".join(f"<vim><name>v{k}</name><type>v:sim</type></vim>" for k in range(10_000))
    data = (f'<rpc xmlns="{NC}" xmlns:v="{VIM}" message-id="1"><edit-config><target><running/>'
            f'</target><config><vims xmlns="{VIM}">{entries}</vims></config></edit-config>'
            "</rpc>").encode()
    config = read(data, opaque={CONFIG}).children[0].children[1]
    assert config.opaque and config.child_count == 1
    assert config.content_xml() == (
        f'<vims xmlns:v="{VIM}" xmlns="{VIM}">{entries}</vims>').encode()
    vims = read(data, opaque={(VIM, "vims")}).children[0].children[1].children[0]
    assert vims.child_count == 10_000 and not vims.has_text


def test_large_opaque_config_in_libyang(schema: Schema) -> None:
    entries = "".join(f"<vim><name>v{k}</name><type>v:sim</type></vim>" for k in range(10_000))
    data = (f'<rpc xmlns="{NC}" xmlns:v="{VIM}" message-id="1"><edit-config><target><running/>'
            f'</target><config><vims xmlns="{VIM}">{entries}</vims></config></edit-config>'
            "</rpc>").encode()
    config = read(data, opaque={CONFIG}).children[0].children[1]
    vims = _libyang_json(schema, config.content_xml())["nfo-vim:vims"]["vim"]
    assert len(vims) == 10_000 and vims[-1] == {"name": "v9999", "type": "nfo-vim:sim"}


# -- accepted ----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbf<a/>",
    b"\n<a/>",
    b" \t\r\n<?xml version='1.0'?><a/>",
    b'\xef\xbb\xbf\n<?xml version="1.0" encoding="UTF-8"?>\n<a/>',
    b'<?xml version="1.0" encoding="utf8"?><a/>',
    b'<?xml version="1.0" encoding="UTF_8"?><a/>',
    b'<?xml version="1.0" encoding="us-ascii" standalone="yes"?><a/>',
    b'<?xml version="1.0"?><!-- c --><?pi x?>\n<!-- d --><a/><!-- after -->\n',
    b"<a><!-- c --><?pi?>\n</a>",
    b"<a><![CDATA[ ]]></a>",
], ids=repr)
def test_accepted(data: bytes) -> None:
    assert read(data).name == "a"
    check(data)


def test_utf8_bom_and_leading_whitespace_are_dropped() -> None:
    root = read(b"\xef\xbb\xbf\r\n <r><a>\xc3\xa9</a></r>")
    assert root.xml() == b"<r><a>\xc3\xa9</a></r>"
    assert root.children[0].text == "é"


# -- refused -------------------------------------------------------------------------------

_DTD_INTERNAL = b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10)
                     for i in range(1, 10))
          + b"]><lolz>&lol9;</lolz>")

HOSTILE = {
    "doctype": b"<!DOCTYPE a><a/>",
    "doctype lower-case": b"<!doctype a><a/>",
    "doctype after declaration and comments": (
        b'<?xml version="1.0"?>\n<!-- x --><!-- y -->\n<!DOCTYPE a SYSTEM "a.dtd"><a/>'),
    "doctype inside content": b"<a><!DOCTYPE a></a>",
    "doctype with whitespace": b"<! DOCTYPE a><a/>",
    "doctype in a comment": b"<a><!-- <!DOCTYPE a> --></a>",
    "internal subset": _DTD_INTERNAL,
    "entity": b'<!ENTITY x "y"><a/>',
    "entity inside content": b'<a><!ENTITY x "y"></a>',
    "billion laughs": LAUGHS,
    "external entity": (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM '
                        b'"file:///etc/passwd">]><a>&x;</a>'),
    "parameter entities": (b'<!DOCTYPE a [<!ENTITY % p SYSTEM "http://example.com/p.dtd">'
                           b"%p;]><a/>"),
    "element declaration": b"<!ELEMENT a ANY><a/>",
    "attlist declaration": b"<!ATTLIST a b CDATA #IMPLIED><a/>",
    "conditional section": b"<![INCLUDE[<a/>]]>",
    "cdata in lower case": b"<a><![cdata[x]]></a>",
    "undefined entity": b"<a>&x;</a>",
    "utf-16 le": codecs.BOM_UTF16_LE + "<a/>".encode("utf-16-le"),
    "utf-16 be": codecs.BOM_UTF16_BE + "<a/>".encode("utf-16-be"),
    "utf-16 default": "<a/>".encode("utf-16"),
    "utf-32": "<a/>".encode("utf-32"),
    "utf-32 be": codecs.BOM_UTF32_BE + "<a/>".encode("utf-32-be"),
    "utf-16 without bom": "<a/>".encode("utf-16-le"),
    "utf-16 be without bom": '<?xml version="1.0"?><a/>'.encode("utf-16-be"),
    "nul byte": b"<a>\x00</a>",
    "declared iso-8859-1": b'<?xml version="1.0" encoding="ISO-8859-1"?><a>\xe9</a>',
    "declared iso-8859-1, ascii content": b'<?xml version="1.0" encoding="ISO-8859-1"?><a/>',
    "declared utf-16": b'<?xml version="1.0" encoding="UTF-16"?><a/>',
    "declared latin1 single quotes": b"<?xml version='1.0' encoding='latin1'?><a/>",
    "invalid utf-8": b"<a>\xc3\x28</a>",
    "overlong utf-8": b"<a>\xc0\xaf</a>",
    "utf-8 surrogate": b"<a>\xed\xa0\x80</a>",
    "truncated utf-8": b"<a>\xe2\x82</a>",
    "invalid utf-8 in a name": b"<a\xff/>",
    "deep": b"<a>" * 100_000 + b"</a>" * 100_000,
    "just too deep": b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1),
    "unbound element prefix": b"<p:a/>",
    "unbound attribute prefix": b'<a p:x="1"/>',
    "unbound prefix deep": b"<a><b><p:c/></b></a>",
    "mismatched tags": b"<a><b></a></b>",
    "two roots": b"<a/><b/>",
    "trailing garbage": b"<a/>x",
    "unclosed": b"<a><b>",
    "empty": b"",
    "only whitespace": b" \r\n\t ",
    "only a bom": b"\xef\xbb\xbf",
    "only a comment": b"<!-- c -->",
    "declaration not at the start": b"<a/><?xml version='1.0'?>",
    "text before the root": b"x<a/>",
    "duplicate attribute": b'<a x="1" x="2"/>',
    "lt in attribute": b'<a x="<"/>',
    "undeclaring a prefix": b'<a xmlns:p=""/>',
    "100,000 declarations on one element": (
        b"<a " + b" ".join(b'xmlns:p%d="urn:x%d"' % (i, i) for i in range(100_000)) + b"/>"),
    "a declaration on each of 100,000 nested elements": (
        b"".join(b'<a xmlns:p%d="urn:x%d">' % (i, i) for i in range(100_000))
        + b"</a>" * 100_000),
    "100,000 attributes": b"<a " + b" ".join(b'x%d="1"' % i for i in range(100_000)) + b"/>",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_refused(name: str) -> None:
    data = HOSTILE[name]
    with pytest.raises(MalformedMessage) as e:
        read(data)
    assert e.value.error_type == "protocol" and e.value.tag == "malformed-message"
    assert "Traceback" not in e.value.message
    with pytest.raises(MalformedMessage):
        check(data)
    with pytest.raises(MalformedMessage):
        read(data, opaque_root=True)


@pytest.mark.parametrize("name", ["doctype", "entity", "external entity", "billion laughs",
                                  "parameter entities", "element declaration"])
def test_declarations_name_what_was_refused(name: str) -> None:
    with pytest.raises(MalformedMessage, match="is not accepted: no document type"):
        read(HOSTILE[name])


def test_messages() -> None:
    def message(data: bytes) -> str:
        with pytest.raises(MalformedMessage) as e:
            read(data)
        return e.value.message

    assert message(b"<!doctype a><a/>") == (
        "XML with <!doctype is not accepted: no document type, entity or other markup "
        "declaration")
    assert message(b"<!ENTITY x 'y'><a/>").startswith("XML with <!ENTITY is not accepted")
    assert "UTF-8" in message("<a/>".encode("utf-16"))
    assert "'ISO-8859-1'" in message(b'<?xml version="1.0" encoding="ISO-8859-1"?><a/>')
    assert message(b"\n\n<a>\xc3\x28</a>") == (
        "not UTF-8: invalid byte sequence at byte 5 (line 3, column 3)")
    assert message(b"<a>\xe2\x82</a>").startswith("not UTF-8: invalid byte sequence at byte 3")
    assert message(b"<a>\xe2\x82").startswith("not UTF-8: invalid byte sequence at byte 3")
    assert message("<a>é€𝄞".encode() + b"\xff</a>").startswith(
        "not UTF-8: invalid byte sequence at byte 12")
    assert message("<a>é</a>x".encode()).startswith("not well-formed XML: junk after")
    assert message(b"<a>\x01</a>").startswith("not well-formed XML: not well-formed")
    assert message(b"\r\n  <a>\n <b></c></a>") == (
        "not well-formed XML: mismatched tag (line 3, column 6)")
    assert message(b"  <a/><b/>") == (
        "not well-formed XML: junk after document element (line 1, column 6)")
    assert message(b"") == "not well-formed XML: no element found (line 1, column 0)"
    assert "unbound prefix" in message(b"<a><p:b/></a>")
    assert message(b"<a>" * 300).startswith(
        f"elements nested deeper than {MAX_DEPTH} levels are not accepted (line 1, column ")


def test_depth_limit_is_exact() -> None:
    ok = b"<a>" * MAX_DEPTH + b"</a>" * MAX_DEPTH
    read(ok)
    check(ok)
    opaque_inside = b"<r>" + b"<o>" + b"<a>" * (MAX_DEPTH - 2) + b"</a>" * (MAX_DEPTH - 2) + (
        b"</o></r>")
    assert read(opaque_inside, opaque={("", "o")}).children[0].child_count == 1
    too_deep = b"<r><o>" + b"<a>" * (MAX_DEPTH - 1) + b"</a>" * (MAX_DEPTH - 1) + b"</o></r>"
    for kw in ({}, {"opaque": {("", "o")}}, {"opaque_root": True}):
        with pytest.raises(MalformedMessage, match="nested deeper"):
            read(too_deep, **kw)
    with pytest.raises(MalformedMessage, match="nested deeper"):
        check(too_deep)


def _declaring(n: int, at: int = 0) -> bytes:
    return b" ".join(b'xmlns:p%d="urn:x%d"' % (i, i) for i in range(at, at + n))


@pytest.mark.parametrize("kw", [{}, {"opaque": {("", "o")}}, {"opaque_root": True}, None])
def test_namespace_and_attribute_limits_are_exact(kw: dict[str, Any] | None) -> None:
    def parse(data: bytes) -> None:
        if kw is None:
            check(data)
        else:
            read(data, **kw)

    half = MAX_NAMESPACES // 2
    # on one element, then spread over an element and its descendants
    parse(b"<r><o " + _declaring(MAX_NAMESPACES) + b"/></r>")
    parse(b"<r " + _declaring(half) + b"><o><a " + _declaring(half, half) + b"/></o></r>")
    # siblings' declarations are not in each other's scope
    siblings = b"".join(b"<a " + _declaring(half) + b"/>" for _ in range(40))
    parse(b"<r " + _declaring(half) + b"><o>" + siblings + b"</o></r>")
    parse(b"<r><o " + b" ".join(b'x%d="1"' % i for i in range(MAX_ATTRIBUTES)) + b"/></r>")
    too_many = [
        b"<r><o " + _declaring(MAX_NAMESPACES + 1) + b"/></r>",
        b"<r " + _declaring(half) + b"><o><a " + _declaring(half + 1, half) + b"/></o></r>",
        b"<r " + _declaring(half) + b"><o><a><b " + _declaring(half, half) + b"/><c " +
        _declaring(1, 2 * half) + b"/></a></o></r>",
    ]
    for data in too_many[:2]:
        with pytest.raises(MalformedMessage, match="namespace declarations in scope"):
            parse(data)
    parse(too_many[2])  # <b> and <c> are siblings
    with pytest.raises(MalformedMessage, match="namespace declarations in scope"):
        parse(b"<r " + _declaring(half) + b"><o><a " + _declaring(1, 2 * half) + b"><b " +
              _declaring(half, half) + b"/></a></o></r>")
    with pytest.raises(MalformedMessage, match=f"more than {MAX_ATTRIBUTES} attributes"):
        parse(b"<r><o " + b" ".join(b'x%d="1"' % i for i in range(MAX_ATTRIBUTES + 1)) +
              b"/></r>")


def test_deep_nesting_inside_an_opaque_element() -> None:
    data = b"<r><o>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</o></r>"
    with pytest.raises(MalformedMessage, match="nested deeper"):
        read(data, opaque={("", "o")})


def test_error_type() -> None:
    for fn in (read, check):
        with pytest.raises(MalformedMessage) as e:
            fn(b"<!DOCTYPE a><a/>", error_type="application")
        assert e.value.error_type == "application"
        with pytest.raises(MalformedMessage) as e:
            fn(b"<a>", error_type="rpc")
        assert e.value.error_type == "rpc"


def test_expat_refuses_declarations_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second wall: with the byte scan disabled, expat's handlers still refuse."""
    monkeypatch.setattr(nx, "_DECLARATION", re.compile(rb"(?!)"))
    for name in ("doctype", "internal subset", "billion laughs", "external entity",
                 "parameter entities", "doctype inside content", "entity"):
        with pytest.raises(MalformedMessage):
            read(HOSTILE[name])
        with pytest.raises(MalformedMessage):
            check(HOSTILE[name])
    with pytest.raises(MalformedMessage, match="document type or entity declaration"):
        read(HOSTILE["external entity"])


def test_accepts_bytes_like() -> None:
    assert read(bytearray(b"<a/>")).name == "a"  # type: ignore[arg-type]
    check(memoryview(b"<a/>"))  # type: ignore[arg-type]


# -- the plain scan of an opaque element's content (bytes, not expat callbacks) ---------


def _scans_of(top: Element) -> list[tuple[int, list[int], dict[int, list[str]], bool, int,
                                         bytes]]:
    out = []
    for el in walk(top):
        if el._scan is not None:
            s = el._scan
            out.append((el._start, s.starts, {k: sorted(v) for k, v in s.own.items()},
                        s.has_text, s.end, el.content_xml()))
    return out


def _scans(data: bytes, names: frozenset[tuple[str, str]], root: bool = False) -> Any:
    """Every opaque element's scan as read() (the plain scan allowed) makes it."""
    return _scans_of(read(data, opaque=names, opaque_root=root))


def _expat_scans(data: bytes, names: frozenset[tuple[str, str]], root: bool = False) -> Any:
    """The same with expat's scan only."""
    return _scans_of(nx._read(nx._Source(data, "protocol"), names, root, plain=False))


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except MalformedMessage as e:
        return ("refused", e.message)


_NO_MARKUP = re.compile(r"<!--.*?-->|<\?pi.*?\?>", re.S)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_element(0, frozenset()))
def test_plain_scan_agrees_with_expat_on_generated_documents(doc: str) -> None:
    data = _NO_MARKUP.sub("", doc).encode()
    for el in walk(read(data)):
        names = frozenset({(el.ns, el.name)})
        assert _scans(data, names) == _expat_scans(data, names)
    assert _scans(data, frozenset(), True) == _expat_scans(data, frozenset(), True)


def _bulk(n: int, extra: str = "") -> bytes:
    body = "".join(f"<bulk{extra}><name>e{k}</name><value>{k}</value></bulk>" for k in range(n))
    return edit_config(f'<bench xmlns="urn:b">{body}</bench>').encode()


def test_plain_scan_is_taken_for_plain_content() -> None:
    data = _bulk(50)
    begin = data.index(b"<bench")
    found = nx._plain_content(data, begin, b"config", 100, 100)
    assert found is not None
    end, scan = found
    assert scan.starts == [begin] and scan.own == {0: [""]} and not scan.has_text
    assert data[end:].startswith(b"</config>")
    assert _scans(data, frozenset({CONFIG})) == _expat_scans(data, frozenset({CONFIG}))


@pytest.mark.parametrize("config", [
    '<a xmlns="urn:a">x/>y</a>',                      # "/>" in text
    '<a xmlns="urn:a"><b>x/></b></a>',                # ... deeper, balancing a wrong guess
    '<a xmlns="urn:a" v="/>"><b w="/>"/></a>',        # "/>" in attribute values
    '<a xmlns="urn:a"><a><a/></a></a><a xmlns="urn:a"/>',  # same names nested
    '<a xmlns="urn:a"><!-- c --></a>',                # comment: expat's scan
    '<a xmlns="urn:a"><![CDATA[<b>]]></a>',           # CDATA: expat's scan
    ' &#32; <a xmlns="urn:a"/>',                      # a reference standing for a space
    ' &lt; <a xmlns="urn:a"/>',                       # text beside the elements
    'text',
    '',
    '<a xmlns="urn:a" xmlns:p="urn:p"><p:b/></a>\n<c xmlns:q="urn:q"/>',
])
def test_plain_scan_tricky_content(config: str) -> None:
    data = edit_config(config).encode()
    names = frozenset({CONFIG})
    assert _outcome(_scans, data, names) == _outcome(_expat_scans, data, names)


def _deep(levels: int) -> str:
    return '<a xmlns="urn:a">' + "<b>" * levels + "</b>" * levels + "</a>"


@pytest.mark.parametrize("config", [
    _deep(MAX_DEPTH - 5), _deep(MAX_DEPTH - 4), _deep(MAX_DEPTH),  # around the limit
    _deep(40),
    '<a xmlns="urn:a">' + "<b>" * 30 + "</b>" * 29 + "</a></a>",    # unbalanced
    '<a xmlns="urn:a"><b></c></a>',                                # mismatched
    '<a xmlns="urn:a"><b>&undefined;</b></a>',                     # undefined entity
    '<a xmlns="urn:a"><b ' + " ".join(f"x{i}='1'" for i in range(MAX_ATTRIBUTES)) + "/></a>",
    '<a xmlns="urn:a"><b ' + " ".join(f"x{i}='1'" for i in range(MAX_ATTRIBUTES + 1)) + "/></a>",
    '<a xmlns="urn:a"><b ' + " ".join(f"xmlns:x{i}='urn:{i}'" for i in range(70)) + "/></a>",
    '<a xmlns="urn:a">' + "".join(f"<b xmlns:x{i}='urn:{i}'>" for i in range(MAX_NAMESPACES))
    + "</b>" * MAX_NAMESPACES + "</a>",
    '<a xmlns="urn:a"><b>\x01</b></a>',                             # not an XML character
    '<a xmlns="urn:a"><b>\xff</b></a>',
])
def test_plain_scan_limits_and_refusals_as_expat(config: str) -> None:
    data = edit_config(config).encode("utf-8", "surrogateescape")
    names = frozenset({CONFIG})
    assert _outcome(_scans, data, names) == _outcome(_expat_scans, data, names)


def test_many_top_level_children_are_scanned_by_expat() -> None:
    body = "".join(f'<e xmlns="urn:e">{k}</e>' for k in range(300))
    data = edit_config(body).encode()
    names = frozenset({CONFIG})
    assert _scans(data, names) == _expat_scans(data, names)
    assert len(_scans(data, names)[0][1]) == 300


# -- small messages read by their shape ---------------------------------------------------


def _expat(data: bytes, opaque: frozenset[tuple[str, str]] = frozenset()) -> Any:
    """What expat alone makes of ``data``: the tree's facts, or the refusal."""
    return _outcome(lambda: nx._facts(nx._expat_read(nx._Source(data, "protocol"), opaque,
                                                     False)))


def _read_facts(data: bytes, opaque: frozenset[tuple[str, str]] = frozenset()) -> Any:
    return _outcome(lambda: nx._facts(read(data, opaque=opaque)))


_VALUES = [b"v", b"", b" ", b"a b", b"x\ty", b"\n", b"'", b'"', b"&amp;", b"&", b"&x;",
           b"]]>", b"\x01", b"\xc3\xa9", b"\xff", b"\r", b"a>b", b"<", b"/>"]


def _revalued(data: bytes, value: bytes) -> bytes:
    """``data`` with every text between tags and every attribute value replaced."""
    data = re.sub(rb">[^<>]+(?=<)", lambda _: b">" + value, data)
    data = re.sub(rb'="[^"<>]*"', lambda _: b'="' + value.replace(b'"', b"") + b'"', data)
    return re.sub(rb"='[^'<>]*'", lambda _: b"='" + value.replace(b"'", b"") + b"'", data)


def _learnt(data: bytes) -> None:
    for _ in range(2):
        read(data)


SHAPED = [
    b'<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><get-config>'
    b'<source><running/></source><filter type="subtree"><b xmlns="urn:b"><e><name>e1</name>'
    b"</e></b></filter></get-config></rpc>",
    b'<?xml version="1.0" encoding="UTF-8"?>\n<rpc message-id="101" xmlns="urn:nc"'
    b' xmlns:x="urn:x" x:foo="a\tb">\n  <get>\n <x:top xmlns="">t<a>1</a>u<b/>\n</x:top>'
    b"</get></rpc>\n",
    b"<a xmlns='u' xmlns:p='v'><p:b p:c='1' c='2'>x<c/>y</p:b></a>",
    b"<a><b>1</b><b>2</b><!-- c --><b>3</b></a>",
]


@pytest.mark.parametrize("data", SHAPED, ids=range(len(SHAPED)))
def test_a_learnt_shape_reads_as_expat(data: bytes) -> None:
    _learnt(data)
    assert _read_facts(data) == _expat(data)
    for value in _VALUES:
        other = _revalued(data, value)
        assert _read_facts(other) == _expat(other), other


def test_a_shape_is_learnt_the_second_time_and_used() -> None:
    data = SHAPED[0].replace(b"e1", b"z1")  # a shape no other test has
    nx._SHAPES.clear()
    nx._SEEN.clear()
    read(data)
    assert not nx._SHAPES
    read(data)
    assert len(nx._SHAPES) == 1
    other = data.replace(b"z1", b"z22").replace(b'"1"', b'"333"')
    root = read(other)
    assert root.attr("message-id") == "333"
    assert root.children[0].children[1].children[0].children[0].children[0].text == "z22"
    assert nx._facts(root) == _expat(other)


def test_a_shape_keeps_its_namespaces_and_declaration() -> None:
    data = SHAPED[1]
    _learnt(data)
    assert _read_facts(data.replace(b"urn:x", b"urn:other")) == _expat(
        data.replace(b"urn:x", b"urn:other"))
    refused = data.replace(b"UTF-8", b"UTF-16")
    assert _read_facts(refused) == _expat(refused)
    assert _read_facts(refused)[0] == "refused"


def test_comments_and_references_keep_a_message_from_its_shape(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[bytes] = []
    real = nx._shape_of

    def shape_of(buf: bytes, parts: list[bytes], root: Element) -> Any:
        tried.append(buf)
        return real(buf, parts, root)

    monkeypatch.setattr(nx, "_shape_of", shape_of)
    for data in (SHAPED[3], b"<a><b>&lt;</b></a>", b"<a><b>\xc3\xa9</b></a>",
                 b"<a><!-- c --><b>1</b></a>"):
        nx._SHAPES.clear()
        nx._SEEN.clear()
        for _ in range(4):
            assert _read_facts(data) == _expat(data)
        assert not nx._SHAPES
    # only the plain ones (with comments) were tried, once each: no shape, and that is kept
    assert tried == [SHAPED[3], b"<a><!-- c --><b>1</b></a>"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_element(0, frozenset()), value=st.sampled_from(_VALUES))
def test_shapes_of_generated_documents_read_as_expat(doc: str, value: bytes) -> None:
    data = doc.encode()
    for _ in range(3):
        assert _read_facts(data) == _expat(data)
    other = _revalued(data, value)
    assert _read_facts(other) == _expat(other)
