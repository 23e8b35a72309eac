"""The client's protocol logic as data: each operation is a :class:`Call` (method, path,
body) and a function reading its answer, shared by the sync and the asyncio client.

Why: the two clients then differ only in how they send a request (a thin transport
each), and the RESTCONF paths, bodies and answer shapes exist once.  Data goes in as
plain RFC 7951 dicts (member names without the module prefix inside an entry) or as
nfo.bindings objects; it comes out as dicts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

__all__ = [
    "CATALOG",
    "INSTANCES",
    "JSON",
    "STATE_STREAM",
    "USERS",
    "VIMS",
    "Call",
    "Kind",
    "Resume",
    "SseParser",
    "entries_of",
    "state_change",
]

JSON = "application/yang-data+json"
PATCH_JSON = "application/yang-patch+json"


@dataclass(frozen=True)
class Kind:
    """One list the client manages: where it lives and how an entry is named."""

    module: str
    container: str
    list: str
    key: str

    @property
    def path(self) -> str:
        return f"/restconf/data/{self.module}:{self.container}"

    def entry_path(self, key: str) -> str:
        return f"{self.path}/{self.list}={quote(key, safe='')}"


CATALOG = Kind("nfo-catalog", "catalog", "nf-descriptor", "id")
VIMS = Kind("nfo-vim", "vims", "vim", "name")
INSTANCES = Kind("nfo-instances", "nf-instances", "nf-instance", "name")
USERS = Kind("nfo-users", "users", "user", "name")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any = None
    params: tuple[tuple[str, str], ...] = ()
    read: Callable[[Any], Any] = lambda _: None
    """Turns the decoded JSON answer (None when empty) into the call's result."""
    missing_ok: bool = False
    """A 404 is an answer (the reader gets None), not an error."""
    content_type: str = JSON


def _unprefix(module: str, data: dict[str, Any]) -> dict[str, Any]:
    p = module + ":"
    return {k[len(p):] if k.startswith(p) else k: v for k, v in data.items()}


def _bound(data: Any) -> dict[str, Any] | None:
    """An nfo.bindings object as RFC 7951 JSON; None for anything else."""
    if not hasattr(data, "_pyangbind_elements"):
        return None
    from pyangbind.lib import pybindJSON
    out: dict[str, Any] = json.loads(pybindJSON.dumps(data, mode="ietf"))
    return out


def entries_of(kind: Kind, data: Any) -> list[dict[str, Any]]:
    """List entries as dicts, from: one entry (a dict or a bindings entry), the module's
    data (``{"nfo-instances:nf-instances": {...}}`` or the bindings' module object), or
    an iterable of entries."""
    bound = _bound(data)
    if bound is not None:
        data = bound
        if f"{kind.module}:{kind.container}" not in data:
            return [_unprefix(kind.module, data)]
    if isinstance(data, dict):
        top = data.get(f"{kind.module}:{kind.container}")
        if top is not None:
            return [dict(e) for e in top.get(kind.list, [])]
        return [_unprefix(kind.module, data)]
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        out: list[dict[str, Any]] = []
        for d in data:
            out += entries_of(kind, d)
        return out
    raise TypeError(f"a {kind.list} is a dict or an nfo.bindings object, "
                    f"not {type(data).__name__}")


# -- reading answers --------------------------------------------------------------------

def _list(kind: Kind) -> Callable[[Any], list[dict[str, Any]]]:
    def read(doc: Any) -> list[dict[str, Any]]:
        if doc is None:
            return []
        return list(doc.get(f"{kind.module}:{kind.container}", {}).get(kind.list, []))
    return read


def _one(kind: Kind) -> Callable[[Any], dict[str, Any] | None]:
    def read(doc: Any) -> dict[str, Any] | None:
        if doc is None:
            return None
        entries = doc.get(f"{kind.module}:{kind.list}") or []
        return dict(entries[0]) if entries else None
    return read


# -- calls ------------------------------------------------------------------------------

def as_bindings(kind: Kind, entry: dict[str, Any]) -> Any:
    """One entry as its nfo.bindings object; the dict itself, with a warning, when the
    bindings cannot hold it (data of a module they were not generated with, such as a
    VIM type the server has a plugin for)."""
    import importlib
    import warnings

    from pyangbind.lib import pybindJSON
    name = kind.module.replace("-", "_")
    try:
        module = importlib.import_module(f"nfo.bindings.{name}")
        top = pybindJSON.loads_ietf({f"{kind.module}:{kind.container}": {kind.list: [entry]}},
                                    module, name)
        return getattr(getattr(top, kind.container.replace("-", "_")),
                       kind.list.replace("-", "_"))[entry[kind.key]]
    except Exception as e:  # pyangbind raises whatever its checks raise
        warnings.warn(f"{kind.list} {entry.get(kind.key)!r} does not fit nfo.bindings "
                      f"({type(e).__name__}: {e}); kept as a dict", stacklevel=3)
        return entry


