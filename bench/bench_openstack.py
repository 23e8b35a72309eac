"""The orchestrator's overhead on a real OpenStack, and its throughput there.

On the local OpenStack of ``tools/openstack`` (keystone, glance, neutron, placement,
nova with the fake virt driver, all on 127.0.0.1), measured in the same run:

- reference: a plain openstacksdk loop, ``create_server`` then ``wait_for_server``
  (polling every 0.25 s) until ACTIVE; then ``delete_server`` and ``wait_for_delete``;
- nfo: the same boots as nf-instances through the datastore, the workload manager
  (``poll_interval`` 0.25 s) and the ``openstack`` driver: from the edit that creates
  the instance to its ``running`` notification, and from the edit that deletes it to
  its state being gone (the driver waits until Nova no longer has the server).
  Samples alternate with the reference ones, so both see the same cloud;
- overhead per instantiation: nfo's time minus the reference's (medians, and the
  median of the paired differences);
- throughput: N (default 20 and 50) instances in one edit until all are running,
  against N plain openstacksdk creates (10 threads) and one server list per 0.25 s
  until all are ACTIVE (the same request budget nfo's driver keeps to).

Run: ``.venv/bin/python bench/bench_openstack.py --state /tmp/osb`` starts the cloud in
/tmp/osb with ``tools/openstack start`` and stops it at the end; when /tmp/osb already
holds a running cloud (``tools/openstack status`` succeeds), its ``cloud.json`` is used
and the cloud is left running.  ``--cloud FILE`` uses the cloud whose connection facts
FILE holds (the JSON line ``tools/openstack start`` prints, as in ``cloud.json``) as it is:
nothing is started or stopped (tests/openstack/test_bench_smoke.py passes the test
session's cloud this way).  ``--smoke`` is a short run for CI: one sample, 2 in parallel.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore
from nfo.drivers.openstack import OpenStackDriver
from nfo.registry import DriverRegistry
from nfo.workload import WorkloadManager

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "tools" / "openstack"
INTERVAL = 0.25
"""Poll interval of the reference loop and of the workload manager."""
FIELDS = ("auth_url", "username", "password", "project_name", "user_domain", "project_domain",
          "region", "image", "flavor", "network")


# -- the cloud ----------------------------------------------------------------------------------


def _free_block(start: int = 27400, size: int = 9) -> int:
    for base in range(start, 29000, 20):
        ok = True
        for port in range(base, base + size):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise SystemExit("no free block of ports on 127.0.0.1 for the cloud")


def ensure_cloud(state: Path, port_base: int | None) -> tuple[dict[str, str], bool]:
    """The cloud's facts, and whether this run started it (and so must stop it)."""
    if (state / "cloud.json").exists():
        up = subprocess.run([str(TOOL), "status", "--state", str(state)],
                            capture_output=True, text=True)
        if up.returncode == 0:
            print(f"using the running cloud in {state}", flush=True)
            return json.loads((state / "cloud.json").read_text()), False
    base = port_base or _free_block()
    print(f"starting a cloud in {state} (ports from {base}); this takes a few minutes",
          flush=True)
    t0 = time.monotonic()
    r = subprocess.run([str(TOOL), "start", "--state", str(state), "--port-base", str(base)],
                       stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"tools/openstack start failed ({r.returncode}); logs in "
                         f"{state}/logs")
    print(f"cloud ready after {time.monotonic() - t0:.0f}s", flush=True)
    return json.loads(r.stdout.strip().splitlines()[-1]), True


def connect(cloud: dict[str, str]) -> Any:
    import openstack

    return openstack.connect(
        load_yaml_config=False, load_envvars=False, auth_type="password",
        region_name=cloud["region"],
        auth={"auth_url": cloud["auth_url"], "username": cloud["username"],
              "password": cloud["password"], "project_name": cloud["project_name"],
              "user_domain_name": cloud["user_domain"],
              "project_domain_name": cloud["project_domain"]})


# -- the reference: plain openstacksdk ----------------------------------------------------------


