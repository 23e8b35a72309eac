"""Operational data: pushed by its owners, merged over config on read.

Owners (the workload manager, drivers, the server itself) push state subtrees
with ``set``; each owner's data lives in its own tree, so one owner's push
never rewrites another's.  Pushes are stored per record (one list entry at
the shallowest list level, or one top-level node) so that persisting a
state change costs one small durable write.  Reads merge running with every
owner's tree and, when asked, tag nodes with their RFC 8342 origin.
"""

from __future__ import annotations

import bisect
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from nfo.datastore.storage.base import Storage
from nfo.errors import InvalidValue, NfoError
from nfo.schema import Fmt, Kind, Node, Parse, Schema, Tree

__all__ = ["OperProvider", "OperStore", "check_owner"]

log = logging.getLogger(__name__)

_TOP = re.compile(r"/[^/\[]+")
"""The top-level step of a data path."""

OperProvider = Callable[[], str]
"""Returns RFC 7951 JSON for the subtree it was registered for, computed at read time."""


def _record_roots(node: Node) -> Iterator[Node]:
    """Nodes a push is stored by: the shallowest list entries, else the top node."""
    kind = node.kind
    if kind is Kind.LIST:
        yield node
        return
    if kind is Kind.CONTAINER:
        kids = node.children()
        if kids and all(c.kind in (Kind.LIST, Kind.CONTAINER) for c in kids):
            for c in kids:
                yield from _record_roots(c)
            return
    yield node


def _nested(keys: list[str]) -> bool:
    """Whether a record lies below another among ``keys`` (sorted data paths)."""
    for key in keys:
        below = key + "/"
        i = bisect.bisect_left(keys, below)
        if i < len(keys) and keys[i].startswith(below):
            return True
    return False


_ENVELOPE = re.compile(r'\{(?:"[^"\\]+":\{)*"[^"\\]+":\[')


def _joined(contents: list[str]) -> str:
    """Stored records (RFC 7951 JSON documents) as one document."""
    if len(contents) == 1:
        return contents[0]
    m = _ENVELOPE.match(contents[0])
    if m is not None:
        # entries of one list in the same envelope (every instance's state): their texts
        # side by side, not read into Python and written out again.  Sound because a
        # stored record holds exactly its one entry: set() and set_records() store a
        # text as given only when it parses to the one record of its key.
        head = m.group()
        tail = "]" + "}" * head.count("{")
        if all(c.startswith(head) and c.endswith(tail) for c in contents):
            cut = len(tail)
            return head + ",".join([c[len(head):-cut] for c in contents]) + tail
    doc: dict[str, Any] = {}
    for text in contents:
        _join(doc, json.loads(text))
    return json.dumps(doc)


def _join(into: dict[str, Any], part: dict[str, Any]) -> None:
    for k, v in part.items():
        have = into.get(k)
        if isinstance(have, dict) and isinstance(v, dict):
            _join(have, v)
        elif isinstance(have, list) and isinstance(v, list):
            have.extend(v)
        elif k in into:
            raise ValueError(f"records overlap at {k!r}")
        else:
            into[k] = v


