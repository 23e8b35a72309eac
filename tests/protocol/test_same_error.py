"""The same invalid edit, sent through every write path of both protocols, fails the same way.

Real servers on 127.0.0.1: RESTCONF (uvicorn, httpx) and NETCONF (asyncssh, ncclient)
on one datastore.  For each invalid edit, every path (RESTCONF PUT, POST, PATCH and
YANG Patch; NETCONF edit-config, edit-data and a candidate commit) must answer the
same error-tag, error-app-tag and error-path (XML instance-identifiers read back into
libyang's form), and every RESTCONF path the same HTTP status; nothing is stored.
"""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.transport import session as nc_session
from ncclient.xml_ import to_ele

from nfo.datastore import Datastore
from nfo.netconf.server import NetconfServer, start_netconf
from nfo.restconf.app import create_app
from tests.access import admins, permit_everyone

nc_session.TICK = 0.001

T = "urn:nfo:test"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
RC = "urn:ietf:params:xml:ns:yang:ietf-restconf"
YP = "urn:ietf:params:xml:ns:yang:ietf-yang-patch"
PASSWORD = "same-error-password"
JSON_TYPE = "application/yang-data+json"
XML_TYPE = "application/yang-data+xml"


@dataclass(frozen=True)
class Case:
    """An invalid ``item`` entry (XML, as a child of ``top``) with its expected error."""

    item: str
    tag: str
    app_tag: str | None
    path: str


SEED = ('<top xmlns="urn:nfo:test"><name>n</name><item><name>a</name></item>'
        '<thing><id>t1</id><label>L</label><needed>x</needed></thing></top>')
CASES = {
    "must": Case("<item><name>b</name><size>5000</size></item>", "operation-failed",
                 "size-too-big", "/nfo-test:top/item[name='b']/size"),
    "leafref": Case("<item><name>b</name><ref>nowhere</ref></item>", "data-missing",
                    "instance-required", "/nfo-test:top/item[name='b']/ref"),
    "unique": Case("<thing><id>t2</id><label>L</label><needed>y</needed></thing>",
                   "operation-failed", "data-not-unique", "/nfo-test:top/thing[id='t2']"),
    # libyang 2.1 names a missing mandatory node by its schema path
    "mandatory": Case("<thing><id>t2</id><label>M</label></thing>", "data-missing", None,
                      "/nfo-test:top/thing/needed"),
    "unknown": Case("<item><name>b</name><bogus>1</bogus></item>", "unknown-element", None,
                    "/nfo-test:top/item[name='b']"),
    "type": Case("<item><name>b</name><size>lots</size></item>", "invalid-value", None,
                 "/nfo-test:top/item[name='b']/size"),
}


@dataclass(frozen=True)
class Seen:
    tag: str
    app_tag: str | None
    path: str | None
    status: int | None = None


def _libyang_path(el: ET.Element | None) -> str | None:
    """An XML instance-identifier read back into libyang's form (module names, given
    only where the module changes)."""
    if el is None or el.text is None:
        return None
    text = el.text
    # every prefix used must be declared on the element; they are module names here
    prefixes = set(re.findall(r"([A-Za-z_][\w.-]*):(?=[A-Za-z_])", re.sub(r"'[^']*'", "", text)))
    out, current = [], None
    for m in re.finditer(r"'[^']*'|([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)|.", text):
        if m.group(1) is None:
            out.append(m.group(0))
            continue
        mod, name = m.group(1), m.group(2)
        step_start = m.start() == 0 or text[m.start() - 1] == "/"
        if step_start and mod != current:
            out.append(f"{mod}:{name}")
            current = mod
        else:
            out.append(name)
    assert prefixes, text
    return "".join(out)


def _restconf_error(r: httpx.Response) -> Seen:
    body = r.json()
    if "ietf-yang-patch:yang-patch-status" in body:
        st = body["ietf-yang-patch:yang-patch-status"]
        errs = (st["edit-status"]["edit"][0]["errors"] if "edit-status" in st
                else st["errors"])["error"]
    else:
        errs = body["ietf-restconf:errors"]["error"]
    e = errs[0]
    return Seen(e["error-tag"], e.get("error-app-tag"), e.get("error-path"), r.status_code)


def _netconf_error(err: RPCError) -> Seen:
    root = ET.fromstring(err.xml) if isinstance(err.xml, str) else err.xml
    tag = root.findtext(f"{{{NC}}}error-tag")
    assert tag is not None
    return Seen(tag, root.findtext(f"{{{NC}}}error-app-tag"),
                _libyang_path(root.find(f"{{{NC}}}error-path")))


