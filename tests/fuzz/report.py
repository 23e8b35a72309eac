"""What both long fuzz runs report at the end: coverage of the protocol packages and
the verdict (failures, exit code, the server's log).

Why shared: the RESTCONF and NETCONF runs are judged by the same rules.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fuzz.server import ROOT, ServerProcess

__all__ = ["PACKAGES", "coverage_report", "finish"]

PACKAGES = {"nfo/protocol": "nfo/protocol/*", "nfo/netconf": "nfo/netconf/*",
            "restconf": "restconf/*"}


def coverage_report(directory: Path) -> str:
    """Combine the server's coverage data in ``directory``; line coverage per package."""
    data = directory / ".coverage"
    subprocess.run([sys.executable, "-m", "coverage", "combine", f"--data-file={data}",
                    str(directory)], cwd=ROOT, check=False, capture_output=True)
    lines = []
    for name, pattern in PACKAGES.items():
        out = subprocess.run([sys.executable, "-m", "coverage", "report",
                              f"--data-file={data}", f"--include={pattern}"],
                             cwd=ROOT, capture_output=True, text=True, check=False).stdout
        total = [x for x in out.splitlines() if x.startswith("TOTAL")]
        lines.append(f"coverage {name}: {total[0].split()[-1] if total else '?'}")
        (directory / f"{name.replace('/', '_')}.txt").write_text(out)
    return "\n".join(lines)


def finish(server: ServerProcess, code: int | None, failures: list[str]) -> int:
    """Print the verdict; 0 only when nothing failed and the server stopped cleanly."""
    bad = server.bad_log_lines()
    print(f"server exit code {code}; {len(bad)} traceback/ERROR lines in its log; "
          f"{len(failures)} failures")
    for line in bad[:50]:
        print("  log:", line)
    for f in failures:
        print("FAILURE:", f[:3000])
    return 0 if code == 0 and not bad and not failures else 1
