"""Power-loss simulation of the datastore: every acknowledged commit survives a power cut.

A process kill keeps everything the process wrote (the kernel still has it); a
power cut keeps only what an fsync made durable.  This harness

1. runs ``_writer.py`` (the real datastore over the real SQLite library) under the
   fsshim LD_PRELOAD library, which logs every write, truncate, fsync, create,
   unlink and rename under the state directory, and the writer's ``BEGIN``/``ACK``
   markers, in one sequence;
2. picks cut points in that log (anywhere, just after an acknowledgement, just
   before an fsync) and for each builds, with :class:`~tests.durability.fsshim.Disk`,
   a state directory as a power cut there could have left it (only fsync-covered data
   for certain; pending writes lost, kept or torn at 512-byte sectors; pending
   directory entries kept or lost);
3. opens each with ``open_datastore`` (what ``nfo serve`` does on start) and
   checks that it opens, passes ``PRAGMA integrity_check``, and holds exactly the
   acknowledged writes, plus at most the one write in flight, whole;
4. chains: the next run starts from one of those power-cut states (not yet opened),
   so recovery itself runs under the shim and is cut too.

``python -m tests.durability.powerloss --iterations 5000 --seed 1`` (or
``tools/powerloss``) is the long run; tests/durability/test_powerloss.py runs a
fixed-seed subset.  docs/durability.md has the method and the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore
from nfo.datastore import Datastore
from tests.durability import fsshim

REPO = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("_writer.py")
MODE_WEIGHTS = {"torn": 5, "prefix": 2, "synced": 2, "all": 1}

Instance = dict[str, str | None]


class PowerLossFailure(AssertionError):
    """A power-cut state that did not open, or lost or half-applied a write."""


# -- what should be there ---------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """The writer's data: running's instances, owner wm's oper steps, startup's instances;
    with a confirmed commit pending, running's instances before it."""

    running: dict[str, Instance] = field(default_factory=dict)
    oper: dict[str, int] = field(default_factory=dict)
    startup: dict[str, Instance] = field(default_factory=dict)
    pending: dict[str, Instance] | None = None

    def restarted(self) -> Model:
        """As a restart leaves it: a pending confirmed commit reverted."""
        if self.pending is None:
            return self
        return replace(self, running=self.pending, pending=None)

    def apply(self, op: list[str]) -> Model:
        kind = op[0]
        running = dict(self.running)
        if kind == "confirm-start":
            running[op[1]] = {"port": op[2], "admin": "enabled", "desc": None}
            return replace(self, running=running, pending=self.running)
        if kind == "confirm-end":
            return replace(self, pending=None)
        if kind == "create":
            running[op[1]] = {"port": op[2], "admin": "enabled", "desc": None}
        elif kind == "bulk":
            for item in op[1].split(","):
                name, port = item.split(":")
                running[name] = {"port": port, "admin": "enabled", "desc": None}
        elif kind == "modify":
            running[op[1]] = {**running[op[1]], "admin": op[2], "desc": op[3]}
        elif kind == "delete":
            del running[op[1]]
        elif kind == "drop":
            for name in op[1].split(","):
                del running[name]
        elif kind == "oper":
            return replace(self, oper={**self.oper, op[1]: int(op[2])})
        elif kind == "startup":
            return replace(self, startup=dict(self.running))
        elif kind in ("snapshot", "reopen"):
            return self
        else:
            raise ValueError(op)
        return replace(self, running=running)


def _json(tree: Any) -> dict[str, Any]:
    if tree is None:
        return {}
    text = tree.print("json")
    return json.loads(text) if text and text.strip() else {}


def _instances(data: dict[str, Any]) -> dict[str, Instance]:
    got: dict[str, Instance] = {}
    for e in data.get("nfo-instances:nf-instances", {}).get("nf-instance", []):
        params = e.get("parameter", [])
        if e.get("descriptor") != "udp-echo" or len(params) != 1:
            raise PowerLossFailure(f"half-applied instance {e}")
        got[e["name"]] = {"port": params[0]["value"], "admin": e.get("admin-state", "enabled"),
                          "desc": e.get("description")}
    return got


