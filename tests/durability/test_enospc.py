"""A full disk during a commit: the client gets an error, nothing changes (on disk or
in memory), and the server takes writes again once space returns, without a restart.

``nfo serve`` runs under the fsshim library with ``FSSHIM_ENOSPC``: while that file
exists every write to a file in the state directory fails with ENOSPC (the WAL index
``-shm``, whose pages are allocated before, excepted), as on a full file system.
Writes go over RESTCONF (httpx) and NETCONF (ncclient) to the test module's
``/nfo-test:top``, which nothing in the server reacts to.  The regressions below
run the datastore in this process over a storage that fails where told to.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from ncclient import manager
from ncclient.operations import RPCError

from nfo.datastore import Datastore, SqliteStorage
from nfo.datastore.transaction import SNAPSHOT_DELAY
from nfo.errors import StorageFull
from nfo.schema import Schema
from tests.durability import fsshim

REPO = Path(__file__).resolve().parents[2]
TEST_YANG = REPO / "tests" / "datastore" / "yang"
JSON = "application/yang-data+json"
PASSWORD = "enospc-admin-pw"
TOP = "/restconf/data/nfo-test:top"


class Server:
    """``nfo serve`` with RESTCONF and NETCONF on free loopback ports."""

    def __init__(self, state: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nfo", "--state-dir", str(state), "serve",
             "--yang-dir", str(TEST_YANG), "--restconf", "127.0.0.1:0",
             "--netconf", "127.0.0.1:0"],
            cwd=REPO, env={**env, "NFO_ADMIN_PASSWORD": PASSWORD},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr or []),
                         daemon=True).start()
        self.rest = self.netconf = 0
        for line in self.proc.stdout:
            if "RESTCONF on" in line:
                self.rest = int(line.rsplit(":", 1)[1].split("/")[0])
            if "NETCONF over SSH on" in line:
                self.netconf = int(line.rsplit(":", 1)[1])
            if "serving" in line:
                break
        else:
            self.proc.wait()
            pytest.fail(f"nfo serve exited ({self.proc.returncode}):\n{''.join(self.stderr)}")
        threading.Thread(target=lambda: list(self.proc.stdout or []), daemon=True).start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.rest}",
                                 auth=("admin", PASSWORD), timeout=30)

    def items(self) -> list[str]:
        r = self.http.get(TOP, headers={"Accept": JSON})
        assert r.status_code == 200, r.text
        return [i["name"] for i in r.json()["nfo-test:top"].get("item", [])]

    def add(self, name: str) -> httpx.Response:
        return self.http.patch(TOP, json={"nfo-test:top": {"item": [{"name": name}]}},
                               headers={"Content-Type": JSON, "Accept": JSON})

    @contextmanager
    def netconf_session(self) -> Iterator[Any]:
        with manager.connect(host="127.0.0.1", port=self.netconf, username="admin",
                             password=PASSWORD, hostkey_verify=False, allow_agent=False,
                             look_for_keys=False, timeout=30) as m:
            yield m

    def stop(self) -> None:
        self.http.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            assert self.proc.wait(timeout=60) == 0, "".join(self.stderr)[-3000:]
        finally:
            self.proc.kill()


def netconf_add(m: Any, name: str) -> None:
    m.edit_config(target="running", config=(
        '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
        f'<top xmlns="urn:nfo:test"><item><name>{name}</name></item></top></config>'))


def test_a_full_disk_refuses_writes_until_space_returns(tmp_path: Path, shim_lib: Path) -> None:
    state, full = tmp_path / "state", tmp_path / "disk-full"
    state.mkdir()
    server = Server(state, fsshim.environment(shim_lib, state, enospc=full))
    try:
        assert server.add("before").status_code in (201, 204)
        with server.netconf_session() as m:
            full.touch()
            r = server.add("during")
            assert r.status_code == 507, r.text
            [error] = r.json()["ietf-restconf:errors"]["error"]
            assert error["error-tag"] == "resource-denied"
            assert error["error-app-tag"] == "nfo-storage-full"
            assert "is full; nothing was changed" in error["error-message"]
            with pytest.raises(RPCError) as rpc_error:
                netconf_add(m, "during-nc")
            assert rpc_error.value.tag == "resource-denied"
            assert "is full" in (rpc_error.value.message or "")
            # nothing of the failed commits is visible, and reads still work
            assert server.items() == ["before"]
            full.unlink()
            assert server.add("after").status_code in (201, 204)
            netconf_add(m, "after-nc")
        assert server.items() == ["before", "after", "after-nc"]
    finally:
        full.unlink(missing_ok=True)
        server.stop()
    raw = sqlite3.connect(state / "nfo.db")
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        raw.close()
    again = Server(state, dict(os.environ))
    try:
        assert again.items() == ["before", "after", "after-nc"]
    finally:
        again.stop()


# -- regressions ---------------------------------------------------------------------

GROUP_CHILD = """
import asyncio, sys
from pathlib import Path
from nfo.datastore.groupcommit import GroupCommit
from nfo.datastore.storage import SqliteStorage
db, flag = Path(sys.argv[1]), Path(sys.argv[2])
storage = SqliteStorage(db)
storage._connection().execute("PRAGMA cache_size = 2")  # spill to the WAL mid-transaction
def write(i):
    if i == 10:
        flag.touch()      # the disk fills up while the group is written ...
    if i == 11:
        flag.unlink()     # ... and a little space returns
    storage.put_oper("o", f"k{i}", "x" * 20000)
