"""The control socket: how the host's command line reaches a running server.

Accounts must be manageable from the host whether or not ``nfo serve`` runs (the
recovery identity is the local command line on the state directory, never a network
login).  With no server, ``nfo user ...`` opens the datastore itself; while a server
holds the state directory's lock it cannot, so it asks the server over
``<state>/control.sock`` and the server runs the change through its own user store:
the running server sees it at once.

The socket is a Unix stream socket of mode 0600 inside the private state directory,
and the server answers only a peer whose ``SO_PEERCRED`` uid is 0 or the server's own
effective uid.  Those are the gate: the operations run as the server's internal
identity, without access control (NACM), exactly like the same command with the
server stopped.

Protocol: one request per connection, a JSON object on one line (at most
:data:`MAX_REQUEST` bytes, complete within :data:`READ_TIMEOUT` seconds; end of input
also ends it), ``{"op": "user-add", "name": "alice", "password": "...", "groups":
["admin"], "enabled": true}``; one reply line, ``{"ok": <result>}`` or ``{"error":
{"tag": "<error-tag>", "message": "...", "app-tag": "..."}}``, then the server closes.
The operations and their fields are :data:`OPERATIONS`.  The logic is the pure
functions :func:`parse_request`, :func:`execute` and :func:`answer`; the socket
server and client around them are thin.  Nothing here logs or echoes a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nfo.datastore.users import ADMIN, UserStore
from nfo.errors import (
    AccessDenied,
    InvalidValue,
    MalformedMessage,
    MissingElement,
    NfoError,
    OperationFailed,
    OperationNotSupported,
    TooBig,
    UnknownElement,
)

__all__ = [
    "MAX_REQUEST",
    "OPERATIONS",
    "READ_TIMEOUT",
    "ControlServer",
    "Request",
    "answer",
    "call",
    "check_request",
    "encode_request",
    "error_reply",
    "execute",
    "ok_reply",
    "parse_reply",
    "parse_request",
    "peer_allowed",
]

log = logging.getLogger("nfo.control")

MAX_REQUEST = 64 * 1024
READ_TIMEOUT = 10.0
_MAX_REPLY = 64 * 1024 * 1024
_LOGGABLE = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)

OPERATIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "user-add": (frozenset({"name"}), frozenset({"password", "groups", "enabled"})),
    "user-passwd": (frozenset({"name", "password"}), frozenset()),
    "user-remove": (frozenset({"name"}), frozenset()),
    "user-list": (frozenset(), frozenset()),
    "user-enable": (frozenset({"name"}), frozenset()),
    "user-disable": (frozenset({"name"}), frozenset()),
    "user-key-add": (frozenset({"name", "key"}), frozenset()),
    "user-key-remove": (frozenset({"name", "key"}), frozenset()),
    "user-groups-add": (frozenset({"name", "groups"}), frozenset()),
    "user-unlock": (frozenset({"name"}), frozenset({"password"})),
}
"""Each operation's (required, optional) fields besides ``op``."""


@dataclass(frozen=True)
class Request:
    """One checked request (:func:`parse_request`); fields an operation does not take
    keep their defaults."""

    op: str
    name: str = ""
    password: str | None = field(default=None, repr=False)
    groups: tuple[str, ...] = ()
    enabled: bool = True
    key: str = ""


# -- the protocol (pure) -------------------------------------------------------------


