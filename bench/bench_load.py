"""Mixed load on both front ends at once: 50 NETCONF sessions and 50 RESTCONF clients.

``nfo serve`` runs in its own process with N nf-instances in running (default 1,000;
admin-state disabled, so nothing is started).  For ``--duration`` seconds (default 60):

- RESTCONF through ``wrk`` (one process per kind of request, each with its own Lua
  script that counts statuses and prints p50 / p99 / p99.9): GET of one instance
  (20 connections), GET of the list to depth 2 (5), PATCH of one instance's description
  (10), POST of a new instance or DELETE of one created before, by its Location (10); and
  5 Server-Sent-Events streams (httpx, in this process) counting the change notifications
  they receive;
- NETCONF over SSH (asyncssh, in this process, base:1.1 framing): 40 sessions alternating
  a filtered get-config of one instance and an edit-config of one instance's description,
  10 sessions subscribed to the NETCONF stream (create-subscription) that also read the
  catalog now and then.

Every second the server's resident memory (VmRSS) and open file descriptors are sampled,
during the load and for ``--idle`` seconds after it (default 15): after the load, neither
may keep growing.  The summary gives requests, rate, latency p50 / p99 / p99.9 per
operation, every answer other than success by status or error-tag, notifications
received, and memory and descriptors at start, peak, end of load and after the idle time.

Run: ``.venv/bin/python bench/bench_load.py [--duration 60] [--instances 1000]``;
``--duration 600`` is the soak; ``--smoke`` is a seconds-long run for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import httpx
from _servers import PASSWORD, Server
from _stats import pct

from nfo.wire.framing import Decoder, encode_chunked, encode_eom

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
INST_NS = "urn:nfo:instances"
JSON = "application/yang-data+json"
INSTANCES = "/restconf/data/nfo-instances:nf-instances"
AUTH = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
HELLO = (f'<hello xmlns="{NC}"><capabilities><capability>urn:ietf:params:netconf:base:1.1'
         "</capability></capabilities></hello>").encode()

# args: mode, N instances, a tag unique per wrk process, the Authorization header
LUA = """
local mode, n, tag, headers
local counter = 0
local created = {}
statuses = ""
local counts = {}
function init(args)
  mode, n, tag = args[1], tonumber(args[2]), args[3]
  headers = {["Authorization"] = args[4], ["Accept"] = "@JSON@",
             ["Content-Type"] = "@JSON@"}
end
local base = "@PATH@"
function request()
  counter = counter + 1
  local i = counter % n
  if mode == "one" then
    return wrk.format("GET", base .. "/nf-instance=i" .. i, headers)
  elseif mode == "list" then
    return wrk.format("GET", base .. "?depth=2", headers)
  elseif mode == "patch" then
    local body = '{"nfo-instances:nf-instance": [{"name": "i' .. i ..
                 '", "description": "' .. tag .. counter .. '"}]}'
    return wrk.format("PATCH", base .. "/nf-instance=i" .. i, headers, body)
  end
  if #created > 0 then
    return wrk.format("DELETE", table.remove(created, 1), headers)
  end
  local body = '{"nfo-instances:nf-instance": [{"name": "w' .. tag .. "-" .. counter ..
               '", "descriptor": "udp-echo", "admin-state": "disabled", ' ..
               '"parameter": [{"name": "port", "value": "7000"}]}]}'
  return wrk.format("POST", base, headers, body)
