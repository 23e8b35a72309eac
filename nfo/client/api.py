"""The Python client of nfo's RESTCONF API, synchronous (:class:`Client`) and asyncio
(:class:`AsyncClient`), with the same methods.

Why two thin classes over :mod:`nfo.client.calls`: scripts want plain calls, the CLI's
live views and services want asyncio; each class only sends a :class:`Call` its way
(httpx), and everything else (paths, bodies, answers, waits) is shared.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import httpx

from nfo.client import calls as c
from nfo.client.config import ClientConfig
from nfo.client.errors import Unreachable, WaitFailed, WaitTimeout, raise_for_response

__all__ = ["CONFIG_ACTIONS", "FINAL_STATES", "AsyncClient", "Client", "Collection", "Watch",
           "reached"]

T = TypeVar("T")

FINAL_STATES = frozenset({"running", "failed", "terminated"})
CONFIG_ACTIONS = ("check-sync", "sync-to", "sync-from", "dry-run")
"""The actions on an instance whose network function nfo configures over NETCONF."""
_STUCK = {"running": {"failed"}, "failed": set(), "terminated": set()}
"""States a wait for the key cannot leave by itself (it fails at once)."""


def _config(config: ClientConfig | None, **flags: Any) -> ClientConfig:
    return config if config is not None else ClientConfig.resolve(**flags)


def _http_args(cfg: ClientConfig) -> dict[str, Any]:
    auth = (cfg.user or "", cfg.password or "") if cfg.user else None
    return {"base_url": cfg.base, "auth": auth, "verify": cfg.verify(),
            "timeout": cfg.timeout, "headers": {"Accept": c.JSON}}


def _request_args(call: c.Call) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if call.body is not None:
        args["content"] = json.dumps(call.body).encode()
        args["headers"] = {"Content-Type": call.content_type}
    return args


def _answer(call: c.Call, r: httpx.Response) -> Any:
    if r.status_code == 404 and call.missing_ok:
        return call.read(None)
    raise_for_response(r)
    return call.read(json.loads(r.content) if r.content else None)


@contextmanager
def _transport_errors(cfg: ClientConfig) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as e:
        raise Unreachable(f"cannot reach nfo at {cfg.base}: {e or type(e).__name__}") from None


def _state(inst: dict[str, Any] | None) -> str | None:
    return None if inst is None else inst.get("state", {}).get("oper-status")


def reached(name: str, want: str, inst: dict[str, Any] | None) -> bool:
    """True when ``inst`` is in ``want`` (``"gone"``: absent); raises when it cannot
    get there by itself."""
    if want == "gone":
        return inst is None
    if inst is None:
        raise WaitFailed(f"{name} does not exist", {})
    st = _state(inst)
    if st == want:
        return True
    if st in _STUCK.get(want, set()):
        reason = inst.get("state", {}).get("reason") or "no reason given"
        raise WaitFailed(f"{name} is {st}: {reason}", inst)
    return False


def _reached(name: str, want: str, inst: dict[str, Any] | None,
             progress: Callable[[dict[str, Any] | None], None] | None,
             end: float, timeout: float) -> bool:
    """One step of a wait: report, decide (see :func:`reached`), or time out."""
    if progress is not None:
        progress(inst)
    if reached(name, want, inst):
        return True
    if time.monotonic() >= end:
        raise WaitTimeout(f"{name} is {_state(inst) or 'gone'} after {timeout:g} s, "
                          f"not {want}", inst)
    return False


class Collection:
    """One list of the API (``catalog``, ``vims``, ``instances``): list, get, add,
    delete.  On the asyncio client each method returns an awaitable."""

    def __init__(self, do: Callable[[c.Call], Any], kind: c.Kind) -> None:
        self._do = do
        self.kind = kind

    def list(self, *, limit: int | None = None, offset: int | None = None,
             sort_by: str | None = None, direction: c.Direction | None = None,
             where: str | None = None, bindings: bool = False) -> Any:
        """Every entry, configuration and state (an empty list when there are none), as
        dicts, or with ``bindings`` as nfo.bindings objects (see :func:`c.as_bindings`).

        With any of the paging arguments, one page read on the server instead, as a
        :class:`c.Page` (its ``entries`` and the count ``remaining`` after them):
        ``where`` an XPath each entry must satisfy (``descriptor = 'fw'``), ``sort_by``
        a descendant to sort on (``name``, ``state/oper-status``), ``direction``
        ``"forwards"`` or ``"backwards"``, ``offset`` entries to skip (past the end:
        :class:`OutOfRange`), ``limit`` entries at most (docs/pagination.md)."""
        if (limit, offset, sort_by, direction, where) == (None,) * 5:
            return self._do(c.list_entries(self.kind, bindings=bindings))
        return self._do(c.list_page(self.kind, limit=limit, offset=offset, sort_by=sort_by,
                                    direction=direction, where=where, bindings=bindings))

    def get(self, key: str, *, bindings: bool = False) -> Any:
        """One entry, or None."""
        return self._do(c.get_entry(self.kind, key, bindings=bindings))

    def add(self, data: Any, *, comment: str | None = None) -> Any:
        """Create one or more entries (dicts or nfo.bindings objects) in one transaction;
        refused whole if any exists.  ``comment`` goes with the commit into the
        history."""
        return self._do(c.create_entries(self.kind, c.entries_of(self.kind, data),
                                         comment=comment))

    def update(self, key: str, changes: dict[str, Any]) -> Any:
        """Merge ``changes`` (members of the entry, e.g. ``{"admin-state": "disabled"}``)
        into an existing entry; NotFound when there is none."""
        return self._do(c.update_entry(self.kind, key, changes))

    def delete(self, key: str) -> Any:
        return self._do(c.delete_entry(self.kind, key))


class _Methods:
    """The operations, written once against ``_do`` (sync) / awaited ``_do`` (async)."""

    def _do(self, call: c.Call) -> Any:
        raise NotImplementedError

    def _collections(self) -> None:
        self.catalog = Collection(self._do, c.CATALOG)
        self.vims = Collection(self._do, c.VIMS)
        self.instances = Collection(self._do, c.INSTANCES)
        self.users = Collection(self._do, c.USERS)  # accounts: hashes are never returned

    def create_instance(self, name: str, descriptor: str, *, vim: str | None = None,
                        parameters: dict[str, Any] | None = None,
                        admin_state: str | None = None, description: str | None = None
                        ) -> Any:
        entry: dict[str, Any] = {"name": name, "descriptor": descriptor}
        if vim:
            entry["vim"] = vim
        if parameters:
            entry["parameter"] = [{"name": k, "value": str(v)} for k, v in parameters.items()]
        if admin_state:
            entry["admin-state"] = admin_state
        if description is not None:
            entry["description"] = description
        return self.instances.add(entry)

    def set_password(self, user: str, password: str) -> Any:
        """The account's ``set-password`` action (hashed by the server, never stored
        or returned in clear)."""
        return self._do(c.action(c.USERS, user, "set-password", {"password": password}))

    def restart(self, name: str) -> Any:
        return self._do(c.action(c.INSTANCES, name, "restart"))

    def redeploy(self, name: str, vim: str | None = None) -> Any:
        return self._do(c.action(c.INSTANCES, name, "redeploy", {"vim": vim} if vim else None))

    def config_action(self, name: str, action: str) -> Any:
        """One of the instance's configuration actions (docs/nf-config.md): ``check-sync``
        (``in-sync``, ``difference``), ``sync-to``, ``sync-from`` or ``dry-run``
        (``target``, ``edit``); its output as a dict."""
        if action not in CONFIG_ACTIONS:
            raise ValueError(f"not a configuration action: {action!r}")
        return self._do(c.action(c.INSTANCES, name, action))

    def history(self, limit: int = 20, before: int | None = None) -> Any:
        """The commits of running, newest first (at most ``limit``; older than revision
        ``before`` for the next page): dicts of ``revision`` (int), ``timestamp``,
        ``user``, ``comment`` and ``changes`` (their count)."""
        return self._do(c.history(limit=limit, before=before))

    def diff(self, revision: int | None = None) -> Any:
        """The changes commit ``revision`` made to running (``operation``, ``path``,
        ``value``, ``previous-value``, ``data``, ``after``), or, without a revision,
        the pending changes of the candidate: over plain RESTCONF (no login session)
        the shared candidate datastore, everyone's."""
        return self._do(c.diff(revision))

    def rollback(self, revision: int, comment: str | None = None) -> Any:
        """Make running what it was right after ``revision``, as a new commit with
        ``comment``; returns its revision, or None when nothing changed.  A revision
        the server no longer retains raises :class:`InvalidData` (app_tag
        ``nfo-revision-not-retained``)."""
        return self._do(c.rollback(revision, comment=comment))


