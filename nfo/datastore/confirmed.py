"""The confirmed commit (RFC 6241 section 8.4) as one state machine.

A confirmed commit commits the candidate but keeps what running was before it: saved in
storage meta, in the commit's own storage transaction, so it survives a restart.  It is
then pending until a confirming commit (from its session, or from any session giving its
persist-id when it was given ``persist``) makes it final.  The timeout, cancel-commit,
the end of its session (unless persistent) or a restart revert running to the saved
content, as a new commit by the server itself.  Every step is reported as an RFC 6470
netconf-confirmed-commit event.

Replicas on one store (:class:`~nfo.datastore.storage.base.Replicated`) share the stored
record, which names the replica that started the commit (its ``owner``, which runs the
timer).  A persistent confirmed commit can be confirmed, extended or cancelled through any
replica with its persist-id; a non-persistent one only through its session, so its
replica.  A replica that starts while another one's commit is pending leaves it to that
replica; its timer reverts only if the record is still the one it armed for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from nfo.datastore.candidate import Candidate
from nfo.datastore.notifications import NotificationHub
from nfo.datastore.storage.base import Replicated, Storage
from nfo.datastore.transaction import Precondition, Recorded, Transactions, Writer
from nfo.errors import InUse, InvalidValue, NfoError
from nfo.schema import Fmt, Schema, Tree
from nfo.schema.changes import Change

__all__ = ["ConfirmedCommit"]

log = logging.getLogger(__name__)

_META = "confirmed-commit"
ORPHAN_CHECK = 1.0
"""Seconds between a replica's looks for a confirmed commit whose replica is gone."""
_SERVER = Writer(None, "nfo")


class _Gone(Exception):
    """The stored record a revert was for is no longer there: another replica confirmed,
    cancelled or reverted that commit."""


class _MetaWrite:
    """The stored record of a pending confirmed commit, written (or cleared, with "")
    in the storage transaction of the commit that starts or ends it, so that a failed
    write leaves neither without the other; or alone, when no commit was needed.
    ``expect``: the record it replaces, which must still be stored (on a store of
    replicas, checked by the store in the same transaction)."""

    def __init__(self, storage: Storage, value: str | None,
                 expect: str | None = None) -> None:
        self._storage = storage
        self._value = value
        self._expect = expect
        self._written = value is None

    def __call__(self) -> None:
        if self._expect is not None:
            if self._storage.get_meta(_META) != self._expect:
                raise _Gone
            if isinstance(self._storage, Replicated):
                self._storage.expect_meta(_META, self._expect)
        if self._value is not None:
            self._storage.set_meta(_META, self._value)
        self._written = True

    def unless_written(self) -> None:
        if not self._written:
            self()


@dataclass
class _Pending:
    """A confirmed commit waiting for its confirmation."""

    revision_before: int
    content: str
    """Running as it was before the confirmed commit (RFC 7951 JSON): what a revert restores."""
    session_id: int | None
    persist: str | None
    timer: asyncio.TimerHandle | None = None
    owner: str | None = None
    """The replica that started it (None: one server, no replicas)."""
    saved: str | None = None
    """The record as stored (what a revert expects to replace)."""

    def record(self) -> str:
        return json.dumps({"revision_before": self.revision_before, "content": self.content,
                           "owner": self.owner, "session": self.session_id,
                           "persist": self.persist})

    @classmethod
    def of(cls, saved: str) -> _Pending:
        doc = json.loads(saved)
        return cls(int(doc["revision_before"]), doc["content"], doc.get("session"),
                   doc.get("persist"), owner=doc.get("owner"), saved=saved)


