"""YANG Patch (RFC 8072) against a real Datastore: every operation, positions,
ordered and all-or-nothing application, envelope errors, JSON and XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nfo.datastore import ChangeEvent, Datastore, Session
from nfo.errors import Veto
from nfo.restconf.codec import JSON_TYPE as JSON_MEDIA_TYPE
from nfo.restconf.codec import XML_TYPE as XML_MEDIA_TYPE
from nfo.restconf.yangpatch import YANG_PATCH_NS, PatchResult, apply_yang_patch

YP = f"{{{YANG_PATCH_NS}}}"
TOP = "/nfo-test:top"


@pytest.fixture
async def session(ds: Datastore) -> AsyncIterator[Session]:
    s = ds.internal_session("admin")
    try:
        yield s
    finally:
        await s.close()


def jpatch(*edits: dict[str, Any], pid: str = "p1", comment: str | None = None) -> bytes:
    body: dict[str, Any] = {"patch-id": pid, "edit": list(edits)}
    if comment is not None:
        body["comment"] = comment
    return json.dumps({"ietf-yang-patch:yang-patch": body}).encode()


def edit(eid: str, op: str, target: str, value: Any = None, **kw: str) -> dict[str, Any]:
    e: dict[str, Any] = {"edit-id": eid, "operation": op, "target": target, **kw}
    if value is not None:
        e["value"] = value
    return e


def item(name: str, **leaves: Any) -> dict[str, Any]:
    return {"nfo-test:item": [{"name": name, **leaves}]}


def top(ds: Datastore) -> dict[str, Any]:
    with ds.get("running") as t:
        doc = json.loads(t.print("json"))
    return dict(doc.get("nfo-test:top", {}))


def items(ds: Datastore) -> list[str]:
    return [i["name"] for i in top(ds).get("item", [])]


def ok(r: PatchResult, pid: str = "p1") -> None:
    assert r.status == 200, r.body
    assert r.content_type == JSON_MEDIA_TYPE
    assert json.loads(r.body) == {"ietf-yang-patch:yang-patch-status": {"patch-id": pid,
                                                                        "ok": [None]}}


def failed_edit(r: PatchResult) -> tuple[str, dict[str, Any]]:
    """(edit-id, first error) of a failed patch's JSON status."""
    st = json.loads(r.body)["ietf-yang-patch:yang-patch-status"]
    assert "ok" not in st
    edits = st["edit-status"]["edit"]
    assert len(edits) == 1, "only the failing edit is reported"
    return edits[0]["edit-id"], edits[0]["errors"]["error"][0]


async def seed(session: Session, *names: str, tags: tuple[str, ...] = ()) -> None:
    body = {"nfo-test:top": {"item": [{"name": n} for n in names], "tags": list(tags)}}
    await session.edit("running", json.dumps(body), "json")


# -- every operation ----------------------------------------------------------


async def test_create_at_root_and_below(ds: Datastore, session: Session) -> None:
    r = await apply_yang_patch(session, "running", "/", jpatch(
        edit("e1", "create", TOP, {"nfo-test:top": {"name": "n"}}),
        edit("e2", "create", "/nfo-test:top/item=a", item("a", size=5)),
        edit("e3", "create", "/nfo-test:top/pair=x,3", {"nfo-test:pair": [{"a": "x", "b": 3,
                                                                          "v": "v"}]}),
    ), "json")
    ok(r)
    t = top(ds)
    assert t["name"] == "n"
    assert t["item"] == [{"name": "a", "size": 5}]
    assert t["pair"] == [{"a": "x", "b": 3, "v": "v"}]


async def test_create_existing_is_data_exists(ds: Datastore, session: Session) -> None:
    await seed(session, "a")
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("e1", "create", "/item=a", item("a"))), "json")
    assert r.status == 409
    eid, err = failed_edit(r)
    assert eid == "e1"
    assert err["error-tag"] == "data-exists"
    assert err["error-type"] == "application"
    assert err["error-path"] == "/nfo-test:top/item[name='a']"
    assert err["error-message"]


