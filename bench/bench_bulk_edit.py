"""One edit creating N list entries (default 10,000), in process, stage by stage.

The bulk edit path of this tree, measured three ways in one process, alternating
(the machine is shared and noisy; A/B between builds is bench/bench_netconf.py
``--against``):

- ``stages``: the write pipeline's steps run one by one as
  :mod:`nfo.datastore.transaction` runs them, each timed: parse the edit
  (``Tree.parse``), plan and copy (``plan_edits``, then ``Plan.build`` or a full
  ``dup``), apply (``apply_edit``, in bulk), validate (libyang over the working copy,
  validation's own deletions folded in), commit (the client's text kept as the
  record, appended durably to a SQLite commit log, the copy grafted or swapped in);
- ``Session.edit``: the same edit end to end through a datastore session
  (locks, preconditions, the RFC 6470 notification, group commit included), its
  changes not reported back (as the NETCONF front end asks);
- reference, ``libyang alone``: parse (``LYD_PARSE_ONLY``) plus one full
  ``lyd_validate_all`` of the same data, as bench/bench_datastore.py's reference:
  what any libyang-based datastore pays at least for this edit.

Before each run the datastore holds one ``small`` entry (as bench/bench_netconf.py
has before its bulk edit).  CPU time (less sensitive to other processes than wall
time) and wall time, median and minimum, and each median over the reference's.
The data both nfo variants end with must be identical.

Run: ``.venv/bin/python bench/bench_bulk_edit.py [--entries 10000] [--runs 9]``;
``--smoke`` is a seconds-long run for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from _libyang import ffi, lib

from nfo.datastore import Datastore, SqliteStorage
from nfo.datastore.formats import edit_item, source_of
from nfo.schema import Fmt, Schema, Tree
from nfo.schema.data import parse_data
from nfo.schema.deps import Independence, independence
from nfo.schema.edit import apply_edit, validate
from nfo.schema.partial import plan_edits

YANG = Path(__file__).parent / "yang"
NS = "urn:nfo:bench"
SMALL = f'<bench xmlns="{NS}"><small><name>s</name></small></bench>'
STAGES = ("parse", "plan + copy", "apply", "validate", "commit")
VARIANTS = ("stages", "Session.edit", "libyang alone")
_PARSE_REFERENCE = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE


def bulk_xml(entries: int) -> str:
    body = "".join(f"<bulk><name>e{k}</name><value>{k}</value></bulk>" for k in range(entries))
    return f'<bench xmlns="{NS}">{body}</bench>'


class Clock:
    """CPU and wall time of consecutive steps."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self._c, self._w = time.process_time(), time.perf_counter()

    def lap(self, name: str) -> None:
        c, w = time.process_time(), time.perf_counter()
        self.cpu[name], self.wall[name] = c - self._c, w - self._w
        self._c, self._w = c, w


def staged(schema: Schema, ind: Independence, db: Path, text: str) -> tuple[Clock, str, bool]:
    """The pipeline's steps one by one on a live tree and a commit log of their own."""
    storage = SqliteStorage(db)
    live = Tree.parse(schema, SMALL, Fmt.XML)
    validate(schema, live)
    try:
        clock = Clock()
        edit = Tree.parse(schema, text, Fmt.XML)
        clock.lap("parse")
        edits = [(edit, "merge")]
        plan = plan_edits(schema, ind, edits)
        work = plan.build(live) if plan is not None else live.dup()
        clock.lap("plan + copy")
        changes = apply_edit(schema, work, edit, "merge", bulk=True)
        clock.lap("apply")
        validate(schema, work, changes)
        clock.lap("validate")
        payload = json.dumps([edit_item(e, dop, source_of(text, Fmt.XML)) for e, dop in edits])
        with storage.batch():
            storage.append_commit("running", time.time(), "bench", "edit", payload, "")
        if plan is not None:
            plan.graft(live, work)
            work.free()
        else:
            live.free()
            live = work
        clock.lap("commit")
        edit.free()
        if not changes:
            raise SystemExit("the staged edit changed nothing")
        return clock, live.print(Fmt.JSON), plan is not None
    finally:
        live.free()
        storage.close()