async def main():
    group = GroupCommit(storage)
    done = await asyncio.gather(*(group.run(lambda i=i: write(i)) for i in range(20)),
                                return_exceptions=True)
    print(*("ok" if r is None else type(r).__name__ for r in done))
    print(*sorted(int(r.key[1:]) for r in storage.load_oper()))
asyncio.run(main())
"""


def test_a_group_commit_hit_by_a_full_disk_is_all_or_nothing(tmp_path: Path,
                                                             shim_lib: Path) -> None:
    """SQLite rolls the whole transaction back when a full disk stops it spilling pages:
    the writes after that in the group must fail too, not commit one by one."""
    state = tmp_path / "state"
    state.mkdir()
    run = subprocess.run([sys.executable, "-c", GROUP_CHILD, str(state / "nfo.db"),
                          str(tmp_path / "full")], cwd=REPO, capture_output=True, text=True,
                         env=fsshim.environment(shim_lib, state, enospc=tmp_path / "full"),
                         timeout=120, check=True)
    outcomes, stored = [*run.stdout.splitlines(), "", ""][:2]
    results = outcomes.split()
    assert len(results) == 20 and results[10] == "StorageFull", run.stdout
    # SQLite 3.40 rolls back the whole group here; either way, what the writers were
    # told is what was stored
    assert [i for i, r in enumerate(results) if r == "ok"] == [int(k) for k in stored.split()]


class FullStorage(SqliteStorage):
    """Fails with StorageFull where told to: ``full`` names the methods."""

    full: set[str] = set()

    def _full(self, what: str) -> None:
        if what in self.full:
            raise StorageFull(f"storage: cannot {what}: the disk is full")

    def write_snapshot(self, datastore: str, revision: int, content: str) -> None:
        self._full("write_snapshot")
        super().write_snapshot(datastore, revision, content)

    def put_oper(self, owner: str, key: str, content: str | None) -> None:
        self._full("put_oper")
        super().put_oper(owner, key, content)

    def set_meta(self, key: str, value: str) -> None:
        self._full("set_meta")
        super().set_meta(key, value)


@pytest.fixture
def schema() -> Schema:
    return Schema(extra_dirs=[TEST_YANG])


def _items(ds: Datastore) -> list[str]:
    return [n.value for n in ds.tree("running").match("/nfo-test:top/item/name")]


async def test_a_commit_whose_snapshot_finds_the_disk_full_is_still_acknowledged(
        tmp_path: Path, schema: Schema, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Datastore, "snapshot_every_commits", 1)
    storage = FullStorage(tmp_path / "nfo.db")
    storage.full = {"write_snapshot"}
    ds = Datastore.open(schema, storage)
    try:
        s = ds.internal_session("t")
        await s.edit("running", '{"nfo-test:top": {"item": [{"name": "a"}]}}', "json")
        await asyncio.sleep(SNAPSHOT_DELAY * 3)  # snapshots follow the commit's answer
        assert _items(ds) == ["a"]
        assert storage.since_snapshot("running")[0] == 1
        storage.full = set()
        await s.edit("running", '{"nfo-test:top": {"item": [{"name": "b"}]}}', "json")
        await asyncio.sleep(SNAPSHOT_DELAY * 3)
        assert storage.since_snapshot("running")[0] == 0
    finally:
        await ds.close()
    ds = Datastore.open(schema, SqliteStorage(tmp_path / "nfo.db"))
    try:
        assert _items(ds) == ["a", "b"]
    finally:
        await ds.close()


def item(name: str) -> str:
    return json.dumps({"nfo-test:top": {"item": [{"name": name}]}})


async def test_a_confirming_commit_that_finds_the_disk_full_changes_nothing(
        tmp_path: Path, schema: Schema) -> None:
    """The pending confirmed commit's record is written and cleared in the commit's own
    storage transaction.  Before, a confirming commit was applied, then clearing the
    record failed: the client got an error, and the next restart reverted the confirmed
    commit and every commit acknowledged after it."""
    storage = FullStorage(tmp_path / "nfo.db")
    ds = Datastore.open(schema, storage)
    try:
        s = ds.internal_session("t")
        await s.edit("candidate", item("a"), "json")
        await s.commit(confirmed=True, timeout=3600)
        await s.edit("candidate", item("b"), "json")
        storage.full = {"set_meta"}
        with pytest.raises(StorageFull):
            await s.commit()
        assert _items(ds) == ["a"]
        storage.full = set()
        await s.commit()
        assert _items(ds) == ["a", "b"]
        await s.edit("running", item("c"), "json")
    finally:
        await ds.close()
    ds = Datastore.open(schema, SqliteStorage(tmp_path / "nfo.db"))
    try:
        await ds.start()
        assert _items(ds) == ["a", "b", "c"]
    finally:
        await ds.close()


def up(value: bool) -> str:
    return json.dumps({"nfo-test:top": {"state": {"up": value}}})


def attempts(base: int) -> str:
    return json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
        {"name": f"n{i}", "state": {"attempts": base + i}} for i in range(3)]}})


def _oper(ds: Datastore, owner: str) -> str:
    return "\n".join(sorted(ds.oper_records(owner)))


async def test_operational_data_that_finds_the_disk_full_is_not_served(
        tmp_path: Path, schema: Schema) -> None:
    storage = FullStorage(tmp_path / "nfo.db")
    ds = Datastore.open(schema, storage)
    try:
        s = ds.internal_session("t")
        s.set_oper(up(True), "json", owner="o")
        s.set_oper(attempts(0), "json", owner="w")
        before = {o: _oper(ds, o) for o in ("o", "w")}
        storage.full = {"put_oper"}
        with pytest.raises(StorageFull):
            s.set_oper(up(False), "json", owner="o")
        with pytest.raises(StorageFull):
            await s.set_oper_async(up(False), "json", owner="o")
        with pytest.raises(StorageFull):
            s.delete_oper("/nfo-test:top", owner="o")
        assert {o: _oper(ds, o) for o in ("o", "w")} == before
        # a push of several records is one write: all or nothing
        storage.full = set()
        calls = 0
        real = SqliteStorage.put_oper

        def second_fails(self: SqliteStorage, owner: str, key: str, content: str | None) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise StorageFull("storage: the disk is full")
            real(self, owner, key, content)
        storage.put_oper = second_fails.__get__(storage)  # type: ignore[method-assign]
        with pytest.raises(StorageFull):
            s.set_oper(attempts(10), "json", owner="w")
        assert calls == 2
        assert {o: _oper(ds, o) for o in ("o", "w")} == before
        del storage.put_oper
    finally:
        await ds.close()
    ds = Datastore.open(schema, SqliteStorage(tmp_path / "nfo.db"))
    try:
        assert {o: _oper(ds, o) for o in ("o", "w")} == before
    finally:
        await ds.close()


FSYNC_CHILD = """
import os, signal, sys
from nfo.datastore.storage import SqliteStorage
db, flag, fault = sys.argv[1:4]
s = SqliteStorage(db, checkpoint_every=0)  # the commit's own fsync is the one that fails
s.append_commit("running", 1.0, "u", "edit", "acknowledged")
with open(flag, "w") as f:
    f.write(fault)
