"""Access control (RFC 8341) as the clients meet it: every scenario over RESTCONF (httpx)
and NETCONF (ncclient), against real servers on 127.0.0.1 sharing one datastore and one
user store.

The accounts: ``admin`` (the admin rule-list: everything), ``noc`` (group noc),
``eng`` (group eng), ``robot`` (group auto) and ``ghost`` (no group).  Each test adds
the rule-lists it is about; nothing else is in the rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.transport import session as nc_session
from ncclient.transport.errors import AuthenticationError
from ncclient.xml_ import to_ele

from nfo.datastore import Datastore, RpcCall
from nfo.datastore.users import ADMIN, UserStore
from nfo.netconf.server import NetconfServer, start_netconf
from nfo.restconf.server import build_app
from nfo.schema.context import nfo_yang_dir
from tests.netutil import netconf_run

nc_session.TICK = 0.001

PW = "access-control-test-pw"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
INST_NS = "urn:nfo:instances"
VIM_NS = "urn:nfo:vim"
JSON = "application/yang-data+json"
INSTANCES = "/restconf/data/nfo-instances:nf-instances"
INST = "/nfo-instances:nf-instances/nf-instance"
ACCOUNTS = {"noc": ["noc"], "eng": ["eng"], "robot": ["auto"], "ghost": []}
SECRET = "S3cret-openstack-pw"


def instance(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "descriptor": "udp-echo", "vim": "local",
            "parameter": [{"name": "port", "value": str(port)}]}


SEED = {
    "nfo-instances:nf-instances": {"nf-instance": [
        instance("a", 20001), instance("b", 20002), instance("secret", 20003)]},
}
OPENSTACK = {"nfo-vim:vims": {"vim": [{
    "name": "cloud", "type": "nfo-vim:openstack",
    "openstack": {"auth-url": "http://127.0.0.1:5000/v3", "username": "nfo",
                  "password": SECRET, "project-name": "p"}}]}}


def rule(name: str, action: str, ops: str = "*", **what: str) -> dict[str, Any]:
    return {"name": name, "action": action, "access-operations": ops,
            **{k.replace("_", "-"): v for k, v in what.items()}}


def rule_list(name: str, groups: list[str], *rules: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "group": groups, "rule": list(rules)}


@dataclass
class Env:
    ds: Datastore
    users: UserStore
    base: str
    nc: NetconfServer

    async def rules(self, *lists: dict[str, Any], **top: Any) -> None:
        """Add rule-lists (after admin's) and set top-level nacm leaves."""
        doc = {"ietf-netconf-acm:nacm": {**{k.replace("_", "-"): v for k, v in top.items()},
                                         **({"rule-list": list(lists)} if lists else {})}}
        async with self.ds.internal_session("test-rules") as s:
            await s.edit("running", json.dumps(doc), "json")

    def http(self, user: str, password: str = PW) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, auth=(user, password), timeout=10,
                                 trust_env=False, headers={"Accept": JSON})

    async def nc_run(self, user: str, fn: Callable[[Any], Any], password: str = PW) -> Any:
        return await netconf_run(self.nc.port, user, password, fn)

    async def nc_error(self, user: str, fn: Callable[[Any], Any]) -> RPCError:
        def attempt(m: Any) -> RPCError:
            try:
                fn(m)
            except RPCError as e:
                return e
            raise AssertionError("the NETCONF request was accepted")
        err: RPCError = await self.nc_run(user, attempt)
        return err

    def counters(self) -> dict[str, int]:
        c = self.ds.nacm.counters
        return {"operations": c.operations, "data-writes": c.data_writes,
                "notifications": c.notifications}


@pytest.fixture
async def env(ds: Datastore, tmp_path: Path) -> AsyncIterator[Env]:
    users = UserStore(ds)
    await users.ensure_admin(PW)
    for name, groups in ACCOUNTS.items():
        await users.add(name, PW, groups=groups)
    users.register()
    async with ds.internal_session("seed") as s:
        await s.edit("running", (nfo_yang_dir() / "nfo-demo-catalog.json").read_text(), "json")
        await s.edit("running", json.dumps(SEED), "json")
        await s.edit("running", json.dumps(OPENSTACK), "json")
    nc = await start_netconf(ds, users, "127.0.0.1", 0, tmp_path / "keys")
    http = uvicorn.Server(uvicorn.Config(build_app(ds, users=users), host="127.0.0.1", port=0,
                                         lifespan="off", log_level="warning"))
    task = asyncio.get_running_loop().create_task(http.serve())
    try:
        while not http.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        port = http.servers[0].sockets[0].getsockname()[1]
        yield Env(ds, users, f"http://127.0.0.1:{port}", nc)
    finally:
        http.should_exit = True
        await task
        await nc.stop()
        users.unregister()


# -- helpers --------------------------------------------------------------------------


def names_in(xml_or_json: str) -> set[str]:
    """nf-instance names in a reply, XML or JSON."""
    if xml_or_json.lstrip().startswith("{"):
        doc = json.loads(xml_or_json)
        found: set[str] = set()

        def walk(v: Any) -> None:
            if isinstance(v, dict):
                for k, x in v.items():
                    if k.endswith("nf-instance") and isinstance(x, list):
                        found.update(e.get("name") for e in x if "name" in e)
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
        walk(doc)
        return found
    root = ET.fromstring(xml_or_json)
    return {n.findtext(f"{{{INST_NS}}}name") or "" for n in root.iter(f"{{{INST_NS}}}nf-instance")
            } - {""}