def observed(ds: Datastore) -> Model:
    """The writer's data as the reopened datastore holds it."""
    running = ds.get("running")
    startup = ds.get("startup")
    try:
        rdata, sdata = _json(running), _json(startup)
    finally:
        running.free()
        startup.free()
    for vim in rdata.get("nfo-vim:vims", {}).get("vim", []):
        if vim["name"] != "local":
            raise PowerLossFailure(f"unexpected VIM {vim}")
    oper: dict[str, int] = {}
    for text in ds.oper_records("wm"):
        for e in json.loads(text).get("nfo-instances:nf-instances", {}).get(
                "nf-instance", []):
            oper[e["name"]] = int(e["state"]["attempts"])
    return Model(_instances(rdata), oper, _instances(sdata))


# -- the markers ------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    pos: int
    """Records fed when the marker was logged (a cut at k >= pos happened after it)."""
    line: str


def events_of(records: list[fsshim.Record]) -> list[Event]:
    out: list[Event] = []
    buf = b""
    for i, rec in enumerate(records):
        if rec.kind != "M":
            continue
        buf += rec.data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            out.append(Event(i + 1, line.decode()))
    return out


@dataclass(frozen=True)
class Expectation:
    candidates: list[Model]
    """[acknowledged writes applied] plus, with a write in flight, [... and it too]."""
    running_rev: int | None
    """Running's revision when no in-flight write shows (None: not known yet)."""
    inflight: str | None
    acked: int


def expect(base: Model, events: list[Event], k: int) -> Expectation:
    model = base
    rev: int | None = None
    inflight: list[str] | None = None
    acked = 0
    for ev in events:
        if ev.pos > k:
            break
        word, *rest = ev.line.split()
        if word == "OPEN":
            rev = int(rest[0])
        elif word == "BEGIN":
            inflight = rest
        elif word == "ACK":
            op = rest[1:]
            if op != inflight:
                raise ValueError(f"ACK {op} without its BEGIN")
            model = model.apply(op)
            if op[0] in ("create", "bulk", "modify", "delete", "drop", "reopen",
                         "confirm-start", "confirm-end"):
                rev = int(rest[0])
            inflight = None
            acked += 1
    cands = [model]
    if inflight is not None:
        cands.append(model.apply(inflight))
    if model.pending is not None:
        rev = None  # the restart reverts it with a commit of its own
    return Expectation([c.restarted() for c in cands], rev,
                       " ".join(inflight) if inflight else None, acked)


# -- one recorded run -------------------------------------------------------------


@dataclass
class Recording:
    records: list[fsshim.Record]
    events: list[Event]
    disk: fsshim.Disk
    seconds: float


def record(lib: Path, base: Path | None, work: Path, *, seed: int, ops: int, prefix: str,
           autocheckpoint: int = 0, snapshot_every: int = 0, synchronous: str = "",
           checkpoint_every: float | None = None, snapshot_part: int = 0,
           timeout: float = 600) -> Recording:
    """Run the writer on a copy of ``base`` under the shim and read back its log.

    Without a base, the shim watches an empty directory ``live`` and the writer
    creates its state directory ``live/state`` itself (a first start).
    """
    live = work / "live"
    if base is None:
        live.mkdir(parents=True)
        state = live / "state"
    else:
        shutil.copytree(base, live, symlinks=True)
        state = live
    disk = fsshim.Disk(live)
    log, marks = work / "fs.log", work / "marks"
    env = fsshim.environment(lib, live, log=log, marks=marks)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, str(WRITER), str(state), str(marks), str(seed), str(ops), prefix,
           "--autocheckpoint", str(autocheckpoint), "--snapshot-every", str(snapshot_every)]
    if synchronous:
        cmd += ["--synchronous", synchronous]
    if checkpoint_every is not None:
        cmd += ["--checkpoint-every", str(checkpoint_every)]
    if snapshot_part:
        cmd += ["--snapshot-part", str(snapshot_part)]
    started = time.perf_counter()
    run = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=timeout)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"writer failed ({run.returncode}):\n{run.stderr[-4000:]}")
    records = fsshim.read_log(log)
    return Recording(records, events_of(records), disk, seconds)


