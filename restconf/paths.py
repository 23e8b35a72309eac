"""RESTCONF resource identifiers (RFC 8040 section 3.5.3) to libyang data paths.

A data resource URI (what follows ``/restconf/data`` or ``/restconf/ds/<datastore>``)
names one node: ``mod:cont/list=k1,k2/leaf``.  Its first node carries a module
name, and so does every node whose module differs from its parent's; list key
values (comma-separated, percent-encoded) and a leaf-list value follow ``=``.
:func:`parse_resource` resolves every step against the schema, builds the
ancestor chain as real data nodes (so key values are checked and canonicalised
by their YANG types) and returns the libyang data path.  YANG Patch targets
(RFC 8072) are the same syntax relative to the patch's target resource
(``base``).

:func:`parse_fields` turns the ``fields`` query parameter (RFC 8040 section
4.8.3) into XPath steps relative to the target.  Everything here is pure: no
datastore, no HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from nfo.errors import InvalidValue, MalformedMessage, NfoError
from nfo.schema import DATA_KINDS, Kind, Node, Schema, SNode, Tree
from nfo.schema.data import path_steps

__all__ = [
    "Kind",
    "ResourcePath",
    "Segment",
    "build_chain",
    "decode",
    "parse_fields",
    "parse_operation",
    "parse_resource",
    "segment_uri",
]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_BAD_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_MAX_STEPS = 4096
"""Schema lookups remembered (a bound: a client may name many nodes that do not exist)."""
_LEAVES = (Kind.LEAF, Kind.LEAFLIST, Kind.ANYDATA, Kind.ANYXML)


@dataclass(frozen=True)
class Segment:
    """One step of a resource path, resolved against the schema."""

    module: str
    name: str
    kind: Kind
    schema: SNode
    keys: tuple[tuple[str, str], ...] | None = None
    """Key (name, value) pairs of a list instance, in key order; None for a whole list."""
    value: str | None = None
    """The value of a leaf-list instance; None for a whole leaf-list."""

    @property
    def is_instance(self) -> bool:
        """Whether the step names one instance (a keyed list entry, a leaf-list value,
        or any node that is not a list or leaf-list)."""
        if self.kind is Kind.LIST:
            return self.keys is not None
        if self.kind is Kind.LEAFLIST:
            return self.value is not None
        return True

    @property
    def config(self) -> bool:
        return self.schema.config

    @property
    def ordered_by_user(self) -> bool:
        return self.schema.ordered_by_user


@dataclass(frozen=True)
class ResourcePath:
    """A parsed data resource: the datastore itself when ``segments`` is empty."""

    segments: tuple[Segment, ...]
    data_path: str | None
    """libyang data path of the target (canonical key values); None for the datastore."""
    parent_path: str | None
    """libyang data path of the target's parent; None for a top-level node or the datastore."""

    @property
    def is_root(self) -> bool:
        return not self.segments

    @property
    def target(self) -> Segment:
        if not self.segments:
            raise InvalidValue("the datastore resource has no target node")
        return self.segments[-1]

    @property
    def parent(self) -> ResourcePath:
        """The path of the target's parent resource (the datastore for a top node)."""
        if not self.segments:
            return self
        return ResourcePath(self.segments[:-1], self.parent_path,
                            _parent_of(self.parent_path) if self.parent_path else None)

    def uri(self) -> str:
        """The resource path in RFC 8040 encoding (percent-encoded), without a leading /."""
        out = []
        prev = None
        for s in self.segments:
            out.append(segment_uri(s, s.module != prev))
            prev = s.module
        return "/".join(out)


def segment_uri(s: Segment, qualified: bool) -> str:
    name = f"{s.module}:{s.name}" if qualified else s.name
    if s.keys is not None:
        return name + "=" + ",".join(quote(v, safe="") for _, v in s.keys)
    if s.value is not None:
        return name + "=" + quote(s.value, safe="")
    return name


