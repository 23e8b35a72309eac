"""The operational datastore: owners push state, reads merge it over running.

Real libyang (nfo's modules plus nfo-test) and a fresh store per test, on each storage
backend (tests/datastore/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import Datastore, Identity, Session, Storage
from nfo.errors import InvalidValue, NfoError, OperationFailed
from nfo.schema import Schema
from nfo.schema.data import WithDefaults

REPO = Path(__file__).resolve().parents[2]
CATALOG = (REPO / "yang" / "nfo-demo-catalog.json").read_text()
INST = "nfo-instances:nf-instances"
ORIGIN = "{urn:ietf:params:xml:ns:yang:ietf-origin}origin"
NS = {"i": "urn:nfo:instances", "t": "urn:nfo:test"}
Reopen = Callable[[], Storage]
"""Opens another store on the test's stored state (tests/datastore/conftest.py)."""


def instances(*names: str) -> str:
    return json.dumps({INST: {"nf-instance": [
        {"name": n, "descriptor": "udp-echo", "parameter": [{"name": "port", "value": "7000"}]}
        for n in names]}})


def state(name: str, **fields: Any) -> str:
    return json.dumps({INST: {"nf-instance": [{"name": name, "state": fields}]}})


def get(ds: Datastore, name: str = "operational", xpath: str | None = None) -> dict[str, Any]:
    with ds.get(name, xpath) as t:
        return json.loads(t.print("json"))  # type: ignore[no-any-return]


def entries(ds: Datastore, xpath: str | None = None) -> dict[str, dict[str, Any]]:
    """nf-instance entries of the operational datastore, by name."""
    data = get(ds, "operational", xpath)
    return {e["name"]: e for e in data.get(INST, {}).get("nf-instance", [])}


def oper_rows(reopen: Reopen) -> list[tuple[str, str]]:
    """(owner, key) of every operational record stored, by owner and key, as another
    store on the same state reads them."""
    with closing(reopen()) as storage:
        return storage.oper_keys()


def stored_records(reopen: Reopen, owner: str) -> dict[str, str]:
    """The owner's stored operational records (key: content), as another store on the
    same state reads them."""
    with closing(reopen()) as storage:
        return {r.key: r.content for r in storage.load_oper() if r.owner == owner}


def origin(el: ET.Element | None) -> str | None:
    assert el is not None
    v = el.get(ORIGIN)
    return None if v is None else v.split(":", 1)[-1]


@asynccontextmanager
async def reopened(schema: Schema, reopen: Reopen) -> AsyncIterator[Datastore]:
    """A datastore started on another store of the same stored state (a restart)."""
    d = Datastore.open(schema, reopen())
    await d.start()
    try:
        yield d
    finally:
        await d.close()


async def configured(ds: Datastore, *names: str) -> Session:
    s = ds.internal_session("admin")
    await s.edit("running", CATALOG, "json")
    if names:
        await s.edit("running", instances(*names), "json")
    return s


# -- merging ------------------------------------------------------------------------


async def test_set_oper_merges_over_config(ds: Datastore) -> None:
    s = await configured(ds, "e1", "e2")
    rev = ds.info("running").revision
    s.set_oper(state("e1", **{"oper-status": "running", "attempts": 1, "vim": "local"}),
               owner="wm")
    got = entries(ds)
    assert got["e1"]["descriptor"] == "udp-echo"
    assert got["e1"]["parameter"] == [{"name": "port", "value": "7000"}]
    assert got["e1"]["state"] == {"oper-status": "running", "attempts": 1, "vim": "local"}
    assert "state" not in got["e2"]
    assert set(got) == {"e1", "e2"}
    # catalog and vims (config only) are in operational too
    data = get(ds)
    assert "nfo-catalog:catalog" in data and "nfo-vim:vims" in data
    # running itself is untouched and no commit happened
    assert "state" not in json.dumps(get(ds, "running"))
    assert ds.info("running").revision == rev
    # a later push merges into the owner's earlier one
    s.set_oper(state("e1", **{"oper-status": "failed", "reason": "crashed"}), owner="wm")
    assert entries(ds)["e1"]["state"] == {"oper-status": "failed", "attempts": 1,
                                          "vim": "local", "reason": "crashed"}