class ConfirmedCommit:
    def __init__(self, schema: Schema, storage: Storage, transactions: Transactions,
                 candidate: Candidate, notifications: NotificationHub, events: bool) -> None:
        self._schema = schema
        self._storage = storage
        self._tx = transactions
        self._candidate = candidate
        self._notifications = notifications
        self._events = events
        self._pending: _Pending | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._me = storage.me if isinstance(storage, Replicated) else None

    @property
    def pending(self) -> bool:
        """Whether a confirmed commit waits for its confirmation."""
        return self._pending is not None

    def load(self) -> None:
        """Pick up a confirmed commit a restart interrupted (reverted by :meth:`start`),
        unless another replica that is running started it."""
        p = self._elsewhere()
        if p is not None and (p.owner is None or not self._alive(p.owner)):
            p.session_id = p.persist = None
            self._pending = p

    def _alive(self, owner: str) -> bool:
        return isinstance(self._storage, Replicated) and self._storage.alive(owner)

    def _refresh(self) -> None:
        """Forget this replica's pending commit once the store no longer holds it (it was
        confirmed, cancelled or taken over through another replica)."""
        p = self._pending
        if p is not None and p.owner is not None and \
                self._storage.get_meta(_META) != p.saved:
            if p.timer is not None:
                p.timer.cancel()
            self._pending = None

    def _elsewhere(self) -> _Pending | None:
        """The pending confirmed commit the store holds, if this replica does not run it."""
        saved = self._storage.get_meta(_META)
        if not saved:
            return None
        p = _Pending.of(saved)
        return None if self._pending is not None and p.owner == self._me else p

    async def start(self) -> None:
        """Inside the event loop: revert a commit left unconfirmed by a restart (RFC 6241:
        the server reverts on reboot)."""
        if self._pending is not None and self._pending.timer is None:
            log.warning("reverting a confirmed commit that was not confirmed before restart")
            await self._revert("confirmed commit not confirmed before restart", "timeout")
        if self._me is not None:
            task = asyncio.get_running_loop().create_task(
                self._orphans(), name="nfo-confirmed-commit-orphans")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _orphans(self) -> None:
        """On a store of replicas: revert a confirmed commit whose replica is gone (its
        timer went with it); any replica may, the store lets one do it."""
        while True:
            await asyncio.sleep(ORPHAN_CHECK)
            other = self._elsewhere() if self._pending is None else None
            if other is None or other.owner is None or self._alive(other.owner):
                continue
            log.warning("reverting a confirmed commit whose replica is gone")
            self._pending = other
            with contextlib.suppress(NfoError):  # logged; tried again next time
                await self._revert("the replica of the confirmed commit is gone",
                                   "timeout")

    async def close(self) -> None:
        """Stop the timer and any revert it started; a pending commit stays stored."""
        if self._pending is not None and self._pending.timer is not None:
            self._pending.timer.cancel()
            self._pending.timer = None
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def commit(self, by: Writer, *, confirmed: bool, timeout: float,
                     persist: str | None, persist_id: str | None,
                     if_revision: int | None = None,
                     precondition: Precondition | None = None, label: str = "",
                     candidate: Candidate | None = None,
                     recorded: Recorded | None = None) -> list[Change]:
        """Commit the candidate (``candidate``: a session's private one): plain
        (confirming a pending commit), or confirmed (starting or extending one).
        ``label``: the commit record's label (its comment), else the kind of commit."""
        self._refresh()
        p = self._pending
        if p is None and (other := self._elsewhere()) is not None:
            if other.persist is None:
                raise InUse(f"a confirmed commit of session {other.session_id} of another "
                            "replica is pending", info={"session-id": "0"})
            p = self._pending = other  # confirmed, extended or cancelled through this one
        if p is not None:
            if p.persist is not None:
                if persist_id != p.persist:
                    raise InvalidValue("a persistent confirmed commit is pending: give its "
                                       "persist-id to confirm it", tag="invalid-value")
            elif p.session_id not in (None, by.session_id):
                raise InUse(f"a confirmed commit of session {p.session_id} is pending",
                            info={"session-id": str(p.session_id)})
        elif persist_id is not None:
            raise InvalidValue("no confirmed commit is pending for that persist-id")
        fresh = confirmed and p is None
        record: str | None = None
        if fresh:
            before = self._tx.info("running").revision
            content = self._tx.tree("running").print(Fmt.JSON)
            p = self._pending = _Pending(before, content, None if persist else by.session_id,
                                         persist, owner=self._me)
            record = p.saved = p.record()
        elif p is not None and not confirmed:
            record = ""  # the confirming commit ends it
        meta = _MetaWrite(self._storage, record)
        try:
            changes = await self._tx.commit_candidate(
                by, label or ("confirmed commit" if confirmed else "commit"),
                if_revision=if_revision, precondition=precondition, also=meta,
                candidate=candidate, recorded=recorded)
            meta.unless_written()
        except BaseException:
            if fresh:
                self._pending = None
            raise
        if p is not None:
            if p.timer is not None:
                p.timer.cancel()
                p.timer = None
            if confirmed:
                p.persist = persist
                p.session_id = None if persist else by.session_id
                if p.owner != self._me:  # extended here: this replica runs it from now on
                    p.owner = self._me
                    p.saved = p.record()
                    self._storage.set_meta(_META, p.saved)
                p.timer = self._arm_timer(timeout)
                self._event("start" if fresh else "extend", by, timeout)
            else:
                self._pending = None
                self._event("complete", by)
        return changes

    async def cancel(self, by: Writer, persist_id: str | None) -> None:
        """cancel-commit: revert the pending commit now."""
        self._refresh()
        p = self._pending
        if p is None and (other := self._elsewhere()) is not None \
                and other.persist is not None and persist_id == other.persist:
            p = self._pending = other
        if p is None:
            raise InvalidValue("no confirmed commit is pending", tag="operation-failed")
        if p.persist is not None and persist_id != p.persist:
            raise InvalidValue("persist-id does not match the pending confirmed commit")
        if p.persist is None and p.session_id != by.session_id:
            raise InUse("the pending confirmed commit belongs to another session")
        await self._revert("cancel-commit", "cancel", by)

    async def session_ended(self, by: Writer) -> None:
        """Revert the pending commit if it is that session's and not persistent."""
        self._refresh()
        p = self._pending
        if p is not None and p.persist is None and p.session_id == by.session_id:
            await self._revert("the session of the confirmed commit ended", "cancel", by)

    async def _revert(self, why: str, event: str, by: Writer | None = None) -> None:
        p = self._pending
        if p is None:
            return
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        self._pending = None
        meta = _MetaWrite(self._storage, "", p.saved if p.owner is not None else None)
        try:
            with Tree.parse(self._schema, p.content, Fmt.JSON) as before:
                await self._tx.transact(_SERVER, "running", [(before, "replace")],
                                        label=f"rollback to {p.revision_before}: {why}",
                                        system=True, also=meta)
            meta.unless_written()
        except _Gone:
            return  # confirmed, cancelled or reverted through another replica meanwhile
        except BaseException:
            log.exception("could not revert the confirmed commit (%s); it stays pending", why)
            self._pending = p
            raise
        self._candidate.reset()
        self._event(event, by)

    def _arm_timer(self, timeout: float) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            task = loop.create_task(self._revert("confirm-timeout expired", "timeout"),
                                    name="nfo-confirmed-commit-timeout")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return loop.call_later(timeout, fire)

    def _event(self, event: str, by: Writer | None, timeout: float | None = None) -> None:
        """RFC 6470 netconf-confirmed-commit."""
        if not self._events:
            return
        body: dict[str, Any] = {"confirm-event": event}
        if by is not None and event != "timeout":
            body.update({"username": by.user, "session-id": by.session_id})
        if timeout is not None:
            body["timeout"] = int(timeout)
        self._notifications.publish_quietly(json.dumps(
            {"ietf-netconf-notifications:netconf-confirmed-commit": body}))
