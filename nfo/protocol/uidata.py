"""What a generated user interface asks of the data: the values a field may take now,
and what the calling user may do with a node.

*Values* (a type-ahead for leafref, identityref, enumeration and boolean leaves):
a leafref's candidates are read as a client read reads them (access control
filters the copy before anything is selected), limited to what its path can
reach from the field's position: for each up-then-down part of the path, the
ancestor of the field it climbs to (with its list keys, so one entry and not the
whole list) or, past the top, the top-level node it descends into.  In that
copy the field's missing ancestors are created (a new entry being filled in)
and the path is evaluated from the field's parent
(:func:`nfo.schema.leafrefs.leafref_values`).  The work is proportional to the
data the path can reach, not to the datastore.

*Access*: the verdicts of :class:`nfo.datastore.nacm.Access`, the code that
enforces them, for read, create, update, delete and exec.

*When*: whether a node's ``when`` conditions hold (a form hides the field when
they do not), evaluated by :func:`nfo.schema.whens.when_holds` on one copy of the
data per request, read as the user reads it (access control removes what the user
may not read before anything is evaluated), limited to the top-level subtrees the
conditions and the nodes themselves are in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from nfo.datastore import Datastore, Identity
from nfo.datastore.nacm import Access
from nfo.errors import InvalidValue
from nfo.protocol.read import AsyncReader
from nfo.schema import Kind, SNode, Tree, parse_path
from nfo.schema.leafrefs import leafref_reach, leafref_scope, leafref_values, needs_position
from nfo.schema.stype import SType
from nfo.schema.whens import when_holds, when_scope, whens

__all__ = ["VALUE_TYPES", "Value", "Values", "access_of", "leaf_values", "when_verdicts"]

VALUE_TYPES = ("leafref", "identityref", "enumeration", "boolean")
"""The types whose values can be listed."""
_LIVE = ("running", "candidate", "startup")
"""Configuration datastores whose live tree may be read in place."""
_NUMERIC = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                      "uint64", "decimal64"})


@dataclass(frozen=True)
class Value:
    value: str
    description: str | None = None

    def json(self) -> dict[str, Any]:
        return {"value": self.value} if self.description is None else \
            {"value": self.value, "description": self.description}


@dataclass(frozen=True)
class Values:
    values: list[Value]
    remaining: int
    """How many more matched beyond the limit."""

    def json(self) -> dict[str, Any]:
        return {"values": [v.json() for v in self.values], "remaining": self.remaining}


def _listed(found: list[Value], prefix: str, limit: int,
            key: Callable[[Value], Any]) -> Values:
    """Schema-given values (a few): ``prefix`` matches a value or, for an identity,
    its name without the module."""
    if prefix:
        found = [v for v in found if v.value.startswith(prefix)
                 or v.value.partition(":")[2].startswith(prefix)]
    found.sort(key=key)
    return Values(found[:limit], max(0, len(found) - limit))


def _sort_key(t: SType) -> Callable[[str], Any]:
    if t.real.base not in _NUMERIC:
        return str

    def numeric(v: str) -> Any:
        try:
            return (0, Decimal(v), v)
        except InvalidOperation:
            return (1, Decimal(0), v)

    return numeric


async def leaf_values(ds: Datastore, who: Identity, datastore: str, leaf: SNode,
                      parent_path: str | None, *, prefix: str = "",
                      limit: int = 50, session: AsyncReader | None = None) -> Values:
    """The values the leaf or leaf-list ``leaf`` under ``parent_path`` (a data path
    with keys; None at the top; it need not exist) may take now, as ``who`` may see
    them, filtered by ``prefix``, sorted, at most ``limit``.  ``session``: the
    caller's long-lived session, whose candidate may be its own (then read through it)."""
    t = leaf.type
    if t is None or leaf.kind not in (Kind.LEAF, Kind.LEAFLIST) or t.base not in VALUE_TYPES:
        what = f"a {t.base} {leaf.kind.value}" if t is not None else f"a {leaf.kind.value}"
        raise InvalidValue(f"{leaf.name!r} is {what}: values are listed for leaves and "
                           f"leaf-lists of type {', '.join(VALUE_TYPES)}")
    if t.base == "boolean":
        return _listed([Value("false"), Value("true")], prefix, limit, lambda v: v.value)
    if t.base == "enumeration":
        order = {e.name: i for i, e in enumerate(t.enums)}
        return _listed([Value(e.name, e.description) for e in t.enums], prefix, limit,
                     lambda v: order[v.value])
    if t.base == "identityref":
        return _listed([Value(i.qualified, i.description) for i in t.identities()], prefix,
                     limit, lambda v: v.value)
    steps = parse_path(parent_path) if parent_path else ()
    key = _sort_key(t)

    def page(texts: list[str]) -> Values:
        found = list(dict.fromkeys(texts))
        if prefix:
            found = [v for v in found if v.startswith(prefix)]
        found.sort(key=key)
        return Values([Value(v) for v in found[:limit]], max(0, len(found) - limit))

    access = ds.nacm.access(who)
    own = session is not None and datastore == "candidate"
    if not own and datastore in _LIVE and access.reads_all and not _reads_credentials(access, leaf):
        # nothing the path reads can be hidden: evaluated on the live data, no copy
        live = ds.tree(datastore)
        parent = live.node(parent_path) if parent_path else None
        if parent is not None or parent_path is None or not needs_position(leaf):
            return page(leafref_values(live, parent, leaf))
    select = " | ".join(leafref_scope(leaf, steps)) or None

    def collect(tree: Tree) -> Values:
        parent = None
        if parent_path:
            parent = tree.node(parent_path) or tree.new_path(parent_path)
        return page(leafref_values(tree, parent, leaf))

    if select is None:
        with Tree(ds.schema) as empty:
            return collect(empty)
    reader: AsyncReader = session if own and session is not None else ds.reader(who)
    return await reader.query(datastore, select, collect)


