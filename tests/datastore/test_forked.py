"""Snapshots printed by a forked child (nfo.datastore.forked): what the child printed is
running exactly as it was when it was forked, commits made meanwhile are replayed after
it, and a child that fails, or a close or SIGKILL while it prints, loses nothing and
leaves no process behind.  Real libyang, real SQLite files, real fork(2)."""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import Datastore, SqliteStorage
from nfo.datastore import forked as forked_module
from nfo.datastore.storage import sqlite as sqlite_module
from nfo.schema import Schema, Tree
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
TEST_YANG = REPO / "tests" / "datastore" / "yang"


def things(*names: str) -> str:
    return json.dumps({"nfo-test:top": {"thing": [
        {"id": n, "label": f"label of {n}", "needed": f"n-{n}"} for n in names]}})


def running(ds: Datastore) -> str:
    with ds.get("running") as t:
        return t.print("json")


@pytest.fixture
def every_few(monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot every 5 commits, each after the first printed by a child."""
    monkeypatch.setattr(Datastore, "snapshot_every_commits", 5)
    monkeypatch.setattr(Datastore, "snapshot_in_child_bytes", 1)


async def first_snapshot_then_due(ds: Datastore) -> int:
    """Five commits and the first snapshot (in process: its size says "fork" from now
    on), then five more: a snapshot is due again; the revision reached."""
    s = ds.internal_session("w")
    for k in range(5):
        await s.edit("running", things(f"a{k}"), "json")
    await wait_for(lambda: ds.storage.snapshot_at("running", 10**9) is not None, 30)
    for k in range(5):
        await s.edit("running", things(f"b{k}"), "json")
    await s.close()
    return ds.info("running").revision


def assert_snapshot_is_running_at(ds: Datastore, revision: int) -> None:
    """The newest snapshot is running exactly as it was at ``revision``."""
    snap = ds.storage.snapshot_at("running", 10**9)
    assert snap is not None and snap.revision == revision
    with ds.state_at("running", revision) as then:
        assert json.loads(snap.content) == json.loads(then.print("json"))


async def assert_reopened_holds(schema: Schema, db_path: Path, want: str, name: str) -> None:
    """Opened again, the store serves ``want`` (which holds the thing ``name``)."""
    again = Datastore.open(schema, SqliteStorage(db_path))
    try:
        assert json.loads(running(again)) == json.loads(want)
        assert name in running(again)
    finally:
        await again.close()


async def test_the_child_prints_running_as_it_was_at_the_fork(
        schema: Schema, db_path: Path, every_few: None) -> None:
    ds = Datastore.open(schema, SqliteStorage(db_path))
    await ds.start()
    forked_at = await first_snapshot_then_due(ds)
    await wait_for(lambda: "running" in ds._tx._children or ds._tx.snapshots_in_child, 30)
    child = ds._tx._children.get("running")
    s = ds.internal_session("w")
    for k in range(3):  # committed while the child prints (or after it)
        await s.edit("running", things(f"c{k}"), "json")
    await wait_for(lambda: ds._tx.snapshots_in_child >= 1, 30)
    if child is not None:
        with pytest.raises(ChildProcessError):  # reaped
            os.waitpid(child.pid, os.WNOHANG)
    assert_snapshot_is_running_at(ds, forked_at)
    want = running(ds)
    await ds.close()
    await assert_reopened_holds(schema, db_path, want, "c2")


async def test_what_the_child_printed_is_written_a_part_per_turn_between_commits(
        schema: Schema, db_path: Path, every_few: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "SNAPSHOT_PART", 4)   # hundreds of parts
    ds = Datastore.open(schema, SqliteStorage(db_path))
    await ds.start()
    try:
        forked_at = await first_snapshot_then_due(ds)
        await wait_for(lambda: "running" in ds._tx._writing, 30, every=0)
        s = ds.internal_session("w")
        await s.edit("running", things("between"), "json")   # committed between two parts
        assert "running" in ds._tx._writing
        assert ds.storage.snapshot_at("running", 10**9).revision < forked_at  # not whole yet
        await s.close()
        await wait_for(lambda: ds._tx.snapshots_in_child >= 1, 30)
        assert_snapshot_is_running_at(ds, forked_at)
        want = running(ds)
    finally:
        await ds.close()
    await assert_reopened_holds(schema, db_path, want, "between")


async def test_close_while_the_parts_are_written_snapshots_in_process(
        schema: Schema, db_path: Path, every_few: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "SNAPSHOT_PART", 4)
    ds = Datastore.open(schema, SqliteStorage(db_path))
    await ds.start()
    forked_at = await first_snapshot_then_due(ds)
    await wait_for(lambda: "running" in ds._tx._writing, 30, every=0)
    want = running(ds)
    await ds.close()
    with sqlite3.connect(db_path) as raw:
        stray = raw.execute(
            "SELECT COUNT(*) FROM snapshot_parts AS p WHERE NOT EXISTS (SELECT 1 FROM"
            " snapshots AS s WHERE s.datastore = p.datastore AND s.revision = p.revision"
            " AND s.parts > 0)").fetchone()[0]
    raw.close()
    assert stray == 0
    again = Datastore.open(schema, SqliteStorage(db_path))
    try:
        snap = again.storage.snapshot_at("running", 10**9)
        assert snap is not None and snap.revision == forked_at
        assert json.loads(running(again)) == json.loads(want)
    finally:
        await again.close()


async def test_a_child_that_fails_is_replaced_by_the_print_in_process(
        schema: Schema, db_path: Path, every_few: None, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_: object) -> None:  # runs in the child
        os._exit(3)

    monkeypatch.setattr(forked_module, "_child", broken)
    caplog.set_level(logging.WARNING, "nfo.datastore.forked")
    ds = Datastore.open(schema, SqliteStorage(db_path))
    await ds.start()
    try:
        revision = await first_snapshot_then_due(ds)

        def snapshot_revision() -> int | None:
            snap = ds.storage.snapshot_at("running", 10**9)
            return None if snap is None else snap.revision

        await wait_for(lambda: snapshot_revision() == revision, 30)
        assert ds._tx.snapshots_in_child == 0 and not ds._tx._children
        assert any("ended with status 3" in r.getMessage() for r in caplog.records)
    finally:
        await ds.close()


async def test_close_while_the_child_prints_kills_it_and_snapshots_in_process(
        schema: Schema, db_path: Path, every_few: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(tree: object, r: int, w: int) -> None:  # runs in the child
        time.sleep(30)
        os._exit(0)

    monkeypatch.setattr(forked_module, "_child", slow)
    ds = Datastore.open(schema, SqliteStorage(db_path))
    await ds.start()
    revision = await first_snapshot_then_due(ds)
    await wait_for(lambda: "running" in ds._tx._children, 30)
    pid = ds._tx._children["running"].pid
    await ds.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    with SqliteStorage(db_path) as st:
        snap = st.snapshot_at("running", 10**9)
        assert snap is not None and snap.revision == revision


async def test_the_child_keeps_none_of_the_parents_connections(
        schema: Schema, db_path: Path, every_few: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection the server closes while a child prints is closed at once: the child
    holds no copy of it."""
    ds = Datastore.open(schema, SqliteStorage(db_path))
    await ds.start()
    mine, peer = socket.socketpair()
    try:
        s = ds.internal_session("w")
        for k in range(5):
            await s.edit("running", things(f"a{k}"), "json")
        await wait_for(lambda: ds.storage.snapshot_at("running", 10**9) is not None, 30)
        real = Tree.print

        def slow(self: Tree, *a: Any, **kw: Any) -> str:  # the child's print
            time.sleep(5)
            return real(self, *a, **kw)

        monkeypatch.setattr(Tree, "print", slow)
        for k in range(5):
            await s.edit("running", things(f"b{k}"), "json")
        await wait_for(lambda: "running" in ds._tx._children, 30)
        mine.close()
        peer.settimeout(2)
        assert peer.recv(1) == b""  # end of stream while the child still lives
        assert "running" in ds._tx._children
        monkeypatch.undo()
        await s.close()
    finally:
        mine.close()
        peer.close()
        await ds.close()


CHILD_SCRIPT = """
import asyncio, json, os, sys, time
from pathlib import Path
from nfo.datastore import Datastore, SqliteStorage, forked
from nfo.schema import Schema

slow_child = forked._child
def child(tree, r, w):
    os.close(r)
    print("CHILD", os.getpid(), flush=True)
    time.sleep(1.0)
    slow_child(tree, os.open(os.devnull, os.O_RDONLY), w)
forked._child = child

async def main():
    Datastore.snapshot_every_commits = 5
    Datastore.snapshot_in_child_bytes = 1
    schema = Schema(extra_dirs=[Path(sys.argv[2])])
    ds = Datastore.open(schema, SqliteStorage(sys.argv[1]))
    await ds.start()
    s = ds.internal_session("w")
    for k in range(10):
        await s.edit("running", json.dumps({"nfo-test:top": {"thing": [
            {"id": f"a{k}", "label": f"x{k}", "needed": "n"}]}}), "json")
        print("ACK", ds.info("running").revision, flush=True)
        if k == 4:  # the first snapshot, in process; the second is forked
            while ds.storage.snapshot_at("running", 10**9) is None:
                await asyncio.sleep(0.01)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_sigkill_of_the_server_while_the_child_prints_leaves_no_child(
        db_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(CHILD_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(db_path), str(TEST_YANG)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(x.startswith("CHILD") for x in lines):
            line = proc.stdout.readline()
            assert line, f"the server ended early: {lines}"
            lines.append(line.strip())
        child = int(next(x for x in lines if x.startswith("CHILD")).split()[1])
        acked = [int(x.split()[1]) for x in lines if x.startswith("ACK")]
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 20
        while _alive(child):
            assert time.monotonic() < deadline, "the snapshot child outlived its server"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    with SqliteStorage(db_path) as st:
        state = st.load()
        assert state.last_revision >= max(acked)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not us counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
    except ProcessLookupError:  # pragma: no cover
        return False

