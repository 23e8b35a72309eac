"""Schema fixtures: tests/ui_yang's modules (every node kind and type the web UI
describes, and the conditions it evaluates) and a lookup that must find its node."""

from __future__ import annotations

from pathlib import Path

import pytest

from nfo.schema import Schema, SNode

UI_YANG = Path(__file__).resolve().parents[1] / "ui_yang"


@pytest.fixture(scope="module")
def ui() -> Schema:
    return Schema(extra_dirs=[UI_YANG])


def node(schema: Schema, path: str) -> SNode:
    found = schema.find(path)
    assert found is not None, path
    return found