def notified(xml: str) -> set[str]:
    """The instance names of the nf-instance-state-change events in a notification."""
    return {e.findtext(f"{{{INST_NS}}}name") or "" for e in
            ET.fromstring(xml).iter(f"{{{INST_NS}}}nf-instance-state-change")}


def bare(path: str | None) -> str | None:
    """An error-path without module prefixes (RESTCONF and NETCONF spell them apart)."""
    if path is None:
        return None
    return re.sub(r"(?<=[/\[])[A-Za-z_][\w.-]*:", "", path.strip())


def restconf_error(r: httpx.Response) -> dict[str, Any]:
    err: dict[str, Any] = r.json()["ietf-restconf:errors"]["error"][0]
    return err


async def get_config(env: Env, user: str, filter: Any = None) -> str:
    xml: str = await env.nc_run(user, lambda m: m.get_config("running", filter=filter).data_xml)
    return xml


async def get_data(env: Env, user: str, xpath: str | None = None) -> str:
    body = ('<datastore xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">'
            "ds:running</datastore>")
    if xpath is not None:
        body += (f'<xpath-filter xmlns:i="{INST_NS}" xmlns:v="{VIM_NS}">'
                 f"{xpath}</xpath-filter>")
    rpc = f'<get-data xmlns="{NMDA}">{body}</get-data>'

    def call(m: Any) -> str:
        reply = ET.fromstring(str(m.dispatch(to_ele(rpc)).xml))
        return ET.tostring(reply[0], encoding="unicode")  # <data>, without the message-id
    return str(await env.nc_run(user, call))


def edit_xml(*instances: str, op: str = "") -> str:
    attr = f' xmlns:nc="{NC}" nc:operation="{op}"' if op else ""
    inner = "".join(f"<nf-instance{attr}><name>{n}</name><descriptor>udp-echo</descriptor>"
                    f"<vim>local</vim><parameter><name>port</name><value>2999{i}</value>"
                    "</parameter></nf-instance>" for i, n in enumerate(instances))
    return config(f'<nf-instances xmlns="{INST_NS}">{inner}</nf-instances>')


def config(inner: str) -> str:
    return f'<config xmlns="{NC}">{inner}</config>'


# -- 1. read-default deny ---------------------------------------------------------------


async def test_read_default_deny_gives_empty_data_not_an_error(env: Env) -> None:
    await env.rules(read_default="deny")
    assert names_in(await get_config(env, "noc")) == set()
    assert names_in(await env.nc_run("noc", lambda m: m.get().data_xml)) == set()
    assert names_in(await get_data(env, "noc")) == set()
    async with env.http("noc") as c:
        r = await c.get("/restconf/data")
        assert r.status_code == 200, r.text
        assert r.json() == {"ietf-restconf:data": {}}
        r = await c.get(INSTANCES)
        assert r.status_code == 404
    # the administrator's rule still permits everything
    assert names_in(await get_config(env, ADMIN)) == {"a", "b", "secret"}


# -- 2. subtrees, keys, one entry ----------------------------------------------------------


async def test_denied_subtrees_vanish_keys_stay_and_a_key_rule_hides_one_entry(env: Env) -> None:
    await env.rules(rule_list("noc", ["noc"],
        rule("one-entry", "deny", "read",
             path="/nfo-instances:nf-instances/nf-instance[name='secret']"),
        rule("parameters", "deny", "read",
             path="/nfo-instances:nf-instances/nf-instance/parameter"),
        rule("keys-too", "deny", "read", path="/nfo-instances:nf-instances/nf-instance/name")))
    xml = await get_config(env, "noc")
    assert names_in(xml) == {"a", "b"}               # keys kept, one entry gone
    entries = list(ET.fromstring(xml).iter(f"{{{INST_NS}}}nf-instance"))
    assert entries and all(e.find(f"{{{INST_NS}}}parameter") is None for e in entries)
    assert all(e.findtext(f"{{{INST_NS}}}descriptor") == "udp-echo" for e in entries)
    for filt in (("subtree", f'<nf-instances xmlns="{INST_NS}"><nf-instance><name>secret</name>'
                             "</nf-instance></nf-instances>"),
                 ("xpath", "/nfo-instances:nf-instances/nf-instance[name='secret']")):
        assert names_in(await get_config(env, "noc", filt)) == set()
    filt = ("subtree", f'<nf-instances xmlns="{INST_NS}"><nf-instance><name>a</name>'
                       "</nf-instance></nf-instances>")
    assert names_in(await get_config(env, "noc", filt)) == {"a"}
    assert names_in(await get_data(env, "noc")) == {"a", "b"}
    assert names_in(await get_data(env, "noc", "/i:nf-instances/i:nf-instance")) == {"a", "b"}
    async with env.http("noc") as c:
        r = await c.get(INSTANCES)
        assert r.status_code == 200 and names_in(r.text) == {"a", "b"}
        assert all("parameter" not in e
                   for e in r.json()["nfo-instances:nf-instances"]["nf-instance"])
        assert (await c.get(f"{INSTANCES}/nf-instance=a")).status_code == 200
        assert (await c.get(f"{INSTANCES}/nf-instance=secret")).status_code == 404
        r = await c.get(INSTANCES, params={"fields": "nf-instance(name;descriptor)"})
        assert names_in(r.text) == {"a", "b"}


