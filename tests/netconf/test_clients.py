"""Interoperability with real third-party NETCONF clients (issue 5).

A real nfo NETCONF server (asyncssh, 127.0.0.1, fresh datastore per test, the
demo catalog loaded) is driven by four independent client implementations:

* **netconf-console2** (PyPI ``netconf-console2``, ncclient underneath), run as
  a subprocess: hello, edit-config create/merge(``--set``)/delete, get-config
  with a subtree (``--filter``) and an XPath (``-x``) filter, base:1.0 framing
  forced with ``-v 1.0``, candidate edit + commit, a lock conflict between two
  processes and a notification received on ``--create-subscription``.
* **netconf-client** (PyPI ``netconf-client``, paramiko), in threads: hello,
  create/merge/delete, subtree and XPath filters, candidate + commit, lock
  conflict, RFC 8526 get-data (operational and running, xpath-filter,
  subtree-filter, config-filter, max-depth, with-origin, origin-filter and
  negated-origin-filter) and notifications.
* **scrapli-netconf** with its ``system`` (OpenSSH in a pty), ``paramiko`` and
  ``asyncssh`` transports, each with base:1.0 (``strip_namespaces``) and
  base:1.1 framing: hello, create/merge/delete, get-config subtree and XPath,
  get, candidate + commit + discard, lock conflict, get-data and
  create-subscription through ``rpc()``.
* **yangcli** (Debian ``yangcli``, yuma123) in batch mode with base:1.0 and
  base:1.1: hello (it fetches every module with get-schema), create/merge/delete
  through the candidate and commit, sget-config (subtree) and xget-config
  (XPath), a lock conflict and a live notification (``eventlog``).

Gaps (client limitations, not server ones):

* netconf-console2 has no get-data command (``--rpc`` could send one raw;
  netconf-client and scrapli cover get-data).  ``--set`` with several paths
  emits one ``<nf-instances>`` per path, naming the same list entry twice,
  which the server refuses (``data-exists``) as it refuses any duplicate list
  entry in an edit; single-path ``--set`` and ``--edit-config`` files work.
* scrapli-netconf has no notification API: create-subscription is sent with
  ``rpc()`` and answered ``<ok/>``, but notifications cannot be read.  It does
  not report the session-id of the hello, so the lock-denied session-id is
  compared with the server's lock table.  Its XPath filters carry no namespace
  declarations, so they use module names as prefixes, and it puts the XPath in
  a single-quoted attribute, so predicates quote with ``"``.
* yangcli builds XPath filters from schema nodes and sends them unprefixed; it
  has no sleep command, so the notification test lets its script poll
  get-config until the test writes a marker entry.  ``create-subscription``
  needs the RFC 5277 module, loaded with ``--module=notifications``.  yangcli
  puts its per-session module copies in ``~/.yuma/tmp`` of the passwd home
  (``HOME`` does not move it) and removes them at exit; aliases, history and
  user variables are not saved.
* scrapli's fourth transport, ``ssh2`` (ssh2-python, libssh2), is not covered.

Server bugs these clients exposed (regression tests at the end):

* XPath filters of get/get-config/create-subscription used the prefixes of the
  request's XML namespace declarations verbatim (``/i:nf-instances`` with
  ``xmlns:i=...`` failed with "Unknown module i"); now mapped to module names
  as get-data already did (netconf-console2 ``-x`` with ``--ns``, netconf-client).
* A hello (or rpc) with whitespace before the XML declaration was refused as
  not well-formed, closing the session (scrapli sends ``\\n<?xml ...`` and a
  newline after every ``]]>]]>``).
* PTY requests were refused; OpenSSH run with ``-tt`` (scrapli's system
  transport) then closes the channel.  A PTY is now granted and ignored.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from lxml import etree

from nfo.datastore import Datastore
from nfo.netconf.messages import BASE_1_0, BASE_1_1, NC_NS, NMDA_NS
from nfo.netconf.protocol import NetconfContext, handle
from nfo.netconf.server import NetconfServer
from nfo.wire.framing import Decoder, encode_eom

from .test_interop import CATALOG, INST_NS, PASSWORD, instance, server  # noqa: F401

NCC2 = Path(sys.executable).parent / "netconf-console2"
YANGCLI = shutil.which("yangcli")
YANGLINT = shutil.which("yanglint")
NOTIF_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
DS_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
STEP = 20.0  # bound on any single client step (seconds)


# -- shared helpers ---------------------------------------------------------------------

async def until(pred: Callable[[], bool], what: str, timeout: float = STEP) -> None:
    """Poll ``pred`` on the event loop (the server keeps running) until it holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def names(ds: Datastore, datastore: str = "running") -> list[str]:
    with ds.get(datastore, "/nfo-instances:nf-instances") as t:
        doc = json.loads(t.print("json") or "{}")
    return [e["name"] for e in doc.get("nfo-instances:nf-instances", {}).get("nf-instance", [])]


