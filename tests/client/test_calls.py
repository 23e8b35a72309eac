"""nfo.client's protocol functions without a server: entries from every input shape,
the SSE parser, resuming a watch, and bindings that fall back to dicts."""

from __future__ import annotations

import pytest

from nfo.bindings import nfo_instances
from nfo.client import calls as c


def test_entries_from_dicts_lists_module_data_and_bindings() -> None:
    one = {"name": "a", "descriptor": "d"}
    assert c.entries_of(c.INSTANCES, one) == [one]
    assert c.entries_of(c.INSTANCES, {"nfo-instances:name": "a", "nfo-instances:descriptor":
                                      "d"}) == [one]
    assert c.entries_of(c.INSTANCES, [one, one]) == [one, one]
    doc = {"nfo-instances:nf-instances": {"nf-instance": [one]}}
    assert c.entries_of(c.INSTANCES, doc) == [one]
    b = nfo_instances.nfo_instances()
    e = b.nf_instances.nf_instance.add("a")
    e.descriptor = "d"
    assert c.entries_of(c.INSTANCES, b) == [one]
    assert c.entries_of(c.INSTANCES, e) == [one]
    with pytest.raises(TypeError):
        c.entries_of(c.INSTANCES, 42)


def test_bulk_create_is_one_yang_patch_of_creates() -> None:
    call = c.create_entries(c.INSTANCES, [{"name": "a/b"}, {"name": "c"}])
    assert (call.method, call.path, call.content_type) == (
        "PATCH", "/restconf/data/nfo-instances:nf-instances", c.PATCH_JSON)
    edits = call.body["ietf-yang-patch:yang-patch"]["edit"]
    assert [(x["operation"], x["target"]) for x in edits] == [
        ("create", "/nf-instance=a%2Fb"), ("create", "/nf-instance=c")]


def test_sse_events_and_state_changes() -> None:
    p = c.SseParser()
    lines = ['data: {"ietf-restconf:notification": {"eventTime": "T1",',
             'data:  "nfo-instances:nf-instance-state-change": {"name": "a",'
             ' "new-status": "running"}}}', "", ": keep-alive", "",
             'data: {"ietf-restconf:notification": {"eventTime": "T2", "x:y": {}}}', ""]
    got = [ev for line in lines if (ev := p.feed(line)) is not None]
    assert len(got) == 2
    assert c.state_change(got[0]) == {"time": "T1", "name": "a", "new-status": "running"}
    assert c.state_change(got[1]) is None


def test_resume_skips_what_was_delivered_and_resumes_from_it() -> None:
    r = c.Resume(None)
    assert r.params() == ()
    r.connected("Sat, 05 Dec 2026 04:39:41 GMT")
    assert r.params() == (("start-time", "2026-12-05T04:39:41Z"),)
    a = {"time": "2026-12-05T04:40:00.1Z", "name": "a", "new-status": "initializing"}
    b = {"time": "2026-12-05T04:40:00.1Z", "name": "b", "new-status": "initializing"}
    assert r.accept(a) and r.accept(b)
    assert r.params() == (("start-time", "2026-12-05T04:40:00.1Z"),)
    assert not r.accept(a) and not r.accept(b)          # replayed after a reconnection
    assert not r.accept({**a, "time": "2026-12-05T04:39:59Z"})
    assert r.accept({**a, "time": "2026-12-05T04:40:01Z", "new-status": "running"})


def test_bindings_fall_back_to_a_dict_with_a_warning() -> None:
    vim = c.as_bindings(c.VIMS, {"name": "a", "type": "nfo-vim:sim",
                                 "sim": {"latency": {"mean": 3}}})
    assert vim.sim.latency.mean == 3
    other = {"name": "b", "type": "acme-vim:cloud"}
    with pytest.warns(UserWarning, match="'b' does not fit nfo.bindings"):
        assert c.as_bindings(c.VIMS, other) is other