def cut_points(rng: random.Random, rec: Recording, count: int) -> list[int]:
    """``count`` cut points: anywhere, just after an ACK, or just before an fsync."""
    n = len(rec.records)
    acks = [e.pos for e in rec.events if e.line.startswith("ACK")]
    syncs = [i for i, r in enumerate(rec.records) if r.kind == "S"]
    cuts = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.4 and acks:
            k = min(n, rng.choice(acks) + rng.randint(0, 2))
        elif roll < 0.6 and syncs:
            k = rng.choice(syncs)
        else:
            k = rng.randint(0, n)
        cuts.append(k)
    return sorted(cuts)


# -- checking one power-cut state --------------------------------------------------


async def check(image: Path, exp: Expectation) -> Model:
    """Open a power-cut state as ``nfo serve`` would; return which candidate it holds."""
    try:
        ds = await open_datastore(StateDir(image), [])
    except Exception as e:
        raise PowerLossFailure(f"the datastore does not open: {e}") from e
    try:
        got = observed(ds)
        rev = ds.info("running").revision
    finally:
        await ds.close()
    db = StateDir(image).db
    raw = sqlite3.connect(db)
    try:
        verdict = raw.execute("PRAGMA integrity_check").fetchall()
    finally:
        raw.close()
    if verdict != [("ok",)]:
        raise PowerLossFailure(f"integrity_check: {verdict[:5]}")
    for i, cand in enumerate(exp.candidates):
        if got == cand:
            if i == 0 and exp.running_rev is not None and rev != exp.running_rev:
                raise PowerLossFailure(
                    f"running is at revision {rev}, acknowledged {exp.running_rev}")
            return cand
    want = exp.candidates[0]
    lost = sorted(set(want.running) - set(got.running))
    extra = sorted(set(got.running) - set(want.running))
    changed = sorted(n for n in set(got.running) & set(want.running)
                     if got.running[n] != want.running[n])
    raise PowerLossFailure(
        f"{exp.acked} acknowledged writes (in flight: {exp.inflight}); the recovered state "
        f"holds neither: running lacks {lost[:10]}, has extra {extra[:10]}, differs in "
        f"{changed[:10]}; oper {'ok' if got.oper == want.oper else 'differs'}; startup "
        f"{'ok' if got.startup == want.startup else 'differs'}")


# -- the run ----------------------------------------------------------------------


@dataclass
class Figures:
    iterations: int = 0
    recordings: int = 0
    writes_logged: int = 0
    acked: int = 0
    unsynced: int = 0
    """Cuts with written but not yet fsynced data in the state directory."""
    modes: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    record_seconds: float = 0.0
    check_seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.iterations} power cuts over {self.recordings} recorded runs "
                f"({self.writes_logged} logged writes; {self.unsynced} cuts with unsynced "
                f"data; {self.acked} acknowledged writes required in total); modes "
                f"{dict(sorted(self.modes.items()))}; recovered "
                f"{dict(sorted(self.outcomes.items()))}; failures {len(self.failures)}; "
                f"recording {self.record_seconds:.0f} s, checking {self.check_seconds:.0f} s")


