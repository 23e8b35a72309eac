"""The oracle of the RESTCONF fuzzer: what running must hold of ``nfo-test:top``.

Why a second implementation: the fuzzer compares the server's datastore with
this model after every request, so an edit that was half applied, applied
although refused, or lost although acknowledged shows up at once.  The model
is small and written from the RFCs (RFC 8040 methods, RFC 6241 edit
operations, RFC 7950 validation of the ``nfo-test`` module, RFC 7951 JSON),
not from nfo's code: it keeps the data as RFC 7951 JSON (canonical values,
explicitly set nodes only, so it compares with a ``with-defaults=explicit``
read) and predicts, for each write, either the new content (and the 2xx
status) or a refusal.  A refused write must leave the data as it was.

Where the RFCs leave the choice to the implementation, the model follows
nfo's documented choice: a merge that repeats an existing value does not
count as writing that node (so it neither selects a ``choice`` case nor
re-checks a ``when``), as libyang decides.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MOD",
    "NS",
    "TOP",
    "Invalid",
    "Model",
    "Node",
    "Step",
    "Target",
    "canonical",
    "value_error",
]

MOD = "nfo-test"
NS = "urn:nfo:test"
Json = Any


class Invalid(Exception):
    """The model predicts a refusal (any 4xx)."""


# -- the schema of nfo-test:top -----------------------------------------------------------

Check = Callable[[Json, bool], Json]
"""(value as sent, XML?) -> canonical RFC 7951 JSON value; raises Invalid."""

_IPV4 = re.compile(r"^(([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\.){3}"
                   r"([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])$")
_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
"""Characters outside XML 1.0's Char, which is also YANG's (RFC 7950 section 9.4)."""


def _text(v: Json) -> str:
    """A scalar as the XML encoder writes it."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _integer(lo: int, hi: int) -> Check:
    def check(v: Json, xml: bool) -> Json:
        if xml:
            t = _text(v)
            if not re.fullmatch(r"-?[0-9]+", t) or (len(t.lstrip("-")) > 1 and
                                                    t.lstrip("-").startswith("0")):
                raise Invalid(f"not an integer: {t!r}")
            n = int(t)
        else:
            if type(v) is not int:
                raise Invalid(f"not a JSON integer: {v!r}")
            n = v
        if not lo <= n <= hi:
            raise Invalid(f"{n} out of range")
        return n
    return check


def _string(lo: int = 0, hi: int = 1 << 30) -> Check:
    def check(v: Json, xml: bool) -> Json:
        if xml:
            s = _text(v)
            if not xml_safe(s):
                raise Invalid("not representable in XML")
        elif isinstance(v, str):
            s = v
            if not xml_safe(s):
                raise Invalid("a character no YANG string may hold")
        else:
            raise Invalid(f"not a JSON string: {v!r}")
        if not lo <= len(s) <= hi:
            raise Invalid("length")
        return s
    return check


def _identity(v: Json, xml: bool) -> Json:
    t = _text(v) if xml else v
    if not isinstance(t, str):
        raise Invalid("identityref must be a string")
    name = t.removeprefix(f"{MOD}:")
    if name not in ("red", "blue"):
        raise Invalid(f"identity {t!r}")
    return f"{MOD}:{name}"


def _addr(v: Json, xml: bool) -> Json:
    if xml:
        t = _text(v)
        if _IPV4.match(t):
            return t
        if re.fullmatch(r"[0-9]+", t) and (t == "0" or not t.startswith("0")) and int(t) < 256:
            return int(t)
        raise Invalid("no union member")
    if isinstance(v, str) and _IPV4.match(v):
        return v
    if type(v) is int and 0 <= v <= 255:
        return v
    raise Invalid("no union member")


class Node:
    """A schema node of the model (a plain class: Hypothesis prints it by name)."""

    __slots__ = ("check", "children", "default", "keys", "kind", "name", "presence",
                 "user_ordered")

    def __init__(self, name: str, kind: str, *, children: tuple[Node, ...] = (),
                 keys: tuple[str, ...] = (), check: Check | None = None, default: Json = None,
                 user_ordered: bool = False, presence: bool = False) -> None:
        self.name = name
        self.kind = kind
        """container, list, leaf or leaf-list."""
        self.children = children
        self.keys = keys
        self.check = check
        self.default = default
        self.user_ordered = user_ordered
        self.presence = presence

    def child(self, name: str) -> Node | None:
        return next((c for c in self.children if c.name == name), None)

    def __repr__(self) -> str:
        return self.name


