"""Layer rules import-linter cannot see.

import-linter builds its graph from the ``nfo/`` folder, but ``drivers/``,
``restconf/`` and ``bindings/`` are mapped into the ``nfo`` namespace from
folders of their own.  This checks their imports (and the workload manager's
use of drivers) from the source text.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(folder: Path) -> dict[Path, set[str]]:
    out: dict[Path, set[str]] = {}
    for f in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        out[f] = names
    return out


def offending(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for f, names in imports(ROOT / folder).items():
        for n in names:
            if n.startswith(forbidden):
                bad.append(f"{f.relative_to(ROOT)} imports {n}")
    return bad


@pytest.mark.parametrize(("folder", "forbidden"), [
    # drivers implement the registry's protocol and know nothing above or beside it
    ("drivers", ("nfo.workload", "nfo.datastore", "nfo.restconf", "nfo.netconf", "nfo.cli")),
    # the workload manager reaches drivers only through the registry
    ("nfo/workload", ("nfo.drivers", "nfo.restconf", "nfo.netconf", "nfo.cli")),
    ("nfo/registry", ("nfo.drivers", "nfo.workload", "nfo.datastore", "nfo.cli")),
    # front ends depend on the datastore API only
    ("restconf", ("nfo.workload", "nfo.registry", "nfo.drivers", "nfo.netconf", "nfo.cli")),
])
def test_mapped_folders_respect_the_layers(folder: str, forbidden: tuple[str, ...]) -> None:
    assert offending(folder, forbidden) == []


def test_the_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("from nfo.workload import WorkloadManager\n")
    assert imports(tmp_path)[tmp_path / "m.py"] == {"nfo.workload"}
