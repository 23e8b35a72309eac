"""NETCONF list pagination (draft-ietf-netconf-list-pagination-nc): the ``list-pagination``
input of get, get-config and get-data, through a real SSH session (ncclient), with the
remaining annotation in the XML reply and each error as an rpc-error."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

from nfo.netconf.messages import NC_NS, NMDA_NS
from nfo.netconf.server import NetconfServer
from nfo.schema import Schema

from .test_interop import closed, nc, server  # noqa: F401

YANG = Path(__file__).parents[1] / "protocol" / "yang"
TEST_YANG = Path(__file__).parents[1] / "datastore" / "yang"
PT = "urn:nfo:paging-test"
LPGNC = "urn:ietf:params:xml:ns:yang:ietf-list-pagination-nc"
LPG = "urn:ietf:params:xml:ns:yang:ietf-list-pagination"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
NCX = f'xmlns="{NC_NS}"'
FILTER = f'<filter type="xpath" xmlns:p="{PT}" select="/p:members/p:member"/>'


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(extra_dirs=[TEST_YANG, YANG])


async def seed(srv: NetconfServer) -> None:
    members = [{"id": f"m{n}", "score": str(n % 4), "email": f"m{n}@x"} for n in range(6)]
    members[0]["numbers"] = [5, 4, 3]  # type: ignore[assignment]
    async with srv.ds.internal_session("seed") as s:
        await s.edit("running", json.dumps(
            {"nfo-paging-test:members": {"member": members}}), "json")


def paging(**params: str) -> str:
    kids = "".join(f"<{k.replace('_', '-')}>{v}</{k.replace('_', '-')}>"
                   for k, v in params.items())
    return f'<list-pagination xmlns="{LPGNC}" xmlns:p="{PT}">{kids}</list-pagination>'


async def call(m: Any, xml: str) -> ET.Element:
    r = await asyncio.to_thread(m.dispatch, to_ele(xml))
    return ET.fromstring(r.xml.encode())


def members(reply: ET.Element) -> list[ET.Element]:
    return list(reply.iter(f"{{{PT}}}member"))


def ids(reply: ET.Element) -> list[str]:
    return [str(e.findtext(f"{{{PT}}}id")) for e in members(reply)]


def remaining(reply: ET.Element) -> str | None:
    ms = members(reply)
    assert all(f"{{{LPG}}}remaining" not in e.attrib for e in ms[1:])
    return ms[0].get(f"{{{LPG}}}remaining") if ms else None


async def test_get_config_get_and_get_data(server: NetconfServer) -> None:  # noqa: F811
    await seed(server)
    m = await nc(server)
    try:
        r = await call(m, f"<get-config {NCX}><source><running/></source>{FILTER}"
                          f"{paging(limit='2', offset='1')}</get-config>")
        assert ids(r) == ["m1", "m2"] and remaining(r) == "3"
        r = await call(m, f"<get {NCX}>{FILTER}"
                          f"{paging(sort_by='p:score', direction='backwards', limit='3')}"
                          "</get>")
        assert ids(r) == ["m3", "m2", "m5"] and remaining(r) == "3"
        assert members(r)[0].get(f"{{{LPG}}}locale") == "C.UTF-8"
        r = await call(m, f'<get-data xmlns="{NMDA_NS}" xmlns:ds="{DS}">'
                          "<datastore>ds:running</datastore>"
                          f'<subtree-filter><members xmlns="{PT}"><member/></members>'
                          f"</subtree-filter>{paging(where='score &gt;= 2', sort_by='id')}"
                          "</get-data>")
        assert ids(r) == ["m2", "m3"] and remaining(r) is None
    finally:
        await closed(m)


async def test_leaf_list_and_sublist_limit(server: NetconfServer) -> None:  # noqa: F811
    await seed(server)
    m = await nc(server)
    try:
        sel = (f'<filter type="xpath" xmlns:p="{PT}" '
               "select=\"/p:members/p:member[p:id='m0']/p:numbers\"/>")
        r = await call(m, f"<get-config {NCX}><source><running/></source>{sel}"
                          f"{paging(sort_by='.', limit='2')}</get-config>")
        nums = list(r.iter(f"{{{PT}}}numbers"))
        assert [n.text for n in nums] == ["3", "4"] and nums[0].get(f"{{{LPG}}}remaining") == "1"
        r = await call(m, f"<get-config {NCX}><source><running/></source>{FILTER}"
                          f"{paging(sublist_limit='1', limit='1')}</get-config>")
        nums = list(r.iter(f"{{{PT}}}numbers"))
        assert [n.text for n in nums] == ["5"] and nums[0].get(f"{{{LPG}}}remaining") == "2"
    finally:
        await closed(m)


@pytest.mark.parametrize(("params", "tag", "app_tag"), [
    ({"offset": "7"}, "invalid-value", "ietf-list-pagination:offset-out-of-range"),
    ({"limit": "0"}, "invalid-value", None),
    ({"limit": "x"}, "invalid-value", None),
    ({"direction": "up"}, "invalid-value", None),
    ({"sort-by": "p:nosuch"}, "invalid-value", None),
    ({"where": "score &gt;"}, "invalid-value", None),
    ({"sort-by": "id", "locale": "de_DE"}, "invalid-value",
     "ietf-list-pagination:locale-unavailable"),
    ({"cursor": "abc"}, "operation-not-supported", None),
    ({"page": "2"}, "unknown-element", None),
])
async def test_errors(server: NetconfServer, params: dict[str, str], tag: str,  # noqa: F811
                      app_tag: str | None) -> None:
    await seed(server)
    m = await nc(server)
    try:
        with pytest.raises(RPCError) as e:
            await call(m, f"<get-config {NCX}><source><running/></source>{FILTER}"
                          f"{paging(**params)}</get-config>")
        assert e.value.tag == tag
        assert e.value.app_tag == app_tag
        with pytest.raises(RPCError) as e:  # no list to page: the whole datastore
            await call(m, f"<get-config {NCX}><source><running/></source>{paging(limit='1')}"
                          "</get-config>")
        assert e.value.tag == "operation-not-supported"
    finally:
        await closed(m)


async def test_capability_of_the_module(server: NetconfServer) -> None:  # noqa: F811
    m = await nc(server)
    try:
        caps = list(m.server_capabilities)
        assert any(c.startswith(f"{LPGNC}?module=ietf-list-pagination-nc") for c in caps)
        assert any(c.startswith(f"{LPG}?module=ietf-list-pagination") for c in caps)
    finally:
        await closed(m)