async def test_pages_count_only_what_the_user_may_read(env: Env) -> None:
    """List pagination (docs/pagination.md) filters first: a hidden entry is neither
    returned, counted in remaining, nor allowed as room for an offset."""
    await env.rules(rule_list("noc", ["noc"],
        rule("one-entry", "deny", "read",
             path="/nfo-instances:nf-instances/nf-instance[name='secret']")))
    async with env.http("noc") as c:
        r = await c.get(f"{INSTANCES}/nf-instance", params={"limit": "1"})
        got = r.json()["nfo-instances:nf-instance"]
        assert [e["name"] for e in got] == ["a"]
        assert got[0]["@"] == {"ietf-list-pagination:remaining": 1}
        r = await c.get(f"{INSTANCES}/nf-instance", params={"sort-by": "name",
                                                             "direction": "backwards"})
        assert [e["name"] for e in r.json()["nfo-instances:nf-instance"]] == ["b", "a"]
        r = await c.get(f"{INSTANCES}/nf-instance", params={"offset": "3"})
        assert r.status_code == 416
    async with env.http("admin") as c:
        r = await c.get(f"{INSTANCES}/nf-instance", params={"offset": "3"})
        assert r.status_code == 200 and r.json() == {"nfo-instances:nf-instance": []}
    lp = ('<list-pagination xmlns="urn:ietf:params:xml:ns:yang:ietf-list-pagination-nc">'
          "<limit>1</limit><offset>1</offset></list-pagination>")
    rpc = (f'<get-config xmlns="{NC}"><source><running/></source>'
           f'<filter type="xpath" select="/i:nf-instances/i:nf-instance" xmlns:i="{INST_NS}"/>'
           f"{lp}</get-config>")
    reply = await env.nc_run("noc", lambda m: m.dispatch(to_ele(rpc)).xml)
    entries = list(ET.fromstring(reply).iter(f"{{{INST_NS}}}nf-instance"))
    assert [e.findtext(f"{{{INST_NS}}}name") for e in entries] == ["b"]
    assert entries[0].get("{urn:ietf:params:xml:ns:yang:ietf-list-pagination}remaining") is None


# -- 3. a denied node answers as an absent one -------------------------------------------------


async def test_denied_node_answers_like_an_absent_one(env: Env) -> None:
    await env.rules(rule_list("noc", ["noc"], rule(
        "one-entry", "deny", "read",
        path="/nfo-instances:nf-instances/nf-instance[name='secret']")))
    for user in ("noc", ADMIN):
        # the credential oracle: a predicate on the password never tells right from wrong
        answers = []
        for guess in (SECRET, "wrong-guess"):
            sel = f"/v:vims/v:vim[starts-with(v:openstack/v:password,'{guess[:3]}')]/v:name"
            by_xpath = await get_config(env, user, ("xpath", ({"v": VIM_NS}, sel)))
            match = (f'<vims xmlns="{VIM_NS}"><vim><openstack><password>{guess}</password>'
                     "</openstack></vim></vims>")
            by_subtree = await get_config(env, user, ("subtree", match))
            by_get_data = await get_data(
                env, user, f"/v:vims/v:vim[v:openstack/v:password='{guess}']/v:name")
            answers.append((by_xpath, by_subtree, by_get_data))
            assert "cloud" not in by_xpath + by_get_data and guess not in by_subtree
        assert answers[0] == answers[1]
        assert SECRET not in await get_config(env, user)
    hidden = await get_config(env, "noc", ("xpath",
                              "/nfo-instances:nf-instances/nf-instance[name='secret']"))
    absent = await get_config(env, "noc", ("xpath",
                              "/nfo-instances:nf-instances/nf-instance[name='nothere']"))
    assert hidden == absent
    async with env.http("noc") as c:
        r1 = await c.get(f"{INSTANCES}/nf-instance=secret")
        r2 = await c.get(f"{INSTANCES}/nf-instance=nothere")
        assert r1.status_code == r2.status_code == 404
        assert restconf_error(r1)["error-tag"] == restconf_error(r2)["error-tag"]
        # writes do not tell either: PATCH and DELETE of both answer alike
        for method in ("DELETE", "PATCH"):
            body = json.dumps({"nfo-instances:nf-instance": [{"name": "x"}]})
            a = await c.request(method, f"{INSTANCES}/nf-instance=secret", content=body,
                                headers={"Content-Type": JSON})
            b = await c.request(method, f"{INSTANCES}/nf-instance=nothere", content=body,
                                headers={"Content-Type": JSON})
            assert a.status_code == b.status_code == 404, (method, a.text, b.text)
    # an edit's data-exists / data-missing does not tell a user without the right either
    for name, op in (("a", "create"), ("nothere", "delete"), ("secret", "create")):
        err = await env.nc_error("noc", lambda m, name=name, op=op: m.edit_config(
            target="running", config=edit_xml(name, op=op)))
        assert err.tag == "access-denied", (name, op, err.tag)
    err = await env.nc_error(ADMIN, lambda m: m.edit_config(
        target="running", config=edit_xml("a", op="create")))
    assert err.tag == "data-exists"
    async with env.http(ADMIN) as c:
        r = await c.get("/restconf/data/nfo-vim:vims/vim=cloud/openstack/password")
        assert r.status_code == 404
        r = await c.get("/restconf/data/nfo-vim:vims")
        assert SECRET not in r.text and "auth-url" in r.text