def _parent_of(path: str) -> str | None:
    """The parent of a libyang data path (None for a top-level node)."""
    steps = path_steps(path, strict=False)
    return "/" + "/".join(steps[:-1]) if len(steps) > 1 else None


def decode(text: str, what: str) -> str:
    """Strict percent-decoding (RFC 3986) into UTF-8 text; 400 on a bad escape."""
    if "%" not in text:
        return text  # nothing escaped: what decoding gives back
    if _BAD_PCT.search(text):
        raise MalformedMessage(f"bad percent-encoding in {what}: {text!r}", error_type="protocol")
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage(f"{what} is not UTF-8 after percent-decoding: {text!r}",
                               error_type="protocol") from None


def _child(schema: Schema, parent: SNode | None, module: str, name: str) -> SNode | None:
    """A step's schema node, remembered per schema (clients name the same nodes again)."""
    steps: dict[tuple[SNode | None, str, str], SNode | None] = schema.caches.setdefault(
        "restconf.steps", {})
    key = (parent, module, name)
    if key not in steps:
        if len(steps) >= _MAX_STEPS:
            steps.clear()
        steps[key] = schema.top(module, name) if parent is None else parent.child(name, module)
    return steps[key]


def _keys(schema: Schema, snode: SNode) -> tuple[str, ...]:
    """A list's key names, remembered per schema like the steps."""
    keys: dict[SNode, tuple[str, ...]] = schema.caches.setdefault("restconf.keys", {})
    found = keys.get(snode)
    if found is None:
        found = keys[snode] = snode.keys
    return found


def parse_resource(schema: Schema, raw: str, base: ResourcePath | None = None) -> ResourcePath:
    """Parse the percent-encoded path after the datastore resource into a target
    (below ``base``, for YANG Patch targets).

    ``raw`` may be empty or ``/`` (the datastore itself, or ``base``).  Raises
    400-class :class:`NfoError` (invalid-value, malformed-message) naming the
    offending step.
    """
    raw = raw.strip("/") if raw in ("", "/") else raw.removeprefix("/")
    first = list(base.segments) if base is not None else []
    if not raw:
        return base if base is not None else ResourcePath((), None, None)
    if raw.endswith("/"):
        raw = raw[:-1]
    shapes: dict[tuple[str, ...], tuple[_Step, ...]] = schema.caches.setdefault(
        "restconf.shapes", {})
    shape = _shape(raw) if base is None else None
    known = shapes.get(shape) if shape is not None else None
    if known is not None:
        found = _by_shape(known, raw)
        if found is not None:
            return found
    rp = _parse(schema, raw, base, first)
    if shape is not None:
        template = _template(rp)
        if template is not None and _by_shape(template, raw) == rp:
            if len(shapes) >= _MAX_STEPS:
                shapes.clear()
            shapes[shape] = template
    return rp


