"""The client's protocol logic as data: each operation is a :class:`Call` (method, path,
body) and a function reading its answer, shared by the sync and the asyncio client.

Why: the two clients then differ only in how they send a request (a thin transport
each), and the RESTCONF paths, bodies and answer shapes exist once.  Data goes in as
plain RFC 7951 dicts (member names without the module prefix inside an entry) or as
nfo.bindings objects; it comes out as dicts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

__all__ = [
    "CATALOG",
    "INSTANCES",
    "JSON",
    "STATE_STREAM",
    "USERS",
    "VIMS",
    "Call",
    "Direction",
    "Kind",
    "Page",
    "Resume",
    "SseParser",
    "diff",
    "entries_of",
    "history",
    "list_page",
    "rollback",
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

    @property
    def list_path(self) -> str:
        """The list resource itself (what a paged read targets)."""
        return f"{self.path}/{self.list}"

    def entry_path(self, key: str) -> str:
        return f"{self.list_path}={quote(key, safe='')}"


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

    @property
    def target(self) -> str:
        """The path with the query, percent-encoded as RESTCONF reads it (RFC 3986: a
        space is ``%20``; ``+`` is not a space there, as form encoding would have it)."""
        if not self.params:
            return self.path
        return f"{self.path}?{urlencode(self.params, quote_via=quote, safe='/:')}"


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


Direction = Literal["forwards", "backwards"]
REMAINING = "ietf-list-pagination:remaining"


@dataclass(frozen=True)
class Page(Sequence[Any]):
    """One page of a list read with paging (docs/pagination.md): its entries, in the
    server's order, and how many entries of the (filtered) list come after them.  A
    sequence of its entries, so it iterates, indexes and has a length like a list."""

    entries: list[Any]
    remaining: int
    """Entries left out after this page (0: this is the last page)."""
    offset: int = 0
    """How many entries were skipped before it."""

    @property
    def next_offset(self) -> int | None:
        """The ``offset`` of the next page; None after the last."""
        return self.offset + len(self.entries) if self.remaining else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: Any) -> Any:
        return self.entries[i]


def list_page(kind: Kind, *, limit: int | None = None, offset: int | None = None,
              sort_by: str | None = None, direction: Direction | None = None,
              where: str | None = None, bindings: bool = False) -> Call:
    """A paged read of the list resource: the server filters (``where``, an XPath with
    each entry as the context node), sorts (``sort_by``, a descendant such as ``name``
    or ``state/oper-status``; ``direction``), skips ``offset`` entries and returns at
    most ``limit``; the first entry's ``remaining`` annotation becomes
    :attr:`Page.remaining`."""
    params = tuple((name, str(value)) for name, value in (
        ("where", where), ("sort-by", sort_by), ("direction", direction),
        ("offset", offset), ("limit", limit)) if value is not None)
    member = f"{kind.module}:{kind.list}"

    def read(doc: Any) -> Page:
        entries = [dict(e) for e in (doc or {}).get(member, [])]
        remaining = 0
        if entries:
            note = entries[0].pop("@", None) or {}
            remaining = int(note.get(REMAINING, 0))
        if bindings:
            entries = [as_bindings(kind, e) for e in entries]
        return Page(entries, remaining, offset or 0)
    return Call("GET", kind.list_path, params=params, read=read, missing_ok=True)


def get_entry(kind: Kind, key: str, *, bindings: bool = False) -> Call:
    read: Callable[[Any], Any] = _one(kind)
    if bindings:
        def read_bound(doc: Any) -> Any:
            e = _one(kind)(doc)
            return None if e is None else as_bindings(kind, e)
        read = read_bound
    return Call("GET", kind.entry_path(key), read=read, missing_ok=True)


def create_entries(kind: Kind, entries: list[dict[str, Any]], *,
                   comment: str | None = None) -> Call:
    """Every entry in one YANG Patch of ``create`` edits: one transaction, refused whole
    (data-exists) if any of them exists; ``comment`` is the patch's, which the commit's
    history entry shows."""
    edits = [{"edit-id": str(n), "operation": "create",
              "target": f"/{kind.list}={quote(str(e.get(kind.key, '')), safe='')}",
              "value": {f"{kind.module}:{kind.list}": [e]}}
             for n, e in enumerate(entries, 1)]
    patch: dict[str, Any] = {"patch-id": f"create-{kind.list}", "edit": edits}
    if comment is not None:
        patch["comment"] = comment
    body = {"ietf-yang-patch:yang-patch": patch}
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


# -- transactions (yang/nfo-transactions.yang, docs/transactions.md) --------------------

TRANSACTIONS = "nfo-transactions"


def _rpc(name: str, inputs: dict[str, Any], read: Callable[[Any], Any]) -> Call:
    """An operation of nfo-transactions; ``read`` gets its output (``{}`` when the
    server answered 204, no output)."""
    def read_output(doc: Any) -> Any:
        return read((doc or {}).get(f"{TRANSACTIONS}:output", {}))
    return Call("POST", f"/restconf/operations/{TRANSACTIONS}:{name}",
                body={f"{TRANSACTIONS}:input": inputs}, read=read_output)


def _revision(value: Any) -> int | None:
    """A revision-number as the client gives it: an int (RFC 7951 prints the YANG
    uint64 as a string)."""
    return None if value is None else int(value)


def history(*, limit: int = 20, before: int | None = None) -> Call:
    """The commits of running, newest first: at most ``limit`` (1..1000), older than
    revision ``before`` (the next page) when given.  Each a dict: ``revision`` (int),
    ``timestamp``, ``user``, ``comment``, ``changes`` (absent when the state before it
    is no longer retained)."""
    inputs: dict[str, Any] = {"limit": limit}
    if before is not None:
        inputs["before"] = str(before)

    def read(out: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**c, "revision": _revision(c.get("revision"))}
                for c in out.get("commit", [])]
    return _rpc("history", inputs, read)


def diff(revision: int | None = None) -> Call:
    """The changes of commit ``revision`` of running, or (None) the pending changes of
    the caller's candidate.  Each a dict: ``operation``, ``path``, ``value``,
    ``previous-value``, ``data`` (a created or deleted subtree, decoded from the RFC
    7951 JSON the server sends as a string), ``after`` (a move)."""
    inputs = {} if revision is None else {"revision": str(revision)}

    def read(out: dict[str, Any]) -> list[dict[str, Any]]:
        changes = [dict(ch) for ch in out.get("change", [])]
        for ch in changes:
            if isinstance(ch.get("data"), str):
                ch["data"] = json.loads(ch["data"])
        return changes
    return _rpc("diff", inputs, read)


def rollback(revision: int, *, comment: str | None = None) -> Call:
    """Make running what it was right after ``revision`` (0: empty), as a new commit;
    the result is that commit's revision, None when running already was that."""
    inputs: dict[str, Any] = {"revision": str(revision)}
    if comment is not None:
        inputs["comment"] = comment

    def read(out: dict[str, Any]) -> int | None:
        return _revision(out.get("revision"))
    return _rpc("rollback", inputs, read)


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
