"""One ``nfo serve`` under test: started on a state directory, killed with SIGKILL, restarted.

The server runs in its own session with RESTCONF on a free port of 127.0.0.1 and NETCONF
off; its console (every state change) goes to a log file per start, never to a pipe (a
full pipe would stall the server).  :class:`Api` is the RESTCONF client of one start.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

JSON = "application/yang-data+json"
INSTANCES = "/restconf/data/nfo-instances:nf-instances"
USER = "admin"


class ServerDied(Exception):
    """The server exited on its own (a crash on start or restart)."""


class Server:
    def __init__(self, state: Path, logs: Path, password: str, *,
                 concurrency: int | None = None, python: str = sys.executable) -> None:
        self.state = state
        self.logs = logs
        self.password = password
        self.concurrency = concurrency
        self.python = python
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.base = ""
        self.log_path = logs / "serve-0.log"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self, timeout: float = 180.0) -> float:
        """Start and wait until it serves; returns the seconds that took."""
        assert not self.alive
        self.logs.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.log_path = self.logs / f"serve-{self.starts}.log"
        args = [self.python, "-m", "nfo", "--state-dir", str(self.state), "serve",
                "--restconf", "127.0.0.1:0", "--netconf", "off"]
        if self.concurrency is not None:
            args += ["--concurrency", str(self.concurrency)]
        t0 = time.monotonic()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "NFO_ADMIN_PASSWORD": self.password,
                     "PYTHONUNBUFFERED": "1"},
                cwd=self.state.parent, start_new_session=True)
        url = None
        while True:
            text = self.log_path.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("nfo: RESTCONF on "):
                    url = line.split("RESTCONF on ", 1)[1].strip()
                if line.startswith("nfo: serving") and url:
                    self.base = url.removesuffix("/restconf")
                    return time.monotonic() - t0
            if self.proc.poll() is not None:
                raise ServerDied(f"nfo serve exited with {self.proc.returncode} while "
                                 f"starting:\n{self.tail()}")
            if time.monotonic() - t0 > timeout:
                self.kill()
                raise ServerDied(f"nfo serve did not serve within {timeout:.0f}s:\n"
                                 f"{self.tail()}")
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, at once (called synchronously, without yielding to the event loop)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    async def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM and wait; the exit status (SIGKILL after ``timeout``: -9)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def api(self) -> Api:
        return Api(self.base, self.password)


class Api:
    """The RESTCONF client of one server start."""

    def __init__(self, base: str, password: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=base, auth=(USER, password), timeout=httpx.Timeout(60.0),
            headers={"Accept": JSON}, limits=httpx.Limits(max_connections=16))

    async def close(self) -> None:
        await self.http.aclose()

    async def write(self, method: str, path: str, body: Any | None = None,
                    content_type: str = JSON) -> httpx.Response:
        content = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": content_type}
        return await self.http.request(method, path, content=content, headers=headers)

    async def instances(self, content: str) -> dict[str, dict[str, Any]]:
        """nf-instance entries by name (``content``: config, nonconfig or all)."""
        r = await self.http.get(INSTANCES, params={"content": content})
        if r.status_code == 404:
            return {}
        r.raise_for_status()
        entries = r.json().get("nfo-instances:nf-instances", {}).get("nf-instance", [])
        return {str(e["name"]): e for e in entries}
