"""Inline <config> handed to libyang as the client wrote it, against ElementTree's copy.

``protocol._raw_children`` cuts the children of an inline ``<config>`` out of the
request bytes (declaring on each the namespaces it relied on) instead of
re-serializing them with ElementTree.  Differential: for each request, libyang must
parse both texts into the same data, metadata included, or refuse both alike.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from nfo.errors import NfoError
from nfo.netconf import protocol
from nfo.netconf.protocol import NC_NS, NetconfContext, handle
from nfo.schema import Schema, Tree
from nfo.schema.ly import lib

T = "urn:nfo:test"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
YANG = "urn:ietf:params:xml:ns:yang:1"
_PARSE_EDIT = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE


def edit_config(config: str, rpc_attrs: str = "", config_attrs: str = "",
                prefix: str = "") -> str:
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{NC_NS}"' if prefix else f'xmlns="{NC_NS}"'
    return (f'<{p}rpc {xmlns} message-id="1" {rpc_attrs}><{p}edit-config><{p}target>'
            f'<{p}running/></{p}target><{p}config {config_attrs}>{config}</{p}config>'
            f'<{p}default-operation>merge</{p}default-operation></{p}edit-config></{p}rpc>')


RAW = {
    "plain": edit_config(f'<top xmlns="{T}"><name>a</name><item><name>i1</name></item></top>'),
    "operation prefix on rpc": edit_config(
        f'<top xmlns="{T}"><item nc:operation="delete"><name>a</name></item></top>',
        f'xmlns:nc="{NC_NS}"'),
    "all prefixed": edit_config(
        f'<t:top xmlns:t="{T}"><t:colour>t:red</t:colour></t:top>', prefix="nc"),
    "value prefix on rpc": edit_config(
        f'<top xmlns="{T}"><colour>t:blue</colour></top>', f'xmlns:t="{T}"'),
    "child redeclares a prefix": edit_config(
        f'<top xmlns="{T}" xmlns:t="{T}"><colour>t:red</colour></top>',
        'xmlns:t="urn:elsewhere"'),
    "prefix declared on config": edit_config(
        '<t:top><t:name>x</t:name></t:top>', config_attrs=f'xmlns:t="{T}"'),
    "default namespace from rpc": edit_config("<top><name>x</name></top>"),
    "several children, whitespace": edit_config(
        f'\n  <top xmlns="{T}">\n    <name>n</name>\n  </top>\n  '
        f'<top xmlns="{T}"><sorted>3</sorted></top>\n'),
    "insert attributes": edit_config(
        f'<top xmlns="{T}"><tags yang:insert="first">z</tags>'
        f'<item yang:insert="after" yang:key="[t:name=\'a/>\']"><name>b</name></item></top>',
        f'xmlns:yang="{YANG}" xmlns:t="{T}"'),
    "references": edit_config(
        f'<top xmlns="{T}"><name>a&amp;b&#x41;&lt;&gt;&quot;</name></top>'),
    "attribute with markup characters": edit_config(
        f'<top xmlns="{T}"><item nc:operation="merge" yang:key="a>b/>c"><name>q</name>'
        f'</item></top>', f'xmlns:nc="{NC_NS}" xmlns:yang="{YANG}"'),
    "self-closing": edit_config(f'<top xmlns="{T}"/><top xmlns="{T}"><extra/></top>'),
    "non-ascii": edit_config(f'<top xmlns="{T}"><name>é∑𝄞</name></top>'),
    "xml declaration": '<?xml version="1.0" encoding="UTF-8"?>\n' + edit_config(
        f'<top xmlns="{T}"><name>d</name></top>'),
    "unknown element": edit_config('<nothing xmlns="urn:nowhere"><x>1</x></nothing>'),
    "edit-data": (
        f'<rpc xmlns="{NC_NS}" message-id="1"><edit-data xmlns="{NMDA}" '
        'xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">'
        f'<datastore>ds:running</datastore><config><top xmlns="{T}"><name>e</name></top>'
        '</config></edit-data></rpc>'),
    "copy-config": (
        f'<rpc xmlns="{NC_NS}" message-id="1"><copy-config><target><running/></target>'
        f'<source><config><top xmlns="{T}"><name>c</name></top></config></source>'
        '</copy-config></rpc>'),
}
FALLBACK = {
    "comment": edit_config(f'<top xmlns="{T}"><!-- c --><name>a</name></top>'),
    "cdata": edit_config(f'<top xmlns="{T}"><name><![CDATA[a<b]]></name></top>'),
    "text beside children": edit_config(f'stray<top xmlns="{T}"><name>a</name></top>'),
    "no-break space beside children": edit_config(
        f'\u00a0<top xmlns="{T}"><name>a</name></top>'),
    "latin-1": '<?xml version="1.0" encoding="ISO-8859-1"?>' + edit_config(
        f'<top xmlns="{T}"><name>a</name></top>'),
}


def _config_of(root: ET.Element) -> ET.Element:
    for el in root.iter():
        if el.tag.endswith("}config"):
            return el
    raise AssertionError("no config element")


def _libyang(schema: Schema, text: str) -> Any:
    ctx = schema.ctx.cdata if hasattr(schema.ctx, "cdata") else schema.ctx
    try:
        with Tree.parse(ctx, text, "xml", parse_opts=_PARSE_EDIT) as t:
            return t.print("json")
    except NfoError as e:
        return ("refused", type(e).__name__)


def _texts(doc: str) -> tuple[str, str | None]:
    data = doc.encode("latin-1" if "ISO-8859-1" in doc else "utf-8")
    root, prefixes = protocol._parse(data)
    config = _config_of(root)
    old = "".join(protocol._serialize(c, prefixes) for c in config)
    token = protocol._REQUEST.set([data, root])
    try:
        return old, protocol._raw_children(config, prefixes)
    finally:
        protocol._REQUEST.reset(token)


@pytest.mark.parametrize("name", sorted(RAW))
def test_raw_config_parses_as_the_copy(schema: Schema, name: str) -> None:
    old, raw = _texts(RAW[name])
    assert raw is not None
    assert _libyang(schema, raw) == _libyang(schema, old)


def test_unprefixed_identityref_takes_the_default_namespace(schema: Schema) -> None:
    """RFC 7950 section 9.10.3: an identityref value without a prefix is in the default
    namespace in effect.  ElementTree's copy loses that namespace (it prefixes every
    element), so libyang refused the value; the raw text keeps it."""
    old, raw = _texts(edit_config(f'<top xmlns="{T}"><colour>red</colour></top>'))
    assert raw is not None
    assert _libyang(schema, raw) == '{"nfo-test:top":{"colour":"nfo-test:red"}}'
    assert _libyang(schema, old) == ("refused", "InvalidValue")


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_fallback_to_the_copy(schema: Schema, name: str) -> None:
    _, raw = _texts(FALLBACK[name])
    assert raw is None


def test_raw_config_needs_the_request() -> None:
    root, prefixes = protocol._parse(RAW["plain"].encode())
    assert protocol._raw_children(_config_of(root), prefixes) is None


async def test_edit_config_through_handle(ctx: NetconfContext) -> None:
    rpc = edit_config(f'<top xmlns="{T}"><item nc:operation="create"><name>h</name></item>'
                      f'<colour>t:blue</colour></top>', f'xmlns:nc="{NC_NS}" xmlns:t="{T}"')
    assert b"<ok/>" in await handle(ctx, rpc.encode())
    again = await handle(ctx, rpc.encode())
    assert b"data-exists" in again
    with ctx.session.datastore.get("running") as t:
        out = t.print("json")
    assert '"nfo-test:blue"' in out and '"h"' in out
    assert protocol._REQUEST.get() is None


@pytest.fixture
async def ctx(ds: Any) -> Any:
    s = ds.session("alice")
    yield NetconfContext(s, ds.schema)
    await s.close()
