"""Transactional editing on the datastore side: private candidates (concurrent edits,
rebase and its conflicts), dry runs, diffs, comments in the history, rollback, the
access rules on all of it, and the nfo-transactions RPCs called through a session.

Real libyang (nfo's modules plus nfo-test) and a fresh SQLite file per test.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import Datastore, SqliteStorage
from nfo.datastore.nacm import Identity
from nfo.datastore.session import Session
from nfo.datastore.txrpcs import TransactionRpcs
from nfo.errors import AccessDenied, DataExists, DataMissing, InvalidValue, NfoError
from nfo.schema import Fmt, Schema
from nfo.schema.diff import Difference
from tests.waiting import wait_for

NC = 'xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"'
CONFIRM_TIMEOUT = 0.3


def top(**body: Any) -> str:
    return json.dumps({"nfo-test:top": body})


def add(*names: str) -> str:
    return top(item=[{"name": n} for n in names])


def create(name: str) -> str:
    return (f'<top xmlns="urn:nfo:test" {NC}><item nc:operation="create">'
            f"<name>{name}</name></item></top>")


def drop(name: str) -> str:
    return (f'<top xmlns="urn:nfo:test" {NC}><item nc:operation="delete">'
            f"<name>{name}</name></item></top>")


def items(reader: Datastore | Session, name: str = "running") -> list[str]:
    with reader.get(name) as t:
        doc = json.loads(t.print("json"))
    return [i["name"] for i in doc.get("nfo-test:top", {}).get("item", [])]


def private(ds: Datastore, user: str = "alice") -> Session:
    return ds.session(Identity.server(user), private_candidate=True)


def ops(changes: list[Difference]) -> list[tuple[str, str]]:
    return [(c.operation, c.path) for c in changes]


# -- private candidates ------------------------------------------------------------


async def test_two_private_candidates_edit_concurrently(ds: Datastore) -> None:
    a, b = private(ds, "alice"), private(ds, "bob")
    await a.edit("candidate", add("a1"), "json")
    await b.edit("candidate", add("b1"), "json")
    # each sees running plus its own edits only; running and the shared one are untouched
    assert items(a, "candidate") == ["a1"]
    assert items(b, "candidate") == ["b1"]
    assert items(ds, "candidate") == []
    assert items(ds) == []
    # no lock is involved: the shared candidate may be locked by someone else
    other = ds.internal_session("carol")
    other.lock("candidate")
    await a.edit("candidate", add("a2"), "json")
    await a.commit(comment="alice's items")
    assert items(ds) == ["a1", "a2"]
    # bob's candidate follows running and keeps his edit; his commit rebases
    assert items(b, "candidate") == ["a1", "a2", "b1"]
    await b.commit(comment="bob's item")
    assert items(ds) == ["a1", "a2", "b1"]
    assert [h.label for h in ds.history("running", 2)] == ["bob's item", "alice's items"]
    assert not a.candidate.dirty and not b.candidate.dirty
    for s in (a, b, other):
        await s.close()


async def test_rebase_conflict_refuses_and_keeps_the_candidate(ds: Datastore) -> None:
    base = ds.internal_session("nfo")
    await base.edit("running", add("old"), "json")
    a, b = private(ds, "alice"), private(ds, "bob")
    await a.edit("candidate", create("x"))
    await a.edit("candidate", drop("old"))
    await b.edit("candidate", create("x"))
    await b.commit()
    rev = ds.info("running").revision
    # alice's edits no longer apply: her candidate shows what they last applied to
    assert items(a, "candidate") == ["x"] and a.candidate.stale
    with pytest.raises(DataExists) as ei:
        await a.commit()
    assert ei.value.path == "/nfo-test:top/item[name='x']"
    assert "do not apply to running" in ei.value.message
    assert ds.info("running").revision == rev
    assert items(ds) == ["old", "x"]
    assert a.candidate.dirty  # kept, so alice can fix it
    # the same for a delete of a node someone else deleted
    await a.discard_changes()
    await a.edit("candidate", drop("old"))
    await base.edit("running", drop("old"))
    with pytest.raises(DataMissing) as em:
        await a.commit()
    assert em.value.path == "/nfo-test:top/item[name='old']"
    assert a.candidate.dirty
    await a.discard_changes()
    assert not a.candidate.dirty
    for s in (a, b, base):
        await s.close()


async def test_rebase_result_must_validate(ds: Datastore) -> None:
    base = ds.internal_session("nfo")
    await base.edit("running", top(thing=[{"id": "t", "needed": "y"}]), "json")
    a = private(ds)
    await a.edit("candidate", top(item=[{"name": "i", "ref": "t"}]), "json")
    await base.edit("running", json.dumps({"nfo-test:top": {"thing": [{
        "id": "t", "@": {"ietf-netconf:operation": "delete"}}]}}), "json")
    with pytest.raises(NfoError) as ei:
        await a.commit()
    assert ei.value.tag == "data-missing"  # the leafref's target went
    assert "do not apply to running" in ei.value.message
    assert items(ds) == []
    await a.close()
    await base.close()


async def test_dry_run_shows_the_changes_and_stores_nothing(ds: Datastore) -> None:
    base = ds.internal_session("nfo")
    await base.edit("running", top(name="n", item=[{"name": "keep"}, {"name": "go"}]),
                    "json")
    seen: list[Any] = []

    async def watch(ev: Any) -> None:
        seen.append(ev)

    ds.subscribe("nfo-test", watch)
    a = private(ds)
    await a.edit("candidate", top(name="m", item=[{"name": "new", "size": 4}]), "json")
    await a.edit("candidate", drop("go"))
    rev = ds.info("running").revision
    history = ds.history("running")
    changes = await a.dry_run()
    assert sorted(ops(changes)) == sorted([
        ("delete", "/nfo-test:top/item[name='go']"),
        ("modify", "/nfo-test:top/name"),
        ("create", "/nfo-test:top/item[name='new']")])
    created = next(c for c in changes if c.operation == "create")
    assert json.loads(created.data or "") == {"nfo-test:item": [{"name": "new", "size": 4}]}
    modified = next(c for c in changes if c.operation == "modify")
    assert (modified.value, modified.prev_value) == ("m", "n")
    # the pending diff says the same; nothing was stored or told to anyone
    assert sorted(ops(a.diff())) == sorted(ops(changes))
    await ds.settle()
    assert seen == []
    assert ds.info("running").revision == rev
    assert ds.history("running") == history
    assert a.candidate.dirty
    await a.close()
    await base.close()


async def test_dry_run_reports_a_conflict(ds: Datastore) -> None:
    a, b = private(ds, "alice"), private(ds, "bob")
    await a.edit("candidate", create("x"))
    await b.edit("candidate", create("x"))
    await b.commit()
    with pytest.raises(DataExists):
        await a.dry_run()
    await a.close()
    await b.close()


async def test_confirmed_commit_from_a_private_candidate_reverts_on_timeout(
        ds: Datastore) -> None:
    base = ds.internal_session("nfo")
    await base.edit("running", add("before"), "json")
    a = private(ds)
    await a.edit("candidate", add("after"), "json")
    await a.commit(confirmed=True, timeout=CONFIRM_TIMEOUT, comment="try it")
    assert items(ds) == ["before", "after"]
    assert ds.history("running", 1)[0].label == "try it"
    await wait_for(lambda: items(ds) == ["before"], 5.0, "the revert")
    assert ds.history("running", 1)[0].label.startswith("rollback")
    await a.close()
    await base.close()


async def test_confirmed_commit_from_a_private_candidate_reverts_when_session_ends(
        ds: Datastore) -> None:
    a = private(ds)
    await a.edit("candidate", add("x"), "json")
    await a.commit(confirmed=True, timeout=60)
    assert items(ds) == ["x"]
    await a.close()  # RFC 6241 8.4: a non-persistent confirmed commit ends with its session
    assert items(ds) == []


async def test_confirmed_commit_from_a_private_candidate_confirmed(ds: Datastore) -> None:
    a = private(ds)
    await a.edit("candidate", add("x"), "json")
    await a.commit(confirmed=True, timeout=CONFIRM_TIMEOUT)
    await a.commit()
    await asyncio.sleep(CONFIRM_TIMEOUT * 2)
    assert items(ds) == ["x"]
    await a.close()
    assert items(ds) == ["x"]


async def test_private_candidates_are_bounded_and_freed(ds: Datastore,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setattr(ds, "max_private_candidates", 2)
    a, b = private(ds), private(ds)
    with pytest.raises(NfoError) as ei:
        private(ds)
    assert ei.value.tag == "resource-denied"
    await a.edit("candidate", add("x"), "json")
    await a.close()
    assert not a.candidate.dirty and a.candidate.tree is None
    c = private(ds)  # a closed one's place is free again
    await b.close()
    await c.close()


async def test_private_session_validate_and_discard(ds: Datastore) -> None:
    a = private(ds)
    await a.edit("candidate", top(item=[{"name": "i", "ref": "nowhere"}]), "json",
                 test_option="set")
    with pytest.raises(NfoError) as ei:
        a.validate("candidate")
    assert ei.value.tag == "data-missing"
    await a.discard_changes()
    a.validate("candidate")
    assert items(a, "candidate") == []
    await a.close()


# -- history, revision diffs, rollback -------------------------------------------


async def test_commit_log_pages_with_counts(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    for n in ("a", "b", "c"):
        await s.edit("candidate", add(n), "json")
        await s.commit(comment=f"add {n}")
    await s.edit("running", top(name="n", tags=["t1", "t2"], extra={"level": 4},
                                item=[{"name": "a", "size": 9}]), "json")
    await s.edit("running", '<top xmlns="urn:nfo:test" xmlns:yang="urn:ietf:params:xml:'
                 'ns:yang:1"><tags yang:insert="first">t2</tags></top>')
    page = ds.commit_log(limit=4)
    assert [(c.label, c.user) for c in page[2:]] == [("add c", "alice"), ("add b", "alice")]
    assert [c.changes for c in page[2:]] == [1, 1]  # an entry is one change, key and all
    # the count is the length of the commit's diff
    for c in ds.commit_log(limit=10):
        assert c.changes == len(s.diff_revision(c.revision)), c
    older = ds.commit_log(limit=2, before=page[-1].revision)
    assert [c.label for c in older] == ["add a"]
    await s.close()


async def test_diff_of_a_revision(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="one", tags=["x", "y"]), "json")
    await s.edit("running", top(name="two", tags=["z"]), "json")
    rev = ds.info("running").revision
    await s.edit("running", add("later"), "json")
    changes = s.diff_revision(rev)
    assert ops(changes) == [("modify", "/nfo-test:top/name"),
                            ("create", "/nfo-test:top/tags[.='z']")]
    assert changes[0].prev_value == "one"
    with pytest.raises(InvalidValue) as ei:
        s.diff_revision(rev + 100)
    assert ei.value.app_tag == "nfo-not-a-commit"
    await s.close()


async def test_revisions_no_longer_retained_are_refused(schema: Schema,
                                                       tmp_path: Path) -> None:
    ds = Datastore.open(schema, SqliteStorage(tmp_path / "db", keep_snapshots=1))
    await ds.start()
    s = ds.internal_session("alice")
    try:
        for n in ("a", "b", "c"):
            await s.edit("running", add(n), "json")
            ds.snapshot()  # the log keeps only the commits after the newest snapshot
        last = ds.info("running").revision
        for revision in (1, last - 1):
            with pytest.raises(InvalidValue) as ei:
                await s.rollback(revision)
            assert ei.value.app_tag == "nfo-revision-not-retained", ei.value
            assert "no longer retained" in ei.value.message
            with pytest.raises(InvalidValue):
                s.diff_revision(revision)
        assert [c.changes for c in ds.commit_log()] == [None]  # its before is gone too
        await s.rollback(last)  # the newest snapshot's revision still is a state
        assert items(ds) == ["a", "b", "c"]
    finally:
        await s.close()
        await ds.close()


async def test_rollback_and_rolling_back_the_rollback(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("a"), "json")
    first = ds.info("running").revision
    await s.edit("running", add("b"), "json")
    second = ds.info("running").revision
    await s.rollback(first, comment="b was wrong")
    assert items(ds) == ["a"]
    assert ds.history("running", 1)[0].label == f"rollback to {first}: b was wrong"
    await s.rollback(second)
    assert items(ds) == ["a", "b"]
    await s.close()


# -- the RPCs through a session ---------------------------------------------------


def rpc(name: str, **body: Any) -> str:
    return json.dumps({f"nfo-transactions:{name}": body})


async def call(s: Session, name: str, **body: Any) -> dict[str, Any]:
    with await s.rpc(rpc(name, **body), Fmt.JSON) as reply:
        doc = json.loads(reply.print("json"))
    return doc.get(f"nfo-transactions:{name}", {})  # type: ignore[no-any-return]


async def test_rpcs_commit_history_diff_rollback(ds: Datastore) -> None:
    rpcs = TransactionRpcs(ds)
    rpcs.register()
    try:
        a = private(ds)
        await a.edit("candidate", add("x"), "json")
        dry = await call(a, "commit-changes", **{"dry-run": [None], "comment": "ignored"})
        assert [c["operation"] for c in dry["change"]] == ["create"]
        assert "revision" not in dry
        out = await call(a, "commit-changes", comment="first")
        rev = int(out["revision"])
        assert rev == ds.info("running").revision
        hist = await call(a, "history", limit=5)
        assert hist["commit"][0]["comment"] == "first"
        assert hist["commit"][0]["changes"] == 1
        diff = await call(a, "diff", revision=str(rev))
        assert diff["change"][0]["path"] == "/nfo-test:top/item[name='x']"
        back = await call(a, "rollback", revision="0", comment="undo")
        assert int(back["revision"]) == rev + 1
        assert items(ds) == []
        assert await call(a, "diff") == {}
        await a.edit("candidate", add("y"), "json")
        assert len((await call(a, "diff"))["change"]) == 1
        await call(a, "validate-changes")
        await call(a, "discard")
        assert not a.candidate.dirty
        with pytest.raises(NfoError) as ei:
            await call(a, "rollback", revision="999")
        assert ei.value.tag == "invalid-value"
        await a.close()
    finally:
        rpcs.unregister()


# -- access control ------------------------------------------------------------------

NACM = {"ietf-netconf-acm:nacm": {
    "groups": {"group": [{"name": "admin", "user-name": ["root"]},
                         {"name": "ops", "user-name": ["olga"]}]},
    "rule-list": [
        {"name": "admin", "group": ["admin"],
         "rule": [{"name": "all", "module-name": "*", "access-operations": "*",
                   "action": "permit"}]},
        {"name": "ops", "group": ["ops"],
         "rule": [{"name": "tx", "module-name": "nfo-transactions",
                   "access-operations": "exec", "action": "permit"},
                  {"name": "hide", "path": "/nfo-test:top/name",
                   "access-operations": "read", "action": "deny"}]}]}}


async def test_read_only_users_cannot_commit_or_roll_back_and_see_no_hidden_values(
        ds: Datastore) -> None:
    rpcs = TransactionRpcs(ds)
    rpcs.register()
    try:
        base = ds.internal_session("nfo")
        await base.edit("running", json.dumps(NACM), "json")
        await base.edit("running", top(name="secret-1", item=[{"name": "a"}]), "json")
        rev = ds.info("running").revision
        await base.edit("running", top(name="secret-2"), "json")
        await base.edit("running", json.dumps({"nfo-users:users": {"user": [{
            "name": "root", "password": "scrypt$16384$8$1$c2FsdA==$aGFzaA=="}]}}), "json")
        pw_rev = ds.info("running").revision
        reader = ds.session("randy", private_candidate=True)  # no group: read-only
        for name, body in (("commit-changes", {}), ("rollback", {"revision": str(rev)})):
            with pytest.raises(AccessDenied):
                await call(reader, name, **body)
        with pytest.raises(AccessDenied):
            await reader.edit("candidate", add("b"), "json")
        # olga may run the RPCs but not write the data, nor read the name
        olga = ds.session("olga", private_candidate=True)
        with pytest.raises(AccessDenied):
            await call(olga, "rollback", revision=str(rev))
        assert ops(olga.diff_revision(rev + 1)) == []  # only the hidden name changed
        assert "secret" not in json.dumps(await call(olga, "diff", revision=str(rev)))
        # nobody but a rule naming it sees a password hash, not even the admins
        root = ds.session("root", private_candidate=True)
        seen = json.dumps(await call(root, "diff", revision=str(pw_rev)))
        assert "scrypt" not in seen and "aGFzaA" not in seen
        assert "secret-2" in json.dumps(await call(root, "diff", revision=str(rev + 1)))
        await root.edit("candidate", top(name="secret-3"), "json")
        assert "secret-3" in json.dumps(await call(root, "commit-changes", **{"dry-run": [None]}))
        assert "revision" in await call(root, "commit-changes", comment="by root")
        for s in (reader, olga, root, base):
            await s.close()
    finally:
        rpcs.unregister()


async def test_a_veto_of_a_private_commit_keeps_the_candidate(ds: Datastore) -> None:
    async def refuse(ev: Any) -> None:
        if ev.phase == "change":
            raise NfoError("not today")

    sub = ds.subscribe("nfo-test", refuse)
    a = private(ds)
    await a.edit("candidate", add("x"), "json")
    with pytest.raises(NfoError) as ei:
        await a.commit()
    assert ei.value.app_tag == "nfo-change-vetoed" and ei.value.message == "not today"
    assert items(ds) == [] and a.candidate.dirty
    await ds.unsubscribe(sub)
    await a.commit()
    assert items(ds) == ["x"]
    await a.close()