async def test_merge_and_replace(ds: Datastore, session: Session) -> None:
    await session.edit("running", json.dumps({"nfo-test:top": {
        "name": "old", "item": [{"name": "a", "size": 1}]}}), "json")
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("m1", "merge", "/name", {"nfo-test:name": "new"}),
        edit("m2", "merge", "/item=b", item("b", size=2)),
        edit("r1", "replace", "/item=a", item("a")),
    ), "json")
    ok(r)
    t = top(ds)
    assert t["name"] == "new"
    assert t["item"] == [{"name": "a"}, {"name": "b", "size": 2}]  # replace dropped size


async def test_replace_whole_container(ds: Datastore, session: Session) -> None:
    await seed(session, "a", "b", tags=("x",))
    r = await apply_yang_patch(session, "running", "", jpatch(
        edit("r", "replace", TOP, {"nfo-test:top": {"item": [{"name": "c"}]}})), "json")
    ok(r)
    assert top(ds) == {"item": [{"name": "c"}]}


async def test_delete_and_remove(ds: Datastore, session: Session) -> None:
    await session.edit("running", json.dumps({"nfo-test:top": {
        "name": "n", "colour": "nfo-test:red", "item": [{"name": "a"}, {"name": "b"}],
        "tags": ["x", "y"]}}), "json")
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("d1", "delete", "/item=a"),
        edit("d2", "delete", "/name"),
        edit("d3", "delete", "/tags=y"),
        edit("r1", "remove", "/colour"),
        edit("r2", "remove", "/item=zzz"),     # absent: remove is quiet
        edit("r3", "remove", "/addr"),         # absent leaf, nowhere to be found
    ), "json")
    ok(r)
    assert top(ds) == {"item": [{"name": "b"}], "tags": ["x"]}


async def test_delete_missing_is_data_missing(ds: Datastore, session: Session) -> None:
    await seed(session, "a")
    for target in ("/item=nope", "/name", "/tags=q"):
        r = await apply_yang_patch(session, "running", TOP, jpatch(
            edit("ok", "merge", "/item=b", item("b")),
            edit("bad", "delete", target)), "json")
        assert r.status == 409, target
        eid, err = failed_edit(r)
        assert (eid, err["error-tag"]) == ("bad", "data-missing"), target
    assert items(ds) == ["a"]


async def test_delete_leaf_created_earlier_in_the_patch(ds: Datastore, session: Session) -> None:
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("c", "merge", "/name", {"nfo-test:name": "tmp"}),
        edit("d", "delete", "/name")), "json")
    ok(r)
    assert "name" not in top(ds)


async def test_insert_list_entries(ds: Datastore, session: Session) -> None:
    await seed(session, "a", "b")
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "insert", "/item=first", item("first"), where="first"),
        edit("2", "insert", "/item=last", item("last")),             # where defaults to last
        edit("3", "insert", "/item=mid", item("mid"), where="after", point="/item=a"),
        edit("4", "insert", "/item=pre", item("pre"), where="before", point="/item=b"),
    ), "json")
    ok(r)
    assert items(ds) == ["first", "a", "mid", "pre", "b", "last"]


async def test_insert_existing_entry_is_refused(ds: Datastore, session: Session) -> None:
    await seed(session, "a", "b")
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "insert", "/item=b", item("b"), where="first")), "json")
    assert r.status == 409
    assert failed_edit(r)[1]["error-tag"] == "data-exists"
    assert items(ds) == ["a", "b"]


async def test_insert_leaf_list_entries(ds: Datastore, session: Session) -> None:
    await seed(session, tags=("a", "b"))
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "insert", "/tags=z", {"nfo-test:tags": ["z"]}, where="first"),
        edit("2", "insert", "/tags=m", {"nfo-test:tags": ["m"]}, where="after", point="/tags=a"),
        edit("3", "insert", "/tags=with%20space", {"nfo-test:tags": ["with space"]},
             where="before", point="/tags=b"),
        edit("4", "insert", "/tags=end", {"nfo-test:tags": ["end"]}, where="last"),
    ), "json")
    ok(r)
    assert top(ds)["tags"] == ["z", "a", "m", "with space", "b", "end"]


