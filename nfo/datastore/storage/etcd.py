"""The storage backend of nfo replicas: the state on an etcd cluster.

etcd holds the state, one key per record under a prefix (``/nfo/`` unless
configured): every commit record (``log/<datastore>/<revision>``), every entry of
every snapshot (``snap/<datastore>/<revision>/<token>/<n>``, a top-level node or one
entry of a top-level list each; ``snapmeta/...`` marks one writing of it whole), every
operational record (``oper/<owner>/<key>``), every logged notification (``notif/<module>/<seq>``)
and every meta value (``meta/<key>``).  Two counters, ``head`` (the last revision)
and ``nseq`` (the last notification number), guard the writes: a batch of writes is
one etcd transaction, made only if the counters it advances still hold what this
replica last saw; otherwise another replica wrote first and the batch fails with
:class:`~nfo.errors.StorageConflict`, nothing stored.

The :class:`~nfo.datastore.storage.base.Storage` interface is synchronous, and reads
are on every request's path, so each replica keeps a mirror of those records in an
in-memory :class:`~nfo.datastore.storage.sqlite.SqliteStorage`: reads are the
mirror's; a write goes into the mirror's open transaction and into the batch's etcd
transaction, and the mirror's transaction is committed only once etcd has made the
batch durable (rolled back if not).  The etcd client runs on a loop of its own, in a
thread, and a write waits for its transaction there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from nfo.errors import NfoError, OperationFailed, StorageConflict, StorageUnavailable
from nfo.schema.values import format_time

from .base import (
    CommitKind,
    CommitRecord,
    NotificationMark,
    NotificationRecord,
    NotificationSpan,
    OperRecord,
    RemoteChanges,
    Snapshot,
    StoredState,
)
from .etcd_asks import Answerer, Asks
from .etcd_client import (
    Compacted,
    Compare,
    Delete,
    EtcdClient,
    Put,
    Range,
    WatchBatch,
    WatchEvent,
    parse_endpoints,
    parse_prefix,
)
from .sqlite import SqliteStorage

__all__ = ["EtcdStorage", "Leadership"]

log = logging.getLogger(__name__)

_NOT_OURS = (ValueError, KeyError, IndexError, TypeError)
"""What reading a key nfo did not write raises (a value that is no UTF-8 or JSON, a key
of the wrong shape): such a key is logged and ignored, the rest still taken."""


def _ignored(key: bytes, revision: int) -> None:
    log.warning("etcd key %r (revision %d) is not one nfo writes: ignored", key[:200],
                revision)


_T = TypeVar("_T")

_OPS_PER_TXN = 50
"""Entries per etcd transaction (and so per step) when a snapshot is stored: each step
holds up the replica's loop while etcd commits it, so steps stay a few ms long (2,000
entries a step gave writers a p99 of 180 ms at 32 connections, 50 gave 70 ms)."""
_PRESENCE_TTL = 10
"""Seconds a replica's presence (``replicas/<name>``, and the locks it holds) outlives
its last renewal: a replica that dies releases its locks that long after."""
_WIP_TTL = 30
"""Seconds a snapshot's writing is known to go on without a renewal of its lease."""
_BYTES_PER_TXN = 4 << 20
"""Bytes of snapshot per etcd transaction (of the 32 MiB a request may hold)."""


def _num(n: int) -> str:
    return f"{n:016d}"


def _name(s: str) -> str:
    return quote(s, safe="")


class _Loop:
    """An event loop in a thread of its own, running the etcd client's calls for a
    caller that must wait for them synchronously."""

    def __init__(self, endpoints: Sequence[str], timeout: float, failover: float) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="nfo-etcd",
                                        daemon=True)
        self._thread.start()
        self.client = EtcdClient(endpoints, timeout=timeout, failover=failover)

    def run(self, call: Callable[[EtcdClient], Coroutine[Any, Any, _T]]) -> _T:
        return self.submit(call).result()

    def submit(self, call: Callable[[EtcdClient], Coroutine[Any, Any, _T]]
               ) -> concurrent.futures.Future[_T]:
        return asyncio.run_coroutine_threadsafe(call(self.client), self.loop)

    def close(self) -> None:
        if not self.loop.is_running():
            return
        try:
            self.run(_shutdown)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


async def _shutdown(client: EtcdClient) -> None:
    """The client closed, and every task left on its loop (watches, renewals, gRPC's
    own) ended."""
    await client.close()
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in rest:
        t.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


@dataclass
class _Batch:
    """The etcd writes of an open batch (the last one per key: etcd refuses two writes
    of a key in one transaction), and how far it moves the counters."""

    ops: dict[bytes, Put | Delete] = field(default_factory=dict)
    undo: list[tuple[bytes, Put | Delete | None]] = field(default_factory=list)
    """What each write replaced, for undoing the writes of a block that failed."""
    head: tuple[int, int] | None = None
    """(the last revision before the batch, the last one it assigned)"""
    nseq: tuple[int, int] | None = None
    fences: dict[str, Compare] = field(default_factory=dict)

    def add(self, op: Put | Delete) -> None:
        self.undo.append((op.key, self.ops.pop(op.key, None)))
        self.ops[op.key] = op

    def undo_to(self, mark: int) -> None:
        while len(self.undo) > mark:
            key, prev = self.undo.pop()
            if prev is None:
                self.ops.pop(key, None)
            else:
                self.ops[key] = prev


