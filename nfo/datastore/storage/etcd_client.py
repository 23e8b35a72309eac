"""The one door to an etcd cluster (v3 gRPC API, through the protobuf stubs of the
optional ``aetcd`` package): typed requests in, typed results out.

Every call goes through :meth:`EtcdClient._call`, which turns gRPC failures into nfo's
errors and moves to the next endpoint when the one in use is gone (etcd clients are
given one endpoint; the rotation is ours).  A call that may have reached the cluster
before failing (a transaction whose answer was lost) is not sent again unless the
caller says it is safe to: it raises :class:`~nfo.errors.StorageUnavailable` with
``ambiguous`` set, and the caller finds out from the data what happened.  Watches
resume on another endpoint from the revision after the last one delivered; a revision
the cluster has compacted away raises :class:`Compacted`, so the watcher re-reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from nfo.errors import InvalidValue, StorageUnavailable

__all__ = [
    "Compacted",
    "Compare",
    "Delete",
    "EtcdClient",
    "KeyValue",
    "Put",
    "Range",
    "TxnResult",
    "WatchBatch",
    "WatchEvent",
    "parse_endpoints",
    "parse_prefix",
    "prefix_end",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_PAGE = 10_000
"""Keys per range request when reading a prefix: one answer stays far below gRPC's
message limit, and every page is read at the first page's revision."""


def _rpc() -> Any:
    try:
        from aetcd import rpc  # optional dependency: nfo[etcd]
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise InvalidValue("the etcd store needs the etcd extra: pip install 'nfo[etcd]'") from e
    return rpc


def parse_endpoints(spec: str) -> list[str]:
    """``etcd://host:port,host:port[/prefix/]`` (or the bare list) as ``host:port``
    strings."""
    body = spec.removeprefix("etcd://").strip().split("/", 1)[0]
    out = []
    for part in body.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidValue(f"not an etcd endpoint (host:port): {part.strip()!r}")
        out.append(f"{host}:{int(port)}")
    return out


