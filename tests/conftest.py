"""Shared fixtures: fresh state per test, and no asyncio task may outlive its test."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nfo.datastore import Datastore, SqliteStorage
from nfo.schema import Schema
from tests.etcd.cluster import EtcdCluster
from tests.fuzz.server import ServerProcess
from tests.orchestrator import Child

TEST_YANG = Path(__file__).parent / "datastore" / "yang"


@pytest.fixture(scope="module")
def served() -> Iterator[ServerProcess]:
    """A real ``nfo serve`` on loopback (tests/fuzz/server.py), shared by one module."""
    with ServerProcess() as srv:
        yield srv


@pytest.fixture
def fresh_served() -> Iterator[ServerProcess]:
    """A real ``nfo serve`` of its own for one test (a rollback changes everything)."""
    with ServerProcess() as srv:
        yield srv


@pytest.fixture(scope="session")
def schema() -> Schema:
    """nfo's modules plus the test module (every data shape); read-only, shared."""
    return Schema(extra_dirs=[TEST_YANG])


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nfo.db"


@pytest.fixture(scope="session")
def etcd_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A three-member etcd cluster on loopback (tests/etcd/cluster.py), started on first
    use; a test keeps to keys of its own (a prefix per test)."""
    with EtcdCluster(tmp_path_factory.mktemp("etcd")) as c:
        yield c


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count scrypt computations done by the user store."""
    calls: list[int] = []
    real: Callable[..., bytes] = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


@contextlib.asynccontextmanager
async def started(schema: Schema, db_path: Path) -> AsyncIterator[Datastore]:
    """A datastore on a fresh SQLite file, started, closed when the block ends."""
    d = Datastore.open(schema, SqliteStorage(db_path))
    await d.start()
    try:
        yield d
    finally:
        await d.close()


@pytest.fixture
async def ds(schema: Schema, db_path: Path) -> AsyncIterator[Datastore]:
    async with started(schema, db_path) as d:
        yield d


@pytest.fixture(autouse=True)
async def _no_leaked_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every task a test starts must be finished when its fixtures are torn down."""
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    for t in leaked:
        t.cancel()
    assert not leaked, f"asyncio tasks leaked by {request.node.name}: {leaked}"


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Orchestrator child processes a test starts; killed when it ends."""
    made: list[Child] = []
    try:
        yield made
    finally:
        for c in made:
            c.kill()