async def test_operational_reflects_running_changes(ds: Datastore) -> None:
    s = await configured(ds, "e1")
    s.set_oper(state("e1", **{"oper-status": "running"}), owner="wm")
    await s.edit("running", instances("e2"), "json")
    assert set(entries(ds)) == {"e1", "e2"}
    assert entries(ds)["e1"]["state"] == {"oper-status": "running"}


async def test_set_oper_xml_and_default_owner(ds: Datastore) -> None:
    await configured(ds, "e1")
    wm = ds.internal_session("workload-manager")
    wm.set_oper('<nf-instances xmlns="urn:nfo:instances"><nf-instance><name>e1</name>'
                '<state><oper-status>initializing</oper-status></state></nf-instance>'
                '</nf-instances>', "xml")
    assert entries(ds)["e1"]["state"] == {"oper-status": "initializing"}
    assert "workload-manager" in ds.oper_owners()
    assert wm.delete_oper(f"/{INST}/nf-instance[name='e1']/state") is True
    assert "state" not in entries(ds)["e1"]


async def test_with_origin_tags_intended_learned_default(ds: Datastore) -> None:
    s = await configured(ds, "e1")
    s.set_oper(state("e1", **{"oper-status": "running"}), owner="wm")
    s.set_oper(state("ghost", **{"oper-status": "failed"}), owner="wm")
    s.set_oper(json.dumps({"nfo-test:top": {"state": {"up": True}}}), owner="wm")

    with ds.get("operational", with_origin=True) as t:
        xml = t.print("xml", with_defaults=WithDefaults.REPORT_ALL)
    root = ET.fromstring(f"<data>{xml}</data>")
    insts = root.find("i:nf-instances", NS)
    assert origin(insts) == "intended"
    e1 = insts.find("i:nf-instance[i:name='e1']", NS)  # type: ignore[union-attr]
    assert e1 is not None and origin(e1) in (None, "intended")  # inherits intended
    assert origin(e1.find("i:descriptor", NS)) in (None, "intended")
    assert origin(e1.find("i:state", NS)) == "learned"
    assert origin(e1.find("i:admin-state", NS)) == "default"
    ghost = insts.find("i:nf-instance[i:name='ghost']", NS)  # type: ignore[union-attr]
    assert origin(ghost) == "learned"

    top = root.find("t:top", NS)
    assert top is not None
    assert origin(top.find("t:count", NS)) == "default"
    assert origin(top.find("t:state", NS)) == "learned"
    assert top.find("t:state/t:up", NS).text == "true"  # type: ignore[union-attr]

    # JSON carries the same annotations
    with ds.get("operational", f"/{INST}/nf-instance[name='e1']", with_origin=True) as t:
        js = t.print("json")
    assert '"ietf-origin:origin":"ietf-origin:learned"' in js
    assert '"ietf-origin:origin":"ietf-origin:intended"' in js
    # no origin metadata without with_origin
    with ds.get("operational") as t:
        assert "origin" not in t.print("xml")


async def test_defaults_reported_in_operational(ds: Datastore) -> None:
    await configured(ds, "e1")
    with ds.get("operational") as t:
        data = json.loads(t.print("json", with_defaults=WithDefaults.REPORT_ALL))
    e1 = data[INST]["nf-instance"][0]
    assert e1["admin-state"] == "enabled"
    assert data["nfo-test:top"]["count"] == 7


# -- deleting ------------------------------------------------------------------------


async def test_delete_oper(ds: Datastore, reopen: Reopen) -> None:
    s = await configured(ds, "e1")
    s.set_oper(state("e1", **{"oper-status": "running", "reason": "ok", "attempts": 2}),
               owner="wm")
    assert s.delete_oper(f"/{INST}/nf-instance[name='e1']/state/reason", owner="wm")
    assert entries(ds)["e1"]["state"] == {"oper-status": "running", "attempts": 2}
    assert s.delete_oper(f"/{INST}/nf-instance[name='e1']/state", owner="wm")
    assert "state" not in entries(ds)["e1"]
    assert entries(ds)["e1"]["descriptor"] == "udp-echo"  # config stays
    assert s.delete_oper(f"/{INST}/nf-instance[name='e1']/state", owner="wm") is False
    assert s.delete_oper(f"/{INST}/nf-instance[name='e1']", owner="nobody") is False
    assert s.delete_oper(f"/{INST}", owner="wm")
    assert oper_rows(reopen) == []
    assert entries(ds)["e1"]["descriptor"] == "udp-echo"