def ports(ds: Datastore, name: str) -> list[str]:
    with ds.get("running", "/nfo-instances:nf-instances") as t:
        doc = json.loads(t.print("json") or "{}")
    for e in doc.get("nfo-instances:nf-instances", {}).get("nf-instance", []):
        if e["name"] == name:
            return [p["value"] for p in e.get("parameter", []) if p["name"] == "port"]
    return []


def local_texts(xml: str | bytes, name: str) -> list[str]:
    """Texts of every element called ``name`` in any namespace (or none)."""
    root = ET.fromstring(xml.encode() if isinstance(xml, str) else xml)
    return [(e.text or "").strip() for e in root.iter()
            if isinstance(e.tag, str) and e.tag.rpartition("}")[2] == name]


def publish_state_change(ds: Datastore, name: str) -> None:
    ds.notifications.publish(json.dumps({"nfo-instances:nf-instance-state-change": {
        "name": name, "old-status": "initializing", "new-status": "running",
        "reason": "interop"}}), "json")


async def seed_instance(ds: Datastore, name: str, port: str = "7000") -> None:
    async with ds.internal_session("seed") as s:
        await s.edit("running", json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
            {"name": name, "descriptor": "udp-echo",
             "parameter": [{"name": "port", "value": port}]}]}}), "json")


def client_env(home: Path) -> dict[str, str]:
    """No user keys, agent or config of the person running the tests leak in."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    return env


async def run(cmd: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run a client to completion; (exit code, stdout + stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env)
    chunks: list[bytes] = []

    async def pump() -> None:
        assert proc.stdout is not None
        while data := await proc.stdout.read(65536):
            chunks.append(data)
        await proc.wait()
    try:
        await asyncio.wait_for(pump(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        tail = b"".join(chunks).decode(errors="replace")[-3000:]
        raise AssertionError(f"{Path(cmd[0]).name} did not finish within {timeout} s:\n"
                             f"{tail}") from None
    assert proc.returncode is not None
    return proc.returncode, b"".join(chunks).decode(errors="replace")


@asynccontextmanager
async def background(cmd: list[str], env: dict[str, str]
                     ) -> AsyncIterator[asyncio.subprocess.Process]:
    """A client left running (a lock holder, a listener); killed and reaped on exit."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.communicate(), STEP)


def subscriptions(srv: NetconfServer) -> int:
    return len(srv.ds.notifications._subs)


async def locks_released(srv: NetconfServer) -> None:
    await until(lambda: not srv.ds.locks(), "the locks to be released")


# -- netconf-console2 -------------------------------------------------------------------

needs_ncc2 = pytest.mark.skipif(not NCC2.exists(), reason="netconf-console2 not installed")


def ncc2_cmd(srv: NetconfServer, *args: str, user: str = "alice") -> list[str]:
    return [str(NCC2), "--host", "127.0.0.1", "--port", str(srv.port), "-u", user,
            "-p", PASSWORD, "--reply-timeout", str(int(STEP)), *args]


async def ncc2(srv: NetconfServer, home: Path, *args: str, ok: bool = True,
               user: str = "alice") -> str:
    rc, out = await run(ncc2_cmd(srv, *args, user=user), client_env(home))
    assert (rc == 0) == ok, (rc, out)
    return out


NS_I = ["--ns", f"i={INST_NS}"]


def edit_file(tmp: Path, name: str, port: str, operation: str = "") -> str:
    f = tmp / f"{name}.xml"
    op = f' xmlns:nc="{NC_NS}" nc:operation="{operation}"' if operation else ""
    f.write_text(f'<nf-instances xmlns="{INST_NS}"><nf-instance{op}><name>{name}</name>'
                 "<descriptor>udp-echo</descriptor><parameter><name>port</name>"
                 f"<value>{port}</value></parameter></nf-instance></nf-instances>")
    return str(f)


@needs_ncc2
async def test_ncc2_hello(server: NetconfServer, tmp_path: Path) -> None:  # noqa: F811
    out = await ncc2(server, tmp_path, "--hello")
    caps = local_texts(out, "capability")
    assert BASE_1_0 in caps and BASE_1_1 in caps
    assert any(c.startswith(f"{INST_NS}?module=nfo-instances") for c in caps)
    assert "urn:ietf:params:netconf:capability:notification:1.0" in caps