class Reference:
    def __init__(self, cloud: dict[str, str]) -> None:
        self.conn = connect(cloud)
        self.image = self.conn.image.find_image(cloud["image"], ignore_missing=False).id
        self.flavor = self.conn.compute.find_flavor(cloud["flavor"], ignore_missing=False).id
        self.net = self.conn.network.find_network(cloud["network"], ignore_missing=False).id

    def boot(self, name: str) -> tuple[float, str, bool]:
        """Seconds to ACTIVE (or ERROR), the server id, and whether it became ACTIVE."""
        from openstack import exceptions as sdk

        t0 = time.perf_counter()
        server = self.conn.compute.create_server(
            name=name, image_id=self.image, flavor_id=self.flavor,
            networks=[{"uuid": self.net}])
        try:
            self.conn.compute.wait_for_server(server, status="ACTIVE", interval=INTERVAL,
                                              wait=600)
        except sdk.ResourceFailure:
            return time.perf_counter() - t0, str(server.id), False
        return time.perf_counter() - t0, str(server.id), True

    def delete(self, rid: str) -> float:
        t0 = time.perf_counter()
        self.conn.compute.delete_server(rid, ignore_missing=True)
        self.conn.compute.wait_for_delete(self.conn.compute.get_server(rid), interval=INTERVAL,
                                          wait=600)
        return time.perf_counter() - t0

    def _mine(self, prefix: str) -> dict[str, str]:
        return {str(s.id): str(s.status) for s in
                self.conn.compute.servers(details=True, name=f"^{prefix}")}

    def parallel(self, n: int) -> tuple[float, float, int]:
        """Seconds until N servers created from 10 threads are all ACTIVE or ERROR (one list
        call per poll, as a careful client does), until all are deleted, and how many
        Nova failed."""
        prefix = f"ref-{uuid.uuid4().hex[:6]}-"
        with concurrent.futures.ThreadPoolExecutor(min(n, 10)) as pool:
            t0 = time.perf_counter()
            ids = set(pool.map(lambda i: str(self.conn.compute.create_server(
                name=f"{prefix}{i}", image_id=self.image, flavor_id=self.flavor,
                networks=[{"uuid": self.net}]).id), range(n)))
            while True:
                states = self._mine(prefix)
                if all(states.get(i) in ("ACTIVE", "ERROR") for i in ids):
                    break
                time.sleep(INTERVAL)
            failed = sum(1 for i in ids if states.get(i) == "ERROR")
            up = time.perf_counter() - t0
            t1 = time.perf_counter()
            list(pool.map(lambda i: self.conn.compute.delete_server(i), ids))
            while set(self._mine(prefix)) & ids:
                time.sleep(INTERVAL)
            down = time.perf_counter() - t1
        return up, down, failed


# -- nfo: datastore + workload manager + the openstack driver ----------------------------------


