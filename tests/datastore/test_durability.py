"""Crash durability of the datastore: real child processes, real SQLite files, SIGKILL.

Every scenario runs ``_durability_child.py`` against a state directory in
``tmp_path``, kills it with SIGKILL at some moment and then reopens the state
in this process with ``open_datastore`` (what ``nfo serve`` does on restart).
The child prints ``BEGIN <op>`` before and ``ACK <revision> <op>`` after each
write, so the parent knows exactly what was acknowledged and which single
write may have been in flight.

Random choices come from one seed, printed in every failure message; set
``NFO_DURABILITY_SEED`` to replay a run.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore
from nfo.datastore import Datastore

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("_durability_child.py")
SEED = int(os.environ.get("NFO_DURABILITY_SEED", random.randrange(2**32)))
LINE_TIMEOUT = 20.0


# -- plumbing -------------------------------------------------------------------


class Child:
    """One ``_durability_child.py`` process whose stdout lines are read by a thread."""

    def __init__(self, state: Path, mode: str, *args: str) -> None:
        self.stderr_path = state.parent / f"{state.name}-{mode}-{time.monotonic_ns()}.err"
        pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(CHILD), str(state), mode, *args],
                stdout=subprocess.PIPE, stderr=err, cwd=REPO,
                env={**os.environ, "PYTHONPATH": pythonpath},
            )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self._lines.put(raw)
        self._lines.put(None)

    def _stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def next(self, timeout: float = LINE_TIMEOUT) -> str:
        """The next complete line; fails if the child exits or stays silent."""
        try:
            raw = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"child silent for {timeout}s (seed {SEED}):\n"
                                 f"{self._stderr()}") from None
        if raw is None or not raw.endswith(b"\n"):
            self.proc.wait()
            raise AssertionError(f"child exited ({self.proc.returncode}) early "
                                 f"(seed {SEED}):\n{self._stderr()}")
        return raw.decode().rstrip("\n")

    def expect(self, word: str) -> str:
        line = self.next()
        assert line.split()[0] == word, (line, SEED)
        return line

    def kill(self) -> list[str]:
        """SIGKILL now; returns the complete lines printed before the kill landed."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        assert self.proc.returncode == -signal.SIGKILL, (self.proc.returncode, self._stderr())
        self._reader.join(timeout=10)
        rest = []
        while True:
            raw = self._lines.get(timeout=10)
            if raw is None:
                break
            if raw.endswith(b"\n"):  # a torn last line was never acknowledged
                rest.append(raw.decode().rstrip("\n"))
        return rest

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@asynccontextmanager
async def reopened(state: Path) -> AsyncIterator[Datastore]:
    """Restart as ``nfo serve`` would (its connection recovers the WAL), check the file."""
    ds = await open_datastore(StateDir(state), [])
    try:
        raw = sqlite3.connect(StateDir(state).db)
        try:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            raw.close()
        yield ds
    finally:
        await ds.close()


@asynccontextmanager
async def reopened_fresh(state: Path) -> AsyncIterator[Datastore]:
    """First start of a new state directory (seeds the demo catalog)."""
    ds = await open_datastore(StateDir(state), [])
    try:
        yield ds
    finally:
        await ds.close()


def doc(*entries: dict[str, object]) -> str:
    return json.dumps({"nfo-instances:nf-instances": {"nf-instance": list(entries)}})


def instance(name: str, port: str) -> dict[str, object]:
    return {"name": name, "descriptor": "udp-echo",
            "parameter": [{"name": "port", "value": port}]}


def read_json(ds: Datastore, datastore: str, xpath: str | None = None) -> dict[str, Any]:
    t = ds.get(datastore, xpath)
    try:
        text = t.print("json")
    finally:
        t.free()
    return json.loads(text) if text and text.strip() else {}


def entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    return data.get("nfo-instances:nf-instances", {}).get("nf-instance", [])


def catalog_intact(data: dict[str, Any]) -> None:
    assert [v["name"] for v in data["nfo-vim:vims"]["vim"]] == ["local"]
    ids = [d["id"] for d in data["nfo-catalog:catalog"]["nf-descriptor"]]
    assert ids == ["udp-echo", "netconf-router"]