async def test_delete_whole_oper_only_entry(ds: Datastore) -> None:
    s = await configured(ds)
    s.set_oper(state("ghost", **{"oper-status": "terminating"}), owner="wm")
    s.set_oper(state("ghost2", **{"oper-status": "running"}), owner="wm")
    assert s.delete_oper(f"/{INST}/nf-instance[name='ghost']", owner="wm")
    assert set(entries(ds)) == {"ghost2"}


async def test_owner_names_validated(ds: Datastore) -> None:
    s = await configured(ds, "e1")
    with pytest.raises(InvalidValue):
        s.set_oper(state("e1", **{"oper-status": "running"}), owner="x" * 200)
    with pytest.raises(InvalidValue):
        s.delete_oper(f"/{INST}", owner="x" * 200)
    assert "state" not in entries(ds)["e1"]


# -- owners ---------------------------------------------------------------------------


async def test_two_owners_do_not_overwrite_each_other(ds: Datastore) -> None:
    s = await configured(ds, "e1")
    s.set_oper(state("e1", **{"oper-status": "running", "attempts": 1}), owner="wm")
    s.set_oper(state("e1", **{"driver": "local", "vim-resource-id": "pid-42"}), owner="drv")
    assert entries(ds)["e1"]["state"] == {"oper-status": "running", "attempts": 1,
                                          "driver": "local", "vim-resource-id": "pid-42"}
    # wm pushes again: drv's data stays
    s.set_oper(state("e1", **{"oper-status": "failed"}), owner="wm")
    assert entries(ds)["e1"]["state"] == {"oper-status": "failed", "attempts": 1,
                                          "driver": "local", "vim-resource-id": "pid-42"}
    # deleting wm's state leaves drv's
    assert s.delete_oper(f"/{INST}/nf-instance[name='e1']/state", owner="wm")
    assert entries(ds)["e1"]["state"] == {"driver": "local", "vim-resource-id": "pid-42"}
    # and an owner cannot delete another owner's data
    assert s.delete_oper(f"/{INST}/nf-instance[name='e1']/state/driver", owner="wm") is False
    assert entries(ds)["e1"]["state"]["driver"] == "local"


# -- durability -----------------------------------------------------------------------


async def test_oper_data_survives_reopen(schema: Schema, reopen: Reopen, ds: Datastore) -> None:
    s = await configured(ds, "e1")
    s.set_oper(state("e1", **{"oper-status": "running", "reason": "x", "attempts": 3}),
               owner="wm")
    s.set_oper(state("e1", **{"driver": "local"}), owner="drv")
    s.set_oper(state("ghost", **{"oper-status": "failed"}), owner="wm")
    s.set_oper(state("gone", **{"oper-status": "terminated"}), owner="wm")
    s.set_oper(json.dumps({"nfo-test:top": {"state": {"up": False}}}), owner="drv")
    assert s.delete_oper(f"/{INST}/nf-instance[name='e1']/state/reason", owner="wm")
    assert s.delete_oper(f"/{INST}/nf-instance[name='gone']", owner="wm")
    expected = get(ds)
    assert "gone" not in entries(ds)
    await ds.close()

    async with reopened(schema, reopen) as d2:
        assert get(d2) == expected
        assert entries(d2)["e1"]["state"] == {"oper-status": "running", "attempts": 3,
                                              "driver": "local"}
        assert set(d2.oper_owners()) == {"wm", "drv"}


async def test_a_replacing_push_is_stored_as_pushed_and_reads_back_the_same(
        schema: Schema, reopen: Reopen, ds: Datastore) -> None:
    s = await configured(ds, "e1", "e2")
    s.set_oper(state("e1", **{"oper-status": "running", "attempts": 3}), owner="wm")
    pushed = ('{ "INST" : {"nf-instance": [ {"state": {"attempts": 4, "oper-status": '
              '"failed", "reason": "r\\u00e9"}, "name": "e1"} ]} }').replace("INST", INST)
    s.set_oper(pushed, "json", owner="wm", replace=True)
    s.set_oper(f'<nf-instances xmlns="{NS["i"]}"><nf-instance><name>e2</name><state>'
               "<oper-status>running</oper-status></state></nf-instance></nf-instances>",
               "xml", owner="wm", replace=True)
    expected = get(ds)
    assert entries(ds)["e1"]["state"] == {"oper-status": "failed", "reason": "r\u00e9",
                                          "attempts": 4}
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert get(d2) == expected


