"""YANG notifications: validation, a durable replay log and event streams.

Drivers and the datastore report events as YANG notification instances.  A
client learns about them through event streams (RFC 5277 for NETCONF, RFC 8040
section 6 for RESTCONF), optionally asking to replay what happened since a
start time before switching to live delivery.  This module is the one place
where that happens, so both front ends share the same semantics:

* :meth:`NotificationHub.publish` validates a notification with libyang
  (types, mandatory nodes, leafrefs against the current data), logs it durably
  in the storage backend and hands it to every matching live subscription.
* :meth:`NotificationHub.subscribe` opens a :class:`NotificationSubscription`,
  an async iterator that replays logged notifications from ``start`` (then
  yields :class:`ReplayComplete`), continues live and, with ``stop``, ends
  with :class:`SubscriptionComplete`.  Replay and live delivery are joined by
  sequence number, so nothing is lost or duplicated at the seam.
* Streams other than ``NETCONF`` select notifications by the module of their
  top node; a subscription may also carry an XPath filter.  ``nfo`` (nf-instance
  state changes) is defined with ``NETCONF`` wherever its module is, so every
  process that opens the log knows both before it logs anything.

The replay log (:mod:`nfo.datastore.notiflog`) is indexed by stream, and each
stream keeps its own number of notifications, so a stream added later can still
replay older events of its modules and a busy stream never evicts another's
history.  A subscriber that does not keep up never slows the publisher down:
once its bounded queue is full it is dropped and its consumer gets a
``resource-denied`` error.

Everything here runs on the event loop thread; ``publish`` is synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from nfo.datastore.nacm import Access, Identity
from nfo.datastore.notiflog import DEFAULT_KEEP, NotificationLog
from nfo.datastore.storage.base import NotificationRecord, Storage
from nfo.errors import (
    DataExists,
    InvalidValue,
    MalformedMessage,
    MissingElement,
    NfoError,
    OperationFailed,
    OperationNotSupported,
    ResourceDenied,
)
from nfo.schema import Fmt, Operation, OpKind, Schema, Tree, parse_path
from nfo.schema.paths import schema_paths

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_QUEUE_SIZE",
    "NETCONF_STREAM",
    "NFO_STREAM",
    "Checked",
    "Notification",
    "NotificationEvent",
    "NotificationHub",
    "NotificationSubscription",
    "ReplayComplete",
    "Stream",
    "StreamInfo",
    "SubscriptionComplete",
]

log = logging.getLogger(__name__)

NETCONF_STREAM = "NETCONF"
"""The default stream (RFC 5277 section 3.2.3): every notification of every module."""

NFO_STREAM = "nfo"
"""nf-instance state changes: the notifications of module ``nfo-instances``."""

_NFO_MODULE = "nfo-instances"

DEFAULT_QUEUE_SIZE = 10_000
"""Live notifications a subscription may hold unread before it is dropped."""

_REPLAY_SLICE = 256
"""Stored records a replay reads before it lets other tasks run."""


# -- values -------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One logged notification."""

    seq: int
    """Position in the replay log; increases with every published notification."""
    event_time: float
    """Unix seconds."""
    module: str
    """Module of the top node of the notification tree (the stream filter key)."""
    path: str
    """Data path of the notification node, e.g. ``/nfo-test:bell`` or, for one
    nested in a list, ``/m:devices/device[name='d1']/alarm``."""
    content: str
    """RFC 7951 JSON of the notification tree (parents of a nested notification
    included), as printed by libyang, without an eventTime envelope."""

    def render(self, schema: Schema, fmt: str) -> str:
        """The notification tree in ``fmt`` (``"json"`` or ``"xml"``)."""
        out = _encoding(fmt)
        with _parse_notification(schema, self.content, Fmt.JSON,
                                 "reading a logged notification") as op:
            return op.tree.print(out)


@dataclass(frozen=True)
class ReplayComplete:
    """Marks the end of the replayed part of a subscription (RFC 5277 replayComplete)."""


@dataclass(frozen=True)
class SubscriptionComplete:
    """The stop time was reached; the iteration ends next (RFC 5277 notificationComplete)."""


NotificationEvent = Notification | ReplayComplete | SubscriptionComplete
"""What a :class:`NotificationSubscription` yields."""


@dataclass(frozen=True)
class Stream:
    """An event stream: a named view over the notification log."""

    name: str
    description: str
    modules: frozenset[str] | None
    """Modules whose notifications the stream carries; None for every module."""
    replay_support: bool = True
    keep: int = DEFAULT_KEEP
    """Notifications kept for replay (the newest; up to 1% more between prunes)."""

    def carries(self, module: str) -> bool:
        return self.modules is None or module in self.modules


