"""Inline <config> handed to libyang as the client wrote it: what each request stores.

``handle`` parses each message once; an inline ``<config>`` is only scanned, and
its children are cut from the request bytes (each given the namespace
declarations in scope) for libyang.  For every shape of request (comments,
CDATA, processing instructions, whitespace, prefixes declared on rpc, config or
the child, references, non-ASCII text) the edit must store exactly the data the
request means, and what is refused must be refused with its error-tag.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nfo.datastore import Datastore
from nfo.netconf.messages import NC_NS
from nfo.netconf.protocol import NetconfContext, handle

T = "urn:nfo:test"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
YANG = "urn:ietf:params:xml:ns:yang:1"


def edit_config(config: str, rpc_attrs: str = "", config_attrs: str = "",
                prefix: str = "") -> str:
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{NC_NS}"' if prefix else f'xmlns="{NC_NS}"'
    return (f'<{p}rpc {xmlns} message-id="1" {rpc_attrs}><{p}edit-config><{p}target>'
            f'<{p}running/></{p}target><{p}config {config_attrs}>{config}</{p}config>'
            f'<{p}default-operation>merge</{p}default-operation></{p}edit-config></{p}rpc>')


def top(**content: Any) -> dict[str, Any]:
    return {"nfo-test:top": content}


ITEMS = top(item=[{"name": "a"}, {"name": "b"}])
INSERT_SEED = top(tags=["x"], item=[{"name": "a/>"}])

# name -> (request, data stored before it or None, running afterwards or the error-tag)
CASES: dict[str, tuple[str, dict[str, Any] | None, dict[str, Any] | str]] = {
    "plain": (
        edit_config(f'<top xmlns="{T}"><name>a</name><item><name>i1</name></item></top>'),
        None, top(name="a", item=[{"name": "i1"}])),
    "operation prefix on rpc": (
        edit_config(f'<top xmlns="{T}"><item nc:operation="delete"><name>a</name></item></top>',
                    f'xmlns:nc="{NC_NS}"'),
        ITEMS, top(item=[{"name": "b"}])),
    "all prefixed": (
        edit_config(f'<t:top xmlns:t="{T}"><t:colour>t:red</t:colour></t:top>', prefix="nc"),
        None, top(colour="nfo-test:red")),
    "value prefix on rpc": (
        edit_config(f'<top xmlns="{T}"><colour>t:blue</colour></top>', f'xmlns:t="{T}"'),
        None, top(colour="nfo-test:blue")),
    "child redeclares a prefix": (
        edit_config(f'<top xmlns="{T}" xmlns:t="{T}"><colour>t:red</colour></top>',
                    'xmlns:t="urn:elsewhere"'),
        None, top(colour="nfo-test:red")),
    "prefix declared on config": (
        edit_config('<t:top><t:name>x</t:name></t:top>', config_attrs=f'xmlns:t="{T}"'),
        None, top(name="x")),
    "unprefixed identityref in the default namespace": (
        edit_config(f'<top xmlns="{T}"><colour>red</colour></top>'),
        None, top(colour="nfo-test:red")),
    "default namespace from rpc": (
        edit_config("<top><name>x</name></top>"), None, "unknown-element"),
    "several children, whitespace": (
        edit_config(f'\n  <top xmlns="{T}">\n    <name>n</name>\n  </top>\n  '
                    f'<top xmlns="{T}"><sorted>3</sorted></top>\n'),
        None, top(name="n", sorted=[3])),
    "insert attributes": (
        edit_config(f'<top xmlns="{T}"><tags yang:insert="first">z</tags>'
                    f'<item yang:insert="after" yang:key="[t:name=\'a/>\']"><name>b</name>'
                    "</item></top>", f'xmlns:yang="{YANG}" xmlns:t="{T}"'),
        INSERT_SEED, top(tags=["z", "x"], item=[{"name": "a/>"}, {"name": "b"}])),
    "references": (
        edit_config(f'<top xmlns="{T}"><name>a&amp;b&#x41;&lt;&gt;&quot;</name></top>'),
        None, top(name='a&bA<>"')),
    "attribute with markup characters": (
        edit_config(f'<top xmlns="{T}"><item nc:operation="merge" yang:key="a>b/>c"><name>q'
                    '</name></item></top>', f'xmlns:nc="{NC_NS}" xmlns:yang="{YANG}"'),
        None, "invalid-value"),
    "self-closing": (
        edit_config(f'<top xmlns="{T}"/><top xmlns="{T}"><extra/></top>'),
        None, top(extra={})),
    "non-ascii": (
        edit_config(f'<top xmlns="{T}"><name>é∑𝄞</name></top>'), None, top(name="é∑𝄞")),
    "xml declaration": (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + edit_config(f'<top xmlns="{T}"><name>d</name></top>'), None, top(name="d")),
    "unknown element": (
        edit_config('<nothing xmlns="urn:nowhere"><x>1</x></nothing>'), None,
        "unknown-element"),
    "edit-data": (
        f'<rpc xmlns="{NC_NS}" message-id="1"><edit-data xmlns="{NMDA}" '
        'xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">'
        f'<datastore>ds:running</datastore><config><top xmlns="{T}"><name>e</name></top>'
        '</config></edit-data></rpc>', None, top(name="e")),
    "copy-config": (
        f'<rpc xmlns="{NC_NS}" message-id="1"><copy-config><target><running/></target>'
        f'<source><config><top xmlns="{T}"><name>c</name></top></config></source>'
        '</copy-config></rpc>', ITEMS, top(name="c")),
    "comment": (
        edit_config(f'<!-- a --><top xmlns="{T}"><!-- c --><name>a</name></top><!-- z -->'),
        None, top(name="a")),
    "cdata": (
        edit_config(f'<top xmlns="{T}"><name><![CDATA[a<b]]></name></top>'),
        None, top(name="a<b")),
    "processing instructions": (
        edit_config(f'<?before x?><top xmlns="{T}"><?inside y?><name>p</name></top><?after?>'),
        None, top(name="p")),
    # RFC 6241 section 3: UTF-8 only (ElementTree used to accept these)
    "latin-1": (
        '<?xml version="1.0" encoding="ISO-8859-1"?>'
        + edit_config(f'<top xmlns="{T}"><name>a</name></top>'), None, "malformed-message"),
    "utf-16": (
        "\ufeff" + edit_config(f'<top xmlns="{T}"><name>a</name></top>'), None,
        "malformed-message"),
    # text directly inside <config> (was dropped silently)
    "text beside children": (
        edit_config(f'stray<top xmlns="{T}"><name>a</name></top>'), None, "malformed-message"),
    "no-break space beside children": (
        edit_config(f'\u00a0<top xmlns="{T}"><name>a</name></top>'), None,
        "malformed-message"),
}


def encoded(doc: str) -> bytes:
    if doc.startswith("\ufeff"):
        return doc[1:].encode("utf-16")  # with its byte-order mark
    return doc.encode("latin-1" if "ISO-8859-1" in doc else "utf-8")


def running(ds: Datastore) -> dict[str, Any]:
    with ds.get("running") as t:
        return dict(json.loads(t.print("json") or "{}"))


@pytest.mark.parametrize("name", sorted(CASES))
async def test_inline_config_stores_what_it_means(ds: Datastore, ctx: NetconfContext,
                                                  name: str) -> None:
    doc, seed, want = CASES[name]
    if seed is not None:
        await ctx.session.edit("running", json.dumps(seed), "json")
    reply = await handle(ctx, encoded(doc))
    if isinstance(want, str):
        assert re.search(rb"<error-tag>(.*?)</error-tag>", reply).group(1).decode() == want, (
            reply)
        assert running(ds) == (seed or {})
    else:
        assert b"<ok/>" in reply, reply
        assert running(ds) == want


async def test_edit_config_through_handle(ctx: NetconfContext) -> None:
    rpc = edit_config(f'<top xmlns="{T}"><item nc:operation="create"><name>h</name></item>'
                      f'<colour>t:blue</colour></top>', f'xmlns:nc="{NC_NS}" xmlns:t="{T}"')
    assert b"<ok/>" in await handle(ctx, rpc.encode())
    again = await handle(ctx, rpc.encode())
    assert b"data-exists" in again
    with ctx.session.datastore.get("running") as t:
        out = t.print("json")
    assert '"nfo-test:blue"' in out and '"h"' in out


@pytest.fixture
async def ctx(ds: Datastore) -> AsyncIterator[NetconfContext]:
    s = ds.internal_session("alice")
    yield NetconfContext(s, ds.schema)
    await s.close()
