"""One client of the datastore: who writes, which locks it holds, what it may cancel.

Front ends and the workload manager open a :class:`Session` per client connection (or
per request) and map their protocol's operations onto its methods: NETCONF-style edits
of running, candidate and startup, commits (confirmed or not), locks, operational data
pushes, RPCs.  A session works through the parts of its :class:`Datastore` (the write
pipeline, the lock table, the candidate, the confirmed commit, the operational store)
and checks every datastore name it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from nfo.datastore.candidate import Candidate, PrivateCandidate
from nfo.datastore.confirmed import ConfirmedCommit
from nfo.datastore.formats import EditSource, source_of
from nfo.datastore.groupcommit import GroupCommit
from nfo.datastore.locks import LockTable
from nfo.datastore.nacm import Access, Identity
from nfo.datastore.names import CONFIG_DATASTORES, datastore_name
from nfo.datastore.notifications import Checked, Notification, NotificationHub
from nfo.datastore.operational import OperStore, check_owner
from nfo.datastore.transaction import Precondition, Recorded, Transactions, Writer
from nfo.errors import (
    DataMissing,
    InvalidValue,
    NfoError,
    OperationFailed,
    OperationNotSupported,
)
from nfo.schema import Fmt, Node, Operation, OpKind, Tree
from nfo.schema.changes import Change
from nfo.schema.diff import Difference, diff_trees
from nfo.schema.edit import validate

if TYPE_CHECKING:
    from nfo.datastore.datastore import Datastore

__all__ = ["ReadAs", "RpcCall", "RpcHandler", "RpcOutput", "Session", "SessionParts"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class RpcCall:
    session: Session
    path: str
    """Schema path of the RPC or action, e.g. ``/mod:rpc`` or ``/mod:list/action``."""
    tree: Tree
    """The parsed input (with its parent data nodes for an action); owned by the caller."""
    op: Node
    """The RPC or action node inside ``tree``: its children are the input."""
    parent_path: str | None
    """For an action, the data path of the node it was invoked on."""


RpcOutput = dict[str, str] | str | None
"""What an RPC handler answers: output leaves by path (relative to the operation), or
the whole output of an RPC (not an action) as RFC 7951 JSON, the object inside the
operation (``{"revision": "5", "change": [...]}``), or None (no output)."""

RpcHandler = Callable[[RpcCall], Awaitable[RpcOutput]]


@dataclass(frozen=True)
class SessionParts:
    """The parts of a :class:`Datastore` its sessions work with."""

    transactions: Transactions
    locks: LockTable
    candidate: Candidate
    confirmed: ConfirmedCommit
    oper: OperStore
    group: GroupCommit
    notifications: NotificationHub
    sessions: dict[int, Session]
    """The open sessions by id (kill-session finds its victim here)."""


class ReadAs:
    """Reads as one identity: the reader :func:`nfo.protocol.read.read` takes."""

    __slots__ = ("_ds", "who")

    def __init__(self, ds: Datastore, who: Identity) -> None:
        self._ds = ds
        self.who = who

    def get(self, datastore: str, xpath: str | None = None, *,
            with_origin: bool = False) -> Tree:
        return self._ds.get(datastore, xpath, with_origin=with_origin, who=self.who)

    async def query(self, datastore: str, xpath: str | None, then: Callable[[Tree], T], *,
                    with_origin: bool = False, offload: bool = False) -> T:
        return await self._ds.query(datastore, xpath, then, with_origin=with_origin,
                                    who=self.who, offload=offload)

    def live_one(self, datastore: str, path: str) -> Node | None:
        return self._ds.live_one(datastore, path, self.who)


class Session:
    """One client's view: who writes, which locks it holds, what it may cancel."""

    def __init__(self, ds: Datastore, sid: int, who: Identity,
                 on_kill: Callable[[], None] | None, parts: SessionParts, *,
                 private_candidate: bool = False, per_request: bool = False) -> None:
        self.datastore = ds
        self.per_request = per_request
        """The session ends with the one request it serves (see :meth:`commit`)."""
        self.id = sid
        self.identity = who
        self.user = who.user
        self._on_kill = on_kill
        self._parts = parts
        self._writer = Writer(sid, who.user, None if who.internal else who)
        self.closed = False
        self.killed_by: int | None = None
        """The session that ended this one with kill-session, if any."""
        self._own = PrivateCandidate(sid) if private_candidate else None

    @property
    def private_candidate(self) -> bool:
        """Whether this session has its own candidate (see
        :class:`~nfo.datastore.candidate.PrivateCandidate`) instead of the shared one."""
        return self._own is not None

    @property
    def candidate(self) -> Candidate:
        """The candidate this session edits and commits: its own, or the shared one."""
        return self._own if self._own is not None else self._parts.candidate

    def candidate_tree(self) -> Tree:
        """The live data of this session's candidate: read it, never keep or change it."""
        return self._parts.transactions.tree("candidate", self._own)

    # -- access control --------------------------------------------------------
    def access(self) -> Access:
        """What this session may do under the rules in running now."""
        return self.datastore.nacm.access(self.identity)

    def authorize(self, operation: str) -> None:
        """Refuse (``access-denied``) a protocol operation by its schema path
        (``/ietf-netconf:lock``) unless access control lets this session run it."""
        self.access().check_exec(operation)

    def get(self, datastore: str, xpath: str | None = None, *,
            with_origin: bool = False) -> Tree:
        """Read as this session's user (see :meth:`Datastore.get`); the candidate is
        this session's own if it has one."""
        return self.datastore.get(datastore, xpath, with_origin=with_origin,
                                  who=self.identity, candidate=self._own)

    async def query(self, datastore: str, xpath: str | None, then: Callable[[Tree], T], *,
                    with_origin: bool = False, offload: bool = False) -> T:
        """Read as this session's user, off the event loop (see :meth:`Datastore.query`)."""
        return await self.datastore.query(datastore, xpath, then, with_origin=with_origin,
                                          who=self.identity, candidate=self._own,
                                          offload=offload)

    def live_one(self, datastore: str, path: str) -> Node | None:
        """See :meth:`Datastore.live_one` (never this session's own candidate)."""
        return self.datastore.live_one(datastore, path, self.identity)

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
        report: bool = True,
    ) -> list[Change]:
        """edit-config (RFC 6241 section 7.2) on running, candidate or startup."""
        return await self.edit_many(datastore, [content], fmt,
                                    default_operation=default_operation,
                                    test_option=test_option, error_option=error_option,
                                    if_revision=if_revision, precondition=precondition,
                                    report=report)

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
        report: bool = True,
    ) -> list[Change]:
        """Several edits applied in order as one all-or-nothing transaction.

        ``if_revision``: refuse (:class:`PreconditionFailed`) unless the datastore's
        last commit is that revision; ``precondition``: called with a :class:`WriteView`
        of the datastore, may raise to refuse.  Both are checked under the datastore's
        write lock right before the edit is applied; a refused write changes nothing.
        Returns the changes made; ``report`` false: an empty list (a front end that
        answers only ok or an error spares a bulk edit building them)."""
        self._alive()
        ds = datastore_name(datastore, CONFIG_DATASTORES)
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
            sources: list[EditSource | None] = []  # what the commit record keeps
            for c in contents:
                if isinstance(c, Tree):
                    edits.append((c, default_operation))
                    sources.append(None)
                else:
                    t = Tree.parse(self.datastore.schema, c, fmt)
                    owned.append(t)
                    edits.append((t, default_operation))
                    sources.append(source_of(c, fmt))
            # "set" skips validation only where invalid data may wait: the candidate.
            check = not (test_option == "set" and ds == "candidate")
            return await self._parts.transactions.transact(
                self._writer, ds, edits, test_only=test_option == "test-only",
                validate=check, label=label, if_revision=if_revision,
                precondition=precondition, report=report, sources=sources,
                candidate=self._own)
        finally:
            for t in owned:
                t.free_soon()  # after the answer

    async def copy_config(self, target: str, source: str | bytes | Tree,
                          fmt: Fmt | str = Fmt.XML, *, source_is_datastore: bool = False,
                          if_revision: int | None = None,
                          precondition: Precondition | None = None) -> None:
        """Replace ``target`` with another datastore's content or inline config."""
        self._alive()
        tx = self._parts.transactions
        tgt = datastore_name(target, CONFIG_DATASTORES)
        if source_is_datastore:
            src = datastore_name(str(source), CONFIG_DATASTORES)
            if src == tgt:
                await tx.check(tgt, if_revision, precondition)
                return
            tree = tx.tree(src, self._own).dup()
        elif isinstance(source, Tree):
            tree = source.dup()
        else:
            tree = Tree.parse(self.datastore.schema, source, fmt)
        with tree:
            await tx.transact(self._writer, tgt, [(tree, "replace")],
                              label=f"copy-config to {tgt}", if_revision=if_revision,
                              precondition=precondition, candidate=self._own)

    async def delete_config(self, target: str, *, if_revision: int | None = None,
                            precondition: Precondition | None = None) -> None:
        self._alive()
        tgt = datastore_name(target, CONFIG_DATASTORES)
        if tgt == "running":
            raise OperationNotSupported("delete-config cannot target running")
        with Tree(self.datastore.schema) as empty:
            await self._parts.transactions.transact(
                self._writer, tgt, [(empty, "replace")], label=f"delete-config {tgt}",
                if_revision=if_revision, precondition=precondition, candidate=self._own)

    async def commit(self, *, confirmed: bool = False, timeout: float = 600,
                     persist: str | None = None, persist_id: str | None = None,
                     if_revision: int | None = None,
                     precondition: Precondition | None = None, comment: str = "",
                     recorded: Recorded | None = None) -> list[Change]:
        """Commit this session's candidate to running, optionally as a confirmed commit;
        ``if_revision`` and ``precondition`` are checked against running (see
        :meth:`edit_many`).  ``comment``: the commit record's label (shown in the
        history); ``recorded``: told the commit record once it is durable.  A private
        candidate is rebased (see :meth:`Transactions.commit_candidate`)."""
        self._alive()
        if confirmed and persist is None and self.per_request:
            raise InvalidValue("a confirmed commit made by a single request needs persist: "
                               "it would be reverted when the request ends; confirm it "
                               "later with its persist-id")
        self._parts.locks.check_writable(self.id, "running")
        return await self._parts.confirmed.commit(
            self._writer, confirmed=confirmed, timeout=timeout, persist=persist,
            persist_id=persist_id, if_revision=if_revision, precondition=precondition,
            label=comment, candidate=self._own, recorded=recorded)

    async def dry_run(self) -> list[Difference]:
        """What committing this session's candidate would change in running now, as
        far as this session's user may read it: the candidate rebased on running and
        validated; nothing is stored and no subscriber is asked."""
        self._alive()
        tx = self._parts.transactions
        before, after = await tx.rebased(self._writer, self.candidate)
        with before, after:
            return self._diff(before, after)

    def diff(self) -> list[Difference]:
        """The pending changes: this session's candidate against running, as far as
        this session's user may read them."""
        self._alive()
        tx = self._parts.transactions
        with tx.tree("running").dup() as before, self.candidate_tree().dup() as after:
            return self._diff(before, after)

    def diff_revision(self, revision: int) -> list[Difference]:
        """What a commit of running changed, as far as this session's user may read it."""
        self._alive()
        before, after = self.datastore.revision_states(revision)
        with before, after:
            return self._diff(before, after)

    def _diff(self, before: Tree, after: Tree) -> list[Difference]:
        """The difference of two private copies, each filtered for this session's user."""
        access = self.access()
        access.prune(before)
        access.prune(after)
        return diff_trees(before, after)

    @property
    def confirmed_commit_pending(self) -> bool:
        """Whether a confirmed commit (of any session) waits for its confirmation."""
        return self._parts.confirmed.pending

    async def cancel_commit(self, persist_id: str | None = None) -> None:
        self._alive()
        await self._parts.confirmed.cancel(self._writer, persist_id)

    async def discard_changes(self) -> None:
        self._alive()
        if self._own is not None:
            self._own.reset()
            return
        self._parts.locks.check_writable(self.id, "candidate")
        self._parts.candidate.reset()

    async def rollback(self, revision: int, *, if_revision: int | None = None,
                       precondition: Precondition | None = None, comment: str = "",
                       recorded: Recorded | None = None,
                       accept: Callable[[Tree], None] | None = None) -> list[Change]:
        """Make running what it was right after ``revision`` (a new commit); the
        preconditions are checked as by :meth:`edit_many`.  ``comment``: added to the
        commit record's label; ``recorded``: told the commit record once durable;
        ``accept``: shown the state to return to first, raises to refuse it."""
        self._alive()
        d = self.datastore
        tx = self._parts.transactions
        if not 0 <= revision <= tx.last_revision:
            raise InvalidValue(f"no revision {revision} (the last is {tx.last_revision})",
                               app_tag="nfo-not-a-commit")
        if revision:
            committed = d.storage.commits_between("running", revision - 1, revision)
            snap = d.storage.snapshot_at("running", revision)
            if not committed and (snap is None or snap.revision != revision):
                raise d.not_a_commit(revision)
        label = f"rollback to {revision}" + (f": {comment}" if comment else "")
        with d.state_at("running", revision) as before:
            if accept is not None:
                accept(before)
            return await tx.transact(self._writer, "running", [(before, "replace")],
                                     label=label, if_revision=if_revision,
                                     precondition=precondition, recorded=recorded)

    def validate(self, source: str | bytes | Tree, fmt: Fmt | str = Fmt.XML, *,
                 source_is_datastore: bool = True) -> None:
        self._alive()
        d = self.datastore
        if source_is_datastore:
            tree = self._parts.transactions.tree(
                datastore_name(str(source), CONFIG_DATASTORES), self._own).dup()
        elif isinstance(source, Tree):
            tree = source.dup()
        else:
            tree = Tree.parse(d.schema, source, fmt)
        with tree:
            validate(d.schema, tree)

    # -- locks ---------------------------------------------------------------
    def lock(self, datastore: str) -> None:
        self._alive()
        self._parts.locks.lock(self.id, datastore_name(datastore, CONFIG_DATASTORES))

    def unlock(self, datastore: str) -> None:
        self._alive()
        self._parts.locks.unlock(self.id, datastore_name(datastore, CONFIG_DATASTORES))

    # -- operational ---------------------------------------------------------
    def set_oper(self, content: str | bytes, fmt: Fmt | str = Fmt.JSON, *,
                 owner: str | None = None, replace: bool = False) -> None:
        """Push operational data; it is durable when this returns.  With ``replace``
        each pushed list entry replaces the owner's previous one."""
        self._alive()
        self._parts.oper.set(check_owner(owner or self.user), content, fmt, replace=replace)

    def delete_oper(self, path: str, *, owner: str | None = None) -> bool:
        self._alive()
        return self._parts.oper.delete(check_owner(owner or self.user), path)

    async def set_oper_async(self, content: str | bytes, fmt: Fmt | str = Fmt.JSON, *,
                             owner: str | None = None, replace: bool = False,
                             notification: str | None = None) -> None:
        """:meth:`set_oper` through group commit: concurrent writers share one durable
        write.  ``notification`` (RFC 7951 JSON) is published in the same write."""
        self._alive()
        parts = self._parts
        who = check_owner(owner or self.user)
        await _oper_write(parts, lambda: parts.oper.set(who, content, fmt, replace=replace),
                          () if notification is None else (notification,))

    async def set_oper_records_async(self, joined: str, records: Mapping[str, str], *,
                                     owner: str | None = None,
                                     notifications: Sequence[str] = ()) -> None:
        """Replace many records of the owner's at once, through group commit (see
        :meth:`OperStore.set_records`), publishing ``notifications`` (RFC 7951 JSON, in
        this order) in the same write."""
        self._alive()
        parts = self._parts
        who = check_owner(owner or self.user)
        await _oper_write(parts, lambda: parts.oper.set_records(who, joined, records),
                          notifications)

    async def delete_oper_async(self, path: str, *, owner: str | None = None,
                                notification: str | None = None) -> bool:
        """:meth:`delete_oper` through group commit."""
        self._alive()
        parts = self._parts
        who = check_owner(owner or self.user)
        return await _oper_write(parts, lambda: parts.oper.delete(who, path),
                                 () if notification is None else (notification,))

    # -- RPCs ----------------------------------------------------------------
    async def rpc(self, content: str | bytes, fmt: Fmt | str = Fmt.XML) -> Tree:
        """Invoke an RPC or action; returns the reply tree (parents + op + output)."""
        self._alive()
        d = self.datastore
        with Operation.parse(d.schema, content, fmt, OpKind.RPC,
                             what="parsing an RPC") as call:
            output = await self._invoke(call)
            spath = call.schema_path
            ppath = call.parent_path
            if isinstance(output, str):
                if ppath is not None:
                    raise OperationFailed(f"the handler of {spath} answered an action "
                                          "with JSON output")
                reply = Operation.parse(d.schema, f'{{"{spath[1:]}": {output}}}', Fmt.JSON,
                                        OpKind.REPLY, what="building RPC output")
                output = None
            else:
                reply = call.reply()
        try:
            for name, value in (output or {}).items():
                reply.set_output(name, str(value))
            reply.validate(d.tree("running"))
        except BaseException:
            reply.free()
            raise
        return reply.tree

    async def invoke(self, content: str | bytes, fmt: Fmt | str = Fmt.XML) -> RpcOutput:
        """Invoke an RPC or action; returns its handler's output as is (what a replica
        that serves a call for another sends back, :mod:`nfo.datastore.handover`)."""
        self._alive()
        with Operation.parse(self.datastore.schema, content, fmt, OpKind.RPC,
                             what="parsing an RPC") as call:
            return await self._invoke(call)

    async def _invoke(self, call: Operation) -> RpcOutput:
        """Access control, validation against running, then the handler."""
        d = self.datastore
        spath = call.schema_path
        ppath = call.parent_path
        # decided on the path alone, before anything about the data is said
        self.access().check_exec(spath, None if ppath is None else call.op.path)
        call.validate(d.tree("running"))
        if ppath is not None and not d.exists(ppath):
            raise DataMissing("the node the action is invoked on does not exist",
                              path=ppath)
        handler = d.rpc_handler(spath)
        if handler is None:
            raise OperationNotSupported(f"no handler serves {spath}")
        return await handler(RpcCall(self, spath, call.tree, call.op, ppath))

    # -- lifecycle -----------------------------------------------------------
    def _alive(self) -> None:
        if self.closed:
            raise OperationFailed("the session is closed")

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._parts.sessions.pop(self.id, None)
        self._parts.locks.release_all(self.id)
        if self._own is not None:
            self._own.reset()
        if not self.datastore.closed:
            await self._parts.confirmed.session_ended(self._writer)

    async def kill(self, session_id: int) -> None:
        """kill-session: end another session, releasing its locks."""
        self._alive()
        if session_id == self.id:
            raise InvalidValue("a session cannot kill itself")
        other = self._parts.sessions.get(session_id)
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


async def _oper_write(parts: SessionParts, change: Callable[[], T],
                      notifications: Sequence[str]) -> T:
    """``change`` to operational data and ``notifications`` logged, in the next group
    commit; they reach live subscribers only once that is durable.  One that does not
    validate is logged as an error, never raised into the change."""
    hub = parts.notifications
    held: list[tuple[Checked, Notification]] = []

    def write() -> T:
        out = change()
        for notification in notifications:
            try:
                checked = hub.check(notification)
            except NfoError as e:
                log.error("notification not published: %s", e)
                continue
            try:
                held.append((checked, hub.log(checked)))
            except BaseException as e:
                checked.discard()
                if not isinstance(e, NfoError):
                    raise
                log.error("notification not published: %s", e)
        return out

    try:
        result = await parts.group.run(write)
    except BaseException:
        for checked, _ in held:
            checked.discard()
        raise
    for checked, logged in held:
        hub.fan_out(checked, logged)
    return result