def list_entries(kind: Kind, *, bindings: bool = False) -> Call:
    read = _list(kind)
    if bindings:
        def read_bound(doc: Any) -> list[Any]:
            return [as_bindings(kind, e) for e in _list(kind)(doc)]
        read = read_bound
    return Call("GET", kind.path, read=read, missing_ok=True)


def get_entry(kind: Kind, key: str, *, bindings: bool = False) -> Call:
    read: Callable[[Any], Any] = _one(kind)
    if bindings:
        def read_bound(doc: Any) -> Any:
            e = _one(kind)(doc)
            return None if e is None else as_bindings(kind, e)
        read = read_bound
    return Call("GET", kind.entry_path(key), read=read, missing_ok=True)


def create_entries(kind: Kind, entries: list[dict[str, Any]]) -> Call:
    """Every entry in one YANG Patch of ``create`` edits: one transaction, refused whole
    (data-exists) if any of them exists."""
    edits = [{"edit-id": str(n), "operation": "create",
              "target": f"/{kind.list}={quote(str(e.get(kind.key, '')), safe='')}",
              "value": {f"{kind.module}:{kind.list}": [e]}}
             for n, e in enumerate(entries, 1)]
    body = {"ietf-yang-patch:yang-patch": {"patch-id": f"create-{kind.list}", "edit": edits}}
    return Call("PATCH", kind.path, body=body, content_type=PATCH_JSON)


def update_entry(kind: Kind, key: str, changes: dict[str, Any]) -> Call:
    """Merge ``changes`` into one existing entry (RESTCONF PATCH: the entry must exist)."""
    return Call("PATCH", kind.entry_path(key),
                body={f"{kind.module}:{kind.list}": [{**changes, kind.key: key}]})


def delete_entry(kind: Kind, key: str) -> Call:
    return Call("DELETE", kind.entry_path(key))


def action(kind: Kind, key: str, name: str, inputs: dict[str, Any] | None = None) -> Call:
    body = {f"{kind.module}:input": inputs or {}}

    def read(doc: Any) -> dict[str, Any]:
        return dict((doc or {}).get(f"{kind.module}:output", {}))
    return Call("POST", f"{kind.entry_path(key)}/{name}", body=body, read=read)


# -- the state-change stream ------------------------------------------------------------

STATE_STREAM = "/restconf/streams/nfo/json"
"""Server-Sent Events of the ``nfo`` stream: nf-instance-state-change notifications."""


class SseParser:
    """Lines of a ``text/event-stream`` in, each event's data out (RFC 8040 section 6.4:
    one JSON notification per event, possibly over several ``data:`` lines)."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        if line == "":
            data, self._data = self._data, []
            return "\n".join(data) if data else None
        if line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
        return None


def state_change(payload: str) -> dict[str, Any] | None:
    """An event's state change: time, name, old-status, new-status, reason; None for
    any other notification."""
    try:
        n = json.loads(payload)["ietf-restconf:notification"]
    except (ValueError, KeyError, TypeError):
        return None
    ch = n.get("nfo-instances:nf-instance-state-change")
    if not isinstance(ch, dict):
        return None
    return {"time": n.get("eventTime"), **ch}


class Resume:
    """Where a watch stands, so that a reconnection asks for the replay from its last
    event (``start-time``) and skips what it has already delivered.  Before any event,
    it resumes from the server's own time of the first connection (its ``Date``)."""

    def __init__(self, since: str | None) -> None:
        self.last = since
        self._at_last: set[tuple[Any, ...]] = set()
        self._connected: str | None = None

    def params(self) -> tuple[tuple[str, str], ...]:
        start = self.last or self._connected
        return (("start-time", start),) if start else ()

    def connected(self, http_date: str | None) -> None:
        if self._connected is None and http_date:
            try:
                when = parsedate_to_datetime(http_date).astimezone(UTC)
            except (TypeError, ValueError):
                return
            self._connected = when.strftime("%Y-%m-%dT%H:%M:%SZ")

    def accept(self, ev: dict[str, Any]) -> bool:
        t = ev.get("time") or ""
        key = (t, ev.get("name"), ev.get("old-status"), ev.get("new-status"))
        if self.last is not None and (
                t < self.last or (t == self.last and key in self._at_last)):
            return False
        if t != self.last:
            self.last, self._at_last = t, set()
        self._at_last.add(key)
        return True
