"""RESTCONF event streams (RFC 8040 section 6) over Server-Sent Events.

* :func:`streams_data`: the ``ietf-restconf-monitoring:restconf-state``
  ``streams`` list (name, description, replay support, replay log creation
  time, one access entry per encoding) as RFC 7951 JSON, for the app to
  serve or push as operational data.
* :func:`stream_endpoint`: a Starlette endpoint for
  ``GET /restconf/streams/{name}/{encoding}`` answering ``text/event-stream``.
  Each notification is one SSE event whose ``data:`` lines hold an
  ``ietf-restconf:notification`` envelope with ``eventTime`` (RFC 8040
  section 6.4), in JSON or XML.  Query parameters ``start-time`` and
  ``stop-time`` (RFC 3339; replay) and ``filter`` (XPath 1.0 with module
  names as prefixes) are honoured; nothing else is allowed.  The response
  ends at the stop time; while idle, a ``: keep-alive`` comment is sent
  every ``keepalive`` seconds so proxies keep the connection.  The end of
  replay is marked by a ``: replay-complete`` comment (SSE clients ignore
  comments).  Each event carries the notification's sequence number as its SSE
  ``id``; a client reconnecting with ``Last-Event-ID`` gets what the stream logged
  after that event first (a replay, ended by the same comment), then live events.

Client disconnects: uvicorn speaks ASGI HTTP 2.3, where Starlette's
StreamingResponse listens for ``http.disconnect`` and cancels the body.  The
response closes the subscription in a ``finally`` whichever way it ends
(disconnect, a failed send, server shutdown), so no subscription outlives
its client and no task is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import urllib.parse
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from nfo.datastore import (
    Datastore,
    Identity,
    Notification,
    NotificationHub,
    NotificationSubscription,
    ReplayComplete,
    SubscriptionComplete,
)
from nfo.errors import InvalidValue, NfoError
from nfo.protocol.errors import HttpError
from nfo.protocol.formats import format_time, parse_time
from nfo.protocol.limits import NOTIFICATION_BATCH
from nfo.restconf.resources import ALIVE_KEY
from nfo.schema import Fmt, Schema

__all__ = [
    "ENCODINGS",
    "NOTIFICATION_NS",
    "notification_message",
    "sse_event",
    "stream_endpoint",
    "streams_data",
]

log = logging.getLogger(__name__)

NOTIFICATION_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
ENCODINGS = ("json", "xml")
_QUERY = ("start-time", "stop-time", "filter")
_LINES = re.compile(r"\r\n|\r|\n")
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

Endpoint = Callable[[Request], Awaitable[Response]]


# -- the monitoring view -------------------------------------------------------


def streams_data(hub: NotificationHub, base: str = "/restconf/streams") -> dict[str, Any]:
    """``ietf-restconf-monitoring:restconf-state`` with its ``streams`` list.

    ``base`` is the location prefix of the streams (an absolute URL such as
    ``https://host/restconf/streams`` if the app knows its own).
    ``replay-log-creation-time`` is the event time of the oldest notification
    the stream can replay (left out while the log holds none for it).
    """
    out = []
    for s in hub.describe():
        entry: dict[str, Any] = {"name": s.name, "description": s.description,
                                 "replay-support": s.replay_support}
        if s.first_event is not None:
            entry["replay-log-creation-time"] = format_time(s.first_event)
        quoted = urllib.parse.quote(s.name, safe="")
        entry["access"] = [{"encoding": enc, "location": f"{base.rstrip('/')}/{quoted}/{enc}"}
                           for enc in ENCODINGS]
        out.append(entry)
    return {"ietf-restconf-monitoring:restconf-state": {"streams": {"stream": out}}}


# -- SSE -----------------------------------------------------------------------


def notification_message(n: Notification, schema: Schema, encoding: str) -> str:
    """The ``ietf-restconf:notification`` envelope of ``n`` (RFC 8040 section 6.4)."""
    body = n.render(schema, encoding)
    when = format_time(n.event_time)
    if encoding == "json":
        return json.dumps({"ietf-restconf:notification": {"eventTime": when,
                                                          **json.loads(body)}})
    return (f'<notification xmlns="{NOTIFICATION_NS}"><eventTime>{when}</eventTime>'
            f"{body}</notification>")


def sse_event(payload: str, event_id: int | None = None) -> bytes:
    """One SSE event: its ``id:`` (the notification's sequence number, which a
    reconnecting client sends back as Last-Event-ID) and every line of ``payload`` as a
    ``data:`` line."""
    head = "" if event_id is None else f"id: {event_id}\n"
    return (head + "".join(f"data: {line}\n" for line in _LINES.split(payload))
            + "\n").encode()


class _EventStream(StreamingResponse):
    """The SSE response; closes its subscription however the response ends."""

    def __init__(self, sub: NotificationSubscription, schema: Schema, encoding: str,
                 keepalive: float, alive: Callable[[], bool] | None = None) -> None:
        """``alive``: the web session the stream was opened in still is (it ends with
        it: no event is sent once it has ended)."""
        self._alive = alive
        self._sub = sub
        self._schema = schema
        self._encoding = encoding
        self._keepalive = keepalive
        self._gen = self._events()
        super().__init__(self._gen, media_type="text/event-stream", headers=_SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._sub.close()
            with contextlib.suppress(Exception):
                await self._gen.aclose()

    async def _events(self) -> AsyncGenerator[bytes, None]:
        sub = self._sub
        batch: list[bytes] = []
        try:
            while True:
                if batch and (not sub.backlog or len(batch) >= NOTIFICATION_BATCH):
                    # a backlog goes out in few writes, and between them the loop notices
                    # a connection lost meanwhile (else every further write warns)
                    yield b"".join(batch)
                    batch = []
                    await asyncio.sleep(0)
                ev: Any = None
                try:
                    async with asyncio.timeout(self._keepalive):
                        ev = await anext(sub)
                except TimeoutError:
                    pass
                except StopAsyncIteration:
                    break
                except NfoError as e:  # dropped for falling behind (resource-denied)
                    batch.append(f": subscription ended: {e.tag}: {e.message}\n\n".encode())
                    break
                if self._alive is not None and not self._alive():
                    batch.append(b": subscription ended: the web session has ended\n\n")
                    break
                if ev is None:
                    yield b": keep-alive\n\n"
                elif isinstance(ev, Notification):
                    try:
                        msg = notification_message(ev, self._schema, self._encoding)
                    except NfoError as e:
                        log.warning("notification %d not sent: %s", ev.seq, e)
                        continue
                    batch.append(sse_event(msg, ev.seq))
                elif isinstance(ev, ReplayComplete):
                    batch.append(b": replay-complete\n\n")
                elif isinstance(ev, SubscriptionComplete):
                    break
            if batch:
                yield b"".join(batch)
        finally:
            sub.close()


def _last_event_id(value: str | None) -> int | None:
    """A reconnecting client's Last-Event-ID: the sequence number of the last event
    it received; the stream replays what followed it."""
    if value is None or value.strip() == "":
        return None
    if not value.strip().isdigit() or len(value.strip()) > 19:
        raise InvalidValue("Last-Event-ID must be an event id this server sent",
                           error_type="protocol")
    return int(value.strip())


def stream_endpoint(ds: Datastore, *, keepalive: float = 15.0) -> Endpoint:
    """The endpoint for ``GET /restconf/streams/{name}/{encoding}`` (path
    parameters ``name`` and ``encoding``), e.g. mounted as
    ``Route("/restconf/streams/{name}/{encoding}", stream_endpoint(ds))`` in an
    application whose exception handler answers NfoError (:func:`nfo.restconf.app.create_app`)."""
    if keepalive <= 0:
        raise ValueError("keepalive must be positive")
    hub = ds.notifications

    async def endpoint(request: Request) -> Response:
        """Raises NfoError for the application's error handler, which answers in the
        stream's encoding."""
        name = request.path_params.get("name", "")
        encoding = request.path_params.get("encoding", "")
        request.state.fmt = Fmt.XML if encoding == "xml" else Fmt.JSON
        if encoding not in ENCODINGS or all(s.name != name for s in hub.streams()):
            raise HttpError(404, f"no event stream {name!r} with encoding {encoding!r}",
                            error_type="application")
        params: dict[str, str] = {}
        for key, value in request.query_params.multi_items():
            if key not in _QUERY:
                raise InvalidValue(f"query parameter {key!r} is not allowed on an event stream",
                                   error_type="protocol")
            if key in params:
                raise InvalidValue(f"query parameter {key!r} is given more than once",
                                   error_type="protocol")
            params[key] = value
        start = (parse_time(params["start-time"], "start-time")
                 if "start-time" in params else None)
        stop = parse_time(params["stop-time"], "stop-time") if "stop-time" in params else None
        if stop is not None and start is None:
            raise InvalidValue("stop-time needs a start-time", error_type="protocol")
        after = _last_event_id(request.headers.get("last-event-id"))
        try:
            user = getattr(request.state, "user", None) or "anonymous"
            sub = hub.subscribe(name, start=start, stop=stop, xpath=params.get("filter"),
                                who=Identity(user), after=after)
        except NfoError as e:
            if e.tag == "operation-failed":  # the hub cannot take another subscriber
                raise HttpError(503, e.message, tag=e.tag, error_type=e.error_type) from e
            raise
        if request.method == "HEAD":  # the headers of the stream, without opening it
            sub.close()
            return Response(media_type="text/event-stream", headers=_SSE_HEADERS)
        return _EventStream(sub, ds.schema, encoding, keepalive,
                            request.scope.get(ALIVE_KEY))

    return endpoint
