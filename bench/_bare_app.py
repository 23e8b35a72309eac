"""The bare-framework reference of bench/bench_restconf.py: Starlette on uvicorn, nothing else.

Run as ``python bench/_bare_app.py ONE_FILE ALL_FILE PASSWORD [HTTP]``: listens on a free
port of 127.0.0.1 (printed on the first line of stdout) and answers the nf-instances paths
RESTCONF serves with static bodies (the files' bytes, captured from nfo), after the same Basic
authentication check a client must pass (user ``admin``): GET of one instance, GET of the
list, and POST (201, body read and dropped).  uvicorn runs as nfo runs it (no lifespan, no
access log) on ``HTTP``: ``httptools`` (the default, as nfo serves) or ``h11`` (uvicorn's
pure-Python parser, the floor issue 14 first measured against).
"""

from __future__ import annotations

import base64
import binascii
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

JSON = "application/yang-data+json"
INSTANCES = "/restconf/data/nfo-instances:nf-instances"


def app(one: bytes, whole: bytes, password: str) -> Starlette:
    expected = ("admin", password)

    def authorised(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, pw = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, pw) == expected

    async def instances(request: Request) -> Response:
        if not authorised(request):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="b"'})
        if request.method == "POST":
            await request.body()
            return Response(status_code=201)
        return Response(one if "rest" in request.path_params else whole, media_type=JSON)

    return Starlette(routes=[
        Route(INSTANCES, instances, methods=["GET", "POST"]),
        Route(INSTANCES + "/{rest:path}", instances, methods=["GET"]),
    ])


def main() -> None:
    one, whole, password = sys.argv[1], sys.argv[2], sys.argv[3]
    http = sys.argv[4] if len(sys.argv) > 4 else "httptools"
    with open(one, "rb") as f1, open(whole, "rb") as f2:
        application = app(f1.read(), f2.read(), password)
    sock = socket.socket()
    # accepted connections inherit it: uvicorn's own listeners get it from asyncio
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(application, http=http, lifespan="off", log_level="warning",
                            access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
