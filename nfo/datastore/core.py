"""The NMDA datastore: startup, running, candidate and operational.

This plays sysrepo's role for nfo.  Trees live in memory as libyang data and
are made durable through a :class:`~nfo.datastore.storage.base.Storage`.  One
asyncio process shares one :class:`Datastore`; every write is a transaction
serialised by one lock: copy the target tree, apply the edit, validate with
libyang, ask change subscribers, append the commit durably, swap the tree in,
then tell subscribers it is done.  A failure at any step leaves the previous
tree untouched, so nothing is ever half-applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nfo.datastore.changes import Change, ChangeCreated, ChangeDeleted, ChangeModified
from nfo.datastore.edit import apply_edit, validation_deletes
from nfo.datastore.groupcommit import GroupCommit
from nfo.datastore.notifications import Checked, NotificationHub
from nfo.datastore.operational import OperProvider, OperStore, annotate_origin, check_owner
from nfo.datastore.partial import Plan, plan_edits
from nfo.datastore.storage.base import CommitRecord, Storage
from nfo.datastore.subscriptions import ChangeCallback, ChangeEvent, ChangeSubscription
from nfo.errors import (
    DataMissing,
    InUse,
    InvalidValue,
    LockDenied,
    NfoError,
    OperationFailed,
    OperationNotSupported,
    PreconditionFailed,
    UnknownElement,
    Veto,
)
from nfo.schema import ly
from nfo.schema.context import Schema
from nfo.schema.data import (
    Fmt,
    Tree,
    is_default,
    node_path,
    parse_data,
    parse_op,
    path_steps,
    print_nodes,
    siblings,
)
from nfo.schema.deps import analyse
from nfo.schema.ly import ffi, lib

__all__ = [
    "CONFIG_DATASTORES",
    "DATASTORES",
    "CommitInfo",
    "Datastore",
    "Precondition",
    "RpcCall",
    "RpcHandler",
    "Session",
    "WriteView",
]

log = logging.getLogger(__name__)

DatastoreName = Literal["running", "candidate", "startup", "operational"]
DATASTORES: tuple[str, ...] = ("running", "candidate", "startup", "operational")
CONFIG_DATASTORES: tuple[str, ...] = ("running", "candidate", "startup")
DURABLE = ("running", "startup")

_PARSE_EDIT = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE
_PARSE_CONFIG = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE
_SIMPLE_PATH = re.compile(r"^(/[\w.-]+(:[\w.-]+)?(\[[\w.:-]+='[^']*'\])*)+$")


@dataclass(frozen=True)
class CommitInfo:
    """What a reader needs for ETag / Last-Modified: the datastore's last commit."""

    revision: int
    timestamp: float
    user: str


@dataclass(frozen=True)
class WriteView:
    """The target datastore as a write's precondition sees it: under the datastore's
    write lock, right before the edit is applied.  Valid only during that call."""

    datastore: str
    info: CommitInfo
    """The datastore's last commit (for the candidate, running's, as :meth:`Datastore.info`)."""
    _present: Callable[[str], bool] = field(repr=False, compare=False)

    def exists(self, path: str) -> bool:
        """Whether the live tree holds a node at the data path ``path``; implicit
        defaults (and containers holding only those) count as absent."""
        return self._present(path)


Precondition = Callable[[WriteView], None]
"""Checked under the write lock before a write; raises an :class:`NfoError` to refuse it."""


@dataclass
class RpcCall:
    session: Session
    path: str
    """Schema path of the RPC or action, e.g. ``/mod:rpc`` or ``/mod:list/action``."""
    tree: Tree
    """The parsed input (with its parent data nodes for an action); owned by the caller."""
    op: Any
    """The RPC or action node inside ``tree``."""
    parent_path: str | None
    """For an action, the data path of the node it was invoked on."""


RpcHandler = Callable[[RpcCall], Awaitable[dict[str, str] | None]]


@dataclass
class _Pending:
    """A confirmed commit waiting for its confirmation (RFC 6241 section 8.4)."""

    revision_before: int
    content: str
    """Running as it was before the confirmed commit (RFC 7951 JSON): what a revert restores."""
    session_id: int | None
    persist: str | None
    timer: asyncio.TimerHandle | None = None


@dataclass
class _Candidate:
    """The candidate datastore: running itself until first edited (no copy kept)."""

    tree: Tree | None
    base_revision: int
    edits: list[tuple[str, str]] | None = field(default_factory=list)

    @property
    def dirty(self) -> bool:
        return self.tree is not None


