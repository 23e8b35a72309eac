"""Operational data: pushed by its owners, merged over config on read.

Owners (the workload manager, drivers, the server itself) push state subtrees
with ``set``; each owner's data is kept apart, so one owner's push never
rewrites another's.  Pushes are stored per record (one list entry at the
shallowest list level, or one top-level node) so that persisting a state change
costs one small durable write.  Memory holds only the records' keys (a data path
each); a read finds the records it selects by key, reads their RFC 7951 texts
from storage, parses them and merges them with running.  A million instances'
states thus cost the server their keys, not their texts.  One owner's records
never lie one below another: a push that would nest them folds them into one
record.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from nfo.datastore.storage.base import Storage
from nfo.errors import InvalidValue, NfoError
from nfo.schema import Fmt, Kind, Node, Parse, Schema, Tree, canonical_path, path_prefixes

__all__ = ["OperProvider", "OperStore", "check_owner"]

log = logging.getLogger(__name__)

_TOP = re.compile(r"/[^/\[]+")
"""The top-level step of a data path."""

_PAGE = 1000
"""Records read from storage in one query when a read takes every one of an owner's."""

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


def _canonical(key: str) -> str:
    """A record's key (as libyang writes it) as :func:`canonical_path` would spell it:
    the same string, unless a step has several keys (libyang orders them by schema)."""
    if "][" not in key:
        return key
    return canonical_path(key) or key


def _under(key: str, path: str) -> bool:
    """Whether the node at ``key`` lies below ``path`` (canonical spellings)."""
    return len(key) > len(path) and key.startswith(path) and key[len(path)] in "/["


class _KeySet:
    """Record keys, each once, with set semantics, held compactly.  The keys of one
    list's entries share their text up to the key's value (``/m:l/e[name='``), so each
    is kept as its value under that shared head: at a million instances' records,
    about 50 MB less than the keys themselves.  Other keys are kept whole.  Iteration
    gives the whole keys, then head by head; each group in the order first stored."""

    __slots__ = ("_group", "_head", "_heads", "_n", "_whole")

    def __init__(self) -> None:
        self._whole: dict[str, None] = {}
        self._heads: dict[str, dict[str, None]] = {}
        self._n = 0
        self._head = "[='"
        """The head last split off (holding the key's one ``[``): a key that starts with
        it, ends in ``']`` and has neither ``'`` nor ``[`` between splits the same way."""
        self._group: dict[str, None] | None = None
        """Its values (None: not held)."""

    def _find(self, key: str) -> tuple[str, dict[str, None] | None, str]:
        """The head ``key`` belongs to ("" for a key kept whole), its group (None: a
        head not held) and the key's entry there."""
        head = self._head
        if key.startswith(head) and key.endswith("']"):
            value = key[len(head):-2]
            if "'" not in value and "[" not in value:
                return head, self._group, value
        cut = key.find("='")
        if (cut < 0 or not key.endswith("']") or key.count("[") != 1
                or key.find("'", cut + 2) != len(key) - 2):
            return "", self._whole, key
        head = key[:cut + 2]
        group = self._heads.get(head)
        if "[" in head:
            self._head, self._group = head, group
        return head, group, key[cut + 2:-2]

    def __contains__(self, key: object) -> bool:
        if type(key) is not str:
            return False
        if not key.endswith("']"):
            return key in self._whole
        head = self._head
        if key.startswith(head):  # the fast path of _find, inline: a read's hot path
            value = key[len(head):-2]
            if "'" not in value and "[" not in value:
                group = self._group
                return group is not None and value in group
        _, found, entry = self._find(key)
        return found is not None and entry in found

    def add(self, key: str) -> bool:
        """Hold ``key``; whether it was not held yet."""
        head, group, entry = self._find(key)
        if group is None:
            group = self._heads[head] = {}
            if head == self._head:
                self._group = group
        elif entry in group:
            return False
        group[entry] = None
        self._n += 1
        return True

    def discard(self, key: str) -> bool:
        """Let go of ``key``; whether it was held."""
        head, group, entry = self._find(key)
        if group is None or entry not in group:
            return False
        del group[entry]
        self._n -= 1
        if not group and head:
            del self._heads[head]
            if self._head == head:
                self._group = None
        return True

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[str]:
        yield from self._whole
        for head, values in self._heads.items():
            for value in values:
                yield f"{head}{value}']"