class Client(_Methods):
    """Synchronous client: ``with Client(url=..., user=..., password=...) as nfo: ...``
    (or ``Client()`` to take the settings from the environment and the config file)."""

    def __init__(self, config: ClientConfig | None = None, **flags: Any) -> None:
        self.config = _config(config, **flags)
        self._http = httpx.Client(**_http_args(self.config))
        self._collections()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _do(self, call: c.Call) -> Any:
        with _transport_errors(self.config):
            r = self._http.request(call.method, call.target, **_request_args(call))
        return _answer(call, r)

    def wait(self, name: str, state: str = "running", *, timeout: float = 300.0,
             interval: float = 0.5,
             progress: Callable[[dict[str, Any] | None], None] | None = None
             ) -> dict[str, Any] | None:
        """Until ``name`` is in ``state`` (``"gone"``: deleted and cleaned up); returns
        it as last read.  Raises :class:`WaitFailed` at once when it reaches a state it
        cannot leave by itself, :class:`WaitTimeout` after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while True:
            inst: dict[str, Any] | None = self.instances.get(name)
            if _reached(name, state, inst, progress, end, timeout):
                return inst
            time.sleep(interval)

    def watch(self, names: abc.Collection[str] | None = None, *, since: str | None = None,
              reconnect: float = 1.0) -> Watch:
        """NF instance state changes as they happen (``time``, ``name``, ``old-status``,
        ``new-status``, ``reason``), of ``names`` or of every instance, from the
        server's ``nfo`` stream; ``since`` (RFC 3339) replays from then.  A lost
        connection is made again after ``reconnect`` seconds, resuming after the last
        change delivered; nothing is missed or repeated.  Runs until the caller stops
        iterating or calls :meth:`Watch.close`."""
        return Watch(self._http, self.config, names, since, reconnect)


class Watch(Iterator[dict[str, Any]]):
    """A running :meth:`Client.watch`: an iterator of changes that :meth:`close` ends
    (``with nfo.watch() as changes:`` closes it, and its connection, on leaving).

    ``close`` may be called from another thread or from a signal handler while the
    iteration waits for the server: it sets a flag and shuts the connection's socket
    down, so the blocked read returns at once and the iteration ends without an
    exception thrown into httpx at an arbitrary point (which can leave its locks held).
    """

    _STEP = 0.05

    def __init__(self, http: httpx.Client, config: ClientConfig,
                 names: abc.Collection[str] | None, since: str | None,
                 reconnect: float) -> None:
        self._http, self._config, self._names = http, config, names
        self._reconnect = reconnect
        self._resume = c.Resume(since)
        self._closed = False
        self._sock: socket.socket | None = None
        self._changes = self._run()

    def __next__(self) -> dict[str, Any]:
        return next(self._changes)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self._changes.close()   # this thread, not iterating: the stream is closed now

    def close(self) -> None:
        self._closed = True
        sock = self._sock
        if sock is not None:
            with suppress(OSError):   # the base class's: an SSLSocket's own drops its state
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    @property
    def closed(self) -> bool:
        return self._closed

    def _run(self) -> Generator[dict[str, Any], None, None]:
        while not self._closed:
            try:
                yield from self._connection()
            except httpx.TransportError:
                pass
            finally:
                self._sock = None
            end = time.monotonic() + self._reconnect
            while not self._closed and (left := end - time.monotonic()) > 0:
                time.sleep(min(left, self._STEP))

    def _connection(self) -> Iterator[dict[str, Any]]:
        resume = self._resume
        with self._http.stream("GET", c.STATE_STREAM,
                               **_stream_args(self._config, resume)) as r:
            stream = r.extensions.get("network_stream")
            self._sock = stream.get_extra_info("socket") if stream is not None else None
            if self._closed:    # closed while this connection was being made
                return
            if r.status_code >= 400:
                r.read()
                raise_for_response(r)
            resume.connected(r.headers.get("date"))
            parser = c.SseParser()
            for line in r.iter_lines():
                ev = _deliver(parser, resume, line, self._names)
                if ev is not None:
                    yield ev


def _stream_args(cfg: ClientConfig, resume: c.Resume) -> dict[str, Any]:
    return {"params": list(resume.params()),
            "timeout": httpx.Timeout(cfg.timeout, read=None)}


def _deliver(parser: c.SseParser, resume: c.Resume, line: str,
             names: abc.Collection[str] | None) -> dict[str, Any] | None:
    payload = parser.feed(line)
    ev = None if payload is None else c.state_change(payload)
    if ev is None or not resume.accept(ev):
        return None
    return ev if names is None or ev.get("name") in names else None


class AsyncClient(_Methods):
    """asyncio client: ``async with AsyncClient(...) as nfo: await nfo.instances()``."""

    def __init__(self, config: ClientConfig | None = None, **flags: Any) -> None:
        self.config = _config(config, **flags)
        self._http = httpx.AsyncClient(**_http_args(self.config))
        self._collections()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    def _do(self, call: c.Call) -> Awaitable[Any]:
        async def run() -> Any:
            with _transport_errors(self.config):
                r = await self._http.request(call.method, call.target,
                                            **_request_args(call))
            return _answer(call, r)
        return run()

    async def wait(self, name: str, state: str = "running", *, timeout: float = 300.0,
                   interval: float = 0.5,
                   progress: Callable[[dict[str, Any] | None], None] | None = None
                   ) -> dict[str, Any] | None:
        """See :meth:`Client.wait`."""
        end = time.monotonic() + timeout
        while True:
            inst: dict[str, Any] | None = await self.instances.get(name)
            if _reached(name, state, inst, progress, end, timeout):
                return inst
            await asyncio.sleep(interval)

    async def watch(self, names: abc.Collection[str] | None = None, *, since: str | None = None,
                    reconnect: float = 1.0) -> AsyncIterator[dict[str, Any]]:
        """See :meth:`Client.watch`."""
        resume = c.Resume(since)
        while True:
            try:
                async with self._http.stream("GET", c.STATE_STREAM,
                                             **_stream_args(self.config, resume)) as r:
                    if r.status_code >= 400:
                        await r.aread()
                        raise_for_response(r)
                    resume.connected(r.headers.get("date"))
                    parser = c.SseParser()
                    async for line in r.aiter_lines():
                        ev = _deliver(parser, resume, line, names)
                        if ev is not None:
                            yield ev
            except httpx.TransportError:
                pass
            await asyncio.sleep(reconnect)