# -- 1. kill in the middle of a stream of commits --------------------------------

Model = dict[str, dict[str, str | None]]


def apply_op(model: Model, op: list[str]) -> None:
    kind, name = op[0], op[1]
    if kind == "create":
        assert name not in model, op
        model[name] = {"port": op[2], "admin": "enabled", "desc": None}
    elif kind == "modify":
        assert name in model, op
        model[name] = {**model[name], "admin": op[2], "desc": op[3]}
    elif kind == "delete":
        assert name in model, op
        del model[name]
    else:
        raise AssertionError(op)


def recovered_instances(data: dict[str, Any]) -> Model:
    """Running's instances as a model; fails on anything not wholly written."""
    got: Model = {}
    for e in entries(data):
        assert e["descriptor"] == "udp-echo", e
        params = e.get("parameter", [])
        assert len(params) == 1 and params[0]["name"] == "port", f"half-applied: {e}"
        assert set(e) <= {"name", "descriptor", "parameter", "admin-state", "description"}, e
        got[e["name"]] = {"port": params[0]["value"], "admin": e.get("admin-state", "enabled"),
                          "desc": e.get("description")}
    return got


def parse_lines(lines: list[str], model: Model, last_rev: int) -> tuple[int, list[str] | None]:
    """Applies every ACK to ``model``; returns the last revision and the op left in flight."""
    inflight: list[str] | None = None
    for line in lines:
        word, *rest = line.split()
        if word == "BEGIN":
            assert inflight is None, (line, SEED)
            inflight = rest
        elif word == "ACK":
            rev, op = int(rest[0]), rest[1:]
            assert op == inflight, (line, inflight, SEED)
            assert rev > last_rev, (line, last_rev, SEED)
            apply_op(model, op)
            last_rev, inflight = rev, None
        else:
            assert word == "OPEN", (line, SEED)
    return last_rev, inflight


async def test_sigkill_mid_commit_stream_keeps_exactly_the_acknowledged_edits(
        tmp_path: Path) -> None:
    rng = random.Random(SEED)
    state = tmp_path / "state"
    model: Model = {}
    last_rev = 0
    applied_inflight = 0
    for it in range(10):
        start = it * 100_000
        child = Child(state, "churn", str(start), str(rng.randrange(2**32)))
        try:
            lines = [child.expect("OPEN")]
            wanted = rng.randint(15, 220)
            acks = 0
            while acks < wanted:
                line = child.next()
                lines.append(line)
                acks += line.startswith("ACK ")
            delay = rng.choice([0.0, 0.0, rng.uniform(0, 0.002), rng.uniform(0, 0.01)])
            if delay:
                time.sleep(delay)
            lines += child.kill()
        finally:
            child.close()
        last_rev, inflight = parse_lines(lines, model, last_rev)

        async with reopened(state) as ds:
            data = read_json(ds, "running")
            catalog_intact(data)
            got = recovered_instances(data)
            revision = ds.info("running").revision
            ctx = f"iteration {it}, seed {SEED}, in flight {inflight}, last ack {last_rev}"
            assert revision >= last_rev, ctx
            if got != model:
                assert inflight is not None, f"acknowledged state lost: {ctx}"
                with_op = copy.deepcopy(model)
                apply_op(with_op, inflight)
                assert got == with_op, f"neither before nor after the in-flight op: {ctx}"
                assert revision > last_rev, ctx
                model = with_op
                applied_inflight += 1
            last_rev = revision

            # The restarted datastore takes new edits, at a fresh revision.
            name = f"nf{start + 99_999}"
            s = ds.internal_session("parent")
            await s.edit("running", doc(instance(name, "9")), "json")
            assert ds.info("running").revision > last_rev
            last_rev = ds.info("running").revision
            apply_op(model, ["create", name, "9"])
            assert recovered_instances(read_json(ds, "running")) == model

    async with reopened(state) as ds:
        assert recovered_instances(read_json(ds, "running")) == model
        assert ds.info("running").revision == last_rev
    print(f"churn: seed {SEED}, revision {last_rev}, {applied_inflight}/10 kills landed "
          "after an unacknowledged commit was stored")


