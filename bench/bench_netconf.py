"""NETCONF latency and throughput over a real SSH socket, against netopeer2's figures.

`nfo serve` runs in its own process with the benchmark module (bench/yang) and
one ncclient session (its polling TICK lowered to 1 ms, as the issue asks) drives:

- 1,000 get-config of a 10-entry list: median and p99;
- one edit-config creating 10,000 entries;
- single-entry edit-config (a create) with 1k, 10k and 100k entries in the list: median;
- get-config of 10,000 entries: median.

Reference in the same run: the same operations through the datastore API in this
process (no SSH, no XML envelope), so the NETCONF front end's share is a ratio.
netopeer2 2.4.5 on sysrepo 3.7.11, measured on this kind of machine, is quoted.

Run: ``.venv/bin/python bench/bench_netconf.py [--sizes 1000,10000,100000]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ncclient import manager
from ncclient.transport import session as nc_session

from nfo.datastore import Datastore, SqliteStorage
from nfo.schema import Schema

nc_session.TICK = 0.001

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = "urn:nfo:bench"
YANG = Path(__file__).parent / "yang"
PASSWORD = "bench-password-123"
NETOPEER2 = {"get10": "2.1-2.5 ms", "edit": {1000: "13 ms", 10000: "107 ms", 100000: "~1 s"},
             "create10k": "0.35-0.53 s", "get10k": "0.09-0.11 s"}


def pct(v: list[float], q: float) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, int(q * len(s)))]


def entries(lst: str, start: int, stop: int) -> str:
    return "".join(f"<{lst}><name>e{k}</name><value>{k}</value></{lst}>"
                   for k in range(start, stop))


def config(body: str) -> str:
    return f'<config xmlns="{NC}"><bench xmlns="{NS}">{body}</bench></config>'


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def start_server(state: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nfo", "--state-dir", str(state), "serve", "--restconf", "off",
         "--netconf", "127.0.0.1:0", "--yang-dir", str(YANG)],
        env={**os.environ, "NFO_ADMIN_PASSWORD": PASSWORD},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    port = None
    for line in proc.stdout:
        if "NETCONF over SSH on" in line:
            port = int(line.rsplit(":", 1)[1])
        if "serving" in line:
            break
    if port is None:
        proc.kill()
        raise SystemExit("nfo serve did not start")
    return proc, port


class Reference:
    """The same operations through the datastore API, in this process."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.ds: Datastore | None = None
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def open(self) -> None:
        async def go() -> Datastore:
            ds = Datastore.open(Schema(extra_dirs=[YANG]), SqliteStorage(self.state / "ref.db"))
            await ds.start()
            return ds
        self.ds = self.run(go())
        self.session = self.ds.session("bench")

    def edit(self, xml: str) -> None:
        self.run(self.session.edit("running", xml[xml.index("<bench"):-len("</config>")], "xml"))

    def get(self, xpath: str) -> None:
        assert self.ds is not None
        with self.ds.get("running", xpath) as t:
            t.print("xml")

    def close(self) -> None:
        assert self.ds is not None
        self.run(self.session.close())
        self.run(self.ds.close())
        self.loop.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--gets", type=int, default=1000)
    ap.add_argument("--edits", type=int, default=50)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="nfo-bench-nc-"))
    proc, port = start_server(tmp / "state")
    ref = Reference(tmp)
    ref.open()
    m = manager.connect(host="127.0.0.1", port=port, username="admin", password=PASSWORD,
                        hostkey_verify=False, look_for_keys=False, allow_agent=False,
                        timeout=600)
    rows: list[tuple[str, str, str, str]] = []
    try:
        small = config(entries("small", 0, 10))
        m.edit_config(target="running", config=small)
        ref.edit(small)
        flt = ("subtree", f'<bench xmlns="{NS}"><small/></bench>')
        nc = timed(lambda: m.get_config("running", filter=flt), args.gets)
        api = timed(lambda: ref.get("/nfo-bench:bench/small"), args.gets)
        rows.append((f"get-config, 10 entries (median / p99 of {args.gets})",
                     f"{statistics.median(nc) * 1e3:.2f} / {pct(nc, 0.99) * 1e3:.2f} ms",
                     f"{statistics.median(api) * 1e3:.2f} ms", NETOPEER2["get10"]))

        bulk = config(entries("bulk", 0, 10000))
        t_nc = timed(lambda: m.edit_config(target="running", config=bulk), 1)[0]
        t_api = timed(lambda: ref.edit(bulk), 1)[0]
        rows.append(("edit-config creating 10,000 entries", f"{t_nc:.2f} s", f"{t_api:.2f} s",
                     NETOPEER2["create10k"]))
        flt = ("subtree", f'<bench xmlns="{NS}"><bulk/></bench>')
        nc = timed(lambda: m.get_config("running", filter=flt), 5)
        api = timed(lambda: ref.get("/nfo-bench:bench/bulk"), 5)
        rows.append(("get-config, 10,000 entries (median of 5)",
                     f"{statistics.median(nc):.3f} s", f"{statistics.median(api):.3f} s",
                     NETOPEER2["get10k"]))

        have = 0
        extra = 10**7
        for size in sizes:
            grow = config(entries("entry", have, size))
            m.edit_config(target="running", config=grow)
            ref.edit(grow)
            have = size

            def one(api: bool = False) -> None:
                nonlocal extra
                extra += 1
                xml = config(f"<entry><name>x{extra}</name><value>1</value></entry>")
                if api:
                    ref.edit(xml)
                else:
                    m.edit_config(target="running", config=xml)

            nc = timed(one, args.edits)
            api = timed(lambda: one(True), args.edits)
            rows.append((f"single-entry edit-config at {size:,} entries (median of "
                         f"{args.edits})", f"{statistics.median(nc) * 1e3:.2f} ms",
                         f"{statistics.median(api) * 1e3:.2f} ms",
                         NETOPEER2["edit"].get(size, "-")))
    finally:
        m.close_session()
        ref.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"{'measure':<58} {'nfo NETCONF':>18} {'datastore API':>14} {'netopeer2':>12}")
    for name, a, b, c in rows:
        print(f"{name:<58} {a:>18} {b:>14} {c:>12}")


if __name__ == "__main__":
    main()
