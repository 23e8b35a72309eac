"""RESTCONF throughput and latency over a real loopback socket, measured with wrk.

With N nf-instances in running (default 10,000; admin-state disabled, so nothing is
started), ``nfo serve`` runs in its own process and ``wrk`` (the Debian package; a C
load generator, with a Lua script, Basic authentication on every request) measures:

- GET of one nf-instance (the names rotate over all N);
- GET of the whole nf-instances list (fewer connections: each answer is megabytes);
- POST of one new nf-instance (a unique name per request, from wrk's ``request``);

each as requests per second and p50 / p99 latency (wrk ``--latency``).

References measured in the same run:

- ``--against PYTHON``: the python executable of another installation of nfo (for
  example ``/work/wt/base/.venv/bin/python``); its ``nfo serve`` runs too, with its own
  fresh state directory loaded the same way (one RESTCONF PATCH), and every figure is
  given for both builds with the ratio this/other;
- a bare framework: a minimal Starlette app on uvicorn (bench/_bare_app.py, uvicorn
  configured as nfo configures it) with the same Basic-auth check, answering the same
  paths with static bodies captured from nfo's answers: nfo/bare ratios.  Two of them:
  ``bare`` on httptools (as nfo serves; the stricter floor) and ``bare-h11`` on uvicorn's
  h11 (the floor issue 14 was first measured against); both ratios are printed;
- the datastore API: the same reads through ``ds.get`` + print in this process.

The wrk runs alternate: for each request kind, ``--rounds`` rounds (at least 3 in a
full run) in which every server takes its turn, the order reversed every other round.

Run: ``.venv/bin/python bench/bench_restconf.py [--instances 10000] [--duration 5]
[--against /work/wt/base/.venv/bin/python]``; ``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from _servers import PASSWORD, Server, add_build_arguments, describe

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore

HERE = Path(__file__).resolve().parent
JSON = "application/yang-data+json"
INSTANCES = "/restconf/data/nfo-instances:nf-instances"
AUTH = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
KINDS = ("GET one nf-instance", "GET all nf-instances", "POST one nf-instance")
MODES = dict(zip(KINDS, ("one", "all", "post"), strict=True))

# setup() numbers wrk's threads so POSTed names never collide (each wrk script here).
LUA_THREADS = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
"""

# wrk's script: args are mode ("one", "all" or "post"), N, a tag unique per run, the
# Authorization header.
LUA = LUA_THREADS + """
local mode, n, tag, headers
local counter = 0
function init(args)
  mode, n, tag = args[1], tonumber(args[2]), args[3]
  headers = {["Authorization"] = args[4], ["Accept"] = "@JSON@",
             ["Content-Type"] = "@JSON@"}
  counter = (tid or 1) * 7919
end

local base = "@PATH@"
request = function()
  counter = counter + 1
  if mode == "one" then
    return wrk.format("GET", base .. "/nf-instance=nf" .. (counter % n), headers)
  elseif mode == "all" then
    return wrk.format("GET", base, headers)
  end
  local name = "new-" .. tag .. "-" .. tid .. "-" .. counter
  local body = '{"nfo-instances:nf-instance":[{"name":"' .. name ..
    '","descriptor":"udp-echo","admin-state":"disabled",' ..
    '"parameter":[{"name":"port","value":"9"}]}]}'
  return wrk.format("POST", base, headers, body)
end
""".replace("@JSON@", JSON).replace("@PATH@", INSTANCES)


def instances_doc(n: int) -> str:
    return json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
        {"name": f"nf{k}", "descriptor": "udp-echo", "admin-state": "disabled",
         "parameter": [{"name": "port", "value": str(20000 + k % 40000)}]}
        for k in range(n)]}})


def http(port: int, method: str, path: str, body: str | None = None) -> bytes:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=body.encode() if body is not None else None,
        headers={"Authorization": AUTH, "Accept": JSON, "Content-Type": JSON})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return bytes(r.read())
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}") from e


# -- wrk --------------------------------------------------------------------------------

@dataclass
class Run:
    rps: float
    p50: float
    p99: float
    requests: int
    errors: int


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise SystemExit(f"wrk printed an unexpected latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> Run:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    total = re.search(r"^\s+(\d+) requests in ", out, re.M)
    if rps is None or total is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    pcts = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    nan = float("nan")
    return Run(float(rps.group(1)), _seconds(pcts["50"]) if "50" in pcts else nan,
               _seconds(pcts["99"]) if "99" in pcts else nan, int(total.group(1)), errors)


def wrk(script: Path, port: int, mode: str, n: int, tag: str, args: argparse.Namespace) -> Run:
    conns = min(2, args.connections) if mode == "all" else args.connections
    threads = min(args.threads, conns)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{args.duration}s", "--timeout", "60s",
           "--latency", "-s", str(script), f"http://127.0.0.1:{port}{INSTANCES}", "--",
           mode, str(n), tag, AUTH]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 120)
    if r.returncode != 0:
        raise SystemExit(f"wrk failed ({r.returncode}): {r.stderr}{r.stdout}")
    return parse_wrk(r.stdout)


