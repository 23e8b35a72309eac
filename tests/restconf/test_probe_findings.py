"""Regression tests for what an outside probe found over RESTCONF (issue 12, findings 1
and 8), over real HTTP: namespace floods are refused before libyang, surrogate-pair
escapes are valid JSON, and a key no path could address is refused at creation."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from nfo.wire.xml import MAX_NAMESPACES

from .test_errors import JSON, RUNNING, TOP, XML, expect, seeded, snapshot

__all__ = ["seeded"]


async def test_namespace_floods_are_refused(seeded: httpx.AsyncClient,
                                            caplog: pytest.LogCaptureFixture) -> None:
    c = seeded
    wide = " ".join(f'xmlns:p{i}="urn:x{i}"' for i in range(2000))  # the test cap is 64 KiB
    err = await expect(c, "PUT", TOP + "/name", 400, "malformed-message",
                       f'<name xmlns="urn:nfo:test" {wide}>x</name>', XML)
    assert "namespace declarations in scope" in err["error-message"]
    deep = "".join(f'<a xmlns:p{i}="urn:x" xmlns:q{i}="urn:y">' for i in range(150))
    await expect(c, "POST", TOP, 400, "malformed-message",
                 f'<item xmlns="urn:nfo:test"><name>n</name>{deep}{"</a>" * 150}</item>', XML)
    ok = " ".join(f'xmlns:p{i}="urn:x{i}"' for i in range(MAX_NAMESPACES - 1))
    r = await c.put(TOP + "/name", headers={"Content-Type": XML},
                    content=f'<name xmlns="urn:nfo:test" {ok}>y</name>')
    assert r.status_code == 204, r.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_surrogate_pair_escapes_are_valid_json(seeded: httpx.AsyncClient,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    c = seeded
    r = await c.post(TOP, headers={"Content-Type": JSON},
                     content=b'{"nfo-test:item": [{"name": "rocket \\ud83d\\ude80 \\\\ud83d"}]}')
    assert r.status_code == 201, r.text
    top = (await snapshot(c))["ietf-restconf:data"]["nfo-test:top"]
    names = [i["name"] for i in top["item"]]
    assert "rocket \U0001f680 \\ud83d" in names
    r = await c.put(RUNNING, headers={"Content-Type": JSON}, content=json.dumps(
        {"ietf-restconf:data": {"nfo-test:top": {"name": "\ud83d\ude80"}}}).encode())
    assert r.status_code == 204, r.text
    assert (await snapshot(c))["ietf-restconf:data"]["nfo-test:top"]["name"] == "\U0001f680"
    for lone in (b'"\\ud83d"', b'"\\ude80"', b'"\\ud83d\\u0041"'):
        await expect(c, "PUT", TOP + "/name", 400, "malformed-message",
                     b'{"nfo-test:name": ' + lone + b"}")
        await expect(c, "PUT", RUNNING, 400, "malformed-message",
                     b'{"ietf-restconf:data": {"nfo-test:top": {"name": ' + lone + b"}}}")
    # the change notification naming the new entry was published too
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_key_holding_both_quotes_is_refused_at_creation(
        seeded: httpx.AsyncClient) -> None:
    c = seeded
    both = "it's \"quoted\""
    err = await expect(c, "POST", TOP, 400, "invalid-value",
                       json.dumps({"nfo-test:item": [{"name": both}]}))
    assert "holds both ' and \"" in err["error-message"]
    await expect(c, "POST", TOP, 400, "invalid-value",
                 json.dumps({"nfo-test:tags": [both]}))
    await expect(c, "PUT", RUNNING, 400, "invalid-value", json.dumps(
        {"ietf-restconf:data": {"nfo-test:top": {"name": "demo", "item": [{"name": both}]}}}))
    # one kind of quote is addressable: created, read and deleted by its URI
    for name in ("it's", 'say "hi"'):
        r = await c.post(TOP, headers={"Content-Type": JSON},
                         content=json.dumps({"nfo-test:item": [{"name": name}]}))
        assert r.status_code == 201, r.text
        uri = r.headers["location"]
        assert (await c.get(uri)).status_code == 200
        assert (await c.delete(uri)).status_code == 204
        assert (await c.get(uri)).status_code == 404
