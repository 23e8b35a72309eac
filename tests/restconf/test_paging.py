"""RESTCONF list pagination (draft-ietf-netconf-list-pagination-rc) over a real uvicorn
server and httpx: the query parameters on list and leaf-list resources, the remaining
annotation in JSON and XML, each error's status and error-app-tag, the capabilities."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from nfo.datastore import Datastore
from nfo.schema import Schema

from .conftest import Server

YANG = Path(__file__).parents[1] / "protocol" / "yang"
TEST_YANG = Path(__file__).parents[1] / "datastore" / "yang"
LIST = "/restconf/data/nfo-paging-test:members/member"
REM = "ietf-list-pagination:remaining"
XML = "application/yang-data+xml"
PT = "urn:nfo:paging-test"
LPG = "urn:ietf:params:xml:ns:yang:ietf-list-pagination"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(extra_dirs=[TEST_YANG, YANG])


async def seed(ds: Datastore) -> None:
    members = [{"id": f"m{n:02}", "score": f"{(n * 7) % 10}.5", "email": f"m{n}@x"}
               for n in range(12)]
    members[3]["numbers"] = [9, 8, 7]  # type: ignore[assignment]
    async with ds.internal_session("seed") as s:
        await s.edit("running", json.dumps(
            {"nfo-paging-test:members": {"member": members}}), "json")


def members(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    got: list[dict[str, Any]] = r.json()["nfo-paging-test:member"]
    return got


def error(r: httpx.Response, status: int, tag: str, app_tag: str | None = None) -> None:
    assert r.status_code == status, r.text
    e = r.json()["ietf-restconf:errors"]["error"][0]
    assert e["error-tag"] == tag, e
    assert e.get("error-app-tag") == app_tag, e


async def test_limit_offset_direction(server: Server, client: httpx.AsyncClient) -> None:
    await seed(server.ds)
    got = members(await client.get(LIST, params={"limit": "3"}))
    assert [m["id"] for m in got] == ["m00", "m01", "m02"]
    assert got[0]["@"] == {REM: 9} and "@" not in got[1]
    got = members(await client.get(LIST, params={"offset": "10"}))
    assert [m["id"] for m in got] == ["m10", "m11"] and "@" not in got[0]
    got = members(await client.get(LIST, params={"direction": "backwards", "limit": "2",
                                                 "offset": "1"}))
    assert [m["id"] for m in got] == ["m10", "m09"] and got[0]["@"] == {REM: 9}
    r = await client.get(LIST, params={"offset": "12"})
    assert r.status_code == 200 and r.json() == {"nfo-paging-test:member": []}


async def test_sort_by_where_and_fields(server: Server, client: httpx.AsyncClient) -> None:
    await seed(server.ds)
    got = members(await client.get(LIST, params={"sort-by": "score", "limit": "4",
                                                 "fields": "id;score"}))
    assert [(m["id"], m["score"]) for m in got] == [
        ("m00", "0.5"), ("m10", "0.5"), ("m03", "1.5"), ("m06", "2.5")]
    assert got[0]["@"] == {REM: 8, "ietf-list-pagination:locale": "C.UTF-8"}
    assert set(got[1]) == {"id", "score"}
    where = quote("score > 5 and starts-with(nfo-paging-test:id, 'm0')", safe="")
    got = members(await client.get(
        f"{LIST}?where={where}&sort-by=score&direction=backwards&depth=1"))
    assert [m["id"] for m in got] == ["m07", "m04", "m01", "m08", "m05"]
    assert all(set(m) <= {"id", "@"} for m in got)  # depth=1 after the page


async def test_leaf_list_resource(server: Server, client: httpx.AsyncClient) -> None:
    await seed(server.ds)
    r = await client.get(f"{LIST}=m03/numbers", params={"sort-by": ".", "limit": "2"})
    assert r.status_code == 200, r.text
    assert r.json()["nfo-paging-test:numbers"] == [7, 8]
    assert r.json()["@nfo-paging-test:numbers"][0][REM] == 1


async def test_xml_reply_of_one_entry_page(server: Server, client: httpx.AsyncClient) -> None:
    await seed(server.ds)
    r = await client.get(LIST, params={"limit": "1", "offset": "5"}, headers={"Accept": XML})
    assert r.status_code == 200, r.text
    assert 'lpg:remaining="6"' in r.text and "<id>m05</id>" in r.text


async def test_xml_list_media_type(server: Server, client: httpx.AsyncClient) -> None:
    await seed(server.ds)
    accept = {"Accept": "application/yang-data+xml-list"}
    r = await client.get(LIST, params={"limit": "3", "sort-by": "score",
                                       "direction": "backwards"}, headers=accept)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/yang-data+xml-list"
    root = ET.fromstring(r.text)
    assert root.tag == "xml-list"
    entries = root.findall(f"{{{PT}}}member")
    assert [e.findtext(f"{{{PT}}}id") for e in entries] == ["m07", "m04", "m11"]
    assert entries[0].get(f"{{{LPG}}}remaining") == "9"
    assert all(e.get(f"{{{LPG}}}remaining") is None for e in entries[1:])
    r = await client.get(f"{LIST}=m03/numbers", params={"limit": "2"}, headers=accept)
    nums = ET.fromstring(r.text).findall(f"{{{PT}}}numbers")
    assert [n.text for n in nums] == ["9", "8"] and nums[0].get(f"{{{LPG}}}remaining") == "1"
    r = await client.get(LIST, params={"offset": "12"}, headers=accept)
    assert r.status_code == 200 and ET.fromstring(r.text).findall("*") == []
    r = await client.get(LIST, headers=accept)  # the whole list, unpaged
    assert len(ET.fromstring(r.text).findall(f"{{{PT}}}member")) == 12
    r = await client.get(f"{LIST}=m01", headers=accept)  # an entry: plain XML
    assert r.headers["content-type"] == XML and ET.fromstring(r.text).tag == f"{{{PT}}}member"


@pytest.mark.parametrize(("params", "status", "tag", "app_tag"), [
    ({"offset": "13"}, 416, "invalid-value", "ietf-list-pagination:offset-out-of-range"),
    ({"limit": "0"}, 400, "invalid-value", None),
    ({"limit": "-3"}, 400, "invalid-value", None),
    ({"limit": "ten"}, 400, "invalid-value", None),
    ({"offset": "-1"}, 400, "invalid-value", None),
    ({"direction": "sideways"}, 400, "invalid-value", None),
    ({"sort-by": "nosuch"}, 400, "invalid-value", None),
    ({"sort-by": "post"}, 400, "invalid-value", None),
    ({"where": "score >"}, 400, "invalid-value", None),
    ({"locale": "C"}, 400, "invalid-value", None),
    ({"sort-by": "id", "locale": "sv_SE"}, 501, "invalid-value",
     "ietf-list-pagination:locale-unavailable"),
    ({"cursor": "abc"}, 400, "invalid-value", None),
])
async def test_errors(server: Server, client: httpx.AsyncClient, params: dict[str, str],
                      status: int, tag: str, app_tag: str | None) -> None:
    await seed(server.ds)
    error(await client.get(LIST, params=params), status, tag, app_tag)


@pytest.mark.parametrize("query", [
    "where=%00", "where=)", "where=]", "where=boolean(", "where=..%2F..%2F..", "where=%2F%2F*",
    "where=count(%2F%2F*)%20%3E%200", "where=%24x", "where=%C3%A5sa", "where=" + "(" * 300,
    "sort-by=..%2Femail", "sort-by=%2Fnfo-paging-test:members", "sort-by=stats%2F",
    "sort-by=%2F", "sort-by=a:b:c", "sort-by=%00", "sort-by=%C3%A5", "sort-by=stats%2Fjoined%2Fx",
    "limit=%2B1", "limit=1e3", "limit=0x10", "limit=%201", "offset=99999999999999999999",
    "direction=", "locale=", "sublist-limit=-0", "limit=&limit=2",
])
async def test_hostile_values_answer_a_client_error(server: Server, client: httpx.AsyncClient,
                                                    query: str) -> None:
    await seed(server.ds)
    r = await client.get(f"{LIST}?{query}")
    assert r.status_code in (200, 400, 416), r.text
    if r.status_code != 200:
        assert r.json()["ietf-restconf:errors"]["error"][0]["error-tag"] in (
            "invalid-value", "malformed-message")


@pytest.mark.parametrize("path", [
    "/restconf/data/nfo-paging-test:members",
    f"{LIST}=m01",
    f"{LIST}=m01/email",
    "/restconf/data",
])
async def test_only_lists_and_leaf_lists_are_paged(server: Server, client: httpx.AsyncClient,
                                                   path: str) -> None:
    await seed(server.ds)
    error(await client.get(path, params={"limit": "1"}), 400, "operation-not-supported")


async def test_only_get_and_head_take_them(server: Server, client: httpx.AsyncClient) -> None:
    await seed(server.ds)
    r = await client.head(LIST, params={"limit": "2"})
    assert r.status_code == 200 and not r.content
    r = await client.delete(f"{LIST}=m01", params={"limit": "1"})
    error(r, 400, "operation-not-supported")
    r = await client.put(f"{LIST}=m01", params={"offset": "1"},
                         content=json.dumps({"nfo-paging-test:member": [{"id": "m01"}]}),
                         headers={"Content-Type": "application/yang-data+json"})
    error(r, 400, "operation-not-supported")


async def test_sublist_limit_on_an_entry(server: Server, client: httpx.AsyncClient) -> None:
    await seed(server.ds)
    r = await client.get(f"{LIST}=m03", params={"sublist-limit": "1"})
    assert r.status_code == 200, r.text
    m = r.json()["nfo-paging-test:member"][0]
    assert m["numbers"] == [9] and m["@numbers"] == [{REM: 2}]


async def test_capabilities_advertised(server: Server, client: httpx.AsyncClient) -> None:
    r = await client.get("/restconf/data/ietf-restconf-monitoring:restconf-state/capabilities")
    caps = r.json()["ietf-restconf-monitoring:capabilities"]["capability"]
    for p in ("limit", "offset", "direction", "sort-by", "locale", "where", "sublist-limit"):
        assert f"urn:ietf:params:restconf:capability:{p}:1.0" in caps
    r = await client.get("/restconf/data/ietf-yang-library:yang-library")
    text = r.text
    assert "ietf-list-pagination" in text
