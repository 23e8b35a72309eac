"""NETCONF latency over a real SSH socket: this build, optionally another build, in one run.

``nfo serve`` runs in its own process with the benchmark module (bench/yang) and
one ncclient session (its polling TICK lowered to 1 ms) drives:

- get-config of a 10-entry list (``--gets`` in all): median and p99;
- one edit-config creating ``--bulk`` (10,000) entries, then get-config of them
  (the entries are removed again, untimed, before the next round);
- single-entry edit-config (a create) with 1k, 10k and 100k entries in the list
  (``--edits`` in all per size): median;
- at the end, with the bulk entries created again (``--bulk`` of them, beside the
  single-edit list): each server's resident memory (VmRSS), and each ``nfo serve``
  restarted on its state directory, timed from the start of the process until it
  serves (the reference: libyang alone parsing and validating the same data).

References in the same run:

- ``--against PYTHON``: the python executable of another installation of nfo (for
  example ``/work/wt/base/.venv/bin/python``); its ``nfo serve`` runs too, with its
  own fresh state directory prepared the same way (through NETCONF), and every
  figure is given for both builds with the ratio this/other;
- always: the same operations through this build's datastore API in this process
  (no SSH, no XML envelope), so the NETCONF front end's share is a ratio;
- always: libyang alone parsing (parse-only, strict) and validating the bulk edit's
  data from memory in this process, as bench/bench_bulk_edit.py's reference: the bulk
  edit is also given as a ratio to it.

The work is split into ``--rounds`` rounds (at least 3 in a full run); within each
round every target takes its turn, in alternating order (A, B, API, then API, B, A),
so a noisy neighbour hits all of them alike.

netopeer2 2.4.5 on sysrepo 3.7.11 is measured in the same run when its relocatable
build is present (``../shared/ref/netopeer2`` beside the repository, or
``--netopeer2 DIR``): started with the benchmark module on 127.0.0.1 and driven by the
same ncclient workload (key authentication), each figure then also given as
this/netopeer2.  Without it, a line says so (it is never needed by nfo or by CI).

Run: ``.venv/bin/python bench/bench_netconf.py [--sizes 1000,10000,100000]
[--against /work/wt/base/.venv/bin/python]``; ``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import math
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _libyang import ffi, lib
from _servers import PASSWORD, Server, add_build_arguments, describe, rss_mb
from _stats import pct
from ncclient import manager
from ncclient.transport import session as nc_session

from nfo.datastore import Datastore, SqliteStorage
from nfo.schema import Fmt, Schema
from nfo.schema.data import parse_data

nc_session.TICK = 0.001
NAME_KEY = '"name"'
_PARSE_REFERENCE = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = "urn:nfo:bench"
YANG = Path(__file__).parent / "yang"
REF = Path(__file__).resolve().parents[2] / "shared" / "ref" / "netopeer2"


def entries(lst: str, start: int, stop: int, attrs: str = "") -> str:
    return "".join(f"<{lst}{attrs}><name>e{k}</name><value>{k}</value></{lst}>"
                   for k in range(start, stop))


def config(body: str) -> str:
    return f'<config xmlns="{NC}"><bench xmlns="{NS}" xmlns:nc="{NC}">{body}</bench></config>'


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


class Target:
    """Something the workload runs against: edit a config, get-config a list."""

    name: str

    def edit(self, xml: str) -> None:
        raise NotImplementedError

    def get(self, lst: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def rss(self) -> float:
        """The server's resident memory (MB)."""
        return math.nan


class _Ncclient(Target):
    """A NETCONF server driven by one ncclient session, ``m``."""

    m: Any

    def edit(self, xml: str) -> None:
        self.m.edit_config(target="running", config=xml)

    def get(self, lst: str) -> None:
        self.m.get_config("running", filter=("subtree", f'<bench xmlns="{NS}"><{lst}/></bench>'))


