"""Each YANG Patch edit as an edit tree, before anything is applied.

A target (and a point) is a RESTCONF resource path relative to the patch's
target resource, parsed by :func:`nfo.restconf.paths.parse_resource`; a value
is parsed below its target's parent by :func:`nfo.restconf.codec.parse_under`,
exactly as a PUT body; positions are set by
:func:`nfo.restconf.codec.set_position`, as for ``insert``/``point``.

``move`` is a ``merge`` with a new position.  A merge would create a missing
entry, so the planner checks that the entry exists in the datastore or is
created by an earlier edit of the same patch (and not deleted after).  The
check reads the live tree before the transaction takes the write lock: a
concurrent writer deleting that very entry in between could let the move
recreate it with only its keys (validation still runs on the result).
"""

from __future__ import annotations

from dataclasses import dataclass

from nfo.errors import DataMissing, InvalidValue
from nfo.restconf.codec import Insert, parse_under, set_position
from nfo.restconf.paths import Kind, ResourcePath, parse_resource
from nfo.restconf.yangpatch.parse import WITH_VALUE, Edit, Patch
from nfo.schema import Node, Schema, Tree

__all__ = ["Planned", "Planner"]

_NC_OP = {"create": "create", "delete": "delete", "insert": "create", "merge": "merge",
          "move": "merge", "replace": "replace", "remove": "remove"}


@dataclass
class Planned:
    edit: Edit
    path: str
    """Data path of the target node."""
    tree: Tree | None
    """The edit tree; None for a remove of something that cannot exist."""


def _under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor + "/")


class Planner:
    """Plans the edits of one patch in order (later edits see earlier ones)."""

    def __init__(self, schema: Schema, live: Tree, base: ResourcePath, patch: Patch) -> None:
        self.schema = schema
        self.live = live
        self.base = base
        self.patch = patch
        self.done: list[Planned] = []

    def _resolve(self, rel: str) -> ResourcePath:
        if not rel.startswith("/"):
            raise InvalidValue(f"the target {rel!r} must start with '/'")
        rp = parse_resource(self.schema, rel, self.base)
        if rp.is_root:
            raise InvalidValue("an edit target must identify a data resource, not the "
                               "datastore")
        t = rp.target
        if not t.is_instance:
            raise InvalidValue(f"the {t.kind.value} {t.name!r} needs its "
                               + ("key values" if t.kind is Kind.LIST else "value")
                               + " in the target", path=rp.data_path)
        for s in rp.segments:
            if not s.config:
                raise InvalidValue(f"{rel!r}: {s.module}:{s.name} is not configuration data",
                                   path=rp.data_path)
        return rp

    def plan(self, e: Edit) -> Planned:
        rp = self._resolve(e.target)
        assert rp.data_path is not None
        t = rp.target
        if e.value is not None:
            tree = self._with_value(e.value, rp)
        elif t.kind is Kind.LEAF:
            leaf = self._leaf(e, rp.data_path)
            if leaf is None:
                planned = Planned(e, rp.data_path, None)
                self.done.append(planned)
                return planned
            tree = leaf
        else:
            if e.operation == "move":
                self._check_exists(rp.data_path)
            tree = Tree(self.schema)
            try:
                tree.new_path(rp.data_path)
            except BaseException:
                tree.free()
                raise
        try:
            node = tree.node(rp.data_path)
            assert node is not None
            node.set_meta("ietf-netconf:operation", _NC_OP[e.operation])
            if e.operation in ("insert", "move"):
                point = self._resolve(e.point) if e.point is not None else None
                set_position(node, Insert(e.where or "last", point))
        except BaseException:
            tree.free()
            raise
        planned = Planned(e, rp.data_path, tree)
        self.done.append(planned)
        return planned

    def _with_value(self, value: bytes, rp: ResourcePath) -> Tree:
        tree, new = parse_under(self.schema, value, self.patch.fmt, rp.segments[:-1])
        try:
            if len(new) != 1:
                raise InvalidValue(f"the value must hold exactly one instance of the target "
                                   f"node (it holds {len(new)})", path=rp.data_path)
            node = new[0]
            if node.schema != rp.target.schema or node.path != rp.data_path:
                raise InvalidValue("the value does not match the edit target (name or key "
                                   f"values differ): {node.path}", path=rp.data_path)
            if node.has_meta():
                raise InvalidValue("a value may not carry metadata (operations, positions)",
                                   path=rp.data_path)
        except BaseException:
            tree.free()
            raise
        return tree

    def _source(self, path: str) -> Node | None:
        for p in reversed(self.done):
            if p.tree is not None:
                found = p.tree.node(path)
                if found is not None:
                    return found
        return self.live.node(path)

    def _leaf(self, e: Edit, path: str) -> Tree | None:
        """delete/remove of a leaf: the edit node needs some valid value, taken from
        an earlier edit or the datastore.  None: the leaf cannot exist there."""
        source = self._source(path)
        if source is None or source.is_default:
            if e.operation == "remove":
                return None
            raise DataMissing("the data to delete does not exist", path=path)
        return Tree.copy_of(source, meta=False, recursive=False)

    def _check_exists(self, path: str) -> None:
        """A move needs the entry to exist when the move is applied."""
        exists = self.live.node(path) is not None
        for p in self.done:
            op = p.edit.operation
            if op in ("delete", "remove") and _under(path, p.path):
                exists = False
            elif op in WITH_VALUE and p.tree is not None:
                if p.tree.node(path) is not None:
                    exists = True
                elif op == "replace" and _under(path, p.path):
                    exists = False
        if not exists:
            raise DataMissing("the entry to move does not exist", path=path)