# -- the servers ----------------------------------------------------------------------------

@dataclass
class Target:
    name: str
    port: int
    stop: object
    runs: dict[str, list[Run]] = field(default_factory=lambda: {k: [] for k in KINDS})


def start_nfo(name: str, python: str, state: Path, n: int) -> tuple[Server, Target]:
    srv = Server.start(name, python, state, restconf=True, netconf=False)
    try:
        assert srv.restconf_port is not None
        t0 = time.perf_counter()
        http(srv.restconf_port, "PATCH", INSTANCES, instances_doc(n))
        print(f"[bench] {name}: {n:,} nf-instances loaded through RESTCONF in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    except BaseException:
        srv.stop()
        raise
    return srv, Target(name, srv.restconf_port, srv.stop)


def start_bare(one: Path, whole: Path, http: str = "httptools"
               ) -> tuple[subprocess.Popen[str], Target]:
    proc = subprocess.Popen([sys.executable, str(HERE / "_bare_app.py"), str(one), str(whole),
                             PASSWORD, http], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise SystemExit("the bare Starlette app did not start")

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc, Target("bare" if http == "httptools" else f"bare-{http}", int(line), stop)


# -- the datastore-API reference ------------------------------------------------------------

class Api:
    """The same reads through this build's datastore API, in this process."""

    def __init__(self, state: Path, n: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.ds = self.loop.run_until_complete(open_datastore(StateDir(state), []))

        async def load() -> None:
            async with self.ds.internal_session("bench") as s:
                await s.edit("running", instances_doc(n), "json")
        self.loop.run_until_complete(load())
        self.times: dict[str, list[float]] = {KINDS[0]: [], KINDS[1]: []}

    def measure(self, kind: str, reps: int, n: int) -> None:
        for k in range(reps):
            xpath = (f"{INSTANCES[len('/restconf/data'):]}/nf-instance[name='nf{k * 7 % n}']"
                     if kind == KINDS[0] else INSTANCES[len("/restconf/data"):])
            t = time.perf_counter()
            with self.ds.get("operational", xpath) as tr:
                tr.print("json")
            self.times[kind].append(time.perf_counter() - t)

    def close(self) -> None:
        self.loop.run_until_complete(self.ds.close())
        self.loop.close()


# -- the run ----------------------------------------------------------------------------------

def med(runs: list[Run], what: str) -> float:
    vals = [getattr(r, what) for r in runs if not math.isnan(getattr(r, what))]
    return statistics.median(vals) if vals else float("nan")


def report(targets: list[Target], api: Api, args: argparse.Namespace) -> None:
    names = [t.name for t in targets]
    by = {t.name: t for t in targets}
    other = "other" in by
    print(f"{args.instances:,} nf-instances in running; wrk, {args.threads} thread(s), "
          f"{args.connections} connections ({min(2, args.connections)} for GET all), "
          f"{args.duration} s per run, {args.rounds} alternating round(s); Basic auth, JSON, "
          f"loopback; answers of {args.sizes['one']:,} bytes (one) and {args.sizes['all']:,} "
          "bytes (all), the bare app's the same")
    print("bare: the bare Starlette app on uvicorn's httptools protocol, as nfo serves (the "
          "stricter floor); bare-h11: the same app on uvicorn's h11 (issue 14's first floor)")
    print("no reply is cached: each GET of one entry looks it up in the live data (the names "
          "rotate over all N); remembered per server are parsed URI shapes and verified "
          "Authorization headers (by keyed digest, until running changes)")
    w = 22
    kinds = args.kinds
    print("\nrequests per second (median of rounds)")
    cols = [*names, *(["this/other"] if other else []), "this/bare", "this/bare-h11",
            *(["other/bare", "other/bare-h11"] if other else [])]
    print(f"{'request':<{w}}" + "".join(f"{c:>15}" for c in cols))
    for kind in kinds:
        rps = {n: med(by[n].runs[kind], "rps") for n in names}
        cells = [f"{rps[n]:.0f}" for n in names]
        if other:
            cells.append(f"{rps['this'] / rps['other']:.2f}")
        cells += [f"{rps['this'] / rps[b]:.3f}" for b in ("bare", "bare-h11")]
        if other:
            cells += [f"{rps['other'] / rps[b]:.3f}" for b in ("bare", "bare-h11")]
        print(f"{kind:<{w}}" + "".join(f"{c:>15}" for c in cells))
    print("\nlatency, ms: p50 / p99 (median of rounds)")
    cols = [*names, *(["p50 this/other"] if other else []), "p50 this/bare"]
    print(f"{'request':<{w}}" + "".join(f"{c:>16}" for c in cols))
    for kind in kinds:
        p50 = {n: med(by[n].runs[kind], "p50") for n in names}
        cells = [f"{p50[n] * 1e3:.2f} / {med(by[n].runs[kind], 'p99') * 1e3:.2f}"
                 for n in names]
        if other:
            cells.append(f"{p50['this'] / p50['other']:.2f}")
        cells.append(f"{p50['this'] / p50['bare']:.1f}")
        print(f"{kind:<{w}}" + "".join(f"{c:>16}" for c in cells))
    print("\nrequests / errors (non-2xx and socket errors), all rounds")
    for kind in kinds:
        print(f"{kind:<{w}}" + "".join(
            f"{n}: {sum(r.requests for r in by[n].runs[kind]):,} / "
            f"{sum(r.errors for r in by[n].runs[kind])}".rjust(24) for n in names))
    print("\nreference: the same reads through the datastore API (ds.get operational + print);"
          "\nthis build's RESTCONF against it: p50 (queueing behind the other connections "
          "included)\nand 1 / (req/s), the server's time per request at saturation")
    for kind in [k for k in KINDS[:2] if k in kinds]:
        t = statistics.median(api.times[kind])
        p50 = med(by["this"].runs[kind], "p50")
        busy = 1 / med(by["this"].runs[kind], "rps")
        print(f"{kind:<{w}} {t * 1e3:9.3f} ms; p50 / API = {p50 / t:.1f}x; "
              f"1 / (req/s) = {busy * 1e3:.3f} ms, / API = {busy / t:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--instances", type=int, default=10_000)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", "--concurrency", type=int, default=8,
                    help="wrk connections (GET all uses at most 2)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    add_build_arguments(ap)
    ap.add_argument("--only", choices=sorted(MODES.values()), action="append",
                    help="measure only this request kind (repeatable): one, all, post")
    args = ap.parse_args()
    if args.smoke:
        args.instances, args.duration, args.rounds = 30, 1, 1
    args.sizes = {}
    args.kinds = [k for k in KINDS if not args.only or MODES[k] in args.only]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk; tools/bootstrap installs it)")
    print(f"this:  {describe(sys.executable)}")
    if args.against:
        print(f"other: {describe(args.against)}")
    n = args.instances
    targets: list[Target] = []
    api: Api | None = None
    with tempfile.TemporaryDirectory(prefix="nfo-bench-rc-") as d:
        tmp = Path(d)
        script = tmp / "nfo.lua"
        script.write_text(LUA)
        try:
            targets.append(start_nfo("this", sys.executable, tmp / "this", n)[1])
            if args.against:
                targets.append(start_nfo("other", args.against, tmp / "other", n)[1])
            port = targets[0].port
            for name, path in (("one", f"{INSTANCES}/nf-instance=nf7"), ("all", INSTANCES)):
                body = http(port, "GET", path)
                (tmp / f"{name}.json").write_bytes(body)
                args.sizes[name] = len(body)
            targets.append(start_bare(tmp / "one.json", tmp / "all.json")[1])
            targets.append(start_bare(tmp / "one.json", tmp / "all.json", "h11")[1])
            api = Api(tmp / "api", n)
            for kind in args.kinds:
                for r in range(args.rounds):
                    for t in targets if r % 2 == 0 else targets[::-1]:
                        run = wrk(script, t.port, MODES[kind], n, f"{t.name}{r}", args)
                        t.runs[kind].append(run)
                        print(f"[bench] {kind}, round {r + 1}, {t.name}: {run.rps:.0f} req/s, "
                              f"p50 {run.p50 * 1e3:.2f} ms, {run.errors} errors",
                              file=sys.stderr, flush=True)
                    if kind != KINDS[2]:
                        api.measure(kind, 200 if kind == KINDS[0] else 5, n)
        finally:
            for t in targets:
                t.stop()  # type: ignore[operator]
            if api is not None:
                api.close()
    assert api is not None
    report(targets, api, args)


if __name__ == "__main__":
    main()