@dataclass(frozen=True)
class StreamInfo:
    """A stream as listings describe it."""

    name: str
    description: str
    replay_support: bool
    first_event: float | None
    """Event time of the oldest notification the stream can replay (None: none logged)."""


# -- libyang helpers ----------------------------------------------------------


def _encoding(fmt: str) -> Fmt:
    try:
        return Fmt(fmt)
    except ValueError:
        raise MalformedMessage(f"unknown notification encoding {fmt!r}") from None


def _parse_notification(schema: Schema, text: str | bytes, fmt: str,
                        what: str) -> Operation:
    """Parse one YANG notification strictly (unknown nodes and bad values fail here);
    nothing else is validated until :meth:`Operation.validate`."""
    return Operation.parse(schema, text, _encoding(fmt), OpKind.NOTIFICATION, what=what)


def _envelope(module: str, path: str, content: str) -> str:
    return json.dumps({"module": module, "path": path, "data": content}, separators=(",", ":"))


def _from_record(rec: NotificationRecord) -> Notification | None:
    try:
        env = json.loads(rec.content)
        return Notification(
            seq=rec.seq, event_time=rec.timestamp, module=str(env["module"]),
            path=str(env["path"]), content=str(env["data"]),
        )
    except (ValueError, KeyError, TypeError):
        log.warning("notification log record %d is malformed; skipped", rec.seq)
        return None


def _close_iter(it: Iterator[Any] | None) -> None:
    close = getattr(it, "close", None)
    if callable(close):
        close()


# -- the hub ------------------------------------------------------------------


@dataclass
class Checked:
    """A validated notification not yet published; ``discard`` frees it unpublished.

    One nfo built itself may come as ``text`` alone (JSON as libyang prints it, of the
    notification at ``path`` of ``module``); it is parsed only for a live subscriber
    that needs its tree (an XPath filter, access control)."""

    op: Operation | None
    text: str | None = None
    module: str = ""
    path: str = ""

    def discard(self) -> None:
        self.text = None
        if self.op is not None:
            self.op.free()
            self.op = None


