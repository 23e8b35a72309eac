"""Login sessions for the web UI: a cookie instead of credentials kept by the browser.

Why: a page that sent Basic credentials with every request would have to keep the
password in the browser.  Instead ``POST /ui/login`` checks the password once, through
:meth:`UserStore.login` (the same login throttle as Basic authentication and NETCONF),
and answers with a session cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` over
HTTPS: no script can read it, no other site can send it) and a CSRF token that the page
keeps in memory only.  Every RESTCONF resource accepts the cookie; a request that
changes anything (not GET, HEAD or OPTIONS) must also carry the token in
``X-CSRF-Token``.  ``GET /ui/session`` gives a reloaded page its user and token again,
``POST /ui/logout`` ends the session.

Each login session holds a datastore :class:`Session` with a private candidate
(docs/transactions.md): the requests of the cookie run in it (``SESSION_KEY`` in the
ASGI scope), so ``/restconf/ds/ietf-datastores:candidate`` is the user's own and the
``nfo-transactions`` operations act on it.  Ending the login session closes it (a
confirmed commit it left unconfirmed is reverted, as when a NETCONF session ends).

Sessions live in this process's memory (a restart logs everybody out) and end after
``idle_timeout`` seconds without a request, after ``lifetime`` seconds in any case,
when the account is disabled or deleted, and, beyond ``max_sessions``, the least
recently used goes first.  Tokens are kept only as their SHA-256 digests.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nfo.datastore import Session
from nfo.datastore.users import UserStore
from nfo.protocol.errors import HttpError
from nfo.restconf.app import read_body
from nfo.restconf.resources import ALIVE_KEY, SESSION_KEY
from nfo.restconf.security import BasicAuth, Unauthorized

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "SessionAuth",
    "SessionLimits",
    "WebSession",
    "WebSessions",
    "login_routes",
]

log = logging.getLogger(__name__)

COOKIE = "nfo-session"
CSRF_HEADER = "x-csrf-token"
FRONT_END = "web UI"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_LOGIN_BODY = 8192


@dataclass(frozen=True)
class SessionLimits:
    """How long web sessions last and how many there may be (docs/ui.md)."""

    idle_timeout: float = 900.0
    lifetime: float = 8 * 3600.0
    max_sessions: int = 200
    """Below the datastore's bound on private candidates (256)."""


