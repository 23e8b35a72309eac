"""NETCONF single-entry reads against the SSH floor: nfo's get-config of one entry, and
an asyncssh echo server answering the same request with a reply of the same bytes.

``nfo serve`` runs in its own process with the benchmark module (bench/yang) and N
entries (default 10,000) in its list "entry".  One client (asyncssh, NETCONF 1.1 chunked
framing, password authentication, one session) sends get-config of one entry (a subtree
filter naming its key; the names rotate over all N), one request at a time, and times
each until its whole reply has arrived.  The reference, measured in the same run with
the same client: an asyncssh server in its own process (bench/_echo_netconf.py) whose
``netconf`` subsystem says hello and answers every framed message with a reply of the
same size as nfo's; so the ratio nfo/echo is what the datastore and the NETCONF layer
add over SSH, framing and the client.  ``--against PYTHON`` (the python executable of
another installation of nfo) runs that build's ``nfo serve`` too, loaded the same way.
Rounds alternate between the servers (the order reversed every other round).

Run: ``.venv/bin/python bench/bench_netconf_read.py [--entries 10000] [--requests 2000]
[--against /work/wt/base/.venv/bin/python]``; ``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh
from _servers import PASSWORD, Server, add_build_arguments, builds
from _stats import pct

HERE = Path(__file__).resolve().parent
YANG = HERE / "yang"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = "urn:nfo:bench"
HELLO = (f'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="{NC}"><capabilities>'
         "<capability>urn:ietf:params:netconf:base:1.1</capability>"
         "</capabilities></hello>]]>]]>")


def get_one(msg_id: int, name: str) -> str:
    return (f'<rpc xmlns="{NC}" message-id="{msg_id}"><get-config><source><running/></source>'
            f'<filter type="subtree"><bench xmlns="{NS}"><entry><name>{name}</name></entry>'
            "</bench></filter></get-config></rpc>")


def chunk(text: str) -> bytes:
    data = text.encode()
    return b"\n#%d\n" % len(data) + data + b"\n##\n"


class Client:
    """One NETCONF 1.1 session over asyncssh."""

    def __init__(self, conn: asyncssh.SSHClientConnection, writer: asyncssh.SSHWriter[bytes],
                 reader: asyncssh.SSHReader[bytes]) -> None:
        self.conn, self.writer, self.reader = conn, writer, reader
        self.buf = b""

    @classmethod
    async def open(cls, port: int) -> Client:
        conn = await asyncssh.connect("127.0.0.1", port, username="admin", password=PASSWORD,
                                      known_hosts=None, client_keys=None, agent_path=None)
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        c = cls(conn, writer, reader)
        while b"]]>]]>" not in c.buf:
            c.buf += await reader.read(65536)
        c.buf = c.buf.split(b"]]>]]>", 1)[1]
        writer.write(HELLO.encode())
        return c

    async def call(self, text: str) -> bytes:
        """Send one framed message; the whole framed reply."""
        self.writer.write(chunk(text))
        while not self.buf.endswith(b"\n##\n"):
            data = await self.reader.read(1 << 20)
            if not data:
                raise SystemExit("the server closed the session")
            self.buf += data
        reply, self.buf = self.buf, b""
        return reply

    def close(self) -> None:
        self.conn.close()


async def load(port: int, n: int) -> None:
    c = await Client.open(port)
    try:
        body = "".join(f"<entry><name>e{k}</name><value>{k}</value></entry>"
                       for k in range(n))
        reply = await c.call(f'<rpc xmlns="{NC}" message-id="1"><edit-config><target><running/>'
                             f'</target><config><bench xmlns="{NS}">{body}</bench></config>'
                             "</edit-config></rpc>")
        if b"<ok/>" not in reply:
            raise SystemExit(f"loading the entries failed: {reply[:500]!r}")
    finally:
        c.close()


async def timed(port: int, n: int, requests: int, offset: int) -> tuple[list[float], bytes]:
    c = await Client.open(port)
    try:
        times: list[float] = []
        reply = b""
        await c.call(get_one(0, "e0"))  # warm-up
        for i in range(requests):
            t = time.perf_counter()
            reply = await c.call(get_one(i + 1, f"e{(offset + i * 7919) % n}"))
            times.append(time.perf_counter() - t)
        return times, reply
    finally:
        c.close()


def start_echo(reply: bytes, tmp: Path) -> tuple[subprocess.Popen[str], int]:
    (tmp / "reply.bin").write_bytes(reply)
    proc = subprocess.Popen([sys.executable, str(HERE / "_echo_netconf.py"),
                             str(tmp / "reply.bin"), PASSWORD, str(tmp / "echo_host_key")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise SystemExit("the asyncssh echo server did not start")
    return proc, int(line)


async def run(args: argparse.Namespace) -> None:
    pythons = builds(args.against)
    with tempfile.TemporaryDirectory(prefix="nfo-bench-ncread-") as d:
        tmp = Path(d)
        servers: dict[str, Server] = {}
        echo: subprocess.Popen[str] | None = None
        try:
            for name, python in pythons.items():
                servers[name] = srv = Server.start(name, python, tmp / name, restconf=False,
                                                   netconf=True, yang_dirs=(YANG,))
                assert srv.netconf_port is not None
                await load(srv.netconf_port, args.entries)
            ports = {name: srv.netconf_port for name, srv in servers.items()}
            _, sample = await timed(ports["this"], args.entries, 3, 1)
            if b"<entry>" not in sample:
                raise SystemExit(f"get-config did not return the entry: {sample[:500]!r}")
            echo, ports["echo"] = start_echo(sample, tmp)
            res: dict[str, list[float]] = {name: [] for name in ports}
            order = list(ports)
            for r in range(args.rounds):
                for name in order if r % 2 == 0 else order[::-1]:
                    port = ports[name]
                    assert port is not None
                    times, reply = await timed(port, args.entries, args.requests, r)
                    if abs(len(reply) - len(sample)) > 16:  # names and ids vary in length
                        raise SystemExit(f"{name}: a reply of {len(reply)} bytes, not about "
                                         f"{len(sample)}")
                    res[name].extend(times)
                    print(f"[bench] round {r + 1}, {name}: median "
                          f"{statistics.median(times) * 1e6:.0f} us", file=sys.stderr,
                          flush=True)
        finally:
            if echo is not None:
                echo.terminate()
                echo.wait(30)
            for srv in servers.values():
                srv.stop()
    print(f"\n{args.entries:,} entries in the list; get-config of one entry (subtree filter "
          f"on its key), one request at a time, {args.requests} per round, {args.rounds} "
          f"alternating round(s); replies of {len(sample):,} bytes, NETCONF 1.1 chunked")
    print(f"{'server':<8}{'median us':>11}{'p99 us':>9}{'req/s':>9}")
    for name, times in res.items():
        med = statistics.median(times)
        print(f"{name:<8}{med * 1e6:>11.0f}{pct(times, 0.99) * 1e6:>9.0f}{1 / med:>9.0f}")
    echo_med = statistics.median(res["echo"])
    for name in pythons:
        ratio = statistics.median(res[name]) / echo_med
        print(f"{name} / asyncssh echo of a same-sized reply (median): {ratio:.2f}x")
    if args.against:
        ratio = statistics.median(res["this"]) / statistics.median(res["other"])
        print(f"this/other (median): {ratio:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=2000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=4)
    add_build_arguments(ap)
    args = ap.parse_args()
    if args.smoke:
        args.entries, args.requests, args.rounds = 30, 20, 2
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
