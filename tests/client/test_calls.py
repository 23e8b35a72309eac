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


def test_a_paged_list_is_a_query_on_the_list_resource_percent_encoded() -> None:
    call = c.list_page(c.INSTANCES, limit=2, offset=4, sort_by="state/oper-status",
                       direction="backwards", where="descriptor = 'fw' and name != 'a+b'")
    assert (call.method, call.path) == ("GET", "/restconf/data/nfo-instances:nf-instances/"
                                               "nf-instance")
    assert call.target == (
        "/restconf/data/nfo-instances:nf-instances/nf-instance?where=descriptor%20%3D%20"
        "%27fw%27%20and%20name%20%21%3D%20%27a%2Bb%27&sort-by=state/oper-status"
        "&direction=backwards&offset=4&limit=2")
    assert c.list_page(c.VIMS, limit=1).params == (("limit", "1"),)
    assert c.list_entries(c.VIMS).target == "/restconf/data/nfo-vim:vims"


def test_a_page_reads_the_remaining_annotation_off_its_first_entry() -> None:
    read = c.list_page(c.VIMS, limit=2, offset=3).read
    page = read({"nfo-vim:vim": [
        {"@": {"ietf-list-pagination:remaining": 5, "ietf-list-pagination:locale": "C.UTF-8"},
         "name": "a"}, {"name": "b"}]})
    assert isinstance(page, c.Page)
    assert (page.entries, page.remaining, page.offset) == ([{"name": "a"}, {"name": "b"}], 5, 3)
    assert list(page) == page.entries and len(page) == 2 and page[1] == {"name": "b"}
    assert page.next_offset == 5
    last = read({"nfo-vim:vim": [{"name": "z"}]})
    assert (last.remaining, last.next_offset) == (0, None)
    assert read({"nfo-vim:vim": []}).entries == [] and read(None).remaining == 0


def test_history_diff_and_rollback_are_nfo_transactions_operations() -> None:
    h = c.history(limit=5, before=40)
    assert (h.method, h.path) == ("POST", "/restconf/operations/nfo-transactions:history")
    assert h.body == {"nfo-transactions:input": {"limit": 5, "before": "40"}}
    assert h.read({"nfo-transactions:output": {"commit": [
        {"revision": "39", "user": "admin", "comment": "add fw", "changes": 2}]}}) == [
        {"revision": 39, "user": "admin", "comment": "add fw", "changes": 2}]
    assert h.read(None) == []                                   # 204: no commits
    assert c.diff().body == {"nfo-transactions:input": {}}      # the candidate
    d = c.diff(7)
    assert d.body == {"nfo-transactions:input": {"revision": "7"}}
    assert d.read({"nfo-transactions:output": {"change": [
        {"operation": "create", "path": "/m:a[k='1']", "data": '{"m:a": [{"k": "1"}]}'},
        {"operation": "modify", "path": "/m:b", "value": "2", "previous-value": "1"}]}}) == [
        {"operation": "create", "path": "/m:a[k='1']", "data": {"m:a": [{"k": "1"}]}},
        {"operation": "modify", "path": "/m:b", "value": "2", "previous-value": "1"}]
    r = c.rollback(6, comment="undo")
    assert r.body == {"nfo-transactions:input": {"revision": "6", "comment": "undo"}}
    assert r.read({"nfo-transactions:output": {"revision": "9"}}) == 9
    assert r.read(None) is None                                 # nothing changed


def test_a_comment_goes_into_the_yang_patch() -> None:
    body = c.create_entries(c.VIMS, [{"name": "a"}], comment="lab VIM").body
    assert body["ietf-yang-patch:yang-patch"]["comment"] == "lab VIM"
    assert "comment" not in c.create_entries(c.VIMS, [{"name": "a"}]).body[
        "ietf-yang-patch:yang-patch"]
