"""The compact observed state reads and writes as the dict it replaces."""

from __future__ import annotations

import sys

import pytest

from nfo.schema.values import format_time
from nfo.workload.observed import Observed

RUNNING = {"oper-status": "running", "vim": "sim", "driver": "sim",
           "vim-resource-id": "r-1", "placement-reason": "first fit",
           "spec-digest": "abc", "attempts": 1, "created": "2026-12-06T18:00:00.123456Z",
           "last-change": "2026-12-06T18:00:01.000001Z"}


def test_it_holds_what_a_dict_held() -> None:
    o = Observed(RUNNING)
    assert o == RUNNING and dict(o) == RUNNING and {**o} == RUNNING
    assert len(o) == len(RUNNING) and set(o) == set(RUNNING)
    o["reason"] = "why"
    o["config"] = {"status": "in-sync"}
    assert o["reason"] == "why" and o.get("config") == {"status": "in-sync"}
    assert o.pop("reason") == "why" and "reason" not in o
    assert o.get("next-retry", 7) == 7
    with pytest.raises(KeyError):
        o["next-retry"]


def test_none_is_absent() -> None:
    o = Observed({**RUNNING, "reason": None, "next-retry": None})
    assert "reason" not in o and "next-retry" not in o and o == RUNNING
    o["vim-resource-id"] = None
    o["config"] = {"a": 1}
    o["config"] = None
    assert "vim-resource-id" not in o and "config" not in o
    assert o.get("vim-resource-id") is None
    assert o._more is None  # the dict of the rare fields goes with its last field


def test_times_are_kept_as_numbers_only_when_their_text_comes_back() -> None:
    o = Observed(RUNNING)
    assert type(o._created) is int and type(o._changed) is int
    assert o["created"] == RUNNING["created"]
    now = format_time(1_765_000_000.5)
    o["last-change"] = now
    assert type(o._changed) is int and o["last-change"] == now
    for text in ("2026-12-06T18:00:00Z", "2026-12-06T18:00:00.123456+00:00",
                 "2026-12-06T18:00:00.123456z", "1969-12-31T23:59:59.999999Z",
                 "not a time at all, but 27Z"):
        o["created"] = text
        assert o["created"] == text
    assert o["created"] == "not a time at all, but 27Z"
    o["created"] = 1_765_000_000.25  # Unix seconds: read as their text
    assert type(o._created) is int and o["created"] == format_time(1_765_000_000.25)
    o["created"] = -1.5
    assert o["created"] == format_time(-1.5)
    o["created"] = RUNNING["created"]
    o["last-change"] = None
    assert o["created"] == RUNNING["created"] and "last-change" not in o
    o["created"] = None
    assert "created" not in o and o._times is None
    o["last-change"] = RUNNING["last-change"]
    assert o["last-change"] == RUNNING["last-change"] and "created" not in o


def test_both_times_are_one_number() -> None:
    o = Observed(RUNNING)
    assert type(o._times) is int
    assert (o["created"], o["last-change"]) == (RUNNING["created"], RUNNING["last-change"])
    o["created"] = "2026-12-06T18:00:00Z"  # a text that is not its canonical form
    assert o["created"] == "2026-12-06T18:00:00Z"
    assert o["last-change"] == RUNNING["last-change"]


def test_it_is_smaller_than_the_dict() -> None:
    o = Observed(RUNNING)
    held = sys.getsizeof(o) + sys.getsizeof(o._times)
    before = (sys.getsizeof(dict(RUNNING)) + sys.getsizeof(RUNNING["created"])
              + sys.getsizeof(RUNNING["last-change"]))
    assert held < before / 2
    assert not hasattr(o, "__dict__")


def test_repeated_values_are_one_copy_and_a_copy_is_its_own() -> None:
    a = Observed({"oper-status": "".join(["run", "ning"]), "vim": "".join(["s", "im"]),
                  "reason": "x"})
    b = Observed([("oper-status", "".join(["runn", "ing"])), ("vim", "".join(["si", "m"]))])
    assert a["oper-status"] is b["oper-status"] and a["vim"] is b["vim"]
    c = Observed(a)
    c["reason"] = "y"
    c["oper-status"] = "failed"
    assert a["reason"] == "x" and a["oper-status"] == "running" and c == {
        "oper-status": "failed", "vim": "sim", "reason": "y"}
