"""Replicas on etcd against the embedded SQLite store, in one run (issue 17).

A three-member etcd cluster on loopback (Debian's etcd, tests/etcd/cluster.py) and, per
store, ``nfo serve`` in its own process: ``sqlite`` (the state directory's file) and
``etcd`` (``--store etcd://...``, one replica).  Measured for each:

- commit throughput and latency: ``wrk`` POSTs one new entry of the benchmark list per
  request from 1, 8 and 32 connections (every answer durable; the 1-connection p50 is the
  single-entry edit latency);
- instantiation: ``--instances`` nf-instances written in one RESTCONF PATCH on a
  zero-latency sim VIM, seconds until every one is running (read back over RESTCONF).

Then, on etcd only, failover: two replicas, every instance running, the leader killed
(SIGKILL); seconds until the other leads and has checked every instance again.

References in the same run: plain etcd puts from one asyncio client (one at a time:
latency; 64 in flight: puts/s), and the SQLite store itself.

Run: ``PYTHONPATH=$PWD .venv/bin/python bench/bench_replicas.py [--instances 1000]
[--duration 5] [--connections 1,8,32]``; ``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from _servers import Server
from bench_restconf import AUTH, JSON, Run, http
from bench_writes import BENCH, ENTRY_LUA, entries_doc, post

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nfo.datastore.storage.etcd_client import EtcdClient  # noqa: E402
from tests.etcd.cluster import EtcdCluster  # noqa: E402

YANG = Path(__file__).resolve().parent / "yang"
SETUP = json.dumps({"ietf-restconf:data": {
    "nfo-vim:vims": {"vim": [{"name": "sim1", "type": "nfo-vim:sim",
                              "sim": {"latency": {"mean": 0, "jitter": 0}}}]},
    "nfo-catalog:catalog": {"nf-descriptor": [{"id": "fw", "vim-types": ["nfo-vim:sim"]}]},
}})
OPER = "/restconf/ds/ietf-datastores:operational/nfo-instances:nf-instances"


def instances(start: int, n: int) -> str:
    return json.dumps({"ietf-restconf:data": {"nfo-instances:nf-instances": {
        "nf-instance": [{"name": f"i{k}", "descriptor": "fw", "vim": "sim1"}
                        for k in range(start, start + n)]}}})


def running(port: int) -> int:
    doc = json.loads(http(port, "GET", OPER))
    return sum(1 for e in doc.get("nfo-instances:nf-instances", {}).get("nf-instance", [])
               if e.get("state", {}).get("oper-status") == "running")


def wait_running(port: int, n: int, timeout: float) -> float:
    t0 = time.perf_counter()
    while running(port) < n:
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"not every instance running after {timeout} s")
        time.sleep(0.05)
    return time.perf_counter() - t0


async def etcd_puts(endpoints: list[str], seconds: float) -> tuple[float, float, float]:
    """Plain puts: (p50 ms, p99 ms) one at a time, and puts/s with 64 in flight."""
    async with EtcdClient(endpoints) as c:
        lat: list[float] = []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            t = time.perf_counter()
            await c.put(b"/bench/one", b"x" * 200)
            lat.append(time.perf_counter() - t)
        lat.sort()
        done = 0
        stop = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await c.put(b"/bench/many/%d" % w, b"x" * 200)
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(64)))
        return (lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3,
                done / (time.perf_counter() - t0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", default="1,8,32")
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.instances, args.duration, args.connections = 20, 1, "1,8"
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk; tools/bootstrap installs it)")
    conns = [int(c) for c in args.connections.split(",")]
    n = args.instances
    runs: dict[tuple[str, int], Run] = {}
    inst: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="nfo-bench-replicas-") as d:
        tmp = Path(d)
        script = tmp / "post.lua"
        script.write_text(ENTRY_LUA)
        with EtcdCluster(tmp / "members") as cluster:
            puts = asyncio.run(etcd_puts(cluster.endpoints, min(args.duration, 3)))
            for store in ("sqlite", "etcd"):
                extra = (("--store", cluster.url + f"/{store}-bench/", "--replica", "r0")
                         if store == "etcd" else ())
                srv = Server.start(store, sys.executable, tmp / store, restconf=True,
                                   netconf=False, yang_dirs=(YANG,), extra=extra)
                try:
                    port = srv.restconf_port
                    assert port is not None
                    http(port, "PUT", BENCH, entries_doc(100))
                    for c in conns:
                        runs[(store, c)] = post(script, port, c, f"{store}c{c}", 100,
                                                args.duration, BENCH)
                    http(port, "PATCH", "/restconf/data", SETUP)
                    t0 = time.perf_counter()
                    http(port, "PATCH", "/restconf/data", instances(0, n))
                    wait_running(port, n, 600)
                    inst[store] = time.perf_counter() - t0
                finally:
                    srv.stop()
            failover = measure_failover(tmp, cluster, n)
    p50, p99, rate = puts
    print(f"\nreference: plain etcd puts (3 members, loopback): one at a time p50 {p50:.2f} ms"
          f" p99 {p99:.2f} ms; 64 in flight {rate:,.0f} puts/s\n")
    print(f"{'connections':>11}  {'store':<7}{'commits/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'errors':>8}{'etcd/sqlite':>13}")
    for c in conns:
        for store in ("sqlite", "etcd"):
            r = runs[(store, c)]
            ratio = (f"{r.rps / runs[('sqlite', c)].rps:>13.2f}" if store == "etcd" else "")
            print(f"{c:>11}  {store:<7}{r.rps:>10,.0f}{r.p50 * 1e3:>9.2f}{r.p99 * 1e3:>9.2f}"
                  f"{r.errors:>8}{ratio}")
    print(f"\ninstantiation of {n:,} nf-instances (one PATCH, sim VIM, zero latency):")
    for store in ("sqlite", "etcd"):
        print(f"  {store:<7}{inst[store]:>8.2f} s  {n / inst[store]:>8,.0f} instances/s")
    print(f"  etcd/sqlite time {inst['etcd'] / inst['sqlite']:.2f}")
    took, lead, ready, delays = failover
    print(f"\na write on one replica read on the other: p50 "
          f"{delays[len(delays) // 2] * 1e3:.1f} ms, max {delays[-1] * 1e3:.1f} ms "
          f"({len(delays)} writes, the reader polled over RESTCONF)")
    print(f"failover, two replicas on etcd, {n:,} instances running, the leader killed: "
          f"the other leads after {lead:.2f} s, has checked every instance after "
          f"{ready:.2f} s (lease {took} s)")


def found(port: int, path: str) -> bool:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": AUTH, "Accept": JSON})
    try:
        with urllib.request.urlopen(req, timeout=60):
            return True
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        raise


def replication(writer: int, reader: int, count: int) -> list[float]:
    """Seconds from each write's answer on one replica to its entry read on the other
    (a catalog descriptor each, read back over RESTCONF as fast as it answers)."""
    out = []
    for k in range(count):
        body = json.dumps({"ietf-restconf:data": {"nfo-catalog:catalog": {
            "nf-descriptor": [{"id": f"rep{k}", "vim-types": ["nfo-vim:sim"]}]}}})
        http(writer, "PATCH", "/restconf/data", body)
        t0 = time.perf_counter()
        path = f"/restconf/data/nfo-catalog:catalog/nf-descriptor=rep{k}"
        while not found(reader, path):
            pass
        out.append(time.perf_counter() - t0)
    return sorted(out)


def measure_failover(tmp: Path, cluster: EtcdCluster, n: int
                     ) -> tuple[int, float, float, list[float]]:
    """(the lease's seconds, seconds to a new leader, seconds to its manager ready, the
    replication delays measured before)."""
    url = cluster.url + "/failover-bench/"
    drivers = tmp / "drivers"
    a = Server.start("a", sys.executable, tmp / "fa", restconf=True, netconf=False,
                     extra=("--store", url, "--replica", "a", "--drivers-dir", str(drivers)))
    b: Server | None = None
    try:
        port = a.restconf_port
        assert port is not None
        while "workload manager ready" not in a.log.read_text():
            time.sleep(0.05)
        b = Server.start("b", sys.executable, tmp / "fb", restconf=True, netconf=False,
                         extra=("--store", url, "--replica", "b", "--drivers-dir",
                                str(drivers)))
        http(port, "PATCH", "/restconf/data", SETUP)
        assert b.restconf_port is not None
        delays = replication(port, b.restconf_port, 10 if n < 100 else 100)
        http(port, "PATCH", "/restconf/data", instances(0, n))
        wait_running(port, n, 600)
        a.proc.kill()
        t0 = time.perf_counter()
        a.proc.wait()
        lead = ready = None
        while ready is None:
            text = b.log.read_text()
            if lead is None and "replica b leads the workload manager" in text:
                lead = time.perf_counter() - t0
            if "workload manager ready" in text:
                ready = time.perf_counter() - t0
            if time.perf_counter() - t0 > 120:
                raise SystemExit("no replica took over within 120 s")
            time.sleep(0.01)
        assert lead is not None
        from nfo.cli.serve import LEASE_TTL
        return LEASE_TTL, lead, ready, delays
    finally:
        a.stop()
        if b is not None:
            b.stop()


if __name__ == "__main__":
    main()