def _parse(schema: Schema, raw: str, base: ResourcePath | None,
           first: list[Segment]) -> ResourcePath:
    segments: list[Segment] = list(first)
    prev_mod: str | None = first[-1].module if first else None
    for part in raw.split("/"):
        if part == "":
            raise InvalidValue(f"empty step in the resource path {raw!r}",
                               path=_partial_path(schema, segments))
        name_raw, eq, rest = part.partition("=")
        ident = decode(name_raw, "a node name")
        mod, colon, name = ident.rpartition(":")
        if not colon:
            mod, name = "", ident
        if not _IDENT.match(name) or (mod and not _IDENT.match(mod)):
            raise InvalidValue(f"invalid node name {ident!r} in the resource path",
                               path=_partial_path(schema, segments))
        if not mod:
            if prev_mod is None:
                raise InvalidValue(f"the first node {name!r} needs its module name (module:name)",
                                   path=None)
            mod = prev_mod
        elif not schema.implemented(mod):
            raise InvalidValue(f"unknown module {mod!r} in the resource path",
                               path=_partial_path(schema, segments))
        if segments and segments[-1].kind in (Kind.RPC, Kind.ACTION, Kind.NOTIFICATION,
                                              *_LEAVES):
            raise InvalidValue(f"{segments[-1].name!r} has no child {name!r}",
                               path=_partial_path(schema, segments))
        if segments and not segments[-1].is_instance:
            raise InvalidValue(f"the list {segments[-1].name!r} needs its key values "
                               f"(name=key1,key2) before the child {name!r}",
                               path=_partial_path(schema, segments))
        snode = _child(schema, segments[-1].schema if segments else None, mod, name)
        if snode is None:
            where = _partial_path(schema, segments)
            raise InvalidValue(f"unknown node {mod}:{name} in the resource path"
                               + (f" under {where}" if where else ""), path=where)
        kind = snode.kind
        if kind is Kind.NOTIFICATION:
            raise InvalidValue(f"{name!r} is a notification, not a data resource",
                               path=_partial_path(schema, segments))
        keys: tuple[tuple[str, str], ...] | None = None
        value: str | None = None
        if eq:
            if kind is Kind.LIST:
                names = _keys(schema, snode)
                if not names:
                    raise InvalidValue(f"the list {name!r} has no keys: its entries cannot "
                                       "be addressed", path=_partial_path(schema, segments))
                values = [decode(v, f"a key value of {name!r}") for v in rest.split(",")]
                if len(values) != len(names):
                    raise InvalidValue(
                        f"the list {name!r} has {len(names)} key(s) ({', '.join(names)}) "
                        f"but the path gives {len(values)} value(s)",
                        path=_partial_path(schema, segments))
                keys = tuple(zip(names, values, strict=True))
            elif kind is Kind.LEAFLIST:
                value = decode(rest, f"the value of {name!r}")
            else:
                raise InvalidValue(f"{name!r} is a {kind.value}: it takes no '=' value",
                                   path=_partial_path(schema, segments))
        segments.append(Segment(mod, name, kind, snode, keys, value))
        prev_mod = mod
    for s in segments:
        for v in [v for _, v in s.keys or ()] + ([s.value] if s.value is not None else []):
            if "'" in v and '"' in v:
                raise InvalidValue("key values holding both quote characters are not "
                                   "supported", path=_partial_path(schema, segments[:-1]))
    data_path, parent_path = _data_paths(schema, segments)
    return ResourcePath(tuple(segments), data_path, parent_path)


# -- paths by shape ---------------------------------------------------------------
# Paths that differ only in values of string type (canonical as written) resolve
# alike: the first one of a shape is parsed in full, the next ones reuse its steps,
# and only decode their values, check them by type and quote them.  A value the type
# refuses takes the full parse, which says why.

@dataclass(frozen=True)
class _Step:
    module: str
    name: str
    kind: Kind
    schema: SNode
    keys: tuple[tuple[str, SNode], ...] | None
    """Key names and leaves; None: no key values."""
    value: bool
    qualified: bool
    prefix: str
    """The step in a data path, without its values."""
    segment: Segment | None
    """The step's segment when it holds no value (the same for every path)."""


def _shape(raw: str) -> tuple[str, ...]:
    """``raw`` (no leading or trailing /) with the values left out, their count kept."""
    return tuple(name + (f"={rest.count(',')}" if eq else "")
                 for name, eq, rest in (p.partition("=") for p in raw.split("/")))


def _verbatim(snode: SNode | None) -> bool:
    t = snode.type if snode is not None else None
    return t is not None and t.base == "string"


def _template(rp: ResourcePath) -> tuple[_Step, ...] | None:
    """The steps of a parsed path for :func:`_by_shape`; None unless every value it
    holds is of string type."""
    steps = []
    prev = None
    for s in rp.segments:
        keys: list[tuple[str, SNode]] | None = None
        if s.keys is not None:
            keys = []
            for name, _ in s.keys:
                leaf = s.schema.child(name, s.module)
                if leaf is None or not _verbatim(leaf):
                    return None
                keys.append((name, leaf))
        elif s.value is not None and not _verbatim(s.schema):
            return None
        qualified = s.module != prev
        steps.append(_Step(s.module, s.name, s.kind, s.schema,
                           tuple(keys) if keys is not None else None,
                           s.value is not None, qualified,
                           f"/{s.module}:{s.name}" if qualified else f"/{s.name}",
                           s if s.keys is None and s.value is None else None))
        prev = s.module
    return tuple(steps)