class EtcdStorage:
    """:class:`~nfo.datastore.storage.base.Storage` on the etcd cluster at
    ``endpoints`` (``etcd://host:port,...[/prefix/]`` or a list of ``host:port``), under
    ``prefix`` (default: the address's, else ``/nfo/``).  Not thread-safe, like the SQLite
    backend."""

    def __init__(self, endpoints: str | Sequence[str], *, prefix: str | None = None,
                 keep_snapshots: int = 3, timeout: float = 2.0,
                 failover: float = 10.0, replica: str | None = None) -> None:
        """``replica``: this replica's name in the cluster (default: host and process
        id)."""
        eps = parse_endpoints(endpoints) if isinstance(endpoints, str) else list(endpoints)
        if prefix is None:
            prefix = parse_prefix(endpoints) if isinstance(endpoints, str) else "/nfo/"
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise OperationFailed(f"storage: the etcd prefix {prefix!r} must start and end "
                                  "with '/'")
        self.endpoints = eps
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}"
        self.prefix = prefix.encode()
        self._fences: dict[str, Compare] = {}
        """Per owner of operational records: the guard of every batch that writes
        them (a :class:`Leadership` this replica holds)."""
        self._keep = keep_snapshots
        self._mirror = SqliteStorage(":memory:", keep_snapshots=keep_snapshots,
                                     checkpoint_every=0)
        self._io = _Loop(eps, timeout, failover)
        self._batch: _Batch | None = None
        self._head = 0
        self._nseq = 0
        self.revision = 0
        """The etcd revision the mirror is current with."""
        self._mine: set[int] = set()
        """Revisions of this replica's own transactions the watch has not passed yet."""
        self._deliver: Callable[[RemoteChanges], None] | None = None
        self._main: asyncio.AbstractEventLoop | None = None
        self._watch: concurrent.futures.Future[None] | None = None
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._leaderships: list[Leadership] = []
        self._me = f"{self.replica}#{uuid.uuid4().hex[:8]}"
        """This process among the replicas (a restarted replica is another one)."""
        self._presence: concurrent.futures.Future[None] | None = None
        self._lease_ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._held: dict[str, bytes] = {}
        """Datastore -> the value of its lock key, for the locks this replica holds."""
        self._releasing: dict[str, bytes] = {}
        """Locks whose release etcd did not take yet (tried again at each renewal)."""
        self._locks: dict[str, dict[str, Any]] = {}
        """Datastore -> its lock key's value, as the store holds it."""
        self._replicas: dict[str, dict[str, Any]] = {}
        """The replicas present (``replicas/<name>``), as the store holds them."""
        self._leaders: dict[str, str] = {}
        """What is led (``leader/<name>``) -> the replica leading it."""
        self.lost: BaseException | None = None
        """Why the replica stopped following the store (None: it follows)."""
        self._asks = Asks(self._on_etcd, self._key, self._lease_ready, self.replica)
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    # -- keys ---------------------------------------------------------------------------
    def _key(self, *parts: str) -> bytes:
        return self.prefix + "/".join(parts).encode()

    def _load(self) -> None:
        """The mirror, from every key under the prefix at one revision."""
        kvs, self.revision = self._io.run(lambda c: c.read_prefix(self.prefix))
        self._head = self._nseq = 0
        self._locks, self._replicas, self._leaders = {}, {}, {}
        snaps: dict[tuple[str, int], dict[str, Any]] = {}
        pieces: dict[tuple[str, int, str], list[tuple[int, Any]]] = {}
        writing: set[tuple[str, int, str]] = set()
        with self._mirror.batch():
            for kv in kvs:
                try:
                    self._load_key(kv, snaps, pieces, writing)
                except _NOT_OURS:
                    _ignored(kv.key, self.revision)
            for (ds, rev), meta in sorted(snaps.items()):
                got = sorted(pieces.get((ds, rev, meta["token"]), []), key=lambda p: p[0])
                if len(got) != meta["pieces"]:
                    raise OperationFailed(
                        f"storage: snapshot {ds}@{rev} in etcd has {len(got)} of its "
                        f"{meta['pieces']} pieces")
                self._mirror.restore_snapshot(Snapshot(ds, rev, _join([p for _, p in got])))
            self._mirror.restore_counters(self._head, self._nseq)
        # the entries of a writing that stopped (not marked whole, no writer at it)
        torn = sorted(k for k in pieces if k not in writing
                      and snaps.get(k[:2], {}).get("token") != k[2])
        if torn:
            self._write([Delete(self._key("snap", _name(ds), _num(rev), token) + b"/",
                                prefix=True) for ds, rev, token in torn])

    def _load_key(self, kv: Any, snaps: dict[tuple[str, int], dict[str, Any]],
                  pieces: dict[tuple[str, int, str], list[tuple[int, Any]]],
                  writing: set[tuple[str, int, str]]) -> None:
        kind, *rest = kv.key[len(self.prefix):].decode().split("/")
        value = kv.value.decode()
        if kind == "head":
            self._head = int(value)
        elif kind == "nseq":
            self._nseq = int(value)
        elif kind == "meta":
            self._mirror.set_meta(unquote(rest[0]), value)
        elif kind == "log":
            d = json.loads(value)
            self._mirror.restore_commit(CommitRecord(
                int(rest[1]), unquote(rest[0]), d["t"], d["user"], d["kind"],
                d["payload"], d.get("label", "")))
        elif kind == "oper":
            self._mirror.put_oper(unquote(rest[0]), unquote(rest[1]), value)
        elif kind == "notif":
            d = json.loads(value)
            self._mirror.restore_notification(NotificationRecord(
                int(rest[1]), unquote(rest[0]), d["t"], d["content"]))
        elif kind == "snapmeta":
            snaps[unquote(rest[0]), int(rest[1])] = json.loads(value)
        elif kind == "snapwip":
            writing.add((unquote(rest[0]), int(rest[1]), rest[2]))
        elif kind == "lock":
            self._locks[unquote(rest[0])] = json.loads(value)
        elif kind == "replicas":
            self._replicas[unquote(rest[0])] = json.loads(value)
        elif kind == "leader":
            self._leaders[unquote(rest[0])] = value
        elif kind == "snap":
            pieces.setdefault((unquote(rest[0]), int(rest[1]), rest[2]), []).append(
                (int(rest[3]), json.loads(value)))

    # -- batches --------------------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[None]:
        """The writes inside, made durable together in one etcd transaction when the
        block ends; a write that fails inside is undone alone."""
        outer = self._batch
        if outer is not None:
            mark = (len(outer.undo), outer.head, outer.nseq, self._head, self._nseq)
            try:
                with self._mirror.batch():
                    yield
            except BaseException:  # the mirror undid the block's writes: so do we
                outer.undo_to(mark[0])
                outer.head, outer.nseq, self._head, self._nseq = mark[1:]
                raise
            return
        b = self._batch = _Batch()
        try:
            with self._mirror.batch():
                yield
                if b.ops:
                    self._send(b)
        except BaseException:
            self._head = b.head[0] if b.head is not None else self._head
            self._nseq = b.nseq[0] if b.nseq is not None else self._nseq
            raise
        finally:
            self._batch = None

    @asynccontextmanager
    async def durable_batch(self) -> AsyncIterator[None]:
        """:meth:`batch` (its transaction is waited for on the loop)."""
        with self.batch():
            yield

    def _send(self, b: _Batch) -> None:
        guards: list[Compare] = list(b.fences.values())
        ops = list(b.ops.values())
        for name, moved in (("head", b.head), ("nseq", b.nseq)):
            if moved is None:
                continue
            key = self._key(name)
            before, after = moved
            guards.append(Compare.value_is(key, str(before).encode()) if before
                          else Compare.absent(key))
            ops.append(Put(key, str(after).encode()))
        result = self._io.run(lambda c: c.txn(guards, ops))
        if not result.succeeded:
            if b.fences and b.head is None and b.nseq is None:
                raise StorageConflict(
                    "this replica no longer leads what it wrote operational data for "
                    f"({', '.join(sorted(b.fences))}); nothing was stored",
                    revision=result.revision)
            raise StorageConflict(
                "another replica wrote to the stored state first (revision "
                f"{b.head[0] if b.head else self._head} is no longer the last); nothing "
                "was stored", revision=result.revision)
        self._own(result.revision)

    def _open(self) -> _Batch:
        assert self._batch is not None
        return self._batch

    # -- commits and snapshots ----------------------------------------------------------
    def load(self) -> StoredState:
        return self._mirror.load()

    def append_commit(
        self, datastore: str, timestamp: float, user: str, kind: CommitKind, payload: str,
        label: str = "",
    ) -> CommitRecord:
        with self.batch():
            b = self._open()
            rec = self._mirror.append_commit(datastore, timestamp, user, kind, payload, label)
            lock = self._key("lock", _name(datastore))
            held = self._held.get(datastore)
            b.fences[f"lock {datastore}"] = (Compare.absent(lock) if held is None
                                             else Compare.value_is(lock, held))
            b.head = (b.head[0] if b.head else rec.revision - 1, rec.revision)
            self._head = rec.revision
            b.add(Put(self._key("log", _name(datastore), _num(rec.revision)),
                             json.dumps({"t": rec.timestamp, "user": user, "kind": kind,
                                         "payload": payload, "label": label}).encode()))
        return rec

    def write_snapshot(self, datastore: str, revision: int, content: str) -> None:
        for _ in self.snapshot_steps(datastore, revision, content):
            pass

    def snapshot_steps(self, datastore: str, revision: int,
                       content: str | Sequence[bytes]) -> Generator[None, None, None]:
        """The snapshot's entries into etcd under a token of this writing, a transaction
        of them per step, while a key bound to a lease of the writer (``snapwip/...``)
        says the writing goes on; then the transaction that marks it whole (only if that
        key still exists) and deletes what it replaces: older snapshots beyond the newest
        ``keep_snapshots``, and the commits before the oldest one kept.  Entries of a
        writing whose key is gone (its writer stopped or died) are anyone's to delete."""
        if not 0 <= revision <= self._head:
            raise OperationFailed(
                f"storage: snapshot revision {revision} of {datastore!r} is outside"
                f" 0..{self._head}, the revisions assigned so far")
        if revision in self._mirror.snapshot_revisions(datastore):
            return
        text = content if isinstance(content, str) else b"".join(content).decode()
        pieces = _split(text)
        yield  # the text taken apart, on a turn of its own
        token = uuid.uuid4().hex[:16]
        where = (_name(datastore), _num(revision))
        wip = self._key("snapwip", *where, token)
        lease = self._io.run(lambda c: c.grant(_WIP_TTL))
        renewed = time.monotonic()
        try:
            self._write([Put(wip, self.replica.encode(), lease)])
            ops: list[Put | Delete] = []
            size = 0
            for n, piece in enumerate(pieces):
                data = json.dumps(piece).encode()
                if ops and (len(ops) >= _OPS_PER_TXN or size + len(data) > _BYTES_PER_TXN):
                    self._write(ops)
                    ops, size = [], 0
                    if time.monotonic() - renewed > _WIP_TTL / 3:
                        self._io.run(lambda c: c.refresh(lease))
                        renewed = time.monotonic()
                    yield
                ops.append(Put(self._key("snap", *where, token, _num(n)), data))
                size += len(data)
            if ops:
                self._write(ops)
                yield
            with self._mirror.batch():
                for _ in self._mirror.snapshot_steps(datastore, revision, text):
                    pass
                kept = self._mirror.snapshot_revisions(datastore)
                first = self._mirror.first_commit(datastore)
                done: list[Put | Delete] = [
                    Put(self._key("snapmeta", *where), json.dumps(
                        {"pieces": len(pieces), "bytes": len(text), "token": token}).encode()),
                    Delete(wip)]
                sp = self._key("snapmeta", where[0]) + b"/"
                for old in self._stored_snapshots(datastore):
                    if old not in kept and old != revision:
                        done += [Delete(sp + _num(old).encode()),
                                 Delete(self._key("snap", where[0], _num(old)) + b"/",
                                        prefix=True)]
                logs = self._key("log", where[0]) + b"/"
                done.append(Delete(logs, end=logs + _num(first if first is not None
                                                         else self._head + 1).encode()))
                result = self._io.run(lambda c: c.txn(
                    [Compare(wip, "version", ">", 0)], done))
                if not result.succeeded:
                    raise OperationFailed(
                        f"storage: the snapshot {datastore}@{revision} was given up: its "
                        "writing outlived its lease")
                self._own(result.revision)
        except BaseException:
            with contextlib.suppress(NfoError):
                self._write([Delete(self._key("snap", *where, token) + b"/", prefix=True)])
            raise
        finally:
            with contextlib.suppress(NfoError):
                self._io.run(lambda c: c.revoke(lease))

    def _stored_snapshots(self, datastore: str) -> list[int]:
        p = self._key("snapmeta", _name(datastore)) + b"/"
        kvs, _ = self._io.run(lambda c: c.read_prefix(p))
        return [int(kv.key[len(p):]) for kv in kvs]

    def _write(self, ops: list[Put | Delete]) -> None:
        result = self._io.run(lambda c: c.txn([], ops, retry=True))
        self._own(result.revision)

    def _own(self, revision: int) -> None:
        """A transaction of this replica made ``revision``: the watch passes it over."""
        if self._watch is not None:
            self._mine.add(revision)
        else:
            self.revision = max(self.revision, revision)

    # -- leading ----------------------------------------------------------------------
    async def lead(self, name: str, *, ttl: int = 5, owner: str | None = None
                   ) -> Leadership:
        """Wait until this replica leads ``name``, then return its leadership (renewed
        until it is released or lost).  ``owner``: the owner of operational records
        whose every write is then guarded by it."""
        key = self._key("leader", _name(name))
        me = self.replica.encode()
        loop = asyncio.get_running_loop()
        while True:
            won = await self._on_etcd(lambda c: self._campaign(c, key, me, ttl))
            if won is not None:
                lease, sent = won
                break
            await asyncio.sleep(ttl / 5)
        held = Leadership(self, name, key, lease, ttl, sent + ttl - 1.0, loop)
        self._leaderships.append(held)
        if owner is not None:
            self._fences[owner] = Compare.value_is(key, me)
            held.owner = owner
        held.start()
        log.info("replica %s leads %s (lease %x, %d s)", self.replica, name, lease, ttl)
        return held

    @staticmethod
    async def _campaign(c: EtcdClient, key: bytes, me: bytes, ttl: int
                        ) -> tuple[int, float] | None:
        """In the etcd thread: the key for a new lease, if no other replica holds it;
        (the lease, when it was granted)."""
        lease = await c.grant(ttl)
        sent = time.monotonic()
        got = await c.txn([Compare.absent(key)], [Put(key, me, lease)], [Range(key)],
                          retry=True)
        if got.succeeded:
            return lease, sent
        held = got.ranges[0][0] if got.ranges and got.ranges[0] else None
        if held is not None and held.lease == lease:  # the retry of our own put
            return lease, sent
        await c.revoke(lease)
        return None

    async def _on_etcd(self, call: Callable[[EtcdClient], Coroutine[Any, Any, _T]]) -> _T:
        return await asyncio.wrap_future(self._io.submit(call))

    # -- following the other replicas ----------------------------------------------------
    def follow(self, deliver: Callable[[RemoteChanges], None]) -> None:
        self._deliver = deliver
        self._main = asyncio.get_running_loop()
        start = self.revision + 1
        self._watch = self._io.submit(lambda c: self._watching(c, start))
        self._be_present()

    # -- presence and locks -----------------------------------------------------------------
    def _be_present(self) -> None:
        """Start saying this replica is here (``replicas/<name>``), if not yet."""
        if self._presence is None:
            self._presence = self._io.submit(self._present)

    async def _present(self, client: EtcdClient) -> None:
        """In the etcd thread: ``replicas/<name>`` under a lease of this replica's, renewed
        for as long as it runs (the locks it takes are bound to the same lease)."""
        key = self._key("replicas", _name(self.replica))
        while True:
            try:
                lease = await client.grant(_PRESENCE_TTL)
                await client.put(key, json.dumps({"id": self._me, "since": time.time()})
                                 .encode(), lease=lease)
                break
            except StorageUnavailable as e:
                log.warning("replica %s: cannot say it is here yet: %s", self.replica, e)
                await asyncio.sleep(1.0)
        if not self._lease_ready.done():
            self._lease_ready.set_result(lease)
        while True:
            await asyncio.sleep(_PRESENCE_TTL / 3)
            try:
                if await client.refresh(lease) <= 0:
                    log.error("replica %s: its presence lapsed (its locks with it)",
                              self.replica)
                for ds, value in list(self._releasing.items()):
                    lock = self._key("lock", _name(ds))
                    await client.txn([Compare.value_is(lock, value)], [Delete(lock)],
                                     retry=True)
                    self._releasing.pop(ds, None)
            except StorageUnavailable as e:
                log.warning("replica %s: presence not renewed: %s", self.replica, e)

    def acquire_lock(self, datastore: str, session: int) -> str | None:
        self._be_present()
        try:
            lease = self._lease_ready.result(timeout=self._io.client.failover)
        except concurrent.futures.TimeoutError:
            raise StorageUnavailable(f"replica {self.replica} is not present in etcd yet: "
                                     "no lock can be taken") from None
        key = self._key("lock", _name(datastore))
        value = json.dumps({"id": self._me, "replica": self.replica,
                            "session": session}).encode()
        got = self._io.run(lambda c: c.txn([Compare.absent(key)], [Put(key, value, lease)],
                                           [Range(key)], retry=True))
        if got.succeeded or (got.ranges and got.ranges[0]
                             and got.ranges[0][0].value == value):
            self._held[datastore] = value
            self._locks[datastore] = json.loads(value)
            return None
        other = json.loads(got.ranges[0][0].value) if got.ranges and got.ranges[0] else {}
        return _holder(other)

    def release_lock(self, datastore: str) -> None:
        value = self._held.pop(datastore, None)
        if value is None:
            return
        if self._locks.get(datastore, {}).get("id") == self._me:
            del self._locks[datastore]
        key = self._key("lock", _name(datastore))
        try:
            self._io.run(lambda c: c.txn([Compare.value_is(key, value)], [Delete(key)],
                                         retry=True))
        except StorageUnavailable as e:
            log.warning("the %s lock was not released in etcd yet (tried again): %s",
                        datastore, e)
            self._releasing[datastore] = value

    @property
    def me(self) -> str:
        return self._me

    def alive(self, replica: str) -> bool:
        return replica == self._me or any(
            info.get("id") == replica for info in self._replicas.values())

    def expect_meta(self, key: str, value: str) -> None:
        self._open().fences[f"meta {key}"] = Compare.value_is(self._key("meta", _name(key)),
                                                              value.encode())

    def replicas_json(self) -> str:
        """``/nfo-replicas:replicas`` as RFC 7951 JSON: the replicas present, and what
        each leads (what this replica has heard of)."""
        leads: dict[str, list[str]] = {}
        for what, who in sorted(self._leaders.items()):
            leads.setdefault(who, []).append(what)
        entries = []
        for name, info in sorted(self._replicas.items()):
            e: dict[str, Any] = {"name": name, "here": info.get("id") == self._me}
            if "since" in info:
                e["since"] = format_time(float(info["since"]))
            if leads.get(name):
                e["leads"] = leads[name]
            entries.append(e)
        return json.dumps({"nfo-replicas:replicas": {"replica": entries}})

    async def ask(self, kind: str, body: str, timeout: float) -> str:
        self._be_present()
        return await self._asks.ask(kind, body, timeout)

    async def answer(self, kind: str, answerer: Answerer | None) -> None:
        await self._asks.answer(kind, answerer)

    def lock_elsewhere(self, datastore: str) -> str | None:
        held = self._locks.get(datastore)
        if held is None or held.get("id") == self._me:
            return None
        return _holder(held)

    async def _watching(self, client: EtcdClient, start: int) -> None:
        """In the etcd thread: every batch of the watch to the main loop, in order."""
        assert self._main is not None
        try:
            async for batch in client.watch(self.prefix, start):
                if batch.events:
                    self._main.call_soon_threadsafe(self._take, batch)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            with contextlib.suppress(RuntimeError):  # the replica's loop is gone
                self._main.call_soon_threadsafe(self._stop_following, e)

    def _stop_following(self, e: BaseException) -> None:
        if isinstance(e, Compacted) and self._watch is not None:
            log.warning("etcd compacted revisions this replica had not read yet (up to %d): "
                        "reading the whole state again", e.revision)
            try:
                self._reread()
            except BaseException as err:
                e = err
            else:
                return
        log.error("this replica no longer follows the others: %s", e)
        self.lost = e
        for _, fut in self._waiting:
            if not fut.done():
                fut.set_exception(StorageUnavailable(
                    f"this replica no longer follows the stored state: {e}"))
        self._waiting.clear()

    def _reread(self) -> None:
        """The mirror again from the whole state as etcd holds it now, the datastore
        told to take it (``resync``), and the watch on from there."""
        old, self._mirror = self._mirror, SqliteStorage(
            ":memory:", keep_snapshots=self._keep, checkpoint_every=0)
        try:
            self._load()
        except BaseException:
            self._mirror.close()
            self._mirror = old
            raise
        old.close()
        self._mine.clear()
        if self._deliver is not None:
            self._deliver(RemoteChanges(self.revision, resync=True))
        start = self.revision + 1
        self._watch = self._io.submit(lambda c: self._watching(c, start))
        self._wake()

    def _take(self, batch: WatchBatch) -> None:
        """On the main loop: each revision of ``batch`` not made here, into the mirror,
        then to the datastore (none once it no longer follows: closed, or unfollowed)."""
        if self._watch is None:
            return
        by_rev: dict[int, list[WatchEvent]] = {}
        for ev in batch.events:
            by_rev.setdefault(ev.kv.mod_revision, []).append(ev)
        for rev, events in sorted(by_rev.items()):
            if rev in self._mine:
                self._mine.discard(rev)
            elif rev > self.revision:
                changes = self._apply(rev, events)
                if self._deliver is not None and (changes.commits or changes.oper
                                                  or changes.notifications):
                    self._deliver(changes)
            self.revision = max(self.revision, rev)
        self._wake()

    def _apply(self, rev: int, events: list[WatchEvent]) -> RemoteChanges:
        commits: list[CommitRecord] = []
        notes: list[NotificationRecord] = []
        oper = False
        with self._mirror.batch():
            for ev in events:
                try:
                    oper = self._apply_key(rev, ev, commits, notes) or oper
                except _NOT_OURS:
                    _ignored(ev.kv.key, rev)
            self._mirror.restore_counters(self._head, self._nseq)
        return RemoteChanges(rev, commits, oper, notes)

    def _apply_key(self, rev: int, ev: WatchEvent, commits: list[CommitRecord],
                   notes: list[NotificationRecord]) -> bool:
        """One changed key into the mirror; whether it was an operational record."""
        kind, *rest = ev.kv.key[len(self.prefix):].decode().split("/")
        value = ev.kv.value.decode()
        put = ev.kind == "put"
        if kind == "head" and put:
            self._head = max(self._head, int(value))
        elif kind == "nseq" and put:
            self._nseq = max(self._nseq, int(value))
        elif kind == "meta" and put:
            self._mirror.set_meta(unquote(rest[0]), value)
        elif kind == "log" and put:
            d = json.loads(value)
            rec = CommitRecord(int(rest[1]), unquote(rest[0]), d["t"], d["user"],
                               d["kind"], d["payload"], d.get("label", ""))
            self._mirror.restore_commit(rec)
            commits.append(rec)
        elif kind == "oper":
            self._mirror.put_oper(unquote(rest[0]), unquote(rest[1]),
                                  value if put else None)
            return True
        elif kind == "notif" and put:
            d = json.loads(value)
            note = NotificationRecord(int(rest[1]), unquote(rest[0]), d["t"],
                                      d["content"])
            self._mirror.restore_notification(note)
            notes.append(note)
        elif kind == "notif":
            self._mirror.drop_notifications({unquote(rest[0]): int(rest[1]) + 1})
        elif kind in ("lock", "replicas", "leader"):
            known: dict[str, Any] = (self._locks if kind == "lock" else
                                     self._replicas if kind == "replicas" else
                                     self._leaders)
            if not put:
                known.pop(unquote(rest[0]), None)
            else:
                known[unquote(rest[0])] = value if kind == "leader" else json.loads(value)
        elif kind in ("ask", "answer"):
            self._asks.seen(kind, rest, ev.kv.key, ev.kv.value, put)
        elif kind == "snapmeta" and put:
            ds, at = unquote(rest[0]), int(rest[1])
            token = json.loads(value)["token"]
            self._mirror.restore_snapshot(Snapshot(ds, at, self._read_snapshot(
                self._key("snap", rest[0], rest[1], token) + b"/", rev)))
        return False

    def _read_snapshot(self, under: bytes, revision: int) -> str:
        kvs, _ = self._io.run(lambda c: c.read_prefix(under, revision=revision))
        return _join([json.loads(kv.value) for kv in kvs])

    def _wake(self) -> None:
        keep = []
        for rev, fut in self._waiting:
            if rev <= self.revision:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((rev, fut))
        self._waiting = keep

    async def caught_up(self, revision: int) -> None:
        if self.lost is not None:
            raise StorageUnavailable(f"this replica no longer follows the stored state: "
                                     f"{self.lost}")
        if self._watch is None or revision <= self.revision:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiting.append((revision, fut))
        await fut

    async def sync(self) -> None:
        await self.caught_up(await self._on_etcd(lambda c: c.revision()))

    async def unfollow(self) -> None:
        w, self._watch = self._watch, None
        if w is not None:
            w.cancel()
            await asyncio.sleep(0)
        for _, fut in self._waiting:
            fut.cancel()
        self._waiting.clear()

    def since_snapshot(self, datastore: str) -> tuple[int, int]:
        return self._mirror.since_snapshot(datastore)

    def history(self, datastore: str, limit: int = 100,
                before: int | None = None) -> list[CommitRecord]:
        return self._mirror.history(datastore, limit, before)

    def snapshot_at(self, datastore: str, revision: int) -> Snapshot | None:
        return self._mirror.snapshot_at(datastore, revision)

    def commits_between(self, datastore: str, after: int, upto: int) -> list[CommitRecord]:
        return self._mirror.commits_between(datastore, after, upto)

    # -- operational data ---------------------------------------------------------------
    def put_oper(self, owner: str, key: str, content: str | None) -> None:
        with self.batch():
            self._fence(owner)
            self._mirror.put_oper(owner, key, content)
            k = self._key("oper", _name(owner), _name(key))
            self._open().add(Delete(k) if content is None else Put(k, content.encode()))

    def _fence(self, owner: str) -> None:
        fence = self._fences.get(owner)
        if fence is not None:
            self._open().fences[owner] = fence

    def load_oper(self) -> list[OperRecord]:
        return self._mirror.load_oper()

    def oper_keys(self) -> list[tuple[str, str]]:
        return self._mirror.oper_keys()

    def oper_texts(self, owner: str, keys: Sequence[str]) -> list[str | None]:
        return self._mirror.oper_texts(owner, keys)

    def oper_page(self, owner: str, after: str | None, limit: int
                  ) -> list[tuple[str, str]]:
        return self._mirror.oper_page(owner, after, limit)

    def clear_oper(self, owner: str) -> None:
        with self.batch():
            self._fence(owner)
            keys = [k for o, k in self._mirror.oper_keys() if o == owner]
            self._mirror.clear_oper(owner)
            for k in keys:  # one by one: a write of one of them may follow in the batch
                self._open().add(Delete(self._key("oper", _name(owner), _name(k))))

    # -- notifications --------------------------------------------------------------------
    def append_notification(self, module: str, timestamp: float, content: str) -> int:
        with self.batch():
            b = self._open()
            seq = self._mirror.append_notification(module, timestamp, content)
            b.nseq = (b.nseq[0] if b.nseq else seq - 1, seq)
            self._nseq = seq
            b.add(Put(self._key("notif", _name(module), _num(seq)),
                             json.dumps({"t": float(timestamp), "content": content}).encode()))
        return seq

    def notifications(
        self, modules: Collection[str] | None = None, start: float | None = None,
        stop: float | None = None, after_seq: int = 0,
    ) -> Iterator[NotificationRecord]:
        return self._mirror.notifications(modules, start, stop, after_seq)

    def notification_spans(self, modules: Collection[str] | None = None
                           ) -> list[NotificationSpan]:
        return self._mirror.notification_spans(modules)

    def notification_after(self, modules: Collection[str] | None, after_seq: int,
                           skip: int = 0) -> NotificationMark | None:
        return self._mirror.notification_after(modules, after_seq, skip)

    def drop_notifications(self, cuts: Mapping[str, int]) -> int:
        with self.batch():
            dropped = self._mirror.drop_notifications(cuts)
            for module, cut in sorted(cuts.items()):
                p = self._key("notif", _name(module)) + b"/"
                # below every record kept, so below every one this batch appends
                self._open().add(Delete(p, end=p + _num(cut).encode()))
        return dropped

    # -- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        return self._mirror.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        with self.batch():
            self._mirror.set_meta(key, value)
            self._open().add(Put(self._key("meta", _name(key)), value.encode()))

    def close(self) -> None:
        self._asks.close()
        for held in self._leaderships:  # their leases lapse
            if held._renewing is not None:
                held._renewing.cancel()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._presence is not None:
            self._presence.cancel()
            if self._lease_ready.done() and not self._lease_ready.cancelled():
                lease = self._lease_ready.result()
                try:  # gone at once, with its locks, rather than when the lease lapses
                    self._io.run(lambda c: c.revoke(lease))
                except (NfoError, RuntimeError) as e:
                    log.warning("replica %s: its presence lapses by itself: %s",
                                self.replica, e)
        try:
            self._io.close()
        finally:
            self._mirror.close()

    def __enter__(self) -> EtcdStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Leadership:
    """This replica leads one thing (``name``) while its lease lives: the key
    ``leader/<name>``, bound to the lease, holds the replica's name.  The lease is renewed
    every third of its time to live; :meth:`valid` says whether, by this replica's own
    clock, it surely still lives (checked before every VIM call: a replica that was
    paused past its lease does nothing when it wakes), and :attr:`lost` is set once it
    does not.  Operational records of the owner it guards are stored only while the key
    holds this replica's name (a write of a replica that lost it is refused by etcd)."""

    def __init__(self, storage: EtcdStorage, name: str, key: bytes, lease: int, ttl: int,
                 until: float, loop: asyncio.AbstractEventLoop) -> None:
        self.storage = storage
        self.name = name
        self.key = key
        self.lease = lease
        self.ttl = ttl
        self._until = until
        self._loop = loop
        self.owner: str | None = None
        self.lost = asyncio.Event()
        self._renewing: concurrent.futures.Future[None] | None = None

    def valid(self) -> bool:
        return not self.lost.is_set() and time.monotonic() < self._until

    def start(self) -> None:
        self._renewing = self.storage._io.submit(self._renew)

    async def _renew(self, client: EtcdClient) -> None:
        """In the etcd thread: renew until the lease is gone or the time it surely lives
        has passed without a renewal."""
        try:
            while True:
                await asyncio.sleep(self.ttl / 3)
                sent = time.monotonic()
                if sent >= self._until:
                    break
                try:
                    left = await client.refresh(self.lease)
                except StorageUnavailable as e:
                    log.warning("leadership of %s: the lease was not renewed: %s",
                                self.name, e)
                    continue
                if left <= 0:
                    break
                self._until = sent + left - 1.0
        finally:
            with contextlib.suppress(RuntimeError):  # the replica's loop is gone
                self._loop.call_soon_threadsafe(self._lose)

    def _lose(self, released: bool = False) -> None:
        if not self.lost.is_set():
            (log.info if released else log.warning)(
                "replica %s no longer leads %s", self.storage.replica, self.name)
        self._until = 0.0
        self.lost.set()  # the owner's writes stay guarded: refused while another leads

    async def release(self) -> None:
        """Stop leading (the lease revoked: another replica may lead at once)."""
        if self._renewing is not None:
            self._renewing.cancel()
        self._lose(released=True)
        lease = self.lease
        try:
            await self.storage._on_etcd(lambda c: c.revoke(lease))
        except StorageUnavailable as e:
            log.warning("leadership of %s: the lease was not revoked (it lapses): %s",
                        self.name, e)