def _leaf(name: str, check: Check, default: Json = None) -> Node:
    return Node(name, "leaf", check=check, default=default)


TOP = Node("top", "container", children=(
    _leaf("name", _string(1, 32)),
    _leaf("count", _integer(0, 1000), 7),
    _leaf("colour", _identity),
    _leaf("addr", _addr),
    Node("tags", "leaf-list", check=_string(), user_ordered=True),
    Node("sorted", "leaf-list", check=_integer(-(2 ** 31), 2 ** 31 - 1)),
    Node("item", "list", keys=("name",), user_ordered=True, children=(
        _leaf("name", _string()), _leaf("size", _integer(0, 2 ** 32 - 1)),
        _leaf("ref", _string()))),
    Node("pair", "list", keys=("a", "b"), children=(
        _leaf("a", _string()), _leaf("b", _integer(-128, 127)), _leaf("v", _string()))),
    Node("thing", "list", keys=("id",), children=(
        _leaf("id", _string()), _leaf("label", _string()), _leaf("needed", _string()))),
    _leaf("radius", _integer(0, 255)),
    _leaf("side", _integer(0, 255)),
    Node("extra", "container", presence=True, children=(
        _leaf("level", _integer(0, 255), 1), _leaf("only-when", _string()))),
))


def value_error(node: Node, value: Json, xml: bool) -> Json:
    """``value`` (as sent, a JSON value; XML bodies are written from it) as the
    canonical value of ``node``'s data; raises Invalid as the parser would."""
    if node.kind == "leaf":
        assert node.check is not None
        return node.check(value, xml)
    if node.kind == "leaf-list":
        if not isinstance(value, list):
            raise Invalid("a leaf-list is an array")
        assert node.check is not None
        out = [node.check(v, xml) for v in value]
        if any(isinstance(v, str) and "'" in v and '"' in v for v in out):
            raise Invalid("a leaf-list value holding both quotes")
        if len(set(map(repr, out))) != len(out):
            raise Invalid("duplicate leaf-list value")
        return out
    if node.kind == "list":
        if not isinstance(value, list):
            raise Invalid("a list is an array")
        out = [_object(node, v, xml) for v in value]
        seen = set()
        for e in out:
            k = key_of(node, e)
            if k in seen:
                raise Invalid("duplicate list entry")
            seen.add(k)
        return out
    return _object(node, value, xml)


def _object(node: Node, value: Json, xml: bool) -> dict[str, Json]:
    if not isinstance(value, dict):
        raise Invalid(f"{node.name} is an object")
    out: dict[str, Json] = {}
    for k, v in value.items():
        name = k.removeprefix(f"{MOD}:")
        c = node.child(name)
        if c is None or name in out:
            raise Invalid(f"unknown or repeated member {k!r}")
        out[name] = value_error(c, v, xml)
    for k in node.keys:
        if k not in out:
            raise Invalid(f"missing key {k}")
    for k in node.keys:
        if isinstance(out[k], str) and "'" in out[k] and '"' in out[k]:
            raise Invalid("a key value holding both quotes")
    return out


def key_of(node: Node, entry: dict[str, Json]) -> tuple[Json, ...]:
    return tuple(entry.get(k) for k in node.keys)


def canonical(top: Json) -> Json:
    """Data as the model compares it: system-ordered instances sorted (their order
    is the server's), empty non-presence containers dropped."""
    if not top:
        return None
    out = {k: copy.deepcopy(v) for k, v in top.items() if v != []}
    if not out:
        return None
    if "sorted" in out:
        out["sorted"] = sorted(out["sorted"])
    for name in ("pair", "thing"):
        if name in out:
            sn = TOP.child(name)
            assert sn is not None
            out[name] = sorted(out[name], key=lambda e, sn=sn: repr(key_of(sn, e)))
    return out


# -- targets --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    node: Node
    key: tuple[Json, ...] | None = None
    """Key values of a list entry, or (value,) of a leaf-list entry; None otherwise."""


@dataclass(frozen=True)
class Target:
    """A data resource below (and including) nfo-test:top."""

    steps: tuple[Step, ...]

    @property
    def node(self) -> Node:
        return self.steps[-1].node

    @property
    def parent(self) -> Target:
        return Target(self.steps[:-1])

    def check(self) -> None:
        """The URI's key values can be used (parse_resource refuses the others)."""
        for s in self.steps:
            for k in s.key or ():
                if isinstance(k, str) and (not xml_safe(k) or ("'" in k and '"' in k)):
                    raise Invalid("unusable key value in the URI")