end
function response(status, hdrs, body)
  if status == 201 and mode == "post" then
    local loc = hdrs["Location"] or hdrs["location"]
    created[#created + 1] = loc:match("^https?://[^/]+(.*)$") or loc
  end
  counts[status] = (counts[status] or 0) + 1
  local parts = {}
  for k, v in pairs(counts) do parts[#parts + 1] = k .. "=" .. v end
  statuses = table.concat(parts, ",")
end
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
function done(summary, latency, requests)
  io.write(string.format("LAT %d %d %d %d\\n", summary.requests, latency:percentile(50),
                         latency:percentile(99), latency:percentile(99.9)))
  for _, t in ipairs(threads) do io.write("STATUS " .. (t:get("statuses") or "") .. "\\n") end
  io.write(string.format("SOCKERR %d %d %d %d\\n", summary.errors.connect, summary.errors.read,
                         summary.errors.write, summary.errors.timeout))
end
"""

HTTP_KINDS = {  # name -> (wrk mode, connections)
    "RESTCONF GET one instance": ("one", 20),
    "RESTCONF GET list, depth 2": ("list", 5),
    "RESTCONF PATCH one instance": ("patch", 10),
    "RESTCONF POST, then DELETE it": ("post", 10),
}


@dataclass
class Op:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    wrk_pcts: tuple[float, float, float] | None = None

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


@dataclass
class Sample:
    t: float
    rss_kb: int
    fds: int


def proc_sample(pid: int, t0: float) -> Sample:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return Sample(time.monotonic() - t0, rss, len(os.listdir(f"/proc/{pid}/fd")))


# -- set-up -------------------------------------------------------------------------------


def seed(port: int, n: int) -> None:
    body = json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
        {"name": f"i{k}", "descriptor": "udp-echo", "admin-state": "disabled",
         "parameter": [{"name": "port", "value": str(20000 + k)}]} for k in range(n)]}})
    r = httpx.patch(f"http://127.0.0.1:{port}{INSTANCES}", content=body, timeout=300,
                    headers={"Authorization": AUTH, "Content-Type": JSON})
    if r.status_code not in (200, 204):
        raise SystemExit(f"seeding failed: {r.status_code} {r.text[:500]}")


# -- RESTCONF -------------------------------------------------------------------------------


def start_wrk(script: Path, port: int, mode: str, conns: int, n: int, tag: str,
              duration: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "30s", "-s", str(script),
         f"http://127.0.0.1:{port}", "--", mode, str(n), tag, AUTH],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_wrk(proc: subprocess.Popen[str], op: Op) -> None:
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed ({proc.returncode}): {err}{out}")
    for line in out.splitlines():
        if line.startswith("LAT "):
            reqs, p50, p99, p999 = (int(x) for x in line.split()[1:])
            op.requests = reqs
            op.wrk_pcts = (p50 / 1000, p99 / 1000, p999 / 1000)  # wrk: microseconds
        elif line.startswith("STATUS "):
            for part in filter(None, line[7:].split(",")):
                code, count = part.split("=")
                if not code.startswith("2"):
                    op.errors[f"HTTP {code}"] = op.errors.get(f"HTTP {code}", 0) + int(count)
        elif line.startswith("SOCKERR "):
            names = ("connect", "read", "write", "timeout")
            for name, count in zip(names, line.split()[1:], strict=True):
                if int(count):
                    op.errors[f"socket {name}"] = int(count)


async def sse_client(port: int, got: list[int]) -> None:
    """Counts the events of one stream until cancelled; the stream must not end first."""
    url = f"http://127.0.0.1:{port}/restconf/streams/NETCONF/json"
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None),
                                 headers={"Authorization": AUTH}) as c, c.stream("GET", url) as r:
        if r.status_code != 200:
            raise SystemExit(f"SSE stream: {r.status_code}")
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                got[0] += 1
    raise ConnectionError("the server ended an SSE stream")


# -- NETCONF --------------------------------------------------------------------------------


class NetconfSession:
    def __init__(self, conn: asyncssh.SSHClientConnection, w: asyncssh.SSHWriter[bytes],
                 r: asyncssh.SSHReader[bytes]) -> None:
        self.conn, self.w, self.r = conn, w, r
        self.dec = Decoder()
        self.ids = 0
        self.notifications = 0

    @classmethod
    async def open(cls, port: int) -> NetconfSession:
        conn = await asyncssh.connect("127.0.0.1", port, username="admin", password=PASSWORD,
                                      known_hosts=None, client_keys=None, agent_path=None)
        w, r, _ = await conn.open_session(subsystem="netconf", encoding=None)
        s = cls(conn, w, r)
        await s.message()
        w.write(encode_eom(HELLO))
        s.dec.chunked = True
        return s

    async def message(self) -> bytes:
        while (m := self.dec.next()) is None:
            data = await self.r.read(65536)
            if not data:
                raise ConnectionError("the server closed the session")
            self.dec.feed(data)
        return m

    async def rpc(self, body: str) -> bytes:
        self.ids += 1
        mid = str(self.ids)
        self.w.write(encode_chunked(f'<rpc message-id="{mid}" xmlns="{NC}">{body}</rpc>'
                                    .encode()))
        while True:
            m = await self.message()
            if m.lstrip().startswith(b"<notification"):
                self.notifications += 1
                continue
            return m

    def close(self) -> None:
        self.conn.close()


_TAG = re.compile(rb"<error-tag>([^<]*)</error-tag>")


async def timed(op: Op, s: NetconfSession, body: str) -> None:
    t = time.perf_counter()
    reply = await s.rpc(body)
    op.latencies.append(time.perf_counter() - t)
    op.requests += 1
    if b"<rpc-error>" in reply:
        m = _TAG.search(reply)
        op.error(m.group(1).decode() if m else "rpc-error")


async def nc_worker(s: NetconfSession, k: int, n: int, stop: asyncio.Event,
                    ops: dict[str, Op]) -> None:
    i = k
    while not stop.is_set():
        i = (i + 37) % n
        await timed(ops["NETCONF get-config, one instance"], s,
                    f'<get-config><source><running/></source><filter type="subtree">'
                    f'<nf-instances xmlns="{INST_NS}"><nf-instance><name>i{i}</name>'
                    "</nf-instance></nf-instances></filter></get-config>")
        await timed(ops["NETCONF edit-config, one instance"], s,
                    f'<edit-config><target><running/></target><config><nf-instances '
                    f'xmlns="{INST_NS}"><nf-instance><name>i{i}</name><description>nc{k}-'
                    f"{s.ids}</description></nf-instance></nf-instances></config>"
                    "</edit-config>")


async def nc_listener(s: NetconfSession, stop: asyncio.Event, ops: dict[str, Op]) -> None:
    await timed(ops["NETCONF create-subscription"], s,
                '<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>')
    while not stop.is_set():
        await timed(ops["NETCONF get-config, catalog"], s,
                    '<get-config><source><running/></source><filter type="subtree">'
                    '<catalog xmlns="urn:nfo:catalog"/></filter></get-config>')
        await asyncio.sleep(0.5)


# -- the run --------------------------------------------------------------------------------


async def load(srv: Server, args: argparse.Namespace, script: Path,
               samples: list[Sample], t0: float) -> tuple[dict[str, Op], int, int]:
    assert srv.restconf_port is not None and srv.netconf_port is not None
    ops: dict[str, Op] = {k: Op() for k in (
        *HTTP_KINDS, "NETCONF get-config, one instance", "NETCONF edit-config, one instance",
        "NETCONF create-subscription", "NETCONF get-config, catalog")}
    scale = args.clients / 50
    sessions = [await NetconfSession.open(srv.netconf_port)
                for _ in range(max(2, round(args.clients)))]
    stop = asyncio.Event()
    sse_got = [0]
    wrks = {kind: start_wrk(script, srv.restconf_port, mode, max(1, round(conns * scale)),
                            args.instances, f"w{j}", args.duration)
            for j, (kind, (mode, conns)) in enumerate(HTTP_KINDS.items())}
    listeners = max(1, len(sessions) // 5)
    tasks = [asyncio.create_task(nc_listener(s, stop, ops)) for s in sessions[:listeners]]
    tasks += [asyncio.create_task(nc_worker(s, k, args.instances, stop, ops))
              for k, s in enumerate(sessions[listeners:])]
    streams = [asyncio.create_task(sse_client(srv.restconf_port, sse_got))
               for _ in range(max(1, round(5 * scale)))]
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        samples.append(proc_sample(srv.proc.pid, t0))
        for t in tasks + streams:
            if t.done() and t.exception() is not None:
                stop.set()
                for other in streams:
                    other.cancel()
                raise SystemExit(f"a client failed: {t.exception()!r}")
        await asyncio.sleep(1)
    stop.set()
    await asyncio.gather(*tasks)
    for t in streams:
        t.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    for kind, proc in wrks.items():
        await asyncio.to_thread(read_wrk, proc, ops[kind])
    notes = sum(s.notifications for s in sessions[:listeners])
    for s in sessions:
        s.close()
    return ops, notes, sse_got[0]


def report(ops: dict[str, Op], notes: int, sse: int, samples: list[Sample],
           load_end: float, args: argparse.Namespace) -> None:
    print(f"\nmixed load: {args.clients:g} NETCONF sessions and {args.clients:g} RESTCONF "
          f"clients for {args.duration} s, {args.instances:,} nf-instances in running, "
          "loopback, one nfo serve process")
    print(f"{'operation':<38} {'requests':>9} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'p99.9 ms':>9}  errors")
    for name, op in ops.items():
        if op.wrk_pcts is not None:
            p50, p99, p999 = op.wrk_pcts
        else:
            p50, p99, p999 = (pct(op.latencies, q) * 1e3 for q in (0.5, 0.99, 0.999))
        errs = ", ".join(f"{k}: {v}" for k, v in sorted(op.errors.items())) or "none"
        print(f"{name:<38} {op.requests:>9,} {op.requests / args.duration:>8.1f} "
              f"{p50:>8.2f} {p99:>8.2f} {p999:>9.2f}  {errs}")
    print(f"notifications received: {notes:,} by the NETCONF subscribers, {sse:,} by the "
          "SSE streams")
    during = [s for s in samples if s.t <= load_end]
    after = [s for s in samples if s.t > load_end]
    first, peak = during[0], max(during, key=lambda s: s.rss_kb)
    last_load = during[-1]
    print("\nserver process   RSS MB   open fds")
    for label, s in (("start of load", first), ("peak", peak), ("end of load", last_load),
                     (f"after {args.idle} s idle", after[-1] if after else last_load)):
        print(f"{label:<16} {s.rss_kb / 1024:>7.1f}   {s.fds:>8}")
    if len(after) >= 4:
        half = len(after) // 2
        a = statistics.mean(s.rss_kb for s in after[:half])
        b = statistics.mean(s.rss_kb for s in after[half:])
        print(f"idle trend: RSS {a / 1024:.1f} -> {b / 1024:.1f} MB, fds "
              f"{after[0].fds} -> {after[-1].fds}")
    print("RSS over time (s: MB): " + "  ".join(
        f"{s.t:.0f}: {s.rss_kb / 1024:.0f}" for s in samples[::max(1, len(samples) // 12)]))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=60, help="seconds of load")
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--clients", type=float, default=50,
                    help="NETCONF sessions; RESTCONF connections scale with it (50 each)")
    ap.add_argument("--idle", type=int, default=15, help="seconds sampled after the load")
    ap.add_argument("--python", default=str(Path(__file__).resolve().parents[1] / ".venv" /
                                            "bin" / "python"))
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run for CI")
    args = ap.parse_args()
    if args.smoke:
        args.duration, args.instances, args.clients, args.idle = 3, 50, 5, 2
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk; tools/bootstrap installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(LUA.replace("@JSON@", JSON).replace("@PATH@", INSTANCES))
        srv = Server.start("nfo", args.python, Path(tmp) / "state", restconf=True, netconf=True)
        try:
            assert srv.restconf_port is not None
            seed(srv.restconf_port, args.instances)
            samples: list[Sample] = []
            t0 = time.monotonic()
            ops, notes, sse = await load(srv, args, script, samples, t0)
            load_end = time.monotonic() - t0
            for _ in range(args.idle):
                await asyncio.sleep(1)
                samples.append(proc_sample(srv.proc.pid, t0))
            report(ops, notes, sse, samples, load_end, args)
            if srv.proc.poll() is not None:
                raise SystemExit("nfo serve died during the load")
            bad = Counter(line.split(" ", 2)[-1] for line in srv.log.read_text().splitlines()
                          if " WARNING " in line or " ERROR " in line or "Traceback" in line)
            print(f"server log: {sum(bad.values())} warnings or errors")
            if bad:
                raise SystemExit("the server logged warnings or errors under load:\n" + "\n".join(
                    f"{n:>6} x {msg[:200]}" for msg, n in bad.most_common(10)))
        finally:
            srv.stop()


if __name__ == "__main__":
    asyncio.run(main())
