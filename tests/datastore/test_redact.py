"""Nodes a reader may not see (``nacm:default-deny-all``) left out of every read without
touching freed memory: with ietf-netconf-acm in the module set its whole ``nacm``
container is such a node, the first top-level node of the data, and removing it once
crashed the process (the tree kept pointing at the freed node)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nfo.schema import ietf_dir

CHILD = r'''
import asyncio, json, sys
from pathlib import Path
from nfo.datastore import Datastore, Identity, SqliteStorage
from nfo.schema import Schema

async def main() -> None:
    schema = Schema(extra_dirs=[Path(sys.argv[1])])
    ds = Datastore.open(schema, SqliteStorage(Path(sys.argv[2])))
    await ds.start()
    async with ds.internal_session("admin") as s:
        await s.edit("running", json.dumps({"ietf-netconf-acm:nacm": {
            "enable-nacm": True, "groups": {"group": [{"name": "g", "user-name": ["a"]}]},
            "rule-list": [{"name": "r", "group": ["g"], "rule": [
                {"name": "x", "module-name": "*", "action": "permit"}]}]}}), "json")
    for _ in range(20):
        for datastore in ("running", "candidate", "startup", "operational"):
            for select in (None, "/ietf-netconf-acm:nacm", "/ietf-netconf-acm:nacm/groups",
                           "/ietf-netconf-acm:nacm/groups/group[name='g']/user-name"):
                with ds.get(datastore, select, who=Identity("b")) as t:
                    text = t.print("json")
                    assert "ietf-netconf-acm" not in text, text
                with ds.get(datastore, select, who=Identity("a")) as t:
                    assert datastore == "startup" or "ietf-netconf-acm" in t.print("json")
    await ds.close()
    print("read everything")

asyncio.run(main())
'''


def test_reads_with_the_acm_module_installed(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "ietf-netconf-acm.yang").write_bytes(
        (ietf_dir() / "ietf-netconf-acm.yang").read_bytes())
    env = {**os.environ, "MALLOC_CHECK_": "3"}
    run = subprocess.run([sys.executable, "-c", CHILD, str(modules), str(tmp_path / "db")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "read everything" in run.stdout