# -- the model ------------------------------------------------------------------------------

@dataclass
class Model:
    """The content of /nfo-test:top in running, as explicitly set (None: no data)."""

    top: dict[str, Json] = field(default_factory=dict)
    patch: bool = False
    top_deleted: bool = False
    """In one YANG Patch (or NETCONF edit): ``top`` was deleted by an earlier edit, so
    it no longer exists until validation puts its defaults back at the end."""
    """YANG Patch: deleting the (non-presence) top container never misses."""

    def snapshot(self) -> Json:
        return canonical(self.top)

    # -- lookups
    def _find(self, tree: dict[str, Json], t: Target) -> Json:
        """The data of ``t`` in ``tree`` (the top object), or None."""
        cur: Json = tree
        for s in t.steps[1:]:
            if not isinstance(cur, dict):
                return None
            n = s.node
            if n.kind == "list":
                entries = cur.get(n.name, [])
                cur = next((e for e in entries if key_of(n, e) == s.key), None)
            elif n.kind == "leaf-list":
                assert s.key is not None
                return s.key[0] if s.key[0] in cur.get(n.name, []) else None
            else:
                cur = cur.get(n.name)
            if cur is None:
                return None
        return cur

    def present(self, t: Target, tree: dict[str, Json] | None = None) -> bool:
        """Whether the node exists explicitly (an empty non-presence container does not)."""
        tree = self.top if tree is None else tree
        if len(t.steps) == 1:
            return bool(tree)
        v = self._find(tree, t)
        if v is None:
            return False
        return not (t.node.kind == "container" and not t.node.presence and not v)

    def exists(self, t: Target) -> bool:
        """RESTCONF's 'exists' for PATCH and POST targets: a non-presence container
        exists when its parent does."""
        if t.node.kind == "container" and not t.node.presence:
            return len(t.steps) == 1 or self.exists(t.parent)
        return self.present(t)

    # -- edits (all or nothing: a new tree, installed only when valid)
    def _container_of(self, tree: dict[str, Json], t: Target, create: bool) -> dict[str, Json]:
        """The object holding ``t``'s node (created along the way when ``create``)."""
        cur = tree
        for s in t.steps[1:-1]:
            n = s.node
            if n.kind == "list":
                entries = cur.get(n.name, [])
                e = next((e for e in entries if key_of(n, e) == s.key), None)
                if e is None:
                    if not create:
                        raise Invalid("missing parent")
                    assert s.key is not None
                    e = dict(zip(n.keys, s.key, strict=True))
                    cur.setdefault(n.name, []).append(e)
                cur = e
            else:
                nxt = cur.get(n.name)
                if nxt is None:
                    if not create:
                        raise Invalid("missing parent")
                    nxt = cur[n.name] = {}
                cur = nxt
        return cur

    def edit(self, t: Target, op: str, value: Json = None, *, insert: str | None = None,
             point: Json = None, merge_parents: bool = False) -> tuple[dict[str, Json], bool]:
        """Apply one edit at ``t`` to a copy of the data: ``op`` is merge, replace,
        create, delete or remove (NETCONF); ``value`` the target's canonical data (an
        entry object for a list entry, a bare value for a leaf-list entry).  Returns the
        new tree (validated) and whether the target existed before."""
        new = copy.deepcopy(self.top)
        existed = self.present(t)
        self.top_deleted = False
        if merge_parents and op == "remove" and len(t.steps) > 2:
            # NETCONF default-operation merge: the target's ancestors are merged
            self._container_of(new, t, True)
        self._apply(new, t, op, value, insert, point)
        return self.validate(new), existed

    def _apply(self, tree: dict[str, Json], t: Target, op: str, value: Json,
               insert: str | None, point: Json, create_parents: bool = True) -> None:
        """One edit on ``tree``; ``create_parents`` False: the target's parent must
        exist (NETCONF default-operation none, as YANG Patch uses), except for remove."""
        n = t.node
        if op in ("create",) and self.present(t, tree):
            raise Invalid("data-exists")
        if op == "delete" and not self.present(t, tree) and not (
                len(t.steps) == 1 and self.patch and not self.top_deleted):
            raise Invalid("data-missing")
        self.top_deleted = (len(t.steps) == 1 and op in ("delete", "remove")) or (
            self.top_deleted and op in ("delete", "remove"))
        if len(t.steps) == 1:
            if op in ("delete", "remove"):
                tree.clear()
            elif op in ("replace", "create"):
                tree.clear()
                tree.update(copy.deepcopy(value))
            else:
                _merge(n, tree, value)
            return
        try:
            holder = self._container_of(tree, t, create_parents and op not in ("delete",
                                                                               "remove"))
        except Invalid:
            if op == "remove":
                return
            raise
        s = t.steps[-1]
        if n.kind in ("list", "leaf-list"):
            entries = holder.setdefault(n.name, [])
            match = (lambda e: key_of(n, e) == s.key) if n.kind == "list" else (
                lambda e: s.key is not None and e == s.key[0])
            idx = next((i for i, e in enumerate(entries) if match(e)), None)
            if op in ("delete", "remove"):
                if idx is not None:
                    entries.pop(idx)
            else:
                if idx is None:
                    entry = copy.deepcopy(value)
                    entries.append(entry)
                    idx = len(entries) - 1
                elif op == "merge" and n.kind == "list":
                    _merge(n, entries[idx], value)
                elif n.kind == "list":
                    entries[idx] = copy.deepcopy(value)
                if insert is not None:
                    _position(n, entries, idx, insert, point)
            if not entries:
                del holder[n.name]
            return
        if op in ("delete", "remove"):
            holder.pop(n.name, None)
        elif op == "merge" and n.kind == "container":
            _merge(n, holder.setdefault(n.name, {}), value)
        else:
            holder[n.name] = copy.deepcopy(value)

    def validate(self, new: dict[str, Json]) -> dict[str, Json]:
        """RFC 7950 validation of the result against the data before the edit: choice
        cases, when, must, leafref, unique, mandatory.  Returns the tree to install."""
        old = self.top
        for name in [k for k, v in new.items() if isinstance(v, list) and not v]:
            del new[name]
        # choice shape: a case written by the edit removes the other one
        if "radius" in new and "side" in new:
            # the case the edit creates wins (libyang's rule; a value it merely changes
            # in the other case is dropped: see docs/robustness.md)
            created = [c for c in ("radius", "side") if c not in old]
            if len(created) != 1:
                raise Invalid("both cases")
            del new["side" if created == ["radius"] else "radius"]
        extra = new.get("extra")
        if isinstance(extra, dict) and "only-when" in extra and extra.get("level", 1) <= 3:
            before = old.get("extra") or {}
            if before.get("only-when") != extra["only-when"]:
                raise Invalid("when")
            del extra["only-when"]
        ids = {t["id"] for t in new.get("thing", [])}
        for it in new.get("item", []):
            if it.get("size", 0) >= 1000:
                raise Invalid("must")
            if "ref" in it and it["ref"] not in ids:
                raise Invalid("leafref")
        labels = [t["label"] for t in new.get("thing", []) if "label" in t]
        if len(labels) != len(set(labels)):
            raise Invalid("unique")
        if any("needed" not in t for t in new.get("thing", [])):
            raise Invalid("mandatory")
        return new

    def install(self, tree: dict[str, Json]) -> None:
        self.top = tree