class Nfo:
    def __init__(self, cloud: dict[str, str], tmp: Path) -> None:
        self.cloud = cloud
        self.tmp = tmp
        self.changes: dict[str, dict[str, float]] = {}
        self.wakeup = asyncio.Event()

    async def start(self) -> None:
        state = StateDir(self.tmp / "nfo-state")
        self.ds = await open_datastore(state, [])
        self.owner = f"bench-{uuid.uuid4().hex[:8]}"
        # every registered driver, as `nfo serve` has them (the seeded local VIM too)
        registry = DriverRegistry.from_entry_points(state.path, self.owner)
        assert OpenStackDriver.name in registry.names()
        self.mgr = WorkloadManager(self.ds, registry, poll_interval=INTERVAL,
                                   health_interval=3600)
        await self.mgr.start()
        self.s = self.ds.internal_session("bench")
        self.sub = self.ds.notifications.subscribe()
        self.watcher = asyncio.create_task(self._watch())
        c = self.cloud
        await self.s.edit("running", json.dumps({
            "nfo-vim:vims": {"vim": [{"name": "os1", "type": "nfo-vim:openstack", "openstack": {
                "auth-url": c["auth_url"], "username": c["username"],
                "password": c["password"], "project-name": c["project_name"],
                "project-domain": c["project_domain"], "user-domain": c["user_domain"],
                "region": c["region"]}}]},
            "nfo-catalog:catalog": {"nf-descriptor": [{
                "id": "vnf", "vim-types": ["nfo-vim:openstack"], "instantiation-timeout": 900,
                "compute": {"vcpus": 1, "memory-mb": 64, "disk-gb": 0},
                "openstack": {"image": c["image"], "flavor": c["flavor"],
                              "network": [{"name": c["network"]}]}}]}}), "json")

    async def _watch(self) -> None:
        async for ev in self.sub:
            content = getattr(ev, "content", None)
            if content is None:
                continue
            body = json.loads(content).get("nfo-instances:nf-instance-state-change")
            if body is not None:
                self.changes.setdefault(body["name"], {})[body["new-status"]] = time.perf_counter()
                self.wakeup.set()

    async def _until(self, names: list[str], status: str, timeout: float = 900) -> float:
        """When the last of ``names`` reached ``status`` (or ``failed``)."""
        deadline = time.perf_counter() + timeout
        while True:
            got = [self.changes.get(n, {}).get(status) or self.changes.get(n, {}).get("failed")
                   for n in names]
            if all(t is not None for t in got):
                return max(t for t in got if t is not None)
            if time.perf_counter() > deadline:
                raise SystemExit(f"timed out waiting for {status}")
            self.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), 1.0)

    async def create(self, names: list[str]) -> tuple[float, int]:
        """Seconds from the edit to the last ``running`` (or ``failed``) notification, and
        how many failed."""
        t0 = time.perf_counter()
        await self.s.edit("running", json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
            {"name": n, "descriptor": "vnf"} for n in names]}}), "json")
        t1 = await self._until(names, "running")
        failed = sum(1 for n in names if "running" not in self.changes.get(n, {}))
        return t1 - t0, failed

    async def delete(self, names: list[str]) -> float:
        """Seconds from the edit to the last instance's state being gone (``terminated``)."""
        items = "".join(f'<nf-instance nc:operation="delete"><name>{n}</name></nf-instance>'
                        for n in names)
        t0 = time.perf_counter()
        await self.s.edit("running", '<nf-instances xmlns="urn:nfo:instances" xmlns:nc="urn:'
                          f'ietf:params:xml:ns:netconf:base:1.0">{items}</nf-instances>', "xml")
        return await self._until(names, "terminated") - t0

    async def stop(self) -> None:
        self.sub.close()
        await self.watcher
        await self.mgr.stop()
        await self.s.close()
        await self.ds.close()


# -- the run ------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def measure(cloud: dict[str, str], samples: int, sizes: list[int]) -> dict[str, Any]:
    ref = await asyncio.to_thread(Reference, cloud)
    with tempfile.TemporaryDirectory() as d:
        nfo = Nfo(cloud, Path(d))
        await nfo.start()
        try:
            # warm-up: tokens, endpoint discovery, image/flavor/network lookups
            _, rid, _ = await asyncio.to_thread(ref.boot, "ref-warmup")
            await asyncio.to_thread(ref.delete, rid)
            await nfo.create(["warmup"])  # also wires the driver's connection
            await nfo.delete(["warmup"])
            rows: list[dict[str, float]] = []
            for i in range(samples):
                boot, rid, ref_ok = await asyncio.to_thread(ref.boot, f"ref-{i}")
                gone = await asyncio.to_thread(ref.delete, rid)
                up, nfo_failed = await nfo.create([f"seq{i}"])
                down = await nfo.delete([f"seq{i}"])
                if nfo_failed or not ref_ok:
                    print(f"  sample {i + 1}: Nova failed a boot (ref ok: {ref_ok}, nfo ok: "
                          f"{not nfo_failed}); sample left out", flush=True)
                    continue
                rows.append({"ref_boot": boot, "ref_delete": gone, "nfo_boot": up,
                             "nfo_delete": down})
                print(f"  sample {i + 1}/{samples}: boot ref {boot:.2f}s nfo {up:.2f}s; "
                      f"delete ref {gone:.2f}s nfo {down:.2f}s", flush=True)
            par: list[dict[str, float]] = []
            for n in sizes:
                ref_up, ref_down, ref_failed = await asyncio.to_thread(ref.parallel, n)
                names = [f"p{n}-{k:02d}" for k in range(n)]
                up, failed = await nfo.create(names)
                down = await nfo.delete(names)
                par.append({"n": n, "ref_up": ref_up, "ref_down": ref_down, "nfo_up": up,
                            "nfo_down": down, "ref_failed": ref_failed, "nfo_failed": failed})
                print(f"  {n} in parallel: running ref {ref_up:.1f}s nfo {up:.1f}s; deleted "
                      f"ref {ref_down:.1f}s nfo {down:.1f}s; failed by Nova: ref {ref_failed} "
                      f"nfo {failed}", flush=True)
        finally:
            await nfo.stop()
            ref.conn.close()
    return {"sequential": rows, "parallel": par}