try:
    s.append_commit("running", 2.0, "u", "edit", "failed")
except Exception as e:
    print(type(e).__name__, e, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("fault", ["fsync-once", "fsync"])
def test_a_commit_whose_fsync_failed_does_not_come_back(tmp_path: Path, shim_lib: Path,
                                                        fault: str) -> None:
    """SQLite replays every whole commit it finds in the WAL, and a commit whose fsync
    failed is usually there: a crash before the next write brought it back, though the
    client was told it failed.  Now a small write takes its place at once; while the
    disk still fails, the error says the write may yet show up."""
    state, flag = tmp_path / "state", tmp_path / "flag"
    state.mkdir()
    run = subprocess.run([sys.executable, "-c", FSYNC_CHILD, str(state / "nfo.db"), str(flag),
                          fault], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env=fsshim.environment(shim_lib, state, enospc=flag))
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert run.stdout.startswith("OperationFailed operation-failed: storage: cannot append a "
                                 "commit to 'running': disk I/O error; "), run.stdout
    flag.unlink(missing_ok=True)
    with SqliteStorage(state / "nfo.db") as s:
        payloads = [c.payload for c in s.history("running")]
    if fault == "fsync-once":
        assert "nothing was changed" in run.stdout
        assert payloads == ["acknowledged"]
    else:
        assert "may still have reached the disk" in run.stdout
        assert payloads[-1] == "acknowledged"
