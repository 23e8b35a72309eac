"""One edit-config creating N list entries, in process: a base commit against the work tree.

The machine this runs on is shared and noisy, so the comparison is made in one
process, alternating: "base" swaps in a base commit's ``nfo/datastore/edit.py``
(``apply_edit``), ``nfo/datastore/partial.py`` (``plan_edits``, ``Plan``) and
``nfo/netconf/protocol.py`` (``handle``), read with ``git show``; "work" runs the
work tree.  Each run: a fresh datastore holding one ``small`` entry (as
bench/bench_netconf.py has before its bulk edit), then the bulk edit-config
through ``protocol.handle`` (envelope parse, datastore edit, commit, reply).
CPU time (less sensitive to other processes than wall time) and wall time, median
and minimum; the resulting data of both variants must be identical.

Run: ``.venv/bin/python bench/bench_bulk_edit.py [--base d9e0d57] [--entries 10000] [--runs 9]``
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import nfo.datastore.transaction as transaction
from nfo.datastore import Datastore, SqliteStorage
from nfo.netconf import protocol
from nfo.netconf.protocol import NetconfContext
from nfo.schema import Schema

ROOT = Path(__file__).resolve().parents[1]
YANG = Path(__file__).parent / "yang"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = "urn:nfo:bench"


def base_module(commit: str, path: str, name: str, tmp: Path) -> ModuleType:
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], check=True,
                          capture_output=True, text=True).stdout
    f = tmp / f"{name}.py"
    f.write_text(text)
    spec = importlib.util.spec_from_file_location(name, f)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def rpc(mid: int, body: str) -> bytes:
    return (f'<rpc xmlns="{NC}" message-id="{mid}"><edit-config><target><running/></target>'
            f'<config><bench xmlns="{NS}">{body}</bench></config></edit-config></rpc>').encode()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="d9e0d57")
    ap.add_argument("--entries", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nfo-bench-bulk-"))
    edit = base_module(args.base, "nfo/datastore/edit.py", "base_edit", tmp)
    partial = base_module(args.base, "nfo/datastore/partial.py", "base_partial", tmp)
    proto = base_module(args.base, "nfo/netconf/protocol.py", "base_protocol", tmp)
    swapped = ("apply_edit", "plan_edits", "Plan")  # the names transaction.py calls them by
    variants: dict[str, dict[str, Any]] = {
        "base": {"apply_edit": edit.apply_edit, "plan_edits": partial.plan_edits,
                 "Plan": partial.Plan, "handle": proto.handle},
        "work": {**{n: getattr(transaction, n) for n in swapped}, "handle": protocol.handle},
    }
    schema = Schema(extra_dirs=[YANG])
    bulk = rpc(2, "".join(f"<bulk><name>e{k}</name><value>{k}</value></bulk>"
                          for k in range(args.entries)))
    cpu: dict[str, list[float]] = {"base": [], "work": []}
    wall: dict[str, list[float]] = {"base": [], "work": []}
    data: dict[str, str] = {}
    for r in range(args.runs):
        for name in ("base", "work") if r % 2 else ("work", "base"):
            v = variants[name]
            for n in swapped:
                setattr(transaction, n, v[n])
            ds = Datastore.open(schema, SqliteStorage(tmp / f"{name}-{r}.db"))
            await ds.start()
            ctx = NetconfContext(ds.session("bench"), ds.schema)
            assert b"<ok/>" in await v["handle"](ctx, rpc(1, "<small><name>s</name></small>"))
            c, w = time.process_time(), time.perf_counter()
            out = await v["handle"](ctx, bulk)
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
            assert b"<ok/>" in out, out[:300]
            with ds.get("running") as t:
                data.setdefault(name, t.print("json"))
            await ctx.session.close()
            await ds.close()
    for n in swapped:
        setattr(transaction, n, variants["work"][n])
    assert data["base"] == data["work"], "the variants stored different data"
    print(f"edit-config creating {args.entries:,} entries through protocol.handle, "
          f"{args.runs} runs each, alternating (base = {args.base})")
    for name in ("base", "work"):
        print(f"  {name}: CPU median {statistics.median(cpu[name]) * 1e3:6.0f} ms "
              f"(min {min(cpu[name]) * 1e3:4.0f}); wall median "
              f"{statistics.median(wall[name]) * 1e3:6.0f} ms (min {min(wall[name]) * 1e3:4.0f})")


if __name__ == "__main__":
    asyncio.run(main())
