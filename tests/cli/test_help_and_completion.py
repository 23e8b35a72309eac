"""``nfo completion bash``: a script generated from the parser that bash really uses."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


def test_bash_completes_commands_actions_and_options() -> None:
    script = subprocess.run([sys.executable, "-m", "nfo", "completion", "bash"],
                            capture_output=True, text=True, check=True).stdout
    probe = script + "\n" + "\n".join(
        f'COMP_WORDS=({line}); COMP_CWORD={n}; _nfo; echo "{line}|${{COMPREPLY[*]}}"'
        for line, n in (("nfo ins", 1), ("nfo instance c", 2), ("nfo instance cr", 2),
                        ("nfo instance create x --wa", 4), ("nfo instance sync-", 2),
                        ("nfo vim ''", 2), ("nfo watch --js", 2), ("nfo hi", 1),
                        ("nfo rollback 4 --co", 3), ("nfo instance list --so", 3)))
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    got = dict(line.split("|", 1) for line in out.stdout.splitlines())
    assert got["nfo ins"] == "instance"
    assert got["nfo instance c"] == "check-sync create"
    assert got["nfo instance cr"] == "create"
    assert got["nfo instance sync-"] == "sync-from sync-to"
    assert got["nfo instance create x --wa"] == "--wait"
    assert set(got["nfo vim ''"].split()) >= {"add", "delete", "list", "show"}
    assert got["nfo watch --js"] == "--json"
    assert got["nfo hi"] == "history"
    assert got["nfo rollback 4 --co"] == "--comment"
    assert got["nfo instance list --so"] == "--sort-by"


def test_every_command_has_help_with_an_example() -> None:
    from nfo.cli.remote import _OP_EXAMPLES
    for (cmd, op), _ in _OP_EXAMPLES.items():
        out = subprocess.run([sys.executable, "-m", "nfo", cmd, op, "--help"],
                             capture_output=True, text=True, check=True).stdout
        assert "example:" in out and f"nfo {cmd} {op}" in out, (cmd, op)
    for cmd in ("watch", "status", "history", "diff", "rollback"):
        out = subprocess.run([sys.executable, "-m", "nfo", cmd, "--help"],
                             capture_output=True, text=True, check=True).stdout
        assert "--json" in out and "--url" in out
        if cmd not in ("status", "watch"):
            assert "examples:" in out and f"nfo {cmd} " in out, cmd
