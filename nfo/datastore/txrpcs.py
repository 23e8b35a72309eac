"""The ``nfo-transactions`` RPCs: transactional editing for every client.

Served through :meth:`Datastore.register_rpc`, so RESTCONF (``/restconf/operations``)
and NETCONF (ordinary RPCs) answer them alike, after access control has allowed the
caller to run them.  Each acts on the calling session's candidate: its private one if
the session has one, else the shared candidate (whose lock another session may hold).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nfo.datastore.session import RpcCall, RpcHandler, Session
from nfo.datastore.storage.base import CommitRecord
from nfo.datastore.users import USERS
from nfo.errors import InUse, InvalidValue
from nfo.schema import Tree
from nfo.schema.diff import Difference
from nfo.schema.values import format_time

if TYPE_CHECKING:
    from nfo.datastore.datastore import Datastore

__all__ = ["MODULE", "TransactionRpcs", "changes_json"]

MODULE = "nfo-transactions"


def changes_json(changes: Sequence[Difference]) -> list[dict[str, str]]:
    """The ``change`` list of the module's outputs (RFC 7951 JSON)."""
    out = []
    for c in changes:
        item = {"operation": c.operation, "path": c.path}
        for name, value in (("value", c.value), ("previous-value", c.prev_value),
                            ("data", c.data), ("after", c.after)):
            if value is not None:
                item[name] = value
        out.append(item)
    return out


def _input(call: RpcCall) -> dict[str, str | None]:
    """The input leaves by name (an ``empty`` leaf given: None)."""
    return {n.name: n.value for n in call.op.children() if not n.is_default}


def _output(**members: Any) -> str:
    return json.dumps({k: v for k, v in members.items() if v is not None})


class _Revision:
    """Catches the revision of the commit a write makes."""

    def __init__(self) -> None:
        self.revision: int | None = None

    def __call__(self, rec: CommitRecord) -> None:
        self.revision = rec.revision

    @property
    def text(self) -> str | None:
        return None if self.revision is None else str(self.revision)


class TransactionRpcs:
    """Registers (and unregisters) the handlers of ``nfo-transactions``."""

    def __init__(self, ds: Datastore) -> None:
        self._ds = ds
        self._handlers: dict[str, RpcHandler] = {
            f"/{MODULE}:commit-changes": self._commit,
            f"/{MODULE}:cancel-confirmed-commit": self._cancel_commit,
            f"/{MODULE}:discard": self._discard,
            f"/{MODULE}:validate-changes": self._validate,
            f"/{MODULE}:diff": self._diff,
            f"/{MODULE}:history": self._history,
            f"/{MODULE}:rollback": self._rollback,
        }

    def register(self) -> None:
        for path, handler in self._handlers.items():
            self._ds.register_rpc(path, handler)

    def unregister(self) -> None:
        for path in self._handlers:
            self._ds.unregister_rpc(path)

    def _shared_candidate_free(self, session: Session) -> None:
        """in-use when the shared candidate is this session's and another holds its lock."""
        if session.private_candidate:
            return
        holder = self._ds.locks().get("candidate")
        if holder is not None and holder[0] != session.id:
            raise InUse(f"the candidate datastore is locked by session {holder[0]}",
                        info={"session-id": str(holder[0])})

    async def _commit(self, call: RpcCall) -> str:
        args = _input(call)
        session = call.session
        self._shared_candidate_free(session)
        if "dry-run" in args:
            return _output(change=changes_json(await session.dry_run()))
        rev = _Revision()
        await session.commit(
            confirmed="confirmed" in args, timeout=float(args.get("confirm-timeout") or 600),
            persist=args.get("persist"), persist_id=args.get("persist-id"),
            comment=args.get("comment") or "", recorded=rev)
        return _output(revision=rev.text)

    async def _cancel_commit(self, call: RpcCall) -> None:
        if not call.session.confirmed_commit_pending:
            raise InvalidValue("no confirmed commit is pending",
                               app_tag="nfo-no-confirmed-commit")
        await call.session.cancel_commit(_input(call).get("persist-id"))

    async def _discard(self, call: RpcCall) -> None:
        await call.session.discard_changes()

    async def _validate(self, call: RpcCall) -> None:
        call.session.validate("candidate")

    async def _diff(self, call: RpcCall) -> str:
        revision = _input(call).get("revision")
        session = call.session
        changes = (session.diff() if revision is None
                   else session.diff_revision(int(revision)))
        return _output(change=changes_json(changes))

    async def _history(self, call: RpcCall) -> str:
        args = _input(call)
        before = args.get("before")
        page = self._ds.commit_log(int(args.get("limit") or 20),
                                   None if before is None else int(before))
        return _output(commit=[{
            "revision": str(c.revision), "timestamp": format_time(c.timestamp),
            "user": c.user, "comment": c.label,
            **({} if c.changes is None else {"changes": c.changes})} for c in page])

    async def _rollback(self, call: RpcCall) -> str:
        args = _input(call)
        revision = int(args["revision"] or 0)
        # (one who may not delete accounts is refused by the rollback itself)
        guard = call.session.access().may_write(f"{USERS}/user", "delete")
        rev = _Revision()
        await call.session.rollback(
            revision, comment=args.get("comment") or "", recorded=rev,
            accept=(lambda old: self._refuse_lock_out(revision, old)) if guard else None)
        return _output(revision=rev.text)

    def _refuse_lock_out(self, revision: int, old: Tree) -> None:
        """A rollback to before the accounts existed would leave nobody able to log in
        (only `nfo user` on the server's host could repair it): refused, saying so."""
        enabled = f"{USERS}/user[not(enabled = 'false')]"
        if not self._ds.tree("running").match(enabled) or old.match(enabled):
            return
        raise InvalidValue(
            f"rolling back to revision {revision} would leave no enabled account (they were "
            "created or enabled after it), so nobody could log in: roll back to a later "
            "revision", app_tag="nfo-would-lock-out")
