"""The RESTCONF server as ``nfo serve`` runs it: routes, YANG Patch, event streams and
authentication put together, and served by uvicorn in the orchestrator's event loop.

:func:`build_app` is the composition (the pieces stay testable on their own);
:func:`start_server` binds it (loopback unless configured) with TLS when given a
certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nfo.datastore import Datastore
from nfo.datastore.users import UserStore
from nfo.errors import NfoError
from nfo.restconf.app import Restconf, Target, create_app
from nfo.restconf.security import BasicAuth, dev_certificate, uvicorn_ssl_kwargs
from nfo.restconf.streams import ensure_nfo_stream, stream_endpoint, streams_data
from nfo.restconf.yangpatch import YANG_PATCH_JSON, YANG_PATCH_XML, apply_yang_patch
from nfo.schema import Fmt

__all__ = ["RestconfOptions", "RunningServer", "build_app", "start_server"]

log = logging.getLogger(__name__)

OWNER = "nfo-restconf"


def build_app(ds: Datastore, *, users: UserStore | None,
              cert_users: dict[str, str] | None = None, client_certs: bool = False,
              max_body: int = 4 << 20) -> Starlette:
    """The full RESTCONF application; ``users=None`` serves without authentication
    (tests of protocol logic only: ``nfo serve`` always passes the user store).  With
    ``client_certs`` a verified client certificate whose CN names a user is that user."""
    auth = (BasicAuth(users, cert_users=cert_users, cert_cn_is_user=client_certs)
            if users is not None else None)
    app = create_app(ds, auth=auth, max_body=max_body)
    rc: Restconf = app.state.restconf

    async def yang_patch(request: Request, target: Target, body: bytes) -> Response:
        ct = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        in_fmt = "xml" if ct == YANG_PATCH_XML else "json"
        ds_name = target.write_datastore
        session = ds.session(target.user)
        precondition = rc.write_precondition(request, lambda _: True)
        try:
            # refused before the patch is parsed, as HTTP orders it; checked again atomically
            ds.check_precondition(ds_name, precondition=precondition)
            result = await apply_yang_patch(session, ds_name, target.path.data_path or "/",
                                            body, in_fmt, target.fmt.value,
                                            precondition=precondition)
        finally:
            await session.close()
        headers = rc.validator_headers(rc.validators(ds_name)) if result.status < 300 else {}
        return Response(result.body, result.status, headers, media_type=result.content_type)

    rc.patch_handlers[YANG_PATCH_JSON] = yang_patch
    rc.patch_handlers[YANG_PATCH_XML] = yang_patch

    ensure_nfo_stream(ds.notifications)
    rc.state_session.set_oper(json.dumps(streams_data(ds.notifications)), Fmt.JSON,
                              owner=OWNER)
    streams = stream_endpoint(ds)

    async def guarded_stream(request: Request) -> Response:
        if auth is not None:
            try:
                await auth(request)
            except NfoError as e:
                refused: Response = rc.error_response(e, Fmt.JSON)
                return refused
        answer: Response = await streams(request)
        return answer

    app.router.routes.append(Route("/restconf/streams/{name}/{encoding}", guarded_stream,
                                   methods=["GET", "HEAD"]))
    out: Starlette = app
    return out


@dataclass
class RestconfOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: Path | None = None
    tls_key: Path | None = None
    dev_cert: bool = False
    client_ca: Path | None = None
    max_body: int = 4 << 20


@dataclass
class RunningServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    scheme: str

    @property
    def port(self) -> int:
        sock = self.server.servers[0].sockets[0]
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def start_server(ds: Datastore, users: UserStore, opts: RestconfOptions,
                       state_dir: Path) -> RunningServer:
    """Bind and serve RESTCONF in this event loop; returns once listening."""
    app = build_app(ds, users=users, max_body=opts.max_body,
                    client_certs=opts.client_ca is not None)
    kwargs: dict[str, Any] = {}
    scheme = "http"
    cert, key = opts.tls_cert, opts.tls_key
    if cert is None and opts.dev_cert:
        cert, key = dev_certificate(state_dir)
    if cert is not None and key is not None:
        kwargs = uvicorn_ssl_kwargs(cert, key, client_ca=opts.client_ca)
        scheme = "https"
    config = uvicorn.Config(app, host=opts.host, port=opts.port, lifespan="off",
                            log_level="warning", access_log=False, **kwargs)
    server = uvicorn.Server(config)
    # nfo serve owns SIGINT/SIGTERM; _serve is serve() without uvicorn's signal capture
    task = asyncio.get_running_loop().create_task(server._serve(), name="nfo-restconf")
    while not server.started:
        if task.done():
            task.result()
            raise NfoError(f"RESTCONF could not listen on {opts.host}:{opts.port}")
        await asyncio.sleep(0.01)
    return RunningServer(server, task, scheme)
