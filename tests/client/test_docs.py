"""The examples of docs/client.md, run as written against a real ``nfo serve``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.server import PASSWORD, ROOT, ServerProcess

EXAMPLES = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "client.md").read_text(),
                      re.DOTALL)


def test_the_guide_has_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("n", range(len(EXAMPLES)))
def test_example_runs(served: ServerProcess, n: int, tmp_path: Path) -> None:
    env = {**os.environ, "NFO_URL": served.base, "NFO_USER": "admin",
           "NFO_PASSWORD": PASSWORD, "NFO_CONFIG": str(tmp_path / "none.toml")}
    out = subprocess.run([sys.executable, "-c", EXAMPLES[n]], capture_output=True, text=True,
                         env=env, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip()
