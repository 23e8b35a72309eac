"""The write pipeline: every change to a configuration datastore is one transaction here.

Transactions are serialised by one write lock.  Under it: the writer's preconditions on
the target as it is now (compare-and-set), a working copy (partial where
:mod:`nfo.schema.partial` proves it safe), the edits (:func:`apply_edit`), libyang
validation, change subscribers in phase ``change`` (a raise vetoes), the commit record
and its RFC 6470 netconf-config-change appended durably in one storage transaction, the
working copy swapped or grafted in, subscribers told ``done`` (or ``abort``), and a
snapshot when the log has grown.  A failure before the swap leaves the live tree as it
was.  The candidate is edited through the same pipeline but not committed until
:meth:`Transactions.commit_candidate`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from nfo.datastore.candidate import Candidate
from nfo.datastore.formats import edit_text
from nfo.datastore.locks import LockTable
from nfo.datastore.nacm import Identity, Nacm
from nfo.datastore.names import DURABLE
from nfo.datastore.notifications import Checked, NotificationHub
from nfo.datastore.storage.base import CommitRecord, Storage
from nfo.datastore.subscriptions import ChangeEvent, ChangeSubscription
from nfo.errors import DataExists, DataMissing, NfoError, PreconditionFailed, Veto
from nfo.schema import Fmt, Schema, Tree
from nfo.schema.changes import Change, ChangeCreated, ChangeDeleted
from nfo.schema.data import path_steps
from nfo.schema.deps import Independence
from nfo.schema.edit import apply_edit
from nfo.schema.edit import validate as validate_tree
from nfo.schema.partial import Plan, plan_edits

__all__ = [
    "CommitInfo",
    "Precondition",
    "Settings",
    "Transactions",
    "WriteView",
    "Writer",
]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Writer:
    """Who writes: a session (its id and user), or the server itself (no session)."""

    session_id: int | None
    user: str
    who: Identity | None = None
    """The identity access control checks; None for the server itself."""


class Settings(Protocol):
    """The tunables of the pipeline, read at each commit (the :class:`Datastore`)."""

    snapshot_every_commits: int
    snapshot_min_bytes: int
    partial_validation: bool


class Transactions:
    """The live trees of running and startup, their last commits, and every write."""

    def __init__(self, schema: Schema, storage: Storage, settings: Settings, locks: LockTable,
                 candidate: Candidate, notifications: NotificationHub,
                 subscribers: Callable[[str], Sequence[ChangeSubscription]],
                 independence: Independence, config_change_events: bool, nacm: Nacm) -> None:
        self._schema = schema
        self._nacm = nacm
        self._storage = storage
        self._settings = settings
        self._locks = locks
        self._candidate = candidate
        self._notifications = notifications
        self._subscribers = subscribers
        self._ind = independence
        self._config_change_events = config_change_events
        self._lock = asyncio.Lock()
        self._trees: dict[str, Tree] = {}
        self._info: dict[str, CommitInfo] = {}
        self._snap_size: dict[str, int] = {}
        self._last_revision = 0

    # -- committed state -----------------------------------------------------
    def restore(self, trees: dict[str, Tree], info: dict[str, CommitInfo],
                snap_size: dict[str, int], last_revision: int) -> None:
        """Take over the state loaded from storage (the trees are owned here from now)."""
        self._trees = trees
        self._info = info
        self._snap_size = snap_size
        self._last_revision = last_revision

    def tree(self, ds: str) -> Tree:
        """The live tree of running, startup or the candidate."""
        if ds == "candidate":
            return self._candidate.tree or self._trees["running"]
        return self._trees[ds]

    def info(self, ds: str) -> CommitInfo:
        """The last commit of ``ds`` (the candidate has none of its own: running's)."""
        return self._info["running" if ds == "candidate" else ds]

    @property
    def last_revision(self) -> int:
        """The newest revision of any datastore."""
        return self._last_revision

    def snapshot(self, ds: str) -> None:
        content = self._trees[ds].print(Fmt.JSON)
        self._storage.write_snapshot(ds, self._info[ds].revision, content)
        self._snap_size[ds] = len(content)

    def close(self) -> None:
        for t in self._trees.values():
            t.free()
        self._trees.clear()

    # -- preconditions -------------------------------------------------------
    def check_precondition(self, ds: str, if_revision: int | None,
                           precondition: Precondition | None) -> None:
        """Refuse the write unless ``ds`` is as its writer expects.  Under the write
        lock nothing commits between this and the edit."""
        info = self.info(ds)
        if if_revision is not None and info.revision != if_revision:
            raise PreconditionFailed(f"the {ds} datastore is at revision {info.revision}, "
                                     f"not {if_revision}")
        if precondition is not None:
            tree = self.tree(ds)
            precondition(WriteView(ds, info, lambda path: _present(tree, path)))

    async def check(self, ds: str, if_revision: int | None,
                    precondition: Precondition | None) -> None:
        """The preconditions alone, under the lock: for a write found to be a no-op."""
        if if_revision is not None or precondition is not None:
            async with self._lock:
                self.check_precondition(ds, if_revision, precondition)

    # -- writes --------------------------------------------------------------
    async def transact(
        self,
        writer: Writer,
        ds: str,
        edits: Sequence[tuple[Tree, str]],
        *,
        test_only: bool = False,
        validate: bool = True,
        label: str = "",
        system: bool = False,
        if_revision: int | None = None,
        precondition: Precondition | None = None,
        also: Callable[[], None] | None = None,
    ) -> list[Change]:
        """One transaction; ``system`` ones (confirmed-commit reverts) ignore locks.
        ``also`` makes more storage writes in the commit's own storage transaction
        (not called when nothing is committed)."""
        if not system:
            self._locks.check_writable(writer.session_id, ds)
        async with self._lock:
            return await self._transact_locked(writer, ds, edits, test_only=test_only,
                                               validate=validate, label=label, system=system,
                                               if_revision=if_revision,
                                               precondition=precondition, also=also)

    async def commit_candidate(self, writer: Writer, label: str = "", *,
                               if_revision: int | None = None,
                               precondition: Precondition | None = None,
                               also: Callable[[], None] | None = None) -> list[Change]:
        """Commit the candidate to running (preconditions on running) and reset it."""
        async with self._lock:
            self.check_precondition("running", if_revision, precondition)
            c = self._candidate
            if c.tree is None:
                return []
            validate_tree(self._schema, c.tree)
            trees, edits = c.commit_edits(self._schema, self._info["running"].revision)
            try:
                changes = await self._transact_locked(writer, "running", edits,
                                                      label=label or "commit", also=also)
            finally:
                for t in trees:
                    t.free()
            c.reset()
            return changes

    async def _transact_locked(
        self,
        writer: Writer,
        ds: str,
        edits: Sequence[tuple[Tree, str]],
        *,
        test_only: bool = False,
        validate: bool = True,
        label: str = "",
        system: bool = False,
        if_revision: int | None = None,
        precondition: Precondition | None = None,
        also: Callable[[], None] | None = None,
    ) -> list[Change]:
        if not system:
            self._locks.check_writable(writer.session_id, ds)
        self.check_precondition(ds, if_revision, precondition)
        base = self.tree(ds)
        plan = None
        if ds in DURABLE and self._settings.partial_validation:
            plan = plan_edits(self._schema, self._ind, list(edits))
        work = plan.build(base) if plan is not None else base.dup()
        try:
            changes: list[Change] = []
            checked = writer.who is not None and not system
            try:
                for edit, dop in edits:
                    changes += apply_edit(self._schema, work, edit, dop)
            except (DataExists, DataMissing) as e:
                if checked and writer.who is not None:
                    self._nacm.access(writer.who).check_existence_error(e)
                raise
            if checked and writer.who is not None and changes:
                self._nacm.access(writer.who).check_write(
                    changes, lambda path: any(_present(e, path) for e, _ in edits))
            if validate:
                validate_tree(self._schema, work, changes)
            if test_only or not changes:
                work.free()
                return [] if test_only else changes
            if ds == "candidate":
                self._candidate.swap(work, edits, self._info["running"].revision)
                return changes
            with self._locks.committing(ds, writer.session_id):
                rec = await self._commit(ds, work, edits, changes, writer.user, label, plan,
                                         self._config_change(ds, writer, changes, work), also)
        except BaseException:
            work.free()
            raise
        self._after_commit(ds, rec)
        return changes

    async def _commit(self, ds: str, work: Tree, edits: Sequence[tuple[Tree, str]],
                      changes: list[Change], user: str, label: str,
                      plan: Plan | None, event: Checked | None = None,
                      also: Callable[[], None] | None = None) -> CommitRecord:
        try:
            return await self._commit_with(ds, work, edits, changes, user, label, plan, event,
                                           also)
        finally:
            if event is not None:
                event.discard()

    async def _commit_with(self, ds: str, work: Tree, edits: Sequence[tuple[Tree, str]],
                           changes: list[Change], user: str, label: str,
                           plan: Plan | None, event: Checked | None,
                           also: Callable[[], None] | None) -> CommitRecord:
        rev = self._last_revision + 1
        called: list[tuple[ChangeSubscription, list[Change]]] = []
        for sub in self._subscribers(ds):
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
            {"default-operation": dop, "edit": edit_text(e)} for e, dop in edits
        ])
        logged = None
        try:
            with self._storage.batch():
                rec = self._storage.append_commit(ds, time.time(), user, "edit", payload, label)
                if event is not None:
                    logged = self._notifications.log(event)
                if also is not None:
                    also()
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
        if ds == "running":
            self._nacm.changed(changes)
        for s, m in called:
            s.post(ChangeEvent("done", ds, rec.revision, user, m))
        if event is not None and logged is not None:
            self._notifications.fan_out(event, logged)
        return rec

    def _changes_for(self, sub: ChangeSubscription, changes: list[Change],
                     work: Tree) -> list[Change]:
        selected: set[str] | None = None
        if sub.xpath:
            selected = {n.path for n in work.match(sub.xpath)}
            selected |= {n.path for n in self._trees[sub.datastore].match(sub.xpath)}
        return [c for c in changes if sub.wants(c, selected)]

    def _after_commit(self, ds: str, rec: CommitRecord) -> None:
        self._info[ds] = CommitInfo(rec.revision, rec.timestamp, rec.user)
        self._last_revision = max(self._last_revision, rec.revision)
        try:
            count, size = self._storage.since_snapshot(ds)
            if count >= self._settings.snapshot_every_commits or size >= max(
                    self._settings.snapshot_min_bytes, self._snap_size.get(ds, 0)):
                self.snapshot(ds)
        except NfoError as e:
            # The commit is durable and applied: a snapshot only shortens the replay
            # on start, and the next commit tries again.
            log.warning("commit %d of %s is durable, but no snapshot was written: %s",
                        rec.revision, ds, e)

    def _config_change(self, ds: str, writer: Writer, changes: list[Change],
                       work: Tree) -> Checked | None:
        """RFC 6470 netconf-config-change for a commit, checked against the new data;
        it is logged in the commit's own storage transaction."""
        if not self._config_change_events or ds not in DURABLE:
            return None

        def present(path: str) -> bool:
            try:
                return bool(path) and work.node(path) is not None
            except NfoError:  # a path libyang prints but cannot parse back (quotes)
                return False

        edits = [{"operation": op, **({"target": t} if present(t) else {})}
                 for t, op in _edit_records(changes)]
        by = ({"username": writer.user, "session-id": writer.session_id}
              if writer.session_id is not None else {"server": [None]})
        body = json.dumps({"ietf-netconf-notifications:netconf-config-change": {
            "changed-by": by, "datastore": ds, "edit": edits}})
        try:
            return self._notifications.check(body, "json", data=work)
        except NfoError as e:
            log.error("netconf-config-change not published: %s", e)
            return None


def _present(tree: Tree, path: str) -> bool:
    node = tree.node(path)
    return node is not None and not node.is_default


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