def report(res: dict[str, Any]) -> None:
    rows = res["sequential"] or [dict.fromkeys(("ref_boot", "ref_delete", "nfo_boot",
                                                "nfo_delete"), float("nan"))]
    rb, nb = [r["ref_boot"] for r in rows], [r["nfo_boot"] for r in rows]
    rd, nd = [r["ref_delete"] for r in rows], [r["nfo_delete"] for r in rows]
    print(f"\none instance at a time ({len(rows)} samples, alternating; poll interval "
          f"{INTERVAL}s on both sides)")
    print(f"{'':>28} {'median s':>9} {'min s':>7} {'max s':>7}")
    for label, v in (("boot, plain openstacksdk", rb), ("boot, through nfo", nb),
                     ("delete, plain openstacksdk", rd), ("delete, through nfo", nd)):
        print(f"{label:>28} {med(v):>9.2f} {min(v):>7.2f} {max(v):>7.2f}")
    over = [n - r for n, r in zip(nb, rb, strict=True)]
    print(f"nfo overhead per instantiation: {med(nb) - med(rb):+.2f}s (difference of medians), "
          f"{med(over):+.2f}s (median of paired differences); on Nova's {med(rb):.2f}s boot")
    print(f"nfo overhead per deletion: {med(nd) - med(rd):+.2f}s (difference of medians)")
    print("\nthroughput: N instances in one edit until all are running "
          "(reference: N openstacksdk creates from 10 threads, one list per poll)")
    print(f"{'N':>4} {'nfo s':>7} {'nfo inst/s':>10} {'ref s':>7} {'ref inst/s':>10} "
          f"{'nfo del s':>9} {'ref del s':>9} {'failed nfo/ref':>14}")
    for p in res["parallel"]:
        print(f"{p['n']:>4} {p['nfo_up']:>7.1f} {p['n'] / p['nfo_up']:>10.2f} "
              f"{p['ref_up']:>7.1f} {p['n'] / p['ref_up']:>10.2f} {p['nfo_down']:>9.1f} "
              f"{p['ref_down']:>9.1f} {p['nfo_failed']:>7}/{p['ref_failed']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--state", type=Path,
                       help="tools/openstack state directory (started here unless it runs)")
    where.add_argument("--cloud", type=Path, metavar="FILE",
                       help="connection facts (JSON) of a running cloud, used as it is")
    ap.add_argument("--port-base", type=int, help="first port of a cloud started here")
    ap.add_argument("--samples", type=int, default=5, help="sequential boots on each side")
    ap.add_argument("--parallel", default="20,50", help="sizes of the parallel runs")
    ap.add_argument("--keep", action="store_true", help="leave a cloud started here running")
    ap.add_argument("--json", type=Path, help="write the raw figures here")
    ap.add_argument("--smoke", action="store_true",
                    help="a short run (CI): 1 sample, 2 instances in parallel")
    args = ap.parse_args()
    if args.smoke:
        args.samples, args.parallel = 1, "2"
    warnings.simplefilter("ignore")  # openstacksdk's deprecation chatter
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.cloud is not None:
        cloud, started = json.loads(args.cloud.read_text()), False
        missing = [k for k in FIELDS if k not in cloud]
        if missing:
            raise SystemExit(f"{args.cloud} lacks {', '.join(missing)}")
    else:
        cloud, started = ensure_cloud(args.state, args.port_base)
    try:
        res = asyncio.run(measure({k: cloud[k] for k in FIELDS}, args.samples,
                                  [int(x) for x in args.parallel.split(",") if x]))
    finally:
        if started and not args.keep:
            subprocess.run([str(TOOL), "stop", "--state", str(args.state)], check=False)
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
