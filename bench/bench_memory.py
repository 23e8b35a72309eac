"""Resident memory of ``nfo serve`` around large requests (issue 12, finding 5).

A fresh ``nfo serve`` per build and front end (on 127.0.0.1), its VmRSS read from
``/proc/PID/status`` at each step:

1. at rest, after one small RESTCONF read or one NETCONF session (warm-up);
2. RESTCONF: after a YANG Patch body of ``--body-mb`` MB (4: under the 4 MiB body cap) made of
   ``<a/>`` elements (refused as unknown, after the XML reader read every element),
   and after a PUT of ``/restconf/data`` with such a ``<data>`` body, each measured
   ``--settle`` seconds after the reply;
3. NETCONF: while ``--sessions`` (10) NETCONF sessions each hold an unfinished message of
   ``--message-mb`` (15) MB (sent, never ended), then ``--settle`` seconds after those
   sessions closed.

``--against PYTHON`` runs the same steps on another build (the python executable of its
installation, such as ``/work/main/.venv/bin/python``); ``--arena-max N`` runs each
server with ``MALLOC_ARENA_MAX=N``.  Figures in MB.

Run: ``.venv/bin/python bench/bench_memory.py [--against PYTHON] [--arena-max 2]``;
``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import asyncssh
import httpx
from _servers import PASSWORD, Server, add_build_arguments, describe, rss_mb

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
HELLO = (f'<hello xmlns="{NC}"><capabilities><capability>urn:ietf:params:netconf:base:1.0'
         "</capability></capabilities></hello>]]>]]>").encode()
EOM = b"]]>]]>"


def filler(size: int) -> bytes:
    return b"<a/>" * (size // 4)


async def netconf_session(port: int) -> tuple[asyncssh.SSHClientConnection,
                                               asyncssh.SSHWriter[bytes],
                                               asyncssh.SSHReader[bytes]]:
    conn = await asyncssh.connect("127.0.0.1", port, username="admin", password=PASSWORD,
                                  known_hosts=None, client_keys=None, agent_path=None)
    w, r, _ = await conn.open_session(subsystem="netconf", encoding=None)
    buf = b""
    while EOM not in buf:
        data = await asyncio.wait_for(r.read(65536), 30)
        if not data:
            raise SystemExit("NETCONF: the server closed the session before its hello")
        buf += data
    w.write(HELLO)
    return conn, w, r


async def warm_up(port: int) -> None:
    conn, w, r = await netconf_session(port)
    w.write(f'<rpc message-id="1" xmlns="{NC}"><get-config><source><running/></source>'
            "</get-config></rpc>".encode() + EOM)
    buf = b""
    while EOM not in buf:
        buf += await asyncio.wait_for(r.read(65536), 30)
    conn.close()
    await conn.wait_closed()


async def unfinished(port: int, sessions: int, size: int, settle: float, pid: int
                     ) -> tuple[float, float]:
    """RSS while ``sessions`` sessions hold an unfinished message, and after they closed."""
    opened = [await netconf_session(port) for _ in range(sessions)]
    head = f'<rpc message-id="7" xmlns="{NC}"><get-config><source><running/></source>'
    body = head.encode() + filler(size)
    for _, w, _ in opened:
        for i in range(0, len(body), 1 << 16):
            w.write(body[i:i + (1 << 16)])
            await w.drain()
    await asyncio.sleep(settle)
    held = rss_mb(pid)
    for conn, _, _ in opened:
        conn.close()
    for conn, _, _ in opened:
        await conn.wait_closed()
    await asyncio.sleep(settle)
    return held, rss_mb(pid)


def measure_restconf(server: Server, args: argparse.Namespace) -> dict[str, float]:
    pid = server.proc.pid
    out: dict[str, float] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{server.restconf_port}",
                      auth=("admin", PASSWORD), timeout=300) as c:
        c.get("/restconf/data/nfo-catalog:catalog").raise_for_status()
        time.sleep(args.settle)
        out["RESTCONF at rest"] = rss_mb(pid)
        size = int(args.body_mb * 1_000_000) - 200
        patch = (b'<yang-patch xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-patch">'
                 b"<patch-id>p</patch-id>" + filler(size) + b"</yang-patch>")
        r = c.patch("/restconf/data", content=patch,
                    headers={"Content-Type": "application/yang-patch+xml"})
        assert r.status_code == 400, (r.status_code, r.text[:300])
        time.sleep(args.settle)
        out[f"after a {args.body_mb:g} MB YANG Patch of <a/>"] = rss_mb(pid)
        data = (b'<data xmlns="urn:ietf:params:xml:ns:yang:ietf-restconf">' + filler(size)
                + b"</data>")
        r = c.put("/restconf/data", content=data,
                  headers={"Content-Type": "application/yang-data+xml"})
        assert r.status_code == 400, (r.status_code, r.text[:300])
        time.sleep(args.settle)
        out[f"... then a {args.body_mb:g} MB PUT /restconf/data of <a/>"] = rss_mb(pid)
    return out


def measure_netconf(server: Server, args: argparse.Namespace) -> dict[str, float]:
    pid = server.proc.pid
    assert server.netconf_port
    asyncio.run(warm_up(server.netconf_port))
    time.sleep(args.settle)
    out = {"NETCONF at rest": rss_mb(pid)}
    held, after = asyncio.run(unfinished(server.netconf_port, args.sessions,
                                         int(args.message_mb * 1_000_000), args.settle, pid))
    n = args.sessions
    out[f"{n} sessions holding {args.message_mb:g} MB unfinished each"] = held
    out[f"... after those {n} sessions closed"] = after
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_build_arguments(ap)
    ap.add_argument("--arena-max", type=int, help="run the servers with MALLOC_ARENA_MAX=N")
    ap.add_argument("--body-mb", type=float, default=4.0)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--message-mb", type=float, default=15.0)
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds between a step and its measurement")
    args = ap.parse_args()
    if args.smoke:
        args.body_mb, args.sessions, args.message_mb, args.settle = 0.3, 2, 0.5, 0.3
    builds = [("this", sys.executable)] + ([("other", args.against)] if args.against else [])
    for name, python in builds:
        print(f"{name}: {describe(python)}")
    env = {"MALLOC_ARENA_MAX": str(args.arena_max)} if args.arena_max else {}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="nfo-bench-mem-") as d:
        for name, python in builds:
            results[name] = {}
            for part, measure in (("restconf", measure_restconf),
                                  ("netconf", measure_netconf)):
                server = Server.start(name, python, Path(d) / f"{name}-{part}",
                                      restconf=part == "restconf", netconf=part == "netconf",
                                      env=env)
                try:
                    results[name].update(measure(server, args))
                finally:
                    server.stop()
    print(f"resident memory of nfo serve (VmRSS, MB), each {args.settle:g} s after the step"
          + (f"; MALLOC_ARENA_MAX={args.arena_max}" if args.arena_max else ""))
    rows = list(results["this"])
    w = max(len(r) for r in rows) + 2
    ratio = len(builds) > 1
    print(f"{'step':<{w}}" + "".join(f"{name:>10}" for name, _ in builds)
          + (f"{'this/other':>12}" if ratio else ""))
    for row in rows:
        print(f"{row:<{w}}" + "".join(f"{results[name][row]:>10.0f}" for name, _ in builds)
              + (f"{results['this'][row] / results['other'][row]:>12.2f}" if ratio else ""))


if __name__ == "__main__":
    main()
