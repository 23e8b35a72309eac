"""Serving the web UI's static files at ``/ui/`` (``/`` redirects there).

Why here: the page is served by the RESTCONF server it talks to, from the same origin,
so its session cookie is ``SameSite=Strict`` and no CORS is ever needed.  The files are
sent as they are (no build step); every response carries the page's security headers:
a Content-Security-Policy that allows scripts from this origin and the inline import
map by its hash only, no framing, no referrer, no MIME sniffing, and ``no-cache``
(revalidated by ETag) so an upgraded server's page is never mixed with an old one.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

import nfo.ui

__all__ = ["UI_DIR", "ui_routes"]

UI_DIR = Path(nfo.ui.__file__).parent
_INLINE = re.compile(rb"<script[^>]*>(.*?)</script>", re.DOTALL)


def _policy(index: bytes) -> str:
    """The Content-Security-Policy of the page: its inline scripts (the import map)
    allowed by their SHA-256, nothing else inline."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in _INLINE.findall(index) if body.strip())
    return ("default-src 'self'; "
            f"script-src 'self' {hashes}; "
            "style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")


class _Files:
    """Starlette's StaticFiles with the page's headers on every response."""

    def __init__(self, directory: Path) -> None:
        self.files = StaticFiles(directory=directory, html=True)
        self.headers = [(k.encode(), v.encode()) for k, v in (
            ("content-security-policy", _policy((directory / "index.html").read_bytes())),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-cache"),
        )]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()),
                                                  *self.headers]}
            await send(message)
        await self.files(scope, receive, with_headers)


def ui_routes(directory: Path = UI_DIR) -> list[BaseRoute]:
    """``/`` (a redirect) and ``/ui/...`` (the files of ``directory``)."""
    async def home(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=303)

    return [Route("/", home, methods=["GET", "HEAD"]),
            Mount("/ui", app=_Files(directory), name="ui")]
