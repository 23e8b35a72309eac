"""Data paths between libyang's form and the XML protocols' form.

libyang (and RFC 7951 JSON) writes paths with module names as prefixes, only
where the module changes: ``/nfo-vim:vims/vim[name='a']``.  XML writes
instance-identifiers (RFC 7950 section 9.13.2) with every node name prefixed
by a prefix declared in the document, and clients write XPath filters with
their own XML prefixes.  These two conversions are the only ones in nfo.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["xml_instance_id", "xpath_from_xml"]

_NAME = re.compile(r"([A-Za-z_][\w.-]*)(?::([A-Za-z_][\w.-]*))?")
_PREFIX = re.compile(r"([A-Za-z_][\w.-]*):(?=[A-Za-z_*])")


def xml_instance_id(path: str, namespace_of: Callable[[str], str | None]
                    ) -> tuple[str, dict[str, str]]:
    """A libyang data path as an XML instance-identifier: every node name prefixed,
    the module names themselves serving as prefixes.  Returns the text and the
    prefix -> namespace declarations it needs (a module ``namespace_of`` does not
    know keeps its name unprefixed)."""
    out: list[str] = []
    decls: dict[str, str] = {}
    module: str | None = None
    i, n = 0, len(path)
    expect_name = True
    while i < n:
        ch = path[i]
        if ch in "'\"":
            j = path.find(ch, i + 1)
            j = n - 1 if j < 0 else j
            out.append(path[i:j + 1])
            i = j + 1
            continue
        if ch in "/[":
            out.append(ch)
            expect_name = True
            i += 1
            continue
        if expect_name and (ch.isalpha() or ch == "_"):
            m = _NAME.match(path, i)
            assert m is not None
            if m.group(2):
                mod, name = m.group(1), m.group(2)
                if i == 0 or path[i - 1] == "/":
                    module = mod
            else:
                mod, name = module, m.group(1)
            ns = namespace_of(mod) if mod else None
            if mod and ns is not None:
                decls[mod] = ns
                out.append(f"{mod}:{name}")
            else:
                out.append(m.group(0))
            i = m.end()
            expect_name = False
            continue
        out.append(ch)
        if ch not in " \t":
            expect_name = False
        i += 1
    return "".join(out), decls


def xpath_from_xml(expr: str, resolve: Callable[[str], str | None],
                   module_of: Callable[[str], str | None]) -> str:
    """An XPath written with the request's XML prefixes (``resolve``: prefix -> namespace
    in scope) rewritten with module names as prefixes, as libyang evaluates it.
    Quoted literals are left alone; an unknown prefix stays as written (libyang then
    refuses it with its own message)."""
    out: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch in "'\"":
            j = expr.find(ch, i + 1)
            j = n - 1 if j < 0 else j
            out.append(expr[i:j + 1])
            i = j + 1
            continue
        m = _PREFIX.match(expr, i)
        if m and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] in "_.-:")):
            ns = resolve(m.group(1))
            mod = module_of(ns) if ns is not None else None
            out.append(f"{mod or m.group(1)}:")
            i = m.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out)
