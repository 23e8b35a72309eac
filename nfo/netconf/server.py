"""NETCONF over SSH (RFC 6242) with asyncssh: the ``netconf`` subsystem only.

Authentication: passwords (``UserStore.login``, through the login throttle shared
with RESTCONF; a guess it refuses unchecked fails like a wrong one) and public keys
(``UserStore.authorized_keys``; an unauthorised key is a failed login on record), at
most :data:`MAX_AUTH_ATTEMPTS` failures per connection, each failure answered after a
growing delay, a login timeout.  One
datastore :class:`~nfo.datastore.Session` per SSH session, closed (locks
released) when the channel ends.  Dead peers are found by SSH keepalives; a
session with no request and no notification subscription for ``idle_timeout``
seconds is closed.  Connections are accepted by nfo's own accept loop and bounded,
and sessions capped, by :mod:`nfo.netconf.connections`; a message larger than
``max_message`` or unfinished after ``message_timeout`` seconds is answered with an
``rpc-error`` (``too-big``, ``resource-denied``) and ends its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import types
from collections.abc import Coroutine, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from nfo.datastore import Datastore
from nfo.datastore.notifications import (
    Notification,
    NotificationSubscription,
    ReplayComplete,
    SubscriptionComplete,
)
from nfo.datastore.users import UserStore
from nfo.errors import NfoError, ResourceDenied, Throttled, TooBig
from nfo.netconf.connections import SessionLimits, SessionSlot, SshConnections
from nfo.netconf.messages import (
    BASE_1_1,
    HelloError,
    client_hello,
    error_reply,
    message_id,
    notification_message,
    server_hello,
    status_notification,
)
from nfo.netconf.monitoring import Monitor, SessionInfo
from nfo.netconf.protocol import Call, NetconfContext, handle, prepare
from nfo.protocol.limits import NOTIFICATION_BATCH, Listener, Reclaimer
from nfo.wire import framing

__all__ = ["MAX_AUTH_ATTEMPTS", "NetconfOptions", "NetconfServer", "SessionLimits",
           "start_netconf"]

log = logging.getLogger(__name__)

MAX_AUTH_ATTEMPTS = 3
AUTH_BACKOFF = 0.5
"""Seconds before a failed authentication is answered, doubled at each failure."""
HOST_KEY_FILE = "ssh_host_ed25519_key"
FRONT_END = "netconf"
"""How failed logins of this front end are named in the log."""
MESSAGE_TIMEOUT = 60.0
"""Seconds from a message's first byte to its end, by default (docs/limits.md)."""


_T = TypeVar("_T")
_Work = bytes | Call | asyncio.Task[bytes]
"""A queued rpc: its message, its parsed call, or the task finishing one already started."""


@types.coroutine
def _resume(coro: Coroutine[Any, Any, bytes], waiting: Any) -> Generator[Any, Any, bytes]:
    """The rest of ``coro``, whose first step ran outside any task and yielded
    ``waiting`` (the future it waits on), as a task runs it: what the task sends or
    throws in goes on to ``coro``."""
    while True:
        try:
            value = yield waiting
        except BaseException as e:
            try:
                waiting = coro.throw(e)
            except StopIteration as stop:
                result: bytes = stop.value
                return result
        else:
            try:
                waiting = coro.send(value)
            except StopIteration as stop:
                result = stop.value
                return result


async def _finish(coro: Coroutine[Any, Any, bytes], waiting: Any) -> bytes:
    return await _resume(coro, waiting)


def load_host_key(key_dir: Path) -> asyncssh.SSHKey:
    """The server's ed25519 host key, generated once and kept with mode 0600."""
    key_dir.mkdir(parents=True, exist_ok=True)
    path = key_dir / HOST_KEY_FILE
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519")
        data = key.export_private_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    os.chmod(path, 0o600)
    return asyncssh.read_private_key(str(path))


@dataclass
class NetconfOptions:
    """Where ``nfo serve`` listens for NETCONF, and its limits (docs/limits.md)."""

    host: str = "127.0.0.1"
    port: int = 8830
    max_sessions: int = SessionLimits.max_sessions
    max_sessions_per_user: int = SessionLimits.max_sessions_per_user
    max_startups: int = SessionLimits.max_startups
    login_timeout: float = SessionLimits.login_timeout
    max_message: int = framing.DEFAULT_MAX_MESSAGE
    message_timeout: float = MESSAGE_TIMEOUT

    @property
    def max_connections(self) -> int:
        """SSH connections at most: pending ones and those holding sessions."""
        return self.max_startups + self.max_sessions


