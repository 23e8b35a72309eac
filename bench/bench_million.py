"""A million entries in one list: bulk load, single-entry edits and reads, restart, memory.

``nfo serve`` runs in its own process with the benchmark module (bench/yang); one NETCONF
client (asyncssh, NETCONF 1.1 chunked framing, one session; bench/bench_netconf_read.py's)
drives it:

- bulk load: N entries (default 1,000,000) into the list ``entry``, in edit-config
  messages of ``--chunk`` entries (100,000: a message stays below the server's 16 MiB
  limit); total seconds and entries/s;
- single-entry edit-config (a create of a new entry) with N entries in the list:
  median and p99 of ``--edits``, one at a time, each durable when answered;
- the same single edits and reads with a few entries in the list (10, then one more per
  edit), before the load (the reference: an edit or read of one entry should not feel
  the size of its list), and after the load a get-config of one entry of the 10-entry
  list ``small`` (the machine's pace at that time: a shared machine's speed moves between
  the two);
- get-config of one entry of the N-entry list: medians and the ratios to both
  references;
- restart: SIGTERM, then ``nfo serve`` again on the same state directory, timed from
  the start of the process until NETCONF answers a get-config, until a create sent
  right after it is answered (it waits for the workload manager to have read every
  instance), and until ``nfo serve`` prints that the manager is ready; resident memory of
  the server (VmRSS) right after the load's last read, ``--settle`` seconds later (large
  replies are followed by a collection and ``malloc_trim``, at most every 2 s), and once
  ready after the restart, and its peak (VmHWM) in each.

With ``--nf-instances`` the list is nfo's own ``nf-instance`` list instead, on a ``sim``
VIM with zero latency: every entry is an instance the workload manager instantiates (two
durable state changes and a notification each); after the bulk load the run waits
until the last instance is running, and reads get the operational datastore (config
merged with the manager's state).

Run: ``.venv/bin/python bench/bench_million.py [--entries 1000000] [--edits 200]
[--nf-instances]``; ``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _servers import Server, describe, rss_mb
from _stats import pct
from bench_netconf_read import NC, NS, YANG, Client, get_one


def edit(msg_id: int, body: str) -> str:
    return (f'<rpc xmlns="{NC}" message-id="{msg_id}"><edit-config><target><running/></target>'
            f'<config><bench xmlns="{NS}">{body}</bench></config></edit-config></rpc>')


def entries(start: int, stop: int, prefix: str = "e") -> str:
    return "".join(f"<entry><name>{prefix}{k}</name><value>{k}</value></entry>"
                   for k in range(start, stop))


def get_small(msg_id: int, name: str) -> str:
    return get_one(msg_id, name).replace("<entry>", "<small>").replace("</entry>", "</small>")


INST = "urn:nfo:instances"
SETUP = ('<vims xmlns="urn:nfo:vim"><vim><name>sim1</name><type>sim</type><sim><latency>'
         "<mean>0</mean><jitter>0</jitter></latency></sim></vim></vims>"
         '<catalog xmlns="urn:nfo:catalog"><nf-descriptor><id>fw</id>'
         '<vim-types xmlns:v="urn:nfo:vim">v:sim</vim-types></nf-descriptor></catalog>')


class Instances:
    """The same workload on nf-instances (``--nf-instances``)."""

    @staticmethod
    def edit(msg_id: int, body: str) -> str:
        return (f'<rpc xmlns="{NC}" message-id="{msg_id}"><edit-config><target><running/>'
                f"</target><config>{body}</config></edit-config></rpc>")

    @staticmethod
    def entries(start: int, stop: int, prefix: str = "i") -> str:
        return (f'<nf-instances xmlns="{INST}">'
                + "".join(f"<nf-instance><name>{prefix}{k}</name><descriptor>fw</descriptor>"
                          "</nf-instance>" for k in range(start, stop))
                + "</nf-instances>")

    @staticmethod
    def get(msg_id: int, name: str) -> str:
        return (f'<rpc xmlns="{NC}" message-id="{msg_id}"><get><filter type="subtree">'
                f'<nf-instances xmlns="{INST}"><nf-instance><name>{name}</name>'
                "</nf-instance></nf-instances></filter></get></rpc>")


def _unchunked(reply: bytes) -> bytes:
    """A framed reply's content (NETCONF 1.1 chunk headers cut out)."""
    return re.sub(rb"\n#\d+\n|\n##\n", b"", reply)