@needs_ncc2
async def test_ncc2_edit_create_merge_delete(server: NetconfServer,  # noqa: F811
                                             tmp_path: Path) -> None:
    create = edit_file(tmp_path, "n1", "7000", "create")
    assert "<ok" in await ncc2(server, tmp_path, "--edit-config", create)
    assert names(server.ds) == ["n1"]
    out = await ncc2(server, tmp_path, "--edit-config", create, ok=False)
    assert "data-exists" in out
    entry = "/i:nf-instances/nf-instance[name='n1']"
    await ncc2(server, tmp_path, "--set", f"{entry}/parameter[name='port']/value=7005", *NS_I)
    assert ports(server.ds, "n1") == ["7005"]
    await ncc2(server, tmp_path, "--del-operation", "delete", "--delete", entry, *NS_I)
    assert names(server.ds) == []
    out = await ncc2(server, tmp_path, "--del-operation", "delete", "--delete", entry, *NS_I,
                     ok=False)
    assert "data-missing" in out


@needs_ncc2
@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_ncc2_get_config_filters(server: NetconfServer, tmp_path: Path,  # noqa: F811
                                       version: str) -> None:
    await seed_instance(server.ds, "f1", "7001")
    await seed_instance(server.ds, "f2", "7002")
    # a subtree filter built from a path
    out = await ncc2(server, tmp_path, "-v", version, "--get-config",
                     "--filter", "/i:nf-instances/nf-instance[name='f2']", *NS_I)
    assert local_texts(out, "name") == ["f2", "port"]
    # an XPath filter using a prefix declared in the request (regression: prefixes)
    out = await ncc2(server, tmp_path, "-v", version, "--get-config",
                     "-x", "/i:nf-instances/i:nf-instance[i:name='f1']/i:descriptor", *NS_I)
    assert local_texts(out, "name") == ["f1"]
    assert local_texts(out, "descriptor") == ["udp-echo"]
    assert local_texts(out, "value") == []
    # get (operational) with an unprefixed XPath
    out = await ncc2(server, tmp_path, "-v", version, "--get", "-x", "/nf-instances")
    assert sorted(local_texts(out, "name")) == ["f1", "f2", "port", "port"]


@needs_ncc2
async def test_ncc2_candidate_commit(server: NetconfServer, tmp_path: Path) -> None:  # noqa: F811
    out = await ncc2(server, tmp_path, "--db", "candidate",
                     "--edit-config", edit_file(tmp_path, "c1", "7010"), "--commit")
    assert out.count("ok") >= 2
    assert names(server.ds) == ["c1"]
    # an edit discarded instead of committed leaves running alone
    await ncc2(server, tmp_path, "--db", "candidate",
               "--edit-config", edit_file(tmp_path, "c2", "7011"), "--discard-changes")
    assert names(server.ds) == ["c1"]
    assert names(server.ds, "candidate") == ["c1"]


@needs_ncc2
async def test_ncc2_lock_conflict(server: NetconfServer, tmp_path: Path) -> None:  # noqa: F811
    env = client_env(tmp_path)
    async with background(ncc2_cmd(server, "--lock", "--sleep", "60"), env):
        await until(lambda: "running" in server.ds.locks(), "the first session's lock")
        holder = server.ds.locks()["running"][0]
        out = await ncc2(server, tmp_path, "--lock", ok=False, user="bob")
        assert "lock-denied" in out
        assert local_texts(out, "session-id") == [str(holder)]
    await locks_released(server)  # the holder's connection dropped
    await ncc2(server, tmp_path, "--lock", "--unlock", user="bob")


@needs_ncc2
async def test_ncc2_notification(server: NetconfServer, tmp_path: Path) -> None:  # noqa: F811
    await seed_instance(server.ds, "w1")
    cmd = ncc2_cmd(server, "--create-subscription", "-x", "/i:nf-instance-state-change",
                   *NS_I, "--sleep", "60")
    before = subscriptions(server)
    async with background(cmd, client_env(tmp_path)) as proc:
        await until(lambda: subscriptions(server) > before, "the subscription")
        server.ds.notifications.publish(
            '{"nfo-test:bell": {"rung": 1}}', "json")  # filtered out by the XPath
        publish_state_change(server.ds, "w1")
        assert proc.stdout is not None
        out = await asyncio.wait_for(proc.stdout.readuntil(b"</notification>"), STEP)
    text = out.decode()
    assert local_texts(text[text.index("<notification"):], "name") == ["w1"]
    assert "bell" not in text
    assert re.search(r"<eventTime>[^<]+Z</eventTime>", text)


# -- netconf-client ----------------------------------------------------------------------

netconf_client = pytest.importorskip("netconf_client.ncclient")


