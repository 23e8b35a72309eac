"""A damaged store is refused at start with a clear message, never silently served.

One store (commits, snapshots, operational data, notifications, meta) is built per
module; each test damages a copy of it (truncated at several offsets, a zeroed
header, one byte flipped at seeded random offsets of every page, a row rewritten
behind nfo's back) and opens it as ``nfo serve`` does.  Either the open fails with
:class:`~nfo.errors.StorageCorrupt` naming the file, or everything nfo reads is
exactly what was stored.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore
from nfo.datastore import SqliteStorage
from nfo.errors import StorageCorrupt

REPO = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("NFO_CORRUPTION_SEED", "20240612"))
TABLES = ("meta", "commits", "snapshots", "oper", "notifications", "sqlite_sequence")
PAGE = 4096

Dump = dict[str, list[tuple[object, ...]]]
Store = tuple[Path, Dump]


def doc(*entries: dict[str, object]) -> str:
    return json.dumps({"nfo-instances:nf-instances": {"nf-instance": list(entries)}})


async def _build(state: Path) -> None:
    ds = await open_datastore(StateDir(state), [])
    try:
        s = ds.internal_session("builder")
        for i in range(120):
            await s.edit("running", doc({"name": f"nf{i % 40}", "descriptor": "udp-echo",
                                         "description": f"edit {i} " + "x" * (i % 300),
                                         "parameter": [{"name": "port", "value": str(i + 1)}]}),
                         "json")
            if i == 60:
                ds.snapshot("running")
                await s.copy_config("startup", "running", source_is_datastore=True)
        for i in range(10):
            s.set_oper(doc({"name": f"nf{i}", "state": {"oper-status": "running",
                                                        "attempts": i}}), "json", owner="wm")
        ds.storage.set_meta("installation-id", "nfo-test")
    finally:
        await ds.close()


def dump(db: Path) -> Dump:
    raw = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {t: raw.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}
    finally:
        raw.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    state = tmp_path_factory.mktemp("store") / "state"
    asyncio.run(_build(state))
    db = StateDir(state).db
    assert not Path(f"{db}-wal").exists()
    return state, dump(db)


def damaged_copy(store: tuple[Path, object], dest: Path) -> Path:
    shutil.copytree(store[0], dest)
    return StateDir(dest).db


async def refused_or_intact(state: Path, original: Dump) -> bool:
    """True if nfo refused the store (clearly), False if it served exactly the original."""
    db = StateDir(state).db
    try:
        ds = await open_datastore(StateDir(state), [])
    except StorageCorrupt as e:
        assert str(db) in e.message and "damaged" in e.message, e.message
        assert "backup" in e.message, e.message
        return True
    try:
        ds.history("running", 1000)
        ds.history("startup", 1000)
        list(ds.storage.notifications())
    finally:
        await ds.close()
    assert dump(db) == original, "a damaged store was served"
    return False


@pytest.mark.parametrize("where", ["zero", "50", "100", "page", "half", "last-page",
                                   "last-bytes"])
async def test_truncated_store(tmp_path: Path, store: Store, where: str) -> None:
    db = damaged_copy(store, tmp_path / "state")
    size = db.stat().st_size
    at = {"zero": 0, "50": 50, "100": 100, "page": PAGE, "half": size // 2 // PAGE * PAGE,
          "last-page": size - PAGE, "last-bytes": size - 100}[where]
    os.truncate(db, at)
    refused = await refused_or_intact(tmp_path / "state", store[1])
    if where != "last-bytes":  # the last page's tail may be unused space
        assert refused


async def test_zeroed_header(tmp_path: Path, store: Store) -> None:
    db = damaged_copy(store, tmp_path / "state")
    with db.open("r+b") as f:
        f.write(bytes(100))
    assert await refused_or_intact(tmp_path / "state", store[1])


async def test_a_flipped_byte_in_any_page(tmp_path: Path, store: Store) -> None:
    rng = random.Random(SEED)
    pages = StateDir(store[0]).db.stat().st_size // PAGE
    refused = served = 0
    for page in range(pages):
        for _ in range(2):
            state = tmp_path / f"p{page}-{refused + served}"
            db = damaged_copy(store, state)
            at = page * PAGE + rng.randrange(PAGE)
            with db.open("r+b") as f:
                f.seek(at)
                byte = f.read(1)[0]
                f.seek(at)
                f.write(bytes([byte ^ rng.randrange(1, 256)]))
            if await refused_or_intact(state, store[1]):
                refused += 1
            else:
                served += 1
            shutil.rmtree(state)
    assert refused > pages // 2, (refused, served)


async def test_a_row_changed_behind_nfos_back(tmp_path: Path, store: Store) -> None:
    changes = [
        ("commits", "UPDATE commits SET payload = payload || ' '"
                    " WHERE revision = (SELECT MAX(revision) FROM commits)"),
        # not in the crc, but must agree with the payload
        ("commits", "UPDATE commits SET size = size - 12"
                    " WHERE revision = (SELECT MAX(revision) FROM commits)"),
        ("snapshots", "UPDATE snapshots SET revision = revision - 1"),
        ("oper", "UPDATE oper SET content = replace(content, '3', '4')"),
        ("meta", "UPDATE meta SET value = 'other'"),
        ("notifications", "UPDATE notifications SET timestamp = 0 WHERE seq = 3"),
        # no checksum: only a value below the revisions in use is found
        ("revision", "UPDATE sqlite_sequence SET seq = seq - 1 WHERE name = 'commits'"),
    ]
    for k, (table, change) in enumerate(changes):
        state = tmp_path / f"{k}-{table}"
        db = damaged_copy(store, state)
        raw = sqlite3.connect(db)
        with raw:
            assert raw.execute(change).rowcount
        raw.close()
        with pytest.raises(StorageCorrupt, match=f"{table}.*(checksum|in use)"):
            SqliteStorage(db)


def test_an_index_out_of_step_with_its_table_is_refused(tmp_path: Path, store: Store) -> None:
    """A damaged index whose table rows all still match their checksums: only SQLite's
    own check (run in a thread of its own while the rows are checked) finds it."""
    db = damaged_copy(store, tmp_path / "state")
    raw = sqlite3.connect(db)
    name, root = raw.execute("SELECT name, rootpage FROM sqlite_master WHERE type = 'index'"
                             " AND sql IS NOT NULL ORDER BY rootpage LIMIT 1").fetchone()
    raw.close()
    at = (root - 1) * PAGE + PAGE - 1   # the last byte of the last cell: a rowid
    with db.open("r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ 0x01]))
    with pytest.raises(StorageCorrupt, match=f"damaged .*{name}"):
        SqliteStorage(db)


async def test_damage_while_serving_is_not_served(tmp_path: Path, store: Store) -> None:
    db = damaged_copy(store, tmp_path / "state")
    ds = await open_datastore(StateDir(tmp_path / "state"), [])
    try:
        oldest = ds.history("running", 1000)[-1].revision
        raw = sqlite3.connect(db)
        with raw:
            raw.execute("UPDATE commits SET payload = '[]' WHERE revision = ?", (oldest,))
        raw.close()
        with pytest.raises(StorageCorrupt, match=f"commit {oldest} does not match"):
            ds.history("running", 1000)
    finally:
        await ds.close()


def test_nfo_serve_refuses_a_damaged_store(tmp_path: Path, store: Store) -> None:
    db = damaged_copy(store, tmp_path / "state")
    os.truncate(db, db.stat().st_size // 2)
    run = subprocess.run([sys.executable, "-m", "nfo", "--state-dir", str(tmp_path / "state"),
                          "serve", "--restconf", "off", "--netconf", "off"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr
    assert f"nfo: error: operation-failed: storage: cannot open {db}: it is damaged" in \
        run.stderr, run.stderr
    assert "restore the state directory from a backup" in run.stderr
    assert "serving" not in run.stdout


def test_an_empty_store_file_is_not_a_fresh_start(tmp_path: Path) -> None:
    db = tmp_path / "nfo.db"
    db.touch()
    with pytest.raises(StorageCorrupt, match="the file is empty"):
        SqliteStorage(db)
    db.unlink()
    SqliteStorage(db).close()  # missing: created, whole, under its own name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nfo.db"]
    assert db.stat().st_size > 0