def _predicate(name: str, value: str) -> str:
    q = '"' if "'" in value else "'"
    return f"[{name}={q}{value}{q}]"


def _by_shape(steps: tuple[_Step, ...], raw: str) -> ResourcePath | None:
    """The resource path of ``raw``, whose shape has ``steps``; None when a value is
    not one its type takes."""
    segments = []
    path = ""
    parent: str | None = None
    both_quotes = False
    for st, part in zip(steps, raw.split("/"), strict=True):
        parent = path or None
        if st.segment is not None:
            segments.append(st.segment)
            path += st.prefix
            continue
        rest = part.partition("=")[2]
        keys: tuple[tuple[str, str], ...] | None = None
        value: str | None = None
        step = st.prefix
        if st.keys is not None:
            values = [decode(v, f"a key value of {st.name!r}") for v in rest.split(",")]
            for (_, leaf), v in zip(st.keys, values, strict=True):
                if not leaf.accepts(v):
                    return None
                both_quotes = both_quotes or ("'" in v and '"' in v)
            keys = tuple((name, v) for (name, _), v in zip(st.keys, values, strict=True))
            step += "".join(_predicate(k, v) for k, v in keys)
        elif st.value:
            value = decode(rest, f"the value of {st.name!r}")
            if not st.schema.accepts(value):
                return None
            both_quotes = both_quotes or ("'" in value and '"' in value)
            step += _predicate(".", value)
        segments.append(Segment(st.module, st.name, st.kind, st.schema, keys, value))
        path += step
    if both_quotes:
        raise InvalidValue("key values holding both quote characters are not supported",
                           path=parent)
    return ResourcePath(tuple(segments), path, parent)


def parse_operation(schema: Schema, raw: str) -> Segment:
    """``mod:rpc`` after ``/restconf/operations/``: exactly one step naming an RPC."""
    raw = raw.strip("/")
    if not raw or "/" in raw or "=" in raw:
        raise InvalidValue(f"an operation resource is one 'module:rpc' step, not {raw!r}")
    ident = decode(raw, "an operation name")
    mod, colon, name = ident.partition(":")
    if not colon or not _IDENT.match(mod) or not _IDENT.match(name):
        raise InvalidValue(f"an operation resource needs 'module:rpc', not {ident!r}")
    if not schema.implemented(mod):
        raise InvalidValue(f"unknown module {mod!r}")
    snode = schema.top(mod, name)
    if snode is None or snode.kind is not Kind.RPC:
        raise InvalidValue(f"{mod}:{name} is not an RPC of the module set")
    return Segment(mod, name, Kind.RPC, snode)


def _partial_path(schema: Schema, segments: list[Segment]) -> str | None:
    if not segments:
        return None
    try:
        return _data_paths(schema, segments)[0]
    except NfoError:
        return None


def build_chain(tree: Tree, segments: Sequence[Segment]) -> Node | None:
    """Create in ``tree`` (empty) the data nodes of ``segments`` (containers, keyed list
    entries, leaf-list values; a leaf, anydata or action step is not created).  Returns
    the last created node (None: none).  Key values are checked by their types."""
    return _chain(tree, segments)[0]


def _chain(tree: Tree, segments: Sequence[Segment]) -> tuple[Node | None, int]:
    """:func:`build_chain`, and how many segments it built."""
    parent: Node | None = None
    built = 0
    for s in segments:
        if s.kind is Kind.CONTAINER:
            node = tree.new(parent, s.schema)
        elif s.kind is Kind.LIST and s.keys is not None:
            node = _new(tree, parent, s, keys=[v for _, v in s.keys])
        elif s.kind is Kind.LEAFLIST and s.value is not None:
            node = _new(tree, parent, s, value=s.value)
        else:
            break
        parent = node
        built += 1
    return parent, built


