"""``nfo serve``'s query limits reach the datastore: a costly XPath filter over NETCONF is
answered resource-denied at the configured deadline, on a real server process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ncclient import manager
from ncclient.operations.rpc import RPCError

from .test_limits import GUARD, PASSWORD, Serve

COSTLY = ("/i:nf-instances/i:nf-instance[i:description = ../i:nf-instance/i:parameter/"
          "i:value]/i:name")


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[Serve]:
    srv = Serve(tmp_path, "--query-deadline", "0.3", "--queries-per-user", "1")
    try:
        yield srv
    finally:
        srv.stop()


def test_the_query_deadline_and_per_user_bound_are_options(impatient: Serve) -> None:
    body = json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
        {"name": f"i{k}", "descriptor": "udp-echo", "admin-state": "disabled",
         "description": f"d{k}", "parameter": [{"name": "port", "value": str(20000 + k)}]}
        for k in range(3000)]}})
    r = httpx.patch(f"http://127.0.0.1:{impatient.restconf}/restconf/data/"
                    "nfo-instances:nf-instances", content=body, auth=("admin", PASSWORD),
                    headers={"Content-Type": "application/yang-data+json"}, timeout=GUARD)
    assert r.status_code in (200, 204), r.text
    with manager.connect(host="127.0.0.1", port=impatient.netconf, username="admin",
                         password=PASSWORD, hostkey_verify=False, allow_agent=False,
                         look_for_keys=False, timeout=GUARD) as m:
        with pytest.raises(RPCError) as e:
            m.get_config("running", filter=("xpath", ({"i": "urn:nfo:instances"}, COSTLY)))
        assert e.value.tag == "resource-denied"
        assert "did not finish within 0.3 s" in str(e.value.message)
        with pytest.raises(RPCError) as e:  # the runaway still holds admin's one query
            m.get_config("running", filter=(
                "xpath", ({"i": "urn:nfo:instances"}, "/i:nf-instances/i:nf-instance"
                          "[i:description = 'd1']/i:name")))
        assert "still running" in str(e.value.message)
        assert m.get_config("running").ok  # plain reads stay on the event loop