async def test_oper_delete_of_container_survives_reopen(schema: Schema, reopen: Reopen,
                                                        ds: Datastore) -> None:
    s = await configured(ds, "e1", "e2")
    s.set_oper(state("e1", **{"oper-status": "running"}), owner="wm")
    s.set_oper(state("e2", **{"oper-status": "running"}), owner="wm")
    assert s.delete_oper(f"/{INST}", owner="wm")
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert all("state" not in e for e in entries(d2).values())


# -- entries without config, selection ------------------------------------------------


async def test_oper_for_entry_without_config_is_shown(ds: Datastore) -> None:
    s = await configured(ds, "e1")
    s.set_oper(state("ghost", **{"oper-status": "terminating", "vim": "local"}), owner="wm")
    got = entries(ds)
    assert set(got) == {"e1", "ghost"}
    assert got["ghost"]["state"] == {"oper-status": "terminating", "vim": "local"}
    assert "descriptor" not in got["ghost"]
    sel = entries(ds, f"/{INST}/nf-instance[name='ghost']")
    assert set(sel) == {"ghost"}
    assert sel["ghost"]["state"]["oper-status"] == "terminating"
    # running knows nothing of it
    assert "ghost" not in json.dumps(get(ds, "running"))


async def test_oper_only_with_empty_running(ds: Datastore) -> None:
    s = ds.internal_session("wm")
    s.set_oper(state("ghost", **{"oper-status": "pending"}))
    assert entries(ds)["ghost"]["state"] == {"oper-status": "pending"}


async def test_xpath_selection_merges_one_instance(ds: Datastore) -> None:
    s = await configured(ds, "e1", "e2")
    s.set_oper(state("e1", **{"oper-status": "running"}), owner="wm")
    s.set_oper(state("e2", **{"oper-status": "failed", "reason": "boom"}), owner="wm")
    s.set_oper(state("e2", **{"driver": "local"}), owner="drv")

    one = get(ds, "operational", f"/{INST}/nf-instance[name='e2']")
    assert list(one) == [INST]
    assert one[INST]["nf-instance"] == [{
        "name": "e2", "descriptor": "udp-echo",
        "parameter": [{"name": "port", "value": "7000"}],
        "state": {"oper-status": "failed", "reason": "boom", "driver": "local"},
    }]
    # a deeper path
    st = get(ds, "operational", f"/{INST}/nf-instance[name='e1']/state")
    assert st == {INST: {"nf-instance": [{"name": "e1", "state": {"oper-status": "running"}}]}}
    # a non-simple XPath selecting by state works on the merged data
    failed = entries(ds, f"/{INST}/nf-instance[state/oper-status='failed']")
    assert set(failed) == {"e2"}
    assert failed["e2"]["descriptor"] == "udp-echo"
    # config datastores ignore oper data
    assert "state" not in json.dumps(get(ds, "running", f"/{INST}/nf-instance[name='e2']"))


async def test_get_operational_returns_a_copy(ds: Datastore) -> None:
    s = await configured(ds, "e1")
    s.set_oper(state("e1", **{"oper-status": "running"}), owner="wm")
    first = get(ds)
    with ds.get("operational") as t:
        t.free()  # freeing a copy must not disturb the stored data
    assert get(ds) == first
    assert get(ds) == first


# -- invalid data ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    state("e1", attempts="many"),  # wrong type
    state("e1", **{"oper-status": "exploded"}),  # not an enum value
    state("e1", **{"no-such-leaf": 1}),  # unknown node
    json.dumps({INST: {"nf-instance": [{"state": {"oper-status": "running"}}]}}),  # no key
    json.dumps({"no-such-module:x": {}}),
    "{not json",
    json.dumps({INST: {"nf-instance": [
        {"name": "ok", "state": {"oper-status": "running"}},
        {"name": "e1", "state": {"attempts": -1}},  # valid entry + invalid one
    ]}}),
])
async def test_invalid_oper_data_refused_and_nothing_stored(
        schema: Schema, reopen: Reopen, ds: Datastore, bad: str) -> None:
    s = await configured(ds, "e1")
    s.set_oper(state("e1", **{"oper-status": "running"}), owner="wm")
    before = get(ds)
    rows = oper_rows(reopen)
    with pytest.raises(NfoError):
        s.set_oper(bad, owner="wm")
    with pytest.raises(NfoError):
        s.set_oper(bad, owner="fresh-owner")
    assert get(ds) == before
    assert oper_rows(reopen) == rows
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert get(d2) == before


