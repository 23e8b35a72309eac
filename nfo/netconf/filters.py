"""NETCONF filters as the XPath the read path selects with.

RFC 6241 subtree filters (``<filter>`` of get and get-config, RFC 8526's
``subtree-filter``, RFC 5277's notification filter) become an XPath union;
xpath filters are the client's XPath with its XML prefixes, as bound at the
element that carries the expression, rewritten to module names.  Every filter
ends up as one ``select`` for :func:`nfo.protocol.read.read` or for a
notification subscription.
"""

from __future__ import annotations

from collections.abc import Callable

from nfo.errors import InvalidValue, MissingElement, TooBig
from nfo.netconf.messages import NC_NS, NMDA_NS, NOTIF_NS
from nfo.protocol.paths import xpath_from_xml
from nfo.wire.xml import Element

__all__ = [
    "MAX_FILTER",
    "ModuleOf",
    "filter_xpath",
    "nmda_filter",
    "notification_filter",
    "subtree_to_xpath",
    "xpath_at",
]

ModuleOf = Callable[[str], "str | None"]
"""XML namespace -> module name."""

MAX_FILTER = 256 * 1024
"""Characters of XPath one filter may come to (a subtree filter's union included)."""


def _too_big() -> TooBig:
    return TooBig(f"the filter comes to more than {MAX_FILTER:,} characters of XPath; "
                  "split it into several requests", error_type="protocol",
                  info={"bad-element": "filter"})


def _literal(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return "concat('" + "', \"'\", '".join(value.split("'")) + "')"


def subtree_to_xpath(filter_el: Element, module_of: ModuleOf) -> str | None:
    """An XPath (libyang JSON prefixes) selecting what an RFC 6241 subtree filter selects.

    Containment nodes become steps, content-match nodes predicates (and are
    selected too), selection nodes steps.  Returns None for an empty filter (select
    nothing) and raises InvalidValue for elements of unknown namespaces.  The XPath of
    a filter shape (its elements, without the content-match values) is remembered:
    a filter of a known shape only has its values quoted into it.
    """
    key: list[tuple[str, str, int]] = []
    values: list[Element] = []
    shape = tuple(key) if _shape(filter_el, module_of, key, values) else None
    if shape is not None and shape in _TEMPLATES:
        template = _TEMPLATES[shape]
        if template is None:
            return None
        found = template.format(*[_literal(v.text.strip()) for v in values])
        if len(found) + 3 > MAX_FILTER:
            raise _too_big()
        return found
    xpath = _translate(filter_el, module_of, lambda k: _literal(k.text.strip()), MAX_FILTER)
    if shape is not None:
        index = {id(v): i for i, v in enumerate(values)}
        if len(_TEMPLATES) >= MAX_TEMPLATES:
            _TEMPLATES.clear()
        _TEMPLATES[shape] = _translate(filter_el, module_of,
                                       lambda k: "{" + str(index[id(k)]) + "}", None)
    return xpath


MAX_TEMPLATES = 512
"""Filter shapes remembered at most (all forgotten when full)."""
_TEMPLATES: dict[tuple[tuple[str, str, int], ...], str | None] = {}
"""The XPath of each filter shape seen, "{n}" standing for its n-th content-match value."""


def _shape(el: Element, module_of: ModuleOf, key: list[tuple[str, str, int]],
           values: list[Element]) -> bool:
    """Add the shape of ``el``'s descendants to ``key`` ((module, name, children or -1
    for a content-match node) in document order) and its content-match nodes to
    ``values``; False when an element is in no known module (or its name could not
    stand in an XPath template)."""
    for k in el.children:
        mod = module_of(k.ns) if k.ns else None
        if mod is None or "{" in k.name or "}" in k.name:
            return False
        if k.children:
            key.append((mod, k.name, len(k.children)))
            if not _shape(k, module_of, key, values):
                return False
        elif k.text.strip():
            key.append((mod, k.name, -1))
            values.append(k)
        else:
            key.append((mod, k.name, 0))
    return True


def _translate(filter_el: Element, module_of: ModuleOf, literal: Callable[[Element], str],
               limit: int | None) -> str | None:
    """The XPath of a subtree filter, each content-match node's value given by
    ``literal``; at most ``limit`` characters (else TooBig)."""
    paths: list[str] = []
    size = 0

    def add(path: str) -> None:
        nonlocal size
        size += len(path) + 3
        if limit is not None and size > limit:
            raise _too_big()
        paths.append(path)

    def name_of(el: Element) -> str:
        mod = module_of(el.ns) if el.ns else None
        if mod is None:
            raise InvalidValue(f"the filter element {el.name!r} is in no known namespace",
                               tag="unknown-namespace" if el.ns else "unknown-element",
                               info={"bad-element": el.name})
        return f"{mod}:{el.name}"

    def walk(el: Element, prefix: str) -> None:
        step = prefix + "/" + name_of(el)
        kids = el.children
        matches = [k for k in kids if not k.children and k.text.strip()]
        others = [k for k in kids if k not in matches]
        pred = "".join(f"[{name_of(k)}={literal(k)}]" for k in matches)
        if not others:
            add(step + pred)
            return
        for k in matches:
            add(step + pred + "/" + name_of(k))
        for k in others:
            walk(k, step + pred)

    for top in filter_el.children:
        walk(top, "")
    return " | ".join(paths) if paths else None


def xpath_at(el: Element, expr: str, module_of: ModuleOf) -> str:
    """``expr``, written with the XML prefixes in scope at ``el``, with module names."""
    if len(expr) > MAX_FILTER:
        raise _too_big()
    return xpath_from_xml(expr, el.resolve, module_of)


def filter_xpath(f: Element, module_of: ModuleOf) -> str | None:
    """The XPath of an RFC 6241 ``<filter>`` (``type`` subtree or xpath); None when it
    selects nothing (an empty subtree filter)."""
    ftype = f.attr("type")
    if ftype is None or ftype == "subtree":
        return subtree_to_xpath(f, module_of)
    if ftype != "xpath":
        raise InvalidValue(f"unknown filter type {ftype!r}", tag="bad-attribute",
                           error_type="protocol",
                           info={"bad-attribute": "type", "bad-element": "filter"})
    select = f.attr("select")
    if select is None:
        raise MissingElement("an xpath filter needs a select attribute",
                             tag="missing-attribute", error_type="protocol",
                             info={"bad-attribute": "select", "bad-element": "filter"})
    return xpath_at(f, select, module_of)


def nmda_filter(op: Element, module_of: ModuleOf) -> tuple[bool, str | None]:
    """(whether a filter is given, its XPath) of RFC 8526 get-data."""
    subtree = op.child("subtree-filter", NMDA_NS)
    xpath = op.child("xpath-filter", NMDA_NS)
    if subtree is not None and xpath is not None:
        raise InvalidValue("give a subtree-filter or an xpath-filter, not both",
                           info={"bad-element": "xpath-filter"})
    if subtree is not None:
        return True, subtree_to_xpath(subtree, module_of)
    if xpath is not None:
        return True, xpath_at(xpath, xpath.text.strip(), module_of)
    return False, None


def notification_filter(op: Element, module_of: ModuleOf) -> str | None:
    """The XPath of create-subscription's filter, None without one."""
    # RFC 5277 puts <filter> in its own namespace; clients (ncclient) also use the base one.
    f = op.child("filter", NOTIF_NS) or op.child("filter", NC_NS)
    if f is None:
        return None
    xpath = filter_xpath(f, module_of)
    if xpath is None:
        raise InvalidValue("an empty subtree filter selects no notification",
                           info={"bad-element": "filter"})
    return xpath
