"""kill -9 under concurrent writers: group commit never acknowledges a write it loses,
and never half-applies one it did not acknowledge.

A real ``nfo serve`` (SQLite state in ``tmp_path``) takes RESTCONF POSTs from many
keep-alive connections at once, so its writes are committed in groups; it is killed
with SIGKILL at a random moment, restarted on the same state, and running must hold
every entry whose POST was answered 201, nothing that was never sent, and each entry
whole (all its leaves as sent).  Several cycles, each killing a new batch of writers.
The seed is printed in every failure; set ``NFO_DURABILITY_SEED`` to replay.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import signal
import threading
import time
from pathlib import Path

from tests.fuzz.server import PASSWORD, ServerProcess

SEED = int(os.environ.get("NFO_DURABILITY_SEED", random.randrange(2**32)))
AUTH = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
JSON = "application/yang-data+json"
WRITERS = 12
CYCLES = 3


def entry(key: str) -> dict[str, str]:
    return {"id": key, "label": f"label {key}", "needed": f"needed {key}"}


class Writer(threading.Thread):
    """POSTs new entries over one connection until the server goes away."""

    def __init__(self, port: int, prefix: str) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.prefix = prefix
        self.sent: list[str] = []
        self.acked: list[str] = []
        self.refused: list[tuple[str, int]] = []

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            for i in range(1_000_000):
                key = f"{self.prefix}-{i}"
                body = json.dumps({"nfo-test:thing": [entry(key)]})
                self.sent.append(key)
                conn.request("POST", "/restconf/data/nfo-test:top", body,
                             {"Authorization": AUTH, "Content-Type": JSON, "Accept": JSON})
                r = conn.getresponse()
                r.read()
                if r.status == 201:
                    self.acked.append(key)
                else:
                    self.refused.append((key, r.status))
        except (OSError, http.client.HTTPException):
            return  # the server was killed
        finally:
            conn.close()


def running_things(port: int) -> list[dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/restconf/data/nfo-test:top?content=config",
                     headers={"Authorization": AUTH, "Accept": JSON})
        r = conn.getresponse()
        body = r.read()
        if r.status == 404:
            return []
        assert r.status == 200, body
        doc = json.loads(body)
        return list(doc.get("nfo-test:top", {}).get("thing", []))
    finally:
        conn.close()


def test_kill_9_under_concurrent_writers_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    srv = ServerProcess(state=tmp_path / "state")
    srv.start()
    sent: set[str] = set()
    acked: set[str] = set()
    try:
        for cycle in range(CYCLES):
            writers = [Writer(srv.restconf_port, f"c{cycle}w{k}") for k in range(WRITERS)]
            for w in writers:
                w.start()
            time.sleep(rng.uniform(0.6, 2.0))
            assert srv.proc is not None
            os.killpg(srv.proc.pid, signal.SIGKILL)
            srv.proc.wait()
            for w in writers:
                w.join(30)
                assert not w.is_alive()
                assert not w.refused, f"seed {SEED}: refused {w.refused[:3]}"
                sent.update(w.sent)
                acked.update(w.acked)
            assert len(acked) > WRITERS * (cycle + 1), f"seed {SEED}: too few writes went in"
            srv.start()
            present = running_things(srv.restconf_port)
            keys = {t["id"] for t in present}
            assert acked <= keys, f"seed {SEED}: acknowledged but lost: " \
                                  f"{sorted(acked - keys)[:5]}"
            assert keys <= sent, f"seed {SEED}: never sent: {sorted(keys - sent)[:5]}"
            for t in present:
                assert t == entry(t["id"]), f"seed {SEED}: half-applied entry {t}"
            acked = keys  # in flight when killed and committed: durable from now on
        assert srv.bad_log_lines() == [], f"seed {SEED}"
    finally:
        srv.stop()
