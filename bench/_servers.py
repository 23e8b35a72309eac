"""Builds of nfo to benchmark: start ``PYTHON -m nfo serve`` of one installation, stop it.

A "build" is the python executable of an installation of nfo (this tree's
``.venv/bin/python``, or another work tree's for an A/B run).  Each server gets a fresh
state directory and runs with its working directory inside it: ``python -m`` puts the
working directory first on ``sys.path``, so started from a repository root another
build's python would import that repository's ``nfo`` instead of its own.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "bench-password-123"


def build_env(python: str) -> dict[str, str]:
    """The environment of a process of build ``python``: this one's, without
    PYTHONPATH for another build (which would make it import this tree's nfo)."""
    env = dict(os.environ)
    if python != sys.executable:
        env.pop("PYTHONPATH", None)
    return env


def describe(python: str, env: Mapping[str, str] | None = None) -> str:
    """Where ``python`` imports nfo from (in ``env``, by default :func:`build_env`'s),
    with that work tree's commit when it is one."""
    r = subprocess.run([python, "-c", "import nfo; print(nfo.__file__)"], cwd="/",
                       capture_output=True, text=True, timeout=60,
                       env=build_env(python) if env is None else env)
    if r.returncode != 0:
        raise SystemExit(f"{python} cannot import nfo: {r.stderr.strip()[-500:]}")
    tree = Path(r.stdout.strip()).parent.parent
    rev = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    return f"{tree}" + (f" @ {rev.stdout.strip()}" if rev.returncode == 0 else "")


def add_build_arguments(ap: argparse.ArgumentParser) -> None:
    """``--against PYTHON`` (an A/B run against another build) and ``--smoke``."""
    ap.add_argument("--against", metavar="PYTHON",
                    help="also measure the nfo installed for this python executable")
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run (CI)")


def builds(against: str | None) -> dict[str, str]:
    """``this`` (this python) and, with ``against``, ``other``: each build's python,
    after printing where each imports nfo from."""
    out = {"this": sys.executable}
    print(f"this:  {describe(sys.executable)}")
    if against:
        out["other"] = against
        print(f"other: {describe(against)}")
    return out


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (``VmHWM``: its peak so far), MB; NaN if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Server:
    """One ``nfo serve`` in its own process; its output goes to ``serve.log``."""

    name: str
    python: str
    proc: subprocess.Popen[bytes]
    log: Path
    restconf_port: int | None = None
    netconf_port: int | None = None

    @classmethod
    def start(cls, name: str, python: str, state: Path, *, restconf: bool, netconf: bool,
              yang_dirs: tuple[Path, ...] = (), timeout: float = 120,
              env: dict[str, str] | None = None, fresh: bool = True,
              extra: tuple[str, ...] = ()) -> Server:
        """``fresh``: a new state directory; else ``state`` is served again (a restart).
        ``extra``: more ``nfo serve`` options."""
        state.mkdir(parents=True, exist_ok=not fresh)
        log = state.parent / f"{state.name}.log"
        args = [python, "-m", "nfo", "--state-dir", str(state), "serve",
                "--restconf", "127.0.0.1:0" if restconf else "off",
                "--netconf", "127.0.0.1:0" if netconf else "off"]
        for d in yang_dirs:
            args += ["--yang-dir", str(d.resolve())]
        args += extra
        with log.open("wb") as out:
            proc = subprocess.Popen(args, cwd=state, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT,
                                    env={**build_env(python), "NFO_ADMIN_PASSWORD": PASSWORD,
                                         **(env or {})})
        srv = cls(name, python, proc, log)
        deadline = time.monotonic() + timeout
        while True:
            text = log.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("nfo: RESTCONF on "):
                    srv.restconf_port = int(line.rsplit(":", 1)[1].split("/", 1)[0])
                elif line.startswith("nfo: NETCONF over SSH on "):
                    srv.netconf_port = int(line.rsplit(":", 1)[1])
            if "nfo: serving" in text:
                return srv
            if proc.poll() is not None or time.monotonic() > deadline:
                srv.stop()
                raise SystemExit(f"{name}: nfo serve did not start:\n{text[-3000:]}")
            time.sleep(0.01)

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user and system, all threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
