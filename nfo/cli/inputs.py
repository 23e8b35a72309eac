"""Input files of the command line, checked against the YANG modules before anything is
sent: a mistake is reported with the file, the line and the YANG path, and the server
is not bothered.

Why locally, with libyang: the same parser as the server's (types, ranges, patterns,
enumerations, identities, unknown members).  What needs the server's data (leafrefs,
must, mandatory across lists) stays the server's to judge.  Data of a module this nfo
does not know (installed on the server with ``nfo module install``) is not checked here:
the server judges it, and a warning says so.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from nfo.errors import NfoError

__all__ = ["InputError", "check_entries"]

_UNKNOWN_MODULE = re.compile(r'No module named "([^"]+)"')
_MEMBER = re.compile(r'Node "([^"]+)" not found')
_ENTRY = re.compile(r"\[(?P<key>[\w-]+)='(?P<value>[^']*)'\](?:/(?P<leaf>[\w:-]+))?")


class InputError(Exception):
    """A file's data the YANG modules refuse: ``file:line: path: message``."""


def check_entries(module: str, container: str, lst: str, entries: list[dict[str, Any]],
                  path: Path) -> None:
    from nfo.schema import Fmt, Parse, Schema, Tree
    doc = {f"{module}:{container}": {lst: entries}}
    try:
        Tree.parse(Schema(), json.dumps(doc), Fmt.JSON, mode=Parse.CONFIG).free()
    except NfoError as e:
        unknown = _UNKNOWN_MODULE.search(e.message)
        if unknown:
            print(f"nfo: warning: {path}: module {unknown.group(1)!r} is not known here; "
                  "the server checks that data", file=sys.stderr)
            return
        where = e.path or ""
        member = _MEMBER.search(e.message)
        line = _line(path, where, member.group(1) if member else None)
        raise InputError(f"{path}:{line}: {where}: {e.message}") from None


def _line(path: Path, where: str, member: str | None) -> int:
    """The line of ``path`` that the error's data path (and the unknown ``member``)
    points at (1 when unknown)."""
    m = _ENTRY.search(where)
    try:
        text = path.read_text()
    except OSError:
        return 1
    if m is None:
        return 1
    key, value, leaf = m.group("key"), m.group("value"), m.group("leaf") or member
    if path.suffix.lower() != ".json":
        found = _yaml_line(text, key, value, leaf)
        if found:
            return found
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if re.search(
        rf"\b{re.escape(key)}\b\W+{re.escape(value)}\b", line)), None)
    if start is None:
        return 1
    if leaf:
        name = leaf.split(":")[-1]
        for n in range(start, len(lines)):
            if re.search(rf"[\"']?\b{re.escape(name)}\b[\"']?\s*:", lines[n]):
                return n + 1
    return start + 1


def _yaml_line(text: str, key: str, value: str, leaf: str | None) -> int | None:
    import yaml
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            members = {k.value: (k, v) for k, v in node.value
                       if isinstance(k, yaml.ScalarNode)}
            hit = members.get(key)
            if hit is not None and isinstance(hit[1], yaml.ScalarNode) and \
                    hit[1].value == value:
                if leaf and leaf.split(":")[-1] in members:
                    return int(members[leaf.split(":")[-1]][0].start_mark.line) + 1
                return int(node.start_mark.line) + 1
            stack += [v for _, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return None
