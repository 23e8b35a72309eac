"""The schema digest a generated user interface reads: the live module set as JSON.

One entry per schema node, nested as the schema nests them (choices and cases,
an operation's input and output included), with what a form needs to offer and
check a value: kind, config, keys, mandatory, defaults, units, ordering,
presence, element bounds, status, description, when and must (as hints), and
the type with every restriction (:class:`~nfo.schema.stype.SType`).  The digest
is built once per schema and kept encoded in the schema's caches, so it dies
with the module set it describes; its validator is the YANG library content-id.

Schema nodes are public metadata (module sources are served too), but nothing
here may say more about a secret than a read would: the defaults of
``nfo-security:credential`` nodes (and of everything below one) are left out.
"""

from __future__ import annotations

import json
from typing import Any

from nfo.schema import Kind, Schema, SNode
from nfo.schema.stype import SType

__all__ = ["CREDENTIAL", "digest", "module_digest"]

CREDENTIAL = ("nfo-security", "credential")
"""The extension that marks a secret (module, name)."""
_NACM = "ietf-netconf-acm"
_OPERATIONS = (Kind.RPC, Kind.ACTION, Kind.NOTIFICATION)
_WITH_PATH = frozenset({Kind.CONTAINER, Kind.LIST, Kind.LEAF, Kind.LEAFLIST, Kind.ANYDATA,
                        Kind.ANYXML, Kind.RPC, Kind.ACTION, Kind.NOTIFICATION})


def digest(schema: Schema, module: str | None = None) -> bytes:
    """The digest of every implemented module (or of one), JSON encoded, built once
    per schema."""
    cache: dict[str | None, bytes] = schema.caches.setdefault("protocol.uischema", {})
    found = cache.get(module)
    if found is None:
        found = cache[module] = json.dumps(_document(schema, module),
                                           separators=(",", ":")).encode()
    return found


def module_digest(schema: Schema, module: str) -> dict[str, Any]:
    """One module's entry: name, revision, namespace, prefix, features and, for an
    implemented module, its top-level nodes."""
    info = schema.module(module)
    if info is None:
        raise KeyError(module)
    out: dict[str, Any] = {
        "name": info.name, "revision": info.revision, "namespace": info.namespace,
        "prefix": info.prefix, "implemented": info.implemented,
        "features": schema.features(module)}
    if info.implemented:
        out["nodes"] = [_node(n, parent_module=None, inherited=_Inherited())
                        for n in schema.schema_tops(module)]
    return out


def _document(schema: Schema, module: str | None) -> dict[str, Any]:
    names = [m.name for m in sorted(schema.modules(), key=lambda m: m.name)]
    if module is not None:
        names = [module]
    return {"content-id": schema.content_id(),
            "modules": [module_digest(schema, name) for name in names]}


class _Inherited:
    """What a node takes from its ancestors."""

    __slots__ = ("config", "credential", "operation")

    def __init__(self, *, config: bool = True, credential: bool = False,
                 operation: bool = False) -> None:
        self.config = config
        self.credential = credential
        self.operation = operation


def _node(n: SNode, *, parent_module: str | None, inherited: _Inherited) -> dict[str, Any]:
    kind = n.kind
    out: dict[str, Any] = {"kind": kind.value, "name": n.name}
    if n.module != parent_module:
        out["module"] = n.module
        out["prefix"] = n.prefix
    if kind in _WITH_PATH:
        out["path"] = n.path
    operation = inherited.operation or kind in _OPERATIONS
    config = inherited.config and not operation and n.config
    if not operation:
        out["config"] = config
    exts = n.extensions
    credential = inherited.credential or any((m, x) == CREDENTIAL for m, x, _ in exts)
    if credential:
        out["credential"] = True
    nacm = sorted({x for m, x, _ in exts if m == _NACM})
    if nacm:
        out["nacm"] = nacm
    status = n.status
    if status != "current":
        out["status"] = status
    if kind is Kind.LIST:
        out["keys"] = list(n.keys)
    if n.mandatory:
        out["mandatory"] = True
    if kind is Kind.CONTAINER:
        out["presence"] = n.presence
    if kind in (Kind.LIST, Kind.LEAFLIST):
        out["ordered-by"] = "user" if n.ordered_by_user else "system"
        out["min-elements"] = n.min_elements
        out["max-elements"] = n.max_elements
    if not credential:
        defaults = n.defaults
        if defaults:
            if kind is Kind.LEAFLIST:
                out["defaults"] = list(defaults)
            else:
                out["default"] = defaults[0]
    units = n.units
    if units is not None:
        out["units"] = units
    description = n.description
    if description is not None:
        out["description"] = description
    when = n.when
    if when:
        out["when"] = list(when)
    musts = n.musts
    if musts:
        out["must"] = [_strip({"xpath": m.xpath, "error-message": m.error_message,
                               "error-app-tag": m.error_app_tag}) for m in musts]
    t = n.type
    if t is not None:
        out["type"] = _type(t, n)
    below = _Inherited(config=config, credential=credential, operation=operation)
    children = [_node(c, parent_module=n.module, inherited=below)
                for c in n.schema_children()]
    if children or kind in (Kind.CONTAINER, Kind.LIST, Kind.CHOICE, Kind.CASE, Kind.INPUT,
                            Kind.OUTPUT, Kind.NOTIFICATION):
        out["children"] = children
    return out


def _type(t: SType, leaf: SNode | None) -> dict[str, Any]:
    out: dict[str, Any] = {"base": t.base}
    typedefs = t.typedefs
    if typedefs:
        out["typedefs"] = list(typedefs)
    ranges = t.ranges
    if ranges is not None:
        out["range"] = [list(r) for r in ranges]
    lengths = t.lengths
    if lengths is not None:
        out["length"] = [list(r) for r in lengths]
    patterns = t.patterns
    if patterns:
        out["patterns"] = [_strip({"pattern": p.expr, "invert-match": p.invert,
                                   "error-message": p.error_message,
                                   "error-app-tag": p.error_app_tag}) for p in patterns]
    digits = t.fraction_digits
    if digits is not None:
        out["fraction-digits"] = digits
    enums = t.enums
    if enums:
        out["enums"] = [_strip({"name": e.name, "value": e.value, "description": e.description})
                        for e in enums]
    bits = t.bits
    if bits:
        out["bits"] = [_strip({"name": b.name, "position": b.position,
                               "description": b.description}) for b in bits]
    bases = t.bases
    if bases:
        out["bases"] = [b.qualified for b in bases]
        out["identities"] = [_strip({"value": i.qualified, "description": i.description})
                             for i in t.identities()]
    path = t.leafref_path
    if path is not None:
        out["path"] = path
        target = leaf.leafref_target if leaf is not None else None
        if target is not None:
            out["target"] = target.path
        real = t.real
        out["real-base"] = real.base
    require = t.require_instance
    if require is not None:
        out["require-instance"] = require
    members = t.members
    if members:
        out["members"] = [_type(m, None) for m in members]
    return out


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