class Datastore:
    """All NMDA datastores of one nfo instance."""

    snapshot_every_commits = 5000
    snapshot_min_bytes = 1 << 20
    partial_validation = True
    """Validate only what an edit touches where the schema proves it safe
    (see :mod:`nfo.datastore.partial`); False re-validates everything."""

    def __init__(self, schema: Schema, storage: Storage) -> None:
        self.schema = schema
        self.ctx: Any = schema.cdata
        self.storage = storage
        self._trees: dict[str, Tree] = {}
        self._info: dict[str, CommitInfo] = {}
        self._snap_size: dict[str, int] = {}
        self._wlock = asyncio.Lock()
        self._locks: dict[str, int] = {}
        self._lock_times: dict[str, float] = {}
        self._subs: list[ChangeSubscription] = []
        self._rpcs: dict[str, RpcHandler] = {}
        self._sessions: dict[int, Session] = {}
        self._ids = itertools.count(1)
        self._pending: _Pending | None = None
        self._committing: tuple[str, int] | None = None
        self._oper = OperStore(self.ctx, storage)
        self.group = GroupCommit(storage)
        self.notifications = NotificationHub(self.ctx, storage,
                                             lambda: self._trees["running"].first())
        self._has_config_change = any(
            m.name == "ietf-netconf-notifications" and m.implemented for m in schema.modules())
        self._ind = analyse(self.ctx, [m.cdata for m in schema.ctx if m.implemented()])
        self._candidate: _Candidate
        self._closed = False
        self._last_revision = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------
    @classmethod
    def open(cls, schema: Schema, storage: Storage) -> Datastore:
        """Load the stored state, replay the commit log and validate it."""
        ds = cls(schema, storage)
        ds._load()
        return ds

    def _load(self) -> None:
        state = self.storage.load()
        self._last_revision = state.last_revision
        for name in DURABLE:
            snap = state.snapshots.get(name)
            tree = Tree(self.ctx)
            if snap is not None:
                tree.root = parse_data(self.ctx, snap.content, Fmt.JSON, parse_opts=_PARSE_CONFIG,
                                       what=f"loading the {name} snapshot")
                self._snap_size[name] = len(snap.content)
                self._info[name] = CommitInfo(snap.revision, time.time(), "")
            self._trees[name] = tree
        for rec in state.commits:
            if rec.datastore not in DURABLE:
                continue
            self._replay(self._trees[rec.datastore], rec)
            self._info[rec.datastore] = CommitInfo(rec.revision, rec.timestamp, rec.user)
        for name in DURABLE:
            try:
                self._validate(self._trees[name])
            except NfoError as e:
                raise OperationFailed(f"stored {name} data no longer validates: {e}") from e
            self._info.setdefault(name, CommitInfo(0, time.time(), ""))
            for h in self.storage.history(name, limit=1):
                self._info[name] = CommitInfo(h.revision, h.timestamp, h.user)
        self._candidate = _Candidate(None, self._info["running"].revision)
        self._oper.load()
        pending = self.storage.get_meta("confirmed-commit")
        if pending:
            saved = json.loads(pending)
            self._pending = _Pending(int(saved["revision_before"]), saved["content"], None, None)

    async def start(self) -> None:
        """Finish opening inside the event loop: roll back an unconfirmed commit
        that a restart interrupted (RFC 6241: the server reverts on reboot)."""
        if self._pending is not None and self._pending.timer is None:
            log.warning("reverting a confirmed commit that was not confirmed before restart")
            await self._rollback_pending("confirmed commit not confirmed before restart",
                                         "timeout")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for s in list(self._sessions.values()):
            await s.close()
        for sub in self._subs:
            await sub.stop()
        self._subs.clear()
        await self.notifications.close()
        if self._pending is not None and self._pending.timer is not None:
            self._pending.timer.cancel()
            self._pending.timer = None
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for t in self._trees.values():
            t.free()
        if self._candidate.tree is not None:
            self._candidate.tree.free()
        self._oper.close()
        self.storage.close()

    def session(self, user: str, *, on_kill: Callable[[], None] | None = None) -> Session:
        s = Session(self, next(self._ids), user, on_kill)
        self._sessions[s.id] = s
        return s

    # -- reads ---------------------------------------------------------------
    def info(self, datastore: str = "running") -> CommitInfo:
        if datastore == "candidate":
            return self._info["running"]
        if datastore == "operational":
            return self._info["running"]
        return self._info[_ds(datastore, CONFIG_DATASTORES)]

    def tree(self, datastore: str) -> Tree:
        """The live tree of a config datastore: read it, never keep or change it."""
        if datastore == "candidate":
            return self._candidate.tree or self._trees["running"]
        return self._trees[_ds(datastore, DURABLE)]

    def get(self, datastore: str, xpath: str | None = None, *, with_origin: bool = False,
            redact: bool = True) -> Tree:
        """A copy of the data selected by ``xpath`` (all data if None); caller frees it.

        With ``redact`` (what every client read gets), nodes marked
        ``nacm:default-deny-all`` (credentials) are left out."""
        out = self._get(datastore, xpath, with_origin)
        if redact:
            for path in self.schema.sensitive_paths():
                for node in out.xpath(path):
                    lib.lyd_free_tree(node)
        return out

    def _get(self, datastore: str, xpath: str | None, with_origin: bool) -> Tree:
        ds = _ds(datastore, DATASTORES)
        if ds != "operational":
            return _select(self.tree(ds), xpath)
        running = self._trees["running"]
        if xpath is None or _SIMPLE_PATH.match(xpath):
            out = _select(running, xpath)
            self._oper.merged_into(out, xpath)
        else:
            full = running.dup()
            self._oper.merged_into(full)
            with full:
                out = _select(full, xpath)
        for top in list(siblings(out.first())):
            ly.check(ly.xlib.lyd_new_implicit_tree(ly.xnode(top), 0, ly.xffi.NULL), self.ctx,
                     "adding defaults")
        if with_origin:
            annotate_origin(self.ctx, out, running)
        return out

    def provide_oper(self, path: str, provider: OperProvider) -> None:
        """Serve the operational subtree at ``path`` (a top-level node) from
        ``provider``, called on each read that selects it."""
        self._oper.provide(path, provider)

    def unprovide_oper(self, path: str) -> None:
        self._oper.unprovide(path)

    def oper_owners(self) -> list[str]:
        """The owners that pushed operational data (see :meth:`Session.set_oper`)."""
        return list(self._oper.owners)

    def oper_tree(self, owner: str) -> Tree | None:
        """An owner's operational data, live: read it, never keep or change it."""
        return self._oper.owners.get(owner)

    def locks(self) -> dict[str, tuple[int, float]]:
        """Held locks: datastore -> (session id, when it was taken)."""
        return {ds: (sid, self._lock_times.get(ds, 0.0)) for ds, sid in self._locks.items()}

    def exists(self, path: str) -> bool:
        """Whether a data path exists in running or in any owner's operational data."""
        if self._trees["running"].find(path) != ffi.NULL:
            return True
        return any(t.find(path) != ffi.NULL for t in self._oper.owners.values())

    def history(self, datastore: str = "running", limit: int = 100) -> list[CommitRecord]:
        return self.storage.history(_ds(datastore, DURABLE), limit)

    # -- subscriptions -------------------------------------------------------
    def subscribe(self, module: str, callback: ChangeCallback, *, xpath: str | None = None,
                  priority: int = 0, datastore: str = "running") -> ChangeSubscription:
        if module not in {m.name for m in self.schema.modules() if m.implemented}:
            raise UnknownElement(f"no implemented module {module!r} to subscribe to")
        sub = ChangeSubscription(module, callback, _ds(datastore, DURABLE), xpath, priority)
        sub.start()
        self._subs.append(sub)
        self._subs.sort(key=lambda s: -s.priority)
        return sub

    async def unsubscribe(self, sub: ChangeSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        await sub.stop()

    async def settle(self) -> None:
        """Wait until every queued ``done`` event was delivered."""
        for sub in list(self._subs):
            await sub.drain()

    # -- RPCs and actions ----------------------------------------------------
    def register_rpc(self, path: str, handler: RpcHandler) -> None:
        """Serve an RPC (``/mod:name``) or action (``/mod:cont/list/name``) by schema path."""
        if path in self._rpcs:
            raise InvalidValue(f"an RPC handler for {path} is already registered")
        try:
            found = list(self.schema.ctx.find_path(path))
        except Exception:
            found = []
        lib.ly_err_clean(self.ctx, ffi.NULL)
        if not found or found[0].keyword() not in ("rpc", "action"):
            raise UnknownElement(f"{path} is not an RPC or action in the module set")
        self._rpcs[path] = handler

    def unregister_rpc(self, path: str) -> None:
        self._rpcs.pop(path, None)

    # -- internals -----------------------------------------------------------
    def _validate(self, tree: Tree, changes: list[Change] | None = None) -> None:
        """Validate in place; with ``changes``, append what validation itself removed."""
        holder = ffi.new("struct lyd_node **", tree.first())
        diff = ffi.new("struct lyd_node **") if changes is not None else ffi.NULL
        rc = lib.lyd_validate_all(holder, self.ctx, lib.LYD_VALIDATE_NO_STATE, diff)
        tree.root = holder[0]
        if diff != ffi.NULL and diff[0] != ffi.NULL:
            try:
                if rc == lib.LY_SUCCESS and changes is not None:
                    _fold_deletes(changes, validation_deletes(self.ctx, diff[0]))
            finally:
                lib.lyd_free_all(diff[0])
        ly.check(rc, self.ctx, "validating data")

    def _replay(self, tree: Tree, rec: CommitRecord) -> None:
        if rec.kind == "replace":
            tree.free()
            tree.root = parse_data(self.ctx, rec.payload, Fmt.JSON, parse_opts=_PARSE_CONFIG,
                                   what=f"replaying revision {rec.revision}")
            return
        for item in json.loads(rec.payload):
            with Tree.parse(self.ctx, item["edit"], Fmt.JSON, parse_opts=_PARSE_EDIT) as edit:
                apply_edit(self.ctx, tree, edit, item["default-operation"])

    def state_at(self, datastore: str, revision: int) -> Tree:
        """The content of a durable datastore as it was after ``revision``."""
        ds = _ds(datastore, DURABLE)
        snap = self.storage.snapshot_at(ds, revision)
        tree = Tree(self.ctx)
        after = 0
        if snap is not None:
            tree.root = parse_data(self.ctx, snap.content, Fmt.JSON, parse_opts=_PARSE_CONFIG)
            after = snap.revision
        else:
            oldest = self.storage.history(ds, limit=1_000_000)
            if oldest and self.storage.snapshot_at(ds, oldest[-1].revision) is not None:
                tree.free()
                raise InvalidValue(f"revision {revision} is no longer retained")
        try:
            for rec in self.storage.commits_between(ds, after, revision):
                self._replay(tree, rec)
            self._validate(tree)
        except Exception:
            tree.free()
            raise
        return tree

    def _check_writable(self, session: Session | None, ds: str) -> None:
        holder = self._locks.get(ds)
        if holder is not None and (session is None or holder != session.id):
            raise InUse(f"the {ds} datastore is locked by session {holder}",
                        info={"session-id": str(holder)})

    async def _transact(
        self,
        session: Session | None,
        ds: str,
        edits: Sequence[tuple[Tree, str]],
        *,
        user: str,
        test_only: bool = False,
        validate: bool = True,
        label: str = "",
        system: bool = False,
        if_revision: int | None = None,
        precondition: Precondition | None = None,
    ) -> list[Change]:
        """One transaction; ``system`` ones (confirmed-commit reverts) ignore locks."""
        if not system:
            self._check_writable(session, ds)
        async with self._wlock:
            return await self._transact_locked(session, ds, edits, user=user,
                                               test_only=test_only, validate=validate,
                                               label=label, system=system,
                                               if_revision=if_revision,
                                               precondition=precondition)

    async def _transact_locked(
        self,
        session: Session | None,
        ds: str,
        edits: Sequence[tuple[Tree, str]],
        *,
        user: str,
        test_only: bool = False,
        validate: bool = True,
        label: str = "",
        system: bool = False,
        if_revision: int | None = None,
        precondition: Precondition | None = None,
    ) -> list[Change]:
        if not system:
            self._check_writable(session, ds)
        self._check_precondition(ds, if_revision, precondition)
        base = self.tree(ds)
        plan = None
        if ds in DURABLE and self.partial_validation:
            plan = plan_edits(self.ctx, self._ind, list(edits))
        work = plan.build(base) if plan is not None else base.dup()
        try:
            changes: list[Change] = []
            for edit, dop in edits:
                changes += apply_edit(self.ctx, work, edit, dop)
            if validate:
                self._validate(work, changes)
            if test_only or not changes:
                work.free()
                return [] if test_only else changes
            if ds == "candidate":
                self._swap_candidate(work, edits)
                return changes
            # until this commit is in, a lock on ds would let its holder read stale data
            self._committing = (ds, session.id if session is not None else 0)
            try:
                rec = await self._commit(ds, work, edits, changes, user, label, plan,
                                         self._config_change(ds, session, user, changes,
                                                             work))
            finally:
                self._committing = None
        except BaseException:
            work.free()
            raise
        self._after_commit(ds, rec, changes)
        return changes

    def check_precondition(self, datastore: str, *, if_revision: int | None = None,
                           precondition: Precondition | None = None) -> None:
        """Evaluate a write's preconditions on the datastore as it is now: an early
        refusal only, since the write checks them again under the write lock."""
        self._check_precondition(_ds(datastore, CONFIG_DATASTORES), if_revision,
                                 precondition)

    def _check_precondition(self, ds: str, if_revision: int | None,
                            precondition: Precondition | None) -> None:
        """Refuse the write unless the datastore is as its writer expects; the caller
        holds the write lock, so nothing commits between this and the edit."""
        info = self.info(ds)
        if if_revision is not None and info.revision != if_revision:
            raise PreconditionFailed(f"the {ds} datastore is at revision {info.revision}, "
                                     f"not {if_revision}")
        if precondition is not None:
            tree = self.tree(ds)
            precondition(WriteView(ds, info, lambda path: _present(tree, path)))

    async def _check_only(self, ds: str, if_revision: int | None,
                          precondition: Precondition | None) -> None:
        """A precondition alone, for a write found to be a no-op before it starts."""
        if if_revision is not None or precondition is not None:
            async with self._wlock:
                self._check_precondition(ds, if_revision, precondition)

    async def _commit(self, ds: str, work: Tree, edits: Sequence[tuple[Tree, str]],
                      changes: list[Change], user: str, label: str,
                      plan: Plan | None, event: Checked | None = None) -> CommitRecord:
        try:
            return await self._commit_with(ds, work, edits, changes, user, label, plan, event)
        finally:
            if event is not None:
                event.discard()

    async def _commit_with(self, ds: str, work: Tree, edits: Sequence[tuple[Tree, str]],
                           changes: list[Change], user: str, label: str,
                           plan: Plan | None, event: Checked | None) -> CommitRecord:
        rev = self._last_revision + 1
        subs = [s for s in self._subs if s.datastore == ds]
        called: list[tuple[ChangeSubscription, list[Change]]] = []
        for sub in subs:
            mine = self._changes_for(sub, changes, work)
            if not mine:
                continue
            try:
                await sub.callback(ChangeEvent("change", ds, rev, user, mine, work))
                called.append((sub, mine))
            except Exception as e:
                for s, m in called:
                    s.post(ChangeEvent("abort", ds, rev, user, m))
                if isinstance(e, NfoError):
                    raise Veto(e.message, path=e.path, app_tag=e.app_tag or "nfo-change-vetoed",
                               info=e.info) from e
                raise Veto(str(e) or type(e).__name__, app_tag="nfo-change-vetoed") from e
        payload = json.dumps([
            {"default-operation": dop, "edit": _edit_text(e)} for e, dop in edits
        ])
        logged = None
        try:
            with self.storage.batch():
                rec = self.storage.append_commit(ds, time.time(), user, "edit", payload, label)
                if event is not None:
                    logged = self.notifications.log(event)
        except Exception:
            for s, m in called:
                s.post(ChangeEvent("abort", ds, rev, user, m))
            raise
        if plan is not None:
            plan.graft(self._trees[ds], work)
            work.free()
        else:
            old = self._trees[ds]
            self._trees[ds] = work
            old.free()
        for s, m in called:
            s.post(ChangeEvent("done", ds, rec.revision, user, m))
        if event is not None and logged is not None:
            self.notifications.fan_out(event, logged)
        return rec

    def _changes_for(self, sub: ChangeSubscription, changes: list[Change],
                     work: Tree) -> list[Change]:
        selected: set[str] | None = None
        if sub.xpath:
            selected = {node_path(n) for n in work.xpath(sub.xpath)}
            selected |= {node_path(n) for n in self._trees[sub.datastore].xpath(sub.xpath)}
        return [c for c in changes if sub.wants(c, selected)]

    def _after_commit(self, ds: str, rec: CommitRecord, changes: list[Change]) -> None:
        self._info[ds] = CommitInfo(rec.revision, rec.timestamp, rec.user)
        self._last_revision = max(self._last_revision, rec.revision)
        count, size = self.storage.since_snapshot(ds)
        if count >= self.snapshot_every_commits or size >= max(
                self.snapshot_min_bytes, self._snap_size.get(ds, 0)):
            self.snapshot(ds)
        if ds == "running" and not self._candidate.dirty:
            self._candidate.base_revision = rec.revision

    def _config_change(self, ds: str, session: Session | None, user: str,
                       changes: list[Change], work: Tree) -> Checked | None:
        """RFC 6470 netconf-config-change for a commit, checked against the new data;
        it is logged in the commit's own storage transaction."""
        if not self._has_config_change or ds not in DURABLE:
            return None

        def present(path: str) -> bool:
            try:
                return bool(path) and work.find(path) != ffi.NULL
            except NfoError:  # a path libyang prints but cannot parse back (quotes)
                return False

        edits = [{"operation": op, **({"target": t} if present(t) else {})}
                 for t, op in _edit_records(changes)]
        by = ({"username": user, "session-id": session.id} if session is not None
              else {"server": [None]})
        body = json.dumps({"ietf-netconf-notifications:netconf-config-change": {
            "changed-by": by, "datastore": ds, "edit": edits}})
        try:
            return self.notifications.check(body, "json", data=work.first())
        except NfoError as e:
            log.error("netconf-config-change not published: %s", e)
            return None

    def snapshot(self, ds: str = "running") -> None:
        content = self._trees[ds].print(Fmt.JSON)
        self.storage.write_snapshot(ds, self._info[ds].revision, content)
        self._snap_size[ds] = len(content)

    def _reset_candidate(self) -> None:
        if self._candidate.tree is not None:
            self._candidate.tree.free()
        self._candidate = _Candidate(None, self._info["running"].revision)

    def _swap_candidate(self, work: Tree, edits: Sequence[tuple[Tree, str]]) -> None:
        c = self._candidate
        if c.tree is not None:
            c.tree.free()
        c.tree = work
        if c.edits is not None:
            c.edits += [(_edit_text(e), dop) for e, dop in edits]

    async def _commit_candidate(self, session: Session, label: str = "", *,
                                if_revision: int | None = None,
                                precondition: Precondition | None = None) -> list[Change]:
        async with self._wlock:
            self._check_precondition("running", if_revision, precondition)
            c = self._candidate
            if c.tree is None:
                return []
            self._validate(c.tree)
            if c.edits is not None and c.base_revision == self._info["running"].revision:
                trees = [Tree.parse(self.ctx, text, Fmt.JSON, parse_opts=_PARSE_EDIT)
                         for text, _ in c.edits]
                edits = [(t, dop) for t, (_, dop) in zip(trees, c.edits, strict=True)]
            else:
                trees = [c.tree.dup()]
                edits = [(trees[0], "replace")]
            try:
                changes = await self._transact_locked(session, "running", edits,
                                                      user=session.user,
                                                      label=label or "commit")
            finally:
                for t in trees:
                    t.free()
            self._reset_candidate()
            return changes

    def _confirmed_event(self, event: str, session: Session | None,
                         timeout: float | None = None) -> None:
        """RFC 6470 netconf-confirmed-commit."""
        if not self._has_config_change:
            return
        body: dict[str, Any] = {"confirm-event": event}
        if session is not None and event != "timeout":
            body.update({"username": session.user, "session-id": session.id})
        if timeout is not None:
            body["timeout"] = int(timeout)
        _publish_quietly(self, json.dumps(
            {"ietf-netconf-notifications:netconf-confirmed-commit": body}))

    async def _rollback_pending(self, why: str, event: str = "cancel",
                                by: Session | None = None) -> None:
        p = self._pending
        if p is None:
            return
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        self._pending = None
        try:
            with Tree.parse(self.ctx, p.content, Fmt.JSON, parse_opts=_PARSE_CONFIG) as before:
                await self._transact(None, "running", [(before, "replace")], user="nfo",
                                     label=f"rollback to {p.revision_before}: {why}",
                                     system=True)
        except BaseException:
            log.exception("could not revert the confirmed commit (%s); it stays pending", why)
            self._pending = p
            raise
        self.storage.set_meta("confirmed-commit", "")
        self._reset_candidate()
        self._confirmed_event(event, by)

    def _arm_timer(self, timeout: float) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            task = loop.create_task(self._rollback_pending("confirm-timeout expired", "timeout"),
                                    name="nfo-confirmed-commit-timeout")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return loop.call_later(timeout, fire)


class Session:
    """One client's view: who writes, which locks it holds, what it may cancel."""

    def __init__(self, ds: Datastore, sid: int, user: str,
                 on_kill: Callable[[], None] | None) -> None:
        self.datastore = ds
        self.id = sid
        self.user = user
        self._on_kill = on_kill
        self.closed = False
        self.killed_by: int | None = None
        """The session that ended this one with kill-session, if any."""

    # -- writes --------------------------------------------------------------
    async def edit(
        self,
        datastore: str,
        content: str | bytes | Tree,
        fmt: Fmt | str = Fmt.XML,
        *,
        default_operation: str = "merge",
        test_option: str = "test-then-set",
        error_option: str = "rollback-on-error",
        if_revision: int | None = None,
        precondition: Precondition | None = None,
    ) -> list[Change]:
        """edit-config (RFC 6241 section 7.2) on running, candidate or startup."""
        return await self.edit_many(datastore, [content], fmt,
                                    default_operation=default_operation,
                                    test_option=test_option, error_option=error_option,
                                    if_revision=if_revision, precondition=precondition)

    async def edit_many(
        self,
        datastore: str,
        contents: Iterable[str | bytes | Tree],
        fmt: Fmt | str = Fmt.XML,
        *,
        default_operation: str = "merge",
        test_option: str = "test-then-set",
        error_option: str = "rollback-on-error",
        label: str = "",
        if_revision: int | None = None,
        precondition: Precondition | None = None,
    ) -> list[Change]:
        """Several edits applied in order as one all-or-nothing transaction.

        ``if_revision``: refuse (:class:`PreconditionFailed`) unless the datastore's
        last commit is that revision; ``precondition``: called with a :class:`WriteView`
        of the datastore, may raise to refuse.  Both are checked under the datastore's
        write lock right before the edit is applied; a refused write changes nothing."""
        self._alive()
        ds = _ds(datastore, CONFIG_DATASTORES)
        if test_option not in ("test-then-set", "set", "test-only"):
            raise InvalidValue(f"invalid test-option {test_option!r}")
        if error_option not in ("rollback-on-error", "stop-on-error", "continue-on-error"):
            raise InvalidValue(f"invalid error-option {error_option!r}")
        if error_option == "continue-on-error":
            raise OperationNotSupported("error-option continue-on-error is not supported: "
                                        "nfo applies edits all-or-nothing")
        owned: list[Tree] = []
        try:
            edits: list[tuple[Tree, str]] = []
            for c in contents:
                if isinstance(c, Tree):
                    edits.append((c, default_operation))
                else:
                    t = Tree.parse(self.datastore.ctx, c, fmt, parse_opts=_PARSE_EDIT)
                    owned.append(t)
                    edits.append((t, default_operation))
            # "set" skips validation only where invalid data may wait: the candidate.
            validate = not (test_option == "set" and ds == "candidate")
            return await self.datastore._transact(
                self, ds, edits, user=self.user, test_only=test_option == "test-only",
                validate=validate, label=label, if_revision=if_revision,
                precondition=precondition)
        finally:
            for t in owned:
                t.free()

    async def copy_config(self, target: str, source: str | bytes | Tree,
                          fmt: Fmt | str = Fmt.XML, *, source_is_datastore: bool = False,
                          if_revision: int | None = None,
                          precondition: Precondition | None = None) -> None:
        """Replace ``target`` with another datastore's content or inline config."""
        self._alive()
        d = self.datastore
        tgt = _ds(target, CONFIG_DATASTORES)
        if source_is_datastore:
            src = _ds(str(source), CONFIG_DATASTORES)
            if src == tgt:
                await d._check_only(tgt, if_revision, precondition)
                return
            tree = d.tree(src).dup()
        elif isinstance(source, Tree):
            tree = source.dup()
        else:
            tree = Tree.parse(d.ctx, source, fmt, parse_opts=_PARSE_CONFIG)
        with tree:
            await d._transact(self, tgt, [(tree, "replace")], user=self.user,
                              label=f"copy-config to {tgt}", if_revision=if_revision,
                              precondition=precondition)

    async def delete_config(self, target: str, *, if_revision: int | None = None,
                            precondition: Precondition | None = None) -> None:
        self._alive()
        tgt = _ds(target, CONFIG_DATASTORES)
        if tgt == "running":
            raise OperationNotSupported("delete-config cannot target running")
        with Tree(self.datastore.ctx) as empty:
            await self.datastore._transact(self, tgt, [(empty, "replace")], user=self.user,
                                           label=f"delete-config {tgt}",
                                           if_revision=if_revision, precondition=precondition)

    async def commit(self, *, confirmed: bool = False, timeout: float = 600,
                     persist: str | None = None, persist_id: str | None = None,
                     if_revision: int | None = None,
                     precondition: Precondition | None = None) -> list[Change]:
        """Commit candidate to running, optionally as a confirmed commit; ``if_revision``
        and ``precondition`` are checked against running (see :meth:`edit_many`)."""
        self._alive()
        d = self.datastore
        d._check_writable(self, "running")
        p = d._pending
        if p is not None:
            if p.persist is not None:
                if persist_id != p.persist:
                    raise InvalidValue("a persistent confirmed commit is pending: give its "
                                       "persist-id to confirm it", tag="invalid-value")
            elif p.session_id not in (None, self.id):
                raise InUse(f"a confirmed commit of session {p.session_id} is pending",
                            info={"session-id": str(p.session_id)})
        elif persist_id is not None:
            raise InvalidValue("no confirmed commit is pending for that persist-id")
        fresh = confirmed and p is None
        if fresh:
            before = d._info["running"].revision
            content = d._trees["running"].print(Fmt.JSON)
            d.storage.set_meta("confirmed-commit",
                               json.dumps({"revision_before": before, "content": content}))
            p = d._pending = _Pending(before, content, None if persist else self.id, persist)
        try:
            changes = await d._commit_candidate(
                self, "confirmed commit" if confirmed else "commit", if_revision=if_revision,
                precondition=precondition)
        except BaseException:
            if fresh:
                d._pending = None
                d.storage.set_meta("confirmed-commit", "")
            raise
        if p is not None:
            if p.timer is not None:
                p.timer.cancel()
                p.timer = None
            if confirmed:
                p.persist = persist
                p.session_id = None if persist else self.id
                p.timer = d._arm_timer(timeout)
                d._confirmed_event("start" if fresh else "extend", self, timeout)
            else:
                d._pending = None
                d.storage.set_meta("confirmed-commit", "")
                d._confirmed_event("complete", self)
        return changes

    async def cancel_commit(self, persist_id: str | None = None) -> None:
        self._alive()
        d = self.datastore
        p = d._pending
        if p is None:
            raise InvalidValue("no confirmed commit is pending", tag="operation-failed")
        if p.persist is not None and persist_id != p.persist:
            raise InvalidValue("persist-id does not match the pending confirmed commit")
        if p.persist is None and p.session_id != self.id:
            raise InUse("the pending confirmed commit belongs to another session")
        await d._rollback_pending("cancel-commit", "cancel", self)

    async def discard_changes(self) -> None:
        self._alive()
        self.datastore._check_writable(self, "candidate")
        self.datastore._reset_candidate()

    async def rollback(self, revision: int, *, if_revision: int | None = None,
                       precondition: Precondition | None = None) -> list[Change]:
        """Make running what it was right after ``revision`` (a new commit); the
        preconditions are checked as by :meth:`edit_many`."""
        self._alive()
        d = self.datastore
        if not 0 <= revision <= d._last_revision:
            raise InvalidValue(f"no revision {revision} (the last is {d._last_revision})")
        if revision:
            committed = d.storage.commits_between("running", revision - 1, revision)
            snap = d.storage.snapshot_at("running", revision)
            if not committed and (snap is None or snap.revision != revision):
                raise InvalidValue(f"revision {revision} is not a commit of running")
        with d.state_at("running", revision) as before:
            return await d._transact(self, "running", [(before, "replace")], user=self.user,
                                     label=f"rollback to {revision}", if_revision=if_revision,
                                     precondition=precondition)

    def validate(self, source: str | bytes | Tree, fmt: Fmt | str = Fmt.XML, *,
                 source_is_datastore: bool = True) -> None:
        self._alive()
        d = self.datastore
        if source_is_datastore:
            tree = d.tree(_ds(str(source), CONFIG_DATASTORES)).dup()
        elif isinstance(source, Tree):
            tree = source.dup()
        else:
            tree = Tree.parse(d.ctx, source, fmt, parse_opts=_PARSE_CONFIG)
        with tree:
            d._validate(tree)

    # -- locks ---------------------------------------------------------------
    def lock(self, datastore: str) -> None:
        self._alive()
        d = self.datastore
        ds = _ds(datastore, CONFIG_DATASTORES)
        holder = d._locks.get(ds)
        if holder is not None:
            raise LockDenied(f"the {ds} datastore is already locked by session {holder}",
                             info={"session-id": str(holder)})
        if ds == "candidate" and d._candidate.dirty:
            raise LockDenied("the candidate datastore has uncommitted changes",
                             info={"session-id": "0"})
        if d._committing is not None and d._committing[0] == ds:
            raise LockDenied(f"a commit to the {ds} datastore is in progress",
                             info={"session-id": str(d._committing[1])})
        d._locks[ds] = self.id
        d._lock_times[ds] = time.time()

    def unlock(self, datastore: str) -> None:
        self._alive()
        d = self.datastore
        ds = _ds(datastore, CONFIG_DATASTORES)
        if d._locks.get(ds) != self.id:
            raise OperationFailed(f"the {ds} datastore is not locked by this session",
                                  tag="operation-failed")
        del d._locks[ds]
        if ds == "candidate":
            d._reset_candidate()  # RFC 6241 8.3.5.2: releasing the lock discards changes

    # -- operational ---------------------------------------------------------
    def set_oper(self, content: str | bytes, fmt: Fmt | str = Fmt.JSON, *,
                 owner: str | None = None, replace: bool = False) -> None:
        """Push operational data; it is durable when this returns.  With ``replace``
        each pushed list entry replaces the owner's previous one."""
        self._alive()
        self.datastore._oper.set(check_owner(owner or self.user), content, fmt,
                                 replace=replace)

    def delete_oper(self, path: str, *, owner: str | None = None) -> bool:
        self._alive()
        return self.datastore._oper.delete(check_owner(owner or self.user), path)

    async def set_oper_async(self, content: str | bytes, fmt: Fmt | str = Fmt.JSON, *,
                             owner: str | None = None, replace: bool = False,
                             notification: str | None = None) -> None:
        """:meth:`set_oper` through group commit: concurrent writers share one durable
        write.  ``notification`` (RFC 7951 JSON) is published in the same write."""
        self._alive()
        d = self.datastore
        who = check_owner(owner or self.user)

        def write() -> None:
            d._oper.set(who, content, fmt, replace=replace)
            if notification is not None:
                _publish_quietly(d, notification)
        await d.group.run(write)

    async def delete_oper_async(self, path: str, *, owner: str | None = None,
                                notification: str | None = None) -> bool:
        """:meth:`delete_oper` through group commit."""
        self._alive()
        d = self.datastore
        who = check_owner(owner or self.user)

        def write() -> bool:
            found = d._oper.delete(who, path)
            if notification is not None:
                _publish_quietly(d, notification)
            return found
        return await d.group.run(write)

    # -- RPCs ----------------------------------------------------------------
    async def rpc(self, content: str | bytes, fmt: Fmt | str = Fmt.XML) -> Tree:
        """Invoke an RPC or action; returns the reply tree (parents + op + output)."""
        self._alive()
        d = self.datastore
        ctx = d.ctx
        top, op = parse_op(ctx, content, fmt, lib.LYD_TYPE_RPC_YANG, what="parsing an RPC")
        tree = Tree(ctx, top)
        try:
            running = d.tree("running").first()
            ly.check(lib.lyd_validate_op(tree.first(), running, lib.LYD_TYPE_RPC_YANG,
                                         ffi.NULL), ctx, "validating RPC input")
            spath = _schema_path(op)
            ppath = None
            if op.parent != ffi.NULL:
                ppath = node_path(ffi.cast("struct lyd_node *", op.parent))
                if not d.exists(ppath):
                    raise DataMissing("the node the action is invoked on does not exist",
                                      path=ppath)
            handler = d._rpcs.get(spath)
            if handler is None:
                raise OperationNotSupported(f"no handler serves {spath}")
            output = await handler(RpcCall(self, spath, tree, op, ppath))
            reply = _reply_tree(ctx, op)
        finally:
            tree.free()
        try:
            rop = reply.op
            for name, value in (output or {}).items():
                ly.check(lib.lyd_new_path(rop, ctx, name.encode(), str(value).encode(),
                                          lib.LYD_NEW_PATH_OUTPUT | lib.LYD_NEW_PATH_UPDATE,
                                          ffi.NULL), ctx, "building RPC output")
            ly.check(lib.lyd_validate_op(reply.tree.first(), d.tree("running").first(),
                                         lib.LYD_TYPE_REPLY_YANG, ffi.NULL), ctx,
                     "validating RPC output")
        except BaseException:
            reply.tree.free()
            raise
        return reply.tree

    # -- lifecycle -----------------------------------------------------------
    def _alive(self) -> None:
        if self.closed:
            raise OperationFailed("the session is closed")

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        d = self.datastore
        d._sessions.pop(self.id, None)
        if d._locks.get("candidate") == self.id:
            d._reset_candidate()
        for name, holder in list(d._locks.items()):
            if holder == self.id:
                del d._locks[name]
        p = d._pending
        if p is not None and p.persist is None and p.session_id == self.id and not d._closed:
            await d._rollback_pending("the session of the confirmed commit ended", "cancel",
                                      self)

    async def kill(self, session_id: int) -> None:
        """kill-session: end another session, releasing its locks."""
        self._alive()
        if session_id == self.id:
            raise InvalidValue("a session cannot kill itself")
        other = self.datastore._sessions.get(session_id)
        if other is None:
            raise InvalidValue(f"no session {session_id}")
        other.killed_by = self.id
        await other.close()
        if other._on_kill is not None:
            other._on_kill()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _edit_text(edit: Tree) -> str:
    """An edit as replayable JSON; empty containers stay, they may carry an operation."""
    return print_nodes(edit.first(), Fmt.JSON, flags=lib.LYD_PRINT_KEEPEMPTYCONT)


def _present(tree: Tree, path: str) -> bool:
    node = tree.find(path)
    return bool(node != ffi.NULL and not is_default(node))


def _ds(name: str, allowed: tuple[str, ...]) -> str:
    short = name.removeprefix("ietf-datastores:")
    if short not in allowed:
        raise InvalidValue(f"datastore {name!r} is not valid here "
                           f"(use one of {', '.join(allowed)})")
    return short


_MAX_EDIT_RECORDS = 64


def _parent_path(path: str) -> str:
    """``path`` without its last step ('' for a top-level node)."""
    steps = path_steps(path, strict=False)
    return "/" + "/".join(steps[:-1]) if len(steps) > 1 else ""


def _top_path(path: str) -> str:
    end = path.find("/", 1)
    if end < 0:
        return path
    if "[" not in path[:end]:
        return path[:end]
    return "/" + path_steps(path, strict=False)[0]  # a top-level list whose key may hold '/'


def _edit_records(changes: list[Change]) -> list[tuple[str, str]]:
    """(target, operation) for netconf-config-change: the topmost node of each change,
    a deleted node's parent (the target must exist), top-level nodes if too many."""
    top: list[Change] = []
    last = "\0"
    for c in changes:
        if not c.path.startswith(last + "/"):
            top.append(c)
            last = c.path
    if len(top) > _MAX_EDIT_RECORDS:
        return [(t, "merge") for t in dict.fromkeys(_top_path(c.path) for c in top)]
    return [(_parent_path(c.path), "delete") if isinstance(c, ChangeDeleted) else
            (c.path, "create" if isinstance(c, ChangeCreated) else "replace") for c in top]


def _select(base: Tree, xpath: str | None) -> Tree:
    if xpath is None or xpath in ("/", ""):
        return base.dup()
    out = Tree(base.ctx)
    for node in base.xpath(xpath):
        p = ffi.new("struct lyd_node **")
        ly.check(lib.lyd_dup_single(node, ffi.NULL,
                                    lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_PARENTS
                                    | lib.LYD_DUP_WITH_FLAGS, p), base.ctx, "copying data")
        top = p[0]
        while top.parent != ffi.NULL:
            top = ffi.cast("struct lyd_node *", top.parent)
        if out.first() == ffi.NULL:
            out.root = top
        else:
            holder = ffi.new("struct lyd_node **", out.root)
            ly.check(lib.lyd_merge_siblings(holder, top, lib.LYD_MERGE_DESTRUCT
                                            | lib.LYD_MERGE_WITH_FLAGS), base.ctx,
                     "merging data")
            out.root = holder[0]
    return out


def _fold_deletes(changes: list[Change], deletes: list[Change]) -> None:
    """Add what validation removed; a node this same edit created and validation then
    removed (both cases of a choice given) was never there, so neither is reported."""
    if not deletes:
        return
    gone = {c.path for c in deletes}

    def under(path: str) -> str | None:
        for g in gone:
            if path == g or path.startswith(g + "/"):
                return g
        return None
    created_then_gone = {g for c in changes if isinstance(c, ChangeCreated)
                         and (g := under(c.path)) is not None and g == c.path}
    changes[:] = [c for c in changes if not (isinstance(c, ChangeCreated | ChangeModified)
                                             and under(c.path) is not None)]
    changes += [c for c in deletes if under(c.path) not in created_then_gone]


def _publish_quietly(d: Datastore, notification: str) -> None:
    try:
        d.notifications.publish(notification, "json")
    except NfoError as e:
        log.error("notification not published: %s", e)


@dataclass
class _Reply:
    tree: Tree
    op: Any


def _reply_tree(ctx: Any, op: Any) -> _Reply:
    """A copy of the RPC/action node with its parents but without its input."""
    out = ffi.new("struct lyd_node **")
    ly.check(lib.lyd_dup_single(op, ffi.NULL, lib.LYD_DUP_WITH_PARENTS, out), ctx,
             "building an RPC reply")
    rop = out[0]
    top = rop
    while top.parent != ffi.NULL:
        top = ffi.cast("struct lyd_node *", top.parent)
    for child in list(siblings(lib.lyd_child(rop))):
        lib.lyd_free_tree(child)
    return _Reply(Tree(ctx, top), rop)


def _schema_path(op: Any) -> str:
    parts = []
    node = op
    prev_mod = None
    chain = []
    while node != ffi.NULL:
        chain.append(node)
        node = ffi.cast("struct lyd_node *", node.parent) if node.parent != ffi.NULL else ffi.NULL
    for n in reversed(chain):
        mod = ffi.string(n.schema.module.name).decode()
        name = ffi.string(n.schema.name).decode()
        parts.append(f"{mod}:{name}" if mod != prev_mod else name)
        prev_mod = mod
    return "/" + "/".join(parts)

