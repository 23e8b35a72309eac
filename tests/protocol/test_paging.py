"""List pagination in the shared read path (draft-ietf-netconf-list-pagination): each
parameter, their combinations, typed sorting, the remaining count, errors, and what
access control hides never being counted.  Real libyang and datastore; the front
ends' own mapping is tested in tests/restconf and tests/netconf."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import Datastore, Identity, SqliteStorage
from nfo.errors import (
    InvalidValue,
    LocaleUnavailable,
    NfoError,
    NotPageable,
    OffsetOutOfRange,
)
from nfo.protocol.errors import http_status, rpc_errors
from nfo.protocol.read import Content, Paging, ReadQuery, encode, paging_of, read
from nfo.schema import Fmt, Schema
from nfo.schema.paging import Direction

YANG = Path(__file__).parent / "yang"
TEST_YANG = Path(__file__).parents[1] / "datastore" / "yang"
M = "/nfo-paging-test:members/member"
REM = "ietf-list-pagination:remaining"

MEMBERS = [
    {"id": "bob", "email": "bob@example.com", "tagline": "here", "big": "-9000000000000000000",
     "ubig": "18000000000000000000", "score": "2.5", "stats": {"joined": "2020-08"},
     "numbers": [3, 1], "post": [{"ts": "1", "body": "a"}, {"ts": "2", "body": "b"},
                                 {"ts": "3", "body": "c"}]},
    {"id": "eric", "email": "eric@example.org", "big": "5", "ubig": "9", "score": "10.25",
     "stats": {"joined": "2020-09"}},
    {"id": "alice", "email": "alice@example.com", "tagline": "every day", "big": "-1",
     "ubig": "18446744073709551615", "score": "-0.001", "stats": {"joined": "2020-07"},
     "numbers": [17, 13, 11, 7, 5, 3]},
    {"id": "lin", "email": "lin@example.net", "tagline": "Zed", "big": "70",
     "score": "2.125", "secret": "s"},
    {"id": "åsa", "email": "asa@example.com", "tagline": "äpple", "big": "0", "ubig": "0",
     "score": "3", "stats": {"joined": "2022-02"}},
]


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(extra_dirs=[TEST_YANG, YANG])


@pytest.fixture
async def ds(schema: Schema, tmp_path: Path) -> AsyncIterator[Datastore]:
    d = Datastore.open(schema, SqliteStorage(tmp_path / "nfo.db"))
    await d.start()
    try:
        async with d.internal_session("seed") as s:
            await s.edit("running", json.dumps(
                {"nfo-paging-test:members": {"member": MEMBERS}}), "json")
        yield d
    finally:
        await d.close()


def page(ds: Any, paging: Paging, select: str = M, datastore: str = "running",
         ) -> dict[str, Any]:
    with read(ds, ReadQuery(datastore, select, paging=paging)) as (tree, _):
        out: dict[str, Any] = json.loads(encode(tree, Fmt.JSON) or "{}")
        return out


def entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = doc.get("nfo-paging-test:members", {}).get("member", [])
    return got


def ids(doc: dict[str, Any]) -> list[str]:
    return [e["id"] for e in entries(doc)]


def remaining(doc: dict[str, Any]) -> int | None:
    es = entries(doc)
    if not es:
        return None
    r = es[0].get("@", {}).get(REM)
    assert all(REM not in e.get("@", {}) for e in es[1:])
    return None if r is None else int(r)


async def test_limit_and_remaining(ds: Datastore) -> None:
    doc = page(ds, Paging(limit=2))
    assert ids(doc) == ["bob", "eric"] and remaining(doc) == 3
    doc = page(ds, Paging(limit=4))
    assert ids(doc) == ["bob", "eric", "alice", "lin"] and remaining(doc) == 1
    for limit in (5, 6):  # nothing left out: no annotation
        doc = page(ds, Paging(limit=limit))
        assert len(ids(doc)) == 5 and remaining(doc) is None


async def test_offset_and_its_end(ds: Datastore) -> None:
    assert ids(page(ds, Paging(offset=3))) == ["lin", "åsa"]
    doc = page(ds, Paging(offset=1, limit=2))
    assert ids(doc) == ["eric", "alice"] and remaining(doc) == 2
    assert ids(page(ds, Paging(offset=5))) == []  # the end itself is an empty page
    with pytest.raises(OffsetOutOfRange) as e:
        page(ds, Paging(offset=6))
    assert e.value.app_tag == "ietf-list-pagination:offset-out-of-range"
    assert e.value.tag == "invalid-value" and e.value.error_type == "application"
    assert http_status(e.value) == 416


async def test_direction(ds: Datastore) -> None:
    assert ids(page(ds, Paging(direction=Direction.BACKWARDS))) == [
        "åsa", "lin", "alice", "eric", "bob"]
    doc = page(ds, Paging(direction=Direction.BACKWARDS, offset=1, limit=2))
    assert ids(doc) == ["lin", "alice"] and remaining(doc) == 2


async def test_sort_by_string_is_by_code_point(ds: Datastore) -> None:
    doc = page(ds, Paging(sort_by="id"))
    assert ids(doc) == ["alice", "bob", "eric", "lin", "åsa"]
    assert entries(doc)[0]["@"]["ietf-list-pagination:locale"] == "C.UTF-8"
    assert ids(page(ds, Paging(sort_by="id", direction=Direction.BACKWARDS))) == [
        "åsa", "lin", "eric", "bob", "alice"]


async def test_sort_by_numbers_64_bit_and_decimal(ds: Datastore) -> None:
    assert ids(page(ds, Paging(sort_by="big"))) == ["bob", "alice", "åsa", "eric", "lin"]
    # uint64 beyond 2^63 and a missing value (lin): numerically, missing last
    assert ids(page(ds, Paging(sort_by="ubig"))) == ["åsa", "eric", "bob", "alice", "lin"]
    # decimal64: 2.125 < 2.5 < 3 < 10.25 (as text "10.25" would come first)
    assert ids(page(ds, Paging(sort_by="score"))) == ["alice", "lin", "bob", "åsa", "eric"]
    assert ids(page(ds, Paging(sort_by="nfo-paging-test:score", limit=1))) == ["alice"]


async def test_missing_values_sort_last_and_backwards_first(ds: Datastore) -> None:
    assert ids(page(ds, Paging(sort_by="tagline"))) == ["lin", "alice", "bob", "åsa", "eric"]
    assert ids(page(ds, Paging(sort_by="stats/joined"))) == [
        "alice", "bob", "eric", "åsa", "lin"]
    assert ids(page(ds, Paging(sort_by="stats/joined", direction=Direction.BACKWARDS))) == [
        "lin", "åsa", "eric", "bob", "alice"]


async def test_leaf_list_sorted_by_its_value(ds: Datastore) -> None:
    sel = f"{M}[id='alice']/numbers"
    doc = page(ds, Paging(limit=2), sel)
    member = entries(doc)[0]
    assert member["numbers"] == [17, 13]
    assert member["@numbers"][0] == {REM: 4} and not any(member["@numbers"][1:])
    doc = page(ds, Paging(sort_by=".", offset=1), sel)
    assert entries(doc)[0]["numbers"] == [5, 7, 11, 13, 17]
    with pytest.raises(InvalidValue):
        page(ds, Paging(sort_by="id"), sel)


async def test_where(ds: Datastore) -> None:
    assert ids(page(ds, Paging(where="contains(email, '@example.com')"))) == [
        "bob", "alice", "åsa"]
    assert ids(page(ds, Paging(where="stats[starts-with(joined, '2020')]"))) == [
        "bob", "eric", "alice"]
    assert ids(page(ds, Paging(where="big > 0"))) == ["eric", "lin"]
    assert ids(page(ds, Paging(where="post"))) == ["bob"]
    sel = f"{M}[id='alice']/numbers"
    assert entries(page(ds, Paging(where=". > 7"), sel))[0]["numbers"] == [17, 13, 11]
    # an expression cannot close the predicate it is evaluated in
    with pytest.raises(InvalidValue):
        page(ds, Paging(where="true()] | /nfo-paging-test:members[true()"))


async def test_all_together_in_the_drafts_order(ds: Datastore) -> None:
    # where, then sort-by, then direction, then offset, then limit
    doc = page(ds, Paging(where="stats/joined", sort_by="id", direction=Direction.BACKWARDS,
                          offset=1, limit=2))
    assert ids(doc) == ["eric", "bob"] and remaining(doc) == 1
    doc = page(ds, Paging(where="email", sort_by="score", offset=1, limit=2))
    assert ids(doc) == ["lin", "bob"] and remaining(doc) == 2


async def test_sublist_limit(ds: Datastore) -> None:
    doc = page(ds, Paging(sublist_limit=1), f"{M}[id='bob']")
    bob = entries(doc)[0]
    assert bob["numbers"] == [3] and bob["@numbers"] == [{REM: 1}]
    assert [p["ts"] for p in bob["post"]] == ["1"] and bob["post"][0]["@"] == {REM: 2}
    doc = page(ds, Paging(limit=2, sublist_limit=2))
    bob = entries(doc)[0]
    assert [p["ts"] for p in bob["post"]] == ["1", "2"]
    assert bob["post"][0]["@"] == {REM: 1} and remaining(doc) == 3
    # the whole datastore: top-level lists too
    doc = page(ds, Paging(sublist_limit=1), None)  # type: ignore[arg-type]
    assert len(entries(doc)) == 1 and remaining(doc) == 4


async def test_pagination_with_depth_and_fields(ds: Datastore) -> None:
    q = ReadQuery("running", M, depth=1, paging=Paging(sort_by="score", limit=2))
    with read(ds, q) as (tree, anchors):
        doc = json.loads(encode(tree, Fmt.JSON))
        assert [a.path for a in anchors] == [f"{M}[id='alice']", f"{M}[id='lin']"]
    assert [set(e) for e in entries(doc)] == [{"@", "id"}, {"id"}]
    q = ReadQuery("running", M, fields=f"{M}/email", paging=Paging(limit=1))
    with read(ds, q) as (tree, _):
        assert entries(json.loads(encode(tree, Fmt.JSON))) == [
            {"@": {REM: 4}, "id": "bob", "email": "bob@example.com"}]


async def test_xml_carries_remaining_as_an_attribute(ds: Datastore) -> None:
    with read(ds, ReadQuery("running", M, paging=Paging(limit=1))) as (tree, _):
        xml = encode(tree, Fmt.XML)
    assert 'xmlns:lpg="urn:ietf:params:xml:ns:yang:ietf-list-pagination"' in xml
    assert 'lpg:remaining="4"' in xml


async def test_state_list_in_operational(ds: Datastore) -> None:
    async with ds.internal_session("logger") as s:
        s.set_oper(json.dumps({"nfo-paging-test:logs": {"log": [
            {"seq": n, "what": f"w{n % 3}"} for n in range(1, 21)]}}), owner="logger")
    with read(ds, ReadQuery("operational", "/nfo-paging-test:logs/log", paging=Paging(
            where="what = 'w1'", sort_by="seq", direction=Direction.BACKWARDS,
            limit=3))) as (tree, _):
        doc = json.loads(encode(tree, Fmt.JSON))["nfo-paging-test:logs"]["log"]
    assert [e["seq"] for e in doc] == [19, 16, 13] and doc[0]["@"][REM] == 4


@pytest.mark.parametrize(("paging", "select", "error", "bad"), [
    (Paging(limit=1), "/nfo-paging-test:members", NotPageable, None),
    (Paging(limit=1), f"{M}/email", NotPageable, None),
    (Paging(sort_by="nosuch"), M, InvalidValue, "sort-by"),
    (Paging(sort_by="post/ts"), M, InvalidValue, "sort-by"),
    (Paging(sort_by="numbers"), M, InvalidValue, "sort-by"),
    (Paging(sort_by="stats"), M, InvalidValue, "sort-by"),
    (Paging(sort_by="."), M, InvalidValue, "sort-by"),
    (Paging(where="email = ]"), M, InvalidValue, "where"),
    (Paging(where="nosuch:email = 'x'"), M, InvalidValue, "where"),
    (Paging(where="nosuch = 'x'"), M, InvalidValue, "where"),
    (Paging(where="stats[nosuch]"), M, InvalidValue, "where"),
    (Paging(locale="C"), M, InvalidValue, "locale"),
    (Paging(sort_by="id", locale="sv_SE"), M, LocaleUnavailable, "locale"),
])
async def test_errors(ds: Datastore, paging: Paging, select: str, error: type[NfoError],
                      bad: str | None) -> None:
    with pytest.raises(error) as e:
        page(ds, paging, select)
    assert type(e.value) is error
    if bad is not None:
        assert e.value.info["bad-element"] == bad
    assert "<rpc-error>" in rpc_errors(e.value)


async def test_whole_datastore_is_not_pageable(ds: Datastore) -> None:
    with pytest.raises(NotPageable) as e:
        page(ds, Paging(limit=1), None)  # type: ignore[arg-type]
    assert http_status(e.value) == 400 and e.value.tag == "operation-not-supported"


def test_parameters_from_text() -> None:
    assert paging_of({}) is None
    p = paging_of({"limit": "5", "offset": "2", "direction": "backwards", "sort-by": "a/b",
                   "where": "x > 1", "sublist-limit": "unbounded"})
    assert p == Paging(where="x > 1", sort_by="a/b", direction=Direction.BACKWARDS,
                       offset=2, limit=5)
    assert paging_of({"limit": "unbounded", "sort-by": "none", "where": "unfiltered"}) == Paging()
    for params in ({"limit": "0"}, {"limit": "-1"}, {"limit": "1.5"}, {"limit": "4294967296"},
                   {"offset": "-1"}, {"offset": "x"}, {"direction": "up"},
                   {"sublist-limit": "0"}, {"sort-by": ""}):
        with pytest.raises(InvalidValue) as e:
            paging_of(params)
        assert e.value.info["bad-element"] == next(iter(params))


async def test_hidden_entries_are_never_counted(ds: Datastore) -> None:
    rules = {"ietf-netconf-acm:nacm": {"enable-nacm": True, "read-default": "permit",
                                       "groups": {"group": [{"name": "g", "user-name": ["carol"]}]},
                                       "rule-list": [{"name": "r", "group": ["g"], "rule": [
        {"name": "no-eric", "path": f"{M}[id='eric']", "access-operations": "read",
         "action": "deny"},
        {"name": "no-alice", "path": f"{M}[id='alice']", "access-operations": "read",
         "action": "deny"},
        {"name": "no-secret", "path": f"{M}/secret", "access-operations": "read",
         "action": "deny"}]}]}}
    async with ds.internal_session("rules") as s:
        await s.edit("running", json.dumps(rules), "json")
    carol = ds.reader(Identity("carol"))
    doc = page(carol, Paging(limit=1))
    assert ids(doc) == ["bob"] and remaining(doc) == 2
    assert ids(page(carol, Paging(sort_by="score"))) == ["lin", "bob", "åsa"]
    # a hidden value is missing: it sorts last and where cannot test it
    assert ids(page(carol, Paging(sort_by="secret"))) == ["bob", "lin", "åsa"]
    assert ids(page(carol, Paging(where="secret = 's'"))) == []
    with pytest.raises(OffsetOutOfRange):
        page(carol, Paging(offset=4))
    assert ids(page(ds.reader(Identity("dave")), Paging(offset=4))) == ["åsa"]


async def test_with_origin_and_content_before_the_page(ds: Datastore) -> None:
    q = ReadQuery("operational", M, with_origin=True, paging=Paging(sort_by="id", limit=1))
    with read(ds, q) as (tree, _):
        doc = json.loads(encode(tree, Fmt.JSON))
    first = entries(doc)[0]
    assert first["id"] == "alice" and first["@"][REM] == 4
    # the origin annotations stay with the page (entries inherit the container's here)
    assert doc["nfo-paging-test:members"]["@"] == {"ietf-origin:origin": "ietf-origin:intended"}
    q = ReadQuery("operational", M, content=Content.NONCONFIG, paging=Paging(limit=1))
    with read(ds, q) as (tree, _):
        assert entries(json.loads(encode(tree, Fmt.JSON) or "{}")) == []