async def test_oper_value_overriding_config_is_not_tagged_intended(ds: Datastore) -> None:
    s = await configured(ds)
    await s.edit("running", json.dumps({INST: {"nf-instance": [
        {"name": "e1", "descriptor": "udp-echo", "description": "cfg",
         "parameter": [{"name": "port", "value": "7000"}]}]}}), "json")
    s.set_oper(json.dumps({INST: {"nf-instance": [{"name": "e1", "description": "learned"}]}}),
               owner="wm")
    with ds.get("operational", f"/{INST}/nf-instance[name='e1']", with_origin=True) as t:
        root = ET.fromstring(f"<data>{t.print('xml')}</data>")
    desc = root.find("i:nf-instances/i:nf-instance/i:description", NS)
    assert desc is not None and desc.text == "learned"
    effective = origin(desc) or origin(root.find("i:nf-instances", NS))
    assert effective != "intended"


async def test_credentials_are_never_returned(ds: Datastore) -> None:
    """Credentials (the OpenStack password) are left out of every client's read."""
    async with ds.internal_session("op") as s:
        await s.edit("running", json.dumps({"nfo-vim:vims": {"vim": [{
            "name": "os1", "type": "nfo-vim:openstack",
            "openstack": {"auth-url": "http://127.0.0.1:5000/v3", "username": "u",
                          "password": "s3cret-value", "project-name": "p"}}]}}), "json")
    for name in ("running", "operational", "candidate"):
        with ds.get(name, who=Identity("reader")) as t:
            for fmt in ("json", "xml"):
                text = t.print(fmt)
                assert "s3cret-value" not in text and "username" in text
    with ds.get("running") as t:
        assert "s3cret-value" in t.print("json")
    assert "/nfo-vim:vims/vim/openstack/password" in ds.schema.access_marks().credentials


# -- a notification published with an operational write ---------------------------------


class _LosesGroups:
    """The group commit's storage, except that every group is lost at its end."""

    def __init__(self, real: Storage) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self._real.batch():
            yield
            raise OperationFailed("the disk is full")


async def test_a_notification_goes_out_only_with_a_durable_operational_write(
        ds: Datastore, monkeypatch: pytest.MonkeyPatch) -> None:
    s = ds.internal_session("owner")
    sub = ds.notifications.subscribe()
    bell = json.dumps({"nfo-test:bell": {"rung": 1}})
    up = json.dumps({"nfo-test:top": {"state": {"up": True}}})
    monkeypatch.setattr(ds.group, "storage", _LosesGroups(ds.storage))
    with pytest.raises(OperationFailed):
        await s.set_oper_async(up, "json", notification=bell)
    assert sub.backlog == 0
    assert list(ds.storage.notifications()) == []
    assert "nfo-test:top" not in get(ds)
    monkeypatch.undo()
    await s.set_oper_async(up, "json", notification=bell)
    event = await asyncio.wait_for(sub.__anext__(), 5)
    assert json.loads(event.content) == {"nfo-test:bell": {"rung": 1}}  # type: ignore[union-attr]
    assert get(ds)["nfo-test:top"]["state"] == {"up": True}
    sub.close()
    await s.close()


async def test_records_stored_one_below_another_are_stored_side_by_side_on_load(
        schema: Schema, reopen: Reopen, ds: Datastore) -> None:
    s = await configured(ds, "e1", "e2")
    for k in (1, 2):
        s.set_oper(state(f"e{k}", **{"oper-status": "running", "attempts": k}), owner="wm")
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert {n: e["state"]["attempts"] for n, e in entries(d2).items()} == {"e1": 1, "e2": 2}
    # a record holding another (written by hand: a push never stores both)
    with closing(reopen()) as storage:
        storage.put_oper("wm", f"/{INST}", json.dumps({INST: {"nf-instance": [
            {"name": "e1", "state": {"attempts": 7}}]}}))
    entry = f"/{INST}/nf-instance[name='%s']"
    async with reopened(schema, reopen) as d3:
        # merged in key order (the entry's own record comes after its list's), then
        # stored again as one record per entry
        assert {n: e["state"]["attempts"] for n, e in entries(d3).items()} == {"e1": 1, "e2": 2}
        assert len(list(d3.oper_records("wm"))) == 2
    with closing(reopen()) as storage:
        assert sorted(r.key for r in storage.load_oper()) == [entry % "e1", entry % "e2"]
    async with reopened(schema, reopen) as d4:
        assert {n: e["state"]["attempts"] for n, e in entries(d4).items()} == {"e1": 1, "e2": 2}
        s4 = d4.internal_session("t")
        assert s4.delete_oper(entry % "e1", owner="wm")
        assert set(entries(d4)) == {"e1", "e2"}  # config stays; its state is gone
        assert "state" not in entries(d4)["e1"]