def nc_connect(srv: NetconfServer, user: str = "alice") -> Any:
    from netconf_client.connect import connect_ssh
    from netconf_client.ncclient import Manager
    session = connect_ssh(host="127.0.0.1", port=srv.port, username=user, password=PASSWORD,
                          initial_timeout=STEP, general_timeout=STEP)
    return Manager(session, timeout=STEP)


@asynccontextmanager
async def ncl(srv: NetconfServer, user: str = "alice") -> AsyncIterator[Any]:
    m = await asyncio.to_thread(nc_connect, srv, user)
    try:
        yield m
    finally:
        try:
            await asyncio.to_thread(m.close_session)
        finally:
            await asyncio.to_thread(m.session.close)


def nc_config(name: str, port: str, operation: str) -> str:
    return (f'<config xmlns="{NC_NS}" xmlns:nc="{NC_NS}"><nf-instances xmlns="{INST_NS}">'
            f'<nf-instance nc:operation="{operation}"><name>{name}</name>'
            "<descriptor>udp-echo</descriptor><parameter><name>port</name>"
            f"<value>{port}</value></parameter></nf-instance></nf-instances></config>")


async def test_netconf_client_hello_and_edits(server: NetconfServer) -> None:  # noqa: F811
    from netconf_client.error import RpcError
    async with ncl(server) as m:
        assert m.session_id > 0
        assert m.session.mode == "1.1"  # chunked framing negotiated
        assert any(c.startswith(f"{INST_NS}?module=nfo-instances")
                   for c in m.session.server_capabilities)
        await asyncio.to_thread(m.edit_config, nc_config("a1", "7000", "create"))
        with pytest.raises(RpcError) as ei:
            await asyncio.to_thread(m.edit_config, nc_config("a1", "7000", "create"))
        assert ei.value.tag == "data-exists"
        await asyncio.to_thread(m.edit_config, nc_config("a1", "7001", "merge"))
        assert ports(server.ds, "a1") == ["7001"]
        await asyncio.to_thread(m.edit_config, instance("a2", "7002"))
        flt = f'<nf-instances xmlns="{INST_NS}"><nf-instance><name>a2</name></nf-instance>' \
              "</nf-instances>"
        r = await asyncio.to_thread(m.get_config, filter=("subtree", flt))
        assert local_texts(r.data_xml, "name") == ["a2", "port"]
        xf = (f'<filter xmlns:i="{INST_NS}" type="xpath" '
              "select=\"/i:nf-instances/i:nf-instance[i:name='a1']/i:parameter\"/>")
        r = await asyncio.to_thread(m.get_config, filter=xf)
        assert local_texts(r.data_xml, "value") == ["7001"]
        assert local_texts(r.data_xml, "descriptor") == []
        await asyncio.to_thread(m.edit_config, nc_config("a1", "7001", "delete"))
        assert names(server.ds) == ["a2"]
        with pytest.raises(RpcError) as ei:
            await asyncio.to_thread(m.edit_config, nc_config("a1", "7001", "delete"))
        assert ei.value.tag == "data-missing"


async def test_netconf_client_candidate_and_lock(server: NetconfServer) -> None:  # noqa: F811
    from netconf_client.error import RpcError
    async with ncl(server) as a, ncl(server, "bob") as b:
        await asyncio.to_thread(a.edit_config, instance("k1"), target="candidate")
        assert names(server.ds) == []
        await asyncio.to_thread(a.commit)
        assert names(server.ds) == ["k1"]
        await asyncio.to_thread(a.lock, "running")
        with pytest.raises(RpcError) as ei:
            await asyncio.to_thread(b.lock, "running")
        assert ei.value.tag == "lock-denied"
        assert local_texts(ei.value.info, "session-id") == [str(a.session_id)]
        with pytest.raises(RpcError) as ei:
            await asyncio.to_thread(b.edit_config, instance("k2", "7002"))
        assert ei.value.tag in ("in-use", "lock-denied")
        await asyncio.to_thread(a.unlock, "running")
        await asyncio.to_thread(b.edit_config, instance("k2", "7002"))
        assert names(server.ds) == ["k1", "k2"]


