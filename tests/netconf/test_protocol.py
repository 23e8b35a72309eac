"""NETCONF operations without a transport: request bytes in, reply bytes out.

Real libyang (nfo's modules plus nfo-test from the ``schema`` fixture) and a
fresh SQLite datastore per test (``ds``)."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nfo.datastore import Datastore, RpcCall
from nfo.errors import InvalidValue, TooBig
from nfo.netconf import filters
from nfo.netconf.filters import subtree_to_xpath
from nfo.netconf.messages import BASE_1_0, BASE_1_1, NC_NS, HelloError, client_hello, server_hello
from nfo.netconf.protocol import NetconfContext, handle
from nfo.wire import xml

NC = f"{{{NC_NS}}}"
T = "urn:nfo:test"


@pytest.fixture
async def ctx(ds: Datastore) -> AsyncIterator[NetconfContext]:
    s = ds.internal_session("alice")
    yield NetconfContext(s, ds.schema)
    await s.close()


async def call(ctx: NetconfContext, body: str, attrs: str = 'message-id="1"') -> ET.Element:
    raw = await handle(ctx, f'<rpc xmlns="{NC_NS}" {attrs}>{body}</rpc>'.encode())
    return ET.fromstring(raw)


def errors(reply: ET.Element) -> list[dict[str, str]]:
    out = []
    for e in reply.findall(f"{NC}rpc-error"):
        d = {c.tag.split("}")[1]: (c.text or "") for c in e}
        info = e.find(f"{NC}error-info")
        if info is not None:
            d.update({c.tag.split("}")[1]: c.text or "" for c in info})
        out.append(d)
    return out


def ok(reply: ET.Element) -> bool:
    return reply.find(f"{NC}ok") is not None


TOP = (f'<top xmlns="{T}" xmlns:t="{T}"><name>n1</name><colour>t:red</colour>'
       '<item><name>a</name><size>1</size></item><item><name>b</name><size>2</size></item>'
       '</top>')


def edit(config: str, target: str = "running", extra: str = "") -> str:
    return (f"<edit-config><target><{target}/></target>{extra}<config>{config}</config>"
            "</edit-config>")


def test_server_hello_capabilities(schema: object) -> None:
    from nfo.schema import Schema
    assert isinstance(schema, Schema)
    root = ET.fromstring(server_hello(schema, 7))
    caps = [c.text for c in root.iter(f"{NC}capability")]
    assert BASE_1_0 in caps and BASE_1_1 in caps
    assert "urn:ietf:params:netconf:capability:candidate:1.0" in caps
    assert ("urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit"
            "&also-supported=report-all,report-all-tagged,trim") in caps
    assert any(c and c.startswith("urn:nfo:test?module=nfo-test") for c in caps)
    # the content-id the YANG library data carries (RFC 8526 section 2)
    assert ("urn:ietf:params:netconf:capability:yang-library:1.1?"
            f"revision=2019-01-04&content-id={schema.content_id()}") in caps
    assert root.findtext(f"{NC}session-id") == "7"
    assert b"&amp;" in server_hello(schema, 7)


def test_client_hello() -> None:
    def hello(*caps: str, extra: str = "") -> bytes:
        c = "".join(f"<capability>{x}</capability>" for x in caps)
        return f'<hello xmlns="{NC_NS}"><capabilities>{c}</capabilities>{extra}</hello>'.encode()
    assert client_hello(hello(BASE_1_0, BASE_1_1))[0] == BASE_1_1
    assert client_hello(hello(BASE_1_0))[0] == BASE_1_0
    for bad in (hello("urn:x"), hello(BASE_1_1, extra="<session-id>1</session-id>"),
                b"<hello/>", b"<rpc/>", b"not xml",
                b'<!DOCTYPE x [<!ENTITY a "b">]><hello xmlns="' + NC_NS.encode() + b'"/>'):
        with pytest.raises(HelloError):
            client_hello(bad)


async def test_edit_and_get_config(ctx: NetconfContext) -> None:
    r = await call(ctx, edit(TOP), attrs='message-id="42" xmlns:x="urn:x" x:trace="t1"')
    assert ok(r), ET.tostring(r)
    assert r.get("message-id") == "42" and r.get("{urn:x}trace") == "t1"
    r = await call(ctx, "<get-config><source><running/></source></get-config>")
    data = r.find(f"{NC}data")
    assert data is not None
    top = data.find(f"{{{T}}}top")
    assert top is not None and top.findtext(f"{{{T}}}name") == "n1"
    assert (top.findtext(f"{{{T}}}colour") or "").endswith(":red")


async def test_subtree_filter(ctx: NetconfContext) -> None:
    assert ok(await call(ctx, edit(TOP)))
    flt = (f'<filter type="subtree"><top xmlns="{T}"><item><name>b</name></item></top>'
           "</filter>")
    r = await call(ctx, f"<get-config><source><running/></source>{flt}</get-config>")
    items = r.findall(f".//{{{T}}}item")
    assert [i.findtext(f"{{{T}}}name") for i in items] == ["b"]
    assert items[0].findtext(f"{{{T}}}size") == "2"
    assert r.find(f".//{{{T}}}name") is not None
    # selection node: only the name leaf of top
    flt = f'<filter type="subtree"><top xmlns="{T}"><name/></top></filter>'
    r = await call(ctx, f"<get-config><source><running/></source>{flt}</get-config>")
    assert r.find(f".//{{{T}}}item") is None
    assert r.findtext(f".//{{{T}}}name") == "n1"
    # empty filter selects nothing
    r = await call(ctx, '<get-config><source><running/></source><filter type="subtree"/>'
                        "</get-config>")
    data = r.find(f"{NC}data")
    assert data is not None and len(data) == 0


def test_subtree_to_xpath_shapes() -> None:
    f = xml.read(f'<filter xmlns:q="{T}"><q:top><q:item><q:name>it\'s</q:name><q:size/>'
                 "</q:item></q:top></filter>".encode())
    xp = subtree_to_xpath(f, lambda ns: "nfo-test" if ns == T else None)
    assert xp == ("/nfo-test:top/nfo-test:item[nfo-test:name=\"it's\"]/nfo-test:name | "
                  "/nfo-test:top/nfo-test:item[nfo-test:name=\"it's\"]/nfo-test:size")


def _module_of(ns: str) -> str | None:
    return "nfo-test" if ns == T else None


FILTER = (f'<filter xmlns:q="{T}"><q:top><q:item><q:name>{{}}</q:name><q:size/></q:item>'
          "<q:name>{}</q:name></q:top></filter>")


@pytest.mark.parametrize("values", [("a", "b"), ("it's", 'say "x"'), ("both ' and \"", " z "),
                                    ("{0}", "}{")])
def test_a_filter_of_a_known_shape_is_translated_as_a_new_one(values: tuple[str, str]) -> None:
    def translated(first: str, second: str) -> str | None:
        el = xml.read(FILTER.format(xml.escape(first), xml.escape(second)).encode())
        return subtree_to_xpath(el, _module_of)

    def fresh(first: str, second: str) -> str | None:
        filters._TEMPLATES.clear()
        return translated(first, second)

    translated("n1", "n2")  # the shape is known from here on
    assert translated(*values) == fresh(*values)
    assert "nfo-test:name=" in (translated(*values) or "")


def test_a_filter_of_a_known_shape_keeps_its_bound() -> None:
    def translated(value: str) -> str | None:
        return subtree_to_xpath(xml.read(FILTER.format(value, "x").encode()), _module_of)

    translated("short")
    with pytest.raises(TooBig):
        translated("v" * filters.MAX_FILTER)


def test_an_empty_filter_shape_selects_nothing() -> None:
    el = xml.read(b'<filter type="subtree"/>')
    assert subtree_to_xpath(el, _module_of) is None
    assert subtree_to_xpath(el, _module_of) is None


def test_unknown_namespaces_are_refused_whatever_the_shape() -> None:
    bad = xml.read(b'<filter><top xmlns="urn:nowhere"><a>1</a></top></filter>')
    for _ in range(2):
        with pytest.raises(InvalidValue):
            subtree_to_xpath(bad, _module_of)


async def test_xpath_filter_and_with_defaults(ctx: NetconfContext) -> None:
    assert ok(await call(ctx, edit(TOP)))
    base = '<get-config><source><running/></source><filter type="xpath" ' \
           'select="/nfo-test:top/nfo-test:name"/>{}</get-config>'
    r = await call(ctx, base.format(""))
    assert r.findtext(f".//{{{T}}}name") == "n1" and r.find(f".//{{{T}}}item") is None
    wd = ('<with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">'
          "{}</with-defaults>")
    r = await call(ctx, "<get-config><source><running/></source>"
                        f"{wd.format('report-all')}</get-config>")
    assert r.findtext(f".//{{{T}}}count") == "7"
    r = await call(ctx, "<get-config><source><running/></source></get-config>")
    assert r.find(f".//{{{T}}}count") is None
    r = await call(ctx, "<get-config><source><running/></source>"
                        f"{wd.format('bogus')}</get-config>")
    assert errors(r)[0]["error-tag"] == "invalid-value"


async def test_get_includes_state(ctx: NetconfContext) -> None:
    assert ok(await call(ctx, edit(TOP)))
    r = await call(ctx, "<get/>")
    assert r.findtext(f".//{{{T}}}name") == "n1"


async def test_invalid_edit_reports_libyang_reason(ctx: NetconfContext) -> None:
    bad = f'<top xmlns="{T}"><item><name>x</name><size>5000</size></item></top>'
    r = await call(ctx, edit(bad))
    [e] = errors(r)
    assert e["error-type"] == "application"
    assert e["error-app-tag"] == "size-too-big"
    assert "size must be below 1000" in e["error-message"]
    assert "error-path" in e
    assert e["error-severity"] == "error"
    # the error-path's prefixes are declared
    path_el = r.find(f".//{NC}error-path")
    assert path_el is not None


async def test_candidate_commit_and_discard(ctx: NetconfContext) -> None:
    assert ok(await call(ctx, edit(TOP, "candidate")))
    r = await call(ctx, "<get-config><source><running/></source></get-config>")
    assert r.find(f".//{{{T}}}top") is None
    assert ok(await call(ctx, "<commit/>"))
    r = await call(ctx, "<get-config><source><running/></source></get-config>")
    assert r.findtext(f".//{{{T}}}name") == "n1"
    assert ok(await call(ctx, edit(f'<top xmlns="{T}"><name>n2</name></top>', "candidate")))
    assert ok(await call(ctx, "<discard-changes/>"))
    r = await call(ctx, "<get-config><source><candidate/></source></get-config>")
    assert r.findtext(f".//{{{T}}}name") == "n1"


async def test_confirmed_commit_and_cancel(ctx: NetconfContext) -> None:
    assert ok(await call(ctx, edit(TOP, "candidate")))
    assert ok(await call(ctx, "<commit><confirmed/><confirm-timeout>60</confirm-timeout>"
                              "</commit>"))
    assert ok(await call(ctx, "<cancel-commit/>"))
    r = await call(ctx, "<get-config><source><running/></source></get-config>")
    assert r.find(f".//{{{T}}}top") is None


async def test_copy_delete_validate(ctx: NetconfContext) -> None:
    assert ok(await call(ctx, edit(TOP)))
    assert ok(await call(ctx, "<copy-config><target><startup/></target><source><running/>"
                              "</source></copy-config>"))
    r = await call(ctx, "<get-config><source><startup/></source></get-config>")
    assert r.findtext(f".//{{{T}}}name") == "n1"
    assert ok(await call(ctx, "<delete-config><target><startup/></target></delete-config>"))
    r = await call(ctx, "<get-config><source><startup/></source></get-config>")
    assert r.find(f".//{{{T}}}top") is None
    assert ok(await call(ctx, "<validate><source><running/></source></validate>"))
    bad = f'<top xmlns="{T}"><item><name>x</name><size>5000</size></item></top>'
    r = await call(ctx, f"<validate><source><config>{bad}</config></source></validate>")
    assert errors(r)[0]["error-app-tag"] == "size-too-big"
    r = await call(ctx, "<delete-config><target><running/></target></delete-config>")
    assert errors(r)[0]["error-tag"] == "operation-not-supported"


async def test_locks_between_sessions(ds: Datastore, ctx: NetconfContext) -> None:
    other = NetconfContext(ds.internal_session("bob"), ds.schema)
    try:
        assert ok(await call(ctx, "<lock><target><running/></target></lock>"))
        r = await call(other, "<lock><target><running/></target></lock>")
        [e] = errors(r)
        assert e["error-tag"] == "lock-denied" and e["error-type"] == "protocol"
        assert e["session-id"] == str(ctx.session.id)
        r = await call(other, edit(TOP))
        assert errors(r)[0]["error-tag"] == "in-use"
        assert ok(await call(other, f"<kill-session><session-id>{ctx.session.id}</session-id>"
                                    "</kill-session>"))
        assert ok(await call(other, "<lock><target><running/></target></lock>"))
        assert ok(await call(other, "<unlock><target><running/></target></unlock>"))
    finally:
        await other.session.close()


async def test_envelope_errors(ctx: NetconfContext) -> None:
    r = await call(ctx, "<frobnicate/>")
    assert errors(r)[0]["error-tag"] == "operation-not-supported"
    r = await call(ctx, '<frob xmlns="urn:unknown"/>')
    assert errors(r)[0]["error-tag"] == "operation-not-supported"
    r = ET.fromstring(await handle(ctx, b"<rpc message-id='1'><get/"))
    assert errors(r)[0]["error-tag"] == "malformed-message"
    r = ET.fromstring(await handle(
        ctx, b'<!DOCTYPE r [<!ENTITY x "y">]><rpc message-id="1" xmlns="' + NC_NS.encode()
        + b'"><get/></rpc>'))
    assert errors(r)[0]["error-tag"] == "malformed-message"
    r = await call(ctx, "<get/>", attrs="")
    e = errors(r)[0]
    assert e["error-tag"] == "missing-attribute" and e["bad-attribute"] == "message-id"
    assert ok(await call(ctx, "<close-session/>")) and ctx.close_requested


async def test_yang_rpc(ds: Datastore, ctx: NetconfContext) -> None:
    async def echo(call_: RpcCall) -> dict[str, str]:
        node = call_.tree.node("/nfo-test:ping/msg")
        return {"echo": str(node.value if node is not None else None)}
    ds.register_rpc("/nfo-test:ping", echo)
    r = await call(ctx, f'<ping xmlns="{T}"><msg>hi</msg></ping>')
    assert r.findtext(f"{{{T}}}echo") == "hi", ET.tostring(r)
    r = await call(ctx, f'<ping xmlns="{T}"/>')
    assert errors(r)


async def test_get_schema(ctx: NetconfContext) -> None:
    r = await call(ctx, '<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring">'
                        "<identifier>nfo-test</identifier></get-schema>")
    assert "module nfo-test" in (r.findtext(
        "{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}data") or "")


async def test_action(ds: Datastore, ctx: NetconfContext) -> None:
    catalog = (Path(__file__).parents[2] / "yang"
               / "nfo-demo-catalog.json").read_text()
    await ctx.session.edit("running", catalog, "json")
    inst = ('<nf-instances xmlns="urn:nfo:instances"><nf-instance><name>e1</name>'
            "<descriptor>udp-echo</descriptor><parameter><name>port</name><value>7000</value>"
            "</parameter></nf-instance></nf-instances>")
    assert ok(await call(ctx, edit(inst)))
    seen: list[str | None] = []

    async def restart(call_: RpcCall) -> None:
        seen.append(call_.parent_path)
    ds.register_rpc("/nfo-instances:nf-instances/nf-instance/restart", restart)
    act = ('<action xmlns="urn:ietf:params:xml:ns:yang:1"><nf-instances xmlns="urn:nfo:instances">'
           "<nf-instance><name>{}</name><restart/></nf-instance></nf-instances></action>")
    r = await call(ctx, act.format("e1"))
    assert ok(r), ET.tostring(r)
    assert len(seen) == 1
    r = await call(ctx, act.format("nope"))
    assert errors(r)[0]["error-tag"] == "data-missing"


# -- RFC 8526 get-data through the shared read path --------------------------------------

NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"


def get_data(ds: str, extra: str = "") -> str:
    return (f'<get-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:{ds}</datastore>'
            f"{extra}</get-data>")


async def test_max_depth_counts_from_the_selected_nodes(ctx: NetconfContext) -> None:
    """RFC 8526 section 3.1.1: max-depth 1 is the nodes the filter selects, without their
    children (nfo used to count from the top-level nodes)."""
    assert ok(await call(ctx, edit(TOP)))
    flt = f'<subtree-filter><top xmlns="{T}"><item><name>b</name></item></top></subtree-filter>'
    r = await call(ctx, get_data("running", flt + "<max-depth>1</max-depth>"))
    items = r.findall(f".//{{{T}}}item")
    assert [i.findtext(f"{{{T}}}name") for i in items] == ["b"], ET.tostring(r)
    assert r.find(f".//{{{T}}}size") is None
    r = await call(ctx, get_data("running", flt + "<max-depth>2</max-depth>"))
    assert [e.text for e in r.iter(f"{{{T}}}size")] == ["2"], ET.tostring(r)
    # without a filter, level 1 is the top-level nodes: an empty <top/>
    r = await call(ctx, get_data("running", "<max-depth>1</max-depth>"))
    top = r.find(f".//{{{T}}}top")
    assert top is not None and len(top) == 0


async def test_get_data_on_intended(ctx: NetconfContext) -> None:
    """ietf-datastores:intended is readable, served from running (as over RESTCONF)."""
    assert ok(await call(ctx, edit(TOP)))
    r = await call(ctx, get_data("intended"))
    assert r.findtext(f".//{{{T}}}name") == "n1", ET.tostring(r)
    assert [e.text for e in r.iter(f"{{{T}}}size")] == ["1", "2"]
    r = await call(ctx, get_data("intended", "<with-origin/>"))
    assert errors(r)[0]["error-tag"] == "invalid-value"
    r = await call(ctx, f'<edit-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:intended'
                        f'</datastore><config>{TOP}</config></edit-data>')
    assert errors(r)[0]["error-tag"] == "invalid-value"


async def test_error_path_is_a_prefixed_instance_identifier(ctx: NetconfContext) -> None:
    """RFC 7950 section 9.13.2: every node name of error-path carries a prefix declared
    in the reply (nfo used to leave names after the first of a module unprefixed)."""
    bad = f'<top xmlns="{T}"><item><name>x</name><size>5000</size></item></top>'
    raw = await handle(ctx, f'<rpc xmlns="{NC_NS}" message-id="1">{edit(bad)}</rpc>'.encode())
    declared = {p: uri for _, (p, uri) in ET.iterparse(io.BytesIO(raw), events=("start-ns",))}
    path = ET.fromstring(raw).findtext(f".//{NC}error-path")
    assert path, raw
    names = re.findall(r"(?:^|[/\[])\s*([^/\[\]=\s]+)", re.sub(r"'[^']*'", "''", path))
    assert len(names) == 4, path  # top, item, its key name, size
    for name in names:
        prefix, colon, _ = name.partition(":")
        assert colon, f"{name!r} in {path!r} has no prefix"
        assert declared.get(prefix) == T, (prefix, declared)


async def test_utf16_doctype_refused(ctx: NetconfContext) -> None:
    """A DOCTYPE in UTF-16 (which a byte pattern for ASCII cannot see) is refused, and so
    is UTF-16 itself (RFC 6241 section 3)."""
    doc = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE rpc [<!ENTITY x "y">]>'
           f'<rpc xmlns="{NC_NS}" message-id="1"><get/></rpc>')
    for data in (doc.encode("utf-16"), doc.encode("utf-16-le"), doc.encode("utf-16-be")):
        r = ET.fromstring(await handle(ctx, data))
        assert errors(r)[0]["error-tag"] == "malformed-message"
        assert errors(r)[0]["error-type"] == "rpc"
    assert ctx.in_bad_rpcs == 3
