"""Property-based fuzzing of the RESTCONF data resource over a real socket.

Random request paths, query strings, methods, content types and bodies (valid
fragments, mutated JSON/XML, junk) must never produce a 5xx, and a refused write
must leave the stored data exactly as it was.
"""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.restconf.conftest import JSON, Server

XML = "application/yang-data+xml"
# Every example runs against the same server; refused writes are checked against the
# data stored right before them.

segments = st.sampled_from([
    "nfo-test:top", "top", "nfo-test:top/name", "nfo-test:top/item=i1", "nfo-test:top/item=",
    "nfo-test:top/pair=a,1", "nfo-test:top/pair=a", "nfo-test:top/pair=a,1,2",
    "nfo-test:top/tags=x", "nfo-test:top/extra/level", "nfo-test:nope", "nfo-test:top/%zz",
    "nfo-test:top/item=%E2%82%AC", "nfo-instances:nf-instances/nf-instance=n1",
    "nfo-instances:nf-instances/nf-instance=n1/parameter=port", "nfo-catalog:catalog",
    "nfo-test:top/state", "nfo-test:top//name", "nfo-test:top/item=i1/size", "",
])
queries = st.sampled_from([
    "", "?depth=1", "?depth=0", "?depth=abc", "?content=config", "?content=bogus",
    "?with-defaults=report-all", "?with-defaults=x", "?fields=name;item(size)", "?fields=((",
    "?insert=first", "?insert=after&point=nfo-test:top/item=i1", "?unknown=1", "?depth=1&depth=2",
])
bodies = st.one_of(
    st.sampled_from([
        '{"nfo-test:top":{"name":"x"}}', '{"nfo-test:name":"y"}',
        '{"nfo-test:item":[{"name":"i2"}]}',
        '{"nfo-test:top":{"count":70000}}', '{"nfo-test:top":{"bogus":1}}', '{"nfo-test:top":',
        '<top xmlns="urn:nfo:test"><name>x</name></top>', '<name xmlns="urn:nfo:test">z</name>',
        '<!DOCTYPE x [<!ENTITY e "a">]><top xmlns="urn:nfo:test"/>', "", "null", "[]",
        '{"nfo-instances:nf-instance":[{"name":"n9","descriptor":"missing"}]}',
    ]),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
ctypes = st.sampled_from([JSON, XML, "text/plain", "application/json", None])


async def stored(c: httpx.AsyncClient) -> str:
    r = await c.get("/restconf/data?content=config", headers={"Accept": JSON})
    assert r.status_code == 200
    return r.text


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=methods, seg=segments, q=queries, body=bodies, ct=ctypes)
async def test_no_5xx_and_no_corruption(server: Server, method: str, seg: str, q: str,
                                        body: str, ct: str | None) -> None:
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as c:
        before = await stored(c)
        headers = {"Accept": JSON}
        if ct is not None:
            headers["Content-Type"] = ct
        r = await c.request(method, f"/restconf/data/{seg}{q}", headers=headers,
                            content=body.encode() if method in ("POST", "PUT", "PATCH") else None)
        assert r.status_code < 500, (method, seg, q, body, r.status_code, r.text)
        if r.status_code >= 400:
            if method != "HEAD" and r.content:
                assert "errors" in r.text
            assert await stored(c) == before
        json.loads(before)