# -- 4. the * group ----------------------------------------------------------------------------


async def test_star_group_matches_every_user(env: Env) -> None:
    await env.rules(rule_list("everyone", ["*"], rule("no-vims", "deny", "read",
                                                      module_name="nfo-vim")))
    for user in ("noc", "ghost", ADMIN):
        xml = await get_config(env, user)
        has_vims = "<vims" in xml
        assert has_vims == (user == ADMIN), user  # admin's own rule-list comes first
        async with env.http(user) as c:
            r = await c.get("/restconf/data/nfo-vim:vims")
            assert (r.status_code == 200) == (user == ADMIN)


# -- 5. writes -----------------------------------------------------------------------------------


async def test_write_default_deny_names_the_node(env: Env) -> None:
    before = env.counters()
    err = await env.nc_error("ghost", lambda m: m.edit_config(target="running",
                                                               config=edit_xml("x")))
    assert err.tag == "access-denied"
    assert bare(err.path) == "/nf-instances/nf-instance[name='x']"
    async with env.http("ghost") as c:
        r = await c.post(INSTANCES, content=json.dumps({"nfo-instances:nf-instance": [
            instance("x", 29990)]}), headers={"Content-Type": JSON})
        assert r.status_code == 403
        e = restconf_error(r)
        assert e["error-tag"] == "access-denied"
        assert bare(e["error-path"]) == "/nf-instances/nf-instance[name='x']"
    assert env.counters() == {**before, "data-writes": before["data-writes"] + 2}
    with env.ds.get("running") as t:
        assert t.node("/nfo-instances:nf-instances/nf-instance[name='x']") is None


async def test_update_permission_does_not_create(env: Env) -> None:
    await env.rules(rule_list("eng", ["eng"], rule(
        "values", "permit", "update",
        path="/nfo-instances:nf-instances/nf-instance/parameter")))
    change = (f'<config xmlns="{NC}"><nf-instances xmlns="{INST_NS}"><nf-instance><name>a</name>'
              "<parameter>"
              "<name>port</name><value>21001</value></parameter></nf-instance></nf-instances>"
              "</config>")
    await env.nc_run("eng", lambda m: m.edit_config(target="running", config=change))
    add = change.replace("<name>port</name><value>21001</value>",
                         "<name>extra</name><value>1</value>")
    err = await env.nc_error("eng", lambda m: m.edit_config(target="running", config=add))
    assert err.tag == "access-denied"
    async with env.http("eng") as c:
        url = f"{INSTANCES}/nf-instance=b/parameter=port"
        r = await c.patch(url, content=json.dumps({"nfo-instances:parameter": [
            {"name": "port", "value": "21002"}]}), headers={"Content-Type": JSON})
        assert r.status_code == 204, r.text
        r = await c.post(f"{INSTANCES}/nf-instance=b", content=json.dumps(
            {"nfo-instances:parameter": [{"name": "extra", "value": "1"}]}),
            headers={"Content-Type": JSON})
        assert r.status_code == 403


async def test_creating_a_child_does_not_create_its_parent_entry(env: Env) -> None:
    await env.rules(rule_list("eng", ["eng"], rule(
        "describe", "permit", "create",
        path="/nfo-instances:nf-instances/nf-instance/description")))
    add = (f'<config xmlns="{NC}"><nf-instances xmlns="{INST_NS}"><nf-instance><name>a</name>'
           "<description>mine</description></nf-instance></nf-instances></config>")
    await env.nc_run("eng", lambda m: m.edit_config(target="running", config=add))
    err = await env.nc_error("eng", lambda m: m.edit_config(target="running",
                                                             config=edit_xml("newone")))
    assert err.tag == "access-denied"
    assert bare(err.path) == "/nf-instances/nf-instance[name='newone']"
    async with env.http("eng") as c:
        r = await c.post(INSTANCES, content=json.dumps({"nfo-instances:nf-instance": [
            instance("newtwo", 29991)]}), headers={"Content-Type": JSON})
        assert r.status_code == 403
        assert bare(restconf_error(r)["error-path"]) == "/nf-instances/nf-instance[name='newtwo']"


async def test_catalog_and_vims_are_for_admins_only(env: Env) -> None:
    await env.rules(rule_list("eng", ["eng"], rule("all", "permit", "create update delete",
                                                   module_name="*")),
                    write_default="permit")
    # the descriptor says what runs on the host: default-deny-write, not write-default
    async with env.http("eng") as c:
        r = await c.post("/restconf/data/nfo-catalog:catalog", content=json.dumps(
            {"nfo-catalog:nf-descriptor": [{"id": "shell", "name": "s", "version": "1",
                                            "vim-types": ["nfo-vim:local"],
                                            "local": {"command": ["/bin/sh"]}}]}),
            headers={"Content-Type": JSON})
        assert r.status_code == 201, r.text  # an explicit rule for the module permits it
    await env.rules(rule_list("noc", ["noc"]), write_default="permit")
    async with env.http("noc") as c:
        r = await c.delete("/restconf/data/nfo-catalog:catalog/nf-descriptor=shell")
        assert r.status_code == 403
        r = await c.delete(f"{INSTANCES}/nf-instance=b")
        assert r.status_code == 204  # write-default permit covers the rest
    err = await env.nc_error("noc", lambda m: m.edit_config(target="running", config=(
        f'<config xmlns="{NC}"><vims xmlns="{VIM_NS}"><vim><name>local</name>'
        "<description>x</description>"
        "</vim></vims></config>")))
    assert err.tag == "access-denied"


