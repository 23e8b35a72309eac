"""The write pipeline: every change to a configuration datastore is one transaction here.

Transactions are serialised by one write lock.  Under it: the writer's preconditions on
the target as it is now (compare-and-set), a working copy (partial where
:mod:`nfo.schema.partial` proves it safe), the edits (:func:`apply_edit`), libyang
validation, change subscribers in phase ``change`` (a raise vetoes), the commit record
and its RFC 6470 netconf-config-change appended durably in one storage transaction, the
working copy swapped or grafted in, subscribers told ``done`` (or ``abort``), and a
snapshot when the log has grown: written right after the writer has its answer (a
snapshot only shortens the replay on start, and after a bulk commit it costs as much as
printing the whole datastore), or after a quiet spell once it has grown by an eighth
of that.  A failure before the swap leaves the live tree as it
was.  The candidate is edited through the same pipeline but not committed until
:meth:`Transactions.commit_candidate`.

Plain edits of running or startup that arrive while another commit runs are committed
as a group (:meth:`Transactions._together`): applied in arrival order to one working
copy, validated once, each recorded as its own commit (own revision, user, label and
netconf-config-change) in one storage transaction, so they share one fsync; each
writer gets its own verdict.  If anything in a group fails (a precondition, an edit,
validation, a subscriber's veto), nothing of it was applied and its writes run again
one at a time, so a failing write never takes a neighbour down with it.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from nfo.datastore.candidate import Candidate, PrivateCandidate
from nfo.datastore.forked import ChildPrint
from nfo.datastore.formats import EditSource, edit_item
from nfo.datastore.groupcommit import Batches, Queued
from nfo.datastore.locks import LockTable
from nfo.datastore.nacm import Identity, Nacm
from nfo.datastore.names import DURABLE
from nfo.datastore.notifications import Checked, Notification, NotificationHub
from nfo.datastore.storage.base import CommitRecord, Replicated, Storage
from nfo.datastore.subscriptions import ChangeEvent, ChangeSubscription
from nfo.errors import (
    AccessDenied,
    DataExists,
    DataMissing,
    InUse,
    NfoError,
    OperationFailed,
    PreconditionFailed,
    ResourceDenied,
    StorageConflict,
    StorageCorrupt,
    Veto,
)
from nfo.schema import Fmt, Schema, Tree
from nfo.schema.changes import Change, ChangeCreated, ChangeDeleted, ChangeSet, Run
from nfo.schema.data import path_steps
from nfo.schema.deps import Independence
from nfo.schema.edit import apply_edit, used_runs
from nfo.schema.edit import validate as validate_tree
from nfo.schema.partial import Plan, plan_edits

__all__ = [
    "CommitInfo",
    "Precondition",
    "Recorded",
    "Settings",
    "Transactions",
    "WriteView",
    "Writer",
]

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 20
"""Times a write refused because another replica committed first is taken again (on
the newer state) before the refusal reaches the client."""

SNAPSHOT_DELAY = 0.02
"""Seconds between a commit that makes a snapshot due and the snapshot: its writers
answer first."""

QUIET_FRACTION = 8
"""A quiet datastore is snapshotted once its log since the last snapshot holds this
fraction of the snapshot-due thresholds (:meth:`Transactions._when_quiet`)."""


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

Recorded = Callable[[CommitRecord], None]
"""Told the commit record of a write once it is durable (its revision)."""


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
    snapshot_in_child_bytes: int
    snapshot_when_quiet: float
    partial_validation: bool
    group_commit: bool


@dataclass(frozen=True)
class _Write:
    """A plain edit of running or startup, waiting to be committed with others."""

    writer: Writer
    ds: str
    edits: Sequence[tuple[Tree, str]]
    label: str
    if_revision: int | None
    precondition: Precondition | None
    sources: Sequence[EditSource | None] | None = None
    recorded: Recorded | None = None


@dataclass
class _Staged:
    """A write applied to the working copy, to be recorded as one commit."""

    writer: Writer
    edits: Sequence[tuple[Tree, str]]
    changes: ChangeSet
    label: str
    event: Checked | None = None
    also: Callable[[], None] | None = None
    sources: Sequence[EditSource | None] | None = None
    """The text each edit was parsed from, kept as its record (None: printed)."""
    recorded: Recorded | None = None


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
        self._since: dict[str, tuple[int, int]] = {}
        """Per datastore, commits and bytes logged since its last snapshot."""
        self._last_revision = 0
        self._snapshots: dict[str, asyncio.TimerHandle] = {}
        """Snapshots due, by datastore, written at the next turn of the event loop."""
        self._children: dict[str, ChildPrint] = {}
        """Snapshots being printed by a forked child, by datastore."""
        self._writing: dict[str, _Steps] = {}
        """Snapshots a child printed, being written a step per turn of the loop."""
        self._quiet: dict[str, asyncio.TimerHandle] = {}
        """Snapshots waiting for their datastore to be quiet (:meth:`_when_quiet`)."""
        self._last_commit: dict[str, float] = {}
        """Per datastore, the loop time of its last commit."""
        self.snapshots_in_child = 0
        """Snapshots written from a child's print so far."""
        self._writes: Batches[_Write, ChangeSet] = Batches(
            self._run_group, self._lock, "nfo-group-commit")
        self._watchers: list[Callable[[Sequence[Change | Run]], None]] = [nacm.changed]

    def watch_running(self, callback: Callable[[Sequence[Change | Run]], None]) -> None:
        """Call ``callback`` with the changes of every commit to running (this replica's
        or another's), as the new tree goes live: no reader sees the tree before it."""
        self._watchers.append(callback)

    def _running_changed(self, changes: Sequence[Change | Run]) -> None:
        for watch in self._watchers:
            watch(changes)

    # -- committed state -----------------------------------------------------
    def restore(self, trees: dict[str, Tree], info: dict[str, CommitInfo],
                snap_size: dict[str, int], last_revision: int) -> None:
        """Take over the state loaded from storage (the trees are owned here from now)."""
        self._trees = trees
        self._info = info
        self._snap_size = snap_size
        self._last_revision = last_revision

    def start(self) -> None:
        """In the event loop, after :meth:`restore`: a long replay is snapshotted once
        the datastore is quiet, so that the next start does not replay it again."""
        for ds in DURABLE:
            if ds in self._trees:
                try:
                    self._since[ds] = self._storage.since_snapshot(ds)
                except NfoError as e:
                    log.warning("cannot tell how much of %s a start replays: %s", ds, e)
                    continue
                self._when_quiet(ds)

    def tree(self, ds: str, candidate: Candidate | None = None) -> Tree:
        """The live tree of running, startup or the candidate (``candidate``: a
        session's private one instead of the shared one)."""
        if ds == "candidate":
            if isinstance(candidate, PrivateCandidate):
                return candidate.view(self._schema, self._trees["running"],
                                      self._info["running"].revision)
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
        self._since[ds] = (0, 0)
        self._cancel_quiet(ds)

    @property
    def groups(self) -> tuple[int, int]:
        """Groups of writes run so far, and the writes they held."""
        return self._writes.groups, self._writes.requests

    def close(self) -> None:
        self._writes.cancel()
        due = set(self._children) | set(self._writing)
        for child in self._children.values():
            child.cancel()
        self._children.clear()
        for steps in self._writing.values():
            steps.cancel()
        self._writing.clear()
        for ds, handle in list(self._snapshots.items()):
            handle.cancel()
            due.add(ds)
        self._snapshots.clear()
        for handle in self._quiet.values():  # the next start arms them again
            handle.cancel()
        self._quiet.clear()
        for ds in sorted(due):
            self._snapshot_now(ds)
        for t in self._trees.values():
            t.free()
        self._trees.clear()

    # -- preconditions -------------------------------------------------------
    def check_precondition(self, ds: str, if_revision: int | None,
                           precondition: Precondition | None) -> None:
        """Refuse the write unless ``ds`` is as its writer expects.  Under the write
        lock nothing commits between this and the edit."""
        _check(ds, self.tree(ds), self.info(ds), if_revision, precondition)

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
        report: bool = True,
        sources: Sequence[EditSource | None] | None = None,
        candidate: Candidate | None = None,
        recorded: Recorded | None = None,
    ) -> list[Change]:
        """One transaction; ``system`` ones (confirmed-commit reverts) ignore locks.
        ``also`` makes more storage writes in the commit's own storage transaction
        (not called when nothing is committed).  Returns the changes; with ``report``
        false an empty list, and changes no subscriber or check asked for are never
        built (a bulk create's change records cost more than the rest of it).
        ``sources``: the text each edit was parsed from (None: none), what the commit
        record keeps of it instead of printing it again.  ``candidate``: the session's
        private candidate, edited instead of the shared one (no lock applies to it).
        ``recorded``: told the commit record once it is durable."""
        own = isinstance(candidate, PrivateCandidate) and ds == "candidate"
        if not system and not own:
            self._locks.check_writable(writer.session_id, ds)
        tries = 0
        synced = False
        while True:
            try:
                if (ds in DURABLE and validate and not test_only and not system
                        and also is None and self._settings.group_commit):
                    changes = await self._writes.submit(
                        _Write(writer, ds, edits, label, if_revision, precondition, sources,
                               recorded))
                else:
                    async with self._lock:
                        changes = await self._transact_locked(
                            writer, ds, edits, test_only=test_only, validate=validate,
                            label=label, system=system, if_revision=if_revision,
                            precondition=precondition, also=also, sources=sources,
                            candidate=candidate, recorded=recorded)
                return changes.materialize() if report else []
            except StorageConflict as e:
                tries = await self._taken_again(e, tries)
            except PreconditionFailed:
                # an ETag or revision seen on another replica: checked again once this
                # one holds everything stored when the write came
                if synced or not isinstance(self._storage, Replicated):
                    raise
                synced = True
                await self._storage.sync()

    async def _taken_again(self, e: StorageConflict, tries: int) -> int:
        """Another replica committed first: once this one holds what it stored, the
        write is taken again (the tries so far, one more); ``e`` after too many, or on a
        store no other replica writes."""
        tries += 1
        if tries > CONFLICT_RETRIES or not isinstance(self._storage, Replicated):
            raise e
        await self._storage.caught_up(e.revision)
        return tries

    def caught_up_to(self, revision: int) -> None:
        """Every revision up to ``revision`` is in the trees (a replica that took the
        whole state again)."""
        self._last_revision = max(self._last_revision, revision)

    async def apply_remote(self, rec: CommitRecord, edits: Sequence[tuple[Tree, str]]
                           ) -> None:
        """A commit another replica made durable (``edits``: its edits, parsed): applied
        to the live tree as its transaction applied them there, then each subscriber
        told it is done (it had no say: the commit is stored)."""
        async with self._lock:
            ds = rec.datastore
            if rec.revision <= (self._info[ds].revision if ds in self._trees
                                else self._last_revision):
                return
            if ds in self._trees:
                live = self._trees[ds]
                plan = (plan_edits(self._schema, self._ind, list(edits))
                        if self._settings.partial_validation else None)
                work, changes = self._stage(live, edits, plan, None, True)
                events = [(sub, self._changes_for(sub, changes, work))
                          for sub in self._subscribers(ds)]
                if plan is not None:
                    plan.graft(live, work)
                    work.free()
                else:
                    live.take(work)
                self._info[ds] = CommitInfo(rec.revision, rec.timestamp, rec.user)
                if ds == "running":
                    self._running_changed(changes.items())
                for sub, mine in events:
                    if mine:
                        sub.post(ChangeEvent("done", ds, rec.revision, rec.user, mine))
            self._last_revision = max(self._last_revision, rec.revision)

    async def commit_candidate(self, writer: Writer, label: str = "", *,
                               if_revision: int | None = None,
                               precondition: Precondition | None = None,
                               also: Callable[[], None] | None = None,
                               candidate: Candidate | None = None,
                               recorded: Recorded | None = None) -> list[Change]:
        """Commit the candidate (``candidate``: a session's private one) to running
        (preconditions on running) and reset it.  A private candidate's edits are
        replayed on running as it is now; if one no longer applies, or the result does
        not validate, nothing is applied and the candidate is kept."""
        tries = 0
        while True:
            try:
                return await self._commit_candidate(writer, label, if_revision,
                                                    precondition, also, candidate, recorded)
            except StorageConflict as e:
                tries = await self._taken_again(e, tries)

    async def _commit_candidate(self, writer: Writer, label: str, if_revision: int | None,
                                precondition: Precondition | None,
                                also: Callable[[], None] | None, candidate: Candidate | None,
                                recorded: Recorded | None) -> list[Change]:
        async with self._lock:
            self.check_precondition("running", if_revision, precondition)
            c = candidate or self._candidate
            if not c.dirty:
                return []
            if not c.private:
                assert c.tree is not None
                validate_tree(self._schema, c.tree)
            trees, edits, sources = c.commit_edits(self._schema,
                                                   self._info["running"].revision)
            try:
                changes = (await self._transact_locked(writer, "running", edits,
                                                       label=label or "commit",
                                                       also=also, sources=sources,
                                                       recorded=recorded)
                           ).materialize()
            except NfoError as e:
                if c.private:
                    raise self._conflict(e) from e
                raise
            finally:
                for t in trees:
                    t.free()
            c.reset()
            return changes

    async def rebased(self, writer: Writer, candidate: Candidate) -> tuple[Tree, Tree]:
        """What committing ``candidate`` would do now: copies of running and of what
        running would become (its edits applied to running, checked for ``writer``,
        validated), taken together under the write lock; nothing is stored and no
        subscriber is asked.  The caller owns both.  Errors as :meth:`commit_candidate`."""
        async with self._lock:
            running = self._trees["running"]
            if not candidate.dirty:
                return running.dup(), running.dup()
            if not candidate.private:
                assert candidate.tree is not None
                work = candidate.tree.dup()
                try:
                    validate_tree(self._schema, work)
                except BaseException:
                    work.free()
                    raise
                return running.dup(), work
            trees, edits, _ = candidate.commit_edits(self._schema,
                                                     self._info["running"].revision)
            try:
                work, _changes = self._stage(running, edits, None, writer.who, True)
            except NfoError as e:
                raise self._conflict(e) from e
            finally:
                for t in trees:
                    t.free()
            return running.dup(), work

    def _conflict(self, e: NfoError) -> NfoError:
        """``e`` (an edit that no longer applies, a result that does not validate) said
        as a private candidate's rebase failing; subscribers' vetoes, access control
        and storage failures speak for themselves."""
        if isinstance(e, Veto | AccessDenied | PreconditionFailed | InUse | ResourceDenied
                      | StorageCorrupt):
            return e
        out = copy.copy(e)
        out.errors = [dataclasses.replace(
            e.errors[0], message="the candidate's changes do not apply to running as it "
            f"is now (revision {self._info['running'].revision}): {e.message}"),
            *e.errors[1:]]
        return out

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
        sources: Sequence[EditSource | None] | None = None,
        candidate: Candidate | None = None,
        recorded: Recorded | None = None,
    ) -> ChangeSet:
        own = isinstance(candidate, PrivateCandidate) and ds == "candidate"
        if not system and not own:
            self._locks.check_writable(writer.session_id, ds)
        base = self.tree(ds, candidate)
        _check(ds, base, self.info(ds), if_revision, precondition)
        plan = None
        if ds in DURABLE and self._settings.partial_validation:
            plan = plan_edits(self._schema, self._ind, list(edits))
        checked = writer.who is not None and not system
        work, changes = self._stage(base, edits, plan, writer.who if checked else None,
                                    validate)
        try:
            if test_only or not changes:
                work.free()
                return ChangeSet() if test_only else changes
            if ds == "candidate":
                (candidate if own and candidate is not None else self._candidate).swap(
                    work, edits, self._info["running"].revision, sources)
                return changes
            staged = _Staged(writer, edits, changes, label, also=also, sources=sources,
                             recorded=recorded)
            with self._locks.committing(ds, writer.session_id):
                await self._commit(ds, work, [staged], plan)
        except BaseException:
            work.free()
            raise
        return changes

    def _stage(self, base: Tree, edits: Sequence[tuple[Tree, str]], plan: Plan | None,
               who: Identity | None, validate: bool) -> tuple[Tree, ChangeSet]:
        """A working copy of ``base`` (partial per ``plan``) with ``edits`` applied,
        checked for ``who`` and validated; the caller owns it."""
        bulk = True
        while True:
            work = plan.build(base) if plan is not None else base.dup()
            changes = ChangeSet()
            try:
                self._apply(work, edits, changes, who, bulk)
                if validate:
                    validate_tree(self._schema, work, changes)
                return work, changes
            except AccessDenied:
                work.free()
                raise  # decided on the changes, which runs hold as well (and counted once)
            except NfoError:
                work.free()
                if not (bulk and used_runs(changes)):
                    raise
                # a bulk apply's error: the entry-by-entry one gives it as always
                bulk = False
            except BaseException:
                work.free()
                raise

    def replay(self, tree: Tree, edits: Sequence[tuple[Tree, str]]) -> None:
        """Apply a stored commit's edits to ``tree`` (a durable datastore being loaded)
        as its transaction did: the same working copy, edits and validation, the result
        grafted or swapped in.  A tree rebuilt this way from a snapshot needs no
        validation of its own."""
        plan = (plan_edits(self._schema, self._ind, list(edits))
                if self._settings.partial_validation else None)
        work, _ = self._stage(tree, edits, plan, None, True)
        if plan is not None:
            plan.graft(tree, work)
            work.free()
        else:
            tree.take(work)

    def _apply(self, work: Tree, edits: Sequence[tuple[Tree, str]], changes: ChangeSet,
               who: Identity | None, bulk: bool) -> None:
        """Apply ``edits`` to ``work`` (adding to ``changes``) and check them against
        ``who``'s access rights (None: unchecked)."""
        try:
            for edit, dop in edits:
                apply_edit(self._schema, work, edit, dop, bulk=bulk, into=changes)
        except (DataExists, DataMissing) as e:
            if who is not None:
                self._nacm.access(who).check_existence_error(e)
            raise
        if who is not None and changes:
            self._nacm.access(who).check_write(changes, _in_edits(edits))

    # -- group commit ------------------------------------------------------------
    async def _run_group(self, group: list[Queued[_Write, ChangeSet]]) -> None:
        """Commit a group's writes (runs of the same datastore together where they
        can be), settling every verdict; only a cancellation escapes."""
        i = 0
        while i < len(group):
            j = i + 1
            while j < len(group) and group[j].request.ds == group[i].request.ds:
                j += 1
            run, i = group[i:j], j
            if len(run) > 1:
                try:
                    if await self._together(run):
                        continue
                except Exception:
                    log.exception("a group of %d writes failed; each runs alone", len(run))
            for q in run:
                w = q.request
                try:
                    q.verdict.set_result(await self._transact_locked(
                        w.writer, w.ds, w.edits, label=w.label, if_revision=w.if_revision,
                        precondition=w.precondition, sources=w.sources,
                        recorded=w.recorded))
                except Exception as e:
                    q.verdict.set_exception(e)

    async def _together(self, run: list[Queued[_Write, ChangeSet]]) -> bool:
        """Commit ``run`` as one group and settle its verdicts; False (nothing
        applied, nothing settled) if any of its writes fails on the group's data."""
        ds = run[0].request.ds
        edits = [e for q in run for e in q.request.edits]
        plan = (plan_edits(self._schema, self._ind, edits)
                if self._settings.partial_validation else None)
        work = plan.build(self._trees[ds]) if plan is not None else self._trees[ds].dup()
        try:
            staged: list[_Staged] = []
            info = self._info[ds]
            revision = self._last_revision
            try:
                for q in run:
                    w = q.request
                    self._locks.check_writable(w.writer.session_id, ds)
                    _check(ds, work, info, w.if_revision, w.precondition)
                    changes = ChangeSet()
                    self._apply(work, w.edits, changes, w.writer.who, True)
                    if changes:
                        revision += 1
                        info = CommitInfo(revision, time.time(), w.writer.user)
                    staged.append(_Staged(w.writer, w.edits, changes, w.label,
                                          sources=w.sources, recorded=w.recorded))
                validate_tree(self._schema, work,
                              ChangeSet(i for s in staged for i in s.changes.items()))
            except NfoError:
                work.free()
                return False
            committing = [s for s in staged if s.changes]
            if committing:
                with self._locks.committing(ds, committing[0].writer.session_id):
                    try:
                        await self._commit(ds, work, committing, plan)
                    except NfoError:  # a veto, or storage refusing: nothing was applied
                        work.free()
                        return False
            else:
                work.free()
        except BaseException:
            work.free()
            raise
        for q, s in zip(run, staged, strict=True):
            q.verdict.set_result(s.changes)
        return True

    async def _commit(self, ds: str, work: Tree, staged: list[_Staged],
                      plan: Plan | None) -> None:
        """Record ``staged`` (each its own commit) in one storage transaction, then
        make ``work`` the live data (consumed on success)."""
        for s in staged:
            s.event = self._config_change(ds, s.writer, s.changes, work)
        try:
            await self._commit_with(ds, work, staged, plan)
        finally:
            for s in staged:
                if s.event is not None:
                    s.event.discard()

    async def _commit_with(self, ds: str, work: Tree, staged: list[_Staged],
                           plan: Plan | None) -> None:
        first = self._last_revision + 1
        called: list[tuple[ChangeSubscription, int, list[Change]]] = []

        def abort() -> None:
            for sub, k, m in called:
                sub.post(ChangeEvent("abort", ds, first + k, staged[k].writer.user, m))

        for k, s in enumerate(staged):
            for sub in self._subscribers(ds):
                mine = self._changes_for(sub, s.changes, work)
                if not mine:
                    continue
                try:
                    await sub.callback(ChangeEvent("change", ds, first + k, s.writer.user,
                                                   mine, work))
                    called.append((sub, k, mine))
                except Exception as e:
                    abort()
                    if isinstance(e, NfoError):
                        raise Veto(e.message, path=e.path,
                                   app_tag=e.app_tag or "nfo-change-vetoed", info=e.info) from e
                    raise Veto(str(e) or type(e).__name__, app_tag="nfo-change-vetoed") from e
        recs: list[CommitRecord] = []
        logged: list[Notification | None] = []
        size = 0
        try:
            async with self._storage.durable_batch():
                for s in staged:
                    sources = s.sources or [None] * len(s.edits)
                    payload = json.dumps([edit_item(e, dop, src) for (e, dop), src
                                          in zip(s.edits, sources, strict=True)])
                    size += len(payload.encode("utf-8", "surrogatepass"))
                    recs.append(self._storage.append_commit(ds, time.time(), s.writer.user,
                                                            "edit", payload, s.label))
                    logged.append(self._notifications.log(s.event)
                                  if s.event is not None else None)
                    if s.also is not None:
                        s.also()
        except Exception:
            abort()
            if any(n is not None for n in logged):
                self._notifications.reload()
            raise
        if plan is not None:
            plan.graft(self._trees[ds], work)
            work.free()
        else:
            self._trees[ds].take(work)
        for s, rec in zip(staged, recs, strict=True):
            if s.recorded is not None:
                s.recorded(rec)
        if ds == "running":
            self._running_changed([i for s in staged for i in s.changes.items()])
        for sub, k, m in called:
            sub.post(ChangeEvent("done", ds, recs[k].revision, staged[k].writer.user, m))
        for s, n in zip(staged, logged, strict=True):
            if s.event is not None and n is not None:
                self._notifications.fan_out(s.event, n)
        self._after_commit(ds, recs[-1], len(recs), size)

    def _changes_for(self, sub: ChangeSubscription, changes: ChangeSet,
                     work: Tree) -> list[Change]:
        mine = changes.for_module(sub.module, sub.entries)
        if not mine or not sub.xpath:  # already the module's alone
            return mine
        selected = {n.path for n in work.match(sub.xpath)}
        selected |= {n.path for n in self._trees[sub.datastore].match(sub.xpath)}
        return [c for c in mine if sub.wants(c, selected)]

    def _after_commit(self, ds: str, rec: CommitRecord, commits: int, size: int) -> None:
        self._info[ds] = CommitInfo(rec.revision, rec.timestamp, rec.user)
        self._last_commit[ds] = asyncio.get_running_loop().time()
        self._last_revision = max(self._last_revision, rec.revision)
        try:
            if ds not in self._since:
                self._since[ds] = self._storage.since_snapshot(ds)
            else:
                count, total = self._since[ds]
                self._since[ds] = (count + commits, total + size)
            if self._snapshotting(ds):
                return
            if self._log_holds(ds, 1):
                # once the writers of this commit have answered; the live tree and its
                # revision are consistent at any turn of the loop
                self._snapshots[ds] = asyncio.get_running_loop().call_later(
                    SNAPSHOT_DELAY, self._snapshot_due, ds)
                self._cancel_quiet(ds)
            else:
                self._when_quiet(ds)
        except NfoError as e:
            log.warning("commit %d of %s is durable, but no snapshot was written: %s",
                        rec.revision, ds, e)

    def _log_holds(self, ds: str, fraction: int) -> bool:
        """Whether the log of ``ds`` since its snapshot holds ``1/fraction`` of what
        makes a snapshot due (commits, or bytes: as many as the snapshot has)."""
        count, size = self._since.get(ds, (0, 0))
        return (count >= max(1, self._settings.snapshot_every_commits // fraction)
                or size >= max(self._settings.snapshot_min_bytes,
                               self._snap_size.get(ds, 0)) // fraction)

    def _when_quiet(self, ds: str) -> None:
        """Arm a snapshot of ``ds`` for when no commit has come for
        ``snapshot_when_quiet`` seconds, if what a start would replay is worth it:
        replaying an edit costs about ten times parsing the data it made.  One timer,
        which finds out when it fires whether a commit came meanwhile."""
        quiet = self._settings.snapshot_when_quiet
        if (quiet <= 0 or ds in self._quiet or self._snapshotting(ds)
                or not self._log_holds(ds, QUIET_FRACTION)):
            return
        self._quiet[ds] = asyncio.get_running_loop().call_later(quiet, self._quiet_due, ds)

    def _cancel_quiet(self, ds: str) -> None:
        handle = self._quiet.pop(ds, None)
        if handle is not None:
            handle.cancel()

    def _quiet_due(self, ds: str) -> None:
        self._quiet.pop(ds, None)
        quiet = self._settings.snapshot_when_quiet
        if quiet <= 0:
            return
        loop = asyncio.get_running_loop()
        left = self._last_commit.get(ds, 0.0) + quiet - loop.time()
        if left > 0:  # a commit came meanwhile: wait for the spell after it
            self._quiet[ds] = loop.call_later(left, self._quiet_due, ds)
        elif not self._snapshotting(ds):
            self._snapshot_due(ds)

    def _snapshotting(self, ds: str) -> bool:
        """Whether a snapshot of ``ds`` is due, being printed or being written."""
        return ds in self._snapshots or ds in self._children or ds in self._writing

    def _snapshot_due(self, ds: str) -> None:
        self._snapshots.pop(ds, None)
        if ds not in self._trees:
            return
        fork_from = self._settings.snapshot_in_child_bytes
        if 0 < fork_from <= self._snap_size.get(ds, 0) and self._print_in_child(ds):
            return
        self._snapshot_now(ds)

    def _snapshot_now(self, ds: str) -> None:
        if ds not in self._trees:
            return
        if isinstance(self._storage, Replicated):
            # a store across the network: written a transaction per turn of the loop
            content = self._trees[ds].print(Fmt.JSON)
            self._write_in_steps(ds, self._info[ds].revision, content,
                                 self._since.get(ds, (0, 0)), forked=False)
            return
        try:
            self.snapshot(ds)
        except NfoError as e:
            # The commits are durable and applied: a snapshot only shortens the replay
            # on start, and the next commit tries again.
            log.warning("revision %d of %s is durable, but no snapshot was written: %s",
                        self._info[ds].revision, ds, e)

    def _print_in_child(self, ds: str) -> bool:
        """Start a snapshot of ``ds`` as it is now, printed by a forked child
        (:mod:`nfo.datastore.forked`); False if no child could be made."""
        revision = self._info[ds].revision
        at_fork = self._since.get(ds, (0, 0))

        def done(content: list[bytes] | None) -> None:
            self._children.pop(ds, None)
            if ds not in self._trees:
                return
            if content is None:
                self._snapshot_now(ds)
                return
            self._write_in_steps(ds, revision, content, at_fork, forked=True)

        child = ChildPrint.start(self._trees[ds], done)
        if child is None:
            return False
        self._children[ds] = child
        return True

    def _write_in_steps(self, ds: str, revision: int, content: str | list[bytes],
                        at: tuple[int, int], *, forked: bool) -> None:
        """Write the snapshot of ``ds`` at ``revision`` a step per turn of the loop
        (``at``: the commits and bytes logged since the last one when it was printed)."""
        size_of = len(content) if isinstance(content, str) else sum(map(len, content))

        def written(failure: NfoError | None) -> None:
            self._writing.pop(ds, None)
            if ds not in self._trees:
                return
            if failure is not None:
                log.warning("revision %d of %s is durable, but no snapshot was written: %s",
                            revision, ds, failure)
                return
            self._snap_size[ds] = size_of
            self.snapshots_in_child += forked
            count, size = self._since.get(ds, at)
            self._since[ds] = (max(0, count - at[0]), max(0, size - at[1]))
            self._when_quiet(ds)

        self._writing[ds] = _Steps(self._storage.snapshot_steps(ds, revision, content),
                                   written)

    def _config_change(self, ds: str, writer: Writer, changes: ChangeSet,
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

        edits = [{**({"target": t} if present(t) else {}), "operation": op}
                 for t, op in _edit_records(changes)]
        by = ({"username": writer.user, "session-id": writer.session_id}
              if writer.session_id is not None else {"server": [None]})
        body = json.dumps({CONFIG_CHANGE: {"changed-by": by, "datastore": ds, "edit": edits}},
                          separators=(",", ":"), ensure_ascii=False)
        if _PRINTED_AS_IS.fullmatch(body):
            # what libyang would print of it, and valid (tests/datastore/test_bulk.py)
            return self._notifications.prepared("ietf-netconf-notifications",
                                                "/" + CONFIG_CHANGE, body)
        try:
            return self._notifications.check(body, "json", data=work)
        except NfoError as e:
            log.error("netconf-config-change not published: %s", e)
            return None


CONFIG_CHANGE = "ietf-netconf-notifications:netconf-config-change"
_PRINTED_AS_IS = re.compile(r"[ -\[\]-~]*")
"""JSON that libyang prints alike: printable ASCII with no backslash, so no string in it
needed an escape (json.dumps and libyang escape differently)."""


class _Steps:
    """A storage write run a step per turn of the event loop (a snapshot in parts: each
    part a short transaction, the commits of other writers in between); ``done`` gets
    None, or the failure that stopped it."""

    def __init__(self, steps: Generator[None, None, None],
                 done: Callable[[NfoError | None], None]) -> None:
        self._steps = steps
        self._done = done
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_soon(self._step)

    def _step(self) -> None:
        try:
            next(self._steps)
        except StopIteration:
            self._done(None)
            return
        except Exception as e:  # stopped either way; the caller says why
            self._done(e if isinstance(e, NfoError) else OperationFailed(str(e) or repr(e)))
            return
        self._handle = self._loop.call_soon(self._step)

    def cancel(self) -> None:
        """Stop between two steps (what is written stays; parts of a snapshot not yet
        whole are deleted on the next open)."""
        self._handle.cancel()
        self._steps.close()


def _check(ds: str, tree: Tree, info: CommitInfo, if_revision: int | None,
           precondition: Precondition | None) -> None:
    """A write's preconditions on ``tree``, the data of ``ds`` at ``info``'s commit."""
    if if_revision is not None and info.revision != if_revision:
        raise PreconditionFailed(f"the {ds} datastore is at revision {info.revision}, "
                                 f"not {if_revision}")
    if precondition is not None:
        precondition(WriteView(ds, info, lambda path: _present(tree, path)))


def _in_edits(edits: Sequence[tuple[Tree, str]]) -> Callable[[str], bool]:
    """Whether a data path is named in one of ``edits`` (access control's question)."""
    return lambda path: any(_present(e, path) for e, _ in edits)


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


def _edit_records(changes: ChangeSet) -> list[tuple[str, str]]:
    """(target, operation) for netconf-config-change: the topmost node of each change,
    a deleted node's parent (the target must exist), top-level nodes if too many.
    A run's entries are topmost unless the run lies under an earlier change."""
    top: list[Change | Run] = []
    count = 0
    last = "\0"
    after: Run | None = None
    for c in changes.items():
        if isinstance(c, Run):
            if c.parent != last and not c.parent.startswith(last + "/"):
                top.append(c)
                count += c.count
                after = c
            continue
        if after is not None and c.path.startswith(after.parent + "/"):
            last = after.heads()[-1]  # is it below the run's last entry?
        after = None
        if not c.path.startswith(last + "/"):
            top.append(c)
            count += 1
            last = c.path
    if count > _MAX_EDIT_RECORDS:
        return [(t, "merge") for t in dict.fromkeys(
            _top_path(c.parent if isinstance(c, Run) else c.path) for c in top)]
    out: list[tuple[str, str]] = []
    for c in top:
        if isinstance(c, Run):
            out += [(p, "create") for p in c.heads()]
        elif isinstance(c, ChangeDeleted):
            out.append((_parent_path(c.path), "delete"))
        else:
            out.append((c.path, "create" if isinstance(c, ChangeCreated) else "replace"))
    return out