async def test_netconf_client_get_data(server: NetconfServer) -> None:  # noqa: F811
    await seed_instance(server.ds, "g1", "7100")
    async with server.ds.internal_session("wm") as s:
        s.set_oper(json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
            {"name": "g1", "state": {"oper-status": "running", "attempts": 1}}]}}), "json")
    async with ncl(server) as m:
        xf = f'<xpath-filter xmlns:i="{INST_NS}">/i:nf-instances</xpath-filter>'
        r = await asyncio.to_thread(m.get_data, filter=xf)
        assert r.data_ele.tag == f"{{{NMDA_NS}}}data"
        assert local_texts(r.data_xml, "oper-status") == ["running"]
        assert local_texts(r.data_xml, "descriptor") == ["udp-echo"]
        # config false only
        r = await asyncio.to_thread(m.get_data, filter=xf, config_filter=False)
        assert local_texts(r.data_xml, "oper-status") == ["running"]
        assert local_texts(r.data_xml, "descriptor") == []
        # running has no state; subtree filter and max-depth
        sf = f'<subtree-filter><nf-instances xmlns="{INST_NS}"/></subtree-filter>'
        r = await asyncio.to_thread(m.get_data, datastore="ds:running", filter=sf)
        assert local_texts(r.data_xml, "oper-status") == []
        assert local_texts(r.data_xml, "value") == ["7100"]
        r = await asyncio.to_thread(m.get_data, datastore="ds:running", filter=sf, max_depth=2)
        assert local_texts(r.data_xml, "name") == ["g1"]
        assert local_texts(r.data_xml, "descriptor") == []
        r = await asyncio.to_thread(m.get_data, filter=xf, with_origin=True)
        assert "origin" in r.data_xml.decode()
        # origin filters: configuration is intended, the state is learned
        r = await asyncio.to_thread(m.get_data, filter=xf, origin_filters=["or:learned"])
        assert local_texts(r.data_xml, "oper-status") == ["running"]
        assert local_texts(r.data_xml, "descriptor") == []
        r = await asyncio.to_thread(m.get_data, filter=xf, origin_filters=["or:learned"],
                                    negate_origin_filters=True)
        assert local_texts(r.data_xml, "oper-status") == []
        assert local_texts(r.data_xml, "descriptor") == ["udp-echo"]


async def test_netconf_client_notification(server: NetconfServer) -> None:  # noqa: F811
    await seed_instance(server.ds, "s1")
    async with ncl(server) as m:
        flt = (f'<filter xmlns="{NOTIF_NS}" type="subtree">'
               f'<nf-instance-state-change xmlns="{INST_NS}"/></filter>')
        await asyncio.to_thread(m.create_subscription, filter=flt)
        publish_state_change(server.ds, "s1")
        n = await asyncio.to_thread(m.take_notification, True, STEP)
        assert n is not None, "no notification"
        assert local_texts(n.notification_xml, "name") == ["s1"]
        assert local_texts(n.notification_xml, "new-status") == ["running"]
        # an RPC is still answered while subscribed
        r = await asyncio.to_thread(m.get_config)
        assert "s1" in local_texts(r.data_xml, "name")


# -- scrapli-netconf ----------------------------------------------------------------------

scrapli_netconf = pytest.importorskip("scrapli_netconf")

SCRAPLI = [(t, v) for t in ("system", "paramiko", "asyncssh") for v in ("1.0", "1.1")]


class Scrapli:
    """One scrapli-netconf connection; sync drivers run in a thread."""

    def __init__(self, srv: NetconfServer, transport: str, version: str, user: str) -> None:
        from scrapli_netconf.driver import AsyncNetconfDriver, NetconfDriver
        self.is_async = transport == "asyncssh"
        opts: dict[str, Any] = {}
        if transport == "system":
            # ssh must not offer the keys of whoever runs the tests
            opts["transport_options"] = {"open_cmd": ["-o", "PubkeyAuthentication=no",
                                                      "-o", "BatchMode=no"]}
        driver = AsyncNetconfDriver if self.is_async else NetconfDriver
        self.conn = driver(
            host="127.0.0.1", port=srv.port, auth_username=user, auth_password=PASSWORD,
            auth_strict_key=False, ssh_config_file=False, transport=transport,
            preferred_netconf_version=version, strip_namespaces=version == "1.0",
            timeout_socket=STEP, timeout_transport=STEP, timeout_ops=STEP, **opts)

    async def do(self, op: str, *args: Any, **kw: Any) -> Any:
        f = getattr(self.conn, op)
        if self.is_async:
            return await f(*args, **kw)
        return await asyncio.to_thread(f, *args, **kw)


@asynccontextmanager
async def scrapli(srv: NetconfServer, transport: str, version: str,
                  user: str = "alice") -> AsyncIterator[Scrapli]:
    c = Scrapli(srv, transport, version, user)
    await c.do("open")
    try:
        yield c
    finally:
        await c.do("close")


def ok(r: Any) -> str:
    assert not r.failed, r.result
    return str(r.result)