async def test_sigkill_during_private_candidate_commits_loses_nothing_acknowledged(
        tmp_path: Path) -> None:
    """Commits from private candidates (rebased on another session's commit each time)
    killed at random points: every acknowledged one is there, with its comment."""
    rng = random.Random(SEED)
    state = tmp_path / "state"
    model: Model = {}
    last_rev = 0
    for it in range(4):
        child = Child(state, "private", str(it * 100_000))
        try:
            lines = [child.expect("OPEN")]
            wanted = rng.randint(10, 80)
            while sum(line.startswith("ACK ") for line in lines) < wanted:
                lines.append(child.next())
            time.sleep(rng.choice([0.0, rng.uniform(0, 0.005)]))
            lines += child.kill()
        finally:
            child.close()
        last_rev, inflight = parse_lines(lines, model, last_rev)
        async with reopened(state) as ds:
            got = recovered_instances(read_json(ds, "running"))
            ctx = f"iteration {it}, seed {SEED}, in flight {inflight}"
            if got != model:
                assert inflight is not None, f"acknowledged state lost: {ctx}"
                apply_op(model, inflight)
                assert got == model, ctx
            acked = {line.split()[1]: line.split()[3] for line in lines
                     if line.startswith("ACK ")}
            labels = {h.revision: h.label for h in ds.history("running", 1000)}
            mine = [(int(rev), name) for rev, name in acked.items()
                    if int(name[2:]) % 2 == 0]
            assert mine and mine[-1][0] in labels, ctx  # older ones may be compacted
            for rev, name in mine:
                if rev in labels:
                    assert labels[rev] == f"ui adds {name}", ctx
            last_rev = ds.info("running").revision


# -- 2. kill during one large commit ---------------------------------------------

BULK = 5000


async def test_sigkill_during_bulk_commit_is_all_or_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    state = tmp_path / "state"
    outcomes = []
    async with reopened_fresh(state) as ds:
        last_rev = ds.info("running").revision  # the demo catalog
    # Round 0 measures how long the edit takes from START to ACK (and is killed
    # after it), round 1 kills early in the edit, later rounds bisect the kill
    # moment towards the end of the edit, where the commit may be stored but not
    # yet acknowledged.
    duration = 0.0
    lo, hi = 0.75, 1.1
    for it in range(5):
        prefix = f"b{it}x"
        child = Child(state, "bulk", prefix, str(BULK))
        try:
            child.expect("OPEN")
            child.expect("START")
            if it == 0:
                started = time.monotonic()
                rest = [child.expect("ACK")]
                duration = time.monotonic() - started
                rest += child.kill()
            else:
                frac = rng.uniform(0.0, 0.5) if it == 1 else (lo + hi) / 2
                time.sleep(duration * frac)
                rest = child.kill()
        finally:
            child.close()
        acked = [line for line in rest if line.startswith("ACK ")]

        async with reopened(state) as ds:
            data = read_json(ds, "running")
            catalog_intact(data)
            names = [e["name"] for e in entries(data)]
            mine = [n for n in names if n.startswith(prefix)]
            ctx = f"iteration {it}, seed {SEED}, acked {acked}, {len(mine)} present"
            outcomes.append(("acked" if acked else "unacked", len(mine)))
            if it >= 2:
                if acked:
                    hi = (lo + hi) / 2
                elif not mine:
                    lo = (lo + hi) / 2
            assert names == mine, ctx  # earlier iterations' instances were removed
            assert len(mine) in (0, BULK), ctx
            if acked:
                assert len(mine) == BULK, ctx
                assert ds.info("running").revision >= int(acked[0].split()[1]), ctx
            if mine:
                assert sorted(mine) == sorted(f"{prefix}{i}" for i in range(BULK)), ctx
                assert all(e["parameter"] == [{"name": "port", "value": str(1 + int(
                    e["name"][len(prefix):]) % 65535)}] for e in entries(data)), ctx
                assert ds.info("running").revision > last_rev, ctx
            else:
                assert ds.info("running").revision == last_rev, ctx
            s = ds.internal_session("parent")
            if mine:
                await s.edit("running", json.dumps({"nfo-instances:nf-instances": {
                    "@": {"ietf-netconf:operation": "remove"}}}), "json")
            await s.edit("running", doc(instance("after", "7")), "json")
            await s.edit("running", doc({"@": {"ietf-netconf:operation": "delete"},
                                         "name": "after"}), "json")
            assert entries(read_json(ds, "running")) == []
            last_rev = ds.info("running").revision
    print(f"bulk: seed {SEED}, edit takes {duration:.3f}s, outcomes {outcomes}")


