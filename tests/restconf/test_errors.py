"""RESTCONF errors over real HTTP: each refused request gets the right status and
error-tag, an ``ietf-restconf:errors`` body in the request's encoding, and leaves
the stored data exactly as it was."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request

from nfo.datastore import ChangeEvent, Datastore
from nfo.errors import AccessDenied, InvalidValue
from nfo.protocol.errors import HttpError
from nfo.restconf.app import create_app
from tests.access import permit_everyone

JSON = "application/yang-data+json"
XML = "application/yang-data+xml"
TOP = "/restconf/data/nfo-test:top"
RUNNING = "/restconf/ds/ietf-datastores:running"
RC = "{urn:ietf:params:xml:ns:yang:ietf-restconf}"


def error_of(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"] == JSON, r.headers
    err: dict[str, Any] = r.json()["ietf-restconf:errors"]["error"][0]
    return err


async def snapshot(client: httpx.AsyncClient) -> Any:
    r = await client.get(RUNNING)
    assert r.status_code == 200
    return r.json()


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    r = await client.put(TOP, headers={"Content-Type": JSON}, content=json.dumps({"nfo-test:top": {
        "name": "demo", "item": [{"name": "a", "size": 1}],
        "pair": [{"a": "p", "b": 1}], "thing": [{"id": "t1", "label": "L1", "needed": "y"}]}}))
    assert r.status_code == 201, r.text
    yield client


async def expect(client: httpx.AsyncClient, method: str, path: str, status: int, tag: str,
                 body: str | bytes | None = None, ctype: str = JSON,
                 **kw: Any) -> dict[str, Any]:
    """Send a request that must fail with ``status``/``tag`` and change nothing."""
    before = await snapshot(client)
    headers = dict(kw.pop("headers", {}))
    if body is not None:
        headers.setdefault("Content-Type", ctype)
    r = await client.request(method, path, content=body, headers=headers, **kw)
    assert r.status_code == status, (r.status_code, r.text)
    err = error_of(r)
    assert err["error-tag"] == tag, err
    assert err["error-type"] in ("transport", "rpc", "protocol", "application")
    assert await snapshot(client) == before
    return err


# -- bodies ---------------------------------------------------------------------------

async def test_malformed_bodies(seeded: httpx.AsyncClient) -> None:
    c = seeded
    await expect(c, "PUT", TOP + "/name", 400, "malformed-message", '{"nfo-test:name": "x"')
    await expect(c, "PUT", TOP + "/name", 400, "malformed-message", '{"nfo-test:name": 1} x')
    await expect(c, "PUT", TOP + "/name", 400, "malformed-message",
                 '{"nfo-test:name": "x", "nfo-test:name": "y"}')
    await expect(c, "PUT", TOP + "/name", 400, "malformed-message", "[1, 2]")
    await expect(c, "PUT", TOP + "/name", 400, "malformed-message", "")
    await expect(c, "PUT", TOP + "/name", 400, "malformed-message",
                 '<name xmlns="urn:nfo:test">x</nam>', XML)
    await expect(c, "POST", TOP, 400, "malformed-message", "<<<", XML)


async def test_unknown_nodes_and_wrong_types(seeded: httpx.AsyncClient) -> None:
    c = seeded
    err = await expect(c, "PATCH", TOP, 400, "unknown-element",
                       json.dumps({"nfo-test:top": {"bogus": 1}}))
    assert "bogus" in err["error-message"]
    await expect(c, "POST", TOP, 400, "unknown-element",
                 '<bogus xmlns="urn:nfo:test">1</bogus>', XML)
    await expect(c, "PUT", TOP + "/item=a", 400, "invalid-value",
                 json.dumps({"nfo-test:item": [{"name": "a", "size": "big"}]}))
    await expect(c, "PUT", TOP + "/name", 400, "invalid-value",
                 json.dumps({"nfo-test:name": "x" * 40}))
    await expect(c, "PUT", TOP + "/colour", 400, "invalid-value",
                 json.dumps({"nfo-test:colour": "nfo-test:green"}))
    # state data cannot be written
    await expect(c, "PATCH", TOP, 400, "invalid-value",
                 json.dumps({"nfo-test:top": {"state": {"up": True}}}))


async def test_body_must_match_target(seeded: httpx.AsyncClient) -> None:
    c = seeded
    err = await expect(c, "PUT", TOP + "/item=a", 400, "invalid-value",
                       json.dumps({"nfo-test:item": [{"name": "b"}]}))
    assert "key" in err["error-message"]
    await expect(c, "PUT", TOP + "/name", 400, "invalid-value",
                 json.dumps({"nfo-test:count": 3}))
    await expect(c, "PUT", TOP + "/item=a", 400, "invalid-value",
                 json.dumps({"nfo-test:item": [{"name": "a"}, {"name": "a2"}]}))
    await expect(c, "PUT", TOP + "/pair=p,1", 400, "invalid-value",
                 '<pair xmlns="urn:nfo:test"><a>p</a><b>2</b></pair>', XML)
    await expect(c, "POST", TOP, 400, "invalid-value",
                 json.dumps({"nfo-test:name": "n", "nfo-test:radius": 2}))
    await expect(c, "PUT", "/restconf/data", 400, "invalid-value",
                 json.dumps({"nfo-test:top": {}}))


async def test_validation_failures(seeded: httpx.AsyncClient) -> None:
    c = seeded
    # a must with its own app-tag: the client's data, 400
    err = await expect(c, "PATCH", TOP + "/item=a", 400, "operation-failed",
                       json.dumps({"nfo-test:item": [{"name": "a", "size": 5000}]}))
    assert err["error-app-tag"] == "size-too-big"
    assert err["error-message"] == "size must be below 1000"
    # unique
    err = await expect(c, "POST", TOP, 400, "operation-failed", json.dumps(
        {"nfo-test:thing": [{"id": "t2", "label": "L1", "needed": "y"}]}))
    assert err["error-app-tag"] == "data-not-unique"
    # a leafref to nothing, a missing mandatory leaf: data-missing is a conflict (409)
    err = await expect(c, "PATCH", TOP + "/item=a", 409, "data-missing",
                       json.dumps({"nfo-test:item": [{"name": "a", "ref": "nope"}]}))
    assert err["error-app-tag"] == "instance-required"
    assert err["error-path"].startswith("/nfo-test:top/item[name='a']")
    await expect(c, "POST", TOP, 409, "data-missing", json.dumps(
        {"nfo-test:thing": [{"id": "t3"}]}))


async def test_veto_is_a_conflict(seeded: httpx.AsyncClient, ds: Any) -> None:
    async def refuse(ev: ChangeEvent) -> None:
        if ev.phase == "change":
            raise InvalidValue("names are frozen today")
    sub = ds.subscribe("nfo-test", refuse)
    try:
        err = await expect(seeded, "PUT", TOP + "/name", 409, "operation-failed",
                           json.dumps({"nfo-test:name": "new"}))
        assert err["error-message"] == "names are frozen today"
    finally:
        await ds.unsubscribe(sub)


async def test_locked_datastore_is_in_use(seeded: httpx.AsyncClient, ds: Any) -> None:
    async with ds.internal_session("netconf-user") as s:
        s.lock("running")
        err = await expect(seeded, "PUT", TOP + "/name", 409, "in-use",
                           json.dumps({"nfo-test:name": "new"}))
        assert err["error-info"] == {"session-id": str(s.id)}
        r = await seeded.put(TOP + "/name", content='<name xmlns="urn:nfo:test">n</name>',
                             headers={"Content-Type": XML, "Accept": XML})
        info = ET.fromstring(r.text).find(f"{RC}error/{RC}error-info/{RC}session-id")
        assert info is not None and info.text == str(s.id)
        s.unlock("running")


async def test_missing_parents(seeded: httpx.AsyncClient) -> None:
    c = seeded
    await expect(c, "POST", TOP + "/item=zz", 404, "data-missing",
                 json.dumps({"nfo-test:size": 1}))
    await expect(c, "POST", TOP + "/extra", 404, "data-missing",
                 json.dumps({"nfo-test:level": 2}))
    await expect(c, "PATCH", TOP + "/item=zz/size", 404, "data-missing",
                 json.dumps({"nfo-test:size": 1}))
    await expect(c, "DELETE", TOP + "/thing=t9", 404, "data-missing")


# -- URIs -----------------------------------------------------------------------------

async def test_bad_resource_paths(seeded: httpx.AsyncClient) -> None:
    c = seeded
    err = await expect(c, "GET", "/restconf/data/no-such-module:top", 400, "invalid-value")
    assert "no-such-module" in err["error-message"]
    err = await expect(c, "GET", TOP + "/bogus", 400, "invalid-value")
    assert err["error-path"] == "/nfo-test:top"
    await expect(c, "GET", "/restconf/data/top", 400, "invalid-value")
    await expect(c, "GET", TOP + "/pair=p", 400, "invalid-value")
    await expect(c, "GET", TOP + "/pair=p,1,2", 400, "invalid-value")
    await expect(c, "GET", TOP + "/pair=p,300", 400, "invalid-value")
    await expect(c, "GET", TOP + "/item=%zz", 400, "malformed-message")
    await expect(c, "GET", TOP + "/item=%C3%28", 400, "malformed-message")
    await expect(c, "GET", TOP + "/item/size", 400, "invalid-value")
    await expect(c, "GET", TOP + "/name=x", 400, "invalid-value")
    await expect(c, "GET", TOP + "//name", 400, "invalid-value")
    await expect(c, "DELETE", TOP + "/pair=p,abc", 400, "invalid-value")
    await expect(c, "PUT", TOP + "/bogus", 400, "invalid-value", '{"nfo-test:bogus": 1}')
    await expect(c, "GET", "/restconf/data/nfo-test:bell", 400, "invalid-value")
    r = await c.get("/restconf/nonsense")
    assert r.status_code == 404 and error_of(r)["error-tag"] == "invalid-value"


async def test_bad_query_parameters(seeded: httpx.AsyncClient) -> None:
    c = seeded
    for params in ({"depth": "0"}, {"depth": "65536"}, {"depth": "x"},
                   {"content": "some"}, {"with-defaults": "everything"},
                   {"fields": "bogus"}, {"fields": "name;"}, {"fields": "item(name"},
                   {"fields": "name)"}, {"unknown": "1"}, {"insert": "first"},
                   {"with-origin": ""}):
        await expect(c, "GET", TOP, 400, "invalid-value", params=params)
    await expect(c, "GET", TOP + "?depth=1&depth=2", 400, "invalid-value")
    await expect(c, "GET", TOP + "?depth=%zz", 400, "malformed-message")
    await expect(c, "PUT", TOP + "/name", 400, "invalid-value",
                 json.dumps({"nfo-test:name": "x"}), params={"depth": "1"})
    await expect(c, "DELETE", TOP + "/name", 400, "invalid-value", params={"insert": "first"})
    await expect(c, "POST", TOP, 400, "invalid-value",
                 json.dumps({"nfo-test:item": [{"name": "z"}]}), params={"point": "/x"})


# -- limits and hostile bodies -----------------------------------------------------

async def test_oversize_bodies_are_refused(seeded: httpx.AsyncClient) -> None:
    c = seeded
    big = json.dumps({"nfo-test:top": {"name": "x", "tags": [f"t{i}" for i in range(20000)]}})
    assert len(big) > 64 * 1024
    err = await expect(c, "PUT", TOP, 413, "too-big", big)
    assert err["error-type"] == "transport"

    async def chunks() -> AsyncIterator[bytes]:
        data = big.encode()
        for i in range(0, len(data), 8192):
            yield data[i:i + 8192]
    before = await snapshot(c)
    r = await c.put(TOP, content=chunks(), headers={"Content-Type": JSON})
    assert r.status_code == 413 and error_of(r)["error-tag"] == "too-big"
    assert await snapshot(c) == before


async def test_doctype_and_entities_are_refused(seeded: httpx.AsyncClient) -> None:
    c = seeded
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            '<name xmlns="urn:nfo:test">&lol2;</name>')
    err = await expect(c, "PUT", TOP + "/name", 400, "malformed-message", bomb, XML)
    assert "DOCTYPE" in err["error-message"]
    await expect(c, "PUT", TOP + "/name", 400, "malformed-message",
                 '<!ENTITY x "y"><name xmlns="urn:nfo:test">x</name>', XML)
    await expect(c, "POST", "/restconf/operations/nfo-test:ping", 400, "malformed-message",
                 '<!DOCTYPE x><input xmlns="urn:nfo:test"><msg>m</msg></input>', XML)


async def test_media_types(seeded: httpx.AsyncClient) -> None:
    c = seeded
    r = await c.get(TOP, headers={"Accept": "text/html"})
    assert r.status_code == 406 and error_of(r)["error-tag"] == "invalid-value"
    r = await c.get(TOP, headers={"Accept": f"{XML};q=0, {JSON};q=0"})
    assert r.status_code == 406
    r = await c.get(TOP, headers={"Accept": f"{XML};q=0.5, {JSON};q=0.9"})
    assert r.headers["content-type"] == JSON
    r = await c.get(TOP, headers={"Accept": f"{XML};q=0.9, {JSON};q=0.5"})
    assert r.headers["content-type"] == XML
    r = await c.get(TOP, headers={"Accept": "*/*"})
    assert r.status_code == 200 and r.headers["content-type"] == JSON
    r = await c.get(TOP, headers={"Accept": "application/*"})
    assert r.status_code == 200
    await expect(c, "PUT", TOP + "/name", 415, "invalid-value", "name=x", "text/plain")
    await expect(c, "PATCH", TOP, 415, "invalid-value", "{}", "application/x-unknown")
    # no Content-Type at all
    before = await snapshot(c)
    r = await c.put(TOP + "/name", content=b'{"nfo-test:name": "x"}')
    assert r.status_code == 415
    assert await snapshot(c) == before


async def test_methods_not_allowed(seeded: httpx.AsyncClient) -> None:
    c = seeded
    err = await expect(c, "POST", TOP + "/name", 405, "operation-not-supported",
                       json.dumps({"nfo-test:name": "x"}))
    assert "name" in err["error-message"]
    await expect(c, "DELETE", "/restconf/data", 405, "operation-not-supported")
    await expect(c, "PUT", TOP + "/item", 405, "operation-not-supported",
                 json.dumps({"nfo-test:item": [{"name": "q"}]}))
    await expect(c, "PUT", TOP + "/state/up", 405, "operation-not-supported",
                 json.dumps({"nfo-test:up": True}))
    await expect(c, "DELETE", TOP + "/item=a/name", 405, "operation-not-supported")
    await expect(c, "DELETE", "/restconf", 405, "operation-not-supported")
    await expect(c, "PUT", "/restconf/operations", 405, "operation-not-supported", "{}")
    r = await c.post(TOP + "/name", content=b"{}", headers={"Content-Type": JSON})
    assert "GET" in r.headers["allow"] and "POST" not in r.headers["allow"]


async def test_errors_follow_the_negotiated_encoding(seeded: httpx.AsyncClient) -> None:
    c = seeded
    r = await c.put(TOP + "/item=a", headers={"Content-Type": XML, "Accept": XML},
                    content='<item xmlns="urn:nfo:test"><name>a</name><size>5000</size></item>')
    assert r.status_code == 400 and r.headers["content-type"] == XML
    doc = ET.fromstring(r.text)
    assert doc.tag == RC + "errors"
    e = doc.find(RC + "error")
    assert e is not None
    assert e.findtext(RC + "error-tag") == "operation-failed"
    assert e.findtext(RC + "error-app-tag") == "size-too-big"
    path = e.find(RC + "error-path")
    assert path is not None and path.text is not None
    # an XML instance-identifier: every step prefixed, prefixes declared on the element
    assert path.text.startswith("/nfo-test:top/nfo-test:item[nfo-test:name='a']")
    assert 'xmlns:nfo-test="urn:nfo:test"' in r.text
    # an XML request without Accept gets an XML error; a GET with Accept: XML too
    r = await c.patch(TOP, headers={"Content-Type": XML, "Accept": ""},
                      content='<top xmlns="urn:nfo:test"><bogus/></top>')
    assert r.status_code == 400 and r.headers["content-type"] == XML
    r = await c.get(TOP + "/item=zz", headers={"Accept": XML})
    assert r.status_code == 404 and ET.fromstring(r.text).tag == RC + "errors"
    r = await c.get("/restconf/nonsense", headers={"Accept": XML})
    assert r.status_code == 404 and r.headers["content-type"] == XML
    # HEAD: the status of the error without a body
    r = await c.head(TOP + "/item=zz")
    assert r.status_code == 404 and r.content == b""


# -- the authentication hook ---------------------------------------------------------

class SlowDown(HttpError):
    """An authentication error that carries its own status and headers."""

    def __init__(self, message: str) -> None:
        super().__init__(401, message, tag="access-denied", headers={
            "WWW-Authenticate": 'Basic realm="nfo"', "Retry-After": "3"})


async def test_auth_hook(ds: Datastore, serve: Any) -> None:
    """Whatever ``auth`` returns is the user; what it raises becomes 401/403."""
    seen: list[str] = []
    permit_everyone(ds)

    async def auth(request: Request) -> str:
        user = request.headers.get("x-user")
        if user is None:
            raise HTTPException(401, "who are you?", headers={"WWW-Authenticate": "Basic"})
        if user == "mallory":
            raise AccessDenied("mallory is not welcome")
        if user == "eve":
            raise SlowDown("too many failed attempts")
        seen.append(user)
        return user

    async def whoami(call: Any) -> dict[str, str]:
        return {"echo": call.session.user}
    ds.register_rpc("/nfo-test:ping", whoami)
    base = await serve(create_app(ds, auth=auth))
    async with httpx.AsyncClient(base_url=base, headers={"Accept": JSON}) as c:
        r = await c.get(TOP)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Basic"
        assert error_of(r)["error-tag"] == "access-denied"
        r = await c.get(TOP, headers={"x-user": "mallory"})
        assert r.status_code == 401 and error_of(r)["error-tag"] == "access-denied"
        r = await c.get(TOP, headers={"x-user": "eve", "Accept": XML})
        assert r.status_code == 401 and r.headers["retry-after"] == "3"
        assert r.headers["www-authenticate"] == 'Basic realm="nfo"'
        assert ET.fromstring(r.text).findtext(f"{RC}error/{RC}error-tag") == "access-denied"
        r = await c.put(TOP, content=json.dumps({"nfo-test:top": {"name": "x"}}),
                        headers={"Content-Type": JSON})
        assert r.status_code == 401
        r = await c.post("/restconf/operations/nfo-test:ping", headers={
            "x-user": "alice", "Content-Type": JSON},
            content=json.dumps({"nfo-test:input": {"msg": "m"}}))
        assert r.json() == {"nfo-test:output": {"echo": "alice"}}
        r = await c.put(TOP, content=json.dumps({"nfo-test:top": {"name": "x"}}),
                        headers={"Content-Type": JSON, "x-user": "bob"})
        assert r.status_code == 201
    assert ds.history("running", limit=1)[0].user == "bob"
    assert seen == ["alice", "bob"]