@pytest.mark.parametrize(("transport", "version"), SCRAPLI)
async def test_scrapli(server: NetconfServer, transport: str, version: str,  # noqa: F811
                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if transport == "system":
        if shutil.which("ssh") is None:
            pytest.skip("OpenSSH client missing")
        monkeypatch.setenv("HOME", str(tmp_path))
    async with scrapli(server, transport, version) as c:
        assert c.conn.netconf_version.value == version
        assert BASE_1_1 in c.conn.server_capabilities
        assert "candidate" in c.conn.writeable_datastores
        # create, merge, delete on running
        ok(await c.do("edit_config", nc_config("r1", "7000", "create"), target="running"))
        r = await c.do("edit_config", nc_config("r1", "7000", "create"), target="running")
        assert r.failed and "data-exists" in r.result
        ok(await c.do("edit_config", nc_config("r1", "7003", "merge"), target="running"))
        assert ports(server.ds, "r1") == ["7003"]
        ok(await c.do("edit_config", nc_config("r2", "7004", "merge"), target="running"))
        # filters
        flt = f'<nf-instances xmlns="{INST_NS}"><nf-instance><name>r2</name></nf-instance>' \
              "</nf-instances>"
        out = ok(await c.do("get_config", source="running", filter_=flt))
        assert local_texts(out, "name") == ["r2", "port"]
        out = ok(await c.do("get_config", source="running", filter_type="xpath",
                            filter_='/nfo-instances:nf-instances/nf-instance[name="r1"]/name'))
        assert local_texts(out, "name") == ["r1"]
        out = ok(await c.do("get", filter_=f'<nf-instances xmlns="{INST_NS}"/>'))
        assert sorted(local_texts(out, "name")) == ["port", "port", "r1", "r2"]
        ok(await c.do("edit_config", nc_config("r1", "7003", "delete"), target="running"))
        assert names(server.ds) == ["r2"]
        # candidate: discard, then edit and commit
        ok(await c.do("edit_config", instance("d1"), target="candidate"))
        ok(await c.do("discard"))
        ok(await c.do("edit_config", instance("c1"), target="candidate"))
        assert names(server.ds) == ["r2"]
        ok(await c.do("commit"))
        assert sorted(names(server.ds)) == ["c1", "r2"]
        # get-data and create-subscription through rpc()
        out = ok(await c.do("rpc", f'<get-data xmlns="{NMDA_NS}" xmlns:ds="{DS_NS}">'
                                   "<datastore>ds:running</datastore><xpath-filter>"
                                   "/nfo-instances:nf-instances</xpath-filter></get-data>"))
        assert sorted(local_texts(out, "descriptor")) == ["udp-echo", "udp-echo"]
        out = ok(await c.do("rpc", f'<create-subscription xmlns="{NOTIF_NS}"/>'))
        assert "ok" in out
        # lock conflict with a second session
        ok(await c.do("lock", "running"))
        holder = server.ds.locks()["running"][0]
        async with scrapli(server, transport, version, "bob") as d:
            r = await d.do("lock", "running")
            assert r.failed and "lock-denied" in r.result
            assert local_texts(r.result, "session-id") == [str(holder)]
        ok(await c.do("unlock", "running"))
    await locks_released(server)


# -- yangcli ----------------------------------------------------------------------------

needs_yangcli = pytest.mark.skipif(YANGCLI is None, reason="yangcli (Debian yangcli) missing")


async def yangcli(srv: NetconfServer, home: Path, script: str, version: str = "1.1",
                  user: str = "alice", complete: bool = True) -> str:
    """Run ``script``; with ``complete`` it must run to its end without any error."""
    f = home / "script.txt"
    home.mkdir(parents=True, exist_ok=True)
    f.write_text(script)
    assert YANGCLI is not None
    rc, out = await run([
        YANGCLI, "--server=127.0.0.1", f"--ncport={srv.port}", f"--user={user}",
        f"--password={PASSWORD}", "--batch-mode", f"--run-script={f}",
        f"--protocols=netconf{version}", f"--timeout={int(STEP)}", "--log-level=info",
        # yangcli keeps ~/.yuma in the passwd home whatever HOME says: save nothing there
        "--autoaliases=false", "--autohistory=false", "--autouservars=false",
        "--module=notifications"], client_env(home))
    assert rc == 0, out
    if complete:
        assert "canceled" not in out and "Error:" not in out, out
    return out


def yang_blocks(out: str) -> list[str]:
    """yangcli's RPC replies, one text block each."""
    return re.split(r"\nRPC (?:OK|Data|Error) Reply \d+ for session \d+:", out)[1:]


@needs_yangcli
@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_yangcli_scenario(server: NetconfServer, tmp_path: Path,  # noqa: F811
                                version: str) -> None:
    entry = "/nf-instances/nf-instance[name='y1']"
    out = await yangcli(server, tmp_path, "\n".join([
        f"create {entry}[descriptor='udp-echo']/parameter[name='port']/value value=7100",
        "commit",
        f"merge {entry}/parameter[name='port']/value value=7101",
        "commit",
        f"sget-config {entry} source=running",
        "xget-config /nf-instances/nf-instance/name source=running",
        f"delete {entry}",
        "commit",
        "sget-config /nf-instances source=running",
        ""]), version)
    proto = "RFC 6241 (base:1.1)" if version == "1.1" else "RFC 4741 (base:1.0)"
    assert f"Protocol version set to: {proto}" in out
    m = re.search(r"Server Session Id: (\d+)", out)
    assert m and int(m.group(1)) > 0
    assert "nfo-instances@" in out  # the module list from the hello
    blocks = yang_blocks(out)
    assert len(blocks) == 9, out
    assert all("rpc-error" not in b for b in blocks), out
    assert "value 7101" in blocks[4] and "descriptor udp-echo" in blocks[4]  # subtree
    assert "name y1" in blocks[5] and "descriptor" not in blocks[5]  # xpath
    assert "nf-instance" not in blocks[8]
    assert names(server.ds) == []


@needs_yangcli
async def test_yangcli_lock_conflict(server: NetconfServer, tmp_path: Path) -> None:  # noqa: F811
    async with ncl(server) as holder:
        await asyncio.to_thread(holder.lock, "running")
        out = await yangcli(server, tmp_path, "lock target=running\n", user="bob",
                            complete=False)
        await asyncio.to_thread(holder.unlock, "running")
    [reply] = yang_blocks(out)
    assert "error-tag lock-denied" in reply
    assert f"session-id {holder.session_id}" in reply


@needs_yangcli
async def test_yangcli_notification(server: NetconfServer, tmp_path: Path) -> None:  # noqa: F811
    """yangcli cannot sleep: its script polls get-config until the test adds ``done``."""
    await seed_instance(server.ds, "v1")
    marker = "/nf-instances/nf-instance[name='done']"
    script = "\n".join([
        "create-subscription",
        "$found = 0",
        "while '$found = 0' maxloops=20000",
        f"  $d = xget-config source=running {marker}",
        "  $found = eval 'count(//*[local-name()=\"name\"])' docroot=$d",
        "end",
        "eventlog show=-1 full",
        ""])

    before = subscriptions(server)

    async def trigger() -> None:
        await until(lambda: subscriptions(server) > before, "yangcli's subscription",
                    timeout=60)
        publish_state_change(server.ds, "v1")
        await seed_instance(server.ds, "done", "7999")

    out, _ = await asyncio.gather(yangcli(server, tmp_path, script), trigger())
    events = out[out.index("Incoming notification"):]
    assert "nf-instance-state-change" in events
    assert "name v1" in events and "new-status running" in events


# -- replies checked by an independent validator (yanglint) -------------------------------

def yang_files(ds: Datastore, data: list[Any]) -> list[str]:
    """The module files for the top-level nodes of ``data``, plus ietf-datastores."""
    by_ns = {m.namespace: m.name for m in ds.schema.modules()}
    mods = {by_ns[etree.QName(e).namespace] for e in data} | {"ietf-datastores"}
    out = []
    for mod in sorted(mods):
        found = [f for d in yang_dirs(ds)
                 for f in (d / f"{mod}.yang", *sorted(d.glob(f"{mod}@*.yang"))) if f.exists()]
        assert found, f"no YANG file for {mod}"
        out.append(str(found[0]))
    return out


def yang_dirs(ds: Datastore) -> list[Path]:
    """Where the server's schema finds its modules (yanglint searches the same)."""
    return [d for d in map(Path, ds.schema.search_dirs) if d.is_dir()]


def yanglint(ds: Datastore, tmp: Path, reply: bytes, data_ns: str,
             dtype: str) -> subprocess.CompletedProcess[str]:
    """Validate the content of a reply's <data> (unwrapped: in an nc-reply it is anydata).

    lxml keeps the namespace declarations in scope (identityref values need them)."""
    root = etree.fromstring(reply)
    data = root.find(f"{{{data_ns}}}data")
    assert data is not None, reply
    kids = list(data)
    assert kids, reply
    f = tmp / "data.xml"
    f.write_bytes(b"".join(etree.tostring(k) for k in kids))
    assert YANGLINT is not None
    return subprocess.run(
        [YANGLINT, "-D", *(a for d in yang_dirs(ds) for a in ("-p", str(d))),
         "-t", dtype, *yang_files(ds, kids), str(f)],
        capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(YANGLINT is None, reason="yanglint (libyang2-tools) missing")
async def test_replies_validate_in_yanglint(server: NetconfServer,  # noqa: F811
                                            tmp_path: Path) -> None:
    await seed_instance(server.ds, "l1", "7200")
    async with server.ds.internal_session("wm") as s:
        s.set_oper(json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
            {"name": "l1", "state": {"oper-status": "running", "vim": "local",
                                     "driver": "local", "attempts": 1}}]}}), "json")
    async with ncl(server) as m:
        get_config = (await asyncio.to_thread(m.get_config)).raw_reply
        get = (await asyncio.to_thread(m.get)).raw_reply
        get_data = (await asyncio.to_thread(m.get_data)).raw_reply
    ds = server.ds
    for reply, ns, dtype in ((get_config, NC_NS, "config"), (get, NC_NS, "get"),
                             (get_data, NMDA_NS, "get")):
        assert b"l1" in reply
        res = yanglint(ds, tmp_path, reply, ns, dtype)
        assert res.returncode == 0, (dtype, res.stderr, reply[:2000])
    assert b"<oper-status>running</oper-status>" in get_data
    # the cross-check can fail: state data is no configuration, a bad value is caught
    assert yanglint(ds, tmp_path, get, NC_NS, "config").returncode != 0
    bad = get_config.replace(b"<value>7200</value>", b"<value>7200</value><bogus/>")
    assert yanglint(ds, tmp_path, bad, NC_NS, "config").returncode != 0


