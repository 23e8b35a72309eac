"""nfo.bindings: current with yang/, and round trips with a real server (issue 13).

Data built with the generated classes is accepted by ``nfo serve`` over RESTCONF, and
what the server returns loads back into the classes unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
from pyangbind.lib import pybindJSON

from nfo.bindings import nfo_instances, nfo_vim
from tests.fuzz.server import PASSWORD, ROOT, ServerProcess

JSON = "application/yang-data+json"


def test_bindings_match_a_fresh_generation() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_bindings.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def _ietf(obj: Any) -> dict[str, Any]:
    return json.loads(pybindJSON.dumps(obj, mode="ietf"))


def test_bindings_round_trip_with_the_server() -> None:
    vims = nfo_vim.nfo_vim()
    v = vims.vims.vim.add("sim-b")
    v.type = "nfo-vim:sim"
    v.description = "made with nfo.bindings"
    v.capacity.max_instances = 7
    insts = nfo_instances.nfo_instances()
    i = insts.nf_instances.nf_instance.add("echo-b")
    i.descriptor = "udp-echo"
    i.vim = "local"
    i.admin_state = "disabled"
    i.parameter.add("port").value = "40999"
    with ServerProcess() as srv, httpx.Client(base_url=srv.base, auth=("admin", PASSWORD),
                                              headers={"Accept": JSON}) as c:
        for obj in (vims, insts):
            r = c.patch("/restconf/data", json={"ietf-restconf:data": _ietf(obj)},
                        headers={"Content-Type": JSON})
            assert r.status_code == 204, r.text
        got_vim = c.get("/restconf/data/nfo-vim:vims/vim=sim-b?content=config").json()
        got_inst = c.get("/restconf/data/nfo-instances:nf-instances/nf-instance=echo-b"
                         "?content=config").json()
    back_vims = pybindJSON.loads_ietf({"nfo-vim:vims": got_vim}, nfo_vim, "nfo_vim")
    back_insts = pybindJSON.loads_ietf({"nfo-instances:nf-instances": got_inst},
                                       nfo_instances, "nfo_instances")
    assert _ietf(back_vims) == _ietf(vims)
    assert _ietf(back_insts) == _ietf(insts)
    assert back_vims.vims.vim["sim-b"].capacity.max_instances == 7


def test_bindings_refuse_what_the_types_refuse() -> None:
    v = nfo_vim.nfo_vim().vims.vim.add("x")
    for bad in ("nfo-vim:nope", "nfo-vim:vim-types"):
        try:
            v.type = bad
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted as a vim-type identity")
