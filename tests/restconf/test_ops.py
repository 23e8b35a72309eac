"""RESTCONF operations and actions over real HTTP, plus the README-style flow with curl.

The nfo-test ``ping`` RPC (mandatory input ``msg``, output ``echo``) is served by a
handler registered with ``ds.register_rpc``; the nf-instance ``restart`` action
likewise (no workload manager runs here).
"""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest

from nfo.datastore import Datastore, RpcCall
from nfo.errors import InvalidValue

JSON = "application/yang-data+json"
XML = "application/yang-data+xml"
PING = "/restconf/operations/nfo-test:ping"
INST = "/restconf/data/nfo-instances:nf-instances"
RC = "{urn:ietf:params:xml:ns:yang:ietf-restconf}"
CATALOG = (Path(__file__).resolve().parents[2] / "yang" / "nfo-demo-catalog.json").read_text()
CURL = "/usr/bin/curl"


def error_of(r: httpx.Response) -> dict[str, Any]:
    err: dict[str, Any] = r.json()["ietf-restconf:errors"]["error"][0]
    return err


async def echo(call: RpcCall) -> dict[str, str]:
    node = call.tree.node("/nfo-test:ping/msg")
    msg = node.value if node is not None else None
    if msg == "fail":
        raise InvalidValue("the handler does not like 'fail'")
    return {"echo": f"{msg} from {call.session.user}"}


async def quiet(call: RpcCall) -> None:
    return None


async def test_operations_resource(client: httpx.AsyncClient) -> None:
    r = await client.get("/restconf/operations")
    assert r.status_code == 200
    ops = r.json()["ietf-restconf:operations"]
    assert ops["nfo-test:ping"] == [None]
    assert not any(k.startswith("ietf-netconf:") for k in ops)
    r = await client.get("/restconf/operations", headers={"Accept": XML})
    doc = ET.fromstring(r.text)
    assert doc.tag == RC + "operations"
    assert doc.find("{urn:nfo:test}ping") is not None


async def test_ping_json_and_xml(client: httpx.AsyncClient, ds: Datastore) -> None:
    ds.register_rpc("/nfo-test:ping", echo)
    r = await client.post(PING, content=json.dumps({"nfo-test:input": {"msg": "hi"}}),
                          headers={"Content-Type": JSON})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == JSON
    assert r.json() == {"nfo-test:output": {"echo": "hi from anonymous"}}
    r = await client.post(PING, content='<input xmlns="urn:nfo:test"><msg>hey</msg></input>',
                          headers={"Content-Type": XML, "Accept": XML})
    assert r.status_code == 200, r.text
    out = ET.fromstring(r.text)
    assert out.tag == "{urn:nfo:test}output"
    assert out.findtext("{urn:nfo:test}echo") == "hey from anonymous"
    # XML in, JSON out; a prefixed input element
    r = await client.post(PING, headers={"Content-Type": XML, "Accept": JSON},
                          content='<t:input xmlns:t="urn:nfo:test"><t:msg>p</t:msg></t:input>')
    assert r.status_code == 200, r.text
    assert r.json() == {"nfo-test:output": {"echo": "p from anonymous"}}


async def test_ping_without_output_is_204(client: httpx.AsyncClient, ds: Datastore) -> None:
    ds.register_rpc("/nfo-test:ping", quiet)
    r = await client.post(PING, content=json.dumps({"nfo-test:input": {"msg": "hi"}}),
                          headers={"Content-Type": JSON})
    assert r.status_code == 204 and r.content == b""


async def test_operation_errors(client: httpx.AsyncClient, ds: Datastore) -> None:
    # no handler: not implemented
    r = await client.post(PING, content=json.dumps({"nfo-test:input": {"msg": "hi"}}),
                          headers={"Content-Type": JSON})
    assert r.status_code == 501 and error_of(r)["error-tag"] == "operation-not-supported"
    ds.register_rpc("/nfo-test:ping", echo)
    cases: list[tuple[str | None, str, int, str]] = [
        ('{"nfo-test:ping": {"msg": "x"}}', JSON, 400, "invalid-value"),  # not "input"
        ('{"nfo-test:input": {"bogus": 1}}', JSON, 400, "unknown-element"),
        ('{"nfo-test:input": {"msg": "x"', JSON, 400, "malformed-message"),
        ('{"nfo-test:input": {}}', JSON, 409, "data-missing"),  # mandatory msg
        (None, JSON, 409, "data-missing"),
        ('<output xmlns="urn:nfo:test"><msg>x</msg></output>', XML, 400, "invalid-value"),
        ('<input xmlns="urn:other"><msg>x</msg></input>', XML, 400, "invalid-value"),
        ('{"nfo-test:input": {"msg": "fail"}}', JSON, 400, "invalid-value"),  # handler
        ("msg=x", "text/plain", 415, "invalid-value"),
    ]
    for body, ctype, status, tag in cases:
        headers = {"Content-Type": ctype} if body is not None else {}
        r = await client.post(PING, content=body, headers=headers)
        assert (r.status_code, error_of(r)["error-tag"]) == (status, tag), (body, r.text)
    r = await client.post("/restconf/operations/nfo-test:nope", content=b"")
    assert r.status_code == 400
    r = await client.post("/restconf/operations/ietf-netconf:get-config", content=b"")
    assert r.status_code == 404
    r = await client.get(PING)
    assert r.status_code == 405 and r.headers["allow"] == "POST, OPTIONS"
    r = await client.post(PING + "?depth=1", content=b"")
    assert r.status_code == 400
    # RPCs are not data resources
    r = await client.post("/restconf/data/nfo-test:ping", content=b"")
    assert r.status_code == 405


