"""A real ``nfo serve`` in a child process, for the fuzzers of both front ends.

Why a child process and not the in-process fixtures: a crash, a hang or an exit
code is only visible from outside, the server's log can be searched for
tracebacks after a run, its memory (RSS) can be watched, and ``coverage run``
can measure the protocol modules of the real composition (``nfo/cli/serve.py``).
The state directory is fresh (a temporary one unless given); the test module
``nfo-test`` is loaded with ``--yang-dir``; the account ``admin`` gets
:data:`PASSWORD`.  Everything listens on 127.0.0.1 (free ports chosen by the
server itself).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["PASSWORD", "ROOT", "TEST_YANG", "ServerProcess"]

ROOT = Path(__file__).resolve().parents[2]
TEST_YANG = ROOT / "tests" / "datastore" / "yang"
PASSWORD = "fuzz-admin-password"
_PORT = re.compile(r"(RESTCONF on https?://127\.0\.0\.1|NETCONF over SSH on 127\.0\.0\.1):(\d+)")
_BAD_LOG = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")


@dataclass
class ServerProcess:
    """``nfo serve`` as a child process.  Use as a context manager: it starts the
    server and waits until both front ends listen; on exit it stops it with SIGTERM
    (and checks it stopped cleanly when ``check_exit``)."""

    state: Path | None = None
    coverage_file: Path | None = None
    """Run the server under ``coverage run`` writing this data file (parallel mode)."""
    log_name: str = "server.log"
    startup_timeout: float = 60.0
    restconf_port: int = 0
    netconf_port: int = 0
    extra_args: list[str] = field(default_factory=list)
    """More ``nfo serve`` options (``--dev-cert`` makes :attr:`base` https)."""
    proc: subprocess.Popen[bytes] | None = None
    _tmp: str | None = None
    _out: Path | None = None
    _started: float = field(default=0.0)
    log_text: str | None = None
    """The whole log, kept when :meth:`stop` removes the temporary directory."""

    @property
    def base(self) -> str:
        tls = "--dev-cert" in self.extra_args or "--tls-cert" in self.extra_args
        return f"{'https' if tls else 'http'}://127.0.0.1:{self.restconf_port}"

    @property
    def log(self) -> Path:
        assert self._out is not None
        return self._out

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if self.state is None:
            self._tmp = tempfile.mkdtemp(prefix="nfo-fuzz-")
            self.state = Path(self._tmp) / "state"
        self.state.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.state.parent / self.log_name
        cmd = [sys.executable]
        if self.coverage_file is not None:
            cmd += ["-m", "coverage", "run", "--parallel-mode",
                    f"--data-file={self.coverage_file}",
                    # nfo/restconf is a link to restconf/, measured under its real path
                    f"--source=nfo,{ROOT / 'restconf'}",
                    "-m", "nfo"]
        else:
            cmd += ["-m", "nfo"]
        cmd += ["--state-dir", str(self.state), "serve", "--yang-dir", str(TEST_YANG),
                # the ports of a previous start, so that a restart keeps them (0: any)
                "--restconf", f"127.0.0.1:{self.restconf_port}",
                "--netconf", f"127.0.0.1:{self.netconf_port}", *self.extra_args]
        env = {**os.environ, "NFO_ADMIN_PASSWORD": PASSWORD}
        with self._out.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
                                         start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            text = self._out.read_text(errors="replace")
            for what, port in _PORT.findall(text):
                if what.startswith("RESTCONF"):
                    self.restconf_port = int(port)
                else:
                    self.netconf_port = int(port)
            if "nfo: serving" in text and self.restconf_port and self.netconf_port:
                self._started = time.monotonic()
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"nfo serve exited ({self.proc.returncode}):\n{text}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("nfo serve did not start in time")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        """The server's resident memory (KiB; 0 once it is gone)."""
        if self.proc is None:
            return 0
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        m = re.search(r"VmRSS:\s+(\d+)", status)
        return int(m.group(1)) if m else 0

    def bad_log_lines(self) -> list[str]:
        """Log lines that tell of a bug: tracebacks, ERROR and CRITICAL records."""
        if self.log_text is not None:
            text = self.log_text
        elif self._out is not None and self._out.exists():
            text = self._out.read_text(errors="replace")
        else:
            return []
        lines = text.splitlines()
        return [line for line in lines if _BAD_LOG.search(line)]

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, wait; returns the exit code (None if it had to be killed)."""
        code: int | None = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    code = self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            else:
                code = self.proc.returncode
        if self._out is not None and self._out.exists():
            self.log_text = self._out.read_text(errors="replace")
        if self._tmp is not None and not os.environ.get("NFO_FUZZ_KEEP"):
            shutil.rmtree(self._tmp, ignore_errors=True)
        return code