def _holder(lock: dict[str, Any]) -> str:
    return f"session {lock.get('session', '?')} of replica {lock.get('replica', '?')}"


def _split(text: str) -> list[Any]:
    """A datastore's RFC 7951 JSON as pieces of one entry each: ``[top, None, value]``
    for a top-level node, ``[top, member, value]`` for a member of a top-level container
    that is not a list, ``[top, member, [entry]]`` for each entry of a list in it."""
    if not text.strip():
        return []
    doc = json.loads(text)
    out: list[Any] = []
    for top, value in doc.items():
        if not isinstance(value, dict) or not value:
            out.append([top, None, value])
            continue
        for member, v in value.items():
            if isinstance(v, list) and v and all(isinstance(e, dict) for e in v):
                out.extend([top, member, [e]] for e in v)
            else:
                out.append([top, member, v])
    return out


def _join(pieces: list[Any]) -> str:
    """The text :func:`_split` took apart (members in their order, entries in theirs)."""
    if not pieces:
        return ""
    doc: dict[str, Any] = {}
    for top, member, value in pieces:
        if member is None:
            doc[top] = value
            continue
        node = doc.setdefault(top, {})
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) \
                and isinstance(node.get(member), list):
            node[member].append(value[0])
        else:
            node[member] = value
    return json.dumps(doc)