async def run(*, seed: int, iterations: int, work: Path, lib: Path, ops: int = 120,
              cuts_per_run: int = 100, synchronous: str = "", keep_going: bool = False,
              modes: dict[str, int] | None = None, progress: bool = False) -> Figures:
    """``iterations`` power cuts, in chained recorded runs of ``ops`` writes each."""
    rng = random.Random(seed)
    figures = Figures()
    base = work / "base-0"
    StateDir(base).ensure()
    base_model = Model()
    gen = 0
    while figures.iterations < iterations:
        gen += 1
        run_dir = work / f"run-{gen}"
        run_dir.mkdir()
        options = {"autocheckpoint": rng.choice([0, 0, 8, 64]),
                   "snapshot_every": rng.choice([0, 5, 23]),
                   # the background checkpoints' fsyncs would hide a writer's own
                   # missing ones: none when another synchronous mode is the subject
                   "checkpoint_every": 0 if synchronous else rng.choice([None, 0.002, 0.002, 0]),
                   "snapshot_part": 0 if synchronous else rng.choice([0, 300])}
        rec = record(lib, base, run_dir, seed=rng.randrange(2**32), ops=ops,
                     prefix=f"g{gen}n", synchronous=synchronous, **options)
        figures.recordings += 1
        figures.record_seconds += rec.seconds
        figures.writes_logged += sum(1 for r in rec.records if r.kind == "W")
        cuts = cut_points(rng, rec, min(cuts_per_run, iterations - figures.iterations))
        chain_at = rng.randrange(len(cuts))
        next_base, next_model = base, base_model
        started = time.perf_counter()
        for j, k in enumerate(cuts):
            while rec.disk.fed < k:
                rec.disk.feed(rec.records[rec.disk.fed])
            weights = modes or MODE_WEIGHTS
            mode = rng.choices(list(weights), weights=list(weights.values()))[0]
            image = run_dir / f"cut-{j}"
            image_seed = rng.randrange(2**32)
            rec.disk.image(image, random.Random(image_seed), mode)
            if j == chain_at:
                pristine = run_dir / "pristine"
                shutil.copytree(image, pristine, symlinks=True)
            exp = expect(base_model, rec.events, k)
            where = (f"seed {seed}, run {gen} ({options}), cut {j} at record {k}/"
                     f"{len(rec.records)}, mode {mode}, image seed {image_seed}")
            figures.iterations += 1
            figures.unsynced += rec.disk.pending_bytes() > 0
            figures.modes[mode] += 1
            figures.acked += exp.acked
            try:
                got = await check(image, exp)
            except PowerLossFailure as e:
                figures.failures.append(f"{where}: {e}")
                if not keep_going:
                    raise PowerLossFailure(f"{where}: {e} (state kept in {image})") from e
                continue
            figures.outcomes["in-flight write kept" if got is not exp.candidates[0]
                             and exp.inflight else "acknowledged writes only"] += 1
            if j == chain_at:
                next_base, next_model = work / f"base-{gen}", got
                pristine.rename(next_base)
            shutil.rmtree(image)
        figures.check_seconds += time.perf_counter() - started
        if next_base != base and base.name != "base-0":
            shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(run_dir / "live", ignore_errors=True)
        shutil.rmtree(run_dir / "pristine", ignore_errors=True)
        (run_dir / "fs.log").unlink(missing_ok=True)
        base, base_model = next_base, next_model
        if progress:
            print(f"run {gen}: {figures.summary()}", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="powerloss", description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=5000, help="power cuts (default 5000)")
    p.add_argument("--seed", type=int, default=None, help="default: random, printed")
    p.add_argument("--ops", type=int, default=120, help="writes per recorded run")
    p.add_argument("--cuts-per-run", type=int, default=100)
    p.add_argument("--synchronous", default="",
                   help="override the storage's PRAGMA synchronous in the writer (to show "
                        "what the check catches, e.g. NORMAL)")
    p.add_argument("--keep-going", action="store_true", help="count failures, do not stop")
    p.add_argument("--work", type=Path, default=None, help="keep run files here")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"powerloss: seed {seed}, {args.iterations} iterations, {args.ops} writes per run",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="nfo-powerloss-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        lib = fsshim.build(work / "lib")
        started = time.perf_counter()
        try:
            figures = asyncio.run(run(
                seed=seed, iterations=args.iterations, work=work, lib=lib, ops=args.ops,
                cuts_per_run=args.cuts_per_run, synchronous=args.synchronous,
                keep_going=args.keep_going, progress=True))
        except PowerLossFailure as e:
            print(f"FAILED: {e}", flush=True)
            return 1
        print(f"done in {time.perf_counter() - started:.0f} s: {figures.summary()}")
        for f in figures.failures[:20]:
            print("FAILURE:", f)
    return 1 if figures.failures else 0


if __name__ == "__main__":
    sys.exit(main())
