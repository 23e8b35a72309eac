"""RESTCONF fixtures: a real uvicorn server on 127.0.0.1 (a free port) and an httpx client.

The datastore is the shared ``ds`` fixture (nfo's modules plus nfo-test, fresh
SQLite per test); each server runs as a task of the test's event loop and is
stopped when the test ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.requests import Request

from nfo.datastore import Datastore
from nfo.protocol.errors import HttpError
from nfo.restconf.app import create_app
from nfo.schema import Schema
from tests.access import permit_everyone
from tests.conftest import TEST_YANG, started

JSON = "application/yang-data+json"
MAX_BODY = 64 * 1024


@dataclass
class Server:
    base: str
    ds: Datastore
    app: Any


Serve = Callable[[Any], Awaitable[str]]
"""Start an ASGI app on 127.0.0.1 (a free port); returns its base URL."""


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(app: Any) -> str:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off",
                                log_level="warning")
        srv = uvicorn.Server(config)
        task = asyncio.get_running_loop().create_task(srv.serve(), name="uvicorn")
        running.append((srv, task))
        for _ in range(500):
            if srv.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        assert srv.started, "uvicorn did not start"
        port = srv.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for srv, _ in running:
            srv.should_exit = True
        for _, task in running:
            await task


@pytest.fixture
async def server(ds: Datastore, serve: Serve) -> Server:
    """Without authentication every request is ``anonymous``; access control lets
    everyone do everything here (its own tests set their rules)."""
    permit_everyone(ds)
    app = create_app(ds, max_body=MAX_BODY)
    return Server(await serve(app), ds, app)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base, timeout=10,
                                 headers={"Accept": JSON}) as c:
        yield c


# -- the web UI's extensions (tests/restconf/test_ui_*.py) --------------------------------

UI_YANG = Path(__file__).resolve().parents[1] / "ui_yang"
"""Modules with every node kind and type the UI's schema digest describes."""
USER_HEADER = "X-Test-User"


@pytest.fixture(scope="session")
def ui_schema() -> Schema:
    return Schema(extra_dirs=[TEST_YANG, UI_YANG])


@pytest.fixture
async def ui_ds(ui_schema: Schema, db_path: Path) -> AsyncIterator[Datastore]:
    async with started(ui_schema, db_path) as d:
        yield d


HIDE_B = {"name": "hide-b", "module-name": "nfo-uitest",
          "path": "/nfo-uitest:servers/server[name='b']", "access-operations": "read",
          "action": "deny"}
"""Hides the server entry b (of tests/ui_yang's nfo-uitest)."""


def ops_rules(*rules: dict[str, Any]) -> dict[str, Any]:
    """Access control for the UI tests: ``root`` (group admin) may do everything,
    ``alice`` (group ops) what ``rules`` say and the defaults leave."""
    return {"ietf-netconf-acm:nacm": {
        "groups": {"group": [{"name": "admin", "user-name": ["root"]},
                             {"name": "ops", "user-name": ["alice"]}]},
        "rule-list": [
            {"name": "admin", "group": ["admin"],
             "rule": [{"name": "all", "module-name": "*", "access-operations": "*",
                       "action": "permit"}]},
            {"name": "ops", "group": ["ops"], "rule": list(rules)}]}}


async def seed(ds: Datastore, *docs: dict[str, Any]) -> None:
    """Write ``docs`` (RFC 7951 JSON) to running as the server itself."""
    async with ds.internal_session("test-seed") as s:
        for doc in docs:
            await s.edit("running", json.dumps(doc), "json")


async def _header_user(request: Request) -> str:
    """Who asks, from a test header (401 without it): authentication itself is
    tested in test_security.py."""
    user = request.headers.get(USER_HEADER)
    if not user:
        raise HttpError(401, "no user", tag="access-denied",
                        headers={"WWW-Authenticate": 'Basic realm="nfo"'})
    return user


@pytest.fixture
async def ui_server(ui_ds: Datastore, serve: Serve) -> Server:
    """Access control enforced (no rules: RFC 8341's defaults); the user is named by
    the X-Test-User header."""
    app = create_app(ui_ds, auth=_header_user, max_body=MAX_BODY)
    return Server(await serve(app), ui_ds, app)


@pytest.fixture
async def ui_client(ui_server: Server) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    made: list[httpx.AsyncClient] = []

    def as_user(user: str) -> httpx.AsyncClient:
        c = httpx.AsyncClient(base_url=ui_server.base, timeout=10,
                              headers={"Accept": "application/json", USER_HEADER: user})
        made.append(c)
        return c

    try:
        yield as_user
    finally:
        for c in made:
            await c.aclose()
