"""RESTCONF data resources over real HTTP: every method, both encodings, query
parameters, percent-encoded keys, conditional requests and the RFC 8527 datastores.

A real uvicorn server on 127.0.0.1 serves the ``ds`` fixture (nfo's modules plus
nfo-test); httpx talks to it over sockets.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest

from nfo.datastore import Datastore

JSON = "application/yang-data+json"
XML = "application/yang-data+xml"
TOP = "/restconf/data/nfo-test:top"
NS = "{urn:nfo:test}"
RC = "{urn:ietf:params:xml:ns:yang:ietf-restconf}"
RUNNING = "/restconf/ds/ietf-datastores:running"
CANDIDATE = "/restconf/ds/ietf-datastores:candidate"
OPERATIONAL = "/restconf/ds/ietf-datastores:operational"


async def put_json(client: httpx.AsyncClient, path: str, body: Any,
                   **headers: str) -> httpx.Response:
    return await client.put(path, content=json.dumps(body),
                            headers={"Content-Type": JSON, **headers})


async def seed(client: httpx.AsyncClient) -> None:
    """A small nfo-test configuration: name, two tags, items a/b/c, one pair, one thing."""
    r = await put_json(client, TOP, {"nfo-test:top": {
        "name": "demo", "tags": ["x", "y"],
        "item": [{"name": "a", "size": 1}, {"name": "b", "size": 2}, {"name": "c"}],
        "pair": [{"a": "p", "b": 1, "v": "one"}],
        "thing": [{"id": "t1", "label": "L1", "needed": "yes"}],
    }})
    assert r.status_code == 201, r.text


def error_of(r: httpx.Response) -> dict[str, Any]:
    """The first error of an ietf-restconf:errors JSON body."""
    err: dict[str, Any] = r.json()["ietf-restconf:errors"]["error"][0]
    return err


async def config(client: httpx.AsyncClient) -> Any:
    """The whole running configuration (what 'unchanged' is checked against)."""
    r = await client.get(RUNNING)
    assert r.status_code == 200, r.text
    return r.json()


async def get_json(client: httpx.AsyncClient, path: str, **params: str) -> Any:
    r = await client.get(path, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == JSON
    return r.json()


async def item_names(client: httpx.AsyncClient, base: str = "/restconf/data") -> list[str]:
    body = await get_json(client, base + "/nfo-test:top/item")
    return [e["name"] for e in body["nfo-test:item"]]


# -- API root, discovery, YANG library, module download ------------------------------

async def test_host_meta_and_api_root(client: httpx.AsyncClient) -> None:
    r = await client.get("/.well-known/host-meta")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xrd+xml")
    link = ET.fromstring(r.text).find("{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link")
    assert link is not None and link.get("rel") == "restconf" and link.get("href") == "/restconf"

    r = await client.get("/restconf")
    assert r.status_code == 200 and r.headers["content-type"] == JSON
    root = r.json()["ietf-restconf:restconf"]
    assert set(root) == {"data", "operations", "yang-library-version"}
    assert root["yang-library-version"] == "2019-01-04"

    r = await client.get("/restconf", headers={"Accept": XML})
    assert r.headers["content-type"] == XML
    doc = ET.fromstring(r.text)
    assert doc.tag == RC + "restconf"
    assert doc.findtext(RC + "yang-library-version") == "2019-01-04"

    r = await client.get("/restconf/yang-library-version")
    assert r.json() == {"ietf-restconf:yang-library-version": "2019-01-04"}


async def test_yang_library_and_module_download(client: httpx.AsyncClient) -> None:
    lib = await get_json(client, "/restconf/data/ietf-yang-library:yang-library")
    mods = {m["name"]: m for s in lib["ietf-yang-library:yang-library"]["module-set"]
            for m in s.get("module", [])}
    assert mods["nfo-test"]["revision"] == "2026-11-25"
    assert mods["nfo-test"]["namespace"] == "urn:nfo:test"
    assert "nfo-instances" in mods

    r = await client.get("/restconf/modules/nfo-test/2026-11-25")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/yang")
    assert "module nfo-test" in r.text and "rpc ping" in r.text
    r = await client.get("/restconf/modules/nfo-test")
    assert r.status_code == 200 and "module nfo-test" in r.text
    r = await client.get("/restconf/modules/nfo-test/1999-01-01")
    assert r.status_code == 404
    r = await client.get("/restconf/modules/no-such-module/2020-01-01")
    assert r.status_code == 404 and error_of(r)["error-tag"] == "invalid-value"

    caps = await get_json(client, "/restconf/data/ietf-restconf-monitoring:restconf-state")
    got = caps["ietf-restconf-monitoring:restconf-state"]["capabilities"]["capability"]
    assert "urn:ietf:params:restconf:capability:depth:1.0" in got
    assert any(c.startswith("urn:ietf:params:restconf:capability:defaults:1.0") for c in got)


# -- PUT / GET / POST / PATCH / DELETE -----------------------------------------------

async def test_put_creates_then_replaces(client: httpx.AsyncClient) -> None:
    r = await put_json(client, TOP, {"nfo-test:top": {"name": "one", "item": [{"name": "a"}]}})
    assert r.status_code == 201
    assert r.headers["etag"].startswith('"') and "last-modified" in r.headers
    assert await get_json(client, TOP) == {
        "nfo-test:top": {"name": "one", "item": [{"name": "a"}]}}
    # replace: what the body leaves out goes
    r = await put_json(client, TOP, {"nfo-test:top": {"name": "two"}})
    assert r.status_code == 204
    assert await get_json(client, TOP) == {"nfo-test:top": {"name": "two"}}


async def test_get_in_both_encodings(client: httpx.AsyncClient) -> None:
    await seed(client)
    body = await get_json(client, TOP + "/item=a")
    assert body == {"nfo-test:item": [{"name": "a", "size": 1}]}
    r = await client.get(TOP + "/item=a", headers={"Accept": XML})
    assert r.status_code == 200 and r.headers["content-type"] == XML
    el = ET.fromstring(r.text)
    assert el.tag == NS + "item" and el.findtext(NS + "size") == "1"
    assert await get_json(client, TOP + "/name") == {"nfo-test:name": "demo"}
    r = await client.get(TOP + "/name", headers={"Accept": XML})
    assert ET.fromstring(r.text).text == "demo"
    assert await get_json(client, TOP + "/tags=y") == {"nfo-test:tags": ["y"]}
    # the whole list (JSON)
    assert await item_names(client) == ["a", "b", "c"]
    # the datastore resource
    whole = await get_json(client, "/restconf/data")
    assert whole["ietf-restconf:data"]["nfo-test:top"]["name"] == "demo"
    r = await client.get("/restconf/data", headers={"Accept": XML})
    doc = ET.fromstring(r.text)
    assert doc.tag == RC + "data"
    assert doc.findtext(f"{NS}top/{NS}name") == "demo"
    # absent resources
    r = await client.get(TOP + "/item=zzz")
    assert r.status_code == 404 and error_of(r)["error-tag"] == "data-missing"
    r = await client.get(TOP + "/extra")
    assert r.status_code == 404


async def test_post_creates_child_with_location(client: httpx.AsyncClient) -> None:
    await seed(client)
    r = await client.post(TOP, content=json.dumps({"nfo-test:item": [{"name": "d", "size": 4}]}),
                          headers={"Content-Type": JSON})
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith("/restconf/data/nfo-test:top/item=d")
    r2 = await client.get(r.headers["location"])
    assert r2.json() == {"nfo-test:item": [{"name": "d", "size": 4}]}
    # again: 409 data-exists, nothing changed
    before = await config(client)
    r = await client.post(TOP, content=json.dumps({"nfo-test:item": [{"name": "d", "size": 9}]}),
                          headers={"Content-Type": JSON})
    assert r.status_code == 409 and error_of(r)["error-tag"] == "data-exists"
    assert await config(client) == before
    # a leaf inside a list entry; a presence container
    r = await client.post(TOP + "/item=c", content=json.dumps({"nfo-test:size": 3}),
                          headers={"Content-Type": JSON})
    assert r.status_code == 201
    assert r.headers["location"].endswith("/nfo-test:top/item=c/size")
    r = await client.post(TOP, content='<extra xmlns="urn:nfo:test"><level>5</level></extra>',
                          headers={"Content-Type": XML})
    assert r.status_code == 201
    assert (await get_json(client, TOP + "/extra")) == {"nfo-test:extra": {"level": 5}}


async def test_post_on_datastore_creates_top_node(client: httpx.AsyncClient) -> None:
    r = await client.post("/restconf/data", content=json.dumps({"nfo-test:top": {"name": "n"}}),
                          headers={"Content-Type": JSON})
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith("/restconf/data/nfo-test:top")
    r = await client.post("/restconf/data", content=json.dumps({"nfo-test:top": {"name": "m"}}),
                          headers={"Content-Type": JSON})
    assert r.status_code == 409
    assert (await get_json(client, TOP + "/name")) == {"nfo-test:name": "n"}


async def test_patch_merges_and_needs_target(client: httpx.AsyncClient) -> None:
    await seed(client)
    r = await client.patch(TOP, content=json.dumps({"nfo-test:top": {
        "name": "patched", "item": [{"name": "a", "size": 10}, {"name": "e"}]}}),
        headers={"Content-Type": JSON})
    assert r.status_code == 204, r.text
    top = (await get_json(client, TOP))["nfo-test:top"]
    assert top["name"] == "patched" and top["tags"] == ["x", "y"]  # merge keeps the rest
    assert [(i["name"], i.get("size")) for i in top["item"]] == [
        ("a", 10), ("b", 2), ("c", None), ("e", None)]
    r = await client.patch(TOP + "/item=b", content='<item xmlns="urn:nfo:test"><name>b</name>'
                           "<size>20</size></item>", headers={"Content-Type": XML})
    assert r.status_code == 204, r.text
    assert (await get_json(client, TOP + "/item=b/size")) == {"nfo-test:size": 20}
    # PATCH does not create its target
    before = await config(client)
    r = await client.patch(TOP + "/item=zzz", content=json.dumps(
        {"nfo-test:item": [{"name": "zzz"}]}), headers={"Content-Type": JSON})
    assert r.status_code == 404 and error_of(r)["error-tag"] == "data-missing"
    assert await config(client) == before


async def test_delete(client: httpx.AsyncClient) -> None:
    await seed(client)
    assert (await client.delete(TOP + "/item=b")).status_code == 204
    assert await item_names(client) == ["a", "c"]
    assert (await client.delete(TOP + "/tags=x")).status_code == 204
    assert (await client.delete(TOP + "/name")).status_code == 204
    top = (await get_json(client, TOP))["nfo-test:top"]
    assert "name" not in top and top["tags"] == ["y"]
    before = await config(client)
    r = await client.delete(TOP + "/item=b")
    assert r.status_code == 404 and error_of(r)["error-tag"] == "data-missing"
    r = await client.delete(TOP + "/count")  # only an implicit default: nothing to delete
    assert r.status_code == 404
    assert await config(client) == before
    assert (await client.delete(TOP)).status_code == 204
    assert (await client.get(TOP)).status_code == 404


async def test_put_leaf_leaf_list_and_list_entry(client: httpx.AsyncClient) -> None:
    await seed(client)
    r = await put_json(client, TOP + "/name", {"nfo-test:name": "renamed"})
    assert r.status_code == 204
    r = await put_json(client, TOP + "/radius", {"nfo-test:radius": 3})
    assert r.status_code == 201
    r = await put_json(client, TOP + "/tags=z", {"nfo-test:tags": ["z"]})
    assert r.status_code == 201
    r = await put_json(client, TOP + "/item=a", {"nfo-test:item": [{"name": "a"}]})
    assert r.status_code == 204  # replaced: size is gone
    top = (await get_json(client, TOP))["nfo-test:top"]
    assert top["name"] == "renamed" and top["radius"] == 3 and top["tags"] == ["x", "y", "z"]
    assert top["item"][0] == {"name": "a"}
    # a choice: the other case goes
    r = await put_json(client, TOP + "/side", {"nfo-test:side": 4})
    assert r.status_code == 201
    top = (await get_json(client, TOP))["nfo-test:top"]
    assert top["side"] == 4 and "radius" not in top
    # XML: an identityref with its own prefix declaration
    r = await client.put(TOP + "/colour", content='<colour xmlns="urn:nfo:test" '
                         'xmlns:c="urn:nfo:test">c:blue</colour>', headers={"Content-Type": XML})
    assert r.status_code == 201, r.text
    assert (await get_json(client, TOP + "/colour")) == {"nfo-test:colour": "nfo-test:blue"}


async def test_put_and_patch_the_datastore(client: httpx.AsyncClient) -> None:
    await seed(client)
    r = await put_json(client, "/restconf/data", {"ietf-restconf:data": {
        "nfo-test:top": {"name": "fresh"}}})
    assert r.status_code == 204, r.text
    data = (await config(client))["ietf-restconf:data"]
    assert data == {"nfo-test:top": {"name": "fresh"}}
    r = await client.patch("/restconf/data", headers={"Content-Type": XML}, content=(
        f'<data xmlns="{RC[1:-1]}" xmlns:t="urn:nfo:test"><top xmlns="urn:nfo:test">'
        "<colour>t:red</colour><tags>q</tags></top></data>"))
    assert r.status_code == 204, r.text
    top = (await config(client))["ietf-restconf:data"]["nfo-test:top"]
    assert top == {"name": "fresh", "colour": "nfo-test:red", "tags": ["q"]}
    r = await client.put("/restconf/data", headers={"Content-Type": XML},
                         content=f'<data xmlns="{RC[1:-1]}"/>')
    assert r.status_code == 204
    assert (await config(client))["ietf-restconf:data"] == {}


async def test_percent_encoded_and_quoted_keys(client: httpx.AsyncClient) -> None:
    await seed(client)
    odd = "a/b c,d=e%f'g"
    r = await client.post(TOP, content=json.dumps({"nfo-test:item": [{"name": odd, "size": 5}]}),
                          headers={"Content-Type": JSON})
    assert r.status_code == 201, r.text
    loc = r.headers["location"]
    assert loc.endswith("/item=a%2Fb%20c%2Cd%3De%25f%27g")
    assert (await client.get(loc)).json() == {"nfo-test:item": [{"name": odd, "size": 5}]}
    r = await put_json(client, loc + "/size", {"nfo-test:size": 6})
    assert r.status_code == 204
    assert (await get_json(client, loc + "/size")) == {"nfo-test:size": 6}
    assert (await client.delete(loc)).status_code == 204
    assert odd not in await item_names(client)
    # two keys, the second an int8 given in a non-canonical form
    r = await put_json(client, TOP + "/pair=q%20r,07", {"nfo-test:pair": [
        {"a": "q r", "b": 7, "v": "seven"}]})
    assert r.status_code == 201, r.text
    assert (await get_json(client, TOP + "/pair=q%20r,7/v")) == {"nfo-test:v": "seven"}
    # leaf-list value with a slash
    r = await put_json(client, TOP + "/tags=x%2Fy", {"nfo-test:tags": ["x/y"]})
    assert r.status_code == 201
    assert (await get_json(client, TOP + "/tags=x%2Fy")) == {"nfo-test:tags": ["x/y"]}


# -- insert / point ----------------------------------------------------------------

async def test_insert_and_point(client: httpx.AsyncClient) -> None:
    await seed(client)
    hdr = {"Content-Type": JSON}

    async def post_item(name: str, **params: str) -> httpx.Response:
        return await client.post(TOP, params=params, headers=hdr,
                                 content=json.dumps({"nfo-test:item": [{"name": name}]}))
    assert (await post_item("first", insert="first")).status_code == 201
    assert await item_names(client) == ["first", "a", "b", "c"]
    r = await post_item("after-a", insert="after", point="/nfo-test:top/item=a")
    assert r.status_code == 201, r.text
    assert await item_names(client) == ["first", "a", "after-a", "b", "c"]
    r = await post_item("before-first", insert="before", point="/nfo-test:top/item=first")
    assert r.status_code == 201
    assert await item_names(client) == ["before-first", "first", "a", "after-a", "b", "c"]
    assert (await post_item("last", insert="last")).status_code == 201
    assert (await item_names(client))[-1] == "last"
    # PUT moves an existing entry
    r = await client.put(TOP + "/item=c", params={"insert": "first"}, headers=hdr,
                         content=json.dumps({"nfo-test:item": [{"name": "c"}]}))
    assert r.status_code == 204, r.text
    assert (await item_names(client))[0] == "c"
    # leaf-list
    r = await client.post(TOP, params={"insert": "before", "point": "/nfo-test:top/tags=y"},
                          headers=hdr, content=json.dumps({"nfo-test:tags": ["m"]}))
    assert r.status_code == 201, r.text
    assert (await get_json(client, TOP + "/tags"))["nfo-test:tags"] == ["x", "m", "y"]
    # errors: missing point, point of another list, point absent, insert on a system list
    before = await config(client)
    r = await post_item("zz", insert="after")
    assert r.status_code == 400 and error_of(r)["error-tag"] == "invalid-value"
    r = await post_item("zz", insert="after", point="/nfo-test:top/thing=t1")
    assert r.status_code == 400
    r = await post_item("zz", insert="after", point="/nfo-test:top/item=nope")
    assert r.status_code == 400 and error_of(r)["error-tag"] == "bad-attribute"
    r = await client.post(TOP, params={"insert": "first"}, headers=hdr,
                          content=json.dumps({"nfo-test:sorted": [3]}))
    assert r.status_code == 400
    r = await post_item("zz", insert="sideways")
    assert r.status_code == 400
    assert await config(client) == before


# -- query parameters ---------------------------------------------------------------

async def test_depth(client: httpx.AsyncClient) -> None:
    await seed(client)
    assert await get_json(client, TOP, depth="1") == {"nfo-test:top": {}}
    d2 = (await get_json(client, TOP, depth="2"))["nfo-test:top"]
    assert d2["name"] == "demo" and d2["item"] == [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    assert d2["pair"] == [{"a": "p", "b": 1}]  # keys stay
    assert (await get_json(client, TOP, depth="3")) == await get_json(client, TOP)
    assert (await get_json(client, TOP, depth="unbounded")) == await get_json(client, TOP)
    root = await get_json(client, RUNNING, depth="1")
    # ietf-netconf-acm's container holds its defaults
    assert root == {"ietf-restconf:data": {"ietf-netconf-acm:nacm": {}, "nfo-test:top": {}}}


async def test_fields(client: httpx.AsyncClient) -> None:
    await seed(client)
    # entries without any selected descendant (item c has no size) are left out
    assert await get_json(client, TOP, fields="name;item(size)") == {"nfo-test:top": {
        "name": "demo", "item": [{"name": "a", "size": 1}, {"name": "b", "size": 2}]}}
    assert await get_json(client, TOP, fields="item/name;thing(label)") == {"nfo-test:top": {
        "item": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "thing": [{"id": "t1", "label": "L1"}]}}
    assert await get_json(client, TOP + "/item=b", fields="size") == {
        "nfo-test:item": [{"name": "b", "size": 2}]}
    assert await get_json(client, RUNNING, fields="nfo-test:top(name)") == {
        "ietf-restconf:data": {"nfo-test:top": {"name": "demo"}}}
    # fields with depth: the selected node counts as level 1
    assert await get_json(client, TOP, fields="pair", depth="1") == {
        "nfo-test:top": {"pair": [{"a": "p", "b": 1}]}}
    r = await client.get(TOP, params={"fields": "name"}, headers={"Accept": XML})
    el = ET.fromstring(r.text)
    assert [c.tag for c in el] == [NS + "name"]


async def test_content(client: httpx.AsyncClient, server: Any) -> None:
    await seed(client)
    async with server.ds.internal_session("probe") as s:
        s.set_oper(json.dumps({"nfo-test:top": {"state": {"up": True}}}), owner="probe")
    all_ = (await get_json(client, TOP))["nfo-test:top"]
    assert all_["state"] == {"up": True} and all_["name"] == "demo"
    conf = (await get_json(client, TOP, content="config"))["nfo-test:top"]
    assert "state" not in conf and conf["name"] == "demo"
    nonconf = await get_json(client, TOP, content="nonconfig")
    assert nonconf == {"nfo-test:top": {"state": {"up": True}}}
    assert await get_json(client, TOP + "/state/up", content="nonconfig") == {
        "nfo-test:up": True}
    r = await client.get(TOP + "/name", params={"content": "nonconfig"})
    assert r.status_code == 404
    # the configuration datastores hold no state
    assert "state" not in (await get_json(client, RUNNING + "/nfo-test:top"))["nfo-test:top"]


async def test_with_defaults_all_modes(client: httpx.AsyncClient) -> None:
    await put_json(client, TOP, {"nfo-test:top": {"name": "d", "extra": {"level": 1}}})
    # count: an implicit default (7); extra/level: explicitly set to its default (1)
    explicit = (await get_json(client, TOP))["nfo-test:top"]
    assert "count" not in explicit and explicit["extra"] == {"level": 1}
    assert (await get_json(client, TOP, **{"with-defaults": "explicit"})) == {
        "nfo-test:top": explicit}
    trim = (await get_json(client, TOP, **{"with-defaults": "trim"}))["nfo-test:top"]
    assert "count" not in trim and trim["extra"] == {}
    full = (await get_json(client, TOP, **{"with-defaults": "report-all"}))["nfo-test:top"]
    assert full["count"] == 7 and full["extra"] == {"level": 1} and "@count" not in full
    tagged = (await get_json(client, TOP, **{"with-defaults": "report-all-tagged"}))
    top = tagged["nfo-test:top"]
    assert top["count"] == 7
    assert top["@count"] == {"ietf-netconf-with-defaults:default": True}
    r = await client.get(TOP, params={"with-defaults": "report-all-tagged"},
                         headers={"Accept": XML})
    count = ET.fromstring(r.text).find(NS + "count")
    assert count is not None and count.text == "7"
    # RFC 8040 4.8.9 / RFC 6243 section 6: the XML attribute has its own namespace
    assert count.get("{urn:ietf:params:xml:ns:netconf:default:1.0}default") == "true"
    # a default leaf as the target
    assert (await client.get(TOP + "/count")).status_code == 404
    assert (await get_json(client, TOP + "/count", **{"with-defaults": "report-all"})) == {
        "nfo-test:count": 7}


# -- conditional requests ---------------------------------------------------------

async def test_etag_last_modified_and_304(client: httpx.AsyncClient, server: Any) -> None:
    await seed(client)
    r = await client.get(RUNNING + "/nfo-test:top")
    info = server.ds.info("running")
    assert r.headers["etag"] == f'"{info.revision}"'
    lm = r.headers["last-modified"]
    r = await client.get(RUNNING + "/nfo-test:top", headers={"If-None-Match": r.headers["etag"]})
    assert r.status_code == 304 and r.content == b""
    r = await client.get(RUNNING + "/nfo-test:top", headers={"If-Modified-Since": lm})
    assert r.status_code == 304
    r = await client.get(RUNNING + "/nfo-test:top", headers={"If-None-Match": '"999999"'})
    assert r.status_code == 200
    # content=config on the unified datastore has the revision tag too
    r = await client.get(TOP, params={"content": "config"})
    assert r.headers["etag"] == f'"{info.revision}"'
    # a reply with state data: its own tag, still conditional
    r = await client.get(TOP)
    tag = r.headers["etag"]
    assert tag.startswith(f'"{info.revision}-s')
    r = await client.get(TOP, headers={"If-None-Match": tag})
    assert r.status_code == 304
    # HEAD: same headers, no body
    h = await client.head(RUNNING + "/nfo-test:top")
    assert h.status_code == 200 and h.content == b""
    assert h.headers["etag"] == f'"{info.revision}"'
    assert int(h.headers["content-length"]) > 0


async def test_lost_update_is_refused(client: httpx.AsyncClient) -> None:
    await seed(client)
    tag = (await client.get(RUNNING + "/nfo-test:top/name")).headers["etag"]
    r1 = await put_json(client, TOP + "/name", {"nfo-test:name": "first"}, **{"If-Match": tag})
    assert r1.status_code == 204
    assert r1.headers["etag"] != tag
    r2 = await put_json(client, TOP + "/name", {"nfo-test:name": "second"}, **{"If-Match": tag})
    assert r2.status_code == 412 and error_of(r2)["error-tag"] == "operation-failed"
    assert (await get_json(client, TOP + "/name")) == {"nfo-test:name": "first"}
    # the tag of a reply with state data guards writes while the revision holds
    stag = (await client.get(TOP)).headers["etag"]
    r = await client.patch(TOP, content=json.dumps({"nfo-test:top": {"name": "third"}}),
                           headers={"Content-Type": JSON, "If-Match": stag})
    assert r.status_code == 204
    r = await client.delete(TOP + "/name", headers={"If-Match": stag})
    assert r.status_code == 412
    # If-Unmodified-Since in the past; If-None-Match: * (create only)
    r = await client.delete(TOP + "/name",
                            headers={"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert r.status_code == 412
    r = await put_json(client, TOP + "/name", {"nfo-test:name": "x"}, **{"If-None-Match": "*"})
    assert r.status_code == 412
    r = await put_json(client, TOP + "/radius", {"nfo-test:radius": 1}, **{"If-None-Match": "*"})
    assert r.status_code == 201
    r = await client.post(TOP, content=json.dumps({"nfo-test:side": 2}),
                          headers={"Content-Type": JSON, "If-Match": '"1"'})
    assert r.status_code == 412
    assert (await get_json(client, TOP + "/name")) == {"nfo-test:name": "third"}


# -- OPTIONS and methods ------------------------------------------------------------

async def test_options_and_allow(client: httpx.AsyncClient) -> None:
    await seed(client)
    r = await client.options(TOP)
    assert r.status_code == 200
    allow = {m.strip() for m in r.headers["allow"].split(",")}
    assert allow == {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    assert JSON in r.headers["accept-patch"]
    r = await client.options(TOP + "/name")
    assert "POST" not in r.headers["allow"] and "PUT" in r.headers["allow"]
    r = await client.options(OPERATIONAL + "/nfo-test:top")
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}
    r = await client.options(TOP + "/state")
    assert "PUT" not in r.headers["allow"]
    r = await client.options("/restconf/operations/nfo-test:ping")
    assert r.headers["allow"] == "POST, OPTIONS"


# -- RFC 8527 datastores ------------------------------------------------------------

async def test_candidate_edit_visible_only_in_candidate(client: httpx.AsyncClient,
                                                        server: Any) -> None:
    await seed(client)
    tag_before = (await client.get(CANDIDATE + "/nfo-test:top")).headers["etag"]
    r = await put_json(client, CANDIDATE + "/nfo-test:top/name", {"nfo-test:name": "cand"})
    assert r.status_code == 204, r.text
    assert r.headers["etag"] != tag_before
    assert (await get_json(client, CANDIDATE + "/nfo-test:top/name")) == {
        "nfo-test:name": "cand"}
    assert (await get_json(client, RUNNING + "/nfo-test:top/name")) == {"nfo-test:name": "demo"}
    assert (await get_json(client, TOP + "/name")) == {"nfo-test:name": "demo"}
    r = await client.post(CANDIDATE + "/nfo-test:top", headers={"Content-Type": JSON},
                          content=json.dumps({"nfo-test:item": [{"name": "cand-item"}]}))
    assert r.status_code == 201
    assert r.headers["location"].endswith(
        "/restconf/ds/ietf-datastores:candidate/nfo-test:top/item=cand-item")
    assert "cand-item" in await item_names(client, CANDIDATE)
    assert "cand-item" not in await item_names(client, RUNNING)
    # a stale candidate tag is refused
    r = await client.delete(CANDIDATE + "/nfo-test:top/item=a", headers={"If-Match": tag_before})
    assert r.status_code == 412
    # commit (datastore API): running follows
    async with server.ds.internal_session("admin") as s:
        await s.commit()
    assert (await get_json(client, RUNNING + "/nfo-test:top/name")) == {"nfo-test:name": "cand"}


async def test_intended_operational_startup(client: httpx.AsyncClient, server: Any) -> None:
    await seed(client)
    intended = await get_json(client, "/restconf/ds/ietf-datastores:intended/nfo-test:top")
    assert intended == await get_json(client, RUNNING + "/nfo-test:top")
    for ro in ("intended", "operational"):
        before = await config(client)
        r = await put_json(client, f"/restconf/ds/ietf-datastores:{ro}/nfo-test:top/name",
                           {"nfo-test:name": "no"})
        assert r.status_code == 405 and error_of(r)["error-tag"] == "operation-not-supported"
        assert "GET" in r.headers["allow"]
        assert await config(client) == before
    # operational: state pushed by an owner, origin on request
    async with server.ds.internal_session("probe") as s:
        s.set_oper(json.dumps({"nfo-test:top": {"state": {"up": False}}}), owner="probe")
    body = await get_json(client, OPERATIONAL + "/nfo-test:top", **{"with-origin": ""})
    top = body["nfo-test:top"]
    assert top["@"] == {"ietf-origin:origin": "ietf-origin:intended"}
    assert top["state"]["@"] == {"ietf-origin:origin": "ietf-origin:learned"}
    r = await client.get(OPERATIONAL + "/nfo-test:top", params={"with-origin": ""},
                         headers={"Accept": XML})
    el = ET.fromstring(r.text)
    assert el.get("{urn:ietf:params:xml:ns:yang:ietf-origin}origin") == "or:intended"
    no_origin = await get_json(client, OPERATIONAL + "/nfo-test:top")
    assert "@" not in no_origin["nfo-test:top"]
    r = await client.get(RUNNING + "/nfo-test:top", params={"with-origin": ""})
    assert r.status_code == 400
    # startup is its own datastore
    r = await put_json(client, "/restconf/ds/ietf-datastores:startup/nfo-test:top",
                       {"nfo-test:top": {"name": "boot"}})
    assert r.status_code == 201, r.text
    assert (await get_json(client, "/restconf/ds/ietf-datastores:startup/nfo-test:top/name")
            ) == {"nfo-test:name": "boot"}
    assert (await get_json(client, RUNNING + "/nfo-test:top/name")) == {"nfo-test:name": "demo"}
    r = await client.get("/restconf/ds/ietf-datastores:nonsense/nfo-test:top")
    assert r.status_code == 404


async def test_nfo_modules_are_served_generically(client: httpx.AsyncClient) -> None:
    catalog = (Path(__file__).resolve().parents[2] / "yang" / "nfo-demo-catalog.json").read_text()
    r = await client.patch("/restconf/data", headers={"Content-Type": JSON},
                           content=json.dumps({"ietf-restconf:data": json.loads(catalog)}))
    assert r.status_code == 204, r.text
    vim = await get_json(client, "/restconf/data/nfo-vim:vims/vim=local/type")
    assert vim == {"nfo-vim:type": "nfo-vim:local"}
    r = await client.post("/restconf/data/nfo-instances:nf-instances",
                          headers={"Content-Type": JSON},
                          content=json.dumps({"nfo-instances:nf-instance": [{
                              "name": "e1", "descriptor": "udp-echo",
                              "parameter": [{"name": "port", "value": "7001"}]}]}))
    assert r.status_code == 201, r.text
    inst = await get_json(client, "/restconf/data/nfo-instances:nf-instances/nf-instance=e1"
                          "/parameter=port")
    assert inst == {"nfo-instances:parameter": [{"name": "port", "value": "7001"}]}


@pytest.mark.parametrize("accept,ctype", [(JSON, JSON), (XML, XML)])
async def test_round_trip_each_encoding(client: httpx.AsyncClient, ds: Datastore,
                                        accept: str, ctype: str) -> None:
    """What a GET returns can be PUT back unchanged, in either encoding."""
    await seed(client)
    r = await client.get(TOP, params={"content": "config"}, headers={"Accept": accept})
    body = r.text
    r = await client.put(TOP, content=body, headers={"Content-Type": ctype})
    assert r.status_code == 204, r.text
    r2 = await client.get(TOP, params={"content": "config"}, headers={"Accept": accept})
    assert r2.text == body


# -- the pure parts: resource paths, fields, negotiation ------------------------------

@pytest.mark.parametrize("uri,data_path,kinds", [
    ("", None, []),
    ("/", None, []),
    ("nfo-test:top", "/nfo-test:top", ["container"]),
    ("nfo-test:top/item=a%2Fb", "/nfo-test:top/item[name='a/b']", ["container", "list"]),
    ("nfo-test:top/pair=x,03", "/nfo-test:top/pair[a='x'][b='3']", ["container", "list"]),
    ("nfo-test:top/pair=it's,1", "/nfo-test:top/pair[a=\"it's\"][b='1']",
     ["container", "list"]),
    ("nfo-test:top/pair=,1", "/nfo-test:top/pair[a=''][b='1']", ["container", "list"]),
    ("nfo-test:top/tags=x%20y", "/nfo-test:top/tags[.='x y']", ["container", "leaf-list"]),
    ("nfo-test:top/item", "/nfo-test:top/item", ["container", "list"]),
    ("nfo-test:top/radius", "/nfo-test:top/radius", ["container", "leaf"]),  # in a choice
    ("nfo-test:top/nfo-test:name", "/nfo-test:top/name", ["container", "leaf"]),
    ("nfo-test:top/item=a/size", "/nfo-test:top/item[name='a']/size",
     ["container", "list", "leaf"]),
    ("nfo-instances:nf-instances/nf-instance=e1/restart",
     "/nfo-instances:nf-instances/nf-instance[name='e1']/restart",
     ["container", "list", "action"]),
    ("nfo-test:top/colour", "/nfo-test:top/colour", ["container", "leaf"]),
])
def test_parse_resource(schema: Any, uri: str, data_path: str | None,
                        kinds: list[str]) -> None:
    from nfo.restconf.paths import parse_resource
    rp = parse_resource(schema, uri)
    assert rp.data_path == data_path
    assert [s.kind.value for s in rp.segments] == kinds
    if rp.segments:
        assert parse_resource(schema, rp.uri()).data_path == data_path


@pytest.mark.parametrize("uri,tag,fragment", [
    ("nope:top", "invalid-value", "unknown module"),
    ("top", "invalid-value", "module name"),
    ("nfo-test:top/nope", "invalid-value", "unknown node"),
    ("nfo-test:top/pair=x", "invalid-value", "2 key(s)"),
    ("nfo-test:top/pair=x,1,2", "invalid-value", "3 value(s)"),
    ("nfo-test:top/pair=x,300", "invalid-value", "int8"),
    ("nfo-test:top/item=%zz", "malformed-message", "percent"),
    ("nfo-test:top/item=%FF", "malformed-message", "UTF-8"),
    ("nfo-test:top/item/size", "invalid-value", "key values"),
    ("nfo-test:top/name=3", "invalid-value", "takes no"),
    ("nfo-test:top/name/x", "invalid-value", "no child"),
    ("nfo-test:bell", "invalid-value", "notification"),
    ("nfo-test:top/item=a'\"b", "invalid-value", "quote"),
    ("nfo-test:top/bad%20name", "invalid-value", "invalid node name"),
])
def test_parse_resource_errors(schema: Any, uri: str, tag: str, fragment: str) -> None:
    from nfo.errors import NfoError
    from nfo.restconf.paths import parse_resource
    with pytest.raises(NfoError) as exc:
        parse_resource(schema, uri)
    assert exc.value.tag == tag
    assert fragment in exc.value.message


def test_parse_resource_by_shape(schema: Any) -> None:
    """Paths of one shape after the first reuse its steps: the same answer (and the
    same error) as a full parse, whatever the values."""
    from nfo.errors import NfoError
    from nfo.restconf.paths import ResourcePath, parse_resource

    def cold(uri: str) -> ResourcePath | str:
        schema.caches.pop("restconf.shapes", None)
        try:
            return parse_resource(schema, uri)
        except NfoError as e:
            return f"{e.tag} {e.message} {e.path}"

    def warm(uri: str) -> ResourcePath | str:
        try:
            return parse_resource(schema, uri)
        except NfoError as e:
            return f"{e.tag} {e.message} {e.path}"

    inst = "nfo-instances:nf-instances/nf-instance"
    uris = ["nfo-test:top/item=a", "nfo-test:top/item=it's", "nfo-test:top/item=say%20%22hi%22",
            "nfo-test:top/item=a%2Fb%2Cc", "nfo-test:top/item=x/size", "nfo-test:top/item=%zz",
            "nfo-test:top/item=a'\"b", "nfo-test:top/tags=x", "nfo-test:top/tags=y%2Cz",
            "nfo-test:top/item=%01", "nfo-test:top/tags=a%00b", "nfo-test:top/item=%EF%BF%BF",
            "nfo-test:top/pair=a,7/v", "nfo-test:top/pair=b,300/v",
            f"{inst}=nf1", f"{inst}=nf2/parameter=port", f"{inst}=-bad", f"{inst}=x%0Ay",
            f"{inst}={'n' * 64}", f"{inst}=nf3/parameter=p%27q", f"{inst}"]
    expected = {u: cold(u) for u in uris}
    schema.caches.pop("restconf.shapes", None)
    for first in ("nfo-test:top/item=z", "nfo-test:top/item=z/size", "nfo-test:top/tags=t",
                  f"{inst}=nf0", f"{inst}=nf0/parameter=port"):
        parse_resource(schema, first)
    assert len(schema.caches["restconf.shapes"]) == 5
    assert {u: warm(u) for u in uris} == expected
    assert isinstance(expected[f"{inst}=-bad"], str)
    assert isinstance(expected["nfo-test:top/item=a'\"b"], str)


def test_parse_fields(schema: Any) -> None:
    from nfo.errors import NfoError
    from nfo.restconf.paths import parse_fields, parse_resource
    top = parse_resource(schema, "nfo-test:top").target.schema
    assert parse_fields(schema, "name;item(name;size)", top) == [
        "name", "item/name", "item/size"]
    assert parse_fields(schema, "item/ref;extra(level;only-when)", top) == [
        "item/ref", "extra/level", "extra/only-when"]
    assert parse_fields(schema, "nfo-test:name", top) == ["name"]
    assert parse_fields(schema, "nfo-test:top(name)", None) == ["nfo-test:top/name"]
    for bad in ("bogus", "name;", "item(name", "name)", "(name)", "top(name)", "item//name",
                "nfo-x:name", "name;;size"):
        with pytest.raises(NfoError):
            parse_fields(schema, bad, top if bad != "top(name)" else None)


def test_negotiate() -> None:
    from nfo.protocol.errors import HttpError
    from nfo.restconf.codec import negotiate, request_format
    from nfo.schema.data import Fmt
    assert negotiate(None) is Fmt.JSON
    assert negotiate(None, Fmt.XML) is Fmt.XML
    assert negotiate("*/*", Fmt.XML) is Fmt.XML
    assert negotiate(f"{XML}, {JSON};q=0.5") is Fmt.XML
    assert negotiate(f"text/html, {XML};q=0.1") is Fmt.XML
    assert negotiate("application/json") is Fmt.JSON
    assert negotiate(f"*/*;q=0.1, {JSON};q=0") is Fmt.XML
    with pytest.raises(HttpError) as exc:
        negotiate("text/html")
    assert exc.value.status == 406
    assert request_format(f"{XML}; charset=utf-8") is Fmt.XML
    with pytest.raises(HttpError) as exc:
        request_format("text/plain")
    assert exc.value.status == 415