def _reads_credentials(access: Access, leaf: SNode) -> bool:
    creds = access.marks.credentials
    return bool(creds) and any(n.path == c or n.path.startswith(c + "/")
                               for n in leafref_reach(leaf) for c in creds)


def access_of(access: Access, snode: SNode, data_path: str) -> dict[str, bool]:
    """What ``access`` allows on the node at ``data_path`` (schema node ``snode``): exec
    for an RPC or action; read, and create, update and delete for configuration."""
    if snode.kind in (Kind.RPC, Kind.ACTION):
        return {"exec": access.may_exec(snode.path,
                                         data_path if snode.kind is Kind.ACTION else None)}
    out = {"read": access.allowed(data_path, "read")}
    for op in ("create", "update", "delete"):
        out[op] = snode.config and access.may_write(data_path, op)
    return out


async def when_verdicts(ds: Datastore, who: Identity, datastore: str,
                        nodes: Sequence[tuple[SNode, str]], *,
                        session: AsyncReader | None = None) -> list[bool | None]:
    """For each (schema node, data path) of ``nodes``: whether the node's ``when``
    conditions hold at that path (it need not exist) in ``datastore`` as ``who`` may
    read it; None for a node without conditions.  One copy of the data for all of
    them.  ``session``: as for :func:`leaf_values`."""
    asked = [i for i, (n, _) in enumerate(nodes) if whens(n)]
    if not asked:
        return [None] * len(nodes)
    scope = when_scope(nodes[i][0] for i in asked)

    def evaluate(tree: Tree) -> list[bool | None]:
        out: list[bool | None] = [None] * len(nodes)
        for i in asked:
            out[i] = when_holds(tree, *nodes[i])
        return out

    if scope == []:
        with Tree(ds.schema) as empty:
            return evaluate(empty)
    own = session is not None and datastore == "candidate"
    reader: AsyncReader = session if own and session is not None else ds.reader(who)
    return await reader.query(datastore, None if scope is None else " | ".join(scope),
                              evaluate, offload=True)
