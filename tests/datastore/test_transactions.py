"""Datastore transactions: edit-config options, candidate, confirmed commit,
locks, copy/delete/validate, rollback, revisions and durability across reopen.

Real libyang (nfo's modules plus nfo-test) and a fresh store per test, on each storage
backend (tests/datastore/conftest.py).

Most tests mark datastore states by adding/removing entries of the list
``/nfo-test:top/item`` (or leaf-list values); the "leaf values" section covers
changing leaves (a lookup bug there once made libyang compare leaf values).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import (
    ChangeCreated,
    ChangeDeleted,
    ChangeEvent,
    ChangeModified,
    Datastore,
    Storage,
)
from nfo.errors import (
    DataExists,
    DataMissing,
    InUse,
    InvalidValue,
    LockDenied,
    NfoError,
    OperationFailed,
    OperationNotSupported,
)
from nfo.schema import Schema

REPO = Path(__file__).resolve().parents[2]
CATALOG = (REPO / "yang" / "nfo-demo-catalog.json").read_text()
Reopen = Callable[[], Storage]
"""Opens another store on the test's stored state (tests/datastore/conftest.py)."""
NC = 'xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"'

CONFIRM_TIMEOUT = 0.3  # seconds a short confirmed commit waits for its confirmation
PAST_TIMEOUT = 0.8  # comfortably longer than CONFIRM_TIMEOUT


# -- helpers ------------------------------------------------------------------


def top(**body: Any) -> str:
    return json.dumps({"nfo-test:top": body})


def add(*names: str) -> str:
    """An edit adding entries to /nfo-test:top/item."""
    return top(item=[{"name": n} for n in names])


def drop(*names: str) -> str:
    """An edit deleting entries of /nfo-test:top/item."""
    entries = "".join(f'<item nc:operation="delete"><name>{n}</name></item>' for n in names)
    return f'<top xmlns="urn:nfo:test" {NC}>{entries}</top>'


def content(ds: Datastore, name: str = "running") -> dict[str, Any]:
    """The datastore's explicit content as parsed RFC 7951 JSON."""
    with ds.get(name) as t:
        return json.loads(t.print("json"))  # type: ignore[no-any-return]


def tops(ds: Datastore, name: str = "running") -> dict[str, Any]:
    return content(ds, name).get("nfo-test:top", {})  # type: ignore[no-any-return]


def items(ds: Datastore, name: str = "running") -> list[str]:
    return [i["name"] for i in tops(ds, name).get("item", [])]


def instance(name: str, port: str, **extra: Any) -> str:
    entry = {"name": name, "descriptor": "udp-echo",
             "parameter": [{"name": "port", "value": port}], **extra}
    return json.dumps({"nfo-instances:nf-instances": {"nf-instance": [entry]}})


@asynccontextmanager
async def reopened(schema: Schema, reopen: Reopen) -> AsyncIterator[Datastore]:
    """A datastore started on another store of the same stored state (a restart)."""
    d = Datastore.open(schema, reopen())
    await d.start()
    try:
        yield d
    finally:
        await d.close()


async def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


# -- test-option ----------------------------------------------------------------


async def test_test_only_validates_but_stores_nothing(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="base"), "json")
    rev = ds.info("running").revision
    before = content(ds)

    out = await s.edit("running", top(tags=["t"], item=[{"name": "a", "size": 5}]), "json",
                       test_option="test-only")
    assert out == []
    assert content(ds) == before
    assert ds.info("running").revision == rev
    assert len(ds.history("running")) == 1

    with pytest.raises(NfoError) as ei:
        await s.edit("running", top(item=[{"name": "a", "size": 5000}]), "json",
                     test_option="test-only")
    assert "size must be below 1000" in ei.value.message
    assert ei.value.app_tag == "size-too-big"
    assert content(ds) == before
    assert ds.info("running").revision == rev


async def test_test_only_on_candidate_leaves_it_clean(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("candidate", top(name="x"), "json", test_option="test-only")
    assert tops(ds, "candidate") == {}
    s.lock("candidate")  # only possible while the candidate is not dirty
    s.unlock("candidate")


async def test_invalid_edit_refused_atomically(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="keep", item=[{"name": "k"}]), "json")
    rev = ds.info("running").revision
    with pytest.raises(NfoError) as ei:
        await s.edit("running", top(tags=["new"], item=[{"name": "a", "size": 1000}]), "json")
    assert ei.value.app_tag == "size-too-big"
    assert tops(ds) == {"name": "keep", "item": [{"name": "k"}]}
    assert ds.info("running").revision == rev
    with pytest.raises(NfoError):  # dangling leafref
        await s.edit("running", top(item=[{"name": "r", "ref": "nothing"}]), "json")
    with pytest.raises(DataExists):
        await s.edit("running",
                     f'<top xmlns="urn:nfo:test" {NC}>'
                     '<item nc:operation="create"><name>k</name></item></top>')
    with pytest.raises(DataMissing):
        await s.edit("running", drop("absent"))
    assert tops(ds) == {"name": "keep", "item": [{"name": "k"}]}
    assert ds.info("running").revision == rev