# -- many records in one write ------------------------------------------------------------


def _entry(name: str, status: str) -> str:
    return json.dumps({"name": name, "state": {"oper-status": status}})


def _joined(*entries: str) -> str:
    return json.dumps({INST: {"nf-instance": [json.loads(e) for e in entries]}})


async def test_records_replaced_in_one_write_stored_as_given_and_published_in_order(
        schema: Schema, reopen: Reopen, ds: Datastore) -> None:
    s = await configured(ds, "e1", "e2")
    s.set_oper(state("e1", **{"oper-status": "initializing", "reason": "old"}), owner="wm")
    sub = ds.notifications.subscribe()
    records = {f"/{INST}/nf-instance[name='{n}']": _joined(_entry(n, "running"))
               for n in ("e1", "e2")}
    notes = [json.dumps({"nfo-instances:nf-instance-state-change": {
        "name": n, "new-status": "running"}}) for n in ("e1", "e2")]
    writes = ds.group.writes
    await s.set_oper_records_async(_joined(_entry("e1", "running"), _entry("e2", "running")),
                                   records, owner="wm", notifications=notes)
    assert ds.group.writes == writes + 1
    # each record replaced (the old reason is gone), stored as given under its own key
    assert {n: e["state"] for n, e in entries(ds).items()} == {
        "e1": {"oper-status": "running"}, "e2": {"oper-status": "running"}}
    stored = stored_records(reopen, "wm")
    assert stored == records
    for name in ("e1", "e2"):
        ev = await asyncio.wait_for(sub.__anext__(), 5)
        assert json.loads(ev.content)["nfo-instances:nf-instance-state-change"][  # type: ignore[union-attr]
            "name"] == name
    sub.close()
    await ds.close()
    async with reopened(schema, reopen) as d2:
        assert {n: e["state"] for n, e in entries(d2).items()} == {
            "e1": {"oper-status": "running"}, "e2": {"oper-status": "running"}}


async def test_records_whose_keys_do_not_match_are_stored_as_parsed(
        reopen: Reopen, ds: Datastore) -> None:
    s = await configured(ds, "e1")
    wrong = {f"/{INST}/nf-instance[name='other']": "{}"}
    await s.set_oper_records_async(_joined(_entry("e1", "running")), wrong, owner="wm")
    stored = stored_records(reopen, "wm")
    key = f"/{INST}/nf-instance[name='e1']"
    assert list(stored) == [key]
    assert json.loads(stored[key]) == {INST: {"nf-instance": [
        {"name": "e1", "state": {"oper-status": "running"}}]}}
    with pytest.raises(NfoError):
        await s.set_oper_records_async(_joined(_entry("e1", "no-such-status")), {}, owner="wm")
    assert entries(ds)["e1"]["state"] == {"oper-status": "running"}


def test_records_of_one_list_join_as_text_others_as_json() -> None:
    """Compact records of one list's entries (as the workload manager stores them) are
    put side by side as text; any other mix is joined through JSON, to the same data."""
    from nfo.datastore.operational import _joined as join

    def compact(*names: str) -> str:
        return json.dumps({INST: {"nf-instance": [{"name": n} for n in names]}},
                          separators=(",", ":"))

    texts = [compact(f"e{k}") for k in range(3)]
    assert join(texts) == compact("e0", "e1", "e2")
    spaced = json.dumps({INST: {"nf-instance": [{"name": "e3"}]}}, indent=1)
    other = json.dumps({"nfo-test:top": {"item": [{"name": "a"}]}})
    assert json.loads(join([texts[0], spaced])) == json.loads(compact("e0", "e3"))
    assert json.loads(join([texts[0], other])) == {**json.loads(texts[0]),
                                                  **json.loads(other)}


