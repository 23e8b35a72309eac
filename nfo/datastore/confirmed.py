"""The confirmed commit (RFC 6241 section 8.4) as one state machine.

A confirmed commit commits the candidate but keeps what running was before it: saved in
storage meta, in the commit's own storage transaction, so it survives a restart.  It is
then pending until a confirming commit (from its session, or from any session giving its
persist-id when it was given ``persist``) makes it final.  The timeout, cancel-commit,
the end of its session (unless persistent) or a restart revert running to the saved
content, as a new commit by the server itself.  Every step is reported as an RFC 6470
netconf-confirmed-commit event.
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
from nfo.datastore.storage.base import Storage
from nfo.datastore.transaction import Precondition, Recorded, Transactions, Writer
from nfo.errors import InUse, InvalidValue
from nfo.schema import Fmt, Schema, Tree
from nfo.schema.changes import Change

__all__ = ["ConfirmedCommit"]

log = logging.getLogger(__name__)

_META = "confirmed-commit"
_SERVER = Writer(None, "nfo")


class _MetaWrite:
    """The stored record of a pending confirmed commit, written (or cleared, with "")
    in the storage transaction of the commit that starts or ends it, so that a failed
    write leaves neither without the other; or alone, when no commit was needed."""

    def __init__(self, storage: Storage, value: str | None) -> None:
        self._storage = storage
        self._value = value
        self._written = value is None

    def __call__(self) -> None:
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

    @property
    def pending(self) -> bool:
        """Whether a confirmed commit waits for its confirmation."""
        return self._pending is not None

    def load(self) -> None:
        """Pick up a confirmed commit a restart interrupted (reverted by :meth:`start`)."""
        saved = self._storage.get_meta(_META)
        if saved:
            doc = json.loads(saved)
            self._pending = _Pending(int(doc["revision_before"]), doc["content"], None, None)

    async def start(self) -> None:
        """Inside the event loop: revert a commit left unconfirmed by a restart (RFC 6241:
        the server reverts on reboot)."""
        if self._pending is not None and self._pending.timer is None:
            log.warning("reverting a confirmed commit that was not confirmed before restart")
            await self._revert("confirmed commit not confirmed before restart", "timeout")

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
        p = self._pending
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
            record = json.dumps({"revision_before": before, "content": content})
            p = self._pending = _Pending(before, content, None if persist else by.session_id,
                                         persist)
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
                p.timer = self._arm_timer(timeout)
                self._event("start" if fresh else "extend", by, timeout)
            else:
                self._pending = None
                self._event("complete", by)
        return changes

    async def cancel(self, by: Writer, persist_id: str | None) -> None:
        """cancel-commit: revert the pending commit now."""
        p = self._pending
        if p is None:
            raise InvalidValue("no confirmed commit is pending", tag="operation-failed")
        if p.persist is not None and persist_id != p.persist:
            raise InvalidValue("persist-id does not match the pending confirmed commit")
        if p.persist is None and p.session_id != by.session_id:
            raise InUse("the pending confirmed commit belongs to another session")
        await self._revert("cancel-commit", "cancel", by)

    async def session_ended(self, by: Writer) -> None:
        """Revert the pending commit if it is that session's and not persistent."""
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
        meta = _MetaWrite(self._storage, "")
        try:
            with Tree.parse(self._schema, p.content, Fmt.JSON) as before:
                await self._tx.transact(_SERVER, "running", [(before, "replace")],
                                        label=f"rollback to {p.revision_before}: {why}",
                                        system=True, also=meta)
            meta.unless_written()
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