STATUSES = (f'<rpc xmlns="{NC}" message-id="9"><get><filter type="subtree">'
            f'<nf-instances xmlns="{INST}"><nf-instance><name/><state><oper-status/></state>'
            "</nf-instance></nf-instances></filter></get></rpc>")


async def running(c: Client, n: int, timeout: float) -> tuple[float, float]:
    """Seconds until at least ``n`` instances report oper-status running, and the
    seconds the last read of every instance's oper-status took."""
    t0 = time.perf_counter()
    while True:
        t = time.perf_counter()
        reply = await c.call(STATUSES)
        if _unchunked(reply).count(b"<oper-status>running</oper-status>") >= n:
            return time.perf_counter() - t0, time.perf_counter() - t
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"not every instance running after {timeout:.0f} s")
        # the read of every state costs the server: at most a tenth of its time
        await asyncio.sleep(max(1.0, 9 * (time.perf_counter() - t)))


async def ok(c: Client, text: str) -> None:
    reply = await c.call(text)
    if b"<ok/>" not in reply:
        raise SystemExit(f"the server refused an edit: {reply[:600]!r}")


async def timed_calls(c: Client, texts: list[str], want: bytes) -> list[float]:
    out = []
    for text in texts:
        t = time.perf_counter()
        reply = await c.call(text)
        out.append(time.perf_counter() - t)
        if want not in reply:
            raise SystemExit(f"unexpected reply: {reply[:600]!r}")
    return out


