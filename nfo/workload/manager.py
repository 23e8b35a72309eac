"""The workload manager: turns configured NF instances into running workloads.

It reconciles like a Kubernetes controller.  Datastore change events only
enqueue an instance name; one worker per name at a time compares the desired
state (the ``nf-instance`` entry in running, with its descriptor) with the
observed state (what this manager recorded in operational state, plus what the
VIM reports) and takes the next step.  Every step is recorded in operational
state before and after the VIM call, so a restart (even ``kill -9``) resumes
where it stopped: a workload the VIM already has is adopted through the
driver's tags (no duplicates) and a workload no configuration asks for is
terminated (no orphans).  VIM work never runs inside a datastore callback.

Errors are classified: temporary ones are retried with exponential backoff
(attempts and the next retry time are visible in state), permanent ones end in
``failed`` with the reason.

VIM accounts are isolated from each other: each has its own limit of driver
calls in flight, and every call is abandoned after ``call_timeout`` (a temporary
error), so a VIM that hangs or crawls holds up only its own instances.

Running instances are checked by one listing of their VIM a round when its driver
can list (:class:`~nfo.registry.StatusLister`), so a failure is seen within a health
interval whatever the number of instances; other drivers are asked instance by
instance, at most ``health_rate`` checks a second.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import heapq
import json
import logging
import math
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar, cast

from nfo.datastore import Change, ChangeDeleted, ChangeEvent, Datastore, RpcCall, Session
from nfo.errors import InvalidValue, NfoError, OperationFailed
from nfo.registry import (
    Capacity,
    ComputeNeeds,
    Driver,
    DriverError,
    DriverRegistry,
    FinalCallback,
    InitResponse,
    InstantiateRequest,
    PlacementError,
    Status,
    StatusLister,
    TemporaryError,
    Usage,
    VimAccount,
    WorkloadState,
)
from nfo.schema import Fmt, Tree, WithDefaults, print_node
from nfo.schema.values import format_time, parse_time
from nfo.workload import config as nfconfig
from nfo.workload.observed import Observed

__all__ = ["ACTION_PATHS", "ACTION_TIMEOUT", "OWNER", "Desired", "WorkloadManager"]

log = logging.getLogger(__name__)

OWNER = "nfo-workload"
INSTANCES = "/nfo-instances:nf-instances"
ACTIVE = ("initializing", "running", "terminating")
_ACTIONS = ("/nfo-instances:nf-instances/nf-instance/restart",
            "/nfo-instances:nf-instances/nf-instance/redeploy")
_CONFIG_ACTIONS = tuple(f"/nfo-instances:nf-instances/nf-instance/{a}"
                        for a in ("check-sync", "sync-to", "sync-from", "dry-run"))
CALL_TIMEOUT = 300.0
"""Seconds a driver call may take before the manager stops waiting (a temporary error)."""

ACTION_TIMEOUT = 120.0
"""Seconds a configuration action (check-sync, sync-to, ...) may wait for its answer."""
ACTION_PATHS = _ACTIONS + _CONFIG_ACTIONS
"""The actions the manager serves (where it runs: on the replica that leads it)."""

_T = TypeVar("_T")


def _gave_up(attempts: int, d: Desired, reason: str) -> str:
    """Why an instance whose temporary failures outlasted its instantiation timeout failed."""
    return f"gave up after {attempts} attempt(s) within {d.timeout:.0f}s: {reason}"


def _now_iso(t: float | None = None) -> str:
    return format_time(time.time() if t is None else t)


def _parse_iso(s: str | None) -> float | None:
    return parse_time(s) if s else None


def _json_at(tree: Tree, path: str) -> dict[str, Any] | None:
    node = tree.node(path)
    if node is None:
        return None
    return _first_value(print_node(node, Fmt.JSON, with_defaults=WithDefaults.REPORT_ALL))


@functools.lru_cache(maxsize=256)
def _needs(vcpus: int, memory_mb: int, disk_gb: int) -> ComputeNeeds:
    """One object per distinct need: every instance's recorded state holds one."""
    return ComputeNeeds(vcpus, memory_mb, disk_gb)


def _entries_at(tree: Tree, path: str, name: str) -> Iterator[dict[str, Any]]:
    """Each entry of list ``name`` in the container at ``path`` (RFC 7951, defaults
    included), decoded one at a time: a million entries never sit in memory decoded
    together."""
    node = tree.node(path)
    if node is None:
        return
    text = print_node(node, Fmt.JSON, with_defaults=WithDefaults.REPORT_ALL)
    head = f'{{"{path[1:]}":{{"{name}":['
    if not text.startswith(head):  # no entries, or printed otherwise
        yield from _first_value(text).get(name, [])
        return
    decode = _DECODER.raw_decode
    i = len(head)
    while text[i] != "]":
        entry, i = decode(text, i)
        yield entry
        if text[i] == ",":
            i += 1


_DECODER = json.JSONDecoder()


def _first_value(text: str) -> dict[str, Any]:
    """The object a node printed alone (RFC 7951) holds."""
    doc: dict[str, Any] = json.loads(text)
    if not doc:  # a container with nothing to print
        return {}
    value: Any = next(iter(doc.values()))
    out: dict[str, Any] = value[0] if isinstance(value, list) else value
    return out


_DESCRIPTORS_KEPT = 256
_BULK_READ = 256
_ADMIT_BATCH = 256
"""Reconciles started per event-loop turn: a write of 100,000 instances must not hold
every other request for the seconds their first steps take together."""
_IN_FLIGHT = 256
"""Reconciles at work at once, not counting those waiting on a VIM or a device (those
cost no turn, and one slow account must not hold the others' instances back): a bulk
write's instances queue behind, so a client's request, read and committed over many
turns of the event loop, is not held in each by the steps of a hundred thousand."""
_DECODED_TOGETHER = 1024
"""Recorded states decoded in one call at start: they share one copy of each member name."""
_PER_TURN = 1024
"""Instances a start or a VIM's listing handles per turn of the event loop (the front
ends answer in between)."""
_SWEPT_PER_TURN = 256
"""Instances a round of health checks by listing looks at per turn of the event loop
(about half a millisecond: a client's request waits at most that for it)."""
_SWEEP_SHARE = 10
"""A round of health checks by listing starts at most once per this many times the
last round's length."""
_TIMER_SLACK = 0.001
"""Wake-ups this close are due together (the loop runs a timer within its clock's
resolution of its time)."""
_TICK = 0.01
"""Seconds of loop time whose wake-ups share one list (:meth:`WorkloadManager.requeue`):
a wake-up comes up to one tick late, never early."""
_SPECS_KEPT = 4096
_RELEASE_AFTER = 1000
"""Readings of instances let go before the manager, once idle, calls ``released``."""
_UNSETTLED = ("pending", "initializing", "terminating")
"""Statuses whose instance is reconciled again soon: its staged desired state is kept."""


class Desired(NamedTuple):
    """What running asks for one instance, with the descriptor resolved (a tuple: a bulk
    write makes one per instance on the commit's path, and a frozen dataclass costs four
    times as much to make)."""

    name: str
    descriptor_id: str
    vim: str | None
    parameters: Mapping[str, str]
    """Shared by instances with equal specs: never changed in place."""
    enabled: bool
    descriptor: dict[str, Any]
    digest: str
    day2: Mapping[str, Any] | None = None
    on_drift: str | None = None

    @property
    def netconf(self) -> Mapping[str, Any] | None:
        """The descriptor's NETCONF management, when nfo configures the function."""
        return self.descriptor.get("netconf")

    @property
    def healing(self) -> Mapping[str, Any]:
        return self.descriptor.get("healing") or {}

    @property
    def vim_types(self) -> list[str]:
        return list(self.descriptor.get("vim-types", []))

    @property
    def compute(self) -> ComputeNeeds:
        c = self.descriptor.get("compute", {})
        return _needs(int(c.get("vcpus", 1)), int(c.get("memory-mb", 512)),
                      int(c.get("disk-gb", 0)))

    @property
    def timeout(self) -> float:
        return float(self.descriptor.get("instantiation-timeout", 300))

    def request(self, vim_type: str) -> InstantiateRequest:
        kind = vim_type.split(":", 1)[-1]
        return InstantiateRequest(
            instance=self.name,
            descriptor=self.descriptor_id,
            deployment=self.descriptor.get(kind) or {},
            parameters=self.parameters,
            compute=self.compute,
            timeout=self.timeout,
        )