def parse_prefix(spec: str, default: str = "/nfo/") -> str:
    """The key prefix of ``etcd://host:port,.../prefix/`` (``default`` without one)."""
    _, sep, path = spec.removeprefix("etcd://").strip().partition("/")
    if not sep or not path.strip("/"):
        return default
    return "/" + path.strip("/") + "/"


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with ``prefix`` (etcd's range_end)."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Compare:
    """One guard of a transaction: ``target`` of ``key`` compared to ``value``."""

    key: bytes
    target: Literal["mod", "create", "version", "value"]
    op: Literal["==", "!=", "<", ">"]
    value: int | bytes

    @classmethod
    def mod_revision(cls, key: bytes, revision: int) -> Compare:
        """The key was last written at ``revision`` (0: it does not exist)."""
        return cls(key, "mod", "==", revision)

    @classmethod
    def absent(cls, key: bytes) -> Compare:
        return cls(key, "version", "==", 0)

    @classmethod
    def value_is(cls, key: bytes, value: bytes) -> Compare:
        return cls(key, "value", "==", value)


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    """``key``; with ``prefix``, every key starting with it; with ``end``, every key in
    [key, end)."""

    key: bytes
    prefix: bool = False
    end: bytes | None = None


@dataclass(frozen=True, slots=True)
class Range:
    key: bytes
    prefix: bool = False
    limit: int = 0


Op = Put | Delete | Range


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    """The cluster's revision after the transaction (its own, when it wrote)."""
    ranges: list[list[KeyValue]] = field(default_factory=list)
    """What each :class:`Range` of the branch taken read, in order."""


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: Literal["put", "delete"]
    kv: KeyValue


@dataclass(frozen=True, slots=True)
class WatchBatch:
    revision: int
    """The cluster's revision when the batch was sent: every change up to it that the
    watch selects has been delivered (a batch without events says only that)."""
    events: list[WatchEvent]


class Compacted(Exception):
    """The revision a watch or read asked for is gone: the cluster compacted its
    history up to ``revision``.  Read the current state again."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"etcd compacted its history up to revision {revision}")
        self.revision = revision


_NOT_SENT = ("failed to connect", "connection refused", "no leader",
             "etcdserver: not capable", "name resolution")
"""Parts of an UNAVAILABLE error's details that say the request never reached a leader
(sending it again is safe whatever it does)."""


class EtcdClient:
    """A connection to one of ``endpoints`` at a time (``host:port``, plain gRPC on
    loopback or a private network).  ``timeout``: seconds one call may take before it is
    treated as lost; ``failover``: seconds a call keeps trying the other endpoints."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 2.0,
                 failover: float = 10.0) -> None:
        if not endpoints:
            raise InvalidValue("no etcd endpoint given")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.failover = failover
        self._i = 0
        self._channel: Any = None
        self._stubs: dict[str, Any] = {}
        self._rpc = _rpc()

    @property
    def endpoint(self) -> str:
        """The endpoint in use."""
        return self.endpoints[self._i]

    async def close(self) -> None:
        ch, self._channel, self._stubs = self._channel, None, {}
        if ch is not None:
            await ch.close()
            await asyncio.sleep(0.01)  # gRPC's tasks for the calls it cancelled end

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _stub(self, kind: str) -> Any:
        if self._channel is None:
            self._channel = self._rpc.insecure_channel(
                self.endpoint, options=[
                    ("grpc.max_receive_message_length", 256 << 20),
                    ("grpc.max_send_message_length", 256 << 20),
                    # a member that stops answering (paused, cut off) is noticed by
                    # its silence; etcd accepts pings every 5 s at most
                    ("grpc.keepalive_time_ms", 5_000),
                    ("grpc.keepalive_timeout_ms", 2_000),
                    ("grpc.keepalive_permit_without_calls", 1),
                ])
        stub = self._stubs.get(kind)
        if stub is None:
            stub = self._stubs[kind] = getattr(self._rpc, f"{kind}Stub")(self._channel)
        return stub

    async def _rotate(self) -> None:
        await self.close()
        self._i = (self._i + 1) % len(self.endpoints)

    async def _call(self, kind: str, method: str, request: Any, *, retry: bool) -> Any:
        """``method`` of the ``kind`` service; on a lost endpoint, the next one, for up to
        ``failover`` seconds (only if ``retry``, or if the request surely went nowhere)."""
        deadline = time.monotonic() + self.failover
        delay = 0.02
        while True:
            try:
                fn: Callable[..., Awaitable[Any]] = getattr(self._stub(kind), method)
                return await fn(request, timeout=self.timeout)
            except self._rpc.AioRpcError as e:
                code, details = e.code(), e.details() or ""
                err = self._error(code, details)
                if err is not None:
                    raise err from e
                unsent = any(s in details.lower() for s in _NOT_SENT)
                if not (retry or unsent):
                    raise StorageUnavailable(
                        f"etcd at {self.endpoint} did not answer ({code.name}: {details}); "
                        "the write may or may not have been made", ambiguous=True) from e
                if time.monotonic() + delay > deadline:
                    raise StorageUnavailable(
                        f"no etcd endpoint of {', '.join(self.endpoints)} answered within "
                        f"{self.failover:g} s (last: {code.name}: {details})") from e
                log.info("etcd %s: %s (%s); trying the next endpoint", self.endpoint,
                         code.name, details)
                await self._rotate()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _error(self, code: Any, details: str) -> Exception | None:
        """The error a failure is, when another endpoint would not change it; None when
        the endpoint is what failed."""
        sc = self._rpc.StatusCode
        if code == sc.OUT_OF_RANGE and "compacted" in details:
            return Compacted(0)
        if "too many operations" in details or "too large" in details:
            return StorageUnavailable(
                f"etcd refused a transaction as too big ({details}): nfo needs a cluster "
                "started with --max-txn-ops 10000 --max-request-bytes 33554432 or more "
                "(docs/replicas.md)")
        if code in (sc.INVALID_ARGUMENT, sc.FAILED_PRECONDITION, sc.RESOURCE_EXHAUSTED,
                    sc.PERMISSION_DENIED, sc.UNAUTHENTICATED, sc.NOT_FOUND,
                    sc.UNIMPLEMENTED):
            return StorageUnavailable(f"etcd refused the request ({code.name}: {details})")
        if code in (sc.UNAVAILABLE, sc.DEADLINE_EXCEEDED, sc.CANCELLED, sc.UNKNOWN,
                    sc.INTERNAL, sc.ABORTED):
            return None
        return StorageUnavailable(f"etcd failed ({code.name}: {details})")

    # -- key-value ----------------------------------------------------------------
    async def get(self, key: bytes) -> KeyValue | None:
        kvs, _ = await self._range(key, None, 0, 0)
        return kvs[0] if kvs else None

    async def read_prefix(self, prefix: bytes, *, revision: int = 0
                          ) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix`` at one revision (0: the current one), by key, and
        that revision."""
        end = prefix_end(prefix)
        out: list[KeyValue] = []
        start = prefix
        while True:
            kvs, rev = await self._range(start, end, _PAGE, revision)
            revision = revision or rev
            out.extend(kvs)
            if len(kvs) < _PAGE:
                return out, revision
            start = kvs[-1].key + b"\0"

    async def revision(self) -> int:
        """The cluster's revision now (a linearizable read)."""
        req = self._rpc.RangeRequest(key=b"\0", count_only=True)
        resp = await self._call("KV", "Range", req, retry=True)
        return int(resp.header.revision)

    async def count_prefix(self, prefix: bytes) -> int:
        req = self._rpc.RangeRequest(key=prefix, range_end=prefix_end(prefix),
                                     count_only=True)
        resp = await self._call("KV", "Range", req, retry=True)
        return int(resp.count)

    async def _range(self, key: bytes, end: bytes | None, limit: int, revision: int
                     ) -> tuple[list[KeyValue], int]:
        req = self._rpc.RangeRequest(key=key, limit=limit, revision=revision)
        if end is not None:
            req.range_end = end
        try:
            resp = await self._call("KV", "Range", req, retry=True)
        except Compacted:
            raise Compacted(revision) from None
        return [_kv(k) for k in resp.kvs], int(resp.header.revision)

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        """Write ``key`` (sending it again is harmless); the revision of the write."""
        req = self._rpc.PutRequest(key=key, value=value, lease=lease)
        resp = await self._call("KV", "Put", req, retry=True)
        return int(resp.header.revision)

    async def txn(self, compare: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = (), *, retry: bool = False) -> TxnResult:
        """One transaction: ``success`` if every guard holds, else ``failure``.
        ``retry``: sending it again after a lost answer is safe (its guards fail the
        second time, or its writes are the same)."""
        rpc = self._rpc
        req = rpc.TxnRequest(compare=[self._compare(c) for c in compare],
                             success=[self._op(o) for o in success],
                             failure=[self._op(o) for o in failure])
        resp = await self._call("KV", "Txn", req, retry=retry)
        ranges = [[_kv(k) for k in r.response_range.kvs] for r in resp.responses
                  if r.WhichOneof("response") == "response_range"]
        return TxnResult(bool(resp.succeeded), int(resp.header.revision), ranges)

    def _compare(self, c: Compare) -> Any:
        rpc = self._rpc
        cmp = rpc.Compare(key=c.key)
        cmp.result = {"==": rpc.Compare.EQUAL, "!=": rpc.Compare.NOT_EQUAL,
                      "<": rpc.Compare.LESS, ">": rpc.Compare.GREATER}[c.op]
        if c.target == "value":
            assert isinstance(c.value, bytes)
            cmp.target, cmp.value = rpc.Compare.VALUE, c.value
        else:
            assert isinstance(c.value, int)
            if c.target == "mod":
                cmp.target, cmp.mod_revision = rpc.Compare.MOD, c.value
            elif c.target == "create":
                cmp.target, cmp.create_revision = rpc.Compare.CREATE, c.value
            else:
                cmp.target, cmp.version = rpc.Compare.VERSION, c.value
        return cmp

    def _op(self, o: Op) -> Any:
        rpc = self._rpc
        if isinstance(o, Put):
            return rpc.RequestOp(request_put=rpc.PutRequest(key=o.key, value=o.value,
                                                            lease=o.lease))
        if isinstance(o, Delete):
            req = rpc.DeleteRangeRequest(key=o.key)
            if o.prefix or o.end is not None:
                req.range_end = prefix_end(o.key) if o.end is None else o.end
            return rpc.RequestOp(request_delete_range=req)
        rreq = rpc.RangeRequest(key=o.key, limit=o.limit)
        if o.prefix:
            rreq.range_end = prefix_end(o.key)
        return rpc.RequestOp(request_range=rreq)

    async def compact(self, revision: int) -> None:
        req = self._rpc.CompactionRequest(revision=revision, physical=True)
        await self._call("KV", "Compact", req, retry=True)

    # -- leases ---------------------------------------------------------------------
    async def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its id."""
        req = self._rpc.LeaseGrantRequest(TTL=ttl)
        resp = await self._call("Lease", "LeaseGrant", req, retry=True)
        if resp.error:
            raise StorageUnavailable(f"etcd refused a lease: {resp.error}")
        return int(resp.ID)

    async def refresh(self, lease: int) -> int:
        """Renew ``lease``; the seconds it now has (0: it had already expired)."""
        req = self._rpc.LeaseKeepAliveRequest(ID=lease)

        async def one(request: Any, timeout: float) -> Any:
            call = self._stub("Lease").LeaseKeepAlive(iter([request]), timeout=timeout)
            async for resp in call:
                return resp
            return None

        deadline = time.monotonic() + self.failover
        while True:
            try:
                resp = await one(req, self.timeout)
                return 0 if resp is None else int(resp.TTL)
            except self._rpc.AioRpcError as e:
                err = self._error(e.code(), e.details() or "")
                if err is not None:
                    raise err from e
                if time.monotonic() > deadline:
                    raise StorageUnavailable(
                        f"no etcd endpoint renewed lease {lease:x} within "
                        f"{self.failover:g} s") from e
                await self._rotate()
                await asyncio.sleep(0.05)

    async def revoke(self, lease: int) -> None:
        req = self._rpc.LeaseRevokeRequest(ID=lease)
        try:
            await self._call("Lease", "LeaseRevoke", req, retry=True)
        except StorageUnavailable as e:
            if "not found" not in str(e):
                raise

    # -- cluster ----------------------------------------------------------------------
    async def members(self) -> list[tuple[str, list[str]]]:
        """(name, client URLs) of every member."""
        resp = await self._call("Cluster", "MemberList", self._rpc.MemberListRequest(),
                                retry=True)
        return [(m.name, list(m.clientURLs)) for m in resp.members]

    async def leader(self) -> str:
        """The name of the member that leads now, as the endpoint in use sees it."""
        st = await self._call("Maintenance", "Status", self._rpc.StatusRequest(), retry=True)
        resp = await self._call("Cluster", "MemberList", self._rpc.MemberListRequest(),
                                retry=True)
        for m in resp.members:
            if st.leader == m.ID:
                return str(m.name)
        return ""

    # -- watches ----------------------------------------------------------------------
    async def watch(self, prefix: bytes, start_revision: int) -> AsyncIterator[WatchBatch]:
        """Every change under ``prefix`` from ``start_revision`` on, a batch per answer
        of the cluster, in revision order, each revision whole; after a lost endpoint
        the watch goes on from the next endpoint, where it stopped.  Raises
        :class:`Compacted` when the revision it needs is gone."""
        rpc = self._rpc
        nxt = start_revision
        deadline: float | None = None
        while True:
            create = rpc.WatchCreateRequest(key=prefix, range_end=prefix_end(prefix),
                                            start_revision=nxt, progress_notify=True)
            queue: asyncio.Queue[Any] = asyncio.Queue()
            queue.put_nowait(rpc.WatchRequest(create_request=create))

            async def requests(q: asyncio.Queue[Any] = queue) -> AsyncIterator[Any]:
                while (r := await q.get()) is not None:
                    yield r

            call = self._stub("Watch").Watch(requests())
            try:
                async for resp in call:
                    deadline = None
                    if resp.compact_revision:
                        raise Compacted(int(resp.compact_revision))
                    if resp.canceled:
                        raise StorageUnavailable(
                            f"etcd cancelled a watch: {resp.cancel_reason or 'no reason'}")
                    if resp.created and not resp.events:
                        continue
                    events = [WatchEvent("delete" if ev.type == 1 else "put", _kv(ev.kv))
                              for ev in resp.events]
                    rev = int(resp.header.revision)
                    if events:
                        nxt = events[-1].kv.mod_revision + 1
                    yield WatchBatch(max(rev, nxt - 1), events)
                raise StorageUnavailable(f"etcd at {self.endpoint} ended a watch")
            except self._rpc.AioRpcError as e:
                err = self._error(e.code(), e.details() or "")
                if err is not None:
                    raise err from e
                deadline = deadline or time.monotonic() + self.failover
                if time.monotonic() > deadline:
                    raise StorageUnavailable(
                        f"no etcd endpoint resumed a watch within {self.failover:g} s") from e
                log.info("etcd %s: watch lost (%s); resuming at revision %d elsewhere",
                         self.endpoint, e.code().name, nxt)
                await self._rotate()
                await asyncio.sleep(0.05)
            finally:
                queue.put_nowait(None)
                call.cancel()
                with contextlib.suppress(BaseException):
                    await call.code()  # the call ended, and gRPC's task for it with it
                await asyncio.sleep(0)


def _kv(k: Any) -> KeyValue:
    return KeyValue(bytes(k.key), bytes(k.value), int(k.create_revision),
                    int(k.mod_revision), int(k.version), int(k.lease))
