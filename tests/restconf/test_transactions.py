"""nfo-transactions over RESTCONF on a real uvicorn server: requests bound to a
long-lived datastore session with a private candidate (the web UI's login session),
plain requests on the shared candidate as before, dry run, comments, history, diffs,
rollback and their access rules.

The long-lived sessions are opened by the test and bound to requests by a small ASGI
wrapper (header ``X-Test-Session``), as the UI's cookie layer binds its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from nfo.datastore import Datastore, Session
from nfo.restconf.app import create_app
from nfo.restconf.resources import SESSION_KEY
from tests.access import permit_everyone
from tests.restconf.conftest import JSON, Serve

CAND = "/restconf/ds/ietf-datastores:candidate"
RUN = "/restconf/ds/ietf-datastores:running"
OPS = "/restconf/operations/nfo-transactions"


def bind_sessions(app: Any, sessions: dict[str, Session]) -> Any:
    """``app`` with each request naming a session in ``X-Test-Session`` run in it."""
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for key, value in scope["headers"]:
                if key == b"x-test-session":
                    scope = {**scope, SESSION_KEY: sessions[value.decode()]}
        await app(scope, receive, send)
    return wrapped


class UI:
    """Clients of one server: ``ui(name)`` speaks in session ``name``, ``plain`` in none."""

    def __init__(self, base: str, ds: Datastore, sessions: dict[str, Session]) -> None:
        self.base = base
        self.ds = ds
        self.sessions = sessions
        self.plain = httpx.AsyncClient(base_url=base, timeout=10, headers={"Accept": JSON})

    def ui(self, name: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=10,
                                 headers={"Accept": JSON, "X-Test-Session": name})


@pytest.fixture
async def ui(ds: Datastore, serve: Serve) -> AsyncIterator[UI]:
    from nfo.datastore.txrpcs import TransactionRpcs
    permit_everyone(ds)
    rpcs = TransactionRpcs(ds)
    rpcs.register()
    sessions = {name: ds.session(name, private_candidate=True) for name in ("alice", "bob")}
    base = await serve(bind_sessions(create_app(ds), sessions))
    out = UI(base, ds, sessions)
    try:
        yield out
    finally:
        await out.plain.aclose()
        for s in sessions.values():
            await s.close()
        rpcs.unregister()


def item(name: str, **extra: Any) -> dict[str, Any]:
    return {"nfo-test:item": [{"name": name, **extra}]}


async def names(c: httpx.AsyncClient, base: str) -> list[str]:
    r = await c.get(f"{base}/nfo-test:top")
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    return [i["name"] for i in r.json()["nfo-test:top"].get("item", [])]


async def op(c: httpx.AsyncClient, name: str, **body: Any) -> httpx.Response:
    return await c.post(f"{OPS}:{name}", json={"nfo-transactions:input": body},
                        headers={"Content-Type": JSON})


async def test_private_candidates_over_restconf(ui: UI) -> None:
    async with ui.ui("alice") as alice, ui.ui("bob") as bob:
        r = await alice.post(f"{CAND}/nfo-test:top", json=item("a1"),
                             headers={"Content-Type": JSON})
        assert r.status_code == 201, r.text
        r = await bob.put(f"{CAND}/nfo-test:top/item=b1", json=item("b1"),
                          headers={"Content-Type": JSON})
        assert r.status_code == 201, r.text
        assert await names(alice, CAND) == ["a1"]
        assert await names(bob, CAND) == ["b1"]
        # a plain request sees the shared candidate, untouched
        assert await names(ui.plain, CAND) == []
        assert await names(ui.plain, RUN) == []

        r = await op(alice, "diff")
        assert [c["path"] for c in r.json()["nfo-transactions:output"]["change"]] == [
            "/nfo-test:top/item[name='a1']"]
        r = await op(alice, "commit-changes", comment="alice adds a1")
        assert r.status_code == 200, r.text
        rev = int(r.json()["nfo-transactions:output"]["revision"])
        assert await names(bob, CAND) == ["a1", "b1"]  # running plus bob's own edit
        r = await op(bob, "commit-changes", **{"dry-run": [None]})
        assert [(c["operation"], c["path"]) for c in
                r.json()["nfo-transactions:output"]["change"]] == [
            ("create", "/nfo-test:top/item[name='b1']")]
        assert ui.ds.info("running").revision == rev  # a dry run stores nothing
        r = await op(bob, "commit-changes", comment="bob adds b1")
        assert r.status_code == 200, r.text
        assert await names(ui.plain, RUN) == ["a1", "b1"]

        r = await op(ui.plain, "history", limit=5)
        hist = r.json()["nfo-transactions:output"]["commit"]
        assert [(h["user"], h["comment"]) for h in hist] == [
            ("bob", "bob adds b1"), ("alice", "alice adds a1")]
        r = await op(ui.plain, "history", limit=5, before=hist[0]["revision"])
        assert [h["comment"] for h in r.json()["nfo-transactions:output"]["commit"]] == [
            "alice adds a1"]
        r = await op(ui.plain, "diff", revision=str(rev))
        assert r.json()["nfo-transactions:output"]["change"][0]["operation"] == "create"


async def test_rebase_conflict_over_restconf(ui: UI) -> None:
    async with ui.ui("alice") as alice, ui.ui("bob") as bob:
        for c in (alice, bob):
            r = await c.post(f"{CAND}/nfo-test:top", json=item("x"),
                             headers={"Content-Type": JSON})
            assert r.status_code == 201, r.text
        assert (await op(bob, "commit-changes")).status_code == 200
        r = await op(alice, "commit-changes", comment="too late")
        assert r.status_code == 409, r.text
        err = r.json()["ietf-restconf:errors"]["error"][0]
        assert err["error-tag"] == "data-exists"
        assert err["error-path"] == "/nfo-test:top/item[name='x']"
        assert "do not apply to running" in err["error-message"]
        assert ui.sessions["alice"].candidate.dirty
        r = await op(alice, "discard")
        assert r.status_code == 204, r.text
        assert not ui.sessions["alice"].candidate.dirty


async def test_plain_requests_use_the_shared_candidate(ui: UI) -> None:
    r = await ui.plain.post(f"{CAND}/nfo-test:top", json=item("s"),
                            headers={"Content-Type": JSON})
    assert r.status_code == 201, r.text
    assert await names(ui.plain, CAND) == ["s"]
    async with ui.ui("alice") as alice:
        assert await names(alice, CAND) == []  # her own candidate is running
    r = await op(ui.plain, "commit-changes", comment="shared")
    assert r.status_code == 200, r.text
    assert await names(ui.plain, RUN) == ["s"]
    # the shared candidate's lock is respected
    holder = ui.ds.internal_session("holder")
    holder.lock("candidate")
    r = await op(ui.plain, "commit-changes")
    assert r.status_code == 409 and "locked" in r.text
    await holder.close()


async def test_rollback_and_validate_over_restconf(ui: UI) -> None:
    async with ui.ui("alice") as alice:
        await alice.post(f"{CAND}/nfo-test:top", json=item("a"),
                         headers={"Content-Type": JSON})
        out = (await op(alice, "commit-changes")).json()["nfo-transactions:output"]
        first = int(out["revision"])
        await alice.post(f"{CAND}/nfo-test:top", json=item("b"),
                         headers={"Content-Type": JSON})
        out = (await op(alice, "commit-changes")).json()["nfo-transactions:output"]
        second = int(out["revision"])
        r = await op(alice, "rollback", revision=str(first), comment="undo b")
        assert r.status_code == 200, r.text
        assert await names(alice, RUN) == ["a"]
        r = await op(alice, "rollback", revision=str(second))
        assert await names(alice, RUN) == ["a", "b"]
        r = await op(alice, "rollback", revision="99999")
        assert r.status_code == 400 and r.json()["ietf-restconf:errors"]["error"][0][
            "error-tag"] == "invalid-value"
        r = await alice.put(f"{CAND}/nfo-test:top/item=c", json=item("c", ref="nowhere"),
                            headers={"Content-Type": JSON})
        assert r.status_code >= 400  # an edit is validated as it is made
        assert (await op(alice, "validate-changes")).status_code == 204
        r = await alice.post(f"{OPS}:diff", content="{not json",
                             headers={"Content-Type": JSON})
        assert r.status_code == 400


async def test_operations_are_listed(ui: UI) -> None:
    r = await ui.plain.get("/restconf/operations")
    listed = r.json()["ietf-restconf:operations"]
    for name in ("commit-changes", "cancel-confirmed-commit", "discard", "validate-changes",
                 "diff", "history", "rollback"):
        assert f"nfo-transactions:{name}" in listed


async def test_access_rules_over_restconf(ds: Datastore, serve: Serve) -> None:
    from nfo.datastore.txrpcs import TransactionRpcs
    from tests.access import admins
    await admins(ds, ("root", "correct horse battery"))
    rpcs = TransactionRpcs(ds)
    rpcs.register()
    sessions = {n: ds.session(n, private_candidate=True) for n in ("root", "randy")}
    base = await serve(bind_sessions(create_app(ds), sessions))
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10, headers={
                "Accept": JSON, "X-Test-Session": "randy"}) as randy, httpx.AsyncClient(
                base_url=base, timeout=10, headers={
                    "Accept": JSON, "X-Test-Session": "root"}) as root:
            for name, body in (("commit-changes", {}), ("rollback", {"revision": "1"}),
                               ("cancel-confirmed-commit", {})):
                r = await op(randy, name, **body)
                assert r.status_code == 403, (name, r.text)
            # the admin's diff of the commit that created the accounts shows no hash
            hist = (await op(root, "history")).json()["nfo-transactions:output"]["commit"]
            seen = ""
            for h in hist:
                r = await op(root, "diff", revision=h["revision"])
                assert r.status_code == 200, r.text
                seen += r.text
            assert "/nfo-users:users/user[name='root']" in seen
            assert "scrypt" not in seen and "password" not in seen
            r = await op(randy, "history")
            assert r.status_code == 200
    finally:
        for s in sessions.values():
            await s.close()
        rpcs.unregister()


async def test_confirmed_commit_from_a_plain_request_needs_persist(ui: UI) -> None:
    r = await ui.plain.post(f"{CAND}/nfo-test:top", json=item("c"),
                            headers={"Content-Type": JSON})
    assert r.status_code == 201, r.text
    r = await op(ui.plain, "commit-changes", confirmed=[None])
    assert r.status_code == 400 and "needs persist" in r.text, r.text
    r = await op(ui.plain, "commit-changes", confirmed=[None], persist="p1", **{
        "confirm-timeout": 60})
    assert r.status_code == 200, r.text
    assert await names(ui.plain, RUN) == ["c"]  # it outlived its request
    r = await op(ui.plain, "commit-changes", **{"persist-id": "p1"})  # the confirming commit
    assert r.status_code == 204, r.text  # nothing new to commit: no revision
    r = await op(ui.plain, "cancel-confirmed-commit", **{"persist-id": "p1"})
    assert r.status_code == 400  # nothing pending any more
    assert await names(ui.plain, RUN) == ["c"]
    # a UI session's non-persistent confirmed commit lives as long as that session
    async with ui.ui("alice") as alice:
        await alice.post(f"{CAND}/nfo-test:top", json=item("d"),
                         headers={"Content-Type": JSON})
        r = await op(alice, "commit-changes", confirmed=[None])
        assert r.status_code == 200, r.text
        assert await names(alice, RUN) == ["c", "d"]
        r = await op(alice, "cancel-confirmed-commit")
        assert r.status_code == 204, r.text
        assert await names(alice, RUN) == ["c"]
