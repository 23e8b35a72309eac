"""RFC 8526 get-data and edit-data, sent as raw RPCs through ncclient."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

from nfo.netconf.messages import NMDA_NS
from nfo.netconf.server import NetconfServer

from .test_interop import closed, nc, server  # noqa: F401

T = "urn:nfo:test"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
OR = "urn:ietf:params:xml:ns:yang:ietf-origin"


def get_data(ds: str, extra: str = "") -> str:
    return (f'<get-data xmlns="{NMDA_NS}" xmlns:ds="{DS}"><datastore>ds:{ds}</datastore>'
            f"{extra}</get-data>")


def edit_data(ds: str, config: str, extra: str = "") -> str:
    return (f'<edit-data xmlns="{NMDA_NS}" xmlns:ds="{DS}"><datastore>ds:{ds}</datastore>'
            f"{extra}<config>{config}</config></edit-data>")


TOP = (f'<top xmlns="{T}"><name>a</name><item><name>i1</name><size>5</size></item>'
       "</top>")


async def call(m: Any, xml: str) -> ET.Element:
    r = await asyncio.to_thread(m.dispatch, to_ele(xml))
    return ET.fromstring(r.xml.encode())


def data(reply: ET.Element) -> ET.Element:
    d = reply.find(f"{{{NMDA_NS}}}data")
    assert d is not None, ET.tostring(reply)
    return d


def texts(el: ET.Element, name: str) -> list[str]:
    return [str(e.text) for e in el.iter(f"{{{T}}}{name}")]


async def test_edit_data_and_get_data(server: NetconfServer) -> None:  # noqa: F811
    m = await nc(server)
    try:
        r = await call(m, edit_data("running", TOP))
        assert r.find("{urn:ietf:params:xml:ns:netconf:base:1.0}ok") is not None
        d = data(await call(m, get_data("running")))
        assert texts(d, "name") == ["a", "i1"]
        # candidate with default-operation replace, running unchanged until commit
        await call(m, edit_data("candidate", f'<top xmlns="{T}"><name>b</name></top>',
                                "<default-operation>replace</default-operation>"))
        assert texts(data(await call(m, get_data("candidate"))), "name") == ["b"]
        assert texts(data(await call(m, get_data("running"))), "name") == ["a", "i1"]
        await asyncio.to_thread(m.discard_changes)
        # filters
        d = data(await call(m, get_data(
            "running", f'<xpath-filter xmlns:x="{T}">/x:top/x:item</xpath-filter>')))
        assert texts(d, "size") == ["5"] and "a" not in texts(d, "name")
        d = data(await call(m, get_data(
            "running", f'<subtree-filter><top xmlns="{T}"><name/></top></subtree-filter>')))
        assert texts(d, "name") == ["a"] and not texts(d, "size")
    finally:
        await closed(m)


async def test_operational_filters_depth_origin(server: NetconfServer) -> None:  # noqa: F811
    s = server.ds.internal_session("drv")
    await s.edit("running", '{"nfo-test:top": {"name": "a", "item": [{"name": "i1", '
                 '"size": 5}]}}', "json")
    s.set_oper('{"nfo-test:top": {"state": {"up": true}}}', "json")
    await s.close()
    m = await nc(server)
    try:
        flt = f'<subtree-filter><top xmlns="{T}"/></subtree-filter>'
        d = data(await call(m, get_data("operational", flt)))
        assert texts(d, "up") == ["true"] and "a" in texts(d, "name")
        d = data(await call(m, get_data("operational", flt +
                                        "<config-filter>false</config-filter>")))
        assert texts(d, "up") == ["true"] and not texts(d, "size")
        assert "a" not in texts(d, "name")
        d = data(await call(m, get_data("operational", flt +
                                        "<config-filter>true</config-filter>")))
        assert not texts(d, "up") and texts(d, "size") == ["5"]
        d = data(await call(m, get_data("running", flt + "<max-depth>2</max-depth>")))
        assert texts(d, "name") == ["a", "i1"] and not texts(d, "size")
        d = data(await call(m, get_data("running", flt + "<max-depth>1</max-depth>")))
        assert d.find(f"{{{T}}}top") is not None and not texts(d, "name")
        d = data(await call(m, get_data("operational", flt + "<with-origin/>")))
        origins = {v for e in d.iter() for k, v in e.attrib.items() if k == f"{{{OR}}}origin"}
        assert origins, ET.tostring(d)
    finally:
        await closed(m)


async def test_nmda_errors(server: NetconfServer) -> None:  # noqa: F811
    m = await nc(server)
    try:
        with pytest.raises(RPCError):
            await call(m, get_data("running", "<with-origin/>"))
        with pytest.raises(RPCError):
            await call(m, get_data("nope"))
        with pytest.raises(RPCError):
            await call(m, edit_data("operational", TOP))
        with pytest.raises(RPCError):
            await call(m, get_data("running", "<max-depth>0</max-depth>"))
    finally:
        await closed(m)


async def test_origin_filters(server: NetconfServer) -> None:  # noqa: F811
    s = server.ds.internal_session("drv")
    await s.edit("running", '{"nfo-test:top": {"name": "a", "item": [{"name": "i1", '
                 '"size": 5}]}}', "json")
    s.set_oper('{"nfo-test:top": {"state": {"up": true}}}', "json")
    await s.close()
    m = await nc(server)
    flt = f'<subtree-filter><top xmlns="{T}"/></subtree-filter>'

    def origin(kind: str, *names: str) -> str:
        return "".join(f'<{kind} xmlns:or="{OR}">or:{n}</{kind}>' for n in names)

    def origins(d: ET.Element) -> set[str]:
        return {v for e in d.iter() for k, v in e.attrib.items() if k == f"{{{OR}}}origin"}

    try:
        # learned only: the pushed state and the structure above it, no config leaves
        d = data(await call(m, get_data("operational", flt + origin("origin-filter", "learned"))))
        assert texts(d, "up") == ["true"] and not texts(d, "size"), ET.tostring(d)
        assert not origins(d)  # no annotations unless with-origin is asked for
        # intended: the configuration, not the state, and not the defaults
        d = data(await call(m, get_data("operational", flt + origin("origin-filter", "intended")
                                        + "<with-origin/>")))
        assert texts(d, "size") == ["5"] and not texts(d, "up") and not texts(d, "level")
        assert "or:learned" not in origins(d) and "or:default" not in origins(d)
        # negated: everything but intended
        d = data(await call(m, get_data("operational",
                                        flt + origin("negated-origin-filter", "intended"))))
        assert texts(d, "up") == ["true"] and not texts(d, "size")
        # several values, and the base identity selects everything
        d = data(await call(m, get_data("operational",
                                        flt + origin("origin-filter", "intended", "learned"))))
        assert texts(d, "up") == ["true"] and texts(d, "size") == ["5"]
        d = data(await call(m, get_data("operational", flt + origin("origin-filter", "origin"))))
        assert texts(d, "up") == ["true"] and texts(d, "size") == ["5"]
        # refused: both kinds, a config datastore, a foreign identity
        for bad in (get_data("operational", origin("origin-filter", "learned")
                             + origin("negated-origin-filter", "intended")),
                    get_data("running", origin("origin-filter", "learned")),
                    get_data("operational", "<origin-filter>nfo-test:x</origin-filter>")):
            with pytest.raises(RPCError) as ei:
                await call(m, bad)
            assert ei.value.tag == "invalid-value"
    finally:
        await closed(m)