@dataclass
class NetconfServer:
    """What :func:`start_netconf` returns."""

    ds: Datastore
    users: UserStore
    monitor: Monitor
    """RFC 6022 state, shared by every server of the datastore."""
    host: str
    port: int = 0
    hello_timeout: float = 30.0
    max_message: int = framing.DEFAULT_MAX_MESSAGE
    message_timeout: float = MESSAGE_TIMEOUT
    idle_timeout: float = 3600.0
    auth_backoff: float = AUTH_BACKOFF
    limits: SessionLimits = field(default_factory=SessionLimits)
    reclaimer: Reclaimer = field(default_factory=Reclaimer)
    own_reclaimer: bool = True
    table: SshConnections | None = None
    """The connections and sessions under :attr:`limits` (made by :func:`start_netconf`)."""
    _listener: Listener | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _channels: set[_NetconfChannel] = field(default_factory=set)
    _conns: set[asyncssh.SSHServerConnection] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def stop(self) -> None:
        if self._listener is not None:
            self.monitor.detach()
            self._listener.close()
            self._listener = None
        for ch in list(self._channels):
            ch.shutdown("other")
        conns = set(self._conns)
        if self.table is not None:
            conns.update(self.table.close())
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.wait_closed()
        if self.table is not None:
            await self.table.wait_closed()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.own_reclaimer:
            self.reclaimer.close()


class _SSHServer(asyncssh.SSHServer):
    def __init__(self, srv: NetconfServer) -> None:
        self._srv = srv
        self._conn: asyncssh.SSHServerConnection | None = None
        self._failures = 0
        self._peer = ""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._srv._conns.add(conn)
        peer = conn.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else ""

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._srv._conns.discard(self._conn)

    def _failed(self) -> None:
        self._failures += 1
        if self._failures >= MAX_AUTH_ATTEMPTS and self._conn is not None:
            self._conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                                  "too many authentication failures")

    def begin_auth(self, username: str) -> bool:
        try:
            keys = self._srv.users.authorized_keys(username)
        except NfoError:
            keys = []
        if keys and self._conn is not None:
            try:
                self._conn.set_authorized_keys(asyncssh.import_authorized_keys("\n".join(keys)))
            except (asyncssh.KeyImportError, ValueError):
                log.warning("unusable authorized keys for user %s", username)
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        try:
            ok = await self._srv.users.login(username, password, self._peer, FRONT_END)
        except Throttled:
            ok = False
        if not ok:
            await asyncio.sleep(self._srv.auth_backoff * 2 ** self._failures)
            self._failed()
        return ok

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # Only reached when no authorized key matched (asyncssh checks those first).
        self._srv.users.login_failed(username, self._peer, FRONT_END,
                                     f"public key {key.get_algorithm()} not authorised")
        self._failed()
        return False

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int) -> bool:
        return False

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        return False

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        assert self._conn is not None and self._srv.table is not None
        user = str(self._conn.get_extra_info("username") or "?")
        peer = self._conn.get_extra_info("peername") or ("",)
        slot = self._srv.table.open_session(self._conn, user)  # or ChannelOpenError
        return _NetconfChannel(self._srv, user, slot, str(peer[0]))