class _Records:
    """One owner's records: their stored keys (data paths as libyang writes them), with
    what finds the records at, above and below a path at once."""

    __slots__ = ("_below", "_heads", "_spelt", "_stored", "keys")

    def __init__(self) -> None:
        self.keys = _KeySet()
        """Every stored key."""
        self._spelt: dict[str, str] = {}
        """Stored key -> canonical spelling, for the few keys that differ."""
        self._stored: dict[str, str] = {}
        """The reverse of ``_spelt``."""
        self._below: dict[str, int] = {}
        """How many records lie below each proper prefix of a key (canonical)."""
        self._heads: dict[str, list[str]] = {}
        """Prefixes of a key's part before its one predicate (every list entry of one list
        shares them)."""

    def _prefixes(self, key: str) -> list[str]:
        try:
            cut = key.find("[")
            if cut < 0 or key.find("[", cut + 1) >= 0 or not key.endswith("]"):
                return path_prefixes(key)
            head = key[:cut]
            found = self._heads.get(head)
            if found is None:
                found = self._heads[head] = [*path_prefixes(head), head]
            return found
        except ValueError:  # not a data path: a record no read selects
            return []

    def put(self, key: str) -> None:
        if self.keys.add(key):
            c = _canonical(key)
            if c != key:
                self._spelt[key] = c
                self._stored[c] = key
            for p in self._prefixes(c):
                self._below[p] = self._below.get(p, 0) + 1

    def drop(self, key: str) -> None:
        if not self.keys.discard(key):
            return
        c = self._spelt.pop(key, key)
        self._stored.pop(c, None)
        for p in self._prefixes(c):
            n = self._below[p] - 1
            if n:
                self._below[p] = n
            else:
                del self._below[p]

    def at(self, path: str) -> str | None:
        """The stored key of the record at ``path`` (canonical)."""
        key = self._stored.get(path, path)
        return key if key in self.keys else None

    def above(self, path: str) -> str | None:
        """The stored key of the record holding ``path`` (canonical) below its root."""
        for p in self._prefixes(path):
            key = self.at(p)
            if key is not None:
                return key
        return None

    def under(self, path: str) -> list[str]:
        """Stored keys of the records below ``path`` (canonical)."""
        if path not in self._below:
            return []
        return [k for k in self.keys if _under(self._spelt.get(k, k), path)]

    def has_under(self, path: str) -> bool:
        return path in self._below

    def overlapping(self, path: str) -> tuple[list[str], bool]:
        """Stored keys of the records at, above and below ``path`` (canonical), and
        whether ``path`` lies inside one of them (the one record above it)."""
        above = self.above(path)
        if above is not None:
            return [above], True
        at = self.at(path)
        return ([at] if at is not None else []) + self.under(path), False

    def nested(self) -> bool:
        """Whether a record lies below another (a record's key has records below it)."""
        return any(self._spelt.get(k, k) in self._below for k in self.keys)