def _new(tree: Tree, parent: Node | None, s: Segment, *, keys: Sequence[str] = (),
         value: str | None = None) -> Node:
    try:
        return tree.new(parent, s.schema, keys=keys, value=value)
    except NfoError as e:
        raise InvalidValue(f"invalid key value in the resource path: {e.message}",
                           path=parent.path if parent is not None else None) from None


def _data_paths(schema: Schema, segments: list[Segment]) -> tuple[str, str | None]:
    with Tree(schema) as tree:
        last, built = _chain(tree, segments)
        path = last.path if last is not None else ""
        up = last.parent if last is not None else None
        parent = up.path if up is not None else None
    # steps not built as nodes (leaf, anydata, action, whole list / leaf-list)
    prev = segments[built - 1].module if built else None
    for s in segments[built:]:
        parent = path or None
        path += "/" + (f"{s.module}:{s.name}" if s.module != prev else s.name)
        prev = s.module
    return path, parent


# -- fields (RFC 8040 section 4.8.3) -------------------------------------------

_FIELDS_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.-]*(?::[A-Za-z_][A-Za-z0-9_.-]*)?|[/;()])")


def _tokens(text: str) -> list[str]:
    out = []
    pos = 0
    while pos < len(text):
        m = _FIELDS_TOKEN.match(text, pos)
        if not m:
            raise InvalidValue(f"invalid fields expression {text!r} at offset {pos}",
                               error_type="protocol")
        out.append(m.group(1))
        pos = m.end()
    return out


def parse_fields(schema: Schema, text: str, target: SNode | None) -> list[str]:
    """The ``fields`` expression as XPath steps relative to ``target`` (a schema node,
    or None for the datastore), each like ``a/b`` or ``mod:x/y``; checked against the
    schema.  Grammar: ``expr = path "(" expr ")" / path ";" expr / path``,
    ``path = api-identifier ["/" path]``."""
    toks = _tokens(text)
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(toks):
            raise InvalidValue(f"incomplete fields expression {text!r}", error_type="protocol")
        pos += 1
        return toks[pos - 1]

    def child(parent: SNode | None, ident: str, parent_mod: str | None
              ) -> tuple[SNode, str, str]:
        mod, colon, name = ident.rpartition(":")
        if not colon:
            if parent_mod is None:
                raise InvalidValue(f"fields: {ident!r} needs its module name",
                                   error_type="protocol")
            mod, name = parent_mod, ident
        if not schema.implemented(mod):
            raise InvalidValue(f"fields: unknown module {mod!r}", error_type="protocol")
        c = _child(schema, parent, mod, name)
        if c is None or c.kind not in DATA_KINDS:
            raise InvalidValue(f"fields: no data node {mod}:{name} here", error_type="protocol")
        step = name if mod == parent_mod else f"{mod}:{name}"
        return c, mod, step

    def expr(parent: SNode | None, parent_mod: str | None, prefix: str) -> list[str]:
        out: list[str] = []
        while True:
            node, mod, rel = parent, parent_mod, prefix
            while True:
                tok = take()
                if tok in "/;()":
                    raise InvalidValue(f"invalid fields expression {text!r}",
                                       error_type="protocol")
                found, mod, step = child(node, tok, mod)
                node = found
                rel = f"{rel}/{step}" if rel else step
                if peek() == "/":
                    take()
                    continue
                break
            if peek() == "(":
                take()
                out += expr(node, mod, rel)
                if take() != ")":
                    raise InvalidValue(f"unbalanced parentheses in fields {text!r}",
                                       error_type="protocol")
            else:
                out.append(rel)
            if peek() == ";":
                take()
                continue
            return out

    result = expr(target, target.module if target is not None else None, "")
    if pos != len(toks):
        raise InvalidValue(f"invalid fields expression {text!r}", error_type="protocol")
    return result