class Netconf(_Ncclient):
    """``nfo serve`` of one build, driven by one ncclient session."""

    def __init__(self, name: str, python: str, state: Path) -> None:
        self.name = name
        self.python = python
        self.state = state
        self._serve(fresh=True)

    def _serve(self, *, fresh: bool) -> float:
        """Start the server and connect; the seconds until it served."""
        t = time.perf_counter()
        self.server = Server.start(self.name, self.python, self.state, restconf=False,
                                   netconf=True, yang_dirs=(YANG,), fresh=fresh)
        started = time.perf_counter() - t
        try:
            self.m = manager.connect(host="127.0.0.1", port=self.server.netconf_port,
                                     username="admin", password=PASSWORD,
                                     hostkey_verify=False, look_for_keys=False,
                                     allow_agent=False, timeout=600)
        except BaseException:
            self.server.stop()
            raise
        return started

    def restart(self) -> float:
        """Stop the server, start it again on its state: seconds until it serves."""
        self.close()
        return self._serve(fresh=False)

    def rss(self) -> float:
        return rss_mb(self.server.proc.pid)

    def close(self) -> None:
        try:
            self.m.close_session()
        finally:
            self.server.stop()


class Netopeer2(_Ncclient):
    """The reference build of netopeer2 on sysrepo, with the benchmark module, driven
    by one ncclient session with a key of its own."""

    name = "netopeer2"

    def __init__(self, ref: Path, state: Path) -> None:
        self.run = ref / "run"
        self.state = state
        state.mkdir(parents=True)
        key = state / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        r = subprocess.run([str(self.run), "start", str(state / "np2"), str(port),
                            str(key) + ".pub", str(YANG / "nfo-bench.yang")],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise SystemExit(f"netopeer2 did not start:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        try:
            self.m = manager.connect(host="127.0.0.1", port=port, username=getpass.getuser(),
                                     key_filename=str(key), hostkey_verify=False,
                                     look_for_keys=False, allow_agent=False, timeout=600)
        except BaseException:
            self._stop()
            raise

    def _stop(self) -> None:
        subprocess.run([str(self.run), "stop", str(self.state / "np2")], capture_output=True,
                       check=False)

    def rss(self) -> float:
        pid = (self.state / "np2" / "netopeer2-server.pid").read_text().split()[0]
        return rss_mb(int(pid))

    def close(self) -> None:
        try:
            self.m.close_session()
        finally:
            self._stop()


class Api(Target):
    """The same operations through this build's datastore API, in this process."""

    name = "datastore API"

    def __init__(self, state: Path) -> None:
        self.loop = asyncio.new_event_loop()

        async def go() -> Datastore:
            ds = Datastore.open(Schema(extra_dirs=[YANG]), SqliteStorage(state / "ref.db"))
            await ds.start()
            return ds
        self.ds = self.loop.run_until_complete(go())
        self.session = self.ds.internal_session("bench")

    def edit(self, xml: str) -> None:
        body = xml[xml.index("<bench"):-len("</config>")]
        self.loop.run_until_complete(self.session.edit("running", body, "xml"))

    def get(self, lst: str) -> None:
        with self.ds.get("running", f"/nfo-bench:bench/{lst}") as t:
            t.print("xml")

    def libyang_alone(self, text: str, fmt: Fmt) -> float:
        """Seconds libyang takes to parse ``text`` (parse-only, strict, no state) and
        validate it whole."""
        ctx = self.ds.schema.cdata
        t = time.perf_counter()
        root = parse_data(ctx, text, fmt, parse_opts=_PARSE_REFERENCE)
        holder = ffi.new("struct lyd_node **", root)
        try:
            if lib.lyd_validate_all(holder, ctx, lib.LYD_VALIDATE_NO_STATE,
                                    ffi.NULL) != lib.LY_SUCCESS:
                raise SystemExit("the reference data does not validate")
            return time.perf_counter() - t
        finally:
            lib.lyd_free_all(holder[0])

    def running_json(self) -> str:
        with self.ds.get("running") as t:
            return t.print(Fmt.JSON)

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.run_until_complete(self.ds.close())
        self.loop.close()


class Results:
    def __init__(self, targets: list[Target]) -> None:
        self.names = [t.name for t in targets]
        self.rows: list[tuple[str, dict[str, float]]] = []
        """(measure, seconds per target)"""
        self.notes: list[str] = []
        """Figures beside the table: references and what they are to."""

    def add(self, label: str, samples: dict[str, list[float]],
            how: Callable[[list[float]], float]) -> None:
        self.rows.append((label, {k: how(v) for k, v in samples.items()}))


def ms(s: float) -> str:
    v = s * 1e3
    return f"{v:.2f} ms" if v < 100 else f"{v:.0f} ms"


def measure(targets: list[Target], args: argparse.Namespace) -> Results:
    rounds = args.rounds
    res = Results(targets)

    def order(r: int) -> list[Target]:
        return targets if r % 2 == 0 else targets[::-1]

    def samples() -> dict[str, list[float]]:
        return {t.name: [] for t in targets}

    small = config(entries("small", 0, 10))
    for t in targets:
        t.edit(small)

    per = math.ceil(args.gets / rounds)
    get10 = samples()
    for r in range(rounds):
        for t in order(r):
            get10[t.name] += timed(lambda t=t: t.get("small"), per)
    res.add(f"get-config, 10 entries: median ({per * rounds} each)", get10, statistics.median)
    res.add("get-config, 10 entries: p99", get10, lambda v: pct(v, 0.99))

    bulk = config(entries("bulk", 0, args.bulk))
    remove = config(entries("bulk", 0, args.bulk, ' nc:operation="remove"'))
    create, getbulk = samples(), samples()
    api = next(t for t in targets if isinstance(t, Api))
    data = bulk[bulk.index("<bench"):-len("</config>")]
    alone: list[float] = []
    for r in range(rounds):
        for t in order(r):
            create[t.name] += timed(lambda t=t: t.edit(bulk), 1)
            getbulk[t.name] += timed(lambda t=t: t.get("bulk"), 2)
            t.edit(remove)
        alone.append(api.libyang_alone(data, Fmt.XML))
    res.add(f"edit-config creating {args.bulk:,} entries: median of {rounds}", create,
            statistics.median)
    ref = statistics.median(alone)
    res.notes.append(
        f"reference: libyang alone parsing and validating those {args.bulk:,} entries "
        f"(XML, from memory, median of {rounds}): {ms(ref)}; edit-config / libyang alone: "
        + ", ".join(f"{n} {statistics.median(create[n]) / ref:.2f}" for n in res.names))
    res.add(f"get-config, those {args.bulk:,} entries: median of {2 * rounds}", getbulk,
            statistics.median)

    have = 0
    extra = 10**7
    per = math.ceil(args.edits / rounds)
    for size in args.sizes:
        grow = config(entries("entry", have, size))
        for t in targets:
            t.edit(grow)
        have = size
        one = samples()
        for r in range(rounds):
            for t in order(r):
                for _ in range(per):
                    extra += 1
                    xml = config(f"<entry><name>x{extra}</name><value>1</value></entry>")
                    one[t.name] += timed(lambda t=t, xml=xml: t.edit(xml), 1)
        res.add(f"single-entry edit-config at {size:,} entries: median of {per * rounds}", one,
                statistics.median)
    at_rest(targets, bulk, res)
    return res


def at_rest(targets: list[Target], bulk: str, res: Results) -> None:
    """Memory with the bulk entries in place, and nfo serve restarted on them."""
    for t in targets:
        t.edit(bulk)
    api = next(t for t in targets if isinstance(t, Api))
    data = api.running_json()
    held = f"{data.count(NAME_KEY):,} entries in all"
    time.sleep(1)
    rss = {t.name: t.rss() for t in targets if not isinstance(t, Api)}
    res.notes.append(f"resident memory with {held} (VmRSS, MB): " + ", ".join(
        f"{n} {v:.0f}" for n, v in rss.items())
        + (f"; this/netopeer2 {rss['this'] / rss['netopeer2']:.2f}" if "netopeer2" in rss
           else ""))
    ref = statistics.median(api.libyang_alone(data, Fmt.JSON) for _ in range(3))
    again = {t.name: t.restart() for t in targets if isinstance(t, Netconf)}
    after = {t.name: t.rss() for t in targets if isinstance(t, Netconf)}
    res.notes.append(
        f"restart of nfo serve with {held}, process start to serving: "
        + ", ".join(f"{n} {v:.2f} s" for n, v in again.items())
        + f"; reference: libyang alone parsing and validating that data (JSON): {ref:.2f} s"
        + "; restart / reference: " + ", ".join(f"{n} {v / ref:.2f}" for n, v in again.items())
        + "; VmRSS after the restart (MB): " + ", ".join(f"{n} {v:.0f}"
                                                        for n, v in after.items()))


def report(res: Results, against: bool, np2: bool) -> None:
    cols = ["this"] + (["other", "this/other"] if against else []) + [
        "datastore API", "this/API"] + (["netopeer2", "this/np2"] if np2 else [])
    w = max(len(r[0]) for r in res.rows) + 1
    print(f"{'measure':<{w}}" + "".join(f"{c:>14}" for c in cols))
    for label, v in res.rows:
        cells = [ms(v["this"])]
        if against:
            cells += [ms(v["other"]), f"{v['this'] / v['other']:.2f}"]
        cells += [ms(v["datastore API"]), f"{v['this'] / v['datastore API']:.2f}"]
        if np2:
            cells += [ms(v["netopeer2"]), f"{v['this'] / v['netopeer2']:.2f}"]
        print(f"{label:<{w}}" + "".join(f"{c:>14}" for c in cells))
    for note in res.notes:
        print(note)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="1000,10000,100000",
                    help="list sizes for the single-entry edit")
    ap.add_argument("--gets", type=int, default=1000, help="10-entry get-configs per target")
    ap.add_argument("--edits", type=int, default=50, help="single-entry edits per size")
    ap.add_argument("--bulk", type=int, default=10_000, help="entries of the bulk edit")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (at least 3 "
                    "for figures worth quoting)")
    add_build_arguments(ap)
    ap.add_argument("--netopeer2", type=Path, default=REF, metavar="DIR",
                    help=f"netopeer2's relocatable build (default {REF}; skipped if absent)")
    ap.add_argument("--no-netopeer2", action="store_true", help="do not measure netopeer2")
    args = ap.parse_args()
    if args.smoke:
        args.sizes, args.gets, args.edits, args.bulk, args.rounds = "100,300", 20, 4, 200, 2
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    print(f"this:  {describe(sys.executable)}")
    if args.against:
        print(f"other: {describe(args.against)}")
    targets: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="nfo-bench-nc-") as d:
        tmp = Path(d)
        try:
            targets.append(Netconf("this", sys.executable, tmp / "this"))
            if args.against:
                targets.append(Netconf("other", args.against, tmp / "other"))
            (tmp / "api").mkdir()
            targets.append(Api(tmp / "api"))
            np2 = not args.no_netopeer2 and (args.netopeer2 / "run").exists()
            if np2:
                targets.append(Netopeer2(args.netopeer2, tmp / "netopeer2"))
            else:
                why = ("--no-netopeer2" if args.no_netopeer2
                       else f"no build at {args.netopeer2}")
                print(f"netopeer2: not measured ({why})")
            res = measure(targets, args)
        finally:
            for t in targets:
                t.close()
    print(f"NETCONF over SSH on 127.0.0.1 (ncclient, TICK 1 ms), {args.rounds} alternating "
          "rounds" + (", netopeer2 2.4.5 / sysrepo 3.7.11 in the same run" if np2 else ""))
    report(res, bool(args.against), np2)


if __name__ == "__main__":
    main()