class WorkloadManager:
    """Reconciles every nf-instance; start() (or begin()) it after the datastore, stop()
    before."""

    def __init__(
        self,
        ds: Datastore,
        registry: DriverRegistry,
        *,
        concurrency: int = 64,
        call_timeout: float = CALL_TIMEOUT,
        poll_interval: float = 1.0,
        health_interval: float = 10.0,
        health_rate: float = 1000.0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        released: Callable[[], None] | None = None,
        fence: Callable[[], bool] | None = None,
        reconciles: bool = True,
    ) -> None:
        """``health_interval``: seconds between health checks of a running instance,
        stretched so that all of them together make at most ``health_rate`` checks per
        second (100,000 instances are checked every 100 s by default).  ``fence``:
        whether this replica still leads the workload (an etcd
        :class:`~nfo.datastore.storage.etcd.Leadership`), asked right before every VIM
        call and device session, so that a replica that no longer does makes none.
        ``released`` is called when the manager, idle, has let go of the desired states of at least
        ``_RELEASE_AFTER`` instances (a start's reading of every instance, a bulk
        write's), so that the process can give that memory back.

        ``reconciles=False``: a replica that does not lead the workload.  It refuses the
        writes the leader's manager would refuse (the same checks, in the change phase
        of the writes it receives), and does nothing else: no action, no reconcile, no
        VIM call."""
        if health_rate <= 0:
            raise ValueError("health_rate must be positive")
        self.ds = ds
        self.registry = registry
        self.fence = fence or _always
        self.reconciles = reconciles
        self.poll_interval = poll_interval
        self.health_interval = health_interval
        self.health_rate = health_rate
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.concurrency = concurrency
        self.call_timeout = call_timeout
        self._released = released
        self._let_go = 0
        """Instances' desired states read and let go since ``released`` was last called."""
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._resyncs: set[asyncio.Task[None]] = set()
        self._listing: set[str] = set()
        """VIMs whose resources resync() is still listing."""
        self._deferred: set[str] = set()
        """Instances recorded on such a VIM, enqueued once it is listed."""
        self._again: set[str] = set()
        self._waiting: set[str] = set()
        """Enqueued names whose worker starts in a later turn (:meth:`_admit`)."""
        self._waiting_order: collections.deque[str] = collections.deque()
        self._admit_handle: asyncio.Handle | None = None
        self._when: dict[str, list[Any]] = {}
        """Each instance's one pending wake-up: the list of its tick in ``_ticks``."""
        self._ticks: dict[int, list[Any]] = {}
        """Per tick (loop time / ``_TICK``) with wake-ups, ``[tick, name, ...]``; a name
        whose wake-up has moved to another tick's list is skipped there."""
        self._due: list[int] = []
        """Heap of the ticks in ``_ticks``."""
        self._wake: asyncio.TimerHandle | None = None
        self._obs: dict[str, Observed] = {}
        self._usage_by_vim: dict[str, Usage] = {}
        self._cache_rev = -1
        self._all_desired: dict[str, Desired] | None = None
        """Every instance's desired state as of running's revision ``_cache_rev``."""
        self._vim_cache: dict[str, VimAccount] | None = None
        self._desc_cache: dict[str, tuple[dict[str, Any], str]] = {}
        """Descriptors as running holds them, read since its catalog last changed."""
        self._catalog_open: set[int] = set()
        """Revisions of the catalog commits between their change phase and their done or
        abort (each change phase that passes is followed by one of them; a retried commit
        reuses its revision): while one is open, descriptors are read, not cached.  A
        commit of another replica comes as a done alone."""
        self._catalog_rev = 0
        """The newest revision whose catalog change phase was seen."""
        self._staged: dict[str, tuple[int, Desired]] = {}
        """Instances' desired states as a commit's change phase read them, by the
        commit's revision; what running holds once that commit is done (:meth:`_desired`).
        Kept until a reconcile after that leaves the instance settled (:meth:`_work`)."""
        self._done_rev = 0
        """The newest commit of instances whose done event was handled."""
        self._desc_by_text: dict[str, tuple[dict[str, Any], str]] = {}
        self._by_resource: dict[str, str] = {}
        self._hints: dict[str, Status] = {}
        self._wired: set[int] = set()
        self._unlisted: set[str] = set()
        """VIMs whose driver lists but whose last listing failed: checked one by one."""
        self._swept = 0
        """Running instances the last round of listings covered."""
        self._sweeper: asyncio.Task[None] | None = None
        self._session: Session | None = None
        self._asks: dict[str, list[tuple[str, asyncio.Future[dict[str, str]]]]] = {}
        """Configuration actions waiting for the instance's worker."""
        self._specs: dict[bytes, nfconfig.ConfigSpec] = {}
        self._digests: dict[tuple[str, Any, tuple[tuple[str, str], ...]],
                            tuple[str, Mapping[str, str]]] = {}
        """Per spec (what it is made of): its digest and its parameters, shared by the
        instances of equal specs (those of one descriptor, often)."""
        self._day2s: dict[tuple[tuple[str, Any], ...], Mapping[str, Any]] = {}
        """One copy of each distinct ``day2`` (:meth:`_shared_day2`)."""
        self._device_slots = asyncio.Semaphore(concurrency)
        """NETCONF conversations with network functions in flight at most."""
        self._away = _Away(self._kick)
        self._heals: dict[str, list[float]] = {}
        """When each instance was healed (in this process), for the policy's window."""
        self._subs: list[Any] = []
        self._pending: list[_StateWrite] = []
        """Instance states waiting for the next shared write (:meth:`_record`)."""
        self._writers: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.ready = asyncio.Event()
        """Set once the start has read every instance's desired and recorded state."""
        self._loading: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        """:meth:`begin`, then until every instance is loaded and resynced."""
        await self.begin()

    def begin(self) -> asyncio.Task[None]:
        """Subscribe and take the actions now, then read every instance's desired and
        recorded state in the background, a batch per turn of the event loop (the front
        ends serve meanwhile), and resync; the task returned ends with that.

        Until then the manager judges nothing: a commit that touches instances, the
        catalog or the VIMs waits in its change phase, an action before it starts
        (:meth:`_loaded`); so nothing is decided from a partial reading."""
        self._session = self.ds.internal_session(OWNER)
        # the catalog first: a commit that changes it marks it open (:meth:`_on_catalog`)
        # before its instances are judged
        self._subs.append(self.ds.subscribe("nfo-catalog", self._on_catalog, priority=1))
        # which instances changed is all it reads of the changes
        self._subs.append(self.ds.subscribe("nfo-instances", self._on_instances,
                                            entries=True))
        self._subs.append(self.ds.subscribe("nfo-vim", self._on_vims))
        if not self.reconciles:
            self.ready.set()  # its checks read the commit's tree, nothing loaded
            self._loading = asyncio.get_running_loop().create_task(
                asyncio.sleep(0), name="nfo-manager-checks")
            return self._loading
        self.idle.clear()
        for path in _ACTIONS:
            self.ds.register_rpc(path, self._on_action)
        for path in _CONFIG_ACTIONS:
            self.ds.register_rpc(path, self._on_config_action)
        self._loading = asyncio.get_running_loop().create_task(self._load(),
                                                               name="nfo-manager-load")
        return self._loading

    @property
    def instances(self) -> int:
        """Instances whose state the manager holds."""
        return len(self._obs)

    async def _load(self) -> None:
        await self._read_all_desired()
        await self._load_observed(self._all_desired or {})
        self.ready.set()
        await self.resync()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(),
                                                               name="nfo-manager-sweep")
        self._maybe_idle()

    async def _loaded(self) -> None:
        """Returns once the start's reading is complete; raises what ended it."""
        if self.ready.is_set():
            return
        assert self._loading is not None
        try:
            await asyncio.shield(self._loading)
        except asyncio.CancelledError:
            if self._loading.cancelled():   # stopped while loading, not this waiter
                raise OperationFailed("nfo is stopping") from None
            raise

    async def stop(self) -> None:
        self._stopping = True
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loading
        if self.reconciles:
            for path in ACTION_PATHS:
                self.ds.unregister_rpc(path)
        for asks in self._asks.values():
            for _, fut in asks:
                if not fut.done():
                    fut.set_exception(OperationFailed("nfo is stopping"))
        self._asks.clear()
        for sub in self._subs:
            await self.ds.unsubscribe(sub)
        self._subs.clear()
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._when.clear()
        self._ticks.clear()
        self._due.clear()
        resyncs = list(self._resyncs)
        for r in resyncs:
            r.cancel()
        await asyncio.gather(*resyncs, return_exceptions=True)
        if self._admit_handle is not None:
            self._admit_handle.cancel()
            self._admit_handle = None
        self._waiting_order.clear()
        self._waiting.clear()
        workers = list(self._workers.values())
        for w in workers:
            w.cancel()
        for w in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await w
        # state writes already under way finish (their workers may be gone)
        await asyncio.gather(*self._writers, return_exceptions=True)
        await self.registry.close()
        if self._session is not None:
            await self._session.close()

    async def resync(self) -> None:
        """Enqueue everything that might need work: configured instances, recorded
        state, and every resource the VIMs hold for this installation (orphans).

        Each VIM is listed in the background: an instance recorded on a VIM waits for
        that VIM's listing (which may hold what a crash left unrecorded), every other
        one starts at once, so a VIM that hangs at restart holds up only its own
        instances, not the start of nfo."""
        keys = set(self._configured_names()) | set(self._obs)
        vims = self._vims()
        self._listing |= set(vims)
        loop = asyncio.get_running_loop()
        for vim in vims.values():
            task = loop.create_task(self._resync_vim(vim), name=f"nfo-resync-{vim.name}")
            self._resyncs.add(task)
            task.add_done_callback(self._resync_done)
        if self._resyncs:
            self.idle.clear()
        for k in sorted(keys):
            self.enqueue(k)

    async def _resync_vim(self, vim: VimAccount) -> None:
        keys: set[str] = set()
        resources: dict[str, str] = {}
        try:
            try:
                drv = self._driver(vim)
                resources = await drv.list_resources()
            except (DriverError, PlacementError) as e:
                log.warning("cannot list resources of VIM %s: %s", vim.name, e)
            configured = set(self._configured_names())
            for i, (inst, rid) in enumerate(resources.items()):
                if i % _PER_TURN == _PER_TURN - 1:
                    await asyncio.sleep(0)
                o = self._obs.get(inst)
                if o is None:
                    # nothing recorded: adopt it if configured, else it is an orphan
                    adopt = inst in configured
                    self._reset(inst, {
                        "oper-status": "initializing" if adopt else "terminating",
                        "vim": vim.name,
                        "driver": self.registry.driver_name(vim.type) or "",
                        "vim-resource-id": rid,
                        "created": time.time(),
                        "reason": "adopted from the VIM" if adopt else "orphan found on VIM",
                    })
                elif not o.get("vim-resource-id") and o.get("vim") in (None, vim.name):
                    # a crash came between the VIM accepting the request and recording it
                    o["vim-resource-id"] = rid
                    o["vim"] = vim.name
                elif o.get("vim-resource-id") != rid:
                    log.warning("terminating %s on VIM %s: a second resource for %s", rid,
                                vim.name, inst)
                    try:
                        await drv.terminate(rid)
                    except DriverError as e:
                        log.warning("could not terminate duplicate %s: %s", rid, e.reason)
                    continue
                self._by_resource[rid] = inst
                keys.add(inst)
        finally:
            self._listing.discard(vim.name)
            if self._listing:
                ready = {n for n in self._deferred
                         if self._seen(n).get("vim") not in self._listing}
                self._deferred -= ready
            else:
                ready, self._deferred = self._deferred, set()
            listed = set(resources.values())
            todo = sorted(keys | ready)
            if self._many(len(todo)) and self._desired_cache() is None:
                await self._read_all_desired()  # running moved on while it was listed
            checks: list[str] = []
            for i, k in enumerate(todo):
                if i % _PER_TURN == _PER_TURN - 1:
                    await asyncio.sleep(0)
                if self._steady(k, listed):
                    checks.append(k)
                else:
                    self.enqueue(k)
            if self._polled(vim):  # their health checks, at the pace health_rate allows
                self._requeue_spread(checks, 1 / self.health_rate)

    def _steady(self, name: str, listed: set[str]) -> bool:
        """Whether a restart finds nothing to do for ``name`` but its next health check:
        recorded running on a resource its VIM still lists, as configured, with no
        function configuration to keep in step and nothing asked of it."""
        o = self._obs.get(name)
        if o is None or o.get("oper-status") != "running" or o.get("restart"):
            return False
        if o.get("vim-resource-id") not in listed or self._asks.get(name):
            return False
        d = self._desired(name)
        return (d is not None and d.enabled and d.netconf is None
                and o.get("spec-digest") == d.digest)

    def _resync_done(self, task: asyncio.Task[None]) -> None:
        self._resyncs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("resync of a VIM failed", exc_info=task.exception())
        self._maybe_idle()

    # -- events -------------------------------------------------------------------
    async def _on_instances(self, ev: ChangeEvent) -> None:
        await self._loaded()
        names = {_instance_of(c.path) for c in ev.changes} - {None}
        many = self._many(len(names))
        if ev.phase == "change" and ev.tree is not None:
            # read once per commit; what running holds unless the catalog is changing (a
            # catalog change later in this commit's group judges these as if committed
            # after them, one at a time)
            descs = {} if self._catalog_open else dict(self._desc_cache)
            for name in names:
                self._staged.pop(name or "", None)
            if many:  # one read of the list, not one lookup and print per instance
                doc = _json_at(ev.tree, INSTANCES) or {}
                found = [self._desired_of(ev.tree, inst, descs)
                         for inst in doc.get("nf-instance", []) if inst["name"] in names]
            else:
                found = [d for d in (self._desired_from(ev.tree, name or "", descs)
                                     for name in names) if d is not None]
            types = self.registry.types()
            servable: set[tuple[str, str | None]] = set()
            for d in found:
                if (d.descriptor_id, d.vim) not in servable:
                    self._check_servable(ev.tree, d, types)
                    servable.add((d.descriptor_id, d.vim))
                self._check_config(d)
            if not self._catalog_open:
                # as running's: a catalog change later in this commit's group clears them
                self._desc_cache.update(descs)
            for d in found if self.reconciles else ():  # their reconciles need not read them
                self._staged[d.name] = (ev.revision, d)
        elif ev.phase == "done" and self.reconciles:
            self._done_rev = max(self._done_rev, ev.revision)
            for name in names:
                assert name is not None
                self.enqueue(name)
        elif ev.phase == "abort":
            for name in names:
                staged = self._staged.get(name or "")
                if staged is not None and staged[0] == ev.revision:
                    del self._staged[name or ""]

    def _many(self, changed: int) -> bool:
        """Whether ``changed`` instances are better read with the whole list, once."""
        return changed >= _BULK_READ and changed * 8 >= len(self._obs)

    async def _on_catalog(self, ev: ChangeEvent) -> None:
        await self._loaded()
        if ev.phase == "change":
            self._catalog_open.add(ev.revision)
            self._catalog_rev = max(self._catalog_rev, ev.revision)
            self._desc_cache = {}
            self._staged.clear()  # read with the descriptors this commit changes
            try:
                if ev.tree is not None:
                    self._check_catalog(ev.tree, ev.changes)
            except BaseException:  # refused here: no done or abort follows for us
                self._catalog_open.discard(ev.revision)
                raise
            return
        if ev.revision in self._catalog_open:  # done or abort: running's catalog is settled
            self._catalog_open.discard(ev.revision)
        elif ev.phase == "done":  # committed through another replica: as its change phase
            self._catalog_rev = max(self._catalog_rev, ev.revision)
            self._staged.clear()
        self._desc_cache = {}
        if ev.phase == "done" and self.reconciles:
            for name in self._configured_names():
                self.enqueue(name)

    def _check_catalog(self, tree: Tree, changes: Sequence[Change]) -> None:
        """Veto descriptors whose function modules do not compile, and any instance whose
        function configuration a changed managed descriptor makes invalid."""
        changed = {_key_in(c.path, "nf-descriptor[id='") for c in changes} - {None}
        managed = {i for i in changed if i is not None and self._check_descriptor(tree, i)}
        if not managed:
            return
        doc = _json_at(tree, INSTANCES) or {}  # only their instances are checked again
        descs: dict[str, tuple[dict[str, Any], str]] = {}
        for inst in doc.get("nf-instance", []):
            if inst.get("descriptor") in managed:
                self._check_config(
                    self._desired_of(tree, inst, descs),
                    f"/nfo-catalog:catalog/nf-descriptor[id='{inst['descriptor']}']"
                    "/netconf/day1/template")

    async def _on_vims(self, ev: ChangeEvent) -> None:
        await self._loaded()
        if ev.phase == "change":
            for c in ev.changes:
                vim = _vim_of(c.path)
                if (
                    vim is None
                    or not isinstance(c, ChangeDeleted)
                    or c.path.rsplit("/", 1)[-1] != f"vim[name='{vim}']"
                ):
                    continue
                users = [
                    k
                    for k, o in self._recorded()
                    if o.get("vim") == vim and o.get("oper-status") in ACTIVE
                ]
                if users:
                    raise InvalidValue(
                        f"VIM {vim!r} still runs {len(users)} instance(s) "
                        f"(e.g. {users[0]!r}); delete or move them first"
                    )
        elif ev.phase == "done" and self.reconciles:
            for name in self._configured_names():
                self.enqueue(name)

    def _recorded(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Every instance's recorded state: the manager's own while it reconciles, else
        what the leader's manager stored (a replica's operational records)."""
        if self.reconciles:
            yield from self._obs.items()
            return
        for batch in _recorded_states(self.ds):
            yield from batch

    def _check_servable(self, tree: Tree, d: Desired, types: set[str]) -> None:
        """Veto an instance no configured VIM type with a driver (``types``) could ever
        serve."""
        name = d.name
        if d.vim is not None:
            vim = self._vims(tree).get(d.vim)
            if vim is not None and vim.type not in types:
                raise InvalidValue(
                    f"instance {name!r}: no driver is registered for VIM type "
                    f"{vim.type} of VIM {d.vim!r}",
                    app_tag="nfo-no-driver",
                )
            return
        usable = [t for t in d.vim_types if t in types]
        if not usable:
            raise InvalidValue(
                f"instance {name!r}: descriptor {d.descriptor_id!r} runs on "
                f"{', '.join(d.vim_types) or 'no VIM type'}, and no driver is registered for "
                f"any of them (registered: {', '.join(sorted(types)) or 'none'})",
                app_tag="nfo-no-driver",
            )

    def _check_descriptor(self, tree: Tree, desc_id: str) -> bool:
        """Refuse a descriptor whose function modules do not compile (its template is
        checked with each instance's parameters, in :meth:`_check_config`); whether it
        has NETCONF management."""
        desc, _ = self._descriptor(tree, desc_id)
        netconf = desc.get("netconf")
        if netconf is None:
            return False
        try:
            nfconfig.modules_of(netconf)
        except NfoError as e:
            raise InvalidValue(
                f"descriptor {desc_id!r}: {e.message}",
                path=f"/nfo-catalog:catalog/nf-descriptor[id='{desc_id}']/netconf/module",
                app_tag="nfo-invalid-nf-module") from None
        return True

    def _check_config(self, d: Desired, path: str | None = None) -> None:
        """Refuse a write that makes an instance's function configuration invalid for the
        function's own modules, before any NETCONF call."""
        if d.netconf is None:
            return
        name = d.name
        try:
            self._config_spec(d)
        except NfoError as e:
            where = f"{e.path}: " if e.path else ""
            raise InvalidValue(
                f"instance {name!r}: {where}{e.message}",
                path=path or f"{INSTANCES}/nf-instance[name='{name}']/day2/config",
                app_tag="nfo-invalid-nf-config",
            ) from None

    def _config_spec(self, d: Desired) -> nfconfig.ConfigSpec:
        """The instance's configuration spec, from a cache keyed by everything it is made of
        (a bulk write of instances validates each distinct configuration once)."""
        assert d.netconf is not None
        key = hashlib.sha256(json.dumps([d.netconf, sorted(d.parameters.items()), d.day2,
                                         d.on_drift], sort_keys=True).encode()).digest()
        spec = self._specs.get(key)
        if spec is None:
            spec = nfconfig.config_spec(d.netconf, d.parameters, d.day2, d.on_drift)
            if len(self._specs) >= _SPECS_KEPT:
                self._specs.clear()
            self._specs[key] = spec
        return spec

    async def _on_action(self, call: RpcCall) -> dict[str, str] | None:
        await self._loaded()
        name = _instance_of(call.parent_path or "")
        if name is None or self._desired(name) is None:
            raise InvalidValue("the action needs a configured nf-instance")
        action = call.path.rsplit("/", 1)[-1]
        o = Observed(self._seen(name))
        o["restart"] = True
        if action == "redeploy":
            for c in call.op.children():
                if c.name == "vim" and c.value is not None:
                    o["redeploy-to"] = c.value
        self._obs[name] = o
        self.enqueue(name)
        return {"result": f"{action} of {name!r} scheduled"}

    def _on_final(self, resource_id: str, status: Status) -> None:
        name = self._by_resource.get(resource_id)
        if name is None or self._stopping:
            return
        o = self._seen(name)
        if (status.state is WorkloadState.RUNNING and o.get("oper-status") == "running"
                and o.get("vim-resource-id") == resource_id):
            return  # already recorded; a pass would only ask the VIM again
        self._hints[resource_id] = status
        self.enqueue(name)

    # -- the queue ----------------------------------------------------------------
    def enqueue(self, name: str) -> None:
        if self._stopping:
            return
        if self._listing and self._seen(name).get("vim") in self._listing:
            self._deferred.add(name)
            return
        if name in self._workers:
            self._again.add(name)
            return
        if name in self._waiting:
            return
        self.idle.clear()
        self._waiting.add(name)
        self._waiting_order.append(name)
        self._kick()

    def _admit(self) -> None:
        """Start the workers of the next ``_ADMIT_BATCH`` enqueued names, while fewer
        than ``_IN_FLIGHT`` run; the rest wait for the next turn, behind whatever else
        became ready (a client's reply), or for a worker to end."""
        self._admit_handle = None
        loop = asyncio.get_running_loop()
        room = _IN_FLIGHT - len(self._workers) + self._away.count
        for _ in range(min(_ADMIT_BATCH, len(self._waiting_order), room)):
            name = self._waiting_order.popleft()
            self._waiting.discard(name)
            self._workers[name] = loop.create_task(self._work(name),
                                                   name=f"nfo-reconcile-{name}")
        if room > _ADMIT_BATCH:
            self._kick()

    def _kick(self) -> None:
        """Admit the next waiting names in a later turn (a name was queued, a batch left
        room over, a worker ended or went to wait outside), unless that is arranged."""
        if self._waiting_order and self._admit_handle is None and not self._stopping:
            self._admit_handle = asyncio.get_running_loop().call_soon(self._admit)

    def _busy(self) -> bool:
        """A reconcile or resync runs, or a worker waits to start."""
        return bool(self._workers or self._resyncs or self._waiting)

    def _maybe_idle(self) -> None:
        if not self._busy():
            self.idle.set()
            self._drop_all_desired()
            self._renew_emptied()
            if self._let_go >= _RELEASE_AFTER:
                self._let_go = 0
                if self._released is not None:
                    self._released()

    def _renew_emptied(self) -> None:
        """A dict or set keeps its table when emptied (CPython shrinks one only on a later
        insert): once idle, the per-instance work tables a bulk write filled (about 40 MB
        each at a million) are made anew when empty."""
        if not self._workers:
            self._workers = {}
        if not self._waiting:
            self._waiting = set()
        if not self._again:
            self._again = set()
        if not self._staged:
            self._staged = {}
        if not self._hints:
            self._hints = {}

    def requeue(self, name: str, delay: float) -> None:
        """Enqueue ``name`` in ``delay`` seconds (up to a ``_TICK`` later), unless it is
        due earlier already.

        One list per tick, a heap of ticks and one loop timer for all instances (a
        million running instances each wait for a health check): an instance's
        wake-up costs a slot in its tick's list and its entry in ``_when``."""
        self._requeue_spread([name], 0.0, delay)

    def _requeue_spread(self, names: list[str], step: float, delay: float = 0.0) -> None:
        """:meth:`requeue` the i-th of ``names`` in ``delay + i * step`` seconds (a start
        schedules every running instance's health check at once)."""
        if not names:
            return
        loop = asyncio.get_running_loop()
        start = loop.time() + delay
        later = self._when
        ticks = self._ticks
        first: int | None = None
        for i, name in enumerate(names):
            tick = math.ceil((start + i * step) / _TICK)
            old = later.get(name)
            if old is not None and old[0] <= tick:
                continue
            at = ticks.get(tick)
            if at is None:
                ticks[tick] = at = [tick]
                heapq.heappush(self._due, tick)
            at.append(name)
            later[name] = at
            if first is None or tick < first:
                first = tick
        if first is not None and (self._wake is None or first * _TICK < self._wake.when()):
            if self._wake is not None:
                self._wake.cancel()
            self._wake = loop.call_at(first * _TICK, self._fire)

    def _fire(self) -> None:
        self._wake = None
        loop = asyncio.get_running_loop()
        now = loop.time() + _TIMER_SLACK
        due = self._due
        later = self._when
        while due and due[0] * _TICK <= now:
            at = self._ticks.pop(heapq.heappop(due))
            for name in islice(at, 1, None):
                if later.get(name) is at:
                    del later[name]
                    self.enqueue(name)
        if due and not self._stopping:
            self._wake = loop.call_at(due[0] * _TICK, self._fire)

    async def _work(self, name: str) -> None:
        try:
            while True:
                self._again.discard(name)
                try:
                    await self.reconcile(name)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("reconciling %s failed; retrying", name)
                    self.requeue(name, self.backoff_max)
                staged = self._staged.get(name)
                if (staged is not None and staged[0] <= self._done_rev
                        and self._seen(name).get("oper-status") not in _UNSETTLED):
                    del self._staged[name]
                    self._let_go += 1
                if name not in self._again:
                    break
        finally:
            self._workers.pop(name, None)
            self._kick()
            self._maybe_idle()

    async def wait_idle(self) -> None:
        """Wait until no reconcile or resync is running (timers may still be armed)."""
        while self._busy():
            await self.idle.wait()
            await asyncio.sleep(0)

    # -- desired and observed state -------------------------------------------------
    def _seen(self, name: str) -> Mapping[str, Any]:
        """The instance's observed state to read (empty when none is recorded)."""
        o = self._obs.get(name)
        return _NOTHING if o is None else o

    def _configured_names(self) -> list[str]:
        cached = self._desired_cache()
        if cached is not None:
            return list(cached)
        node = self.ds.tree("running").node(INSTANCES)
        if node is None:
            return []
        return [entry.children()[0].value or "" for entry in node.children()]

    def _desired(self, name: str) -> Desired | None:
        cached = self._desired_cache()
        if cached is not None:
            return cached.get(name)
        staged = self._staged.get(name)
        # its commit is done, and no catalog change came since it was read; a later
        # commit of the instance replaced or dropped it in its change phase
        if staged is not None and self._catalog_rev < staged[0] <= self._done_rev:
            return staged[1]
        return self._desired_from(self.ds.tree("running"), name)

    def _desired_cache(self) -> dict[str, Desired] | None:
        """Every instance's desired state, if read since running last moved on."""
        self._fresh_cache(self.ds.tree("running"))
        return self._all_desired

    def _desired_from(self, tree: Tree, name: str,
                      descs: dict[str, tuple[dict[str, Any], str]] | None = None
                      ) -> Desired | None:
        """``descs``: the descriptors already read from ``tree``, by id."""
        inst = _json_at(tree, f"{INSTANCES}/nf-instance[name='{name}']")
        return None if inst is None else self._desired_of(tree, inst, descs)

    async def _read_all_desired(self) -> None:
        """Every instance's desired state from one read of the list (a start reads them
        all), a batch of entries per turn of the event loop; kept until running moves
        on or the manager has nothing left to do.  The list is printed once; a commit
        meanwhile moves running's revision on (each descriptor read notes it,
        :meth:`_fresh_cache`), and then the reading is not kept."""
        tree = self.ds.tree("running")
        self._fresh_cache(tree)
        rev = self._cache_rev
        desired: dict[str, Desired] = {}
        entries = _entries_at(tree, INSTANCES, "nf-instance")
        while batch := list(islice(entries, _PER_TURN)):
            tree = self.ds.tree("running")
            for inst in batch:
                desired[inst["name"]] = self._desired_of(tree, inst)
            await asyncio.sleep(0)
        if self._cache_rev == rev:
            self._all_desired = desired

    def _desired_of(self, tree: Tree, inst: dict[str, Any],
                    descs: dict[str, tuple[dict[str, Any], str]] | None = None) -> Desired:
        name = inst["name"]
        desc_id = inst["descriptor"]
        if descs is None:
            desc, desc_text = self._descriptor(tree, desc_id)
        else:
            if desc_id not in descs:
                descs[desc_id] = self._descriptor(tree, desc_id)
            desc, desc_text = descs[desc_id]
        params = {p["name"]: str(p.get("value", "")) for p in inst.get("parameter", [])}
        for p in desc.get("parameter", []):
            if p["name"] not in params and "default" in p:
                params[p["name"]] = str(p["default"])
        spec = (desc_text, inst.get("vim"), tuple(sorted(params.items())))
        known = self._digests.get(spec)
        if known is None:
            text = json.dumps([desc_text, spec[1], [list(p) for p in spec[2]]])
            digest = sys.intern(hashlib.sha256(text.encode()).hexdigest()[:16])
            if len(self._digests) >= _SPECS_KEPT:
                self._digests.clear()
            known = self._digests[spec] = (digest, params)
        day2 = inst.get("day2")
        if day2 is not None:
            day2 = self._shared_day2(day2)
        return Desired(
            name,
            sys.intern(desc_id),
            inst.get("vim"),
            known[1],
            inst.get("admin-state", "enabled") == "enabled",
            desc,
            known[0],
            day2,
            inst.get("on-drift"),
        )

    def _shared_day2(self, day2: dict[str, Any]) -> Mapping[str, Any]:
        """One copy of each distinct ``day2`` (a million instances mostly share one)."""
        key = tuple(day2.items())
        try:
            found = self._day2s.get(key)
        except TypeError:  # a value that does not hash
            return day2
        if found is None:
            if len(self._day2s) >= _SPECS_KEPT:
                self._day2s.clear()
            found = self._day2s[key] = day2
        return found

    def _fresh_cache(self, tree: Tree) -> bool:
        """Whether ``tree`` is live running; caches are dropped when it has moved on."""
        if tree is not self.ds.tree("running"):
            return False
        rev = self.ds.info("running").revision
        if rev != self._cache_rev:
            self._cache_rev = rev
            self._vim_cache = None
            self._drop_all_desired()
        return True

    def _drop_all_desired(self) -> None:
        """Let go of a start's or a resync's reading of every instance (counted toward
        ``released``)."""
        if self._all_desired is not None:
            self._let_go += len(self._all_desired)
            self._all_desired = None

    def _descriptor(self, tree: Tree, desc_id: str) -> tuple[dict[str, Any], str]:
        cached = self._fresh_cache(tree)
        if cached and desc_id in self._desc_cache:
            return self._desc_cache[desc_id]
        node = tree.node(f"/nfo-catalog:catalog/nf-descriptor[id='{desc_id}']")
        text = print_node(node, Fmt.JSON, with_defaults=WithDefaults.REPORT_ALL) if node else ""
        # by content: a commit's working copy holds the same descriptors as running
        out = self._desc_by_text.get(text)
        if out is None:
            desc = _first_value(text) if text else {}
            # the spec digest's part: NETCONF management and healing change how nfo
            # configures and heals the workload, never the workload (nothing redeploys)
            out = (desc, json.dumps({k: v for k, v in desc.items()
                                     if k not in ("netconf", "healing")}, sort_keys=True))
            if len(self._desc_by_text) >= _DESCRIPTORS_KEPT:
                self._desc_by_text.clear()
            self._desc_by_text[text] = out
        if cached and not self._catalog_open:
            self._desc_cache[desc_id] = out
        return out

    def _vims(self, tree: Tree | None = None) -> dict[str, VimAccount]:
        tree = tree or self.ds.tree("running")
        cached = self._fresh_cache(tree)
        if cached and self._vim_cache is not None:
            return self._vim_cache
        out = self._read_vims(tree)
        if cached:
            self._vim_cache = out
        return out

    def _read_vims(self, tree: Tree) -> dict[str, VimAccount]:
        doc = _json_at(tree, "/nfo-vim:vims") or {}
        out = {}
        for v in doc.get("vim", []):
            c = v.get("capacity", {})
            kind = v["type"].split(":", 1)[-1]
            out[v["name"]] = VimAccount(
                name=v["name"],
                type=v["type"],
                settings=_freeze(v.get(kind, {})),
                capacity=Capacity(
                    _opt(c.get("max-instances")),
                    _opt(c.get("vcpus")),
                    _opt(c.get("memory-mb")),
                    _opt(c.get("disk-gb")),
                ),
                enabled=bool(v.get("enabled", True)),
            )
        return out

    def _usage(self) -> dict[str, Usage]:
        return {
            k: Usage(u.instances, u.vcpus, u.memory_mb, u.disk_gb)
            for k, u in self._usage_by_vim.items()
        }

    async def _load_observed(self, desired: Mapping[str, Desired]) -> None:
        """Every recorded state, with what the configured instances need of their VIM;
        a batch per turn of the event loop."""
        for batch in _recorded_states(self.ds):
            await asyncio.sleep(0)
            for name, state in batch:
                st = Observed(state)
                d = desired.get(name)
                if d is not None:
                    st["_needs"] = d.compute
                self._obs[name] = st
                self._count(st, +1)
                if st.get("vim-resource-id"):
                    self._by_resource[st["vim-resource-id"]] = name

    def _state_entry(self, name: str, st: Observed) -> str:
        """The instance's recorded state: its ``nf-instance`` entry (RFC 7951 JSON)."""
        public = {
            k: v
            for k, v in st.pairs()
            if not k.startswith("_") and k not in ("restart", "redeploy-to") and v not in (None, "")
        }
        return json.dumps({"name": name, "state": public})

    async def _record(self, name: str, entry: str, notes: list[str]) -> None:
        """Store the entry and publish ``notes`` with it: in one write with every other
        instance's state recorded in this turn of the event loop (one parse, one group
        commit), durable when this returns."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_StateWrite(name, entry, notes, fut))
        if len(self._pending) == 1:
            task = asyncio.get_running_loop().create_task(self._write_states())
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        await fut

    async def _write_states(self) -> None:
        batch, self._pending = self._pending, []
        try:
            await self._store(batch)
        except NfoError as e:
            if len(batch) > 1:  # one bad entry must not fail the others: each on its own
                log.warning("recording %d instance states at once failed (%s); one by one",
                            len(batch), e)
                await asyncio.gather(*(self._write_alone(w) for w in batch))
                return
            _settle(batch, e)
        except BaseException as e:
            _settle(batch, e)
            raise
        else:
            _settle(batch, None)

    async def _write_alone(self, w: _StateWrite) -> None:
        try:
            await self._store([w])
        except Exception as e:
            _settle([w], e)
        except BaseException as e:
            _settle([w], e)
            raise
        else:
            _settle([w], None)

    async def _store(self, batch: list[_StateWrite]) -> None:
        assert self._session is not None
        await self._session.set_oper_records_async(
            _STATE_DOC % ",".join(w.entry for w in batch),
            {f"{INSTANCES}/nf-instance[name='{w.name}']": _STATE_DOC % w.entry for w in batch},
            owner=OWNER, notifications=[n for w in batch for n in w.notes])

    async def _set(self, name: str, *, note: str | None = None, **fields: Any) -> Observed:
        """Record new state for an instance (durable on return) and, when its
        oper-status changes, publish nf-instance-state-change in the same write;
        ``note``, another notification, goes with it (or with a second write)."""
        old = self._obs.get(name)
        if old is None:
            old = Observed()
        new = Observed(old)
        new.merge({_leaf(k): v for k, v in fields.items()})
        changed = new.get("oper-status") != old.get("oper-status")
        if changed:
            new["last-change"] = time.time()
        self._obs[name] = new
        self._count(old, -1)
        self._count(new, +1)
        notes: list[str | None] = [_notification(name, old.get("oper-status"),
                                                 new.get("oper-status"), new.get("reason"))
                                   ] if changed else []
        if note is not None:
            notes.append(note)
        await self._record(name, self._state_entry(name, new), [n for n in notes if n])
        return new

    async def _forget(self, name: str) -> None:
        old = self._obs.pop(name, None)
        self._count(old or {}, -1)
        note = None
        if old is not None:
            rid = old.get("vim-resource-id")
            if rid:
                self._by_resource.pop(rid, None)
            note = _notification(name, old.get("oper-status"), "terminated", None)
        assert self._session is not None
        await self._session.delete_oper_async(
            f"{INSTANCES}/nf-instance[name='{name}']", owner=OWNER, notification=note
        )

    def _reset(self, name: str, st: Mapping[str, Any]) -> None:
        """Start over in memory (the next _set records it)."""
        self._count(self._seen(name), -1)
        self._obs[name] = new = Observed(st)
        self._count(new, +1)

    def _count(self, st: Mapping[str, Any], sign: int) -> None:
        if st.get("oper-status") in ACTIVE and st.get("vim"):
            self._usage_by_vim.setdefault(st["vim"], Usage()).add(
                st.get("_needs") or ComputeNeeds(), sign
            )

    def _driver(self, vim: VimAccount) -> _Gated:
        """The VIM account's driver, behind the account's own limit of calls in flight."""
        drv = self.registry.driver(vim)
        if id(drv) not in self._wired:
            drv.on_final(self._on_final)
            self._wired.add(id(drv))
        slots = self._slots.get(vim.name)
        if slots is None:
            slots = self._slots[vim.name] = asyncio.Semaphore(self.concurrency)
        return _Gated(drv, vim.name, slots, self.call_timeout, self._away, self.fence)

    # -- the reconcile step ---------------------------------------------------------
    async def reconcile(self, name: str) -> None:
        """One level-based pass for one instance: decide from current state only."""
        d = self._desired(name)
        o = self._obs.get(name)
        seen = _NOTHING if o is None else o
        status = seen.get("oper-status")
        if self._asks.get(name) and (d is None or not d.enabled or status != "running"
                                     or seen.get("restart")):
            self._refuse_asks(name, f"instance {name!r} is not running")
        if d is None or not d.enabled:
            if o is not None and (o.get("vim-resource-id") or status in ACTIVE):
                await self._terminate(name, o, then_forget=d is None)
            elif o is not None and d is None:
                await self._forget(name)
            elif o is not None and d is not None and status != "terminated":
                await self._set(name, oper_status="terminated", reason="admin-state disabled")
            return
        if o is not None and o.get("restart"):
            target = o.get("redeploy-to")
            if o.get("vim-resource-id"):
                await self._terminate(name, o, then_forget=False)
                if self._seen(name).get("vim-resource-id"):
                    return
            self._reset(
                name,
                {"oper-status": self._seen(name).get("oper-status"), "_requested": target},
            )
            await self._instantiate(name, d)
            return
        if o is None or status in (None, "pending", "terminated"):
            await self._instantiate(name, d)
            return
        if status == "failed":
            if o.get("spec-digest") != d.digest:
                await self._replace(name, d, o)
            elif o.get("vim-resource-id"):
                await self._retry_cleanup(name, o)
                o = self._obs.get(name)
                if (o is not None and not o.get("vim-resource-id")
                        and o.get("_heal_after_cleanup")):
                    await self._plan_heal(name, d, o.pop("_heal_after_cleanup"))
            elif o.get("next-retry") and d.healing.get("policy", "none") != "none":
                await self._heal(name, d, o)
            return
        if status == "terminating":
            await self._terminate(name, o, then_forget=False)
            if self._seen(name).get("oper-status") == "terminated":
                await self._instantiate(name, d)
            return
        if o.get("spec-digest") != d.digest and status in ("initializing", "running"):
            await self._update(name, d, o)
            return
        if status == "initializing":
            await self._progress(name, d, o)
        elif status == "running":
            if self._asks.get(name):
                await self._answer_asks(name, d)
            else:
                await self._health(name, d, o)

    async def _instantiate(self, name: str, d: Desired) -> None:
        o = self._seen(name)
        retry_at = _parse_iso(o.get("next-retry"))
        if retry_at is not None and retry_at > time.time():
            self.requeue(name, retry_at - time.time())
            return
        vims = self._vims()
        requested = o.get("_requested") or d.vim
        try:
            if o.get("vim") in vims and o.get("oper-status") == "initializing" and not requested:
                vim = vims[o["vim"]]
                drv_name = o.get("driver") or self.registry.driver_name(vim.type) or ""
                reason = o.get("placement-reason", "")
            else:
                usage = self._usage()
                if o.get("vim") in usage and o.get("oper-status") in ACTIVE:
                    usage[o["vim"]].add(o.get("_needs") or d.compute, -1)
                p = self.registry.place(name, d.vim_types, d.compute, vims, usage, requested)
                vim, drv_name, reason = p.vim, p.driver, p.reason
        except PlacementError as e:
            await self._set(
                name, oper_status="failed", reason=str(e), spec_digest=d.digest, next_retry=None
            )
            return
        attempts = int(o.get("attempts", 0)) + 1
        created = o.get("created") or time.time()
        # a new workload's configuration starts over (it is applied once the workload runs)
        cfg = None if d.netconf is None else {"status": "pending",
                                              "reason": "waiting for the workload to run"}
        await self._set(
            name,
            note=_config_note(name, (o.get("config") or {}).get("status"), cfg),
            oper_status="initializing",
            vim=vim.name,
            driver=drv_name,
            placement_reason=reason,
            attempts=attempts,
            created=created,
            spec_digest=d.digest,
            reason=None,
            next_retry=None,
            vim_resource_id=o.get("vim-resource-id"),
            config=cfg,
            _needs=d.compute,
            _requested=None,
        )
        try:
            drv = self._driver(vim)
            rid = await drv.find(name)
            if rid is None:
                rid = (await drv.instantiate(d.request(vim.type))).resource_id
        except DriverError as e:
            await self._failed_attempt(name, d, e.reason, e.temporary, attempts)
            return
        except PlacementError as e:
            await self._set(name, oper_status="failed", reason=str(e))
            return
        self._by_resource[rid] = name
        # The id is recorded with the first status learnt below; a crash before that is
        # covered by the driver's tags (find() adopts it on the next pass).
        self._obs[name]["vim-resource-id"] = rid
        await self._progress(name, d, self._obs[name], unrecorded=True)

    async def _failed_attempt(
        self, name: str, d: Desired, reason: str, temporary: bool, attempts: int,
        **fields: Any,
    ) -> None:
        """After attempt ``attempts`` failed: another one after a backoff while the
        instantiation timeout allows and the failure is temporary, else ``failed``.
        ``fields`` are recorded with either outcome."""
        o = self._seen(name)
        started = _parse_iso(o.get("last-change")) or time.time()
        delay = self._backoff(attempts - 1) * (1 + random.random() * 0.1)
        if temporary and time.time() + delay - started < d.timeout:
            await self._set(
                name,
                reason=f"temporary: {reason}; retry {attempts + 1} in {delay:.1f}s",
                next_retry=_now_iso(time.time() + delay),
                _failure=reason,
                **fields,
            )
            self.requeue(name, delay)
            return
        if temporary:
            reason = _gave_up(attempts, d, reason)
        await self._set(name, oper_status="failed", reason=reason, next_retry=None, **fields)

    def _backoff(self, n: int) -> float:
        """Seconds before retry ``n + 1`` of a series: doubling from ``backoff_base``, at
        most ``backoff_max``."""
        return float(min(self.backoff_max, self.backoff_base * 2 ** min(n, 10)))

    async def _progress(
        self, name: str, d: Desired, o: Mapping[str, Any], unrecorded: bool = False
    ) -> None:
        rid = o.get("vim-resource-id")
        vim = self._vims().get(o.get("vim", ""))
        if not rid or vim is None:
            await self._instantiate(name, d)
            return
        st = self._hints.pop(rid, None)
        try:
            if st is None or st.state is WorkloadState.RUNNING:
                st = await self._driver(vim).status(rid)
        except DriverError as e:
            st = Status(WorkloadState.INITIALIZING, e.reason)
        # the timeout runs from when this attempt series entered initializing
        created = _parse_iso(o.get("last-change")) or time.time()
        if st.state is WorkloadState.RUNNING:
            await self._set(name, oper_status="running", reason=None, next_retry=None,
                            _failure=None)
            if self._polled(vim):
                self.requeue(name, self._health_delay())
            await self._configure(name, d)
        elif st.state is WorkloadState.FAILED:
            reason = st.reason or "the VIM reported failure"
            if not st.temporary:
                await self._fail(name, vim, rid, reason)
            elif time.time() - created < d.timeout:
                await self._retry_failed(name, d, vim, rid, reason)
            else:
                await self._fail(name, vim, rid, _gave_up(int(o.get("attempts", 1)), d, reason))
        elif st.state is WorkloadState.GONE:
            self._by_resource.pop(rid, None)
            await self._set(
                name,
                vim_resource_id=None,
                reason="the workload vanished from the VIM; instantiating again",
            )
            await self._instantiate(name, d)
        elif time.time() - created > d.timeout:
            why = f"not ready within the instantiation timeout of {d.timeout:.0f}s"
            if o.get("_failure"):
                why += f", after {o.get('attempts')} attempt(s); the last failure: {o['_failure']}"
            await self._fail(name, vim, rid, why)
        else:
            if unrecorded:
                await self._set(name, vim_resource_id=rid)
            self.requeue(
                name, min(self.poll_interval, max(0.05, created + d.timeout - time.time()))
            )

    def _health_delay(self) -> float:
        """Until the next health check of a running instance: the health interval, or
        longer when the workloads are more than the checks allowed per second cover."""
        polled = len(self._by_resource) - self._swept
        return max(self.health_interval, polled / self.health_rate)

    def _polled(self, vim: VimAccount) -> bool:
        """Whether the running instances on ``vim`` are checked one by one: its driver
        cannot list their statuses, or its last listing failed."""
        return not self._can_list(vim) or vim.name in self._unlisted

    def _can_list(self, vim: VimAccount) -> bool:
        """Whether the driver of ``vim`` lists statuses."""
        try:
            return _lister(self.registry.driver(vim)) is not None
        except PlacementError:
            return False

    async def _sweep(self) -> None:
        """Rounds of :meth:`_sweep_once`: every ``health_interval``, or ten times as long
        as the last round took, whichever is longer (at most a tenth of the loop's time)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.health_interval)
            started = loop.time()
            try:
                await self._sweep_once()
            except Exception:
                log.exception("a round of health checks by listing failed")
            await asyncio.sleep(max(0.0, _SWEEP_SHARE * (loop.time() - started)
                                    - self.health_interval))

    async def _sweep_once(self) -> None:
        """One listing per VIM whose driver lists; an instance recorded running on such a
        VIM whose resource the listing shows not running, or leaves out, or which still
        carries a reason, is enqueued for its own check (which asks ``status``, so a
        listing alone never fails an instance).  A VIM whose listing fails goes back to
        one-by-one checks, paced by ``health_rate``, until a listing succeeds."""
        listing: dict[str, Status] = {}
        listed: set[str] = set()
        for vim in self._vims().values():
            if not self._can_list(vim):
                continue
            try:
                drv = self._driver(vim)
                listing.update(await drv.statuses())
            except (DriverError, PlacementError) as e:
                log.warning("cannot list the statuses of VIM %s: %s", vim.name, e)
                if vim.name not in self._unlisted:
                    self._unlisted.add(vim.name)
                    self._requeue_spread(self._running_on(vim.name), 1 / self.health_rate)
                continue
            self._unlisted.discard(vim.name)
            listed.add(vim.name)
        covered = 0
        running = WorkloadState.RUNNING
        for i, rid in enumerate(list(self._by_resource)):
            if i % _SWEPT_PER_TURN == _SWEPT_PER_TURN - 1:
                await asyncio.sleep(0)
            name = self._by_resource.get(rid)
            o = None if name is None else self._obs.get(name)
            if (name is None or o is None or o.get("vim") not in listed
                    or o.get("oper-status") != "running" or o.get("vim-resource-id") != rid):
                continue
            covered += 1
            st = listing.get(rid)
            if st is None or st.state is not running or o.get("reason"):
                self.enqueue(name)
        self._swept = covered

    def _running_on(self, vim: str) -> list[str]:
        """The instances recorded running on ``vim``."""
        return [n for n, o in self._obs.items()
                if o.get("vim") == vim and o.get("oper-status") == "running"]

    async def _health(self, name: str, d: Desired, o: Mapping[str, Any]) -> None:
        rid = o.get("vim-resource-id")
        vim = self._vims().get(o.get("vim", ""))
        if not rid or vim is None:
            await self._set(
                name,
                oper_status="failed",
                reason="the VIM account of this running instance is gone",
            )
            return
        st = self._hints.pop(rid, None)
        try:
            if st is None or st.state is WorkloadState.RUNNING:
                st = await self._driver(vim).status(rid)
        except DriverError as e:
            await self._set(name, reason=f"health check failed: {e.reason}")
            self.requeue(name, self._health_delay())
            return
        if st.state is WorkloadState.RUNNING:
            if o.get("reason"):
                await self._set(name, reason=None)
            if self._polled(vim):
                self.requeue(name, self._health_delay())
            await self._configure(name, d)
        elif st.state is WorkloadState.GONE:
            self._by_resource.pop(rid, None)
            await self._set(
                name,
                oper_status="initializing",
                vim_resource_id=None,
                created=time.time(),
                attempts=0,
                reason="the workload vanished from the VIM; instantiating again",
            )
            await self._instantiate(name, d)
        else:
            reason = st.reason or "the workload stopped"
            await self._fail(name, vim, rid, reason)
            await self._plan_heal(name, d, reason)

    # -- the function's own configuration (day-1, day-2, drift) ----------------------
    def _spec(self, d: Desired, o: Mapping[str, Any]) -> nfconfig.ConfigSpec:
        """The spec of an instance whose descriptor has NETCONF management, trusting the
        host key its workload presented first."""
        return self._config_spec(d).with_host_key((o.get("config") or {}).get("host-key"))

    async def _set_config(self, name: str, **fields: Any) -> None:
        """Record the configuration state; a status change is announced."""
        old = dict(self._seen(name).get("config") or {})
        new = {**old, **{_leaf(k): v for k, v in fields.items()}}
        new = {k: v for k, v in new.items() if v not in (None, "", [])}
        if new == old:
            return
        await self._set(name, config=new, note=_config_note(name, old.get("status"), new))

    async def _configure(self, name: str, d: Desired, *, force: bool = False) -> None:
        """One configuration step of a running instance: apply what is due, or check
        for drift when a check is due; never more than one device conversation."""
        o = self._seen(name)
        if d.netconf is None:
            if o.get("config"):
                await self._set(name, config=None)
            return
        c = o.get("config") or {}
        try:
            spec = self._spec(d, o)
        except NfoError as e:
            await self._set_config(name, status="failed", reason=f"invalid: {e.message}",
                                   next_retry=None)
            return
        status = c.get("status")
        now = time.time()
        changed = c.get("desired-digest") != spec.digest
        retry_at = _parse_iso(c.get("next-retry"))
        if status == "failed" and not changed and not force:
            if retry_at is None:
                return  # a permanent failure waits for a change or sync-to
            if retry_at > now:
                self.requeue(name, retry_at - now)
                return
        last_check = _parse_iso(c.get("last-check")) or 0.0
        due_apply = force or changed or status in (None, "pending", "applying", "failed")
        due_check = spec.check_interval > 0 and now - last_check >= spec.check_interval
        if not due_apply and not due_check:
            if spec.check_interval > 0:
                self.requeue(name, last_check + spec.check_interval - now)
            return
        if due_apply:
            await self._set_config(name, status="applying", desired_digest=spec.digest,
                                   reason=None, next_retry=None)
        try:
            async with self._device():
                await self._converse(name, spec, due_apply)
        except (nfconfig.ConfigError, NfoError) as e:
            if isinstance(e, NfoError):  # data the function's modules refuse: no retry helps
                e = nfconfig.ConfigError(e.message, temporary=False)
            attempts = int(c.get("attempts", 0)) + 1
            if e.temporary:
                delay = self._backoff(attempts - 1)
                await self._set_config(
                    name, status="failed", attempts=attempts, desired_digest=spec.digest,
                    reason=f"temporary: {e.reason}; retry {attempts + 1} in {delay:.1f}s",
                    next_retry=_now_iso(time.time() + delay))
                self.requeue(name, delay)
            else:
                await self._set_config(name, status="failed", attempts=attempts,
                                       desired_digest=spec.digest, reason=e.reason,
                                       next_retry=None)
            return
        if spec.check_interval > 0:
            self.requeue(name, spec.check_interval)

    async def _converse(self, name: str, spec: nfconfig.ConfigSpec, due_apply: bool) -> None:
        """One session with the function: drift check and, when due, apply."""
        dev = await nfconfig.connect(spec)
        async with dev:
            await self._set_config(name, capability=sorted(dev.capabilities),
                                   host_key=dev.host_key)
            if not due_apply:
                diff = await nfconfig.compare(dev, spec)
                policy = spec.on_drift
                if not diff:
                    await self._set_config(name, status="in-sync", reason=None,
                                           difference=None, last_check=_now_iso())
                elif policy != "re-apply":
                    await self._set_config(
                        name, status="out-of-sync", difference=diff,
                        reason=f"drift: {len(diff)} difference(s) found", last_check=_now_iso())
                else:
                    await self._set_config(name, status="applying", difference=diff,
                                           reason=f"drift: re-applying ({diff[0]})")
                    due_apply = True
            if due_apply:
                await nfconfig.apply(dev, spec, persist=f"nfo-{name}")
                stamp = _now_iso()
                await self._set_config(name, status="in-sync", reason=None, difference=None,
                                       desired_digest=spec.digest,
                                       last_applied_digest=spec.digest, last_applied=stamp,
                                       last_check=stamp, attempts=None, next_retry=None)

    async def _on_config_action(self, call: RpcCall) -> dict[str, str] | None:
        await self._loaded()
        name = _instance_of(call.parent_path or "")
        d = None if name is None else self._desired(name)
        if name is None or d is None:
            raise InvalidValue("the action needs a configured nf-instance")
        if d.netconf is None:
            raise InvalidValue(f"instance {name!r}: its descriptor has no NETCONF management",
                               app_tag="nfo-no-netconf")
        if self._seen(name).get("oper-status") != "running":
            raise OperationFailed(f"instance {name!r} is not running")
        action = call.path.rsplit("/", 1)[-1]
        fut: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._asks.setdefault(name, []).append((action, fut))
        self.enqueue(name)
        try:
            async with asyncio.timeout(ACTION_TIMEOUT):
                out = await fut
        except TimeoutError:
            raise OperationFailed(f"{action} of {name!r} did not finish within "
                                  f"{ACTION_TIMEOUT:g}s") from None
        if action == "sync-from":
            doc = {"nfo-instances:nf-instances": {"nf-instance": [{
                "name": name, "day2": {"mode": "replace", "format": "xml",
                                       "config": out.pop("config")}}]}}
            await call.session.edit("running", json.dumps(doc), "json")  # as the caller
        return out

    @contextlib.asynccontextmanager
    async def _device(self) -> AsyncIterator[None]:
        """A slot for a session with a function's device, waited for outside."""
        with self._away:
            async with self._device_slots:
                _check_fence(self.fence)
                yield

    async def _answer_asks(self, name: str, d: Desired) -> None:
        """Run the configuration actions waiting for this instance, in order."""
        asks = self._asks.pop(name, [])
        for action, fut in asks:
            if fut.done():
                continue
            try:
                if action == "sync-to":
                    await self._configure(name, d, force=True)
                    c = self._seen(name).get("config") or {}
                    if c.get("status") != "in-sync":
                        raise OperationFailed(f"sync-to of {name!r} failed: {c.get('reason')}")
                    fut.set_result({"result": f"{name!r} is in sync"})
                    continue
                spec = self._spec(d, self._seen(name))
                async with self._device(), await nfconfig.connect(spec) as dev:
                    if action == "check-sync":
                        diff = await nfconfig.compare(dev, spec)
                        out = {"in-sync": "true" if not diff else "false"}
                        if diff:
                            out["difference"] = "\n".join(diff)
                    elif action == "dry-run":
                        target, edit = await nfconfig.dry_run(dev, spec)
                        out = {"target": target, "edit": edit}
                    else:  # sync-from
                        with await nfconfig.read_running(dev, spec) as tree:
                            text = spec.modules.print(tree, "xml")
                        out = {"result": f"{name!r}: the function's configuration is now its "
                                         "day-2 configuration", "config": text}
                fut.set_result(out)
            except nfconfig.ConfigError as e:
                fut.set_exception(OperationFailed(f"{action} of {name!r}: {e.reason}"))
            except NfoError as e:
                fut.set_exception(e)
            except Exception as e:
                log.exception("%s of %s failed", action, name)
                fut.set_exception(OperationFailed(f"{action} of {name!r} failed: {e}"))
        self.requeue(name, 0)

    def _refuse_asks(self, name: str, reason: str) -> None:
        for _, fut in self._asks.pop(name, []):
            if not fut.done():
                fut.set_exception(OperationFailed(reason))

    # -- healing ------------------------------------------------------------------
    async def _plan_heal(self, name: str, d: Desired, reason: str) -> None:
        """After a running instance failed: schedule a heal under the descriptor's
        policy (``next-retry``), or say that the policy gives up."""
        policy = str(d.healing.get("policy", "none"))
        if policy == "none" or name not in self._obs:
            return
        o = self._obs[name]
        if o.get("vim-resource-id"):
            o["_heal_after_cleanup"] = reason  # the failed workload must go first
            return
        now = time.time()
        window = float(d.healing.get("window", 600))
        recent = [t for t in self._heals.get(name, []) if now - t < window]
        count = int(o.get("heal-count", 0))
        if len(recent) >= int(d.healing.get("max-attempts", 3)):
            why = (f"healing gave up: {len(recent)} heal(s) within {window:.0f}s; "
                   f"last failure: {reason}")
            await self._set(name, reason=why, note=_heal_note(name, "give-up", count, reason))
            return
        delay = float(d.healing.get("backoff", 1)) * 2 ** len(recent)
        self._heals[name] = [*recent, now]
        await self._set(name, heal_count=count + 1, last_heal=_now_iso(now),
                        last_heal_reason=reason,
                        reason=f"healing ({policy}) in {delay:g}s: {reason}",
                        next_retry=_now_iso(now + delay),
                        note=_heal_note(name, policy, count + 1, reason))
        self.requeue(name, delay)

    async def _heal(self, name: str, d: Desired, o: Mapping[str, Any]) -> None:
        retry_at = _parse_iso(o.get("next-retry"))
        if retry_at is not None and retry_at > time.time():
            self.requeue(name, retry_at - time.time())
            return
        policy = str(d.healing.get("policy", "none"))
        keep: dict[str, Any] = {k: o[k] for k in ("heal-count", "last-heal", "last-heal-reason")
                                if k in o}
        self._reset(name, {"oper-status": "failed", "created": time.time(), **keep,
                           "_requested": o.get("vim") if policy == "restart" else None})
        await self._instantiate(name, d)

    async def _update(self, name: str, d: Desired, o: Mapping[str, Any]) -> None:
        rid = o.get("vim-resource-id")
        vim = self._vims().get(o.get("vim", ""))
        if (rid and vim is not None and (d.vim is None or d.vim == vim.name)
                and vim.type in d.vim_types):
            try:
                if await self._driver(vim).update(rid, d.request(vim.type)):
                    await self._set(name, spec_digest=d.digest, reason="updated in place")
                    self.requeue(name, self.poll_interval)
                    return
            except DriverError as e:
                log.info("in-place update of %s refused (%s); replacing", name, e.reason)
        await self._replace(name, d, o)

    async def _replace(self, name: str, d: Desired, o: Mapping[str, Any]) -> None:
        if o.get("vim-resource-id"):
            await self._terminate(name, o, then_forget=False)
            o = self._seen(name)
            if o.get("vim-resource-id"):
                return
        self._reset(name, {"created": time.time(), "oper-status": o.get("oper-status")})
        await self._instantiate(name, d)

    async def _terminate(self, name: str, o: Mapping[str, Any], *, then_forget: bool) -> None:
        rid = o.get("vim-resource-id")
        vim = self._vims().get(o.get("vim", ""))
        if not rid and vim is not None and o.get("oper-status") in ACTIVE:
            try:  # a crash may have come between the VIM's accept and our record
                rid = await self._driver(vim).find(name)
            except DriverError as e:
                log.warning("cannot look up %s on VIM %s: %s", name, vim.name, e.reason)
        if rid and vim is None:
            # the VIM account vanished with the instance: nothing left to call
            log.warning(
                "instance %s: VIM %s is no longer configured; cannot terminate %s",
                name,
                o.get("vim"),
                rid,
            )
            rid = None
        if rid and vim is not None:
            if o.get("oper-status") != "terminating":
                await self._set(name, oper_status="terminating", reason=None)
            try:
                await self._driver(vim).terminate(rid)
            except DriverError as e:
                attempts = int(o.get("attempts", 0)) + 1
                delay = self._backoff(attempts)
                await self._set(
                    name,
                    reason=f"terminate failed: {e.reason}; retrying",
                    next_retry=_now_iso(time.time() + delay),
                )
                self.requeue(name, delay)
                return
            self._by_resource.pop(rid, None)
        if then_forget:
            await self._forget(name)
        else:
            await self._set(name, oper_status="terminated", vim_resource_id=None, next_retry=None)

    async def _fail(self, name: str, vim: VimAccount, rid: str, reason: str) -> None:
        """Record ``failed`` and remove the failed workload from the VIM.  A workload the
        VIM would not remove stays recorded (``vim-resource-id``, ``next-retry``) and is
        removed on a later pass: forgetting it would leave an orphan nothing removes."""
        if await self._cleanup(name, vim, rid):
            await self._set(name, oper_status="failed", reason=reason, vim_resource_id=None,
                            next_retry=None)
            return
        delay = self._cleanup_delay(name)
        await self._set(name, oper_status="failed", reason=reason, vim_resource_id=rid,
                        next_retry=_now_iso(time.time() + delay))
        self.requeue(name, delay)

    async def _retry_failed(self, name: str, d: Desired, vim: VimAccount, rid: str,
                            reason: str) -> None:
        """The VIM failed this attempt for a reason that may pass: remove the failed
        workload, then instantiate again after a backoff, still ``initializing``.  A
        workload the VIM would not remove yet stays recorded, and the next pass finds it
        failed again and retries its removal."""
        if not await self._cleanup(name, vim, rid):
            delay = self._cleanup_delay(name)
            await self._set(name, vim_resource_id=rid,
                            reason=f"temporary: {reason}; removing the failed workload before "
                                   f"another attempt, in {delay:.1f}s")
            self.requeue(name, delay)
            return
        self._obs[name].pop("_cleanups", None)
        await self._failed_attempt(name, d, reason, True, int(self._obs[name].get("attempts", 1)),
                                   vim_resource_id=None)

    async def _retry_cleanup(self, name: str, o: Mapping[str, Any]) -> None:
        retry_at = _parse_iso(o.get("next-retry"))
        if retry_at is not None and retry_at > time.time():
            self.requeue(name, retry_at - time.time())
            return
        rid = o["vim-resource-id"]
        vim = self._vims().get(o.get("vim", ""))
        if vim is None:
            log.warning("instance %s: VIM %s is no longer configured; cannot remove %s",
                        name, o.get("vim"), rid)
        elif not await self._cleanup(name, vim, rid):
            delay = self._cleanup_delay(name)
            await self._set(name, next_retry=_now_iso(time.time() + delay))
            self.requeue(name, delay)
            return
        self._obs[name].pop("_cleanups", None)
        await self._set(name, vim_resource_id=None, next_retry=None)

    def _cleanup_delay(self, name: str) -> float:
        o = self._obs.get(name)
        n = int(o.get("_cleanups", 0)) if o is not None else 0
        if o is not None:
            o["_cleanups"] = n + 1
        return self._backoff(n)

    async def _cleanup(self, name: str, vim: VimAccount, rid: str) -> bool:
        """Terminate a failed workload; whether it is gone."""
        try:
            await self._driver(vim).terminate(rid)
        except DriverError as e:
            log.warning("could not clean up %s of %s: %s", rid, name, e.reason)
            return False
        self._by_resource.pop(rid, None)
        return True


_NOTHING: Mapping[str, Any] = MappingProxyType({})

_STATE_DOC = '{"nfo-instances:nf-instances":{"nf-instance":[%s]}}'
"""RFC 7951 JSON of nf-instance entries side by side (``%`` their text, comma-separated)."""


@dataclass(eq=False)
class _StateWrite:
    """One instance's state (its entry's JSON) and notifications waiting to be written."""

    name: str
    entry: str
    notes: list[str]
    done: asyncio.Future[None]


def _settle(batch: list[_StateWrite], error: BaseException | None) -> None:
    for w in batch:
        if w.done.done():  # its worker was cancelled
            continue
        if error is None:
            w.done.set_result(None)
        elif isinstance(error, asyncio.CancelledError):
            w.done.cancel()
        else:
            w.done.set_exception(error)


class _Away:
    """How many calls wait on the world outside (a VIM's, a device session), nearly all
    of them a worker's: those workers do not count against ``_IN_FLIGHT``, and one
    leaving makes room at once.  A resync's listing counts too: it only lets a worker
    more in while it lasts."""

    __slots__ = ("_room", "count")

    def __init__(self, room: Callable[[], None]) -> None:
        self.count = 0
        self._room = room

    def __enter__(self) -> None:
        self.count += 1
        self._room()

    def __exit__(self, *exc: object) -> None:
        self.count -= 1


def _recorded_states(ds: Datastore) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The instances' states the manager recorded (its operational records), decoded
    ``_DECODED_TOGETHER`` records at a time: (name, state) in batches."""
    texts = ds.oper_records(OWNER)
    while batch := list(islice(texts, _DECODED_TOGETHER)):
        docs: list[dict[str, Any]] = json.loads(f"[{','.join(batch)}]")
        yield [(inst["name"], inst.get("state", {})) for d in docs
               for inst in (d.get(INSTANCES[1:]) or {}).get("nf-instance", [])]


def _lister(drv: Driver) -> StatusLister | None:
    """``drv`` if it lists statuses (by its method: an ``isinstance`` of a runtime
    protocol is remembered per class, so it would outlive a method taken away)."""
    return cast(StatusLister, drv) if callable(getattr(drv, "statuses", None)) else None


def _always() -> bool:
    return True


def _check_fence(fence: Callable[[], bool]) -> None:
    if not fence():
        raise TemporaryError("this replica no longer leads the workload manager: "
                             "it makes no VIM call")


class _Gated:
    """A driver seen through its VIM account's gate: at most the manager's ``concurrency``
    calls in flight on this account, each abandoned after ``timeout`` seconds.

    Why per account: a step used to hold a manager-wide slot for as long as its VIM
    calls took, so calls hanging on one account took every slot and the instances of
    all other accounts waited (issue 12).  Abandoning a call is safe: the manager
    records its intent before each call and finds what an abandoned call created by the
    driver's tags (``find``) on the next pass.
    """

    def __init__(self, drv: Driver, vim: str, slots: asyncio.Semaphore,
                 timeout: float, away: _Away, fence: Callable[[], bool]) -> None:
        self._drv = drv
        self._vim = vim
        self._slots = slots
        self._timeout = timeout
        self._away = away
        self._fence = fence

    async def _call(self, what: str, call: Callable[[], Awaitable[_T]]) -> _T:
        with self._away:
            async with self._slots:
                _check_fence(self._fence)
                try:
                    async with asyncio.timeout(self._timeout):
                        return await call()
                except TimeoutError:
                    raise TemporaryError(f"VIM {self._vim!r} did not answer {what} within "
                                         f"{self._timeout:g}s") from None

    async def instantiate(self, req: InstantiateRequest) -> InitResponse:
        return await self._call("instantiate", lambda: self._drv.instantiate(req))

    async def status(self, resource_id: str) -> Status:
        return await self._call("status", lambda: self._drv.status(resource_id))

    async def terminate(self, resource_id: str) -> None:
        await self._call("terminate", lambda: self._drv.terminate(resource_id))

    async def update(self, resource_id: str, req: InstantiateRequest) -> bool:
        return await self._call("update", lambda: self._drv.update(resource_id, req))

    async def find(self, instance: str) -> str | None:
        return await self._call("find", lambda: self._drv.find(instance))

    async def list_resources(self) -> dict[str, str]:
        return await self._call("list-resources", self._drv.list_resources)

    async def statuses(self) -> Mapping[str, Status]:
        drv = _lister(self._drv)
        if drv is None:
            raise PlacementError(f"the driver of VIM {self._vim!r} cannot list statuses")
        return await self._call("statuses", drv.statuses)

    def on_final(self, callback: FinalCallback) -> None:
        self._drv.on_final(callback)

    async def close(self) -> None:
        await self._drv.close()


def _notification(name: str, old: str | None, new: str, reason: str | None,
                  kind: str = "nf-instance-state-change") -> str:
    body: dict[str, Any] = {"name": name, "new-status": new}
    if old:
        body["old-status"] = old
    if reason:
        body["reason"] = reason[:1024]
    return json.dumps({f"nfo-instances:{kind}": body})


def _config_note(name: str, old: str | None, new: Mapping[str, Any] | None) -> str | None:
    """nf-config-status-change, when the status changes."""
    if new is None or new.get("status") == old:
        return None
    return _notification(name, old, new["status"], str(new.get("reason") or "") or None,
                         "nf-config-status-change")


def _heal_note(name: str, action: str, count: int, reason: str) -> str:
    return json.dumps({"nfo-instances:nf-instance-healed": {
        "name": name, "action": action, "heal-count": count, "reason": reason[:1024]}})


def _key_in(path: str, marker: str) -> str | None:
    """The key value after ``marker`` (e.g. ``nf-instance[name='``) in a data path."""
    i = path.find(marker)
    if i < 0:
        return None
    j = path.find("']", i)
    return path[i + len(marker) : j]


def _instance_of(path: str) -> str | None:
    return _key_in(path, "nf-instance[name='")


def _vim_of(path: str) -> str | None:
    return _key_in(path, "vim[name='")


@functools.lru_cache(maxsize=256)
def _leaf(field: str) -> str:
    """The state leaf a keyword argument names (``vim_resource_id``: ``vim-resource-id``;
    ``_private`` ones as they are), one string for every instance's state: a key made
    anew per instance cost about 300 bytes an instance after a bulk load."""
    return field if field.startswith("_") else sys.intern(field.replace("_", "-"))


def _opt(v: Any) -> int | None:
    return None if v is None else int(v)


def _freeze(v: Mapping[str, Any]) -> Mapping[str, Any]:
    return json.loads(json.dumps(v, sort_keys=True))  # type: ignore[no-any-return]
