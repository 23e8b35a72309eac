"""The datastore's tests run on each storage backend: the embedded SQLite file and an
etcd cluster (three members on loopback, a key prefix per test).

``storage`` is the store the test's datastore (``ds``) opens; ``reopen()`` opens
another store on the same stored state (the same SQLite file, or the same etcd prefix),
as a restart would; ``stored_bytes()`` is every byte the backend holds of that state."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from nfo.datastore import Datastore, SqliteStorage, Storage
from nfo.datastore.storage.etcd import EtcdStorage
from nfo.datastore.storage.etcd_client import EtcdClient
from nfo.schema import Schema


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend under test."""
    return str(request.param)


@pytest.fixture
def store_prefix() -> str:
    """The etcd key prefix of this test's stored state (keys of its own in the shared
    cluster); shared by ``storage`` and every store ``reopen()`` opens."""
    return f"/t/{uuid.uuid4().hex}/"


@pytest.fixture
def etcd_endpoints(request: pytest.FixtureRequest, backend: str) -> list[str]:
    """The shared etcd cluster's endpoints (started on first use); none for SQLite."""
    if backend != "etcd":
        return []
    return list(request.getfixturevalue("etcd_shared").endpoints)


@pytest.fixture
def reopen(backend: str, db_path: Path, store_prefix: str,
           etcd_endpoints: list[str]) -> Callable[[], Storage]:
    """Opens another store on the stored state of ``storage`` (a new object per call;
    the datastore given it closes it, or close it yourself)."""
    if backend == "sqlite":
        return lambda: SqliteStorage(db_path)
    return lambda: EtcdStorage(etcd_endpoints, prefix=store_prefix)


@pytest.fixture
def storage(reopen: Callable[[], Storage]) -> Storage:
    """A fresh store of the backend under test (the datastore closes it)."""
    return reopen()


@pytest.fixture
def stored_bytes(backend: str, db_path: Path, store_prefix: str,
                 etcd_endpoints: list[str]) -> Callable[[], Awaitable[bytes]]:
    """Every byte of the stored state as the backend holds it now: the SQLite file and
    its write-ahead log, or every key and value under the test's etcd prefix."""

    async def read() -> bytes:
        if backend == "sqlite":
            wal = db_path.with_name(db_path.name + "-wal")
            return db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        async with EtcdClient(etcd_endpoints) as client:
            kvs, _ = await client.read_prefix(store_prefix.encode())
        assert kvs, f"nothing stored under {store_prefix}"
        return b"".join(kv.key + b"\0" + kv.value + b"\0" for kv in kvs)

    return read


@pytest.fixture
async def ds(schema: Schema, storage: Storage) -> AsyncIterator[Datastore]:
    d = Datastore.open(schema, storage)
    await d.start()
    try:
        yield d
    finally:
        await d.close()
