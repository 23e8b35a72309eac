"""etcd clusters on loopback: the shared one (tests/conftest.py) for tests that only
read and write keys (each under a prefix of its own), one of its own for a test that
kills members."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from nfo.datastore.storage.etcd_client import EtcdClient
from tests.etcd.cluster import EtcdCluster


@pytest.fixture
def etcd_own(tmp_path: Path) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path / "etcd") as c:
        yield c


@pytest.fixture
def prefix() -> bytes:
    """Keys of this test only, in the shared cluster."""
    return f"/t/{uuid.uuid4().hex}/".encode()


@pytest.fixture
async def etcd(etcd_shared: EtcdCluster) -> AsyncIterator[EtcdClient]:
    async with EtcdClient(etcd_shared.endpoints) as c:
        yield c
