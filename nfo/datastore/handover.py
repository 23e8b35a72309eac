"""RPCs and actions that one replica serves, reachable through every replica.

The workload manager runs on the replica that leads it, and its actions with it.  So
that a client may call them through any replica, every other replica serves those
paths with a handler that hands the call over (:class:`~nfo.datastore.storage.base.
Handover`): the call as the client sent it, checked and validated here first, and who
the client is.  The serving replica runs it as that client (its access control
applies there too), and the output or the error comes back the same way.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nfo import errors
from nfo.datastore.nacm import Identity
from nfo.datastore.session import RpcCall, RpcOutput
from nfo.datastore.storage.base import Handover
from nfo.errors import ErrorDetail, NfoError, OperationFailed
from nfo.schema import Fmt

if TYPE_CHECKING:
    from nfo.datastore.datastore import Datastore

__all__ = ["RpcHandover"]

log = logging.getLogger(__name__)

KIND = "rpc"
"""The kind of the asks this module makes and answers."""

_answering: contextvars.ContextVar[bool] = contextvars.ContextVar("nfo_handover_answering",
                                                                  default=False)
"""Set while a call handed over from another replica runs here: it is not handed on."""


class RpcHandover:
    """The calls of ``paths`` on ``ds``: handed over to the replica that serves them
    (:meth:`hand_over`), or served here for the others (:meth:`serve`).  A replica does
    one or the other: the one that serves has the real handlers registered."""

    def __init__(self, ds: Datastore, store: Handover, paths: Sequence[str],
                 timeout: float) -> None:
        self.ds = ds
        self.store = store
        self.paths = tuple(paths)
        self.timeout = timeout

    def hand_over(self) -> None:
        """Serve ``paths`` here by handing each call over (replacing their handlers)."""
        for path in self.paths:
            self.ds.register_rpc(path, self._forward)

    def take_back(self) -> None:
        """Stop handing over (the real handlers are registered next)."""
        for path in self.paths:
            if self.ds.rpc_handler(path) == self._forward:
                self.ds.unregister_rpc(path)

    async def serve(self) -> None:
        """Answer the calls other replicas hand over (with the handlers registered)."""
        await self.store.answer(KIND, self._answer)

    async def stop_serving(self) -> None:
        await self.store.answer(KIND, None)

    async def _forward(self, call: RpcCall) -> RpcOutput:
        if _answering.get():
            raise OperationFailed(f"{call.path} is not served by this replica any more",
                                  app_tag="nfo-no-answer")
        who = call.session.identity
        body = json.dumps({"user": who.user, "groups": sorted(who.groups),
                           "internal": who.internal, "call": call.tree.print(Fmt.JSON)})
        reply: dict[str, Any] = json.loads(await self.store.ask(KIND, body, self.timeout))
        if "error" in reply:
            raise error_from_json(reply["error"])
        output: RpcOutput = reply["output"]
        return output

    async def _answer(self, body: str) -> str:
        token = _answering.set(True)
        try:
            ask = json.loads(body)
            who = Identity(str(ask["user"]), frozenset(ask["groups"]), bool(ask["internal"]))
            session = self.ds.session(who, per_request=True)
            try:
                output = await session.invoke(ask["call"], Fmt.JSON)
            finally:
                await session.close()
        except NfoError as e:
            return json.dumps({"error": error_to_json(e)})
        except Exception as e:
            log.exception("serving a call another replica handed over")
            return json.dumps({"error": error_to_json(OperationFailed(
                f"the replica serving the call failed: {e}"))})
        finally:
            _answering.reset(token)
        return json.dumps({"output": output})


def error_to_json(e: NfoError) -> dict[str, Any]:
    return {"class": type(e).__name__, "errors": [
        {"tag": d.tag, "message": d.message, "error_type": d.error_type, "path": d.path,
         "app_tag": d.app_tag, "info": dict(d.info)} for d in e.errors]}


def error_from_json(d: dict[str, Any]) -> NfoError:
    """The error as the serving replica raised it: its class (or the nearest one built
    like :class:`NfoError`) and every rpc-error of it."""
    details = [ErrorDetail(**e) for e in d["errors"]]
    found = getattr(errors, str(d.get("class")), NfoError)
    cls: type[NfoError] = (found if isinstance(found, type) and issubclass(found, NfoError)
                           else NfoError)
    while cls is not NfoError and "__init__" in vars(cls):
        cls = next(b for b in cls.__mro__[1:] if issubclass(b, NfoError))
    first = details[0]
    return cls(first.message, tag=first.tag, path=first.path, app_tag=first.app_tag,
               error_type=first.error_type, info=first.info, errors=details[1:])
