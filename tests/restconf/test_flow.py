"""The design brief's flow over RESTCONF, end to end, as `nfo serve` runs it.

A real uvicorn socket serving the composed app (routes, YANG Patch, event streams,
Basic authentication against the user store), the real workload manager with the
sim and local drivers, and httpx and curl as clients.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from nfo.datastore import Datastore
from nfo.restconf.security import dev_certificate
from nfo.restconf.server import RestconfOptions, RunningServer, start_server
from nfo.workload import WorkloadManager
from tests.access import admins
from tests.netutil import free_port
from tests.orchestrator import orchestrator

JSON = "application/yang-data+json"
AUTH = ("admin", "flow-test-password")
INSTANCES = "/restconf/data/nfo-instances:nf-instances"


class Env:
    def __init__(self, ds: Datastore, mgr: WorkloadManager, server: RunningServer) -> None:
        self.ds = ds
        self.mgr = mgr
        self.server = server
        self.base = f"http://127.0.0.1:{server.port}"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with orchestrator(tmp_path / "state") as (state, ds, mgr):
        users = await admins(ds, AUTH)
        server = await start_server(ds, users, RestconfOptions(port=0), state.path)
        try:
            yield Env(ds, mgr, server)
        finally:
            await server.stop()


def client(env: Env) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=env.base, auth=AUTH, timeout=10,
                             headers={"Accept": JSON})


async def wait_status(c: httpx.AsyncClient, name: str, want: str, timeout: float = 10) -> dict:
    last = None
    for _ in range(int(timeout / 0.05)):
        r = await c.get(f"{INSTANCES}/nf-instance={name}/state")
        if r.status_code == 200:
            last = r.json()["nfo-instances:state"]
            if last.get("oper-status") == want:
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never reached {want}; last state {last}")


SIM_SETUP = {
    "nfo-vim:vims": {"vim": [{"name": "sim1", "type": "nfo-vim:sim",
                              "sim": {"latency": {"mean": 150, "jitter": 0}}}]},
    "nfo-catalog:catalog": {"nf-descriptor": [{"id": "fw", "vim-types": ["nfo-vim:sim"]}]},
}


async def test_unauthenticated_requests_get_401(env: Env) -> None:
    async with httpx.AsyncClient(base_url=env.base) as c:
        r = await c.get("/restconf/data")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Basic")
        r = await c.get("/restconf/streams/NETCONF/json")
        assert r.status_code == 401


async def test_create_instance_on_sim_and_watch_it_over_get_and_sse(env: Env) -> None:
    async with client(env) as c:
        r = await c.patch("/restconf/data", content=json.dumps({"ietf-restconf:data": SIM_SETUP}),
                          headers={"Content-Type": JSON})
        assert r.status_code == 204, r.text
        events: list[dict] = []

        async def watch() -> None:
            async with c.stream("GET", "/restconf/streams/nfo/json",
                                headers={"Accept": "text/event-stream"}) as resp:
                assert resp.status_code == 200
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        msg = json.loads(line[5:])["ietf-restconf:notification"]
                        body = msg["nfo-instances:nf-instance-state-change"]
                        events.append(body)
                        if body["new-status"] == "running":
                            return
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        r = await c.post(INSTANCES, content=json.dumps(
            {"nfo-instances:nf-instance": [{"name": "a", "descriptor": "fw"}]}),
            headers={"Content-Type": JSON})
        assert r.status_code == 201, r.text
        assert r.headers["location"].endswith("nf-instance=a")
        first = (await c.get(f"{INSTANCES}/nf-instance=a/state")).json()["nfo-instances:state"]
        assert first["oper-status"] == "initializing"
        assert first["driver"] == "sim" and first["vim"] == "sim1"
        st = await wait_status(c, "a", "running")
        assert st["vim-resource-id"].startswith("sim-")
        await asyncio.wait_for(watcher, 10)
        assert [e["new-status"] for e in events] == ["initializing", "running"]
        r = await c.delete(f"{INSTANCES}/nf-instance=a")
        assert r.status_code == 204
        for _ in range(100):
            if (await c.get(f"{INSTANCES}/nf-instance=a/state")).status_code == 404:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the operational entry of a deleted instance stayed")


async def test_local_nf_over_restconf_with_curl_and_yang_patch(env: Env) -> None:
    port = free_port()
    patch = {"ietf-yang-patch:yang-patch": {"patch-id": "add-echo", "edit": [{
        "edit-id": "1", "operation": "create", "target": "/nf-instance=echo",
        "value": {"nfo-instances:nf-instance": [{
            "name": "echo", "descriptor": "udp-echo",
            "parameter": [{"name": "port", "value": str(port)}]}]}}]}}
    res = await asyncio.to_thread(subprocess.run, [
        "curl", "-s", "-u", ":".join(AUTH), "-X", "PATCH",
        "-H", "Content-Type: application/yang-patch+json", "-H", f"Accept: {JSON}",
        "--data-binary", json.dumps(patch), f"{env.base}{INSTANCES}"],
        capture_output=True, text=True, timeout=30)
    assert json.loads(res.stdout)["ietf-yang-patch:yang-patch-status"]["ok"] == [None]
    async with client(env) as c:
        await wait_status(c, "echo", "running")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"over restconf", ("127.0.0.1", port))
        assert s.recv(100) == b"over restconf"


async def test_vim_credentials_are_never_returned_over_restconf(env: Env) -> None:
    vim = {"nfo-vim:vim": [{"name": "os1", "type": "nfo-vim:openstack", "openstack": {
        "auth-url": "http://127.0.0.1:5000/v3", "username": "u", "password": "pw-s3cret",
        "project-name": "p"}}]}
    async with client(env) as c:
        r = await c.post("/restconf/data/nfo-vim:vims", content=json.dumps(vim),
                         headers={"Content-Type": JSON})
        assert r.status_code == 201, r.text
        for url in ("/restconf/data/nfo-vim:vims", "/restconf/data",
                    "/restconf/ds/ietf-datastores:running/nfo-vim:vims/vim=os1",
                    "/restconf/data/nfo-vim:vims/vim=os1/openstack"):
            for accept in (JSON, "application/yang-data+xml"):
                r = await c.get(url, headers={"Accept": accept})
                assert r.status_code == 200, (url, r.text)
                assert "pw-s3cret" not in r.text and "username" in r.text, url
        r = await c.get("/restconf/data/nfo-vim:vims/vim=os1/openstack/password")
        assert "pw-s3cret" not in r.text


async def test_yang_library_links_module_sources(env: Env) -> None:
    async with client(env) as c:
        lib = (await c.get("/restconf/data/ietf-yang-library:yang-library")).json()
        mods = lib["ietf-yang-library:yang-library"]["module-set"][0]["module"]
        inst = next(m for m in mods if m["name"] == "nfo-instances")
        (location,) = inst["location"]
        src = await c.get(location)
        assert src.status_code == 200
        assert src.text.lstrip().startswith("module nfo-instances")


@pytest.mark.parametrize("mode", ["dev-cert", "configured-cert"])
def test_nfo_serve_over_https(tmp_path: Path, mode: str) -> None:
    """`nfo serve` with TLS: curl verifies the certificate; the admin password comes from
    NFO_ADMIN_PASSWORD; plain HTTP on the TLS port gets nothing."""
    state = tmp_path / "state"
    args = [sys.executable, "-m", "nfo", "--state-dir", str(state), "serve", "--restconf",
            "127.0.0.1:0", "--netconf", "127.0.0.1:0"]
    if mode == "dev-cert":
        args.append("--dev-cert")
        cert = state / "tls" / "dev-cert.pem"
    else:
        cert, key = dev_certificate(tmp_path / "own")
        args += ["--tls-cert", str(cert), "--tls-key", str(key)]
    proc = subprocess.Popen(args, env={**os.environ, "NFO_ADMIN_PASSWORD": "tls-pw-123"},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            if "RESTCONF on " in line:
                url = line.split("RESTCONF on ", 1)[1].strip()
            if "serving" in line:
                break
        assert url is not None and url.startswith("https://127.0.0.1:")
        res = subprocess.run(["curl", "-s", "--cacert", str(cert), "-u", "admin:tls-pw-123",
                              "-H", f"Accept: {JSON}", f"{url}/data/nfo-catalog:catalog"],
                             capture_output=True, text=True, timeout=30)
        assert json.loads(res.stdout)["nfo-catalog:catalog"]["nf-descriptor"][0]["id"] == \
            "udp-echo"
        bad = subprocess.run(["curl", "-s", "--cacert", str(cert), "-u", "admin:wrong",
                              "-o", "/dev/null", "-w", "%{http_code}", f"{url}/data"],
                             capture_output=True, text=True, timeout=30)
        assert bad.stdout == "401"
        plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                url.replace("https://", "http://") + "/data"],
                               capture_output=True, text=True, timeout=30)
        assert plain.stdout in ("000", "400")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            proc.kill()


async def test_post_local_nf_and_watch_it_over_sse_and_get(env: Env) -> None:
    port = free_port()
    async with client(env) as c:
        events: list[dict] = []
        opened = asyncio.Event()

        async def watch() -> None:
            async with c.stream("GET", "/restconf/streams/nfo/xml",
                                headers={"Accept": "text/event-stream"}) as resp:
                assert resp.status_code == 200
                opened.set()
                lines: list[str] = []
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        lines.append(line[5:].strip())
                    elif not line and lines:
                        xml = "".join(lines)
                        lines = []
                        new = xml.split("<new-status>", 1)[1].split("<", 1)[0]
                        events.append({"xml": xml, "new": new})
                        if new == "running":
                            return
        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(opened.wait(), 5)
        r = await c.post(INSTANCES, content=json.dumps({"nfo-instances:nf-instance": [{
            "name": "echo2", "descriptor": "udp-echo", "vim": "local",
            "parameter": [{"name": "port", "value": str(port)}]}]}),
            headers={"Content-Type": JSON})
        assert r.status_code == 201, r.text
        st = await wait_status(c, "echo2", "running")
        assert st["driver"] == "local" and st["vim-resource-id"].startswith("local-")
        await asyncio.wait_for(watcher, 10)
        assert [e["new"] for e in events] == ["initializing", "running"]
        assert "urn:ietf:params:xml:ns:netconf:notification:1.0" in events[0]["xml"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"sse", ("127.0.0.1", port))
        assert s.recv(10) == b"sse"