class NotificationHub:
    """Publishes notifications into the replay log and to live subscribers."""

    def __init__(
        self, schema: Schema, storage: Storage, data_tree: Callable[[], Tree], *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        access: Callable[[Identity], Access] | None = None,
        retention: Mapping[str, int] | None = None,
    ) -> None:
        """``data_tree()`` returns the current data (read only), against which
        leafrefs in notifications are checked; ``access`` tells what a subscriber may
        receive (every subscriber gets everything without it); ``retention`` how many
        notifications each of ``NETCONF`` and ``nfo`` keeps for replay (default
        :data:`DEFAULT_KEEP`)."""
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.schema = schema
        self.access = access
        self._data_tree = data_tree
        self._queue_size = queue_size
        self._log = NotificationLog(storage)
        self._streams: dict[str, Stream] = {}
        self._subs: set[NotificationSubscription] = set()
        self._closed = False
        keep = dict(retention or {})
        self._define(Stream(NETCONF_STREAM, "default NETCONF event stream", None,
                            keep=keep.pop(NETCONF_STREAM, DEFAULT_KEEP)))
        if schema.implemented(_NFO_MODULE):
            self.add_stream(NFO_STREAM, "nf-instance state changes", [_NFO_MODULE],
                            keep=keep.pop(NFO_STREAM, DEFAULT_KEEP))
        if keep:
            raise InvalidValue(f"notification retention for unknown stream "
                               f"{min(keep)!r} (streams: {', '.join(self._streams)})")

    # -- streams --

    def add_stream(self, name: str, description: str, modules: Iterable[str], *,
                   keep: int = DEFAULT_KEEP) -> None:
        """Add a stream carrying the notifications of ``modules``, the newest ``keep``
        of them (logged before too) kept for replay."""
        if not name:
            raise InvalidValue("a stream needs a name")
        if name in self._streams:
            raise DataExists(f"stream {name!r} already exists", info={"stream": name})
        mods = frozenset([modules] if isinstance(modules, str) else modules)
        if not mods:
            raise InvalidValue(f"stream {name!r} needs at least one module")
        for m in sorted(mods):
            if not self.schema.implemented(m):
                raise InvalidValue(f"stream {name!r}: unknown module {m!r}")
        self._define(Stream(name, description, mods, keep=keep))

    def _define(self, s: Stream) -> None:
        if s.keep < 1:
            raise InvalidValue(f"stream {s.name!r} must keep at least one notification")
        self._log.define(s.name, s.modules, s.keep)
        self._streams[s.name] = s

    def reload(self) -> None:
        """Back to what the storage holds, after a storage transaction that logged
        notifications was not made durable (a full disk): the stream listings must not
        report what was undone."""
        self._log.reload()

    def streams(self) -> list[Stream]:
        """Every stream, ``NETCONF`` first."""
        return list(self._streams.values())

    def describe(self) -> list[StreamInfo]:
        """What both stream listings (RFC 5277 ``netconf/streams``, RFC 8040
        ``restconf-state/streams``) report of each stream, ``NETCONF`` first."""
        return [StreamInfo(s.name, s.description, s.replay_support,
                           self.replay_start(s.name) if s.replay_support else None)
                for s in self._streams.values()]

    def _stream(self, name: str) -> Stream:
        try:
            return self._streams[name]
        except KeyError:
            raise InvalidValue(f"unknown stream {name!r}", info={"stream": name}) from None

    def replay_start(self, stream: str = NETCONF_STREAM) -> float | None:
        """Event time of the oldest notification ``stream`` can replay (None if none),
        from memory.

        "Oldest" is the first one logged; event times are only out of order
        when publishers pass them explicitly.
        """
        return self._log.first_event(self._stream(stream).name)

    # -- publishing --

    def publish(
        self, content: str | bytes, fmt: str = "json", *, event_time: float | None = None,
    ) -> Notification:
        """Validate, log and fan out one notification; invalid ones raise and
        are not logged."""
        return self.publish_checked(self.check(content, fmt), event_time=event_time)

    def publish_quietly(self, content: str | bytes, fmt: str = "json") -> None:
        """:meth:`publish` for events the server raises itself: one that does not
        validate is logged, not raised into the operation that caused it."""
        try:
            self.publish(content, fmt)
        except NfoError as e:
            log.error("notification not published: %s", e)

    def check(self, content: str | bytes, fmt: str = "json", *,
              data: Tree | None = None) -> Checked:
        """Parse and validate a notification against ``data`` (the current data if
        None), to be published later (by :meth:`publish_checked` or :meth:`log` and
        :meth:`fan_out`)."""
        op = _parse_notification(self.schema, content, fmt, "parsing a notification")
        try:
            op.validate(self._data_tree() if data is None else data)
        except BaseException:
            op.free()
            raise
        return Checked(op)

    def prepared(self, module: str, path: str, text: str) -> Checked:
        """A notification nfo builds itself, already in the form libyang prints and
        valid by construction (its builder's tests compare it with libyang's parse,
        validation and print), to be published like a checked one."""
        return Checked(None, text, module, path)

    def publish_checked(self, checked: Checked, *, event_time: float | None = None
                        ) -> Notification:
        """Log and fan out a notification that :meth:`check` validated."""
        try:
            n = self.log(checked, event_time=event_time)
            self.fan_out(checked, n)
        finally:
            checked.discard()
        return n

    def log(self, checked: Checked, *, event_time: float | None = None) -> Notification:
        """Append a checked notification to the replay log (inside the caller's
        storage transaction, if any); :meth:`fan_out` delivers it once durable."""
        op = checked.op
        when = time.time() if event_time is None else float(event_time)
        if checked.text is not None:
            module, path, text = checked.module, checked.path, checked.text
        elif op is None:
            raise InvalidValue("this notification was already published")
        else:
            module = op.tree.nodes()[0].module
            path = op.op.path
            text = op.tree.print(Fmt.JSON)
        seq = self._log.append(module, when, _envelope(module, path, text))
        return Notification(seq=seq, event_time=when, module=module, path=path, content=text)

    def fan_out(self, checked: Checked, n: Notification) -> None:
        """Deliver a logged notification to the live subscribers and free its tree."""
        def tree() -> Operation:
            if checked.op is None:  # built as text: parsed for the first who needs it
                checked.op = _parse_notification(self.schema, checked.text or "", "json",
                                                 "parsing a notification")
            return checked.op

        try:
            if checked.op is not None or checked.text is not None:
                for sub in list(self._subs):
                    try:
                        sub._offer(n, tree)
                    except NfoError as e:  # logged and durable: only this delivery fails
                        log.error("notification %d not delivered: %s", n.seq, e)
        finally:
            checked.discard()

    def deliver_logged(self, records: Iterable[NotificationRecord]) -> None:
        """Notifications another replica logged (and this one's store now holds): to
        the live subscribers here, as if published here."""
        for rec in records:
            n = _from_record(rec)
            if n is not None:
                self.fan_out(self.prepared(n.module, n.path, n.content), n)

    # -- subscribing --

    def subscribe(
        self, stream: str = NETCONF_STREAM, *, start: float | None = None,
        stop: float | None = None, xpath: str | None = None, who: Identity | None = None,
        after: int | None = None,
    ) -> NotificationSubscription:
        """Open a subscription (RFC 5277 create-subscription semantics) for ``who``
        (None: the server itself); access control decides each notification, live or
        replayed, under the rules as they are when it is delivered.  ``after`` (a
        :attr:`Notification.seq` the subscriber saw last, e.g. an SSE Last-Event-ID)
        replays what the stream logged after it, as a start time would."""
        if self._closed:
            raise OperationFailed("the notification service is shutting down")
        s = self._stream(stream)
        if stop is not None and start is None:
            raise MissingElement("a stop time requires a start time",
                                 info={"bad-element": "startTime"})
        if (start is not None or after is not None) and not s.replay_support:
            raise OperationNotSupported(f"stream {stream!r} does not support replay")
        if start is not None:
            if start > time.time():
                raise NfoError("the start time is in the future", tag="bad-element",
                               info={"bad-element": "startTime"})
            if stop is not None and stop < start:
                raise NfoError("the stop time is earlier than the start time",
                               tag="bad-element", info={"bad-element": "stopTime"})
        if xpath is not None:
            try:
                self.schema.check_xpath(xpath)
            except InvalidValue as e:
                raise InvalidValue(e.message.replace("invalid XPath", "invalid XPath filter"),
                                   info={"xpath": xpath}) from None
        sub = NotificationSubscription(self, s, start, stop, xpath, self._queue_size, who)
        # Live delivery is registered before the replay log is read: the
        # replay covers what was logged before this call, the live queue
        # everything after it (see NotificationSubscription._offer).
        self._subs.add(sub)
        if start is not None or after is not None:
            sub._replaying = True
            sub._replay = self._log.read(s.name, start, stop, after=after)
        return sub

    async def close(self) -> None:
        """End every subscription; their iterators finish."""
        self._closed = True
        for sub in list(self._subs):
            sub.close()

    def _forget(self, sub: NotificationSubscription) -> None:
        self._subs.discard(sub)


