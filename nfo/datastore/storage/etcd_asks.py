"""Calls one replica hands over to another through etcd.

Some operations are served by one replica only: the workload manager's actions run on
the replica that leads the workload.  A replica that receives such a call asks for it
under ``ask/<kind>/<replica>/<id>``, bound to its presence lease; the replica that
answers that kind (:meth:`Asks.answer`) sees the key through its watch, runs the call
and puts ``answer/<replica>/<id>``, bound to the same lease; the asker sees the answer
through its own watch, and deletes both.  If the asker dies, its lease takes both keys
with it.  A replica that starts answering a kind also takes the asks already waiting
(those its predecessor left unanswered), so a call survives a change of leader; it may
then run twice, when the last leader ran it and died before it answered.

Bodies are text (JSON); what they mean is the caller's business
(:mod:`nfo.datastore.handover`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, unquote

from nfo.errors import NfoError, OperationFailed

from .etcd_client import Delete, EtcdClient, KeyValue, Put

__all__ = ["Asks"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class OnEtcd(Protocol):
    """Runs a call with the storage's etcd client (in its thread)."""

    def __call__(self, call: Callable[[EtcdClient], Coroutine[Any, Any, _T]]
                 ) -> Awaitable[_T]: ...


Answerer = Callable[[str], Awaitable[str]]


def _name(s: str) -> str:
    return quote(s, safe="")


class Asks:
    """The asks of one replica (``replica``), and the kinds it answers.  Everything runs
    on the replica's event loop; etcd is reached through ``on_etcd`` (the storage's
    client thread), the presence lease through ``lease``."""

    def __init__(self, on_etcd: OnEtcd, key: Callable[..., bytes],
                 lease: concurrent.futures.Future[int], replica: str) -> None:
        self._on_etcd = on_etcd
        self._key = key
        self._lease = lease
        self._me = _name(replica)
        self._pending: dict[str, asyncio.Future[str]] = {}
        """This replica's asks waiting for their answers, by id."""
        self._answering: dict[str, Answerer] = {}
        self._taken: set[bytes] = set()
        """Ask keys being answered here (or answered, until their asker deletes them)."""
        self._tasks: set[asyncio.Task[None]] = set()

    async def ask(self, kind: str, body: str, timeout: float) -> str:
        """The answer of the replica answering ``kind`` to ``body``; OperationFailed if
        none answers within ``timeout`` seconds."""
        ident = uuid.uuid4().hex
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[ident] = fut
        key = self._key("ask", _name(kind), self._me, ident)
        try:
            async with asyncio.timeout(timeout):
                lease = await asyncio.wrap_future(self._lease)
                value = json.dumps({"lease": lease, "body": body}).encode()
                await self._on_etcd(lambda c: c.put(key, value, lease=lease))
                return await fut
        except TimeoutError:
            raise OperationFailed(
                f"no replica answered a {kind} call within {timeout:g} s (the replica "
                "serving it may be changing)", app_tag="nfo-no-answer") from None
        finally:
            del self._pending[ident]
            answer = self._key("answer", self._me, ident)
            with contextlib.suppress(NfoError):
                await self._on_etcd(lambda c: c.txn([], [Delete(key), Delete(answer)],
                                                    retry=True))

    async def answer(self, kind: str, answerer: Answerer | None) -> None:
        """From now on, answer the asks of ``kind`` with ``answerer`` (None: no more),
        the asks already waiting first."""
        if answerer is None:
            self._answering.pop(kind, None)
            return
        self._answering[kind] = answerer
        under = self._key("ask", _name(kind)) + b"/"
        kvs, _ = await self._on_etcd(lambda c: c.read_prefix(under))
        for kv in kvs:
            try:
                asker, ident = kv.key[len(under):].decode().split("/")
            except ValueError:  # no UTF-8, or not <replica>/<id>
                log.warning("etcd key %r is not an ask: ignored", kv.key[:200])
                continue
            if await self._answered(asker, ident) is None:
                self._take(kind, kv.key, asker, ident, kv.value)

    async def _answered(self, asker: str, ident: str) -> KeyValue | None:
        key = self._key("answer", asker, ident)
        return await self._on_etcd(lambda c: c.get(key))

    def seen(self, kind: str, rest: list[str], key: bytes, value: bytes, put: bool) -> None:
        """A watch event on an ``ask`` or ``answer`` key (on the replica's loop)."""
        if kind == "answer":
            mine = put and len(rest) == 2 and rest[0] == self._me
            fut = self._pending.get(rest[1]) if mine else None
            if fut is not None and not fut.done():
                fut.set_result(value.decode(errors="replace"))
        elif not put:
            self._taken.discard(key)
        elif len(rest) == 3 and unquote(rest[0]) in self._answering:
            self._take(unquote(rest[0]), key, rest[1], rest[2], value)

    def _take(self, kind: str, key: bytes, asker: str, ident: str, value: bytes) -> None:
        if key in self._taken:
            return
        self._taken.add(key)
        task = asyncio.get_running_loop().create_task(
            self._run(kind, asker, ident, value), name=f"nfo-answer-{kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, kind: str, asker: str, ident: str, value: bytes) -> None:
        answerer = self._answering.get(kind)
        if answerer is None:
            return
        try:
            ask = json.loads(value)
            body, lease = str(ask["body"]), int(ask["lease"])
        except (ValueError, KeyError, TypeError):
            log.warning("a %s call of replica %s is not an ask: ignored", kind,
                        unquote(asker))
            return
        try:
            reply = await answerer(body)
        except Exception:
            log.exception("answering a %s call of replica %s", kind, unquote(asker))
            return
        key = self._key("answer", asker, ident)
        try:
            await self._on_etcd(lambda c: c.txn(
                [], [Put(key, reply.encode(), lease=lease)], retry=True))
        except NfoError as e:  # its lease is gone: so is the replica that asked
            log.warning("cannot answer a %s call of replica %s: %s", kind, unquote(asker), e)

    def close(self) -> None:
        self._answering.clear()
        for task in list(self._tasks):
            task.cancel()
