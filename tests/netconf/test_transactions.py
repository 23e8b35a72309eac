"""nfo-transactions as ordinary NETCONF RPCs on a real asyncssh server, driven by
ncclient: commit with a comment (and its dry run) from the shared candidate, history,
the diff of a revision, rollback, protocol errors for bad input, and access control
(a user without write rights cannot commit or roll back)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

from nfo.datastore import Datastore
from nfo.datastore.txrpcs import TransactionRpcs
from nfo.datastore.users import ADMIN, UserStore
from nfo.netconf.messages import NC_NS
from nfo.netconf.server import NetconfServer, start_netconf
from tests.netutil import netconf_run

TX = "urn:nfo:transactions"
PW = "tx-password-1"


def item(name: str) -> str:
    return (f'<config xmlns="{NC_NS}"><top xmlns="urn:nfo:test"><item><name>{name}</name>'
            "</item></top></config>")


class Env:
    def __init__(self, ds: Datastore, srv: NetconfServer) -> None:
        self.ds = ds
        self.srv = srv

    async def run(self, user: str, fn: Callable[[Any], Any]) -> Any:
        return await netconf_run(self.srv.port, user, PW, fn)


@pytest.fixture
async def env(ds: Datastore, tmp_path: Path) -> AsyncIterator[Env]:
    users = UserStore(ds)
    await users.ensure_admin(PW)
    await users.add("randy", PW)  # no group: reads only
    users.register()
    rpcs = TransactionRpcs(ds)
    rpcs.register()
    srv = await start_netconf(ds, users, "127.0.0.1", 0, tmp_path / "keys")
    try:
        yield Env(ds, srv)
    finally:
        await srv.stop()
        rpcs.unregister()
        users.unregister()


def call(m: Any, name: str, body: str = "") -> ET.Element:
    reply = m.dispatch(to_ele(f'<{name} xmlns="{TX}">{body}</{name}>'))
    return ET.fromstring(reply.xml)


def texts(reply: ET.Element, tag: str) -> list[str]:
    return [e.text or "" for e in reply.iter(f"{{{TX}}}{tag}")]


async def test_commit_history_diff_rollback_over_netconf(env: Env) -> None:
    def session(m: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        m.edit_config(target="candidate", config=item("a"))
        out["pending"] = texts(call(m, "diff"), "path")
        out["dry"] = texts(call(m, "commit-changes", "<dry-run/>"), "path")
        out["rev"] = texts(call(m, "commit-changes", "<comment>first &amp; only</comment>"),
                           "revision")
        hist = call(m, "history", "<limit>3</limit>")
        out["comments"] = texts(hist, "comment")
        out["diff"] = texts(call(m, "diff", f"<revision>{out['rev'][0]}</revision>"),
                            "operation")
        before = int(out["rev"][0]) - 1  # (revision 0 had no accounts: refused)
        out["back"] = texts(call(m, "rollback", f"<revision>{before}</revision>"), "revision")
        out["after"] = m.get_config("running", filter=(
            "subtree", '<top xmlns="urn:nfo:test"/>')).xml
        return out

    out = await env.run(ADMIN, session)
    assert out["pending"] == out["dry"] == ["/nfo-test:top/item[name='a']"]
    rev = int(out["rev"][0])
    assert out["comments"][0] == "first & only"
    assert out["diff"] == ["create"]
    assert int(out["back"][0]) == rev + 1
    assert "<item>" not in out["after"]
    assert env.ds.history("running", 1)[0].label == f"rollback to {rev - 1}"


async def test_bad_input_is_a_protocol_error(env: Env) -> None:
    def bad(m: Any) -> list[tuple[str, str]]:
        errors = []
        for name, body in (("rollback", "<revision>abc</revision>"),
                           ("rollback", "<revision>99999</revision>"),
                           ("history", "<limit>0</limit>"),
                           ("diff", "<revision>99999</revision>"),
                           ("commit-changes", "<nonsense/>")):
            try:
                call(m, name, body)
            except RPCError as e:
                errors.append((name, e.tag))
            else:
                errors.append((name, "accepted"))
        return errors

    errors = await env.run(ADMIN, bad)
    assert [tag for _, tag in errors] == [
        "invalid-value", "invalid-value", "invalid-value", "invalid-value",
        "unknown-element"], errors


async def test_a_reader_cannot_commit_or_roll_back_over_netconf(env: Env) -> None:
    async with env.ds.internal_session("seed") as s:
        await s.edit("running", item("seed").replace(f'<config xmlns="{NC_NS}">', "")
                     .replace("</config>", ""))
    rev = env.ds.info("running").revision

    def attempt(m: Any) -> list[str]:
        tags = []
        for name, body in (("commit-changes", ""), ("rollback", "<revision>0</revision>")):
            try:
                call(m, name, body)
                tags.append("accepted")
            except RPCError as e:
                tags.append(e.tag)
        tags.append(texts(call(m, "history"), "revision")[0])
        return tags

    assert await env.run("randy", attempt) == ["access-denied", "access-denied", str(rev)]
    assert env.ds.info("running").revision == rev