# -- 3. operational data ---------------------------------------------------------

OPER_NAMES = ["o0", "o1", "o2"]
STATUSES = ("pending", "initializing", "running", "failed")


def oper_expected(owner: str, step: int) -> dict[str, object]:
    if owner == "wm":
        return {"oper-status": STATUSES[step % 4], "attempts": step}
    return {"vim-resource-id": f"pid-{step}"}


async def test_acknowledged_oper_pushes_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(SEED + 3)
    state = tmp_path / "state"
    async with reopened_fresh(state) as ds:
        s = ds.internal_session("parent")
        await s.edit("running", doc(*(instance(n, str(i + 1))
                                      for i, n in enumerate(OPER_NAMES))), "json")
    latest: dict[tuple[str, str], int] = {}
    for it in range(3):
        child = Child(state, "oper", ",".join(OPER_NAMES))
        try:
            lines = [child.expect("OPEN")]
            wanted = rng.randint(8, 150)  # >= 6: every owner/instance pair
            acks = 0
            while acks < wanted:
                line = child.next()
                lines.append(line)
                acks += line.startswith("ACK ")
            delay = rng.choice([0.0, rng.uniform(0, 0.003)])
            if delay:
                time.sleep(delay)
            lines += child.kill()
        finally:
            child.close()
        inflight: tuple[str, str, int] | None = None
        for line in lines[1:]:
            word, *rest = line.split()
            if word == "BEGIN":
                _, owner, name, step = rest
                inflight = (owner, name, int(step))
            else:
                _, _, owner, name, step = rest
                assert inflight == (owner, name, int(step)), (line, SEED)
                latest[(owner, name)] = int(step)
                inflight = None

        async with reopened(state) as ds:
            got = {e["name"]: e.get("state", {})
                   for e in entries(read_json(ds, "operational", "/nfo-instances:nf-instances"))}
            assert sorted(got) == OPER_NAMES
            for name in OPER_NAMES:
                have: dict[str, object] = {}
                for owner in ("wm", "drv"):
                    if (owner, name) in latest:
                        have.update(oper_expected(owner, latest[(owner, name)]))
                acceptable = [have]
                if inflight is not None and inflight[1] == name:
                    acceptable.append({**have, **oper_expected(inflight[0], inflight[2])})
                assert got[name] in acceptable, (name, got[name], acceptable, it, SEED)
                if got[name] != have:
                    assert inflight is not None
                    latest[(inflight[0], inflight[1])] = inflight[2]
    assert len(latest) == 2 * len(OPER_NAMES)


# -- 4. an unconfirmed confirmed commit ------------------------------------------


