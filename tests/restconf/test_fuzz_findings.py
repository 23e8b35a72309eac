"""Regression tests for what the RESTCONF fuzzer found (issue 12, docs/robustness.md):
each request is answered from the one error table, nothing is stored half-done, and
nothing is logged at ERROR."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.fuzz.server import PASSWORD, ServerProcess
from tests.restconf.conftest import JSON, Server

XML = "application/yang-data+xml"


@pytest.mark.parametrize("key", ["%01", "%00", "%1B", "%EF%BF%BF", "a%00b"])
async def test_a_key_no_yang_value_may_hold_is_refused(
        server: Server, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture,
        key: str) -> None:
    """Finding 1: key values from the URI reached libyang's node constructors
    unchecked: a NUL cut the key short (item=%00 stored the key ""), a control
    character or U+FFFF was stored, could never be written as XML, and the commit's
    netconf-config-change failed validation (logged at ERROR, never delivered)."""
    before = server.ds.info("running").revision
    for method, path, body in [
        ("PUT", f"nfo-test:top/item={key}/size", b'{"nfo-test:size": 5}'),
        ("PUT", f"nfo-test:top/tags={key}", b'{"nfo-test:tags": ["x"]}'),
        ("PATCH", "nfo-test:top", b'{"ietf-yang-patch:yang-patch": {"patch-id": "p", "edit": '
                                  b'[{"edit-id": "1", "operation": "remove", '
                                  b'"target": "/tags=' + key.encode() + b'"}]}}'),
    ]:
        ct = "application/yang-patch+json" if b"yang-patch" in body else JSON
        r = await client.request(method, f"/restconf/data/{path}", content=body,
                                 headers={"Content-Type": ct})
        assert r.status_code == 400, (path, r.text)
        assert "no YANG value may hold" in r.text
    assert server.ds.info("running").revision == before
    assert (await client.get("/restconf/data/nfo-test:top")).status_code == 404
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_key_holding_a_line_feed_can_be_addressed(client: httpx.AsyncClient) -> None:
    """Finding 2: Starlette's path parameters stop at a line feed, so an entry whose
    key holds one (legal in YANG, created through a body) answered 404 'no such
    resource' to every URI naming it."""
    r = await client.post("/restconf/data/nfo-test:top", headers={"Content-Type": JSON},
                          content=b'{"nfo-test:item": [{"name": "l\\nm"}]}')
    assert r.status_code == 201
    assert r.headers["location"].endswith("/item=l%0Am")
    r = await client.put("/restconf/data/nfo-test:top/item=l%0Am/size",
                         headers={"Content-Type": JSON}, content=b'{"nfo-test:size": 3}')
    assert r.status_code == 201
    r = await client.get("/restconf/data/nfo-test:top/item=l%0Am")
    assert r.status_code == 200 and r.json() == {"nfo-test:item": [{"name": "l\nm", "size": 3}]}
    assert (await client.delete("/restconf/data/nfo-test:top/item=l%0Am")).status_code == 204
    assert (await client.get("/restconf/data/nfo-test:top")).status_code == 404


@pytest.mark.parametrize("accept", [JSON, XML])
async def test_host_meta_refuses_other_methods_with_an_errors_body(
        client: httpx.AsyncClient, accept: str) -> None:
    """Finding 3: /.well-known/host-meta answered 405 with an empty body, the one
    endpoint that chose its own status instead of raising through the error table."""
    r = await client.post("/.well-known/host-meta", headers={"Accept": accept})
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"
    assert r.headers["content-type"].startswith(accept)
    assert "operation-not-supported" in r.text
    r = await client.get("/.well-known/host-meta")
    assert r.status_code == 200 and "restconf" in r.text


def test_five_writes_that_crashed_the_server_are_served() -> None:
    """Finding 4: after these five writes the fifth crashed ``nfo serve`` with SIGSEGV
    (libyang's child hash table of the live ``top`` wore out under partial commits;
    nfo.schema.hashes).  A real server process, since a crash is only seen from
    outside."""
    requests = [
        ("PATCH", "", {"ietf-restconf:data": {"nfo-test:top": {
            "colour": "nfo-test:red", "tags": ["a"], "radius": 0}}}, 204),
        ("PUT", "/nfo-test:top/item=c", {"nfo-test:item": [{"name": "c"}]}, 201),
        ("PUT", "/nfo-test:top", {"nfo-test:top": {
            "colour": "nfo-test:blue", "sorted": [-5]}}, 204),
        ("PUT", "/nfo-test:top/extra", {"nfo-test:extra": {}}, 201),
        ("PUT", "/nfo-test:top/thing=b", {"nfo-test:thing": [{"id": "b", "needed": "l"}]}, 201),
    ]
    with ServerProcess() as srv, httpx.Client(base_url=srv.base,
                                               auth=("admin", PASSWORD)) as c:
        for method, path, body, status in requests:
            r = c.request(method, "/restconf/data" + path, json=body,
                          headers={"Content-Type": JSON})
            assert r.status_code == status, (method, path, r.text)
        top = c.get("/restconf/data/nfo-test:top", headers={"Accept": JSON}).json()
        assert top["nfo-test:top"]["thing"] == [{"id": "b", "needed": "l"}]
        assert srv.proc is not None and srv.proc.poll() is None
