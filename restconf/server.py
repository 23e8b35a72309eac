"""The RESTCONF server as ``nfo serve`` runs it: routes, YANG Patch, event streams and
authentication put together, and served by uvicorn in the orchestrator's event loop.

:func:`build_app` is the composition (the pieces stay testable on their own);
:func:`start_server` binds it (loopback unless configured) with TLS when given a
certificate, accepting connections itself within the limits of
:mod:`nfo.restconf.connections`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from nfo.datastore import Datastore
from nfo.datastore.users import UserStore
from nfo.errors import NfoError
from nfo.protocol.errors import HttpError
from nfo.protocol.limits import Listener, Reclaimer
from nfo.restconf.app import Restconf, create_app
from nfo.restconf.connections import HTTP_PROTOCOLS, ConnectionLimits, Connections
from nfo.restconf.login import SessionAuth, SessionLimits, WebSessions, login_routes
from nfo.restconf.security import BasicAuth, dev_certificate, uvicorn_ssl_kwargs
from nfo.restconf.webui import ui_routes

__all__ = [
    "ConnectionLimits",
    "RestconfOptions",
    "RunningServer",
    "SessionLimits",
    "build_app",
    "start_server",
]

log = logging.getLogger(__name__)

OWNER = "nfo-restconf"
SHUTDOWN_GRACE = 10
"""Seconds the RESTCONF server waits at shutdown for responses still running."""


def build_app(ds: Datastore, *, users: UserStore | None,
              cert_users: dict[str, str] | None = None, client_certs: bool = False,
              max_body: int = 4 << 20, web_sessions: SessionLimits | None = None) -> Starlette:
    """The full RESTCONF application with the web UI; ``users=None`` serves without
    authentication and without the UI (tests of protocol logic only: ``nfo serve``
    always passes the user store).  With ``client_certs`` a verified client certificate
    whose CN names a user is that user; ``web_sessions`` bounds the UI's login sessions."""
    if users is None:
        return create_app(ds, max_body=max_body)
    sessions = WebSessions(users, web_sessions,
                           open_session=lambda user: ds.session(user, private_candidate=True))
    basic = BasicAuth(users, cert_users=cert_users, cert_cn_is_user=client_certs)
    app = create_app(ds, auth=SessionAuth(sessions, basic), max_body=max_body,
                     extra_routes=[*login_routes(sessions), *ui_routes()])
    app.state.login_sessions = sessions
    return app


@dataclass
class RestconfOptions:
    """Where RESTCONF listens, its TLS, and its limits (docs/limits.md)."""

    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: Path | None = None
    tls_key: Path | None = None
    dev_cert: bool = False
    client_ca: Path | None = None
    max_body: int = 4 << 20
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    web_sessions: SessionLimits = field(default_factory=SessionLimits)
    http: str = "httptools"
    """The HTTP/1.1 implementation (``HTTP_PROTOCOLS``): httptools (llhttp, in C), or h11."""


@dataclass
class RunningServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    scheme: str
    listener: Listener
    connections: Connections
    own_reclaimer: bool = False
    web_sessions: WebSessions | None = None

    @property
    def port(self) -> int:
        return self.listener.port

    async def stop(self) -> None:
        self.listener.close()
        await self.connections.close()
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if self.web_sessions is not None:
            await self.web_sessions.close()
        if self.own_reclaimer:
            self.connections.reclaimer.close()


async def start_server(ds: Datastore, users: UserStore, opts: RestconfOptions,
                       state_dir: Path, *, reclaimer: Reclaimer | None = None
                       ) -> RunningServer:
    """Bind and serve RESTCONF in this event loop; returns once listening.  ``reclaimer``:
    the process's (``nfo serve`` shares one between its front ends), else one of its own."""
    app = build_app(ds, users=users, max_body=opts.max_body,
                    client_certs=opts.client_ca is not None, web_sessions=opts.web_sessions)
    protocol = HTTP_PROTOCOLS[opts.http]
    kwargs: dict[str, Any] = {"http": protocol}
    scheme = "http"
    cert, key = opts.tls_cert, opts.tls_key
    if cert is None and opts.dev_cert:
        cert, key = dev_certificate(state_dir)
    if cert is not None and key is not None:
        kwargs = uvicorn_ssl_kwargs(cert, key, client_ca=opts.client_ca,
                                    http=protocol)
        scheme = "https"
    config = uvicorn.Config(app, host=opts.host, port=opts.port, lifespan="off",
                            log_level="warning", access_log=False,
                            # typed int by uvicorn, used as a delay: fractions work
                            timeout_keep_alive=opts.limits.keepalive_timeout,  # type: ignore[arg-type]
                            # a response still running at shutdown (an event stream whose
                            # subscription was not ended first) is cut after this
                            timeout_graceful_shutdown=SHUTDOWN_GRACE,
                            **kwargs)
    config.load()
    try:
        sockets = Listener.bind(opts.host, opts.port)
    except OSError as e:
        raise NfoError(f"RESTCONF could not listen on {opts.host}:{opts.port}: "
                       f"{e.strerror or e}") from e
    server = uvicorn.Server(config)
    # nfo serve owns SIGINT/SIGTERM; _serve is serve() without uvicorn's signal capture.
    # No sockets for uvicorn: the Listener accepts and hands connections to the table.
    task = asyncio.get_running_loop().create_task(server._serve(sockets=[]),
                                                  name="nfo-restconf")
    while not server.started:
        if task.done():
            for sock in sockets:
                sock.close()
            task.result()
            raise NfoError(f"RESTCONF could not start on {opts.host}:{opts.port}")
        await asyncio.sleep(0.01)
    restconf: Restconf = app.state.restconf

    def error_reply(request: Request, err: HttpError) -> Response:
        with contextlib.suppress(HttpError):
            restconf.reply_format(request)
        return restconf.error_response(request, err)

    table = Connections(server, opts.limits, error_reply, reclaimer or Reclaimer())
    listener = Listener("RESTCONF", sockets, table.admit, shed=table.shed)
    listener.start()
    return RunningServer(server, task, scheme, listener, table, reclaimer is None,
                         app.state.login_sessions)