@pytest.mark.parametrize("when, after", [
    ("after_ack", 0),
    ("in_flight", 0),
    # 60 more commits with snapshots every 17 (the same happens with the default
    # thresholds after ~3 MiB of commit log) prune the snapshot taken before.
    pytest.param("after_ack", 60, id="after_ack-then-snapshots"),
])
async def test_unconfirmed_commit_is_rolled_back_after_sigkill(
        tmp_path: Path, when: str, after: int) -> None:
    rng = random.Random(SEED + 4)
    state = tmp_path / "state"
    async with reopened_fresh(state) as ds:
        s = ds.internal_session("parent")
        await s.edit("running", doc(instance("c0", "1"), instance("c1", "2")), "json")
        await s.edit("running", doc({"name": "c1", "admin-state": "disabled"}), "json")
        before = read_json(ds, "running")
        before_rev = ds.info("running").revision

    child = Child(state, "confirmed", "c-new", str(after))
    try:
        child.expect("OPEN")
        child.expect("START")
        if when == "after_ack":
            ack = child.expect("ACK")
            assert int(ack.split()[1]) > before_rev
            for _ in range(after):
                child.expect("ACK")
            child.expect("DONE")
        else:
            time.sleep(rng.uniform(0, 0.02))
        child.kill()
    finally:
        child.close()

    async with reopened(state) as ds:
        assert read_json(ds, "running") == before, SEED
        assert not ds.storage.get_meta("confirmed-commit")
        assert read_json(ds, "candidate") == before
        rev = ds.info("running").revision
    # A second restart must neither revert again nor lose the rollback.
    async with reopened(state) as ds:
        assert read_json(ds, "running") == before
        assert ds.info("running").revision == rev
        # Nothing is pending any more: an ordinary commit goes through and stays.
        s = ds.internal_session("parent")
        await s.edit("candidate", doc(instance("c2", "3")), "json")
        await s.commit()
        assert "c2" in [e["name"] for e in entries(read_json(ds, "running"))]
    async with reopened(state) as ds:
        names = [e["name"] for e in entries(read_json(ds, "running"))]
        assert names == ["c0", "c1", "c2"]


# -- 5. locks do not outlive the process ------------------------------------------


async def test_no_lock_survives_sigkill(tmp_path: Path) -> None:
    state = tmp_path / "state"
    child = Child(state, "lock")
    try:
        child.expect("OPEN")
        child.expect("LOCKED")
        child.kill()
    finally:
        child.close()
    async with reopened(state) as ds:
        other = ds.internal_session("other")
        await other.edit("running", doc(instance("l0", "1")), "json")
        s = ds.internal_session("after")
        s.lock("running")
        s.lock("candidate")
        await s.edit("running", doc(instance("l1", "2")), "json")
        s.unlock("candidate")
        s.unlock("running")
        assert [e["name"] for e in entries(read_json(ds, "running"))] == ["l0", "l1"]


# -- regressions: bugs found by these tests, now fixed ----------------------------


@pytest.mark.parametrize("operation", ["remove", "delete"])
async def test_container_delete_survives_restart(tmp_path: Path, operation: str) -> None:
    state = tmp_path / "state"
    async with reopened_fresh(state) as ds:
        s = ds.internal_session("parent")
        await s.edit("running", doc(instance("d0", "1"), instance("d1", "2")), "json")
        await s.edit("running", json.dumps({"nfo-instances:nf-instances": {
            "@": {"ietf-netconf:operation": operation}}}), "json")
        assert entries(read_json(ds, "running")) == []
        acked = ds.info("running").revision
    async with reopened(state) as ds:
        assert ds.info("running").revision == acked
        assert entries(read_json(ds, "running")) == [], "an acknowledged delete was undone"


async def test_deleting_the_first_and_another_entry_in_one_edit_returns(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with reopened_fresh(state) as ds:
        s = ds.internal_session("parent")
        await s.edit("running", doc(*(instance(f"e{i}", str(i + 1)) for i in range(4))), "json")
    child = Child(state, "multidelete", "e0,e2")
    try:
        child.expect("OPEN")
        child.expect("BEGIN")
        try:
            child.expect("ACK")
            acked = True
        except AssertionError:  # today: the child dies of SIGSEGV instead
            acked = False
    finally:
        child.close()
    async with reopened(state) as ds:
        # Whatever happened to the child, the delete is all-or-nothing on restart.
        names = [e["name"] for e in entries(read_json(ds, "running"))]
        assert names in ((["e1", "e3"],) if acked else (["e0", "e1", "e2", "e3"],
                                                         ["e1", "e3"])), names
        await ds.internal_session("parent").edit("running", doc(instance("e4", "5")), "json")
    assert acked, f"child exited with {child.proc.returncode} before acknowledging"