async def end_to_end(schema: Schema, db: Path, text: str) -> tuple[Clock, str]:
    """The same edit through ``Session.edit`` on a fresh datastore."""
    ds = Datastore.open(schema, SqliteStorage(db))
    await ds.start()
    try:
        async with ds.internal_session("bench") as s:
            await s.edit("running", SMALL, Fmt.XML)
            clock = Clock()
            await s.edit("running", text, Fmt.XML, report=False)
            clock.lap("Session.edit")
        with ds.get("running") as t:
            return clock, t.print(Fmt.JSON)
    finally:
        await ds.close()


def libyang_alone(schema: Schema, text: str) -> Clock:
    """Parse the same data with libyang and validate it once, in full."""
    ctx = schema.cdata
    clock = Clock()
    root = parse_data(ctx, text, Fmt.XML, parse_opts=_PARSE_REFERENCE)
    holder = ffi.new("struct lyd_node **", root)
    try:
        rc = lib.lyd_validate_all(holder, ctx, lib.LYD_VALIDATE_NO_STATE, ffi.NULL)
        clock.lap("libyang alone")
        if rc != lib.LY_SUCCESS:
            raise SystemExit(f"reference validation failed (libyang rc {rc})")
    finally:
        if holder[0] != ffi.NULL:
            lib.lyd_free_all(holder[0])
    return clock


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.entries, args.runs = 300, 2
    schema = Schema(extra_dirs=[YANG])
    ind = independence(schema)
    text = bulk_xml(args.entries)
    cpu: dict[str, list[float]] = {k: [] for k in (*STAGES, *VARIANTS)}
    wall: dict[str, list[float]] = {k: [] for k in (*STAGES, *VARIANTS)}
    data: dict[str, str] = {}
    partial = False
    with tempfile.TemporaryDirectory(prefix="nfo-bench-bulk-") as d:
        tmp = Path(d)
        for r in range(args.runs):
            for name in VARIANTS if r % 2 == 0 else reversed(VARIANTS):
                if name == "stages":
                    clock, data["stages"], partial = staged(schema, ind, tmp / f"s{r}.db", text)
                    clock.cpu["stages"] = sum(clock.cpu.values())
                    clock.wall["stages"] = sum(clock.wall.values())
                elif name == "Session.edit":
                    clock, data["Session.edit"] = await end_to_end(schema, tmp / f"e{r}.db",
                                                                   text)
                else:
                    clock = libyang_alone(schema, text)
                for k, v in clock.cpu.items():
                    cpu[k].append(v)
                    wall[k].append(clock.wall[k])
    if data["stages"] != data["Session.edit"]:
        raise SystemExit("the staged pipeline and Session.edit stored different data")
    ref_cpu = statistics.median(cpu["libyang alone"])
    ref_wall = statistics.median(wall["libyang alone"])
    print(f"edit creating {args.entries:,} entries (XML, {len(text):,} bytes) on a datastore "
          f"holding 1 entry; {args.runs} runs each, alternating; "
          f"{'partial' if partial else 'full'} copy")
    print(f"  {'':34} {'CPU median':>10} {'CPU min':>8} {'wall median':>11} {'wall min':>9} "
          f"{'CPU / ref':>9} {'wall / ref':>10}")
    rows = [*(f"  {s}" for s in STAGES), *VARIANTS]
    for label in rows:
        k = label.strip()
        name = {"stages": "stages (sum of the above)",
                "libyang alone": "reference: libyang parse+validate"}.get(label, label)
        print(f"  {name:34} {statistics.median(cpu[k]) * 1e3:8.1f}ms {min(cpu[k]) * 1e3:6.1f}ms "
              f"{statistics.median(wall[k]) * 1e3:9.1f}ms {min(wall[k]) * 1e3:7.1f}ms "
              f"{statistics.median(cpu[k]) / ref_cpu:9.2f} "
              f"{statistics.median(wall[k]) / ref_wall:10.2f}")


if __name__ == "__main__":
    asyncio.run(main())
