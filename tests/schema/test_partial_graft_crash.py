"""A crash the RESTCONF fuzzer found (issue 12, docs/robustness.md), in a child process.

Four commits on the nfo-test module through the partial-copy path
(``nfo.schema.partial``) ended in a segmentation fault inside ``lyd_insert_child``
while the fourth commit's copy was grafted back: the live ``top`` is edited in place,
and libyang 2.1.30's child hash table wore out (``nfo.schema.hashes``;
tests/schema/test_hashes.py has the table-level reproduction).  The JSON prints
between the commits are part of the reduction as found; without them this in-process
sequence did not crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

YANG = Path(__file__).parents[1] / "datastore" / "yang"

CHILD = textwrap.dedent(f"""
    import asyncio, json, tempfile
    from pathlib import Path
    from nfo.datastore import Datastore, SqliteStorage
    from nfo.schema import Fmt, Schema
    R = {{"@": {{"ietf-netconf:operation": "replace"}}}}
    EDITS = [
        {{"nfo-test:top": {{"colour": "nfo-test:red", "tags": ["a"], "radius": 0}}}},
        {{"nfo-test:top": {{**R, "colour": "nfo-test:blue", "sorted": [-5]}}}},
        {{"nfo-test:top": {{"extra": {{**R}}}}}},
        {{"nfo-test:top": {{"thing": [{{**R, "id": "b", "needed": "l"}}]}}}},
    ]
    async def main():
        with tempfile.TemporaryDirectory() as t:
            ds = Datastore.open(Schema(extra_dirs=[Path({str(YANG)!r})]),
                                SqliteStorage(Path(t) / "x.db"))
            await ds.start()
            async with ds.internal_session("x") as s:
                for e in EDITS:
                    await s.edit("running", json.dumps(e), Fmt.JSON)
                    ds.tree("running").print(Fmt.JSON)
            await ds.close()
    asyncio.run(main())
""")


def test_partial_commits_after_printing_running_do_not_crash() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
