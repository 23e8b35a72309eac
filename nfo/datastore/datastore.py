"""The NMDA datastore: startup, running, candidate and operational.

This plays sysrepo's role for nfo.  Trees live in memory as libyang data and are made
durable through a :class:`~nfo.datastore.storage.base.Storage`.  One asyncio process
shares one :class:`Datastore`: it loads the stored state, answers reads, and keeps the
registries (change subscriptions, operational data providers, RPC handlers).  Writes go
through a :class:`~nfo.datastore.session.Session` into the parts composed here: the
write pipeline (:mod:`~nfo.datastore.transaction`), the lock table
(:mod:`~nfo.datastore.locks`), the candidate (:mod:`~nfo.datastore.candidate`), the
confirmed commit (:mod:`~nfo.datastore.confirmed`) and the operational store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

from nfo.datastore.candidate import Candidate
from nfo.datastore.confirmed import ConfirmedCommit
from nfo.datastore.formats import item_source
from nfo.datastore.groupcommit import GroupCommit
from nfo.datastore.history import CommitSummary, replay_counting
from nfo.datastore.locks import LockTable
from nfo.datastore.nacm import NACM_PATH, Identity, Nacm
from nfo.datastore.names import CONFIG_DATASTORES, DATASTORES, DURABLE, datastore_name
from nfo.datastore.notifications import NotificationHub
from nfo.datastore.operational import OperProvider, OperStore
from nfo.datastore.session import ReadAs, RpcHandler, Session, SessionParts
from nfo.datastore.storage.base import (
    CommitRecord,
    RemoteChanges,
    Replicated,
    SharedLocks,
    Storage,
    StoredState,
)
from nfo.datastore.subscriptions import ChangeCallback, ChangeSubscription
from nfo.datastore.transaction import CommitInfo, Precondition, Transactions
from nfo.datastore.workers import Workers
from nfo.errors import InvalidValue, NfoError, OperationFailed, ResourceDenied, UnknownElement
from nfo.schema import Fmt, Kind, Node, Parse, Schema, SNode, Tree
from nfo.schema.changes import Change, Run
from nfo.schema.deps import independence
from nfo.schema.edit import apply_edit, validate
from nfo.schema.prune import annotate_origin

__all__ = ["Datastore"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _plain(schema: Schema, snode: SNode) -> tuple[bool, bool]:
    """Whether no credential lies at, above or below ``snode``, and whether no state
    leaf below it has a default (what :meth:`Datastore.live_one` asks)."""
    sp = snode.path
    free = not any(c == sp or c.startswith(sp + "/") or sp.startswith(c + "/")
                   for c in schema.access_marks().credentials)

    def state_defaults(n: SNode) -> bool:
        return any((not c.config and c.is_term and bool(c.defaults)) or state_defaults(c)
                   for c in n.children())

    return free, not state_defaults(snode)


def _as_is(tree: Tree) -> Tree:
    return tree

VALIDATED_UNDER = "validated-under"
"""Storage meta key: the :meth:`Schema.fingerprint` the stored data was validated under."""

_SIMPLE_PATH = re.compile(r"^(/[\w.-]+(:[\w.-]+)?(\[[\w.:-]+='[^']*'\])*)+$")
_TOP_NODES = re.compile(r"^\s*/[\w.-]+:[\w.-]+\s*(\|\s*/[\w.-]+:[\w.-]+\s*)*$")
"""Top-level nodes only (``/m:a | /n:b``): they have no ancestors to re-select."""


class Datastore:
    """All NMDA datastores of one nfo instance."""

    snapshot_every_commits = 5000
    snapshot_min_bytes = 1 << 20
    snapshot_in_child_bytes = 1 << 19
    """Once running's last snapshot is this large, the next ones are printed by a forked
    child (:mod:`nfo.datastore.forked`) while the server goes on; 0: always in process."""
    snapshot_when_quiet = 5.0
    """Seconds without a commit after which a datastore whose log holds an eighth of
    what makes a snapshot due is snapshotted anyway, and so is one whose start replayed
    that much: a restart then parses, rather than replays (ten times dearer), what was
    written before the quiet spell; 0: never."""
    partial_validation = True
    """Validate only what an edit touches where the schema proves it safe
    (see :mod:`nfo.schema.partial`); False re-validates everything."""
    group_commit = True
    """Commit plain edits of running and startup that arrive together as one group
    sharing one fsync (see :mod:`nfo.datastore.transaction`); False: one at a time."""
    max_private_candidates = 256
    """Sessions with a private candidate open at once (each holds its edits and, once
    read or edited, a copy of the configuration); one more is refused with
    ``resource-denied`` (docs/transactions.md)."""

    def __init__(self, schema: Schema, storage: Storage, workers: Workers | None = None, *,
                 notification_retention: Mapping[str, int] | None = None) -> None:
        """``notification_retention``: notifications kept for replay per stream
        (:class:`~nfo.datastore.notifications.NotificationHub`)."""
        self.schema = schema
        self.storage = storage
        self.workers = workers if workers is not None else Workers()
        """The threads that finish clients' reads (see :meth:`query`)."""
        self._subs: list[ChangeSubscription] = []
        self._rpcs: dict[str, RpcHandler] = {}
        self._sessions: dict[int, Session] = {}
        self._ids = itertools.count(1)
        self._closed = False
        events = any(m.name == "ietf-netconf-notifications" and m.implemented
                     for m in schema.modules())
        self._oper = OperStore(schema, storage)
        self._plain: dict[SNode, tuple[bool, bool]] = {}
        self.group = GroupCommit(storage, on_failure=self._undo_failed_write)
        self.nacm = Nacm(schema, lambda: self._tx.tree("running"))
        """Access control: the rules in running, compiled; its counters."""
        if self.nacm.enforced:
            self._oper.provide(NACM_PATH, self.nacm.counters.oper_json)
        self.notifications = NotificationHub(schema, storage, lambda: self._tx.tree("running"),
                                             access=self.nacm.access,
                                             retention=notification_retention)
        self._candidate = Candidate()
        self._locks = LockTable(self._candidate,
                                storage if isinstance(storage, SharedLocks) else None)
        self._tx = Transactions(
            schema, storage, self, self._locks, self._candidate, self.notifications,
            self._subscribers, independence(schema), events, self.nacm)
        self._confirmed = ConfirmedCommit(schema, storage, self._tx, self._candidate,
                                          self.notifications, events)
        self._parts = SessionParts(self._tx, self._locks, self._candidate, self._confirmed,
                                   self._oper, self.group, self.notifications,
                                   self._sessions)
        self._remote: asyncio.Queue[RemoteChanges] | None = None
        self._follower: asyncio.Task[None] | None = None

    def _undo_failed_write(self) -> None:
        """Memory back to what storage holds after a group that was not made durable."""
        self._oper.reload()
        self.notifications.reload()

    # -- lifecycle -----------------------------------------------------------
    @classmethod
    def open(cls, schema: Schema, storage: Storage, workers: Workers | None = None, *,
             notification_retention: Mapping[str, int] | None = None) -> Datastore:
        """Load the stored state, replay the commit log and validate it."""
        ds = cls(schema, storage, workers, notification_retention=notification_retention)
        ds._load()
        return ds

    def _load(self) -> None:
        """Running and startup from their newest snapshot and the commits after it.

        Stored data was validated under the schema whose fingerprint storage keeps
        (:data:`VALIDATED_UNDER`): under the same schema, a snapshot only gets its
        default nodes back, and each later commit is replayed as its transaction ran
        (the same partial copy and validation), so nothing is validated twice.  Under
        another schema (a module added, removed or changed, another libyang), the
        commits are applied and everything is validated, as then the fingerprint is
        recorded."""
        state = self.storage.load()
        fingerprint = self.schema.fingerprint()
        trusted = self.storage.get_meta(VALIDATED_UNDER) == fingerprint
        if trusted:
            try:
                trees, info, snap_size = self._load_trees(state, trusted=True)
            except NfoError as e:
                log.warning("stored data replayed under its own schema failed (%s); "
                            "validating it whole", e)
                trusted = False
        if not trusted:
            trees, info, snap_size = self._load_trees(state, trusted=False)
        self._tx.restore(trees, info, snap_size, state.last_revision)
        if not trusted:
            try:
                self.storage.set_meta(VALIDATED_UNDER, fingerprint)
            except NfoError as e:  # the next open validates again
                log.warning("cannot record the schema the data was validated under: %s", e)
        self._oper.load()
        self._confirmed.load()

    def _load_trees(self, state: StoredState, *, trusted: bool
                    ) -> tuple[dict[str, Tree], dict[str, CommitInfo], dict[str, int]]:
        trees: dict[str, Tree] = {}
        info: dict[str, CommitInfo] = {}
        snap_size: dict[str, int] = {}
        try:
            for name in DURABLE:
                snap = state.snapshots.get(name)
                trees[name] = Tree(self.schema)
                if snap is not None:
                    trees[name] = Tree.parse(self.schema, snap.content, Fmt.JSON,
                                             trusted=trusted,
                                             mode=Parse.VALIDATED if trusted else None,
                                             what=f"loading the {name} snapshot")
                    snap_size[name] = len(snap.content)
                    info[name] = CommitInfo(snap.revision, time.time(), "")
                if trusted:
                    trees[name].add_defaults(config_only=True)
            for rec in state.commits:
                if rec.datastore not in DURABLE:
                    continue
                if trusted:
                    self._replay_validated(trees[rec.datastore], rec)
                else:
                    self._replay(trees[rec.datastore], rec)
                info[rec.datastore] = CommitInfo(rec.revision, rec.timestamp, rec.user)
            for name in DURABLE:
                if not trusted:
                    try:
                        validate(self.schema, trees[name])
                    except NfoError as e:
                        raise OperationFailed(
                            f"stored {name} data no longer validates: {e}") from e
                info.setdefault(name, CommitInfo(0, time.time(), ""))
                for h in self.storage.history(name, limit=1):
                    info[name] = CommitInfo(h.revision, h.timestamp, h.user)
        except BaseException:
            for t in trees.values():
                t.free()
            raise
        return trees, info, snap_size

    async def start(self) -> None:
        """Finish opening inside the event loop: roll back an unconfirmed commit
        that a restart interrupted (RFC 6241: the server reverts on reboot); arm the
        snapshot of a long replayed log."""
        self._tx.start()
        await self._confirmed.start()
        if isinstance(self.storage, Replicated):
            self._remote = asyncio.Queue()
            self._follower = asyncio.create_task(self._follow(self._remote),
                                                 name="nfo-follow-replicas")
            self.storage.follow(self._remote.put_nowait)

    async def _follow(self, queue: asyncio.Queue[RemoteChanges]) -> None:
        """What other replicas stored, into this one's trees and stores, in order."""
        while True:
            changes = await queue.get()
            if changes.resync:
                try:
                    await self._resync()
                except Exception:
                    log.exception("the state read again from the store does not load here; "
                                  "restart this replica")
                continue
            for rec in changes.commits:
                try:
                    edits = self._remote_edits(rec)
                except NfoError as e:
                    log.error("revision %d of another replica does not parse here: %s",
                              rec.revision, e)
                    continue
                try:
                    await self._tx.apply_remote(rec, edits)
                except Exception:  # this replica no longer holds what the others do
                    log.exception("revision %d of another replica does not apply here; "
                                  "restart this replica", rec.revision)
                finally:
                    for tree, _ in edits:
                        tree.free()
            if changes.oper:
                self._oper.reload()
            if changes.notifications:
                self.notifications.reload()
                self.notifications.deliver_logged(changes.notifications)

    async def _resync(self) -> None:
        """Take the whole state the store holds again (after a gap in what it delivered):
        each datastore replaced by what it now holds, as a commit of its revision, so that
        subscribers are told exactly what differs."""
        state = self.storage.load()
        trusted = self.storage.get_meta(VALIDATED_UNDER) == self.schema.fingerprint()
        trees, info, _ = self._load_trees(state, trusted=trusted)
        try:
            for name in DURABLE:
                i = info[name]
                rec = CommitRecord(i.revision, name, i.timestamp, i.user, "replace", "")
                await self._tx.apply_remote(rec, [(trees[name], "replace")])
        finally:
            for t in trees.values():
                t.free()
        self._tx.caught_up_to(state.last_revision)
        self._oper.reload()
        self.notifications.reload()

    def _remote_edits(self, rec: CommitRecord) -> list[tuple[Tree, str]]:
        what = f"reading revision {rec.revision} of another replica"
        if rec.kind == "replace":
            return [(Tree.parse(self.schema, rec.payload, Fmt.JSON, what=what), "replace")]
        edits: list[tuple[Tree, str]] = []
        try:
            for item in json.loads(rec.payload):
                edits.append((Tree.parse(self.schema, *item_source(item), what=what),
                              str(item["default-operation"])))
        except BaseException:
            for tree, _ in edits:
                tree.free()
            raise
        return edits

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if isinstance(self.storage, Replicated):
            await self.storage.unfollow()
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        for s in list(self._sessions.values()):
            await s.close()
        for sub in self._subs:
            await sub.stop()
        self._subs.clear()
        await self.notifications.close()
        await self._confirmed.close()
        self._tx.close()
        self._candidate.reset()
        self._oper.close()
        self.workers.close()
        self.storage.close()

    def session(self, who: Identity | str, *, on_kill: Callable[[], None] | None = None,
                private_candidate: bool = False, per_request: bool = False) -> Session:
        """A session for a client (a user name: access control applies) or for the
        server itself (``Identity.server(name)``, or :meth:`internal_session`).
        ``private_candidate``: the session edits and commits a candidate of its own
        (see :class:`~nfo.datastore.candidate.PrivateCandidate`), at most
        :attr:`max_private_candidates` of them open at once.  ``per_request``: the
        session lives for one request (a plain RESTCONF request), so it cannot hold a
        non-persistent confirmed commit open."""
        if isinstance(who, str):
            who = Identity(who)
        if private_candidate and sum(
                s.private_candidate for s in self._sessions.values()
        ) >= self.max_private_candidates:
            raise ResourceDenied(f"{self.max_private_candidates} sessions with a private "
                                 "candidate are open: close one first",
                                 app_tag="nfo-too-many-candidates")
        s = Session(self, next(self._ids), who, on_kill, self._parts,
                    private_candidate=private_candidate, per_request=per_request)
        self._sessions[s.id] = s
        return s

    def internal_session(self, name: str, *,
                         on_kill: Callable[[], None] | None = None) -> Session:
        """A session of the server itself (the workload manager, start-up, the local
        command line): never checked by access control."""
        return self.session(Identity.server(name), on_kill=on_kill)

    def reader(self, who: Identity) -> ReadAs:
        """Reads as ``who`` (what :func:`nfo.protocol.read.read` takes), without a session."""
        return ReadAs(self, who)

    # -- reads ---------------------------------------------------------------
    def info(self, datastore: str = "running") -> CommitInfo:
        if datastore in ("candidate", "operational"):
            return self._tx.info("running")
        return self._tx.info(datastore_name(datastore, CONFIG_DATASTORES))

    def tree(self, datastore: str) -> Tree:
        """The live tree of a config datastore: read it, never keep or change it."""
        if datastore == "candidate":
            return self._tx.tree("candidate")
        return self._tx.tree(datastore_name(datastore, DURABLE))

    def get(self, datastore: str, xpath: str | None = None, *, with_origin: bool = False,
            who: Identity | None = None, candidate: Candidate | None = None) -> Tree:
        """A copy of the data selected by ``xpath`` (all data if None); caller frees it.

        ``who`` reads; None is the server itself (everything, credentials included).
        A client's view is filtered by access control *before* ``xpath`` selects: a
        predicate cannot test a value the client may not read, and a node it may not
        read answers as if absent.  ``candidate``: a session's private candidate, read
        as the candidate datastore."""
        copy, finish = self._begin_get(datastore, xpath, with_origin, who, candidate)
        return finish(copy)

    async def query(self, datastore: str, xpath: str | None, then: Callable[[Tree], T], *,
                    with_origin: bool = False, who: Identity | None = None,
                    candidate: Candidate | None = None, offload: bool = False) -> T:
        """``then(tree)`` of what :meth:`get` returns.  A client's XPath selection
        (anything but a plain data path), or any client read whose ``then`` is costly
        (``offload``: a list pagination's filter and sort), runs off the event loop:
        the live data is copied here, and selecting, filtering and ``then`` run on a
        worker thread (see :mod:`nfo.datastore.workers`).  ``then`` must not keep the
        tree, which is freed when it returns, nor touch any live data."""
        if (who is None or who.internal or xpath is None
                or (not offload and self.schema.is_instance_path(xpath))):
            # bounded by the data's size: cheaper on the loop than a thread's hand-over
            with self.get(datastore, xpath, with_origin=with_origin, who=who,
                          candidate=candidate) as tree:
                return then(tree)
        user = who.user
        self.workers.admit(user)
        copy, finish = self._begin_get(datastore, xpath, with_origin, who, candidate)

        def job() -> T:
            with finish(copy) as tree:
                return then(tree)

        return await self.workers.run(user, job, copy.free)

    def _begin_get(self, datastore: str, xpath: str | None, with_origin: bool,
                   who: Identity | None, candidate: Candidate | None = None
                   ) -> tuple[Tree, Callable[[Tree], Tree]]:
        """A private copy of the live data a read needs, and what finishes the read on
        it alone (taking it over): the copy is made on the event loop, the rest may run
        on any thread."""
        if who is None or who.internal:
            return self._get(datastore, xpath, with_origin, candidate), _as_is
        access = self.nacm.access(who)
        if xpath is not None and not self.schema.is_instance_path(xpath):
            def select(full: Tree) -> Tree:
                with full:
                    access.prune(full)
                    return full.extract(xpath)

            return self._get(datastore, None, with_origin, candidate), select

        def prune(out: Tree) -> Tree:
            try:
                if access.prune(out) and xpath is not None and not _TOP_NODES.match(xpath):
                    # what is left of the selected nodes' ancestors must not tell that
                    # something was there
                    with out:
                        return out.extract(xpath)
            except BaseException:
                out.free()
                raise
            return out

        return self._get(datastore, xpath, with_origin, candidate), prune

    def live_one(self, datastore: str, path: str, who: Identity | None = None) -> Node | None:
        """The live node a plain read of ``path`` (naming one node) prints as is, found
        by one lookup with nothing copied; None when that read needs :meth:`get`: a
        datastore other than running or operational, a node not in running, operational
        data of an owner or a provider at it, or access control that may remove part
        of it.  Print it at once, on the event loop, and keep nothing of it."""
        ds = datastore_name(datastore, DATASTORES)
        if ds not in ("running", "operational") or not self.schema.names_one(path):
            return None
        node = self._tx.tree("running").node(path)
        if node is None:
            return None  # absent, or only implicit defaults that a copy would add
        if ds == "operational" and self._oper.touches(path):
            return None
        internal = who is None or who.internal
        if who is not None and not internal and not self.nacm.access(who).reads_all:
            return None
        plain = self._plain.get(node.schema)
        if plain is None:
            plain = self._plain[node.schema] = _plain(self.schema, node.schema)
        # a credential is hidden from every client; state defaults exist only in a copy
        if (not internal and not plain[0]) or (ds == "operational" and not plain[1]):
            return None
        return node

    def _get(self, datastore: str, xpath: str | None, with_origin: bool,
             candidate: Candidate | None = None) -> Tree:
        ds = datastore_name(datastore, DATASTORES)
        one = xpath is not None and self.schema.names_one(xpath)
        if ds != "operational":
            return self._tx.tree(ds, candidate).extract(xpath, one=one)
        running = self._tx.tree("running")
        if xpath is None or one or _SIMPLE_PATH.match(xpath):
            out = running.extract(xpath, one=one)
            self._oper.merged_into(out, xpath, one=one)
        else:
            full = running.dup()
            self._oper.merged_into(full)
            with full:
                out = full.extract(xpath)
        out.add_defaults()
        if with_origin:
            annotate_origin(out, running)
        return out

    def exists(self, path: str) -> bool:
        """Whether a data path exists in running or in any owner's operational data."""
        if self._tx.tree("running").node(path) is not None:
            return True
        return self._oper.holds(path)

    def locks(self) -> dict[str, tuple[int, float]]:
        """Held locks: datastore -> (session id, when it was taken)."""
        return self._locks.held()

    def history(self, datastore: str = "running", limit: int = 100,
                before: int | None = None) -> list[CommitRecord]:
        """Commit records, newest first (below revision ``before`` if given)."""
        return self.storage.history(datastore_name(datastore, DURABLE), limit, before)

    def commit_log(self, limit: int = 20, before: int | None = None) -> list[CommitSummary]:
        """A page of running's history, newest first: each commit with how many nodes
        it changed (replayed from the state before the oldest listed)."""
        recs = self.storage.history("running", limit, before)
        counts: dict[int, int] = {}
        if recs:
            try:
                state = self.state_at("running", recs[-1].revision - 1)
            except NfoError:
                state = None
            if state is not None:
                with state:
                    for rec in reversed(recs):
                        counts[rec.revision] = replay_counting(self.schema, state, rec)
        return [CommitSummary(r.revision, r.timestamp, r.user, r.label,
                              counts.get(r.revision)) for r in recs]

    def not_a_commit(self, revision: int) -> InvalidValue:
        """The error for a ``revision`` that is no retained commit of running: compacted
        away (the log keeps the commits after its older snapshots), or never one."""
        snap = self.storage.snapshot_at("running", self._tx.last_revision)
        if (0 < revision <= self._tx.last_revision and snap is not None
                and snap.revision >= revision
                and not self.storage.history("running", 1, before=revision)):
            return InvalidValue(f"revision {revision} is no longer retained (the commit "
                                "log was compacted past it)",
                                app_tag="nfo-revision-not-retained")
        return InvalidValue(f"revision {revision} is not a commit of running",
                            app_tag="nfo-not-a-commit")

    def revision_states(self, revision: int) -> tuple[Tree, Tree]:
        """Running right before and right after its commit ``revision`` (the caller
        frees both); ``invalid-value`` if that is not a retained commit of running."""
        recs = self.storage.commits_between("running", revision - 1, revision)
        if not recs:
            raise self.not_a_commit(revision)
        before = self.state_at("running", revision - 1)
        try:
            after = before.dup()
            try:
                self._replay(after, recs[0])
                validate(self.schema, after)
            except BaseException:
                after.free()
                raise
        except BaseException:
            before.free()
            raise
        return before, after

    def state_at(self, datastore: str, revision: int) -> Tree:
        """The content of a durable datastore as it was after ``revision``."""
        ds = datastore_name(datastore, DURABLE)
        snap = self.storage.snapshot_at(ds, revision)
        tree = Tree(self.schema)
        after = 0
        if snap is not None:
            tree = Tree.parse(self.schema, snap.content, Fmt.JSON)
            after = snap.revision
        else:
            oldest = self.storage.history(ds, limit=1_000_000)
            if oldest and self.storage.snapshot_at(ds, oldest[-1].revision) is not None:
                tree.free()
                raise InvalidValue(f"revision {revision} is no longer retained",
                                   app_tag="nfo-revision-not-retained")
        try:
            for rec in self.storage.commits_between(ds, after, revision):
                self._replay(tree, rec)
            validate(self.schema, tree)
        except Exception:
            tree.free()
            raise
        return tree

    def check_precondition(self, datastore: str, *, if_revision: int | None = None,
                           precondition: Precondition | None = None) -> None:
        """Evaluate a write's preconditions on the datastore as it is now: an early
        refusal only, since the write checks them again under the write lock."""
        self._tx.check_precondition(datastore_name(datastore, CONFIG_DATASTORES),
                                    if_revision, precondition)

    def snapshot(self, ds: str = "running") -> None:
        """Write a snapshot of a durable datastore now (replay on open starts there)."""
        self._tx.snapshot(datastore_name(ds, DURABLE))

    # -- operational data ----------------------------------------------------
    def oper_owners(self) -> list[str]:
        """The owners that pushed operational data (see :meth:`Session.set_oper`)."""
        return list(self._oper.owners)

    def oper_records(self, owner: str) -> Iterator[str]:
        """An owner's operational data as stored: RFC 7951 JSON documents, one per
        record (a list entry, or a top-level node), none below another; read from
        storage a page at a time, so consume them before the next write."""
        if owner not in self._oper.owners:
            return iter(())
        return self._oper.texts(owner)

    def provide_oper(self, path: str, provider: OperProvider) -> None:
        """Serve the operational subtree at ``path`` (a top-level node) from
        ``provider``, called on each read that selects it."""
        self._oper.provide(path, provider)

    def unprovide_oper(self, path: str) -> None:
        self._oper.unprovide(path)

    # -- subscriptions -------------------------------------------------------
    def watch_running(self, callback: Callable[[Sequence[Change | Run]], None]) -> None:
        """Call ``callback`` with the changes of every commit to running, synchronously,
        as the new tree goes live (for a cache of what running holds; unlike
        :meth:`subscribe`, no say in the commit and no queue)."""
        self._tx.watch_running(callback)

    def subscribe(self, module: str, callback: ChangeCallback, *, xpath: str | None = None,
                  priority: int = 0, datastore: str = "running",
                  entries: bool = False) -> ChangeSubscription:
        """Call ``callback`` with each commit's changes under ``module`` (see
        :class:`ChangeSubscription`; ``entries``: a bulk edit's created entries as one
        change each)."""
        if module not in {m.name for m in self.schema.modules() if m.implemented}:
            raise UnknownElement(f"no implemented module {module!r} to subscribe to")
        sub = ChangeSubscription(module, callback, datastore_name(datastore, DURABLE), xpath,
                                 priority, entries)
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

    def _subscribers(self, ds: str) -> Sequence[ChangeSubscription]:
        return [s for s in self._subs if s.datastore == ds]

    # -- RPCs and actions ----------------------------------------------------
    def register_rpc(self, path: str, handler: RpcHandler) -> None:
        """Serve an RPC (``/mod:name``) or action (``/mod:cont/list/name``) by schema path."""
        if path in self._rpcs:
            raise InvalidValue(f"an RPC handler for {path} is already registered")
        found = self.schema.find(path)
        if found is None or found.kind not in (Kind.RPC, Kind.ACTION):
            raise UnknownElement(f"{path} is not an RPC or action in the module set")
        self._rpcs[path] = handler

    def unregister_rpc(self, path: str) -> None:
        self._rpcs.pop(path, None)

    def rpc_handler(self, path: str) -> RpcHandler | None:
        """The handler registered for an RPC or action's schema path, if any."""
        return self._rpcs.get(path)

    # -- internals -----------------------------------------------------------
    def _replay(self, tree: Tree, rec: CommitRecord) -> None:
        if rec.kind == "replace":
            tree.take(Tree.parse(self.schema, rec.payload, Fmt.JSON,
                                 what=f"replaying revision {rec.revision}"))
            return
        for item in json.loads(rec.payload):
            with Tree.parse(self.schema, *item_source(item)) as edit:
                apply_edit(self.schema, tree, edit, item["default-operation"])

    def _replay_validated(self, tree: Tree, rec: CommitRecord) -> None:
        """Replay ``rec`` on ``tree`` as its transaction made it (see :meth:`_load`)."""
        what = f"replaying revision {rec.revision}"
        if rec.kind == "replace":
            whole = Tree.parse(self.schema, rec.payload, Fmt.JSON, what=what)
            try:
                validate(self.schema, whole)
            except BaseException:
                whole.free()
                raise
            tree.take(whole)
            return
        edits = [(Tree.parse(self.schema, *item_source(item), what=what),
                  str(item["default-operation"])) for item in json.loads(rec.payload)]
        try:
            self._tx.replay(tree, edits)
        finally:
            for edit, _ in edits:
                edit.free()