class _NetconfChannel(asyncssh.SSHServerSession[bytes]):
    def __init__(self, srv: NetconfServer, user: str, slot: SessionSlot,
                 host: str = "") -> None:
        self._srv = srv
        self._user = user
        self._slot = slot
        self._host = host
        self._info: SessionInfo | None = None
        self._reason = "dropped"
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_request = 0.0
        self._busy = False
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._decoder = framing.Decoder(srv.max_message)
        self._queue: asyncio.Queue[tuple[int, _Work] | None] = asyncio.Queue()
        """What the worker is to do, in order, with each rpc's size in bytes."""
        self._ctx: NetconfContext | None = None
        self._hello_timer: asyncio.TimerHandle | None = None
        self._chunked = False
        self._started = False
        self._done = False
        self._notifier: asyncio.Task[None] | None = None
        self._paused = False
        self._message_since: float | None = None
        """When the message being received began (None: between messages)."""
        self._message_timer: asyncio.TimerHandle | None = None

    # -- asyncssh callbacks --
    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "netconf"

    def shell_requested(self) -> bool:
        return False

    def exec_requested(self, command: str) -> bool:
        return False

    def pty_requested(self, term_type: str, term_size: Any, term_modes: Any) -> bool:
        # Granted and ignored (no line editor, no echo): OpenSSH clients run with -tt
        # (scrapli's system transport) close the channel when the PTY is refused.
        return True

    def session_started(self) -> None:
        self._started = True
        session = self._srv.ds.session(self._user, on_kill=lambda: self.shutdown("killed"))
        self._ctx = NetconfContext(session, self._srv.ds.schema)
        self._srv._channels.add(self)
        self._send(server_hello(self._srv.ds.schema, session.id))
        self._info = SessionInfo(self._ctx, self._user, self._host)
        self._srv.monitor.started(self._info)
        loop = asyncio.get_running_loop()
        self._hello_timer = loop.call_later(self._srv.hello_timeout, self._hello_expired)
        self._last_request = loop.time()
        if self._srv.idle_timeout > 0:
            self._idle_timer = loop.call_later(self._srv.idle_timeout, self._idle_check)
        self._srv.spawn(self._worker())

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if self._done:
            return
        try:
            self._decoder.feed(data)
            completed = self._drain_decoder()
        except framing.MessageTooBig as e:
            log.info("netconf session closed: %s", e)
            self._cut(TooBig(f"the message exceeds the limit of {e.limit} bytes"), e.head)
            return
        except framing.FramingError as e:
            log.info("netconf session closed: %s", e)
            self.shutdown("other")
            return
        if self._done:
            return
        self._time_message(completed)
        if self._queue.qsize() > 32 and self._chan is not None:
            self._chan.pause_reading()
            self._paused = True

    def _time_message(self, completed: bool) -> None:
        """A message must end within ``message_timeout`` seconds of its first byte."""
        if not self._decoder.partial:
            self._message_since = None
            return
        loop = asyncio.get_running_loop()
        if self._message_since is None or completed:
            self._message_since = loop.time()
        if self._message_timer is None and self._srv.message_timeout > 0:
            self._message_timer = loop.call_later(self._srv.message_timeout,
                                                  self._message_check)

    def _message_check(self) -> None:
        self._message_timer = None
        since = self._message_since
        if self._done or since is None:
            return
        loop = asyncio.get_running_loop()
        due = since + self._srv.message_timeout
        if self._paused or loop.time() < due:  # while we do not read, the client waits
            self._message_timer = loop.call_later(
                self._srv.message_timeout if self._paused else due - loop.time(),
                self._message_check)
            return
        log.info("netconf session closed: a message unfinished after %g s",
                 self._srv.message_timeout)
        self._cut(ResourceDenied(f"the message was not finished within "
                                 f"{self._srv.message_timeout:g} s", error_type="transport"),
                  self._decoder.head())

    def _cut(self, err: NfoError, head: bytes) -> None:
        """End the session over a message that will never be read: an rpc-error (once
        the hello is over), then close."""
        ctx = self._ctx
        if ctx is not None and self._hello_timer is None and not self._done:
            ctx.in_bad_rpcs += 1
            ctx.out_rpc_errors += 1
            self._send(error_reply(err, message_id(head), self._srv.ds.schema.namespace_of))
        self.shutdown("other")

    def _drain_decoder(self) -> bool:
        """Queue the messages the decoder completed; whether there was any."""
        completed = False
        while (msg := self._decoder.next()) is not None:
            completed = True
            if self._hello_timer is not None:
                # The first message is the client's hello: it decides the framing.
                self._hello_timer.cancel()
                self._hello_timer = None
                try:
                    base, _caps = client_hello(msg)
                except HelloError as e:
                    log.info("netconf hello refused: %s", e)
                    self._srv.monitor.bad_hello()
                    self.shutdown("bad-hello")
                    return completed
                assert self._ctx is not None
                self._ctx.base = base
                self._chunked = self._decoder.chunked = base == BASE_1_1
                continue
            self._last_request = asyncio.get_running_loop().time()
            if self._busy or self._queue.qsize():
                self._queue.put_nowait((len(msg), msg))
            else:
                self._start(msg)
            if self._done:
                break
        return completed

    def _start(self, msg: bytes) -> None:
        """An rpc that arrives while the session is idle: a read (or a refusal) is
        answered here, in the receive path, without a turn through the worker; a read
        that has to wait (on a worker thread) is finished by a task the worker awaits
        in its turn, and any other operation is queued for the worker."""
        assert self._ctx is not None
        try:
            call = prepare(self._ctx, msg)
            if isinstance(call, bytes):
                self._answered(len(msg), call)
                return
            if not call.eager:
                self._queue.put_nowait((len(msg), call))
                return
            coro = call.run()
            try:
                waiting = coro.send(None)
            except StopIteration as done:
                self._answered(len(msg), done.value)
                return
            self._queue.put_nowait((len(msg), self._srv.spawn(_finish(coro, waiting))))
        except Exception:
            log.exception("netconf session failed")
            self.shutdown("other")

    def _answered(self, size: int, reply: bytes) -> None:
        """Send the reply of an rpc of ``size`` bytes, then what follows from it."""
        assert self._ctx is not None
        ctx = self._ctx
        self._send(reply)
        self._srv.reclaimer.note(size + len(reply))
        sub = ctx.subscription
        if sub is not None and self._notifier is None and not self._done:
            # Started after the <ok/> went out, so it precedes any notification.
            self._notifier = asyncio.get_running_loop().create_task(self._notify(sub))
        if ctx.close_requested:
            self.shutdown("closed")

    def eof_received(self) -> bool:
        self.shutdown()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.shutdown()

    # -- internals --
    def _hello_expired(self) -> None:
        self._hello_timer = None
        log.info("netconf client sent no hello in time")
        self.shutdown("timeout")

    def _idle_check(self) -> None:
        """Close a session that sent nothing for ``idle_timeout`` seconds since its last
        request ended, unless it is waiting for notifications."""
        loop = asyncio.get_running_loop()
        ctx = self._ctx
        due = self._last_request + self._srv.idle_timeout
        subscribed = ctx is not None and ctx.subscription is not None
        if subscribed or self._busy or loop.time() < due or not self._queue.empty():
            self._idle_timer = loop.call_later(
                max(due - loop.time(), 0.05) if not subscribed else self._srv.idle_timeout,
                self._idle_check)
            return
        self._idle_timer = None
        log.info("netconf session %s idle for %ss: closed", ctx.session.id if ctx else "?",
                 self._srv.idle_timeout)
        self.shutdown("timeout")

    def _send(self, *messages: bytes) -> None:
        # One synchronous write of whole framed messages: replies (from the worker) and
        # notifications (from the notifier) never interleave inside a message.
        if self._chan is not None and not self._done:
            try:
                self._chan.write(framing.encode(messages[0], self._chunked)
                                 if len(messages) == 1 else
                                 b"".join(framing.encode(m, self._chunked) for m in messages))
            except BrokenPipeError:  # the client closed the channel; its close is under way
                self.shutdown()

    def shutdown(self, reason: str = "dropped") -> None:
        """End the session (idempotent): the worker closes the datastore session.
        ``reason`` is RFC 6470's termination-reason."""
        if self._done:
            return
        self._done = True
        self._reason = reason
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._message_timer is not None:
            self._message_timer.cancel()
            self._message_timer = None
        self._srv.reclaimer.note(self._decoder.buffered)
        self._decoder.clear()
        self._slot.release()
        self._queue.put_nowait(None)
        if self._chan is not None:
            self._chan.close()

    async def _worker(self) -> None:
        assert self._ctx is not None
        ctx = self._ctx
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    break
                size, work = item
                if self._done:
                    if isinstance(work, asyncio.Task):
                        await work  # started in the receive path: ends before the session
                    break
                if self._paused and self._queue.qsize() <= 8 and self._chan is not None:
                    self._chan.resume_reading()
                    self._paused = False
                    if self._message_since is not None:
                        self._message_since = asyncio.get_running_loop().time()
                self._busy = True
                try:
                    if isinstance(work, bytes):
                        reply = await handle(ctx, work)
                    elif isinstance(work, Call):
                        reply = await work.run()
                    else:
                        reply = await work
                finally:
                    self._busy = False
                    self._last_request = asyncio.get_running_loop().time()
                self._answered(size, reply)
                # an rpc and its reply are not kept while the session waits for the next
                del item, work, reply
                if self._done:
                    break
        except Exception:
            log.exception("netconf session failed")
            self.shutdown("other")
        finally:
            self._srv._channels.discard(self)
            await self._stop_notifier()
            with contextlib.suppress(NfoError):
                await ctx.session.close()
            if self._info is not None:
                self._srv.monitor.ended(self._info, self._reason, ctx.session.killed_by)

    async def _stop_notifier(self) -> None:
        assert self._ctx is not None
        if self._ctx.subscription is not None:
            self._ctx.subscription.close()
        task = self._notifier
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._notifier = None

    async def _notify(self, sub: NotificationSubscription) -> None:
        """Deliver one subscription's events on this session until it or the session ends."""
        assert self._ctx is not None
        ctx = self._ctx
        batch: list[bytes] = []
        try:
            async for ev in sub:
                if self._done:
                    break
                if isinstance(ev, Notification):
                    batch.append(notification_message(
                        ev.event_time, ev.render(self._srv.ds.schema, "xml")))
                    ctx.out_notifications += 1
                elif isinstance(ev, ReplayComplete):
                    batch.append(status_notification("replayComplete"))
                elif isinstance(ev, SubscriptionComplete):
                    batch.append(status_notification("notificationComplete"))
                if sub.backlog and len(batch) < NOTIFICATION_BATCH:
                    continue
                # a backlog goes out in few writes, and between them the loop notices a
                # connection lost meanwhile (else asyncio warns on every further write)
                if batch:
                    self._send(*batch)
                    batch = []
                await asyncio.sleep(0)
        except NfoError as e:
            log.info("netconf notification subscription ended: %s", e.message)
        except Exception:
            log.exception("netconf notification delivery failed")
        finally:
            sub.close()
            if ctx.subscription is sub:
                # The subscription is over (stop time or overflow): a new one may start.
                ctx.subscription = None
                self._notifier = None