async def test_insert_point_errors(ds: Datastore, session: Session) -> None:
    await seed(session, "a", tags=("t",))
    # the point does not exist
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "insert", "/item=n", item("n"), where="after", point="/item=ghost")), "json")
    assert r.status == 400
    assert failed_edit(r)[0] == "1"
    # the point is in another list
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "insert", "/item=n", item("n"), where="after", point="/tags=t")), "json")
    assert r.status == 400
    eid, err = failed_edit(r)
    assert eid == "1"
    assert "same list" in err["error-message"]
    # insert into a list that is not ordered-by user
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "insert", "/pair=a,1", {"nfo-test:pair": [{"a": "a", "b": 1}]})), "json")
    assert r.status == 400
    assert "ordered-by user" in failed_edit(r)[1]["error-message"]
    assert items(ds) == ["a"]


async def test_move_list_and_leaf_list(ds: Datastore, session: Session) -> None:
    await seed(session, "a", "b", "c", tags=("x", "y", "z"))
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "move", "/item=c", where="first"),
        edit("2", "move", "/item=c", where="after", point="/item=a"),
        edit("3", "move", "/tags=x", where="last"),
        edit("4", "move", "/tags=z", where="before", point="/tags=y"),
    ), "json")
    ok(r)
    assert items(ds) == ["a", "c", "b"]
    assert top(ds)["tags"] == ["z", "y", "x"]


async def test_move_keeps_content(ds: Datastore, session: Session) -> None:
    await session.edit("running", json.dumps({"nfo-test:top": {"item": [
        {"name": "a", "size": 1}, {"name": "b", "size": 2}]}}), "json")
    ok(await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "move", "/item=b", where="first")), "json"))
    assert top(ds)["item"] == [{"name": "b", "size": 2}, {"name": "a", "size": 1}]


async def test_move_needs_an_existing_entry(ds: Datastore, session: Session) -> None:
    await seed(session, "a", "b")
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "move", "/item=ghost", where="first")), "json")
    assert r.status == 409
    assert failed_edit(r)[0] == "1"
    assert failed_edit(r)[1]["error-tag"] == "data-missing"
    # deleted by an earlier edit of the same patch: missing too
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "delete", "/item=a"),
        edit("2", "move", "/item=a", where="first")), "json")
    assert failed_edit(r)[0] == "2"
    # created by an earlier edit: fine
    ok(await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "create", "/item=new", item("new")),
        edit("2", "move", "/item=new", where="first")), "json"))
    assert items(ds) == ["new", "a", "b"]


# -- order, atomicity, failure location ---------------------------------------


async def test_edits_apply_in_order(ds: Datastore, session: Session) -> None:
    await seed(session, "a")
    ok(await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "delete", "/item=a"),
        edit("2", "create", "/item=a", item("a", size=9)),   # only valid after edit 1
        edit("3", "merge", "/item=a", item("a", size=10)),
    ), "json"))
    assert top(ds)["item"] == [{"name": "a", "size": 10}]
    # the reverse order fails: create before delete
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "create", "/item=a", item("a")),
        edit("2", "delete", "/item=a")), "json")
    assert failed_edit(r)[0] == "1"


async def test_all_or_nothing_third_edit_fails(ds: Datastore, session: Session) -> None:
    await seed(session, "a")
    before = top(ds)
    rev = ds.info("running").revision
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("edit1", "create", "/item=b", item("b")),
        edit("edit2", "merge", "/name", {"nfo-test:name": "changed"}),
        edit("edit3", "create", "/item=a", item("a")),
        edit("edit4", "create", "/item=c", item("c")),
    ), "json")
    assert r.status == 409
    eid, err = failed_edit(r)
    assert eid == "edit3"
    assert err["error-tag"] == "data-exists"
    assert top(ds) == before
    assert ds.info("running").revision == rev


async def test_validation_failure_is_located(ds: Datastore, session: Session) -> None:
    await seed(session, "a")
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "merge", "/item=b", item("b", size=1)),
        edit("2", "merge", "/item=a", item("a", size=5000)),   # must ". < 1000"
        edit("3", "merge", "/item=c", item("c", size=2)),
    ), "json")
    assert r.status == 400  # the client's data fails a must: 400, as through PUT
    eid, err = failed_edit(r)
    assert eid == "2"
    assert err["error-tag"] == "operation-failed"
    assert err["error-app-tag"] == "size-too-big"
    assert items(ds) == ["a"]