def test_record_keys_are_a_set_held_by_their_list_key_values() -> None:
    """The keys a store holds behave as a set of the keys (any shape: one list's
    entries, nested, several keys, double quotes, an empty value, no data path at all),
    and the keys of one list's entries take less memory than their texts."""
    import random
    import sys
    import tracemalloc

    from nfo.datastore.operational import _KeySet

    pool = [f"/{INST}/nf-instance[name='a']", f"/{INST}/nf-instance[name='']",
            f"/{INST}/nf-instance[name='b']/state", PAIR % ("x", 1), "/nfo-test:top",
            f'/{INST}/nf-instance[name="it\'s"]', "/nfo-test:top/item[name='a']",
            "no path='", "x']", "='']", "='x']", "[='x']", "a='[b']", "a='x']", "a='x'y']",
            f"/{INST}/nf-instance[name='c']"]
    held, ref = _KeySet(), set()
    rng = random.Random(7)
    for _ in range(3000):
        key = rng.choice(pool)
        if rng.random() < 0.6:
            held.add(key)
            ref.add(key)
        else:
            held.discard(key)
            ref.discard(key)
        assert len(held) == len(ref) and sorted(held) == sorted(ref)
        rng.shuffle(pool)  # a key is found whichever key was looked at before it
        assert [k for k in pool if k in held] == [k for k in pool if k in ref]
    tracemalloc.start()
    try:
        many = _KeySet()
        for k in range(10_000):  # each key made here, as a store gets it from libyang
            many.add(f"/{INST}/nf-instance[name='inst-{k:07d}']")
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    keys = [f"/{INST}/nf-instance[name='inst-{k:07d}']" for k in range(10_000)]
    assert list(many) == keys
    assert size < sum(sys.getsizeof(k) for k in keys) * 0.8, size


# -- records kept as text, side by side -----------------------------------------------------

PAIR = "/nfo-test:top/pair[a='%s'][b='%d']"


def pairs(*keys: tuple[str, int], **top: Any) -> str:
    return json.dumps({"nfo-test:top": {**top, "pair": [
        {"a": a, "b": b, "v": f"{a}{b}"} for a, b in keys]}})


async def test_a_push_above_or_below_records_keeps_them_side_by_side(
        schema: Schema, reopen: Reopen, ds: Datastore) -> None:
    s = ds.internal_session("t")
    s.set_oper(pairs(("x", 1), ("y", 2)), owner="o")
    assert oper_rows(reopen) == [("o", PAIR % ("x", 1)), ("o", PAIR % ("y", 2))]
    # a leaf beside the list makes the container the record: the entries fold into it
    s.set_oper(json.dumps({"nfo-test:top": {"name": "n"}}), owner="o")
    assert oper_rows(reopen) == [("o", "/nfo-test:top")]
    s.set_oper(pairs(("z", 3)), owner="o")  # an entry below it goes into it
    assert oper_rows(reopen) == [("o", "/nfo-test:top")]
    top = get(ds)["nfo-test:top"]
    assert top["name"] == "n" and [p["v"] for p in top["pair"]] == ["x1", "y2", "z3"]
    s.set_oper(json.dumps({"nfo-test:top": {"pair": [{"a": "y", "b": 2}]}}), owner="o",
               replace=True)  # the entry replaced inside the container's record
    assert {p["a"]: p.get("v") for p in get(ds)["nfo-test:top"]["pair"]} == {
        "x": "x1", "y": None, "z": "z3"}
    # without the leaf, the container holds lists only: one record per entry again
    assert s.delete_oper("/nfo-test:top/name", owner="o")
    assert oper_rows(reopen) == [("o", PAIR % (a, b)) for a, b in (("x", 1), ("y", 2), ("z", 3))]
    expected = get(ds)["nfo-test:top"]
    assert "name" not in expected
    await ds.close()
    async with reopened(schema, reopen) as d2:  # the same entries (their order is the system's)
        assert sorted(get(d2)["nfo-test:top"]["pair"], key=str) == sorted(expected["pair"], key=str)


