"""Data paths as typed steps: one parser for libyang's data paths and for the
node-instance-identifiers of access control rules (module names as prefixes)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["Step", "parse_path", "schema_paths"]


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


def parse_path(path: str) -> tuple[Step, ...]:
    """The steps of a data path or node-instance-identifier with module names as
    prefixes (``/m:a/b[k='v']``); a step without a prefix is in its parent's module.
    Raises ValueError for anything else."""
    steps: list[Step] = []
    pos = 0
    module = ""
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


def schema_paths(steps: Sequence[Step]) -> Iterator[str]:
    """The schema path of each prefix of ``steps`` (``/m:a``, ``/m:a/b``, ...), in the
    form :attr:`nfo.schema.SNode.path` has."""
    out = ""
    prev = ""
    for s in steps:
        out += "/" + (s.name if s.module == prev else f"{s.module}:{s.name}")
        prev = s.module
        yield out
