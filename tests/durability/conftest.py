"""The fsshim library, built once per test session (skips where no C compiler exists)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.durability import fsshim


@pytest.fixture(scope="session")
def shim_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return fsshim.build(tmp_path_factory.mktemp("fsshim"))
    except FileNotFoundError as e:
        pytest.skip(str(e))