async def test_set_option_on_candidate_accepts_invalid_data_commit_refuses(
        ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="keep"), "json")
    rev = ds.info("running").revision
    invalid = top(thing=[{"id": "t1", "label": "l"}])  # 'needed' is mandatory

    with pytest.raises(DataMissing):  # test-then-set validates the candidate
        await s.edit("candidate", invalid, "json")
    assert tops(ds, "candidate") == {"name": "keep"}

    await s.edit("candidate", invalid, "json", test_option="set")
    assert tops(ds, "candidate")["thing"] == [{"id": "t1", "label": "l"}]

    with pytest.raises(DataMissing) as ei:
        await s.commit()
    assert 'Mandatory node "needed"' in ei.value.message
    assert ei.value.path is not None and ei.value.path.startswith("/nfo-test:top/thing")
    assert tops(ds) == {"name": "keep"}
    assert ds.info("running").revision == rev
    # the invalid candidate is still there to be fixed
    await s.edit("candidate", top(thing=[{"id": "t1", "needed": "yes"}]), "json")
    await s.commit()
    assert tops(ds)["thing"] == [{"id": "t1", "label": "l", "needed": "yes"}]
    assert ds.info("running").revision == rev + 1


async def test_set_option_on_running_still_validates(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    with pytest.raises(DataMissing):
        await s.edit("running", top(thing=[{"id": "t1"}]), "json", test_option="set")
    assert tops(ds) == {}


async def test_bad_options_refused(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    with pytest.raises(InvalidValue):
        await s.edit("running", top(name="x"), "json", test_option="maybe")
    with pytest.raises(InvalidValue):
        await s.edit("running", top(name="x"), "json", error_option="ignore")
    with pytest.raises(OperationNotSupported):
        await s.edit("running", top(name="x"), "json", error_option="continue-on-error")
    with pytest.raises(InvalidValue):
        await s.edit("running", top(name="x"), "json", default_operation="create")
    with pytest.raises(InvalidValue):
        await s.edit("operational", top(name="x"), "json")
    assert tops(ds) == {}


# -- candidate --------------------------------------------------------------------


async def test_candidate_edit_invisible_in_running_until_commit(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("one"), "json")
    rev = ds.info("running").revision
    changes = await s.edit("candidate", top(name="n", item=[{"name": "two", "size": 2}]),
                           "json")
    assert ChangeCreated("/nfo-test:top/name", "n") in changes
    assert ChangeCreated("/nfo-test:top/item[name='two']/size", "2") in changes
    assert tops(ds) == {"item": [{"name": "one"}]}
    assert tops(ds, "candidate") == {"name": "n",
                                     "item": [{"name": "one"}, {"name": "two", "size": 2}]}
    assert ds.info("running").revision == rev

    committed = await s.commit()
    assert ChangeCreated("/nfo-test:top/name", "n") in committed
    assert tops(ds) == tops(ds, "candidate")
    assert ds.info("running").revision == rev + 1
    assert ds.info("running").user == "alice"
    # a commit with nothing in the candidate is a no-op
    assert await s.commit() == []
    assert ds.info("running").revision == rev + 1


async def test_candidate_shared_between_sessions(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    await a.edit("candidate", add("from-a"), "json")
    assert items(ds, "candidate") == ["from-a"]
    await b.commit()  # the candidate is shared (RFC 6241 section 8.3)
    assert items(ds) == ["from-a"]
    assert ds.info("running").user == "bob"


async def test_discard_changes(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("one"), "json")
    await s.edit("candidate", top(name="two", tags=["x"]), "json")
    await s.edit("candidate", drop("one"))
    await s.discard_changes()
    assert tops(ds, "candidate") == {"item": [{"name": "one"}]}
    assert tops(ds) == {"item": [{"name": "one"}]}
    assert await s.commit() == []
    # after a discard, the candidate follows running again
    await s.edit("running", add("three"), "json")
    assert items(ds, "candidate") == ["one", "three"]


async def test_commit_after_running_changed_meanwhile(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    await a.edit("running", top(name="base", tags=["t1"]), "json")
    await a.edit("candidate", top(item=[{"name": "i1", "size": 1}]), "json")
    candidate = content(ds, "candidate")

    await b.edit("running", top(tags=["t2"], sorted=[3]), "json")
    assert tops(ds)["tags"] == ["t1", "t2"]
    # the candidate was taken from running before bob's edit
    assert content(ds, "candidate") == candidate

    await a.commit()
    assert content(ds) == candidate
    assert content(ds, "candidate") == candidate
    assert "sorted" not in tops(ds)


async def test_candidate_ops_are_replayed_faithfully(ds: Datastore) -> None:
    """Delete, create and ordered inserts in the candidate end up in running as made."""
    s = ds.internal_session("alice")
    await s.edit("running", top(name="n", tags=["a", "b"],
                                item=[{"name": "x", "size": 1}, {"name": "y", "size": 2}]),
                 "json")
    await s.edit("candidate",
                 f'<top xmlns="urn:nfo:test" {NC} xmlns:yang="urn:ietf:params:xml:ns:yang:1">'
                 '<name nc:operation="delete">n</name>'
                 '<item nc:operation="delete"><name>x</name></item>'
                 '<item nc:operation="create" yang:insert="first"><name>w</name></item>'
                 '<tags yang:insert="first">c</tags>'
                 '</top>')
    expected = content(ds, "candidate")
    assert expected["nfo-test:top"] == {"tags": ["c", "a", "b"],
                                        "item": [{"name": "w"}, {"name": "y", "size": 2}]}
    await s.commit()
    assert content(ds) == expected


# -- confirmed commit -------------------------------------------------------------


async def test_confirmed_commit_timeout_reverts(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("before"), "json")
    rev = ds.info("running").revision
    await s.edit("candidate", top(name="n", item=[{"name": "after", "size": 3}]), "json")
    await s.commit(confirmed=True, timeout=CONFIRM_TIMEOUT)
    assert items(ds) == ["before", "after"]
    assert ds.info("running").revision == rev + 1

    await wait_for(lambda: tops(ds) == {"item": [{"name": "before"}]})
    # the revert is a new commit of its own, made by the server
    assert ds.info("running").revision == rev + 2
    assert ds.info("running").user == "nfo"
    assert ds.history("running")[0].label.startswith("rollback")
    assert items(ds, "candidate") == ["before"]
    # nothing is pending any more: a plain commit from another session works
    b = ds.internal_session("bob")
    await b.edit("candidate", add("bob"), "json")
    await b.commit()
    assert items(ds) == ["before", "bob"]


async def test_confirming_commit_keeps_changes(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("before"), "json")
    await s.edit("candidate", add("after"), "json")
    await s.commit(confirmed=True, timeout=CONFIRM_TIMEOUT)
    await s.commit()  # the confirming commit
    await asyncio.sleep(PAST_TIMEOUT)
    assert items(ds) == ["before", "after"]
    with pytest.raises(InvalidValue):
        await s.cancel_commit()  # nothing pending any more


async def test_cancel_commit_reverts(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("before"), "json")
    await s.edit("candidate", top(tags=["x"]), "json")
    await s.edit("candidate", drop("before"))
    await s.commit(confirmed=True, timeout=60)
    assert tops(ds) == {"tags": ["x"]}
    await s.cancel_commit()
    assert tops(ds) == {"item": [{"name": "before"}]}
    with pytest.raises(InvalidValue):
        await s.cancel_commit()


async def test_confirmed_commit_of_other_session_blocks_commit_and_cancel(
        ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    await a.edit("candidate", add("a"), "json")
    await a.commit(confirmed=True, timeout=60)
    await b.edit("candidate", add("b"), "json")
    with pytest.raises(InUse) as ei:
        await b.commit()
    assert ei.value.info.get("session-id") == str(a.id)
    with pytest.raises(InUse):
        await b.cancel_commit()
    assert items(ds) == ["a"]
    await a.cancel_commit()
    assert tops(ds) == {}


async def test_persistent_confirmed_commit_confirmed_from_other_session(
        ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    await a.edit("running", add("before"), "json")
    await a.edit("candidate", add("after"), "json")
    await a.commit(confirmed=True, timeout=CONFIRM_TIMEOUT * 3, persist="tok-1")
    await a.close()  # a persistent confirmed commit outlives its session
    assert items(ds) == ["before", "after"]

    with pytest.raises(InvalidValue):
        await b.commit()  # without the persist-id
    with pytest.raises(InvalidValue):
        await b.commit(persist_id="wrong")
    await b.commit(persist_id="tok-1")
    await asyncio.sleep(CONFIRM_TIMEOUT * 3 + 0.3)
    assert items(ds) == ["before", "after"]
    with pytest.raises(InvalidValue):
        await b.commit(persist_id="tok-1")  # no longer pending


async def test_persistent_confirmed_commit_times_out_without_its_session(
        ds: Datastore) -> None:
    a = ds.internal_session("alice")
    await a.edit("candidate", add("after"), "json")
    await a.commit(confirmed=True, timeout=CONFIRM_TIMEOUT, persist="tok")
    await a.close()
    assert items(ds) == ["after"]
    await wait_for(lambda: tops(ds) == {})


async def test_persistent_confirmed_commit_cancelled_by_persist_id(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    await a.edit("candidate", add("after"), "json")
    await a.commit(confirmed=True, timeout=60, persist="tok")
    with pytest.raises(InvalidValue):
        await b.cancel_commit()
    with pytest.raises(InvalidValue):
        await b.cancel_commit(persist_id="nope")
    await b.cancel_commit(persist_id="tok")
    assert tops(ds) == {}


async def test_second_confirmed_commit_extends_and_reverts_to_first_state(
        ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("orig"), "json")
    await s.edit("candidate", add("step1"), "json")
    await s.commit(confirmed=True, timeout=CONFIRM_TIMEOUT)
    await s.edit("candidate", top(tags=["step2"]), "json")
    await s.commit(confirmed=True, timeout=CONFIRM_TIMEOUT * 6)  # extends the timer
    await asyncio.sleep(PAST_TIMEOUT)
    assert tops(ds) == {"tags": ["step2"], "item": [{"name": "orig"}, {"name": "step1"}]}
    # rolling back goes to the state before the *first* confirmed commit
    await s.cancel_commit()
    assert tops(ds) == {"item": [{"name": "orig"}]}


async def test_confirmed_commit_reverted_when_its_session_closes(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("orig"), "json")
    await s.edit("candidate", add("new"), "json")
    await s.commit(confirmed=True, timeout=60)
    assert items(ds) == ["orig", "new"]
    await s.close()
    assert items(ds) == ["orig"]
    with pytest.raises(OperationFailed):
        await s.edit("running", add("closed"), "json")


async def test_unconfirmed_commit_reverted_after_restart(schema: Schema, reopen: Reopen,
                                                         ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("orig"), "json")
    await s.edit("candidate", add("new"), "json")
    await s.commit(confirmed=True, timeout=60)
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert items(d2) == ["orig"]
    async with reopened(schema, reopen) as d3:  # and it stays reverted
        assert items(d3) == ["orig"]
        s3 = d3.internal_session("carol")
        await s3.edit("candidate", add("later"), "json")
        await s3.commit()
        assert items(d3) == ["orig", "later"]


async def test_failed_confirmed_commit_leaves_nothing_pending(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    await a.edit("candidate", top(thing=[{"id": "t"}]), "json", test_option="set")
    with pytest.raises(DataMissing):
        await a.commit(confirmed=True, timeout=60)
    await a.discard_changes()
    await b.edit("candidate", add("bob"), "json")
    await b.commit()  # nothing may stay pending after the failed confirmed commit
    assert items(ds) == ["bob"]


async def test_confirmed_commit_timeout_reverts_while_running_locked(
        ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("before"), "json")
    s.lock("running")
    await s.edit("candidate", add("after"), "json")
    await s.commit(confirmed=True, timeout=CONFIRM_TIMEOUT)
    await asyncio.sleep(PAST_TIMEOUT)
    assert items(ds) == ["before"]


async def test_cancel_commit_by_running_lock_holder(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("before"), "json")
    s.lock("running")
    await s.edit("candidate", add("after"), "json")
    await s.commit(confirmed=True, timeout=60)
    await s.cancel_commit()
    assert items(ds) == ["before"]


# -- locks ------------------------------------------------------------------------


async def test_lock_denied_names_holder(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    a.lock("running")
    with pytest.raises(LockDenied) as ei:
        b.lock("running")
    assert ei.value.tag == "lock-denied"
    assert ei.value.info["session-id"] == str(a.id)
    with pytest.raises(LockDenied):
        a.lock("running")  # not re-entrant either
    b.lock("startup")  # locks are per datastore
    with pytest.raises(InvalidValue):
        a.lock("operational")


async def test_edit_on_datastore_locked_by_other_session(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    a.lock("running")
    with pytest.raises(InUse) as ei:
        await b.edit("running", add("bob"), "json")
    assert ei.value.tag == "in-use"
    assert ei.value.info["session-id"] == str(a.id)
    with pytest.raises(InUse):
        await b.copy_config("running", add("bob"), "json")
    with pytest.raises(InUse):
        await b.rollback(0)
    await b.edit("candidate", add("bob"), "json")  # other datastores stay writable
    with pytest.raises(InUse):
        await b.commit()  # commit writes running
    await a.edit("running", add("alice"), "json")  # the holder writes freely
    assert items(ds) == ["alice"]

    a.lock("startup")
    with pytest.raises(InUse):
        await b.delete_config("startup")
    with pytest.raises(InUse):
        await b.copy_config("startup", "running", source_is_datastore=True)


async def test_candidate_lock_blocks_other_sessions(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    a.lock("candidate")
    with pytest.raises(InUse):
        await b.edit("candidate", add("bob"), "json")
    with pytest.raises(InUse):
        await b.discard_changes()
    await a.edit("candidate", add("alice"), "json")
    await a.commit()
    assert items(ds) == ["alice"]


async def test_unlock_by_non_holder_refused(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    with pytest.raises(OperationFailed):
        a.unlock("running")  # not locked at all
    a.lock("running")
    with pytest.raises(OperationFailed) as ei:
        b.unlock("running")
    assert ei.value.tag == "operation-failed"
    with pytest.raises(LockDenied):
        b.lock("running")  # still held by a
    a.unlock("running")
    b.lock("running")


async def test_close_releases_locks(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    a.lock("running")
    a.lock("startup")
    await a.close()
    b.lock("running")
    b.lock("startup")
    await b.edit("running", add("bob"), "json")
    with pytest.raises(OperationFailed):
        a.lock("candidate")  # a closed session can do nothing


async def test_close_with_candidate_lock_discards_candidate(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    a.lock("candidate")
    await a.edit("candidate", add("uncommitted"), "json")
    async with a:
        pass
    assert tops(ds, "candidate") == {}
    b.lock("candidate")


async def test_unlock_candidate_discards_changes(ds: Datastore) -> None:
    a = ds.internal_session("alice")
    await a.edit("running", add("committed"), "json")
    a.lock("candidate")
    await a.edit("candidate", add("uncommitted"), "json")
    a.unlock("candidate")
    assert items(ds, "candidate") == ["committed"]


async def test_kill_session_with_pending_confirmed_commit_while_running_locked(
        ds: Datastore) -> None:
    killed: list[int] = []
    victim = ds.internal_session("victim", on_kill=lambda: killed.append(victim.id))
    admin = ds.internal_session("admin")
    await victim.edit("candidate", add("risky"), "json")
    await victim.commit(confirmed=True, timeout=60)
    admin.lock("running")
    await admin.kill(victim.id)  # raises InUse
    assert killed == [victim.id]


async def test_candidate_lock_refused_while_dirty(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    await a.edit("candidate", add("dirty"), "json")
    with pytest.raises(LockDenied):
        a.lock("candidate")
    with pytest.raises(LockDenied):
        b.lock("candidate")
    await a.commit()
    b.lock("candidate")


async def test_kill_session_releases_locks_and_calls_on_kill(ds: Datastore) -> None:
    killed: list[str] = []
    victim = ds.internal_session("victim", on_kill=lambda: killed.append("victim"))
    admin = ds.internal_session("admin")
    victim.lock("running")
    victim.lock("candidate")
    await victim.edit("candidate", add("victim-work"), "json")

    with pytest.raises(InvalidValue):
        await admin.kill(admin.id)
    with pytest.raises(InvalidValue):
        await admin.kill(9999)
    await admin.kill(victim.id)
    assert killed == ["victim"]
    assert victim.closed
    admin.lock("running")
    admin.lock("candidate")  # victim's candidate changes were discarded with its lock
    assert tops(ds, "candidate") == {}
    with pytest.raises(InvalidValue):
        await admin.kill(victim.id)  # already gone
    with pytest.raises(OperationFailed):
        await victim.edit("running", add("late"), "json")


async def test_kill_session_reverts_its_confirmed_commit(ds: Datastore) -> None:
    victim, admin = ds.internal_session("victim"), ds.internal_session("admin")
    await victim.edit("candidate", add("risky"), "json")
    await victim.commit(confirmed=True, timeout=60)
    await admin.kill(victim.id)
    assert tops(ds) == {}


# -- copy-config, delete-config, validate -------------------------------------------


async def test_copy_running_to_startup(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", CATALOG, "json")
    await s.edit("running", top(name="n", tags=["b", "a"],
                                item=[{"name": "z", "size": 1}, {"name": "a", "size": 2}]),
                 "json")
    assert content(ds, "startup") == {}
    await s.copy_config("startup", "running", source_is_datastore=True)
    assert content(ds, "startup") == content(ds)
    assert ds.info("startup").user == "alice"
    assert ds.history("startup")[0].revision == ds.info("startup").revision
    # startup does not follow later edits of running
    await s.edit("running", add("later"), "json")
    assert items(ds, "startup") == ["z", "a"]


async def test_copy_config_without_differences_commits_nothing(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="n", tags=["b", "a"], item=[{"name": "z", "size": 1}]),
                 "json")
    await s.copy_config("startup", "running", source_is_datastore=True)
    rev = ds.info("startup").revision
    await s.copy_config("startup", "running", source_is_datastore=True)
    assert ds.info("startup").revision == rev
    assert len(ds.history("startup")) == 1


async def test_rollback_to_current_revision_changes_nothing(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", CATALOG, "json")
    await s.edit("running", instance("e1", "7000"), "json")
    rev = ds.info("running").revision
    assert await s.rollback(rev) == []
    assert ds.info("running").revision == rev


async def test_copy_inline_config_replaces_running(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", CATALOG, "json")
    await s.edit("running", top(name="old", item=[{"name": "i", "size": 1}]), "json")
    await s.copy_config("running", top(tags=["t"], item=[{"name": "j"}]), "json")
    assert content(ds) == {"nfo-test:top": {"tags": ["t"], "item": [{"name": "j"}]}}
    await s.copy_config("running", '<top xmlns="urn:nfo:test"><name>xml</name></top>')
    assert content(ds) == {"nfo-test:top": {"name": "xml"}}
    # invalid inline content changes nothing
    with pytest.raises(NfoError):
        await s.copy_config("running", top(thing=[{"id": "x"}]), "json")
    with pytest.raises(NfoError):
        await s.copy_config("running", top(state={"up": True}), "json")
    assert content(ds) == {"nfo-test:top": {"name": "xml"}}


async def test_copy_startup_to_running(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("startup", add("boot"), "json")
    await s.edit("running", top(tags=["x"], item=[{"name": "live"}]), "json")
    await s.copy_config("running", "startup", source_is_datastore=True)
    assert content(ds) == content(ds, "startup") == {"nfo-test:top": {"item": [{"name": "boot"}]}}


async def test_delete_config(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="r"), "json")
    await s.copy_config("startup", "running", source_is_datastore=True)
    await s.delete_config("startup")
    assert content(ds, "startup") == {}
    with pytest.raises(OperationNotSupported):
        await s.delete_config("running")
    with pytest.raises(InvalidValue):
        await s.delete_config("operational")
    assert tops(ds) == {"name": "r"}


async def test_delete_config_refused_on_closed_session(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("startup", add("boot"), "json")
    await s.close()
    with pytest.raises(OperationFailed):
        await s.delete_config("startup")
    assert items(ds, "startup") == ["boot"]


async def test_validate_datastore_and_inline(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="ok"), "json")
    s.validate("running")
    s.validate("startup")
    s.validate("candidate")
    await s.edit("candidate", top(thing=[{"id": "t"}]), "json", test_option="set")
    with pytest.raises(DataMissing):
        s.validate("candidate")
    s.validate(top(name="inline", item=[{"name": "i", "size": 2}]), "json",
               source_is_datastore=False)
    s.validate('<top xmlns="urn:nfo:test"><name>x</name></top>', source_is_datastore=False)
    with pytest.raises(NfoError) as ei:
        s.validate(top(item=[{"name": "i", "size": 5000}]), "json", source_is_datastore=False)
    assert ei.value.app_tag == "size-too-big"
    with pytest.raises(NfoError):
        s.validate(top(item=[{"name": "i", "ref": "missing"}]), "json",
                   source_is_datastore=False)
    with pytest.raises(NfoError):
        s.validate(top(name="x" * 40), "json", source_is_datastore=False)
    with pytest.raises(NfoError):
        s.validate("{not json", "json", source_is_datastore=False)
    with pytest.raises(InvalidValue):
        s.validate("operational")
    assert tops(ds) == {"name": "ok"}
    assert ds.info("running").revision == 1


# -- rollback, revisions, history ---------------------------------------------------


async def test_rollback_to_earlier_revision(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="v1", tags=["a"]), "json")
    r1 = ds.info("running").revision
    v1 = content(ds)
    await s.edit("running", top(item=[{"name": "i", "size": 1}]), "json")
    await s.edit("running", CATALOG, "json")
    await s.edit("startup", top(name="boot"), "json")  # revisions are global
    await s.edit("running", top(tags=["b"]), "json")
    last = ds.info("running").revision

    with ds.state_at("running", r1) as t:
        assert json.loads(t.print("json")) == v1
    changes = await s.rollback(r1)
    assert changes
    assert content(ds) == v1
    assert ds.info("running").revision == last + 1
    assert ds.history("running")[0].label == f"rollback to {r1}"
    assert tops(ds, "startup") == {"name": "boot"}
    # rollback to 0 is "empty"
    await s.rollback(0)
    assert content(ds) == {}


@pytest.mark.parametrize("revision", [-1, 999])
async def test_rollback_to_nonexistent_revision_refused(ds: Datastore, revision: int) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", add("keep"), "json")
    rev = ds.info("running").revision
    with pytest.raises(InvalidValue):
        await s.rollback(revision)
    assert items(ds) == ["keep"]
    assert ds.info("running").revision == rev


async def test_revisions_and_history(ds: Datastore) -> None:
    a, b = ds.internal_session("alice"), ds.internal_session("bob")
    start = ds.info("running")
    assert start.revision == 0

    t0 = time.time()
    await a.edit("running", add("1"), "json")
    i1 = ds.info("running")
    assert (i1.revision, i1.user) == (1, "alice")
    assert t0 - 1 <= i1.timestamp <= time.time() + 1

    await b.edit("running", add("2"), "json")
    i2 = ds.info("running")
    assert (i2.revision, i2.user) == (2, "bob")
    assert i2 != i1 and i2.timestamp >= i1.timestamp

    # an edit that changes nothing is not a commit: the ETag stays valid
    assert await b.edit("running", add("2"), "json") == []
    assert ds.info("running") == i2

    await a.edit("startup", add("s"), "json")
    assert ds.info("startup").revision == 3
    assert ds.info("running") == i2  # startup commits do not touch running's ETag

    # candidate edits are not commits; operational and candidate report running's
    await a.edit("candidate", add("c"), "json")
    assert ds.info("running") == i2
    assert ds.info("candidate") == i2
    assert ds.info("operational") == i2
    await a.commit()
    assert ds.info("running").revision == 4

    hist = ds.history("running")
    assert [h.revision for h in hist] == [4, 2, 1]
    assert [h.user for h in hist] == ["alice", "bob", "alice"]
    assert [h.datastore for h in hist] == ["running"] * 3
    assert [h.revision for h in ds.history("running", limit=2)] == [4, 2]
    assert [h.revision for h in ds.history("startup")] == [3]
    with pytest.raises(InvalidValue):
        ds.history("candidate")


# -- leaf values (nfo's edit engine) --------------------------------------------------


async def test_merge_changes_leaf_value(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="one"), "json")
    changes = await s.edit("running", top(name="two"), "json")
    assert changes == [ChangeModified("/nfo-test:top/name", "two", "one")]
    assert tops(ds) == {"name": "two"}


async def test_merge_changes_nf_instance_parameter(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", CATALOG, "json")
    await s.edit("running", instance("e1", "7000"), "json")
    changes = await s.edit("running", instance("e1", "7001"), "json")
    path = "/nfo-instances:nf-instances/nf-instance[name='e1']/parameter[name='port']/value"
    assert changes == [ChangeModified(path, "7001", "7000")]


async def test_leaf_change_survives_reopen(schema: Schema, reopen: Reopen,
                                           ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="one"), "json")
    # top now has name, count (default), item -> hashed lookup, the merge "works"
    await s.edit("running", top(name="two", item=[{"name": "a", "size": 5}]), "json")
    expected = content(ds)
    assert expected == {"nfo-test:top": {"name": "two", "item": [{"name": "a", "size": 5}]}}
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert content(d2) == expected


async def test_leaf_change_in_larger_container_reports_modified(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="one"), "json")
    changes = await s.edit("running", top(name="two", item=[{"name": "a"}]), "json")
    assert ChangeModified("/nfo-test:top/name", "two", "one") in changes
    with ds.get("running") as t:
        assert t.print("json").count('"name":"') == 2  # top/name and item/name, once each


async def test_delete_leaf_without_value(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(thing=[{"id": "t", "needed": "n", "label": "l"}]), "json")
    await s.edit("running", f'<top xmlns="urn:nfo:test" {NC}><thing><id>t</id>'
                            '<label nc:operation="delete"/></thing></top>')
    assert tops(ds)["thing"] == [{"id": "t", "needed": "n"}]


async def test_replace_changes_leaf_value(ds: Datastore) -> None:
    """operation=replace on the parent does change a leaf (as delete + create)."""
    s = ds.internal_session("alice")
    await s.edit("running", top(thing=[{"id": "t", "needed": "old"}]), "json")
    changes = await s.edit(
        "running", f'<top xmlns="urn:nfo:test" {NC}><thing nc:operation="replace">'
                   '<id>t</id><needed>new</needed></thing></top>')
    assert tops(ds)["thing"] == [{"id": "t", "needed": "new"}]
    assert any(isinstance(c, ChangeDeleted | ChangeModified) for c in changes)


# -- durability -------------------------------------------------------------------


async def test_reopen_keeps_running_startup_and_revisions(schema: Schema, reopen: Reopen,
                                                          ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", CATALOG, "json")
    await s.edit("running", instance("e1", "7000", description="echo"), "json")
    await s.edit("running", top(name="n", tags=["b", "a"], colour="nfo-test:red",
                                item=[{"name": "z", "size": 1}, {"name": "a", "size": 2}]),
                 "json")
    await s.copy_config("startup", "running", source_is_datastore=True)
    await s.edit("running", f'<top xmlns="urn:nfo:test" {NC}>'
                            '<item nc:operation="remove"><name>z</name></item></top>')
    running, startup = content(ds), content(ds, "startup")
    infos = {n: ds.info(n) for n in ("running", "startup")}
    history = ds.history("running")
    await ds.close()

    async with reopened(schema, reopen) as d2:
        assert content(d2) == running
        assert content(d2, "startup") == startup
        for n, info in infos.items():
            assert d2.info(n).revision == info.revision
            assert d2.info(n).user == info.user
            assert d2.info(n).timestamp == pytest.approx(info.timestamp)
        assert [(h.revision, h.payload) for h in d2.history("running")] == [
            (h.revision, h.payload) for h in history]
        s2 = d2.internal_session("bob")
        await s2.edit("running", add("next"), "json")
        assert d2.info("running").revision == max(i.revision for i in infos.values()) + 1


async def test_reopen_after_delete_config_keeps_startup_empty(
        schema: Schema, reopen: Reopen, ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("startup", top(name="boot", tags=["x"]), "json")
    await s.edit("startup", CATALOG, "json")
    await s.delete_config("startup")
    assert content(ds, "startup") == {}
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert content(d2, "startup") == {}


async def test_reopen_after_inline_copy_config(schema: Schema, reopen: Reopen,
                                               ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", CATALOG, "json")
    await s.edit("running", top(name="old", item=[{"name": "i", "size": 1}]), "json")
    await s.copy_config("running", top(name="new"), "json")
    expected = content(ds)
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert content(d2) == expected == {"nfo-test:top": {"name": "new"}}


async def test_reopen_after_rollback(schema: Schema, reopen: Reopen, ds: Datastore) -> None:
    s = ds.internal_session("alice")
    await s.edit("running", top(name="v1"), "json")
    r1 = ds.info("running").revision
    await s.edit("running", top(tags=["x"], item=[{"name": "i"}]), "json")
    await s.rollback(r1)
    expected = content(ds)
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert content(d2) == expected == {"nfo-test:top": {"name": "v1"}}


async def test_reopen_after_many_commits_with_snapshots(schema: Schema, reopen: Reopen,
                                                        ds: Datastore) -> None:
    ds.snapshot_every_commits = 3  # exercise snapshot + log replay on load
    s = ds.internal_session("alice")
    for i in range(10):
        await s.edit("running", add(f"i{i}"), "json")
        if i % 3 == 1:
            await s.edit("running", drop(f"i{i - 1}"))
    expected = content(ds)
    rev = ds.info("running").revision
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert content(d2) == expected
        assert d2.info("running").revision == rev


async def test_a_long_log_is_snapshotted_once_the_datastore_is_quiet(
        schema: Schema, reopen: Reopen, ds: Datastore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Below the snapshot-due thresholds but above an eighth of them, the log is
    snapshotted after a quiet spell; a start that replayed such a log does the same."""
    storage = ds.storage
    monkeypatch.setattr(Datastore, "snapshot_min_bytes", 800)
    quiet = 0.5
    monkeypatch.setattr(Datastore, "snapshot_when_quiet", quiet)
    s = ds.internal_session("alice")
    await s.edit("running", add(*(f"bulk-{i:03}" for i in range(200))), "json")
    await wait_for(lambda: storage.since_snapshot("running") == (0, 0))
    snap_rev = ds.info("running").revision
    await s.edit("running", add("one"), "json")  # well below an eighth of the snapshot
    await asyncio.sleep(quiet * 1.4)
    assert storage.since_snapshot("running")[0] == 1
    await s.edit("running", add(*(f"more-{i:02}" for i in range(30))), "json")
    assert storage.since_snapshot("running")[0] == 2  # armed, not due
    await asyncio.sleep(quiet * 0.6)
    await s.edit("running", add("two"), "json")  # each commit puts the quiet spell off
    await asyncio.sleep(quiet * 0.6)  # past the spell after "more", within the one after "two"
    assert storage.since_snapshot("running")[0] == 3
    await wait_for(lambda: storage.since_snapshot("running") == (0, 0))
    snap = storage.snapshot_at("running", ds.info("running").revision)
    assert snap is not None and snap.revision == ds.info("running").revision > snap_rev

    monkeypatch.setattr(Datastore, "snapshot_when_quiet", 0)  # off: the log stays
    await s.edit("running", add(*(f"late-{i:03}" for i in range(100))), "json")
    await asyncio.sleep(0.4)
    tail = storage.since_snapshot("running")
    assert tail[0] == 1
    expected = content(ds)
    await ds.close()
    async with reopened(schema, reopen) as d2:
        await asyncio.sleep(0.4)
        assert d2.storage.since_snapshot("running") == tail
    monkeypatch.setattr(Datastore, "snapshot_when_quiet", 0.2)
    async with reopened(schema, reopen) as d3:  # its start replayed that log
        await wait_for(lambda: d3.storage.since_snapshot("running") == (0, 0))
        assert content(d3) == expected


async def test_candidate_is_not_durable(schema: Schema, reopen: Reopen,
                                        ds: Datastore) -> None:
    """The candidate lives in memory only: after a restart it equals running again."""
    s = ds.internal_session("alice")
    await s.edit("running", add("committed"), "json")
    await s.edit("candidate", top(name="uncommitted", tags=["t"]), "json")
    assert tops(ds, "candidate")["name"] == "uncommitted"
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert content(d2, "candidate") == content(d2) == {
            "nfo-test:top": {"item": [{"name": "committed"}]}}
        s2 = d2.internal_session("bob")
        s2.lock("candidate")  # clean, so lockable


# -- concurrency --------------------------------------------------------------------


async def test_concurrent_edits_are_serialised(ds: Datastore) -> None:
    sessions = [ds.internal_session(f"u{i}") for i in range(8)]
    await asyncio.gather(*(
        s.edit("running", top(item=[{"name": f"i{i}", "size": i}]), "json")
        for i, s in enumerate(sessions)))
    assert sorted(items(ds)) == [f"i{i}" for i in range(8)]
    assert ds.info("running").revision == 8
    assert sorted(h.revision for h in ds.history("running")) == list(range(1, 9))


async def test_candidate_edit_racing_with_commit_is_not_lost(ds: Datastore) -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def slow(ev: ChangeEvent) -> None:
        if ev.phase == "change" and any(
                isinstance(c, ChangeCreated) and c.path.endswith("[name='blocker']")
                for c in ev.changes):
            entered.set()
            await gate.wait()

    ds.subscribe("nfo-test", slow)
    x, a, b = ds.internal_session("x"), ds.internal_session("alice"), ds.internal_session("bob")
    await a.edit("candidate", top(tags=["from-a"]), "json")
    # x's commit holds the write lock inside its change callback
    t_x = asyncio.create_task(x.edit("running", add("blocker"), "json"))
    await entered.wait()
    # bob queues a candidate edit, then alice commits the candidate
    t_b = asyncio.create_task(b.edit("candidate", top(sorted=[42]), "json"))
    await asyncio.sleep(0.01)
    t_a = asyncio.create_task(a.commit())
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(t_x, t_b, t_a)
    # bob's acknowledged edit must be somewhere: committed, or still in the candidate
    assert 42 in tops(ds).get("sorted", []) or 42 in tops(ds, "candidate").get("sorted", [])