async def test_one_validation_of_the_result(ds: Datastore, session: Session) -> None:
    """A thing without its mandatory leaf is fine as long as a later edit adds it."""
    ok(await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "create", "/thing=t1", {"nfo-test:thing": [{"id": "t1"}]}),
        edit("2", "merge", "/thing=t1/needed", {"nfo-test:needed": "yes"}),
    ), "json"))
    assert top(ds)["thing"] == [{"id": "t1", "needed": "yes"}]


async def test_transient_invalid_prefix_is_not_blamed(ds: Datastore, session: Session) -> None:
    """Edit 1 alone fails validation (mandatory leaf), but the patch fails at edit 3."""
    await seed(session, "a")
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "create", "/thing=t1", {"nfo-test:thing": [{"id": "t1"}]}),
        edit("2", "merge", "/thing=t1/needed", {"nfo-test:needed": "yes"}),
        edit("3", "create", "/item=a", item("a")),
    ), "json")
    assert failed_edit(r)[0] == "3"
    # and a result that stays invalid is blamed on the edit that made it so
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "merge", "/item=b", item("b")),
        edit("2", "create", "/thing=t1", {"nfo-test:thing": [{"id": "t1"}]}),
    ), "json")
    eid, err = failed_edit(r)
    assert eid == "2"
    assert err["error-tag"] == "data-missing"


async def test_veto_is_a_global_error(ds: Datastore, session: Session) -> None:
    async def refuse(ev: ChangeEvent) -> None:
        if ev.phase == "change":
            raise Veto("not today")
    sub = ds.subscribe("nfo-test", refuse)
    try:
        r = await apply_yang_patch(session, "running", TOP, jpatch(
            edit("1", "merge", "/item=a", item("a"))), "json")
    finally:
        await ds.unsubscribe(sub)
    assert r.status == 409
    st = json.loads(r.body)["ietf-yang-patch:yang-patch-status"]
    assert "edit-status" not in st
    assert st["errors"]["error"][0]["error-message"] == "not today"
    assert items(ds) == []


async def test_lock_is_a_global_error(ds: Datastore, session: Session) -> None:
    other = ds.internal_session("other")
    other.lock("running")
    try:
        r = await apply_yang_patch(session, "running", TOP, jpatch(
            edit("1", "merge", "/item=a", item("a"))), "json")
    finally:
        await other.close()
    assert r.status == 409
    st = json.loads(r.body)["ietf-yang-patch:yang-patch-status"]
    assert st["errors"]["error"][0]["error-tag"] == "in-use"
    assert "edit-status" not in st


async def test_candidate_datastore(ds: Datastore, session: Session) -> None:
    ok(await apply_yang_patch(session, "candidate", TOP, jpatch(
        edit("1", "merge", "/item=a", item("a"))), "json"))
    assert items(ds) == []
    await session.commit()
    assert items(ds) == ["a"]


async def test_operational_is_refused(session: Session) -> None:
    r = await apply_yang_patch(session, "operational", TOP, jpatch(
        edit("1", "merge", "/item=a", item("a"))), "json")
    assert r.status == 400
    assert "errors" in json.loads(r.body)["ietf-yang-patch:yang-patch-status"]


# -- targets ------------------------------------------------------------------


async def test_targets_relative_to_a_list_entry(ds: Datastore, session: Session) -> None:
    await session.edit("running", json.dumps({"nfo-test:top": {"pair": [
        {"a": "x,y", "b": 2, "v": "old"}]}}), "json")
    target = "/nfo-test:top/pair=x%2Cy,2"
    ok(await apply_yang_patch(session, "running", target, jpatch(
        edit("1", "merge", "/v", {"nfo-test:v": "new"})), "json"))
    assert top(ds)["pair"] == [{"a": "x,y", "b": 2, "v": "new"}]
    # "/" is the target resource itself
    ok(await apply_yang_patch(session, "running", target, jpatch(
        edit("1", "replace", "/", {"nfo-test:pair": [{"a": "x,y", "b": 2}]})), "json"))
    assert top(ds)["pair"] == [{"a": "x,y", "b": 2}]
    # percent-encoded comma inside a key, module-qualified first segment
    ok(await apply_yang_patch(session, "running", "", jpatch(
        edit("1", "delete", "/nfo-test:top/pair=x%2Cy,2")), "json"))
    assert "pair" not in top(ds)