async def test_repointing_credentials_needs_the_credentials(env: Env) -> None:
    async with env.http(ADMIN) as c:
        url = "/restconf/data/nfo-vim:vims/vim=cloud/openstack/auth-url"
        r = await c.put(url, content=json.dumps({"nfo-vim:auth-url": "http://127.0.0.1:9/v3"}),
                        headers={"Content-Type": JSON})
        assert r.status_code == 403, r.text
        assert restconf_error(r)["error-app-tag"] == "nfo-credentials-required"
        r = await c.patch("/restconf/data/nfo-vim:vims/vim=cloud/openstack", content=json.dumps(
            {"nfo-vim:openstack": {"auth-url": "http://127.0.0.1:9/v3", "password": SECRET}}),
            headers={"Content-Type": JSON})
        assert r.status_code == 204, r.text
    err = await env.nc_error(ADMIN, lambda m: m.edit_config(target="running", config=(
        f'<config xmlns="{NC}"><vims xmlns="{VIM_NS}"><vim><name>cloud</name><openstack>'
        "<auth-url>http://127.0.0.1:10/v3</auth-url></openstack></vim></vims></config>")))
    assert err.tag == "access-denied"


# -- 6. commit, discard-changes, confirmed-commit rollback --------------------------------------


async def test_commit_checks_the_committing_user(env: Env) -> None:
    await env.rules(rule_list("eng", ["eng"], rule(
        "instances", "permit", "*", path="/nfo-instances:nf-instances")))
    await env.nc_run(ADMIN, lambda m: m.edit_config(target="candidate", config=edit_xml("c1")))
    # noc did not write the candidate, but commits it: its own rights decide
    err = await env.nc_error("noc", lambda m: m.commit())
    assert err.tag == "access-denied"
    await env.nc_run("eng", lambda m: m.commit())
    with env.ds.get("running") as t:
        assert t.node("/nfo-instances:nf-instances/nf-instance[name='c1']") is not None
    # a candidate edit is checked too (RESTCONF writes the candidate datastore)
    async with env.http("noc") as c:
        r = await c.post("/restconf/ds/ietf-datastores:candidate/nfo-instances:nf-instances",
                         content=json.dumps({"nfo-instances:nf-instance": [instance("c2", 1)]}),
                         headers={"Content-Type": JSON})
        assert r.status_code == 403


async def test_discard_changes_is_always_allowed(env: Env) -> None:
    await env.rules(rule_list("noc", ["noc"], rule("nothing", "deny", "*", module_name="*")),
                    exec_default="deny")
    await env.nc_run(ADMIN, lambda m: m.edit_config(target="candidate", config=edit_xml("d1")))
    await env.nc_run("noc", lambda m: m.discard_changes())
    assert env.ds.tree("candidate") is env.ds.tree("running")


async def test_confirmed_commit_rollback_is_not_blocked_by_the_users_rules(env: Env) -> None:
    await env.rules(rule_list("eng", ["eng"], rule(
        "instances", "permit", "*", path="/nfo-instances:nf-instances")))

    def confirmed(m: Any) -> None:
        m.edit_config(target="candidate", config=edit_xml("cc"))
        m.commit(confirmed=True, timeout="1", persist="p1")
    await env.nc_run("eng", confirmed)
    with env.ds.get("running") as t:
        assert t.node("/nfo-instances:nf-instances/nf-instance[name='cc']") is not None
    await env.rules(rule_list("eng", ["eng"], rule(
        "instances", "deny", "*", path="/nfo-instances:nf-instances")))
    for _ in range(100):
        await asyncio.sleep(0.05)
        with env.ds.get("running") as t:
            if t.node("/nfo-instances:nf-instances/nf-instance[name='cc']") is None:
                break
    else:
        raise AssertionError("the confirmed commit was not rolled back")


# -- 7. operations that need exec, and those that do not --------------------------------------


async def test_kill_session_and_delete_config_need_an_explicit_rule(env: Env) -> None:
    await env.rules(exec_default="permit", write_default="permit")
    err = await env.nc_error("eng", lambda m: m.delete_config(target="startup"))
    assert err.tag == "access-denied"

    def kill_other(m: Any) -> None:
        other = manager.connect(host="127.0.0.1", port=env.nc.port, username="noc",
                                password=PW, hostkey_verify=False, look_for_keys=False,
                                allow_agent=False, timeout=10)
        try:
            m.kill_session(other.session_id)
        finally:
            with contextlib.suppress(Exception):  # killed: nothing to close
                other.close_session()
    err = await env.nc_error("eng", kill_other)
    assert err.tag == "access-denied"
    await env.rules(rule_list("eng", ["eng"], rule(
        "kill", "permit", "exec", module_name="ietf-netconf", rpc_name="kill-session")))
    await env.nc_run("eng", kill_other)
    await env.nc_run(ADMIN, lambda m: m.delete_config(target="startup"))


