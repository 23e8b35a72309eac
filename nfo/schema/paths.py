"""Data paths as typed steps: one parser for libyang's data paths and for the
node-instance-identifiers of access control rules (module names as prefixes)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["Step", "StepCache", "canonical_path", "parse_path", "path_prefixes", "quoted",
           "render_path", "schema_path_of", "schema_paths"]


@dataclass(frozen=True, slots=True)
class Step:
    module: str
    name: str
    preds: tuple[tuple[str, str], ...] = ()
    """Key (or ``.`` for a leaf-list entry, ``#`` for a position) -> value."""


_STEP = re.compile(
    r"/(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*)"
    r"((?:\[(?:[^\]'\"]|'[^']*'|\"[^\"]*\")*\])*)")
_PRED = re.compile(
    r"\[\s*(?:(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)|(\.))\s*=\s*(?:'([^']*)'|\"([^\"]*)\")\s*\]"
    r"|\[\s*(\d+)\s*\]")

_PREDICATES = re.compile(r"\[(?:[^\]'\"]|'[^']*'|\"[^\"]*\")*\]")


def schema_path_of(path: str) -> str:
    """The schema path (the form :attr:`nfo.schema.SNode.path` has) of a data path
    that libyang wrote (a module prefix exactly where the module changes)."""
    return _PREDICATES.sub("", path)


def parse_path(path: str, base: tuple[str, tuple[Step, ...]] | None = None
               ) -> tuple[Step, ...]:
    """The steps of a data path or node-instance-identifier with module names as
    prefixes (``/m:a/b[k='v']``); a step without a prefix is in its parent's module.
    ``base`` is an ancestor's path and steps, parsed before, that ``path`` extends.
    Raises ValueError for anything else."""
    steps: list[Step] = list(base[1]) if base else []
    pos = len(base[0]) if base else 0
    module = steps[-1].module if steps else ""
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            raise ValueError(f"not a data path: {path!r}")
        module = m.group(1) or module
        if not module:
            raise ValueError(f"the first step of {path!r} has no module")
        preds: list[tuple[str, str]] = []
        raw = m.group(3)
        at = 0
        while at < len(raw):
            p = _PRED.match(raw, at)
            if p is None:
                raise ValueError(f"unsupported predicate in {path!r}")
            if p.group(5) is not None:
                preds.append(("#", p.group(5)))
            else:
                value = p.group(3) if p.group(3) is not None else p.group(4)
                preds.append((p.group(1) or ".", value))
            at = p.end()
        steps.append(Step(module, m.group(2), tuple(sorted(preds))))
        pos = m.end()
    if not steps:
        raise ValueError("an empty path")
    return tuple(steps)


def quoted(value: str) -> str:
    """A predicate's value quoted as libyang writes it: ``'`` unless the value holds one,
    then ``"`` (verbatim, even when it holds both)."""
    return f'"{value}"' if "'" in value else f"'{value}'"


def render_path(steps: Sequence[Step]) -> str:
    """The data path of ``steps`` (the inverse of :func:`parse_path`; a module prefix
    where the module changes)."""
    out = []
    module = None
    for s in steps:
        name = s.name if s.module == module else f"{s.module}:{s.name}"
        module = s.module
        preds = "".join(f"[{k}={quoted(v)}]" for k, v in s.preds)
        out.append(f"/{name}{preds}")
    return "".join(out)


def canonical_path(path: str) -> str | None:
    """``path`` written as libyang writes the path of a node with at most one key per
    step (prefixes where the module changes, ``[k='v']``), so that two spellings of one
    node compare equal; None for a path with a positional predicate or not a data path."""
    try:
        steps = parse_path(path)
    except ValueError:
        return None
    if any(k == "#" for s in steps for k, _ in s.preds):
        return None
    return render_path(steps)


def path_prefixes(path: str) -> list[str]:
    """The proper prefixes of a data path that are paths themselves, shortest first:
    where each step ends, and where a step's name ends before its predicates
    (``/m:a/b[k='1']/c`` gives ``/m:a``, ``/m:a/b``, ``/m:a/b[k='1']``)."""
    out = []
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            raise ValueError(f"not a data path: {path!r}")
        if m.group(3):
            out.append(path[:m.start(3)])
        out.append(path[:m.end()])
        pos = m.end()
    if out and out[-1] == path:
        out.pop()
    return out


class StepCache:
    """Parses the paths of a depth-first walk (a commit's changes), each from its
    nearest ancestor already parsed."""

    def __init__(self) -> None:
        self._stack: list[tuple[str, tuple[Step, ...]]] = []

    def steps(self, path: str) -> tuple[Step, ...]:
        stack = self._stack
        # A prefix that is itself a whole path ends outside any quoted key, so the
        # "/" after it starts a step of ``path``.
        while stack and not (path.startswith(stack[-1][0])
                             and path[len(stack[-1][0]):len(stack[-1][0]) + 1] == "/"):
            stack.pop()
        steps = parse_path(path, stack[-1] if stack else None)
        stack.append((path, steps))
        return steps


def schema_paths(steps: Sequence[Step]) -> Iterator[str]:
    """The schema path of each prefix of ``steps`` (``/m:a``, ``/m:a/b``, ...), in the
    form :attr:`nfo.schema.SNode.path` has."""
    out = ""
    prev = ""
    for s in steps:
        out += "/" + (s.name if s.module == prev else f"{s.module}:{s.name}")
        prev = s.module
        yield out