@pytest.mark.parametrize(("target", "edit_target", "text"), [
    ("", "/top", "module name"),
    ("", "/", "not the datastore"),
    (TOP, "/nope", "unknown node"),
    (TOP, "/item", "key value"),
    (TOP, "/pair=onlyone", "2 key(s)"),
    (TOP, "/tags", "needs its value"),
    (TOP, "/name=x", "takes no"),
    (TOP, "/state", "not configuration"),
    (TOP, "item=a", "must start"),
    (TOP, "/item=%ff", "percent"),
    ("", "/ghost-module:top", "unknown module"),
])
async def test_bad_targets(session: Session, target: str, edit_target: str, text: str) -> None:
    r = await apply_yang_patch(session, "running", target, jpatch(
        edit("ok", "merge", "/nfo-test:top/name" if not target else "/name",
             {"nfo-test:name": "n"}),
        edit("bad", "remove", edit_target)), "json")
    assert r.status == 400, r.body
    eid, err = failed_edit(r)
    assert eid == "bad"
    assert text in err["error-message"]


async def test_value_must_match_target(ds: Datastore, session: Session) -> None:
    for value in (item("b"), {"nfo-test:name": "x"},
                  {"nfo-test:item": [{"name": "a"}, {"name": "b"}]}):
        r = await apply_yang_patch(session, "running", TOP, jpatch(
            edit("1", "merge", "/item=a", value)), "json")
        assert r.status == 400, value
        assert failed_edit(r)[0] == "1"
    # unknown nodes and bad types in a value are refused by libyang
    for value in (item("a", nope=1), item("a", size="big")):
        r = await apply_yang_patch(session, "running", TOP, jpatch(
            edit("1", "merge", "/item=a", value)), "json")
        assert r.status == 400, value
    # a value carrying its own operations
    r = await apply_yang_patch(session, "running", TOP, jpatch(edit(
        "1", "merge", "/item=a", {"nfo-test:item": [{"name": "a", "size": 1, "@size": {
            "ietf-netconf:operation": "delete"}}]})), "json")
    assert r.status == 400
    assert "metadata" in failed_edit(r)[1]["error-message"]
    assert items(ds) == []


# -- envelope errors ----------------------------------------------------------


@pytest.mark.parametrize(("edits", "culprit", "text"), [
    ([{"operation": "merge", "target": "/item=a", "value": item("a")}], None, "edit-id"),
    ([edit("1", "frobnicate", "/item=a")], "1", "unknown operation"),
    ([edit("1", "merge", "/item=a", item("a")), edit("1", "merge", "/item=b", item("b"))],
     None, "used twice"),
    ([edit("1", "create", "/item=a")], "1", "needs a value"),
    ([edit("1", "merge", "/item=a")], "1", "needs a value"),
    ([edit("1", "replace", "/item=a")], "1", "needs a value"),
    ([edit("1", "insert", "/item=a")], "1", "needs a value"),
    ([edit("1", "delete", "/item=a", item("a"))], "1", "takes no value"),
    ([edit("1", "remove", "/item=a", item("a"))], "1", "takes no value"),
    ([edit("1", "insert", "/item=a", item("a"), where="before")], "1", "needs a point"),
    ([edit("1", "move", "/item=a", where="after")], "1", "needs a point"),
    ([edit("1", "move", "/item=a", where="first", point="/item=b")], "1", "point is only"),
    ([edit("1", "move", "/item=a", where="sideways")], "1", "invalid where"),
    ([edit("1", "merge", "/item=a", item("a"), where="first")], "1", "only allowed"),
    ([{"edit-id": "1", "operation": "merge"}], "1", "no target"),
    ([{"edit-id": "1", "target": "/item=a"}], "1", "no operation"),
    ([{"edit-id": "1", "operation": "merge", "target": "/item=a", "value": item("a"),
       "colour": "red"}], "1", "unknown member"),
    ([{"edit-id": "1", "operation": "merge", "target": 5, "value": item("a")}], "1",
     "must be a string"),
    ([edit("1", "merge", "/item=a", [1])], "1", "must be an object"),
])
async def test_envelope_errors(ds: Datastore, session: Session, edits: list[dict[str, Any]],
                               culprit: str | None, text: str) -> None:
    r = await apply_yang_patch(session, "running", TOP, jpatch(*edits), "json")
    assert r.status == 400, r.body
    st = json.loads(r.body)["ietf-yang-patch:yang-patch-status"]
    assert st["patch-id"] == "p1"
    if culprit is None:
        err = st["errors"]["error"][0]
    else:
        assert st["edit-status"]["edit"][0]["edit-id"] == culprit
        err = st["edit-status"]["edit"][0]["errors"]["error"][0]
    assert text in err["error-message"]
    assert items(ds) == []


