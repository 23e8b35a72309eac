"""Every kind of RESTCONF response body, validated by an independent validator (yanglint).

RESTCONF bodies are not always top-level data (a list entry, the datastore's
``ietf-restconf:data`` wrapper), so each is put back in its place before
yanglint validates it as configuration (``-t config``) or as a get reply (``-t get``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from nfo.schema import ietf_dir
from nfo.schema.context import nfo_yang_dir
from tests.restconf.conftest import JSON

YANGLINT = shutil.which("yanglint")
pytestmark = pytest.mark.skipif(YANGLINT is None, reason="yanglint missing")
TEST_YANG = Path(__file__).parent.parent / "datastore" / "yang"
MODULES = [nfo_yang_dir() / "nfo-vim.yang", nfo_yang_dir() / "nfo-catalog.yang",
           nfo_yang_dir() / "nfo-instances.yang", TEST_YANG / "nfo-test.yang",
           ietf_dir() / "ietf-netconf-acm.yang"]


def yanglint(tmp: Path, doc: object, dtype: str) -> None:
    f = tmp / "body.json"
    f.write_text(json.dumps(doc))
    assert YANGLINT is not None
    res = subprocess.run([YANGLINT, "-D", "-p", str(nfo_yang_dir()), "-p", str(ietf_dir()),
                          "-t", dtype, *map(str, MODULES), str(f)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, (res.stderr, doc)


async def populate(c: httpx.AsyncClient) -> None:
    demo = json.loads((nfo_yang_dir() / "nfo-demo-catalog.json").read_text())
    r = await c.patch("/restconf/data", content=json.dumps({"ietf-restconf:data": demo}),
                      headers={"Content-Type": JSON})
    assert r.status_code == 204, r.text
    r = await c.post("/restconf/data/nfo-instances:nf-instances", content=json.dumps(
        {"nfo-instances:nf-instance": [{"name": "n1", "descriptor": "udp-echo",
                                        "parameter": [{"name": "port", "value": "9999"}]}]}),
        headers={"Content-Type": JSON})
    assert r.status_code == 201, r.text
    r = await c.put("/restconf/data/nfo-test:top", content=json.dumps(
        {"nfo-test:top": {"name": "x", "tags": ["b", "a"], "pair": [{"a": "k", "b": 2}]}}),
        headers={"Content-Type": JSON})
    assert r.status_code in (201, 204), r.text


async def test_bodies_of_every_resource_kind_validate(client: httpx.AsyncClient,
                                                     tmp_path: Path) -> None:
    await populate(client)
    body = (await client.get("/restconf/data?content=config")).json()
    yanglint(tmp_path, body["ietf-restconf:data"], "config")          # the datastore
    catalog = (await client.get("/restconf/data/nfo-catalog:catalog?content=config")).json()
    yanglint(tmp_path, catalog, "config")                               # a top container
    vims = (await client.get("/restconf/data/nfo-vim:vims?content=config")).json()
    entry = (await client.get(
        "/restconf/data/nfo-instances:nf-instances/nf-instance=n1?content=config")).json()
    yanglint(tmp_path, {**catalog, **vims, "nfo-instances:nf-instances": {
        "nf-instance": entry["nfo-instances:nf-instance"]}}, "config")  # a list entry
    pair = (await client.get("/restconf/data/nfo-test:top/pair=k,2?content=config")).json()
    yanglint(tmp_path, {"nfo-test:top": {"pair": pair["nfo-test:pair"]}}, "config")
    leaf = (await client.get("/restconf/data/nfo-test:top/name")).json()
    yanglint(tmp_path, {"nfo-test:top": {"name": leaf["nfo-test:name"]}}, "config")


async def test_operational_body_validates_as_get(client: httpx.AsyncClient, server: object,
                                                 tmp_path: Path) -> None:
    await populate(client)
    ds = server.ds  # type: ignore[attr-defined]
    async with ds.internal_session("wm") as s:
        s.set_oper(json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
            {"name": "n1", "state": {"oper-status": "running", "attempts": 1}}]}}), "json")
    body = (await client.get("/restconf/ds/ietf-datastores:operational/"
                             "nfo-instances:nf-instances")).json()
    assert body["nfo-instances:nf-instances"]["nf-instance"][0]["state"]["oper-status"] == \
        "running"
    catalog = (await client.get("/restconf/data/nfo-catalog:catalog")).json()
    vims = (await client.get("/restconf/data/nfo-vim:vims?content=config")).json()
    yanglint(tmp_path, {**catalog, **vims, **body}, "get")


async def test_the_cross_check_can_fail(tmp_path: Path) -> None:
    with pytest.raises(AssertionError):
        yanglint(tmp_path, {"nfo-test:top": {"count": "not-a-number"}}, "config")