async def test_reads_and_close_need_no_exec_permission(env: Env) -> None:
    await env.rules(rule_list("noc", ["noc"], rule("no-ops", "deny", "exec", rpc_name="*")))
    assert names_in(await get_config(env, "noc")) == {"a", "b", "secret"}
    assert names_in(await env.nc_run("noc", lambda m: m.get().data_xml)) == {"a", "b", "secret"}
    assert names_in(await get_data(env, "noc")) == {"a", "b", "secret"}
    err = await env.nc_error("noc", lambda m: m.lock("candidate"))
    assert err.tag == "access-denied"

    def close() -> None:
        m = manager.connect(host="127.0.0.1", port=env.nc.port, username="noc", password=PW,
                            hostkey_verify=False, look_for_keys=False, allow_agent=False,
                            timeout=10)
        m.close_session()
        assert not m.connected
    await asyncio.to_thread(close)


# -- 8. RPCs and actions --------------------------------------------------------------------------


async def test_actions_are_checked_per_instance_and_default_deny_all_holds(env: Env) -> None:
    ran: list[str] = []

    async def restart(call: RpcCall) -> dict[str, str]:
        ran.append(call.parent_path or "")
        return {"result": "restarting"}
    env.ds.register_rpc("/nfo-instances:nf-instances/nf-instance/restart", restart)
    try:
        await env.rules(rule_list("auto", ["auto"], rule(
            "restart-a", "permit", "exec",
            path="/nfo-instances:nf-instances/nf-instance[name='a']/restart")),
            exec_default="deny")
        async with env.http("robot") as c:
            r = await c.post(f"{INSTANCES}/nf-instance=a/restart")
            assert r.status_code == 200, r.text
            r = await c.post(f"{INSTANCES}/nf-instance=b/restart")
            assert r.status_code == 403
            assert restconf_error(r)["error-tag"] == "access-denied"
            r = await c.post(f"{INSTANCES}/nf-instance=nothere/restart")
            assert r.status_code == 403  # decided before existence is looked at
        action = (f'<action xmlns="urn:ietf:params:xml:ns:yang:1"><nf-instances xmlns="{INST_NS}">'
                  "<nf-instance><name>{}</name><restart/></nf-instance></nf-instances></action>")
        await env.nc_run("robot", lambda m: m.dispatch(to_ele(action.format("a"))))
        err = await env.nc_error("robot",
                                 lambda m: m.dispatch(to_ele(action.format("b"))))
        assert err.tag == "access-denied"
        assert len(ran) == 2
        # set-password is default-deny-all: exec-default permit does not open it
        await env.rules(exec_default="permit")
        async with env.http("noc") as c:
            r = await c.post("/restconf/data/nfo-users:users/user=noc/set-password",
                             content=json.dumps({"nfo-users:input": {
                                 "password": "new-password-1"}}),
                             headers={"Content-Type": JSON})
            assert r.status_code == 403
        assert env.users.verify("noc", PW)
    finally:
        env.ds.unregister_rpc("/nfo-instances:nf-instances/nf-instance/restart")


# -- 9. nothing sticks between requests ---------------------------------------------------------


async def test_permissions_are_not_sticky(env: Env) -> None:
    await env.rules(rule_list("noc", ["noc"], rule(
        "one-entry", "deny", "read",
        path="/nfo-instances:nf-instances/nf-instance[name='secret']")))
    async with httpx.AsyncClient(base_url=env.base, timeout=10, trust_env=False,
                                 headers={"Accept": JSON}) as c:
        for _ in range(3):  # one connection, the users alternate
            r = await c.get(INSTANCES, auth=(ADMIN, PW))
            assert names_in(r.text) == {"a", "b", "secret"}
            r = await c.get(INSTANCES, auth=("noc", PW))
            assert names_in(r.text) == {"a", "b"}

    def interleaved(m: Any) -> tuple[set[str], set[str]]:
        with manager.connect(host="127.0.0.1", port=env.nc.port, username="noc", password=PW,
                             hostkey_verify=False, look_for_keys=False, allow_agent=False,
                             timeout=10) as noc:
            first = names_in(m.get_config("running").data_xml)
            second = names_in(noc.get_config("running").data_xml)
            return first, second
    assert await env.nc_run(ADMIN, interleaved) == ({"a", "b", "secret"}, {"a", "b"})


async def test_rule_changes_reach_open_sessions(env: Env) -> None:
    def session(m: Any) -> tuple[set[str], set[str]]:
        before = names_in(m.get_config("running").data_xml)
        asyncio.run_coroutine_threadsafe(env.rules(rule_list("noc", ["noc"], rule(
            "a", "deny", "read", path="/nfo-instances:nf-instances/nf-instance[name='a']"))),
            loop).result(10)
        return before, names_in(m.get_config("running").data_xml)
    loop = asyncio.get_running_loop()
    assert await env.nc_run("noc", session) == ({"a", "b", "secret"}, {"b", "secret"})


# -- 10. identities --------------------------------------------------------------------------------