@pytest.fixture
async def servers(ds: Datastore, tmp_path: Path) -> AsyncIterator[tuple[str, NetconfServer]]:
    async with ds.internal_session("seed") as s:
        await s.edit("running", SEED, "xml")
    permit_everyone(ds)
    users = await admins(ds, ("alice", PASSWORD))
    nc_srv = await start_netconf(ds, users, "127.0.0.1", 0, tmp_path / "keys")
    config = uvicorn.Config(create_app(ds), host="127.0.0.1", port=0, lifespan="off",
                            log_level="warning")
    http = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(http.serve())
    try:
        while not http.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        port = http.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", nc_srv
    finally:
        http.should_exit = True
        await task
        await nc_srv.stop()


Path_ = Callable[[Case], Awaitable[Seen]]


async def _restconf(base: str, method: str, url: str, body: str,
                    ctype: str = XML_TYPE) -> Seen:
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10,
                                 headers={"Accept": JSON_TYPE, "Content-Type": ctype}) as c:
        r = await c.request(method, url, content=body.encode())
    assert r.status_code >= 400, r.text
    return _restconf_error(r)


def _netconf(srv: NetconfServer, call: Callable[[Any], Any]) -> Seen:
    with manager.connect(host="127.0.0.1", port=srv.port, username="alice",
                         password=PASSWORD, hostkey_verify=False, look_for_keys=False,
                         allow_agent=False, timeout=10) as m:
        try:
            call(m)
        except RPCError as e:
            return _netconf_error(e)
        finally:
            if call is _commit_via_candidate:
                m.discard_changes()
    raise AssertionError("the NETCONF write was accepted")


def _commit_via_candidate(m: Any, item: str = "") -> None:
    m.edit_config(target="candidate", config=_nc_config(item), test_option="set")
    m.commit()


def _nc_config(item: str) -> str:
    return f'<config xmlns="{NC}"><top xmlns="{T}">{item}</top></config>'


def _name_of(item: str) -> tuple[str, str]:
    m = re.match(r"<(item|thing)><(?:name|id)>([^<]+)<", item)
    assert m is not None
    return m.group(1), m.group(2)


async def _all_paths(base: str, srv: NetconfServer, case: Case) -> dict[str, Seen]:
    kind, key = _name_of(case.item)
    entry = case.item.replace(f"<{kind}>", f'<{kind} xmlns="{T}">', 1)
    top = f'<top xmlns="{T}">{case.item}</top>'
    data = "/restconf/data/nfo-test:top"
    patch = (f'<yang-patch xmlns="{YP}"><patch-id>p</patch-id><edit><edit-id>e</edit-id>'
             f"<operation>merge</operation><target>/{kind}={key}</target>"
             f"<value>{entry}</value></edit></yang-patch>")
    edit_data = (f'<edit-data xmlns="{NMDA}" xmlns:ds="urn:ietf:params:xml:ns:yang:'
                 f'ietf-datastores"><datastore>ds:running</datastore>'
                 f'<config>{top}</config></edit-data>')
    return {
        "restconf PUT": await _restconf(base, "PUT", f"{data}/{kind}={key}", entry),
        "restconf POST": await _restconf(base, "POST", data, entry),
        "restconf PATCH": await _restconf(base, "PATCH", data, top),
        "restconf YANG Patch": await _restconf(base, "PATCH", data, patch,
                                               "application/yang-patch+xml"),
        "netconf edit-config": await asyncio.to_thread(
            _netconf, srv, lambda m: m.edit_config(target="running",
                                                   config=_nc_config(case.item))),
        "netconf edit-data": await asyncio.to_thread(
            _netconf, srv, lambda m: m.dispatch(to_ele(edit_data))),
        "netconf commit": await asyncio.to_thread(
            _netconf, srv, lambda m: _commit_via_candidate(m, case.item)),
    }


@pytest.mark.parametrize("name", sorted(CASES))
async def test_every_write_path_reports_the_same_error(
        ds: Datastore, servers: tuple[str, NetconfServer], name: str) -> None:
    case = CASES[name]
    base, srv = servers
    before = ds.tree("running").print()
    seen = await _all_paths(base, srv, case)
    expected = Seen(case.tag, case.app_tag, case.path)
    statuses = {p: s.status for p, s in seen.items() if s.status is not None}
    assert len(set(statuses.values())) == 1, statuses
    for path, s in seen.items():
        assert Seen(s.tag, s.app_tag, s.path) == expected, path
    assert ds.tree("running").print() == before