# -- regressions for the server bugs the clients found --------------------------------

async def test_xpath_filter_prefixes_are_xml_namespaces(ds: Datastore) -> None:
    async with ds.internal_session("seed") as s:
        await s.edit("running", CATALOG, "json")
    await seed_instance(ds, "p1")
    async with ds.internal_session("t") as s:
        ctx = NetconfContext(s, ds.schema)
        for op in ("get-config", "get"):
            src = "<source><running/></source>" if op == "get-config" else ""
            reply = await handle(ctx, (
                f'<rpc message-id="1" xmlns="{NC_NS}"><{op} xmlns:x="{INST_NS}">{src}'
                "<filter type=\"xpath\" select=\"/x:nf-instances/x:nf-instance[x:name='p1']"
                f'/x:descriptor"/></{op}></rpc>').encode())
            assert b"rpc-error" not in reply, reply
            assert local_texts(reply, "descriptor") == ["udp-echo"]
        reply = await handle(ctx, (
            f'<rpc message-id="2" xmlns="{NC_NS}"><create-subscription xmlns="{NOTIF_NS}">'
            f'<filter type="xpath" xmlns:x="{INST_NS}" select="/x:nf-instance-state-change"/>'
            "</create-subscription></rpc>").encode())
        assert b"<ok/>" in reply, reply
        assert ctx.subscription is not None
        ctx.subscription.close()


