"""RPCs and actions: registration, input validation, dispatch and replies.

Real libyang (nfo's modules plus nfo-test, whose rpc ``ping`` has a mandatory
input ``msg`` and an output ``echo``; nfo-instances has the actions ``restart``
and ``redeploy`` on nf-instance) and a fresh SQLite file per test.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import Datastore, RpcCall, Session
from nfo.errors import (
    InvalidValue,
    MalformedMessage,
    NfoError,
    OperationFailed,
    OperationNotSupported,
    UnknownElement,
)

REPO = Path(__file__).resolve().parents[2]
CATALOG = (REPO / "yang" / "nfo-demo-catalog.json").read_text()
INST = "nfo-instances:nf-instances"
PING = "/nfo-test:ping"
RESTART = "/nfo-instances:nf-instances/nf-instance/restart"
REDEPLOY = "/nfo-instances:nf-instances/nf-instance/redeploy"

PING_XML = '<ping xmlns="urn:nfo:test"><msg>{}</msg></ping>'
PING_JSON = '{{"nfo-test:ping": {{"msg": "{}"}}}}'


def restart_xml(name: str) -> str:
    return (f'<nf-instances xmlns="urn:nfo:instances"><nf-instance><name>{name}</name>'
            '<restart/></nf-instance></nf-instances>')


def restart_json(name: str) -> str:
    return json.dumps({INST: {"nf-instance": [{"name": name, "restart": {}}]}})


def redeploy_xml(name: str, vim: str) -> str:
    return (f'<nf-instances xmlns="urn:nfo:instances"><nf-instance><name>{name}</name>'
            f'<redeploy><vim>{vim}</vim></redeploy></nf-instance></nf-instances>')


class Handler:
    """An RPC handler recording its calls and answering with ``reply(call)``."""

    def __init__(self, reply: Any = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.reply = reply

    async def __call__(self, call: RpcCall) -> dict[str, str] | None:
        # everything a handler may read is only valid during the call: copy it out
        inputs = {c.name: c.value for c in call.op.children()}
        self.calls.append({"path": call.path, "parent": call.parent_path,
                           "user": call.session.user, "session": call.session,
                           "input": inputs})
        await asyncio.sleep(0)
        out: dict[str, str] | None = self.reply(call) if callable(self.reply) else self.reply
        return out


def echo(call: RpcCall) -> dict[str, str]:
    node = call.tree.node("/nfo-test:ping/msg")
    return {"echo": str(node.value if node is not None else None)}


async def with_instance(ds: Datastore, name: str = "e1") -> Session:
    s = ds.internal_session("admin")
    await s.edit("running", CATALOG, "json")
    await s.edit("running", json.dumps({INST: {"nf-instance": [
        {"name": name, "descriptor": "udp-echo",
         "parameter": [{"name": "port", "value": "7000"}]}]}}), "json")
    return s


async def invoke(s: Session, text: str, fmt: str = "xml") -> dict[str, Any]:
    """Invoke an RPC and return its reply as parsed JSON (the tree is freed)."""
    with await s.rpc(text, fmt) as reply:
        return json.loads(reply.print("json"))  # type: ignore[no-any-return]


# -- RPCs with input (ping) -----------------------------------------------------------



@pytest.mark.parametrize("fmt,text", [("xml", PING_XML.format("hello")),
                                      ("json", PING_JSON.format("hello"))])
async def test_ping_echoes(ds: Datastore, fmt: str, text: str) -> None:
    h = Handler(echo)
    ds.register_rpc(PING, h)
    s = ds.internal_session("alice")
    reply = await invoke(s, text, fmt)
    assert reply == {"nfo-test:ping": {"echo": "hello"}}


async def test_ping_with_empty_output(ds: Datastore) -> None:
    ds.register_rpc(PING, Handler(None))
    s = ds.internal_session("alice")
    with await s.rpc(PING_XML.format("x")) as reply:
        assert "msg" not in reply.print("json")


async def test_ping_handler_sees_call_and_input(ds: Datastore) -> None:
    """What reaches the handler is right (whatever happens to the reply afterwards)."""
    h = Handler(echo)
    ds.register_rpc(PING, h)
    s = ds.internal_session("alice")
    for fmt, text in (("xml", PING_XML.format("hello")), ("json", PING_JSON.format("hi"))):
        try:
            with await s.rpc(text, fmt):
                pass
        except NfoError:
            pass  # see test_ping_echoes
    assert [c["input"] for c in h.calls] == [{"msg": "hello"}, {"msg": "hi"}]
    assert all(c["path"] == PING and c["parent"] is None for c in h.calls)
    assert all(c["user"] == "alice" and c["session"] is s for c in h.calls)


async def test_missing_mandatory_input_refused_without_handler_call(ds: Datastore) -> None:
    h = Handler(echo)
    ds.register_rpc(PING, h)
    s = ds.internal_session("alice")
    with pytest.raises(NfoError) as ei:
        await s.rpc('<ping xmlns="urn:nfo:test"/>')
    assert ei.value.tag == "data-missing"
    assert "msg" in ei.value.message
    with pytest.raises(NfoError):
        await s.rpc('{"nfo-test:ping": {}}', "json")
    assert h.calls == []


async def test_invalid_input_refused_without_handler_call(ds: Datastore) -> None:
    h = Handler(echo)
    ds.register_rpc(PING, h)
    s = ds.internal_session("alice")
    with pytest.raises(NfoError):
        await s.rpc('<ping xmlns="urn:nfo:test"><msg>a</msg><bogus>1</bogus></ping>')
    with pytest.raises(UnknownElement):
        await s.rpc('<pong xmlns="urn:nfo:test"/>')
    with pytest.raises(MalformedMessage):
        await s.rpc('<ping xmlns="urn:nfo:test"><msg>a</msg>')
    with pytest.raises(NfoError):
        await s.rpc('<top xmlns="urn:nfo:test"><name>x</name></top>')  # data, not an RPC
    with pytest.raises(NfoError):
        await s.rpc("{not json", "json")
    assert h.calls == []


async def test_unregistered_rpc_not_supported(ds: Datastore) -> None:
    s = ds.internal_session("alice")
    with pytest.raises(OperationNotSupported) as ei:
        await s.rpc(PING_XML.format("x"))
    assert ei.value.tag == "operation-not-supported"
    with pytest.raises(OperationNotSupported):
        await s.rpc(PING_JSON.format("x"), "json")
    await with_instance(ds)
    with pytest.raises(OperationNotSupported):
        await s.rpc(restart_xml("e1"))


async def test_registration_checks(ds: Datastore) -> None:
    ds.register_rpc(PING, Handler())
    with pytest.raises(InvalidValue):
        ds.register_rpc(PING, Handler())  # duplicate
    ds.register_rpc(RESTART, Handler())
    with pytest.raises(InvalidValue):
        ds.register_rpc(RESTART, Handler())
    with pytest.raises(UnknownElement):
        ds.register_rpc("/nfo-test:top", Handler())  # a data node, not an RPC
    with pytest.raises(UnknownElement):
        ds.register_rpc("/nfo-test:bell", Handler())  # a notification


@pytest.mark.parametrize("path", ["/nfo-test:nope", "/no-such-module:ping"])
async def test_register_unknown_path_refused_with_nfo_error(ds: Datastore,
                                                            path: str) -> None:
    with pytest.raises(UnknownElement):
        ds.register_rpc(path, Handler())


async def test_handler_error_reaches_client(ds: Datastore) -> None:
    async def refuse(call: RpcCall) -> dict[str, str] | None:
        raise OperationFailed("instance is busy", app_tag="busy")

    ds.register_rpc(RESTART, refuse)
    s = await with_instance(ds)
    with pytest.raises(OperationFailed) as ei:
        await s.rpc(restart_xml("e1"))
    assert ei.value.message == "instance is busy"
    assert ei.value.app_tag == "busy"


async def test_rpc_on_closed_session_refused(ds: Datastore) -> None:
    h = Handler(echo)
    ds.register_rpc(PING, h)
    s = ds.internal_session("alice")
    await s.close()
    with pytest.raises(OperationFailed):
        await s.rpc(PING_XML.format("x"))
    assert h.calls == []


# -- actions ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,text", [("xml", restart_xml("e1")),
                                      ("json", restart_json("e1"))])
async def test_action_on_existing_instance(ds: Datastore, fmt: str, text: str) -> None:
    h = Handler(lambda call: {"result": f"restarted {call.parent_path}"})
    ds.register_rpc(RESTART, h)
    s = await with_instance(ds)
    reply = await invoke(s, text, fmt)
    parent = "/nfo-instances:nf-instances/nf-instance[name='e1']"
    assert h.calls == [{"path": RESTART, "parent": parent, "user": "admin", "session": s,
                        "input": {}}]
    assert reply == {INST: {"nf-instance": [
        {"name": "e1", "restart": {"result": f"restarted {parent}"}}]}}


async def test_action_dispatch_by_instance_and_action(ds: Datastore) -> None:
    restart, redeploy = Handler({"result": "r"}), Handler({"result": "d"})
    ds.register_rpc(RESTART, restart)
    ds.register_rpc(REDEPLOY, redeploy)
    s = await with_instance(ds, "e1")
    await s.edit("running", json.dumps({INST: {"nf-instance": [
        {"name": "e2", "descriptor": "udp-echo",
         "parameter": [{"name": "port", "value": "7001"}]}]}}), "json")
    await invoke(s, restart_xml("e2"))
    await invoke(s, restart_xml("e1"))
    assert [c["parent"] for c in restart.calls] == [
        "/nfo-instances:nf-instances/nf-instance[name='e2']",
        "/nfo-instances:nf-instances/nf-instance[name='e1']"]
    assert redeploy.calls == []


async def test_action_input_leafref_checked_against_running(ds: Datastore) -> None:
    h = Handler({"result": "ok"})
    ds.register_rpc(REDEPLOY, h)
    s = await with_instance(ds)
    with pytest.raises(NfoError):
        await s.rpc(redeploy_xml("e1", "no-such-vim"))
    assert h.calls == []


async def test_action_with_input(ds: Datastore) -> None:
    h = Handler({"result": "redeployed"})
    ds.register_rpc(REDEPLOY, h)
    s = await with_instance(ds)
    reply = await invoke(s, redeploy_xml("e1", "local"))
    assert h.calls[0]["input"] == {"vim": "local"}
    assert reply == {INST: {"nf-instance": [
        {"name": "e1", "redeploy": {"result": "redeployed"}}]}}


@pytest.mark.parametrize("fmt,text", [("xml", restart_xml("nope")),
                                      ("json", restart_json("nope"))])
async def test_action_on_missing_instance_refused(ds: Datastore, fmt: str, text: str) -> None:
    h = Handler({"result": "ok"})
    ds.register_rpc(RESTART, h)
    s = await with_instance(ds)
    with pytest.raises(NfoError) as ei:
        await s.rpc(text, fmt)
    assert ei.value.tag == "data-missing"
    assert h.calls == []


@pytest.mark.parametrize("output", [{"bogus": "x"}, {"result": "ok", "extra": "y"},
                                    {"../name": "x"}])
async def test_handler_output_outside_schema_refused(ds: Datastore,
                                                     output: dict[str, str]) -> None:
    replies = [output, {"result": "fine"}]
    h = Handler(lambda call: replies.pop(0))
    ds.register_rpc(RESTART, h)
    s = await with_instance(ds)
    with pytest.raises(NfoError):
        await s.rpc(restart_xml("e1"))
    # a well-formed reply still works afterwards (no libyang error state left over)
    assert await invoke(s, restart_xml("e1")) == {INST: {"nf-instance": [
        {"name": "e1", "restart": {"result": "fine"}}]}}
    assert len(h.calls) == 2


async def test_handler_output_fits_schema(ds: Datastore) -> None:
    ds.register_rpc(RESTART, Handler({"result": "done"}))
    s = await with_instance(ds)
    assert await invoke(s, restart_xml("e1")) == {INST: {"nf-instance": [
        {"name": "e1", "restart": {"result": "done"}}]}}


async def test_concurrent_rpcs(ds: Datastore) -> None:
    gate = asyncio.Event()
    order: list[str] = []

    async def slow(call: RpcCall) -> dict[str, str]:
        name = str(call.parent_path)
        order.append("start " + name)
        await gate.wait()
        order.append("end " + name)
        return {"result": name}

    ds.register_rpc(RESTART, slow)
    s = await with_instance(ds, "e1")
    await s.edit("running", json.dumps({INST: {"nf-instance": [
        {"name": "e2", "descriptor": "udp-echo",
         "parameter": [{"name": "port", "value": "7001"}]}]}}), "json")
    t1 = asyncio.create_task(invoke(s, restart_xml("e1")))
    t2 = asyncio.create_task(invoke(ds.internal_session("bob"), restart_xml("e2")))
    while len(order) < 2:
        await asyncio.sleep(0.001)
    gate.set()
    r1, r2 = await asyncio.gather(t1, t2)
    assert r1[INST]["nf-instance"][0]["restart"]["result"].endswith("[name='e1']")
    assert r2[INST]["nf-instance"][0]["restart"]["result"].endswith("[name='e2']")