async def test_no_network_login_is_the_server_and_disabled_users_cannot_log_in(env: Env) -> None:
    # an account named like the server's own writers has no privilege
    await env.users.add("nfo-workload", PW)
    err = await env.nc_error("nfo-workload", lambda m: m.edit_config(
        target="running", config=edit_xml("z")))
    assert err.tag == "access-denied"
    async with env.http("nfo-workload") as c:
        r = await c.get("/restconf/data/nfo-vim:vims")
        assert SECRET not in r.text
    await env.users.set_enabled("noc", False)
    async with env.http("noc") as c:
        r = await c.get(INSTANCES)
        assert r.status_code == 401
    with pytest.raises(AuthenticationError):
        await env.nc_run("noc", lambda m: None)
    await env.users.set_enabled("noc", True)
    async with env.http("noc") as c:
        assert (await c.get(INSTANCES)).status_code == 200


async def test_administrators_manage_accounts_over_both_protocols(env: Env) -> None:
    async with env.http(ADMIN) as c:
        r = await c.post("/restconf/data/nfo-users:users", content=json.dumps(
            {"nfo-users:user": [{"name": "carol"}]}), headers={"Content-Type": JSON})
        assert r.status_code == 201, r.text
        r = await c.post("/restconf/data/nfo-users:users/user=carol/set-password",
                         content=json.dumps({"nfo-users:input": {"password": "carol-pw"}}),
                         headers={"Content-Type": JSON})
        assert r.status_code == 204, r.text
        r = await c.get("/restconf/data/nfo-users:users/user=carol")
        assert r.status_code == 200 and "password" not in r.text  # the hash is never read
    await env.nc_run("carol", lambda m: m.get_config("running"), password="carol-pw")
    # a NACM group for her, over NETCONF, then disabling her
    acm = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
    await env.nc_run(ADMIN, lambda m: m.edit_config(target="running", config=config(
        f'<nacm xmlns="{acm}"><groups><group><name>noc</name><user-name>carol</user-name>'
        "</group></groups></nacm>")))
    assert env.users.groups_of("carol") == ["noc"]
    await env.nc_run(ADMIN, lambda m: m.edit_config(target="running", config=config(
        '<users xmlns="urn:nfo:users"><user><name>carol</name><enabled>false</enabled>'
        "</user></users>")))
    async with env.http("carol", "carol-pw") as c:
        assert (await c.get(INSTANCES)).status_code == 401
    # and nobody else may touch accounts
    async with env.http("noc") as c:
        r = await c.delete("/restconf/data/nfo-users:users/user=carol")
        assert r.status_code == 403


# -- 11. both front ends, the same verdicts ----------------------------------------------------


async def test_authentication_is_401_authorisation_403_with_an_errors_body(env: Env) -> None:
    async with env.http("noc", "wrong-password") as c:
        r = await c.get(INSTANCES)
        assert r.status_code == 401
    async with env.http("noc") as c:
        r = await c.delete(f"{INSTANCES}/nf-instance=a")
        assert r.status_code == 403
        assert restconf_error(r) == {
            "error-type": "application", "error-tag": "access-denied",
            "error-path": "/nfo-instances:nf-instances/nf-instance[name='a']",
            "error-message": restconf_error(r)["error-message"]}
    err = await env.nc_error("noc", lambda m: m.edit_config(target="running", config=(
        f'<config xmlns="{NC}"><nf-instances xmlns="{INST_NS}" xmlns:nc="{NC}"><nf-instance '
        'nc:operation="delete"><name>a</name></nf-instance></nf-instances></config>')))
    assert (err.tag, err.type, bare(err.path)) == (
        "access-denied", "application", "/nf-instances/nf-instance[name='a']")