async def run(args: argparse.Namespace) -> None:
    n = args.entries
    inst = args.nf_instances
    print(f"this: {describe(sys.executable)}")
    with tempfile.TemporaryDirectory(prefix="nfo-bench-million-") as d:
        state = Path(d) / "state"
        srv = Server.start("this", sys.executable, state, restconf=False, netconf=True,
                           yang_dirs=(YANG,))
        try:
            assert srv.netconf_port is not None
            c = await Client.open(srv.netconf_port)
            await ok(c, edit(1, "".join(f"<small><name>s{k}</name><value>{k}</value></small>"
                                        for k in range(10))))
            if inst:
                await ok(c, Instances.edit(2, SETUP))
            make, bulk = (Instances.edit, Instances.entries) if inst else (edit, entries)
            read, entry = (Instances.get, b"<nf-instance>") if inst else (get_one, b"<entry>")
            # the same single edits and reads with a few entries in the list, before the load
            await ok(c, make(3, bulk(0, 10, "r")))
            if inst:
                await running(c, 10, args.timeout)
            edits0 = await timed_calls(c, [make(200_000 + k, bulk(k, k + 1, "b"))
                                           for k in range(args.edits)], b"<ok/>")
            gets0 = await timed_calls(c, [read(300_000 + k, f"r{k % 10}")
                                          for k in range(args.gets)], entry)
            first = 10 + args.edits  # in the list before the load
            t0 = time.perf_counter()
            for i, start in enumerate(range(0, n, args.chunk)):
                await ok(c, make(10 + i, bulk(start, min(n, start + args.chunk))))
                print(f"[bench] {min(n, start + args.chunk):,} entries loaded, "
                      f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            load_s = time.perf_counter() - t0
            converged = states_s = 0.0
            if inst:
                converged, states_s = await running(c, n + first, args.timeout)
                converged += load_s
            rss_read = rss_mb(srv.proc.pid)
            await asyncio.sleep(args.settle)   # the server gives back what the reads took
            rss_loaded = rss_mb(srv.proc.pid)
            peak_loaded = rss_mb(srv.proc.pid, "VmHWM")
            edits = await timed_calls(c, [make(100 + k, bulk(n + k, n + k + 1))
                                          for k in range(args.edits)], b"<ok/>")
            gets = await timed_calls(c, [read(1000 + k, f"{'i' if inst else 'e'}"
                                              f"{(k * 7919) % n}")
                                         for k in range(args.gets)], entry)
            smalls = await timed_calls(c, [get_small(5000 + k, f"s{k % 10}")
                                           for k in range(args.gets)], b"<small>")
            c.close()
            srv.stop()
            t1 = time.perf_counter()
            srv = Server.start("this", sys.executable, state, restconf=False, netconf=True,
                               yang_dirs=(YANG,), timeout=600, fresh=False)
            assert srv.netconf_port is not None
            c = await Client.open(srv.netconf_port)
            await timed_calls(c, [read(1, "i0" if inst else "e0")], entry)
            restart_s = time.perf_counter() - t1
            await timed_calls(c, [make(2, bulk(n + args.edits, n + args.edits + 1))], b"<ok/>")
            write_s = time.perf_counter() - t1
            while "nfo: workload manager ready" not in srv.log.read_text(errors="replace"):
                await asyncio.sleep(0.05)
            ready_s = time.perf_counter() - t1
            rss_restarted = rss_mb(srv.proc.pid)
            peak_restarted = rss_mb(srv.proc.pid, "VmHWM")
            c.close()
        finally:
            srv.stop()
    what = "nf-instances on a zero-latency sim VIM" if inst else "entries in one list " \
        "(nfo-bench entry)"
    print(f"\n{n:,} {what}, NETCONF over SSH, one session")
    print(f"bulk load in edits of {args.chunk:,}: {load_s:.2f} s ({n / load_s:,.0f} entries/s)")
    if inst:
        print(f"every instance running {converged:.1f} s after the first edit "
              f"({n / converged:,.0f} instances/s)")
        print(f"get of every instance's oper-status (subtree filter): {states_s:.2f} s")
    e, e0 = statistics.median(edits), statistics.median(edits0)
    print(f"single-entry edit-config with {n:,} entries: median "
          f"{e * 1e3:.2f} ms, p99 {pct(edits, 0.99) * 1e3:.2f} ms "
          f"({len(edits)} edits, each durable); with at most {first} in the list, before the "
          "load: "
          f"median {e0 * 1e3:.2f} ms, p99 {pct(edits0, 0.99) * 1e3:.2f} ms: {e / e0:.2f}x")
    g, g0, s = statistics.median(gets), statistics.median(gets0), statistics.median(smalls)
    print(f"{'get' if inst else 'get-config'} of one entry: {g * 1e3:.2f} ms with {n:,} "
          f"entries, {g0 * 1e3:.2f} ms with {first} in the same list before the load: "
          f"{g / g0:.2f}x; the get-config of one entry of the 10-entry list `small` after "
          f"the load (the machine's pace then): {s * 1e3:.2f} ms, {g / s:.2f}x")
    print(f"restart to serving (process start to a get-config answered): {restart_s:.2f} s; "
          f"a create sent then answered at {write_s:.2f} s; the workload manager ready "
          f"(every instance read) at {ready_s:.2f} s")
    print(f"resident memory: {rss_loaded:,.0f} MB after the load ({rss_read:,.0f} MB right "
          f"after its last read, {args.settle:g} s before), {rss_restarted:,.0f} MB after the "
          f"restart; peak {peak_loaded:,.0f} MB through the load, {peak_restarted:,.0f} MB in "
          "the restart")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=100_000, help="entries per bulk edit")
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--gets", type=int, default=500)
    ap.add_argument("--nf-instances", action="store_true",
                    help="nfo's nf-instance list on a sim VIM instead of the bench list")
    ap.add_argument("--timeout", type=float, default=3600,
                    help="seconds to wait for the instances to run")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds between the load's last read and the memory reading")
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.entries, args.chunk, args.edits, args.gets, args.settle = 2_000, 1_000, 10, 20, 0.1
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