async def test_reads_find_the_records_at_above_and_below_a_path_in_any_spelling(
        ds: Datastore) -> None:
    s = ds.internal_session("t")
    s.set_oper(pairs(("x", 1), ("y", 2)), owner="o")
    s.set_oper(json.dumps({"nfo-test:top": {"state": {"up": True}}}), owner="p")
    x = get(ds, xpath="/nfo-test:top/pair[b=\"1\"][a=\"x\"]")["nfo-test:top"]
    assert x == {"pair": [{"a": "x", "b": 1, "v": "x1"}]}
    leaf = get(ds, xpath="/nfo-test:top/nfo-test:pair[a='y'][b='2']/v")["nfo-test:top"]
    assert leaf == {"pair": [{"a": "y", "b": 2, "v": "y2"}]}
    # some of the keys, or every entry's leaf: the records of the whole list are read
    assert get(ds, xpath="/nfo-test:top/pair[b='2']")["nfo-test:top"] == {
        "pair": [{"a": "y", "b": 2, "v": "y2"}]}
    assert sorted(p["v"] for p in get(ds, xpath="/nfo-test:top/pair/v")["nfo-test:top"][
        "pair"]) == ["x1", "y2"]
    whole = get(ds, xpath="/nfo-test:top")["nfo-test:top"]
    assert [p["v"] for p in whole["pair"]] == ["x1", "y2"] and whole["state"] == {"up": True}
    assert ds.exists("/nfo-test:top/pair[b='2'][a='y']/v")
    assert ds.exists("/nfo-test:top/state/up") and ds.exists("/nfo-test:top")
    assert not ds.exists("/nfo-test:top/pair[a='x'][b='2']")
    assert not ds.exists("/nfo-test:top/name")
    assert s.delete_oper("/nfo-test:top/pair[b=\"1\"][a=\"x\"]", owner="o")
    assert not s.delete_oper("/nfo-test:top/pair[a='x'][b='1']", owner="o")
    assert [p["v"] for p in get(ds)["nfo-test:top"]["pair"]] == ["y2"]


async def test_a_start_parses_no_record_until_one_is_read(
        schema: Schema, reopen: Reopen, ds: Datastore, monkeypatch: pytest.MonkeyPatch) -> None:
    from nfo.datastore.operational import OperStore

    s = await configured(ds, "e1", "e2")
    for k in (1, 2):
        s.set_oper(state(f"e{k}", **{"oper-status": "running", "attempts": k}), owner="wm")
    await ds.close()
    parsed: list[int] = []
    real = OperStore._parse
    monkeypatch.setattr(OperStore, "_parse", lambda self, texts: (
        parsed.append(len(texts)), real(self, texts))[1])
    async with reopened(schema, reopen) as d2:
        assert parsed == []
        assert len(list(d2.oper_records("wm"))) == 2
        assert entries(d2, f"/{INST}/nf-instance[name='e2']")["e2"]["state"]["attempts"] == 2
        assert parsed == [1]
        assert {n: e["state"]["attempts"] for n, e in entries(d2).items()} == {"e1": 1, "e2": 2}
        assert parsed == [1, 2]


async def test_records_are_held_as_keys_and_read_from_storage_as_selected(
        schema: Schema, reopen: Reopen, ds: Datastore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory holds each record's key, not its text: a start loads keys only (its memory
    does not grow with the size of the states), and a read of one instance takes that one
    record from storage; a read of all of them takes every record a page at a time."""
    import tracemalloc

    from nfo.datastore import operational

    names = [f"e{k}" for k in range(300)]
    s = await configured(ds, *names)
    reason = "x" * 4000
    for n in names:
        s.set_oper(state(n, **{"oper-status": "running", "reason": reason}), owner="wm")
    await ds.close()
    tracemalloc.start()
    try:
        async with reopened(schema, reopen):
            held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 300 * 4000 / 2, held  # the texts alone would take 1.2 MB
    by_key: list[list[str]] = []
    pages: list[str | None] = []
    watched = reopen()
    real_texts, real_page = watched.oper_texts, watched.oper_page
    monkeypatch.setattr(watched, "oper_texts", lambda owner, keys: (
        by_key.append(list(keys)), real_texts(owner, keys))[1])
    monkeypatch.setattr(watched, "oper_page", lambda owner, after, limit: (
        pages.append(after), real_page(owner, after, limit))[1])
    monkeypatch.setattr(operational, "_PAGE", 128)
    async with reopened(schema, lambda: watched) as d3:
        one = entries(d3, f"/{INST}/nf-instance[name='e7']")
        assert one["e7"]["state"]["reason"] == reason
        assert by_key == [[f"/{INST}/nf-instance[name='e7']"]] and pages == []
        every = entries(d3)
        assert len(every) == 300 and {e["state"]["reason"] for e in every.values()} == {reason}
        assert len(pages) == 3 and pages[0] is None and len(by_key) == 1