@dataclass
class WebSession:
    user: str
    csrf: str
    address: str
    started: float
    seen: float
    datastore: Session | None = None
    """The datastore session its requests run in (with the user's private candidate)."""
    ended: bool = False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class WebSessions:
    """The web sessions of one RESTCONF server.  ``open_session(user)`` opens the
    datastore session a login session's requests run in (None: none)."""

    def __init__(self, users: UserStore, limits: SessionLimits | None = None, *,
                 open_session: Callable[[str], Session] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.users = users
        self.limits = limits or SessionLimits()
        self._open = open_session
        self._clock = clock
        self._by_digest: OrderedDict[str, WebSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_digest)

    async def login(self, user: str, password: str, address: str) -> tuple[str, WebSession]:
        """A new session for ``user`` (its cookie value and the session), or
        :class:`Unauthorized`; the throttle may refuse with ``Throttled`` (429)."""
        if not await self.users.login(user, password, address, FRONT_END):
            raise _refused("authentication failed")
        await self._sweep()
        while len(self._by_digest) >= self.limits.max_sessions:
            _, old = self._by_digest.popitem(last=False)
            await _end(old, "too many sessions")
        now = self._clock()
        token = secrets.token_urlsafe(32)
        session = WebSession(user, secrets.token_urlsafe(32), address, now, now,
                             self._open(user) if self._open is not None else None)
        self._by_digest[_digest(token)] = session
        log.info("web login of %s from %s", user, address)
        return token, session

    async def _sweep(self) -> None:
        """End the sessions idle too long (the least recently used come first), so that
        their datastore sessions and private candidates do not wait for a request."""
        now = self._clock()
        while self._by_digest:
            key, oldest = next(iter(self._by_digest.items()))
            if now - oldest.seen <= self.limits.idle_timeout:
                return
            del self._by_digest[key]
            await _end(oldest, "idle")

    async def find(self, token: str) -> WebSession | None:
        """The live session of a cookie value (its idle time restarts), else None."""
        await self._sweep()
        key = _digest(token)
        session = self._by_digest.get(key)
        if session is None:
            return None
        now = self._clock()
        why = self._ended_why(session, now)
        if why is not None:
            del self._by_digest[key]
            await _end(session, why)
            return None
        session.seen = now
        self._by_digest.move_to_end(key)
        return session

    def _ended_why(self, session: WebSession, now: float) -> str | None:
        """Why ``session`` no longer lets its requests in at ``now``, or None."""
        return ("idle" if now - session.seen > self.limits.idle_timeout else
                "expired" if now - session.started > self.limits.lifetime else
                "account disabled" if not self.users.enabled(session.user) else
                "its datastore session was ended" if session.datastore is not None
                and session.datastore.closed else None)

    def alive(self, session: WebSession) -> bool:
        """Whether ``session`` still lets its requests in (what :meth:`find` would say,
        without touching it): what an event stream opened in it asks before each event."""
        return not session.ended and self._ended_why(session, self._clock()) is None

    async def logout(self, token: str) -> WebSession | None:
        session = self._by_digest.pop(_digest(token), None)
        if session is not None:
            await _end(session, "logout")
        return session

    async def close(self) -> None:
        """End every session (the server stops)."""
        while self._by_digest:
            _, session = self._by_digest.popitem()
            await _end(session, "the server stops")


async def _end(session: WebSession, why: str) -> None:
    session.ended = True
    log.info("web session of %s ended: %s", session.user, why)
    if session.datastore is not None and not session.datastore.closed:
        with contextlib.suppress(Exception):
            await session.datastore.close()


def _refused(message: str) -> Unauthorized:
    # not "Basic": a browser would answer that challenge with its own password dialog
    return Unauthorized(message, scheme="Cookie")


class SessionAuth:
    """Authenticate a request by its session cookie, else as :class:`BasicAuth` does.

    A cookie that names no live session is refused (401 with a ``Cookie`` challenge,
    which a browser does not answer with a password dialog) unless the request also
    carries an ``Authorization`` header; a cookie request that changes anything
    without the session's CSRF token is 403."""

    def __init__(self, sessions: WebSessions, basic: BasicAuth) -> None:
        self.sessions = sessions
        self.basic = basic

    async def __call__(self, request: HTTPConnection) -> str:
        # no Cookie header, no cookie to parse (the usual API client)
        has_cookie = any(name == b"cookie" for name, _ in request.scope["headers"])
        token = request.cookies.get(COOKIE) if has_cookie else None
        if token is None:
            return await self.basic(request)
        session = await self.sessions.find(token)
        if session is None:
            if "authorization" in request.headers:
                return await self.basic(request)
            raise _refused("the session has ended; log in again")
        method = request.scope.get("method", "GET")
        if method not in _SAFE:
            _check_csrf(request, session, f"a {method} with the session cookie")
        if session.datastore is not None:
            request.scope[SESSION_KEY] = session.datastore
        request.scope[ALIVE_KEY] = lambda: self.sessions.alive(session)
        return session.user


def _check_csrf(request: HTTPConnection, session: WebSession, what: str) -> None:
    sent = request.headers.get(CSRF_HEADER, "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(sent, session.csrf.encode()):
        raise HttpError(403, f"{what} needs the session's X-CSRF-Token header",
                        tag="access-denied")


def _session_reply(session: WebSession, limits: SessionLimits) -> dict[str, object]:
    return {"user": session.user, "csrf-token": session.csrf,
            "idle-timeout": limits.idle_timeout, "lifetime": limits.lifetime}


def _set_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(COOKIE, token, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


async def _login_body(request: Request) -> tuple[str, str]:
    if (request.headers.get("content-type") or "").split(";")[0].strip().lower() \
            != "application/json":
        raise HttpError(415, "log in with a JSON body {\"user\": ..., \"password\": ...}",
                        tag="invalid-value")
    body = await read_body(request, _MAX_LOGIN_BODY)
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "the login body is not JSON", tag="malformed-message",
                        error_type="rpc") from None
    if (not isinstance(doc, dict) or not isinstance(doc.get("user"), str)
            or not isinstance(doc.get("password"), str)):
        raise HttpError(400, "give \"user\" and \"password\" as strings",
                        tag="invalid-value")
    return doc["user"], doc["password"]


def login_routes(sessions: WebSessions) -> list[Route]:
    """``POST /ui/login``, ``GET /ui/session`` and ``POST /ui/logout``."""
    limits = sessions.limits

    async def login(request: Request) -> Response:
        user, password = await _login_body(request)
        address = request.client.host if request.client is not None else ""
        token, session = await sessions.login(user, password, address)
        response = JSONResponse(_session_reply(session, limits),
                                headers={"Cache-Control": "no-store"})
        _set_cookie(response, request, token, int(limits.lifetime))
        return response

    async def current(request: Request) -> tuple[str, WebSession]:
        token = request.cookies.get(COOKIE)
        session = await sessions.find(token) if token is not None else None
        if token is None or session is None:
            raise _refused("not logged in")
        return token, session

    async def whoami(request: Request) -> Response:
        _, session = await current(request)
        return JSONResponse(_session_reply(session, limits),
                            headers={"Cache-Control": "no-store"})

    async def logout(request: Request) -> Response:
        token, session = await current(request)
        _check_csrf(request, session, "logging out")
        await sessions.logout(token)
        log.info("web logout of %s", session.user)
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    return [Route("/ui/login", login, methods=["POST"]),
            Route("/ui/session", whoami, methods=["GET"]),
            Route("/ui/logout", logout, methods=["POST"])]
