"""Web login sessions over real HTTP: the cookie and its attributes, CSRF on writes,
logout, idle and absolute timeouts, removed accounts, the bound on sessions, Basic
authentication beside them, bad login bodies, and the UI's static files and headers."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from nfo.datastore import Datastore
from nfo.datastore.txrpcs import TransactionRpcs
from nfo.datastore.users import UserStore
from nfo.restconf.login import COOKIE, SessionLimits
from nfo.restconf.server import build_app
from tests.access import permit_everyone
from tests.restconf.conftest import JSON, Serve

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def users(ds: Datastore) -> UserStore:
    permit_everyone(ds)
    store = UserStore(ds)
    await store.add("alice", PASSWORD)
    await store.add("bob", PASSWORD)
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def web(ds: Datastore, users: UserStore, serve: Serve,
              clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    transactions = TransactionRpcs(ds)
    transactions.register()
    app = build_app(ds, users=users, web_sessions=SessionLimits(
        idle_timeout=60, lifetime=600, max_sessions=3))
    app.state.login_sessions._clock = clock
    base = await serve(app)
    async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False,
                                 headers={"Accept": JSON}) as c:
        yield c


async def login(c: httpx.AsyncClient, user: str = "alice",
                password: str = PASSWORD) -> tuple[str, str]:
    r = await c.post("/ui/login", json={"user": user, "password": password})
    assert r.status_code == 200, r.text
    return r.cookies[COOKIE], r.json()["csrf-token"]


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={token}"}


VIM = {"nfo-vim:vim": [{"name": "v1", "type": "nfo-vim:sim"}]}


async def test_login_sets_a_strict_http_only_cookie(web: httpx.AsyncClient) -> None:
    r = await web.post("/ui/login", json={"user": "alice", "password": PASSWORD})
    assert r.status_code == 200
    header = r.headers["set-cookie"]
    assert re.search(r"(?i)\bhttponly\b", header) and re.search(r"(?i)samesite=strict", header)
    assert "path=/" in header.lower() and "secure" not in header.lower()  # plain HTTP here
    body = r.json()
    assert body["user"] == "alice" and len(body["csrf-token"]) >= 32
    assert PASSWORD not in r.text and r.headers["cache-control"] == "no-store"
    whoami = await web.get("/ui/session", headers=cookie(r.cookies[COOKIE]))
    assert whoami.json()["csrf-token"] == body["csrf-token"]


async def test_a_wrong_password_gets_no_session_and_no_basic_challenge(
        web: httpx.AsyncClient) -> None:
    r = await web.post("/ui/login", json={"user": "alice", "password": "nope"})
    assert r.status_code == 401 and COOKIE not in r.cookies
    assert r.headers["www-authenticate"].startswith("Cookie ")
    assert r.json()["ietf-restconf:errors"]["error"][0]["error-tag"] == "access-denied"


async def test_writes_with_the_cookie_need_the_csrf_token(web: httpx.AsyncClient) -> None:
    token, csrf = await login(web)
    url = "/restconf/data/nfo-vim:vims"
    headers = {**cookie(token), "Content-Type": JSON}
    r = await web.post(url, json=VIM, headers=headers)
    assert r.status_code == 403 and "X-CSRF-Token" in r.text
    r = await web.post(url, json=VIM, headers={**headers, "X-CSRF-Token": csrf + "x"})
    assert r.status_code == 403
    assert (await web.get(url, headers=cookie(token))).status_code == 404  # nothing written
    r = await web.post(url, json=VIM, headers={**headers, "X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    r = await web.get(url, headers=cookie(token))
    assert r.json()["nfo-vim:vims"]["vim"][0]["name"] == "v1"


async def test_logout_needs_csrf_and_ends_the_session(web: httpx.AsyncClient) -> None:
    token, csrf = await login(web)
    assert (await web.post("/ui/logout", headers=cookie(token))).status_code == 403
    r = await web.post("/ui/logout", headers={**cookie(token), "X-CSRF-Token": csrf})
    assert r.status_code == 204 and "max-age=0" in r.headers["set-cookie"].lower()
    r = await web.get("/restconf/data/nfo-vim:vims", headers=cookie(token))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Cookie ")


async def test_idle_and_absolute_timeouts(web: httpx.AsyncClient, clock: Clock) -> None:
    token, _ = await login(web)
    url = "/restconf/data/nfo-vim:vims"
    for _ in range(3):  # requests keep it alive ...
        clock.now += 50
        assert (await web.get(url, headers=cookie(token))).status_code == 404
    clock.now += 61  # ... idleness ends it
    assert (await web.get(url, headers=cookie(token))).status_code == 401
    token, _ = await login(web)
    for _ in range(12):  # never idle, but the lifetime is 600 s
        clock.now += 55
        status = (await web.get(url, headers=cookie(token))).status_code
    assert status == 401


async def test_a_removed_account_loses_its_sessions(web: httpx.AsyncClient,
                                                    users: UserStore) -> None:
    token, _ = await login(web, "bob")
    assert (await web.get("/ui/session", headers=cookie(token))).status_code == 200
    await users.remove("bob")
    assert (await web.get("/ui/session", headers=cookie(token))).status_code == 401


async def test_the_least_recently_used_session_goes_beyond_the_bound(
        web: httpx.AsyncClient) -> None:
    tokens = [(await login(web))[0] for _ in range(3)]
    assert (await web.get("/ui/session", headers=cookie(tokens[0]))).status_code == 200
    tokens.append((await login(web))[0])  # four: the least recently used (tokens[1]) goes
    alive = [(await web.get("/ui/session", headers=cookie(t))).status_code for t in tokens]
    assert alive == [200, 401, 200, 200]


async def test_basic_authentication_works_beside_sessions(web: httpx.AsyncClient) -> None:
    basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    r = await web.get("/restconf/data/nfo-vim:vims", headers={"Authorization": basic})
    assert r.status_code == 404
    # a stale cookie beside valid Basic credentials: Basic decides
    r = await web.get("/restconf/data/nfo-vim:vims",
                      headers={"Authorization": basic, **cookie("stale")})
    assert r.status_code == 404
    r = await web.get("/restconf/data/nfo-vim:vims")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic ")


@pytest.mark.parametrize("body,ctype,status", [
    (b"{", "application/json", 400),
    (b'{"user": "alice"}', "application/json", 400),
    (b'{"user": 1, "password": 2}', "application/json", 400),
    (b"user=alice&password=x", "application/x-www-form-urlencoded", 415),
    (b'{"user": "' + b"a" * 9000 + b'", "password": "x"}', "application/json", 413),
])
async def test_bad_login_bodies(web: httpx.AsyncClient, body: bytes, ctype: str,
                                status: int) -> None:
    r = await web.post("/ui/login", content=body, headers={"Content-Type": ctype})
    assert r.status_code == status, r.text
    assert "ietf-restconf:errors" in r.json()


async def test_the_page_and_its_headers(web: httpx.AsyncClient) -> None:
    r = await web.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    r = await web.get("/ui/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    csp = r.headers["content-security-policy"]
    importmap = re.search(rb'<script type="importmap">(.*?)</script>', r.content, re.S)
    assert importmap is not None
    digest = base64.b64encode(hashlib.sha256(importmap.group(1)).digest()).decode()
    assert f"'sha256-{digest}'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    js = await web.get("/ui/vendor/preact.mjs")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert (await web.get("/ui/no-such-file.js")).status_code == 404


async def test_each_login_edits_its_own_private_candidate(
        web: httpx.AsyncClient, ds: Datastore) -> None:
    one, csrf1 = await login(web)
    two, _ = await login(web)
    cand = "/restconf/ds/ietf-datastores:candidate/nfo-vim:vims"
    r = await web.post(cand, json=VIM, headers={**cookie(one), "X-CSRF-Token": csrf1,
                                                "Content-Type": JSON})
    assert r.status_code == 201, r.text
    assert (await web.get(cand, headers=cookie(one))).status_code == 200
    assert (await web.get(cand, headers=cookie(two))).status_code == 404  # not theirs
    basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert (await web.get(cand, headers={"Authorization": basic})).status_code == 404
    r = await web.post("/restconf/operations/nfo-transactions:commit-changes",
                       json={"nfo-transactions:input": {"comment": "first VIM"}},
                       headers={**cookie(one), "X-CSRF-Token": csrf1, "Content-Type": JSON})
    assert r.status_code == 200, r.text
    assert ds.tree("running").node("/nfo-vim:vims/vim[name='v1']") is not None
    assert ds.history("running", 1)[0].label == "first VIM"


async def test_logout_closes_the_datastore_session(web: httpx.AsyncClient,
                                                   ds: Datastore) -> None:
    before = len(ds._sessions)
    token, csrf = await login(web)
    assert len(ds._sessions) == before + 1
    await web.post("/ui/logout", headers={**cookie(token), "X-CSRF-Token": csrf})
    assert len(ds._sessions) == before


async def test_a_rollback_that_would_lock_everyone_out_is_refused(
        web: httpx.AsyncClient, ds: Datastore) -> None:
    token, csrf = await login(web)
    headers = {**cookie(token), "X-CSRF-Token": csrf, "Content-Type": JSON}
    last = ds.history("running", 1)[0].revision
    r = await web.post("/restconf/operations/nfo-transactions:rollback",
                       json={"nfo-transactions:input": {"revision": "0"}}, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["ietf-restconf:errors"]["error"][0]["error-app-tag"] == "nfo-would-lock-out"
    assert ds.history("running", 1)[0].revision == last  # nothing committed
    r = await web.post("/restconf/operations/nfo-transactions:rollback",
                       json={"nfo-transactions:input": {"revision": str(last)}},
                       headers=headers)
    assert r.status_code in (200, 204), r.text  # a revision with the accounts is fine


async def test_idle_sessions_are_ended_without_waiting_for_their_next_request(
        web: httpx.AsyncClient, ds: Datastore, clock: Clock) -> None:
    before = len(ds._sessions)
    await login(web, "bob")  # never used again
    token, _ = await login(web)
    assert len(ds._sessions) == before + 2
    clock.now += 61
    fresh, _ = await login(web)  # any later login sweeps the idle ones
    assert len(ds._sessions) == before + 1
    assert (await web.get("/ui/session", headers=cookie(token))).status_code == 401
    assert (await web.get("/ui/session", headers=cookie(fresh))).status_code == 200


async def test_an_event_stream_ends_with_its_web_session(web: httpx.AsyncClient,
                                                          ds: Datastore, clock: Clock) -> None:
    """A stream opened with the cookie delivers events while its session lives; once the
    session has ended (logout, or idleness), the next event ends the stream instead of
    going out."""

    async def commit(name: str) -> None:
        async with ds.internal_session("seed") as s:
            await s.edit("running", json.dumps({"nfo-test:top": {"name": name}}), "json")

    async def next_comment_or_data(lines: AsyncIterator[str]) -> str:
        while True:
            line = await anext(lines)
            if line.startswith(("data:", ": subscription ended")):
                return line

    for how in ("logout", "idle"):
        token, csrf = await login(web)
        async with web.stream("GET", "/restconf/streams/NETCONF/json",
                              headers={**cookie(token), "Accept": "text/event-stream"}) as r:
            assert r.status_code == 200
            lines = r.aiter_lines()
            await commit(f"before-{how}")
            first = await next_comment_or_data(lines)
            assert first.startswith("data:") and "netconf-config-change" in first
            if how == "logout":
                await web.post("/ui/logout", headers={**cookie(token), "X-CSRF-Token": csrf})
            else:
                clock.now += 61  # past the idle timeout, with nobody asking meanwhile
            await commit(f"after-{how}")
            last = await next_comment_or_data(lines)
            assert last.startswith(": subscription ended: the web session has ended")
            rest = [line async for line in lines]
            assert not any(line.startswith("data:") for line in rest), rest