async def start_netconf(ds: Datastore, users: UserStore, host: str = "127.0.0.1",
                        port: int = 830, key_dir: Path | str = ".", *,
                        hello_timeout: float = 30.0,
                        login_timeout: float = SessionLimits.login_timeout,
                        max_message: int = framing.DEFAULT_MAX_MESSAGE,
                        message_timeout: float = MESSAGE_TIMEOUT,
                        idle_timeout: float = 3600.0, keepalive_interval: float = 60.0,
                        keepalive_count_max: int = 3,
                        auth_backoff: float = AUTH_BACKOFF,
                        max_sessions: int = SessionLimits.max_sessions,
                        max_sessions_per_user: int = SessionLimits.max_sessions_per_user,
                        max_startups: int = SessionLimits.max_startups,
                        monitor: Monitor | None = None,
                        reclaimer: Reclaimer | None = None) -> NetconfServer:
    """Listen for NETCONF over SSH; ``port`` 0 picks a free port (see ``.port``).

    ``idle_timeout`` and ``message_timeout`` 0 disable those checks; a peer that leaves
    ``keepalive_count_max`` keepalives in a row unanswered is disconnected.  The limits
    are described in docs/limits.md.  ``monitor``: the datastore's :class:`Monitor`,
    which every server of one datastore must share (it serves ``netconf-state``); None
    makes one for this server alone.  ``reclaimer``: the process's (``nfo serve`` shares
    one between its front ends), else one of its own."""
    limits = SessionLimits(max_sessions, max_sessions_per_user, max_startups, login_timeout)
    srv = NetconfServer(ds, users, monitor or Monitor(ds), host, port, hello_timeout,
                        max_message, message_timeout, idle_timeout, auth_backoff, limits,
                        reclaimer or Reclaimer(), reclaimer is None)
    key = load_host_key(Path(key_dir))
    options = await asyncssh.SSHServerConnectionOptions.construct(
        config=(), server_factory=lambda: _SSHServer(srv),
        server_host_keys=[key], encoding=None, login_timeout=login_timeout,
        allow_pty=True, line_editor=False, agent_forwarding=False, x11_forwarding=False,
        kbdint_auth=False, gss_host=None, keepalive_interval=keepalive_interval,
        keepalive_count_max=keepalive_count_max,
    )
    try:
        sockets = Listener.bind(host, port)
    except OSError as e:
        raise NfoError(f"NETCONF could not listen on {host}:{port}: {e.strerror or e}") from e
    srv.table = SshConnections(limits, options)
    srv._listener = Listener("NETCONF", sockets, srv.table.admit, shed=srv.table.shed)
    srv.monitor.attach()
    srv._listener.start()
    srv.port = srv._listener.port
    return srv