class OperStore:
    def __init__(self, schema: Schema, storage: Storage) -> None:
        self.schema = schema
        self.storage = storage
        self.owners: dict[str, Tree] = {}
        self._keys: dict[str, set[str]] = {}
        self.providers: dict[str, OperProvider] = {}
        self.generation = 0
        """Counts the changes of the owners' data (what :meth:`touches` remembers)."""
        self._tops: tuple[int, dict[str, list[Tree]]] = (-1, {})

    def load(self) -> None:
        self.generation += 1
        by_owner: dict[str, list[str]] = {}
        for rec in self.storage.load_oper():
            by_owner.setdefault(rec.owner, []).append(rec.content)
            self._keys.setdefault(rec.owner, set()).add(rec.key)
        for owner, contents in by_owner.items():
            tree = self.owners.setdefault(owner, Tree(self.schema))
            if not _nested(sorted(self._keys[owner])):
                # records side by side (list entries, top nodes): joined, they parse at once
                try:
                    tree.merge(Tree.parse(self.schema, _joined(contents), Fmt.JSON,
                                          mode=Parse.DATA))
                    continue
                except (NfoError, ValueError):
                    tree.free()
            for text in contents:  # in key order: a record below another wins
                tree.merge(Tree.parse(self.schema, text, Fmt.JSON, mode=Parse.DATA))

    def close(self) -> None:
        self.generation += 1
        for t in self.owners.values():
            t.free()
        self.owners.clear()
        self._keys.clear()

    def reload(self) -> None:
        """Back to what storage holds, after a write that was not made durable (a full
        disk): what a failed write changed in memory must not be served."""
        self.close()
        self.load()

    @contextmanager
    def _durably(self, writes: int = 2) -> Iterator[None]:
        """The persists inside (``writes`` of them at most) are one storage transaction;
        if it fails, memory is reloaded from storage.  One write is atomic by itself and
        needs no transaction (nor, inside a group commit, a savepoint) of its own."""
        try:
            if writes == 1:
                yield
            else:
                with self.storage.batch():
                    yield
        except BaseException:
            self.reload()
            raise

    def _persist(self, owner: str, tree: Tree, key: str, text: str | None = None) -> None:
        """Store the owner's record at ``key`` (``text``: its JSON, when known)."""
        if text is None:
            node = tree.node(key)
            if node is None:
                self.storage.put_oper(owner, key, None)
                self._keys.get(owner, set()).discard(key)
                return
            with Tree.copy_of(node) as record:
                text = record.print(Fmt.JSON)
        self.storage.put_oper(owner, key, text)
        self._keys.setdefault(owner, set()).add(key)

    def set(self, owner: str, content: str | bytes, fmt: Fmt | str, *,
            replace: bool = False) -> None:
        """Merge a pushed subtree into the owner's data and persist what it touched.

        With ``replace``, each pushed record (list entry) replaces the owner's
        previous one instead of merging into it, so leaves left out are removed.
        """
        part = Tree.parse(self.schema, content, fmt, mode=Parse.DATA,
                          what="parsing operational data")
        if part.is_empty():
            return
        keys = [r.path for top in part.nodes() for r in _record_roots(top)]
        texts = {}
        if replace and len(keys) == 1:
            # one record replacing the owner's: stored as pushed (it parses to the same)
            texts[keys[0]] = (content if isinstance(content, str) else content.decode()) \
                if Fmt(fmt) is Fmt.JSON else part.print(Fmt.JSON)
        self._put(owner, part, keys, replace, texts)

    def set_records(self, owner: str, joined: str, records: Mapping[str, str]) -> None:
        """Replace the owner's records at the keys of ``records`` (data paths) in one
        parse: ``joined`` is RFC 7951 JSON holding exactly those records side by side,
        ``records`` each one's own document (stored as given, as :meth:`set` stores a
        single replacing record).  Keys that do not match what ``joined`` holds are
        stored as parsed instead."""
        part = Tree.parse(self.schema, joined, Fmt.JSON, mode=Parse.DATA,
                          what="parsing operational data")
        if part.is_empty():
            return
        keys = [r.path for top in part.nodes() for r in _record_roots(top)]
        match = len(keys) == len(records) and set(keys) == records.keys()
        self._put(owner, part, keys, True, records if match else {})

    def _put(self, owner: str, part: Tree, keys: list[str], replace: bool,
             texts: Mapping[str, str]) -> None:
        """Merge ``part`` (consumed; its records at ``keys``) into the owner's tree and
        persist each record (``texts``: their JSON, where known)."""
        self.generation += 1
        with self._durably(len(keys)):
            tree = self.owners.setdefault(owner, Tree(self.schema))
            if replace:
                for k in keys:
                    old = tree.node(k)
                    if old is not None:
                        tree.remove(old)
            tree.merge(part, long_lived=True)
            for k in keys:
                self._persist(owner, tree, k, texts.get(k))

    def delete(self, owner: str, path: str) -> bool:
        """Remove the owner's node at ``path`` (and its subtree); False if absent."""
        tree = self.owners.get(owner)
        if tree is None:
            return False
        node = tree.node(path)
        if node is None:
            return False
        self.generation += 1
        with self._durably():
            tree.remove(node)
            for key in list(self._keys.get(owner, ())):
                if key == path or key.startswith(path + "/") or key.startswith(path + "["):
                    self.storage.put_oper(owner, key, None)
                    self._keys[owner].discard(key)
                elif path.startswith(key + "/"):
                    self._persist(owner, tree, key)
        return True

    def clear(self, owner: str) -> None:
        self.generation += 1
        self.storage.clear_oper(owner)
        tree = self.owners.pop(owner, None)
        if tree is not None:
            tree.free()
        self._keys.pop(owner, None)

    def provide(self, path: str, provider: OperProvider) -> None:
        """Register data computed when it is read (sysrepo's operational get
        subscription): session lists, counters, anything too volatile to push."""
        if path in self.providers:
            raise InvalidValue(f"{path} already has an operational data provider")
        self.providers[path] = provider

    def unprovide(self, path: str) -> None:
        self.providers.pop(path, None)

    def touches(self, path: str) -> bool:
        """Whether an owner holds the node at ``path`` (a data path naming one node),
        or a provider may give data at, above or below it."""
        if any(_overlaps(path, p) for p in self.providers):
            return True
        at, tops = self._tops
        if at != self.generation:
            tops = {}
            for t in self.owners.values():
                for n in t.nodes():
                    tops.setdefault(f"/{n.module}:{n.name}", []).append(t)
            self._tops = (self.generation, tops)
        top = _TOP.match(path)
        return top is not None and any(t.node(path) is not None
                                       for t in tops.get(top.group(), ()))

    def _provided(self, select: str | None) -> Iterator[Tree]:
        for path, provider in list(self.providers.items()):
            if select is not None and not _overlaps(select, path):
                continue
            try:
                tree = Tree.parse(self.schema, provider(), Fmt.JSON, mode=Parse.DATA,
                                  what=f"operational data provided for {path}")
            except Exception:
                log.exception("operational data provider for %s failed", path)
                continue
            with tree:
                yield tree

    def merged_into(self, base: Tree, select: str | None = None, *, one: bool = False) -> None:
        """Merge (copies of) every owner's data and every provider's, or the part at
        ``select`` (``one``: a data path naming one node), into ``base``."""
        for tree in self.owners.values():
            if not tree.is_empty():
                tree.extract(select, into=base, one=one)
        for tree in self._provided(select):
            tree.extract(select, into=base, one=one)


def _overlaps(select: str, path: str) -> bool:
    """Whether a provider registered at ``path`` may give data ``select`` asks for."""
    return select.startswith(path) or path.startswith(select)


def check_owner(owner: str) -> str:
    if not owner or len(owner) > 128:
        raise InvalidValue("an operational data owner needs a name of 1..128 characters")
    return owner