class OperStore:
    def __init__(self, schema: Schema, storage: Storage) -> None:
        self.schema = schema
        self.storage = storage
        self.owners: dict[str, _Records] = {}
        self.providers: dict[str, OperProvider] = {}

    def load(self) -> None:
        for owner, key in self.storage.oper_keys():
            recs = self.owners.get(owner)
            if recs is None:
                recs = self.owners[owner] = _Records()
            recs.put(key)
        for owner, recs in self.owners.items():
            if recs.nested():
                self._unnest(owner, recs)

    def _unnest(self, owner: str, recs: _Records) -> None:
        """Records one below another (stored by an older nfo) merged in key order (the
        deeper one wins) and stored again side by side."""
        keys = sorted(recs.keys)
        region = Tree(self.schema)
        with region:
            for text in self._texts(owner, keys):
                region.merge(self._parse([text]))
            with self.storage.batch():
                self._rewrite(owner, recs, keys, region)
        log.info("operational records of %s stored side by side again", owner)

    def close(self) -> None:
        self.owners.clear()

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

    def _parse(self, texts: list[str]) -> Tree:
        """A tree of stored records (side by side); one that no longer parses (a schema
        that changed under it) is left out and logged."""
        try:
            return Tree.parse(self.schema, _joined(texts), Fmt.JSON, mode=Parse.DATA,
                              trusted=True)
        except (NfoError, ValueError):
            if len(texts) == 1:
                log.warning("a stored operational record does not parse: left out")
                return Tree(self.schema)
        tree = Tree(self.schema)
        for text in texts:
            tree.merge(self._parse([text]))
        return tree

    def _texts(self, owner: str, keys: list[str]) -> list[str]:
        """The stored texts of the owner's records at ``keys``; every one of them when
        ``keys`` holds them all (read in pages, in key order)."""
        recs = self.owners.get(owner)
        if recs is not None and len(keys) > _PAGE and len(keys) == len(recs.keys):
            return list(self.texts(owner))
        found = self.storage.oper_texts(owner, keys)
        texts = [t for t in found if t is not None]
        if len(texts) < len(found):
            log.warning("%d operational record(s) of %s missing from storage: left out",
                        len(found) - len(texts), owner)
        return texts

    def texts(self, owner: str) -> Iterator[str]:
        """Every record of the owner as stored, in key order, read from storage a page at
        a time (to be consumed before the next write)."""
        after: str | None = None
        while True:
            page = self.storage.oper_page(owner, after, _PAGE)
            for _, text in page:
                yield text
            if len(page) < _PAGE:
                return
            after = page[-1][0]

    def _region(self, owner: str, keys: list[str]) -> Tree:
        return self._parse(self._texts(owner, keys))

    def _store(self, owner: str, recs: _Records, key: str, text: str | None) -> None:
        if text is None:
            recs.drop(key)
        else:
            recs.put(key)
        self.storage.put_oper(owner, key, text)

    def _rewrite(self, owner: str, recs: _Records, old: list[str], region: Tree) -> None:
        """Store ``region`` (what the records at ``old`` held, changed) as records."""
        new = {}
        for top in region.nodes():
            for r in _record_roots(top):
                with Tree.copy_of(r) as one:
                    new[r.path] = one.print(Fmt.JSON)
        for key in old:
            if key not in new:
                self._store(owner, recs, key, None)
        for key, text in new.items():
            self._store(owner, recs, key, text)

    def set(self, owner: str, content: str | bytes, fmt: Fmt | str, *,
            replace: bool = False) -> None:
        """Merge a pushed subtree into the owner's data and persist what it touched.

        With ``replace``, each pushed record (list entry) replaces the owner's
        previous one instead of merging into it, so leaves left out are removed.
        """
        part = Tree.parse(self.schema, content, fmt, mode=Parse.DATA,
                          what="parsing operational data")
        with part:
            if part.is_empty():
                return
            roots = [r for top in part.nodes() for r in _record_roots(top)]
            texts = {}
            if replace and len(roots) == 1:
                # one record replacing the owner's: stored as pushed (it parses to the same)
                texts[roots[0].path] = (content if isinstance(content, str) else
                                        content.decode()) \
                    if Fmt(fmt) is Fmt.JSON else part.print(Fmt.JSON)
            self._put(owner, part, roots, replace, texts)

    def set_records(self, owner: str, joined: str, records: Mapping[str, str]) -> None:
        """Replace the owner's records at the keys of ``records`` (data paths) in one
        parse: ``joined`` is RFC 7951 JSON holding exactly those records side by side,
        ``records`` each one's own document (stored as given, as :meth:`set` stores a
        single replacing record).  Keys that do not match what ``joined`` holds are
        stored as parsed instead."""
        part = Tree.parse(self.schema, joined, Fmt.JSON, mode=Parse.DATA,
                          what="parsing operational data")
        with part:
            if part.is_empty():
                return
            roots = [r for top in part.nodes() for r in _record_roots(top)]
            match = len(roots) == len(records) and all(r.path in records for r in roots)
            self._put(owner, part, roots, True, records if match else {})

    def _put(self, owner: str, part: Tree, roots: list[Node], replace: bool,
             texts: Mapping[str, str]) -> None:
        """Merge ``part`` (its records at ``roots``) into the owner's data and persist
        each record (``texts``: their JSON, where known)."""
        recs = self.owners.setdefault(owner, _Records())
        keys = [r.path for r in roots]
        spelt = [_canonical(k) for k in keys]
        alone = all((replace or recs.at(c) is None) and not recs.has_under(c)
                    and recs.above(c) is None for c in spelt)
        with self._durably(len(keys) if alone else 2):
            if alone:  # each record new, or replacing its own
                for r, key in zip(roots, keys, strict=True):
                    text = texts.get(key)
                    if text is None:
                        with Tree.copy_of(r) as one:
                            text = one.print(Fmt.JSON)
                    self._store(owner, recs, key, text)
                return
            old = sorted({k for c in spelt for k in recs.overlapping(c)[0]})
            with self._region(owner, old) as region:
                if replace:
                    for key in keys:
                        node = region.node(key)
                        if node is not None:
                            region.remove(node)
                region.merge(part)
                self._rewrite(owner, recs, old, region)

    def _selected(self, recs: _Records, path: str) -> tuple[list[str], bool]:
        """Stored keys of the records holding what ``path`` selects, and whether they
        hold nothing else (whole records at or below a path naming one node)."""
        top = _TOP.match(path)
        if top is not None and ":" in top.group() and not recs.has_under(top.group()) \
                and recs.at(top.group()) is None:
            return [], True  # nothing of this owner under that top-level node
        keyed = self.schema.keyed_path(path)
        if keyed is None:
            return list(recs.keys), False
        c, exact = keyed
        keys, inside = recs.overlapping(c)
        return keys, exact and not inside

    def delete(self, owner: str, path: str) -> bool:
        """Remove the owner's node at ``path`` (and its subtree); False if absent."""
        recs = self.owners.get(owner)
        if recs is None:
            return False
        old, whole = self._selected(recs, path)
        if not old:
            return False
        if whole:
            with self._durably(len(old)):
                for key in old:
                    self._store(owner, recs, key, None)
            return True
        with self._region(owner, old) as region:
            node = region.node(path)
            if node is None:
                return False
            region.remove(node)
            with self._durably():
                self._rewrite(owner, recs, old, region)
        return True

    def clear(self, owner: str) -> None:
        self.storage.clear_oper(owner)
        self.owners.pop(owner, None)

    def provide(self, path: str, provider: OperProvider) -> None:
        """Register data computed when it is read (sysrepo's operational get
        subscription): session lists, counters, anything too volatile to push."""
        if path in self.providers:
            raise InvalidValue(f"{path} already has an operational data provider")
        self.providers[path] = provider

    def unprovide(self, path: str) -> None:
        self.providers.pop(path, None)

    def touches(self, path: str) -> bool:
        """Whether an owner may hold the node at ``path`` (a data path naming one node),
        or a provider may give data at, above or below it."""
        if any(_overlaps(path, p) for p in self.providers):
            return True
        return any(self._selected(recs, path)[0] for recs in self.owners.values())

    def holds(self, path: str) -> bool:
        """Whether an owner holds the node at ``path`` (a data path naming one node)."""
        for owner, recs in self.owners.items():
            old, whole = self._selected(recs, path)
            if old and whole:
                return True
            if old:
                with self._region(owner, old) as region:
                    if region.node(path) is not None:
                        return True
        return False

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
        """Merge every owner's data and every provider's, or the part at ``select``
        (``one``: a data path naming one node), into ``base``."""
        for owner, recs in self.owners.items():
            if select is None:
                keys, whole = list(recs.keys), True
            else:
                keys, whole = self._selected(recs, select)
            if not keys:
                continue
            with self._region(owner, keys) as region:
                if whole:  # nothing but what was selected
                    base.merge(region)
                else:
                    region.extract(select, into=base, one=one)
        for tree in self._provided(select):
            tree.extract(select, into=base, one=one)


def _overlaps(select: str, path: str) -> bool:
    """Whether a provider registered at ``path`` may give data ``select`` asks for."""
    return select.startswith(path) or path.startswith(select)


def check_owner(owner: str) -> str:
    if not owner or len(owner) > 128:
        raise InvalidValue("an operational data owner needs a name of 1..128 characters")
    return owner