@pytest.mark.parametrize(("body", "text"), [
    (b'{"ietf-yang-patch:yang-patch": {"patch-id": "p", "edit": [', "malformed JSON"),
    (b'{"ietf-yang-patch:yang-patch": {"edit": []}}', "patch-id"),
    (b'{"yang-patch": {"patch-id": "p"}}', "ietf-yang-patch:yang-patch"),
    (b'{"ietf-yang-patch:yang-patch": {"patch-id": "p", "patch-id": "q"}}', "appears twice"),
    (b'{"ietf-yang-patch:yang-patch": {"patch-id": "p", "extra": 1}}', "unknown member"),
])
async def test_unusable_bodies(session: Session, body: bytes, text: str) -> None:
    r = await apply_yang_patch(session, "running", TOP, body, "json")
    assert r.status == 400
    err = json.loads(r.body)["ietf-restconf:errors"]["error"][0]
    assert text in err["error-message"]
    assert err["error-tag"] in ("malformed-message", "missing-element", "unknown-element")


async def test_empty_patch_is_ok(ds: Datastore, session: Session) -> None:
    rev = ds.info("running").revision
    ok(await apply_yang_patch(session, "running", TOP, jpatch(), "json"))
    assert ds.info("running").revision == rev


async def test_comment_is_the_commit_label(ds: Datastore, session: Session) -> None:
    ok(await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "merge", "/item=a", item("a")), pid="audit-7", comment="add a"), "json"),
        pid="audit-7")
    assert ds.history("running", limit=1)[0].label == "yang-patch audit-7: add a"


# -- XML ------------------------------------------------------------------------


def xpatch(edits: str, pid: str = "p1") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<yang-patch xmlns="{YANG_PATCH_NS}" xmlns:t="urn:nfo:test">\n'
            f"  <patch-id>{pid}</patch-id>\n  <comment>xml</comment>\n{edits}</yang-patch>"
            ).encode()


def xedit(eid: str, op: str, target: str, value: str = "", extra: str = "") -> str:
    v = f"<value>{value}</value>" if value else ""
    return (f"  <edit><edit-id>{eid}</edit-id><operation>{op}</operation>"
            f"<target>{target}</target>{extra}{v}</edit>\n")


async def test_xml_body_and_reply(ds: Datastore, session: Session) -> None:
    await seed(session, "a")
    body = xpatch(
        # identityref value whose prefix is declared on the yang-patch element
        xedit("1", "merge", "/colour", '<colour xmlns="urn:nfo:test">t:blue</colour>')
        # a prefix declared inside the value
        + xedit("2", "create", "/item=b",
                '<x:item xmlns:x="urn:nfo:test"><x:name>b</x:name><x:size>4</x:size></x:item>')
        + xedit("3", "insert", "/tags=q", '<tags xmlns="urn:nfo:test">q</tags>',
                "<where>first</where>")
        + xedit("4", "move", "/item=b", extra="<where>before</where><point>/item=a</point>"))
    r = await apply_yang_patch(session, "running", TOP, body, "xml")
    assert r.status == 200, r.body
    assert r.content_type == XML_MEDIA_TYPE
    root = ET.fromstring(r.body)
    assert root.tag == f"{YP}yang-patch-status"
    assert root.findtext(f"{YP}patch-id") == "p1"
    assert root.find(f"{YP}ok") is not None
    t = top(ds)
    assert t["colour"] == "nfo-test:blue"
    assert t["item"] == [{"name": "b", "size": 4}, {"name": "a"}]
    assert t["tags"] == ["q"]