def _string(op: str, obj: dict[str, Any], key: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise InvalidValue(f"{op}: {key} must be a string")
    return value


def check_request(obj: object) -> Request:
    """A decoded request object, checked: the operation exists and every field is
    known and well-typed (values are never echoed in the errors)."""
    if not isinstance(obj, dict):
        raise MalformedMessage("a request is a JSON object")
    op = obj.get("op")
    if not isinstance(op, str) or op not in OPERATIONS:
        raise OperationNotSupported("unknown operation; known: " + ", ".join(OPERATIONS))
    required, optional = OPERATIONS[op]
    if set(obj) - {"op"} - required - optional:
        known = ", ".join(sorted(required | optional)) or "nothing"
        raise UnknownElement(f"{op} takes only: {known}")
    missing = required - set(obj)
    if missing:
        raise MissingElement(f"{op} needs {', '.join(sorted(missing))}")
    password = obj.get("password")
    if "password" in obj and not (isinstance(password, str) or (
            password is None and op in ("user-add", "user-unlock"))):
        raise InvalidValue(f"{op}: password must be a string")
    enabled = obj.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidValue(f"{op}: enabled must be true or false")
    groups = obj.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise InvalidValue(f"{op}: groups must be a list of group names")
    if op == "user-groups-add" and not groups:
        raise MissingElement(f"{op} needs at least one group")
    return Request(op=op, name=_string(op, obj, "name"), password=password,
                   groups=tuple(groups), enabled=enabled, key=_string(op, obj, "key"))


def parse_request(raw: bytes) -> Request:
    """One request line as the socket received it."""
    if len(raw) > MAX_REQUEST:
        raise TooBig(f"a request is at most {MAX_REQUEST} bytes")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedMessage("a request is one line of UTF-8 JSON") from None
    return check_request(obj)


def encode_request(req: Request) -> bytes:
    """The request line for ``req`` (the fields its operation takes)."""
    required, optional = OPERATIONS[req.op]
    body: dict[str, Any] = {"op": req.op}
    for k in sorted(required | optional):
        value = getattr(req, k)
        body[k] = list(value) if isinstance(value, tuple) else value
    return json.dumps(body).encode("utf-8") + b"\n"


async def execute(users: UserStore, req: Request) -> Any:
    """Run ``req`` on ``users`` (the server's internal identity); the JSON result.

    Putting an account into the ``admin`` group also creates that group's permit-all
    rule-list when no rule-list of that name exists (a state whose first account was
    made here, not by ``nfo serve``'s first start)."""
    if req.op == "user-add":
        await users.add(req.name, req.password, groups=req.groups, enabled=req.enabled)
    elif req.op == "user-passwd":
        if req.password is None:
            raise MissingElement("user-passwd needs password")
        await users.set_password(req.name, req.password)
    elif req.op == "user-remove":
        await users.remove(req.name)
    elif req.op == "user-list":
        return [{"name": n, "enabled": users.enabled(n), "groups": users.groups_of(n)}
                for n in users.names()]
    elif req.op in ("user-enable", "user-disable"):
        await users.set_enabled(req.name, req.op == "user-enable")
    elif req.op == "user-key-add":
        return await users.add_key(req.name, req.key)
    elif req.op == "user-key-remove":
        await users.remove_key(req.name, req.key)
    elif req.op == "user-groups-add":
        await users.add_to_groups(req.name, req.groups)
    elif req.op == "user-unlock":
        await users.unlock(req.name, req.password)
    else:
        raise OperationNotSupported(f"no operation {req.op}")
    if ADMIN in req.groups:
        await users.ensure_admin_rules()
    return None


def ok_reply(result: Any) -> bytes:
    return json.dumps({"ok": result}).encode("utf-8") + b"\n"


def error_reply(err: NfoError) -> bytes:
    body = {"tag": err.tag, "message": err.message}
    if err.app_tag:
        body["app-tag"] = err.app_tag
    return json.dumps({"error": body}).encode("utf-8") + b"\n"


def parse_reply(raw: bytes) -> Any:
    """The result of a reply, or its error raised as an :class:`NfoError`."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        obj = None
    if isinstance(obj, dict) and "ok" in obj:
        return obj["ok"]
    err = obj.get("error") if isinstance(obj, dict) else None
    if (isinstance(err, dict) and isinstance(err.get("tag"), str)
            and isinstance(err.get("message"), str)):
        app_tag = err.get("app-tag")
        raise NfoError(err["message"], tag=err["tag"],
                       app_tag=app_tag if isinstance(app_tag, str) else None)
    raise OperationFailed("the server's control socket gave no readable reply")


async def answer(users: UserStore, raw: bytes) -> bytes:
    """The reply to one request line."""
    try:
        req = parse_request(raw)
        shown = req.name if _LOGGABLE.fullmatch(req.name) else "(not a user name)"
        log.info("control socket: %s%s", req.op, f" {shown}" if req.name else "")
        return ok_reply(await execute(users, req))
    except NfoError as e:
        return error_reply(e)
    except Exception:
        log.exception("control socket: the operation failed")
        return error_reply(OperationFailed("internal error; see the server's log"))


def peer_allowed(peer_uid: int, server_uid: int) -> bool:
    return peer_uid in (0, server_uid)


# -- the socket ----------------------------------------------------------------------


@contextlib.contextmanager
def _sun_path(path: Path) -> Iterator[str]:
    """``path`` for bind/connect; one too long for ``sun_path`` is reached through a
    descriptor of its directory."""
    if len(os.fsencode(path)) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    buf = bytearray()
    while True:
        end = buf.find(b"\n")
        if end >= 0:
            line = bytes(buf[:end])
            break
        if len(buf) > MAX_REQUEST:
            raise TooBig(f"a request is at most {MAX_REQUEST} bytes")
        chunk = await reader.read(65536)
        if not chunk:
            line = bytes(buf)
            break
        buf += chunk
    if len(line) > MAX_REQUEST:
        raise TooBig(f"a request is at most {MAX_REQUEST} bytes")
    return line


class ControlServer:
    """``<state>/control.sock`` served on the running event loop."""

    def __init__(self, path: Path, users: UserStore) -> None:
        self.path = path
        self._users = users
        self._server: asyncio.Server | None = None
        self._active: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Listen; a socket left by a server that died is replaced (the caller holds the
        state directory's lock, so no live server owns it)."""
        try:
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise OperationFailed(f"{self.path} exists and is not a socket")
            self.path.unlink()
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _sun_path(self.path) as where:
                old = os.umask(0o177)
                try:
                    sock.bind(where)
                finally:
                    os.umask(old)
            self._server = await asyncio.start_unix_server(self._serve, sock=sock,
                                                           limit=MAX_REQUEST)
        except BaseException:
            sock.close()
            raise

    async def stop(self) -> None:
        """Stop listening, let requests under way finish (briefly), remove the socket."""
        if self._server is not None:
            self._server.close()
            self._server = None
            if self._active:
                _, late = await asyncio.wait(set(self._active), timeout=5)
                for task in late:
                    task.cancel()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        try:
            _, uid, _ = struct.unpack("3i", writer.get_extra_info("socket").getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            if not peer_allowed(uid, os.geteuid()):
                log.warning("control socket: refused a peer running as uid %d", uid)
                reply = error_reply(AccessDenied(
                    "the control socket serves only root and the server's own user"))
            else:
                try:
                    async with asyncio.timeout(READ_TIMEOUT):
                        raw = await _read_request(reader)
                except TimeoutError:
                    reply = error_reply(MalformedMessage(
                        f"no complete request within {READ_TIMEOUT:g} s"))
                except NfoError as e:
                    reply = error_reply(e)
                else:
                    reply = await answer(self._users, raw)
            writer.write(reply)
            await writer.drain()
        except OSError as e:
            log.debug("control socket: peer gone: %s", e)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if task is not None:
                self._active.discard(task)


def call(path: Path, req: Request, *, timeout: float = 60.0) -> Any:
    """Send ``req`` to the server listening on ``path``; its result, or its error raised.

    ``FileNotFoundError`` or ``ConnectionRefusedError`` when nothing listens there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        with _sun_path(path) as where:
            s.connect(where)
        buf = bytearray()
        try:
            s.sendall(encode_request(req))
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (refused) before it read the request: the reply tells
        try:
            while chunk := s.recv(65536):
                buf += chunk
                if len(buf) > _MAX_REPLY:
                    raise OperationFailed("the server's reply is too long")
        except TimeoutError:
            raise OperationFailed(f"the server did not answer within {timeout:g} s") from None
        except ConnectionError as e:
            if not buf:
                raise OperationFailed(f"the server closed the control socket: {e}") from None
    return parse_reply(bytes(buf))