def _merge(node: Node, cur: dict[str, Json], value: Json) -> None:
    for name, v in value.items():
        c = node.child(name)
        assert c is not None
        if c.kind == "container":
            _merge(c, cur.setdefault(name, {}), v)
        elif c.kind == "list":
            entries = cur.setdefault(name, [])
            for e in v:
                old = next((o for o in entries if key_of(c, o) == key_of(c, e)), None)
                if old is None:
                    entries.append(copy.deepcopy(e))
                else:
                    _merge(c, old, e)
        elif c.kind == "leaf-list":
            entries = cur.setdefault(name, [])
            entries += [x for x in v if x not in entries]
        else:
            cur[name] = v


def _position(n: Node, entries: list[Json], idx: int, insert: str, point: Json) -> None:
    entry = entries.pop(idx)
    if insert == "first":
        entries.insert(0, entry)
    elif insert == "last":
        entries.append(entry)
    else:
        match = (lambda e: key_of(n, e) == point) if n.kind == "list" else (
            lambda e: (e,) == point)
        mine = key_of(n, entry) if n.kind == "list" else (entry,)
        if point == mine:
            entries.insert(idx, entry)
            raise Invalid("relative to itself")
        at = next((i for i, e in enumerate(entries) if match(e)), None)
        if at is None:
            entries.insert(idx, entry)
            raise Invalid("no such point")
        entries.insert(at if insert == "before" else at + 1, entry)


def xml_safe(s: str) -> bool:
    return not _XML_CHARS.search(s)