async def test_both_front_ends_give_the_same_verdicts(env: Env) -> None:
    """One set of rules, every account, the same requests over both protocols: each is
    permitted on both or denied on both."""
    await env.rules(
        rule_list("eng", ["eng"],
                  rule("no-b", "deny", "*", path=f"{INST}[name='b']"),
                  rule("instances", "permit", "create update delete",
                       path="/nfo-instances:nf-instances")),
        rule_list("noc", ["noc"], rule("update-only", "permit", "update",
                                       path="/nfo-instances:nf-instances/nf-instance/description")))
    async def restore() -> None:
        """a and b as the test starts, no new-a: for the next account."""
        async with env.ds.internal_session("seed") as s:
            await s.edit("running", json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
                {**instance(n, 20001 + i), "description": "d"} for i, n in enumerate("ab")]}}),
                "json")
            if env.ds.tree("running").node(f"{INST}[name='new-a']") is not None:
                await s.edit("running", json.dumps({"nfo-instances:nf-instances": {
                    "nf-instance": [{"name": "new-a",
                                     "@": {"ietf-netconf:operation": "delete"}}]}}), "json")
    await restore()

    def xml_edit(name: str, what: str) -> str:
        if what == "describe":
            body = f"<nf-instance><name>{name}</name><description>new</description></nf-instance>"
        elif what == "delete":
            body = (f'<nf-instance xmlns:nc="{NC}" nc:operation="delete"><name>{name}</name>'
                    "</nf-instance>")
        else:
            return edit_xml(name)
        return config(f'<nf-instances xmlns="{INST_NS}">{body}</nf-instances>')

    async def over_restconf(user: str, name: str, what: str) -> bool:
        async with env.http(user) as c:
            if what == "describe":
                r = await c.put(f"{INSTANCES}/nf-instance={name}/description", content=json.dumps(
                    {"nfo-instances:description": "new"}), headers={"Content-Type": JSON})
            elif what == "delete":
                r = await c.delete(f"{INSTANCES}/nf-instance={name}")
            else:
                r = await c.post(INSTANCES, content=json.dumps(
                    {"nfo-instances:nf-instance": [instance(name, 29000)]}),
                    headers={"Content-Type": JSON})
        assert r.status_code in (201, 204, 403, 404), r.text
        return r.status_code < 300

    async def over_netconf(user: str, name: str, what: str) -> bool:
        def attempt(m: Any) -> bool:
            try:
                m.edit_config(target="running", config=xml_edit(name, what),
                              test_option="test-only")
            except RPCError as e:
                assert e.tag == "access-denied", e
                return False
            return True
        ok: bool = await env.nc_run(user, attempt)
        return ok

    verdicts = {}
    for user in ("eng", "noc", "ghost", ADMIN):
        for name, what in (("a", "describe"), ("b", "describe"), ("new-a", "create"),
                           ("b", "delete"), ("a", "delete")):
            nc_ok = await over_netconf(user, name, what)  # test-only: nothing changes
            rc_ok = await over_restconf(user, name, what)
            assert nc_ok == rc_ok, (user, name, what)
            verdicts[(user, name, what)] = rc_ok
            if rc_ok:
                await restore()
    assert verdicts[("eng", "a", "delete")] and not verdicts[("eng", "b", "delete")]
    assert verdicts[("noc", "a", "describe")] and not verdicts[("noc", "new-a", "create")]
    assert not any(v for (u, _, _), v in verdicts.items() if u == "ghost")
    assert all(v for (u, _, _), v in verdicts.items() if u == ADMIN)


# -- 12. counters --------------------------------------------------------------------------------


async def test_denied_counters(env: Env) -> None:
    await env.rules(rule_list("noc", ["noc"], rule("no-lock", "deny", "exec", rpc_name="lock")))
    await env.nc_error("noc", lambda m: m.lock("candidate"))             # an operation
    await env.nc_error("noc", lambda m: m.edit_config(target="running",    # a write
                                                       config=edit_xml("q")))
    await get_config(env, "noc")                                          # reads never count
    async with env.http(ADMIN) as c:
        r = await c.get("/restconf/data/ietf-netconf-acm:nacm", params={"content": "nonconfig"})
        assert r.status_code == 200, r.text
        got = r.json()["ietf-netconf-acm:nacm"]
    assert (got["denied-operations"], got["denied-data-writes"]) == (1, 1)
    assert got["denied-notifications"] == 0
    # a reader without access to /nacm does not see them
    async with env.http("noc") as c:
        r = await c.get("/restconf/data/ietf-netconf-acm:nacm")
        assert r.status_code == 404


# -- 13. notifications -----------------------------------------------------------------------------


def state_change(name: str) -> str:
    return json.dumps({"nfo-instances:nf-instance-state-change": {
        "name": name, "new-status": "running"}})


async def test_notifications_are_filtered_per_user(env: Env) -> None:
    await env.rules(rule_list("noc", ["noc"], rule(
        "one-entry", "deny", "read",
        path="/nfo-instances:nf-instances/nf-instance[name='secret']")))
    for name in ("a", "secret"):
        env.ds.notifications.publish(state_change(name))

    def replay(m: Any) -> set[str]:
        m.create_subscription(start_time="1970-01-01T00:00:00Z")
        seen: set[str] = set()
        while True:
            n = m.take_notification(timeout=5)
            assert n is not None
            if "replayComplete" in n.notification_xml:
                return seen
            seen |= notified(n.notification_xml)
    assert await env.nc_run("noc", replay) == {"a"}
    assert await env.nc_run(ADMIN, replay) == {"a", "secret"}
    before = env.counters()["notifications"]

    async def sse(user: str) -> set[str]:
        seen: set[str] = set()
        async with env.http(user) as c, c.stream(
                "GET", "/restconf/streams/NETCONF/json",
                params={"start-time": "1970-01-01T00:00:00Z"},
                headers={"Accept": "text/event-stream"}) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith(": replay-complete"):
                    return seen
                if line.startswith("data:"):
                    doc = json.loads(line[5:])["ietf-restconf:notification"]
                    change = doc.get("nfo-instances:nf-instance-state-change")
                    if change is not None:
                        seen.add(change["name"])
        return seen
    assert await sse("noc") == {"a"}
    assert await sse(ADMIN) == {"a", "secret"}
    assert env.counters()["notifications"] == before + 1

    # live delivery: a subscriber without access to 'secret' never gets its event
    def live(m: Any) -> set[str]:
        m.create_subscription()
        asyncio.run_coroutine_threadsafe(_publish_both(env), loop).result(10)
        seen: set[str] = set()
        while (n := m.take_notification(timeout=1)) is not None:
            seen |= notified(n.notification_xml)
        return seen
    loop = asyncio.get_running_loop()
    assert await env.nc_run("noc", live) == {"b"}


async def _publish_both(env: Env) -> None:
    env.ds.notifications.publish(state_change("secret"))
    env.ds.notifications.publish(state_change("b"))
