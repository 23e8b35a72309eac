"""The read path shared by both front ends: one place for every query knob.

RESTCONF's ``content``, ``depth``, ``fields``, ``with-defaults`` and
``with-origin`` and NETCONF's ``config-filter``, ``max-depth``, with-defaults,
``with-origin`` and origin filters are the same operations on a private copy of
the selected data, and so are the list pagination parameters of
draft-ietf-netconf-list-pagination (``where``, ``sort-by``, ``locale``,
``direction``, ``offset``, ``limit``, ``sublist-limit``) that both front ends
take; :func:`read` applies them in one order, and :func:`encode` prints the
result (RFC 6243's ``report-all-tagged`` marks included).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from nfo.errors import InvalidValue, NotPageable
from nfo.protocol.formats import read_source
from nfo.schema import Fmt, Node, Tree, WithDefaults, print_node
from nfo.schema.data import rfc6243_xml
from nfo.schema.paging import Direction, Paging, limit_sublists, paginate, target_of
from nfo.schema.prune import (
    filter_origin,
    prune_content,
    prune_depth,
    prune_fields,
    strip_origin,
)

__all__ = [
    "LIVE_DEFAULTS",
    "PAGING_PARAMS",
    "AsyncReader",
    "Content",
    "Paging",
    "ReadQuery",
    "Reader",
    "Selection",
    "depth_of",
    "encode",
    "encode_node",
    "encode_with_ancestors",
    "paging_of",
    "query",
    "read",
    "with_defaults_of",
]


T = TypeVar("T")


class Content(StrEnum):
    """RESTCONF ``content`` / NETCONF ``config-filter``."""

    CONFIG = "config"
    NONCONFIG = "nonconfig"
    ALL = "all"


class Reader(Protocol):
    def get(self, datastore: str, xpath: str | None = None, *,
            with_origin: bool = False) -> Tree: ...


class AsyncReader(Protocol):
    async def query(self, datastore: str, xpath: str | None, then: Callable[[Tree], T], *,
                    with_origin: bool = False, offload: bool = False) -> T: ...

    def live_one(self, datastore: str, path: str) -> Node | None: ...


@dataclass(frozen=True)
class ReadQuery:
    datastore: str
    """A readable datastore (``intended`` is served from running)."""
    select: str | None = None
    """XPath (module names as prefixes) of the nodes asked for; None: all data."""
    content: Content = Content.ALL
    depth: int | None = None
    """Levels kept below each selected node (1: the node itself); None: all."""
    fields: str | None = None
    """XPath of the descendants to keep (RESTCONF ``fields``), absolute."""
    with_origin: bool = False
    origins: frozenset[str] | None = None
    """Keep only nodes of these ietf-origin identities (RFC 8526 origin-filter)."""
    negate_origins: bool = False
    select_one: bool = False
    """``select`` is a data path naming at most one node (:meth:`Schema.names_one`):
    found by a lookup instead of an XPath evaluation."""
    paging: Paging | None = None
    """List pagination: ``select`` names the entries of one list or leaf-list."""


def depth_of(text: str | None, what: str) -> int | None:
    """``1..65535`` or ``unbounded`` (RESTCONF depth, NETCONF max-depth)."""
    if text is None or text == "unbounded":
        return None
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidValue(f"{what} must be 1..65535 or 'unbounded', not {text!r}",
                           error_type="protocol", info={"bad-element": what})
    return int(text)


def with_defaults_of(text: str | None) -> WithDefaults | None:
    """An RFC 6243 retrieval mode by name (None when not given)."""
    if text is None:
        return None
    try:
        return WithDefaults(text)
    except ValueError:
        raise InvalidValue("with-defaults must be report-all, trim, explicit or "
                           f"report-all-tagged, not {text!r}", error_type="protocol",
                           info={"bad-element": "with-defaults"}) from None


PAGING_PARAMS = ("where", "sort-by", "locale", "direction", "offset", "limit",
                 "sublist-limit")
"""The pagination parameters, by their names in both protocols."""


def _count(text: str, what: str, *, low: int, unbounded: bool) -> int | None:
    if unbounded and text == "unbounded":
        return None
    if not text.isdigit() or not low <= int(text) <= 2**32 - 1:
        allowed = f"{low}..4294967295" + (" or 'unbounded'" if unbounded else "")
        raise InvalidValue(f"{what} must be {allowed}, not {text!r}",
                           info={"bad-element": what})
    return int(text)


def paging_of(params: dict[str, str]) -> Paging | None:
    """The pagination asked for by parameters named as :data:`PAGING_PARAMS` (their
    values as text, ``where`` with module names as prefixes); None when none is given."""
    if not any(k in params for k in PAGING_PARAMS):
        return None
    direction = params.get("direction", "forwards")
    try:
        d = Direction(direction)
    except ValueError:
        raise InvalidValue(f"direction must be forwards or backwards, not {direction!r}",
                           info={"bad-element": "direction"}) from None
    where = params.get("where")
    if where is not None and (not where.strip() or where == "unfiltered"):
        where = None
    sort_by = params.get("sort-by")
    if sort_by is not None and (not sort_by.strip() or sort_by == "none"):
        if not sort_by.strip():
            raise InvalidValue("sort-by names a node, or 'none'",
                               info={"bad-element": "sort-by"})
        sort_by = None
    return Paging(
        where=where, sort_by=sort_by, locale=params.get("locale"), direction=d,
        offset=_count(params.get("offset", "0"), "offset", low=0, unbounded=False) or 0,
        limit=_count(params.get("limit", "unbounded"), "limit", low=1, unbounded=True),
        sublist_limit=_count(params.get("sublist-limit", "unbounded"), "sublist-limit",
                             low=1, unbounded=True))


class _Selected(Sequence[Node]):
    """The selected nodes of a read, looked up only if asked for (an XPath over a large
    copy that is printed whole is wasted)."""

    def __init__(self, tree: Tree, select: str | None, one: bool) -> None:
        self._tree = tree
        self._select = select
        self._one = one
        self._nodes: list[Node] | None = None

    def _all(self) -> list[Node]:
        if self._nodes is None:
            self._nodes = (self._tree.match(self._select, one=self._one) if self._select
                           else self._tree.nodes())
        return self._nodes

    def __len__(self) -> int:
        return len(self._all())

    def __getitem__(self, i: int) -> Node:  # type: ignore[override]
        return self._all()[i]

    def __iter__(self) -> Iterator[Node]:
        return iter(self._all())


class Selection:
    """What :func:`read` returns: ``with read(...) as (tree, selected)``; the private
    copy is freed when the block ends."""

    __slots__ = ("selected", "tree")

    def __init__(self, tree: Tree, selected: Sequence[Node]) -> None:
        self.tree = tree
        self.selected = selected

    def __enter__(self) -> tuple[Tree, Sequence[Node]]:
        return self.tree, self.selected

    def __exit__(self, *exc: object) -> None:
        self.tree.free()


def _source_of(q: ReadQuery) -> tuple[str, bool]:
    ds = read_source(q.datastore)
    oper = ds == "operational"
    if (q.with_origin or q.origins is not None) and not oper:
        raise InvalidValue("origin applies to the operational datastore only",
                           info={"bad-element": "with-origin"})
    return ds, oper and (q.with_origin or q.origins is not None)


def read(source: Reader, q: ReadQuery) -> Selection:
    """A private copy of what ``q`` asks for and the selected nodes still in it (the
    top-level nodes when nothing was selected)."""
    ds, origin = _source_of(q)
    return _knobs(source.get(ds, q.select, with_origin=origin), q)


async def query(source: AsyncReader, q: ReadQuery,
                render: Callable[[Tree, Sequence[Node]], T],
                direct: Callable[[Node], T] | None = None) -> T:
    """``render(tree, selected)`` of what :func:`read` gives, with everything after
    copying the live data done off the event loop (:meth:`AsyncReader.query`).

    ``direct``: what ``render`` gives for the one node a plain query (one node, no
    knob) selects, given that node itself; used, with the live node and nothing
    copied, when :meth:`AsyncReader.live_one` finds it."""
    ds, origin = _source_of(q)
    if direct is not None and q.select_one and q.select is not None and _plain(q):
        node = source.live_one(ds, q.select)
        if node is not None:
            return direct(node)

    def then(tree: Tree) -> T:
        with _knobs(tree, q) as (copy, selected):
            return render(copy, selected)

    return await source.query(ds, q.select, then, with_origin=origin,
                              offload=q.paging is not None)


def _plain(q: ReadQuery) -> bool:
    """Whether ``q`` selects and prints, nothing more."""
    return (q.content is Content.ALL and q.depth is None and q.fields is None
            and not q.with_origin and q.origins is None and q.paging is None)


def _knobs(tree: Tree, q: ReadQuery) -> Selection:
    try:
        if q.origins is not None:
            filter_origin(tree, set(q.origins), negated=q.negate_origins)
            if not q.with_origin:
                strip_origin(tree)
        if q.content is not Content.ALL:
            prune_content(tree, tree.nodes(), config=q.content is Content.CONFIG)
        anchors: Sequence[Node] = _Selected(tree, q.select, q.select_one)
        if q.paging is not None and q.paging.pages:
            page_tree, anchors = _page(tree, anchors, q, q.paging)
            tree.free()
            tree = page_tree
        if q.paging is not None and q.paging.sublist_limit is not None:
            limit_sublists(tree, anchors if q.select else None, q.paging.sublist_limit)
        level_one: list[Node] = []
        if q.fields is not None and anchors:
            level_one = tree.match(q.fields)
            anchors = prune_fields(tree, anchors, level_one)
        if q.depth is not None:
            prune_depth(tree, anchors, q.depth, level_one)
    except BaseException:
        tree.free()
        raise
    return Selection(tree, anchors)


def _page(tree: Tree, anchors: Sequence[Node], q: ReadQuery,
          p: Paging) -> tuple[Tree, list[Node]]:
    """The page ``p`` asks of the selected entries, in a new tree."""
    target = target_of(tree.ctx, q.select) if q.select else None
    if target is None:
        raise NotPageable("pagination needs a target that is one list or leaf-list, "
                          "not " + (repr(q.select) if q.select else "the datastore"))
    return paginate(tree, target, list(anchors), p)


def encode(tree: Tree, fmt: Fmt, with_defaults: WithDefaults | None = None, *,
           keep_empty: bool = False) -> str:
    """A whole tree as text in ``fmt`` (XML report-all-tagged as RFC 6243 section 6)."""
    text = tree.print(fmt, with_defaults=with_defaults, keep_empty=keep_empty)
    if fmt is Fmt.XML and with_defaults is WithDefaults.REPORT_ALL_TAGGED:
        return rfc6243_xml(text)
    return text


LIVE_DEFAULTS = (None, WithDefaults.EXPLICIT, WithDefaults.TRIM)
"""The with-defaults modes in which a live node of running prints as its private copy
does (implicit defaults of configuration are left out either way): those a
``direct`` render of :func:`query` may serve."""


def encode_with_ancestors(node: Node, fmt: Fmt,
                          with_defaults: WithDefaults | None = None) -> str:
    """``node`` with its subtree and its ancestors (their keys only), as :func:`encode`
    prints the copy of a read that selected it."""
    with Tree.copy_of(node) as tree:
        return encode(tree, fmt, with_defaults)


def encode_node(node: Node, fmt: Fmt, with_defaults: WithDefaults | None = None, *,
                following: bool = False) -> str:
    """One node with its subtree, without its siblings (a RESTCONF target resource);
    ``following``: with the siblings after it (a page of leaf-list entries, whose
    metadata libyang prints only with them)."""
    text = print_node(node, fmt, with_defaults=with_defaults, following=following)
    if fmt is Fmt.XML and with_defaults is WithDefaults.REPORT_ALL_TAGGED:
        return rfc6243_xml(text)
    return text