# -- subscriptions ------------------------------------------------------------


class NotificationSubscription:
    """An async iterator over one client's notifications.

    Yields, in order: replayed notifications and :class:`ReplayComplete` (only
    with a start time), live notifications, and :class:`SubscriptionComplete`
    once the stop time is reached, after which the iteration ends.  If the
    consumer falls ``queue_size`` live notifications behind, the subscription
    is dropped: its unread backlog is discarded, the next step raises
    :class:`~nfo.errors.ResourceDenied` (tag ``resource-denied``) and the
    iteration ends; the client resubscribes with a start time to catch up.
    One consumer at a time; call :meth:`close` when abandoning the iterator.
    """

    def __init__(
        self, hub: NotificationHub, stream: Stream, start: float | None, stop: float | None,
        xpath: str | None, queue_size: int, who: Identity | None = None,
    ) -> None:
        self._hub = hub
        self.who = who
        self.stream = stream
        self.start = start
        self.stop = stop
        self.xpath = xpath
        self._queue_size = queue_size
        self._pending: deque[Notification] = deque()
        self._replay: Iterator[NotificationRecord] | None = None
        self._replaying = start is not None
        self._cut: int | None = None
        """Last seq the replay may yield: the one before the first live offer."""
        self._last_replayed = 0
        self._accepting = True
        self._complete = False   # the stop time was reached
        self._failed: NfoError | None = None
        self._done = False
        self._waiter: asyncio.Future[None] | None = None
        if stop is not None and stop < time.time():
            self._reach_stop()

    # -- consumer side --

    def __aiter__(self) -> NotificationSubscription:
        return self

    async def __anext__(self) -> NotificationEvent:
        while True:
            if self._done:
                raise StopAsyncIteration
            if self._failed is not None:
                err = self._failed
                self._finish()
                raise err
            if self._replaying:
                n = await self._next_replayed()
                if self._done or self._failed is not None:
                    continue
                if n is not None:
                    return n
                self._end_replay()
                return ReplayComplete()
            if self._pending:
                return self._pending.popleft()
            if self._complete:
                self._finish()
                return SubscriptionComplete()
            timeout: float | None = None
            if self.stop is not None:
                timeout = self.stop - time.time()
                if timeout <= 0:
                    self._reach_stop()
                    continue
            await self._wait(timeout)

    async def aclose(self) -> None:
        """Like :meth:`close`, for ``contextlib.aclosing``."""
        self.close()

    def close(self) -> None:
        """End the subscription: the iterator finishes at its next step."""
        self._finish()

    @property
    def closed(self) -> bool:
        return self._done

    @property
    def backlog(self) -> int:
        """Live notifications the next steps return without waiting."""
        return 0 if self._replaying or self._failed is not None else len(self._pending)

    # -- internals --

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._accepting = False
        self._replaying = False
        self._pending.clear()
        _close_iter(self._replay)
        self._replay = None
        self._hub._forget(self)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self, timeout: float | None) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = fut
        try:
            if timeout is None:
                await fut
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await fut
        finally:
            self._waiter = None

    def _reach_stop(self) -> None:
        """The stop time has passed: accept nothing more, complete after the backlog."""
        self._accepting = False
        self._complete = True
        self._wake()

    def _offer(self, n: Notification, tree: Callable[[], Operation]) -> None:
        """Called by publish() with the notification and how to get its (borrowed) tree,
        which only an XPath filter or access control needs."""
        if self._replaying and self._cut is None:
            # The first notification logged since subscribe(): the replay
            # stops before it, the live part starts with it.
            self._cut = n.seq - 1
        if not self._accepting:
            return
        if self.stop is not None and (n.event_time > self.stop or time.time() > self.stop):
            self._reach_stop()
            return
        if not self.stream.carries(n.module):
            return
        access = self._access()
        if self.xpath is not None or access is not None:
            op = tree()
            if self.xpath is not None and not op.selects(self.xpath):
                return
            if not self._permitted(n, op, access):
                return
        if len(self._pending) >= self._queue_size:
            self._overflow()
            return
        self._pending.append(n)
        self._wake()

    def _overflow(self) -> None:
        log.warning("notification subscription to stream %r overflowed (%d queued); dropped",
                    self.stream.name, len(self._pending))
        self._failed = ResourceDenied(
            f"subscription overflowed: more than {self._queue_size} notifications unread",
            info={"stream": self.stream.name})
        self._accepting = False
        self._replaying = False
        self._pending.clear()
        _close_iter(self._replay)
        self._replay = None
        self._hub._forget(self)
        self._wake()

    def _access(self) -> Access | None:
        """The subscriber's rights now; None when nothing needs checking."""
        if self.who is None or self._hub.access is None:
            return None
        access = self._hub.access(self.who)
        return None if access.unrestricted else access

    def _permitted(self, n: Notification, op: Operation, access: Access | None = None) -> bool:
        access = access or self._access()
        if access is None:
            return True
        steps = parse_path(n.path)
        about = op.referenced_paths()
        if len(steps) > 1:  # nested in data: its parent must be readable
            about.append(n.path[:n.path.rfind("/")])
        return access.notification_allowed(list(schema_paths(steps))[-1], about)

    def _wanted(self, n: Notification) -> bool:
        if not self.stream.carries(n.module):
            return False
        access = self._access()
        if self.xpath is None and access is None:
            return True
        try:
            op = _parse_notification(self._hub.schema, n.content, Fmt.JSON,
                                     "reading a logged notification")
        except NfoError as exc:
            log.warning("logged notification %d no longer parses (%s); skipped", n.seq, exc)
            return False
        with op:
            if self.xpath is not None and not op.selects(self.xpath):
                return False
            return self._permitted(n, op, access)

    async def _next_replayed(self) -> Notification | None:
        """The next logged notification this subscription wants, None at the end."""
        read = 0
        while self._replay is not None:
            rec = next(self._replay, None)
            if rec is None or (self._cut is not None and rec.seq > self._cut):
                return None
            self._last_replayed = rec.seq
            n = _from_record(rec)
            if n is not None and self._wanted(n):
                return n
            read += 1
            if read % _REPLAY_SLICE == 0:
                await asyncio.sleep(0)
        return None

    def _end_replay(self) -> None:
        self._replaying = False
        _close_iter(self._replay)
        self._replay = None
        # Defensive: nothing is both replayed and queued live, given the cut.
        while self._pending and self._pending[0].seq <= self._last_replayed:
            self._pending.popleft()