async def test_xml_failure_reply(ds: Datastore, session: Session) -> None:
    await seed(session, "a")
    r = await apply_yang_patch(session, "running", TOP, xpatch(
        xedit("e1", "merge", "/item=z", '<item xmlns="urn:nfo:test"><name>z</name></item>')
        + xedit("e2", "create", "/item=a", '<item xmlns="urn:nfo:test"><name>a</name></item>')),
        "xml")
    assert r.status == 409
    root = ET.fromstring(r.body)
    assert root.tag == f"{YP}yang-patch-status"
    assert root.find(f"{YP}ok") is None
    edits = root.findall(f"{YP}edit-status/{YP}edit")
    assert [e.findtext(f"{YP}edit-id") for e in edits] == ["e2"]
    err = edits[0].find(f"{YP}errors/{YP}error")
    assert err is not None
    assert err.findtext(f"{YP}error-tag") == "data-exists"
    assert err.findtext(f"{YP}error-type") == "application"
    path = err.find(f"{YP}error-path")
    # an XML instance-identifier: every node name prefixed (RFC 7950 section 9.13.2)
    assert path is not None
    assert path.text == "/nfo-test:top/nfo-test:item[nfo-test:name='a']"
    assert b'xmlns:nfo-test="urn:nfo:test"' in r.body.encode()
    assert items(ds) == ["a"]


async def test_json_body_xml_reply_and_back(ds: Datastore, session: Session) -> None:
    r = await apply_yang_patch(session, "running", TOP, jpatch(
        edit("1", "merge", "/item=a", item("a"))), "json", "xml")
    assert r.content_type == XML_MEDIA_TYPE
    assert ET.fromstring(r.body).find(f"{YP}ok") is not None
    r = await apply_yang_patch(session, "running", TOP, xpatch(
        xedit("1", "delete", "/item=a")), "xml", "json")
    ok(r)
    assert items(ds) == []


@pytest.mark.parametrize(("body", "text"), [
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>'
     b'<yang-patch xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-patch"/>', "DOCTYPE"),
    (b'<!DOCTYPE yang-patch SYSTEM "http://example.invalid/x.dtd">'
     b'<yang-patch xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-patch"/>', "DOCTYPE"),
    (b"<yang-patch", "well-formed XML"),
    (b'<yang-patch xmlns="urn:wrong"><patch-id>p</patch-id></yang-patch>', "namespace"),
    (b'<yang-patch xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-patch"/>', "patch-id"),
])
async def test_unusable_xml_bodies(session: Session, body: bytes, text: str) -> None:
    r = await apply_yang_patch(session, "running", TOP, body, "xml")
    assert r.status == 400
    root = ET.fromstring(r.body)
    assert root.tag == "{urn:ietf:params:xml:ns:yang:ietf-restconf}errors"
    msg = root.findtext(
        "{urn:ietf:params:xml:ns:yang:ietf-restconf}error/"
        "{urn:ietf:params:xml:ns:yang:ietf-restconf}error-message")
    assert msg is not None and text in msg


async def test_xml_envelope_errors(session: Session) -> None:
    r = await apply_yang_patch(session, "running", TOP, xpatch(
        xedit("1", "merge", "/item=a", '<item xmlns="urn:nfo:test"><name>a</name></item>')
        + xedit("2", "delete", "/item=a", '<item xmlns="urn:nfo:test"><name>a</name></item>')),
        "xml")
    assert r.status == 400
    root = ET.fromstring(r.body)
    assert root.findtext(f"{YP}edit-status/{YP}edit/{YP}edit-id") == "2"
    r = await apply_yang_patch(session, "running", TOP, xpatch(
        "<edit><edit-id>1</edit-id><operation>merge</operation><bogus/></edit>"), "xml")
    assert r.status == 400
    assert "bogus" in r.body
