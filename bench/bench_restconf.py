"""RESTCONF throughput and latency over a real loopback socket.

With N nf-instances in running (default 10,000), measures with a Python load
generator (httpx, C concurrent connections, Basic authentication on):

- GET of one nf-instance, GET of the whole nf-instances list, POST of one new
  nf-instance: requests per second, p50 and p99 latency;
- a reference measured in the same run: the same read done directly through the
  datastore API (``ds.get`` + print), so the HTTP + RESTCONF overhead is a ratio.

The server runs in its own process (``nfo serve``), so client and server do not
share an event loop; on a 2-core machine the client competes for CPU, which the
figures include.

Run: ``.venv/bin/python bench/bench_restconf.py [--instances 10000] [--requests 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore

AUTH = ("admin", "bench-password-123")
JSON = "application/yang-data+json"
INSTANCES = "/restconf/data/nfo-instances:nf-instances"


def pct(v: list[float], q: float) -> float:
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


async def prepare(state: Path, n: int) -> float:
    """Load N instances (admin-state disabled: nothing is started) and time the reference."""
    ds = await open_datastore(StateDir(state), [])
    try:
        async with ds.session("bench") as s:
            await s.edit("running", json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
                {"name": f"nf{k}", "descriptor": "udp-echo", "admin-state": "disabled",
                 "parameter": [{"name": "port", "value": str(20000 + k % 40000)}]}
                for k in range(n)]}}), "json")
        times = []
        for _ in range(200):
            t = time.perf_counter()
            with ds.get("operational", "/nfo-instances:nf-instances/nf-instance[name='nf7']") as tr:
                tr.print("json")
            times.append(time.perf_counter() - t)
        return statistics.median(times)
    finally:
        await ds.close()


async def load(base: str, method: str, paths: list[str], bodies: list[str] | None,
               concurrency: int) -> tuple[float, list[float], int]:
    lat: list[float] = []
    errors = 0
    queue = list(range(len(paths)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, auth=AUTH, limits=limits, timeout=60,
                                 headers={"Accept": JSON, "Content-Type": JSON}) as c:
        async def worker() -> None:
            nonlocal errors
            while queue:
                i = queue.pop()
                t = time.perf_counter()
                r = await c.request(method, paths[i],
                                    content=bodies[i] if bodies else None)
                lat.append(time.perf_counter() - t)
                if r.status_code >= 300:
                    errors += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, lat, errors


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--port", type=int, default=18443)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        state = Path(d) / "state"
        ref = await prepare(state, args.instances)
        env = {**os.environ, "NFO_ADMIN_PASSWORD": AUTH[1]}
        proc = subprocess.Popen([sys.executable, "-m", "nfo", "--state-dir", str(state), "serve",
                                 "--restconf", f"127.0.0.1:{args.port}", "--netconf", "off"],
                                env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "serving" in line:
                    break
            base = f"http://127.0.0.1:{args.port}"
            n, r = args.instances, args.requests
            one = [f"{INSTANCES}/nf-instance=nf{k % n}" for k in range(r)]
            rows = [("GET one nf-instance", await load(base, "GET", one, None, args.concurrency))]
            whole = [INSTANCES] * max(10, r // 100)
            rows.append((f"GET all {n:,} nf-instances",
                         await load(base, "GET", whole, None, min(2, args.concurrency))))
            post = [INSTANCES] * r
            bodies = [json.dumps({"nfo-instances:nf-instance": [{
                "name": f"new{k}", "descriptor": "udp-echo", "admin-state": "disabled",
                "parameter": [{"name": "port", "value": "9"}]}]}) for k in range(r)]
            rows.append(("POST one nf-instance", await load(base, "POST", post, bodies,
                                                            args.concurrency)))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    print(f"{args.instances:,} nf-instances in running, {args.concurrency} connections, "
          "Basic auth, JSON, loopback")
    print(f"{'request':<28} {'count':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for name, (secs, lat, errors) in rows:
        print(f"{name:<28} {len(lat):>6} {len(lat) / secs:>8.0f} "
              f"{statistics.median(lat) * 1000:>8.2f} {pct(lat, 0.99) * 1000:>8.2f} {errors:>6}")
    get_one = statistics.median(rows[0][1][1])
    print(f"reference: the same single-instance read through the datastore API: "
          f"{ref * 1000:.3f} ms; RESTCONF GET p50 / reference = {get_one / ref:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