async def test_whitespace_before_xml_declaration(ds: Datastore) -> None:
    from nfo.netconf.messages import client_hello
    hello = (f'\n<?xml version="1.0" encoding="utf-8"?>\n    <hello xmlns="{NC_NS}">'
             f"<capabilities><capability>{BASE_1_0}</capability></capabilities></hello>")
    assert client_hello(hello.encode())[0] == BASE_1_0
    async with ds.internal_session("t") as s:
        reply = await handle(NetconfContext(s, ds.schema), (
            f'\n<?xml version="1.0"?><rpc message-id="3" xmlns="{NC_NS}">'
            "<get-config><source><running/></source></get-config></rpc>").encode())
    assert b"<data" in reply and b"rpc-error" not in reply


async def test_pty_request_granted_on_netconf_subsystem(server: NetconfServer) -> None:  # noqa: F811
    async with asyncssh.connect("127.0.0.1", server.port, username="alice", password=PASSWORD,
                                known_hosts=None, client_keys=None, agent_path=None) as conn:
        w, r, _ = await conn.open_session(subsystem="netconf", term_type="xterm",
                                          encoding=None)
        dec = Decoder()
        while (msg := dec.next()) is None:
            data = await asyncio.wait_for(r.read(65536), STEP)
            assert data, "channel closed"
            dec.feed(data)
        assert b"<hello" in msg
        w.write(encode_eom(f'<hello xmlns="{NC_NS}"><capabilities><capability>{BASE_1_0}'
                           "</capability></capabilities></hello>".encode())
                + encode_eom(f'<rpc message-id="1" xmlns="{NC_NS}"><close-session/></rpc>'
                             .encode()))
        while (msg := dec.next()) is None:
            data = await asyncio.wait_for(r.read(65536), STEP)
            assert data, "channel closed"
            dec.feed(data)
        assert b"<ok/>" in msg  # no echo, no line editing: the reply comes back intact
        w.close()