async def with_instance(client: httpx.AsyncClient, name: str = "e1") -> None:
    r = await client.patch("/restconf/data", headers={"Content-Type": JSON},
                           content=json.dumps({"ietf-restconf:data": json.loads(CATALOG)}))
    assert r.status_code == 204, r.text
    r = await client.post(INST, headers={"Content-Type": JSON}, content=json.dumps(
        {"nfo-instances:nf-instance": [{"name": name, "descriptor": "udp-echo",
                                        "parameter": [{"name": "port", "value": "7000"}]}]}))
    assert r.status_code == 201, r.text


async def test_action_on_a_list_entry(client: httpx.AsyncClient, ds: Datastore) -> None:
    calls: list[tuple[str, str | None]] = []

    async def restart(call: RpcCall) -> dict[str, str]:
        calls.append((call.path, call.parent_path))
        return {"result": "restarted"}
    ds.register_rpc("/nfo-instances:nf-instances/nf-instance/restart", restart)
    await with_instance(client)
    r = await client.post(INST + "/nf-instance=e1/restart", content=b"")
    assert r.status_code == 200, r.text
    assert r.json() == {"nfo-instances:output": {"result": "restarted"}}
    assert calls == [("/nfo-instances:nf-instances/nf-instance/restart",
                      "/nfo-instances:nf-instances/nf-instance[name='e1']")]
    r = await client.post(INST + "/nf-instance=e1/restart", headers={
        "Content-Type": XML, "Accept": XML}, content='<input xmlns="urn:nfo:instances"/>')
    assert r.status_code == 200, r.text
    assert ET.fromstring(r.text).findtext("{urn:nfo:instances}result") == "restarted"
    # on an instance that does not exist; on a read-only config datastore
    r = await client.post(INST + "/nf-instance=zz/restart", content=b"")
    assert r.status_code == 404 and error_of(r)["error-tag"] == "data-missing"
    r = await client.post("/restconf/ds/ietf-datastores:running/nfo-instances:nf-instances"
                          "/nf-instance=e1/restart", content=b"")
    assert r.status_code == 405
    r = await client.post("/restconf/ds/ietf-datastores:operational/nfo-instances:nf-instances"
                          "/nf-instance=e1/restart", content=b"")
    assert r.status_code == 200
    assert len(calls) == 3
    r = await client.get(INST + "/nf-instance=e1/restart")
    assert r.status_code == 405


async def test_redeploy_action_input_is_validated(client: httpx.AsyncClient,
                                                  ds: Datastore) -> None:
    async def redeploy(call: RpcCall) -> dict[str, str]:
        vim = call.tree.node("/nfo-instances:nf-instances/nf-instance[name='e1']/redeploy/vim")
        return {"result": f"to {vim.value if vim is not None else None}"}
    ds.register_rpc("/nfo-instances:nf-instances/nf-instance/redeploy", redeploy)
    await with_instance(client)
    path = INST + "/nf-instance=e1/redeploy"
    r = await client.post(path, headers={"Content-Type": JSON},
                          content=json.dumps({"nfo-instances:input": {"vim": "local"}}))
    assert r.status_code == 200, r.text
    assert r.json() == {"nfo-instances:output": {"result": "to local"}}
    r = await client.post(path, headers={"Content-Type": JSON},
                          content=json.dumps({"nfo-instances:input": {"vim": "nowhere"}}))
    assert r.status_code == 409 and error_of(r)["error-app-tag"] == "instance-required"


# -- the README flow with curl -----------------------------------------------------

async def curl(*args: str) -> tuple[int, str, str]:
    """Run curl without blocking the event loop the server runs in."""
    proc = await asyncio.create_subprocess_exec(
        CURL, "-s", "-S", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    body, _, code = out.decode().rpartition("\n")
    return int(code), body, err.decode()


@pytest.mark.skipif(not Path(CURL).exists(), reason="curl is not installed")
async def test_readme_flow_with_curl(server: Any, ds: Datastore) -> None:
    base = server.base
    ds.register_rpc("/nfo-test:ping", echo)
    code, body, _ = await curl("-H", f"Accept: {JSON}", f"{base}/restconf")
    assert code == 200, body and "ietf-restconf:restconf" in json.loads(body)
    code, _, _ = await curl("-X", "PUT", "-H", f"Content-Type: {JSON}", "--data",
                            json.dumps({"nfo-test:top": {"name": "from-curl"}}),
                            f"{base}/restconf/data/nfo-test:top")
    assert code == 201
    code, body, _ = await curl("-H", f"Accept: {XML}", f"{base}/restconf/data/nfo-test:top/name")
    assert code == 200 and ET.fromstring(body).text == "from-curl"
    code, body, _ = await curl("-X", "POST", "-H", f"Content-Type: {XML}", "--data",
                               '<input xmlns="urn:nfo:test"><msg>curl</msg></input>',
                               f"{base}{PING}")
    # curl accepts */*: the reply takes the encoding of the request (XML)
    assert code == 200
    assert ET.fromstring(body).findtext("{urn:nfo:test}echo") == "curl from anonymous"
    code, body, _ = await curl("-i", "-X", "DELETE", f"{base}/restconf/data/nfo-test:top/name")
    assert code == 204
    code, body, _ = await curl(f"{base}/restconf/data/nfo-test:top/name")
    assert code == 404 and "data-missing" in body
