"""Datastore benchmark: how nfo's running datastore scales with the number of NF instances.

For each size N (default 1,000, 10,000 and 100,000 ``nf-instance`` entries) the
benchmark opens a fresh datastore in its own temporary state directory (SQLite,
nfo's YANG modules, the demo catalog) and measures, through the public API only:

* bulk load: one merge edit creating all N instances (seconds and instances/s);
* single-entry create: one merge edit adding one new instance (median and p90);
* single-leaf modify: one merge edit toggling ``admin-state`` of one instance
  between ``disabled`` and ``enabled``, so every edit really changes data;
* full read: ``ds.get("running")`` (a copy) plus printing it as JSON and
  freeing the copy (median of 5);
* single-entry read: ``ds.get("running", <xpath of one instance>)`` plus print;
* restart: close the datastore, then reopen it from the same state directory
  (schema compile, snapshot load, commit-log replay, full validation), with
  the schema compile alone timed separately, and memory (current ``VmRSS``
  and the process-wide peak ``ru_maxrss``);
* a reference measured in the same run on the same data: one full libyang
  re-validation (``lyd_validate_all``) of the N-instance running tree, the
  floor a sysrepo-style datastore pays on every edit.  Edit latencies are also
  given as a ratio to it, which stays meaningful on a noisy shared machine.

Every edit and read is checked (edits must report changes, reads must return
the instance, and a validation guard times three invalid edits that must be
refused without changing anything: a missing mandatory parameter, an unknown
descriptor, deleting the descriptor all N instances use; the benchmark stops
if one is accepted).  One untimed warm-up precedes each latency loop; edits
are durable when they return (SQLite WAL with ``synchronous=FULL``), so the
latencies include an fsync on whatever file system ``--tmpdir`` is on.

A linearity table gives, for each metric, the ratio between consecutive sizes
and the growth exponent log(ratio)/log(size ratio): about 0 for constant cost,
1 for linear, above 1 for worse than linear.

Run from the repository root::

    .venv/bin/python bench/bench_datastore.py --sizes 1000,10000,100000
    .venv/bin/python bench/bench_datastore.py --sizes 1000 --iterations 20 --json out.json
    .venv/bin/python bench/bench_datastore.py --tmpdir /var/tmp   # state on another disk
    .venv/bin/python bench/bench_datastore.py --smoke   # seconds-long run (CI)

The table goes to stdout, progress to stderr; ``--json FILE`` also writes the raw
samples.  Nothing touches the network.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import itertools
import json
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _libyang import ffi, lib

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore
from nfo.datastore import Datastore, Session
from nfo.errors import NfoError
from nfo.schema.data import parse_data

DEFAULT_SIZES = (1_000, 10_000, 100_000)
FULL_READ_REPS = 5
REVALIDATE_REPS = 5
INSTANCES_XPATH = "/nfo-instances:nf-instances/nf-instance"

_PARSE_REFERENCE = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE

# netopeer2 2.4.5 / sysrepo 3.7.11 on this kind of machine: quoted, not measured here.
NETOPEER2_REFERENCE: dict[str, Any] = {
    "software": "netopeer2 2.4.5 / sysrepo 3.7.11",
    "single_entry_edit_ms": {"1000": 13.0, "10000": 107.0, "100000": 1000.0},
    "create_10000_entries_s": [0.35, 0.53],
    "note": "quoted figures, not measured by this benchmark; 100k is approximate",
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- data -----------------------------------------------------------------------

def instance(i: int) -> dict[str, Any]:
    return {
        "name": f"nf{i}",
        "descriptor": "udp-echo",
        "parameter": [{"name": "port", "value": str(1024 + i % 64_000)}],
    }


def instances_doc(items: Sequence[dict[str, Any]]) -> str:
    return json.dumps({"nfo-instances:nf-instances": {"nf-instance": list(items)}})


def admin_state_doc(i: int, state: str) -> str:
    return instances_doc([{"name": f"nf{i}", "admin-state": state}])


def delete_doc(container: str, lst: str, key: str, value: str) -> str:
    return json.dumps({container: {lst: [{key: value, "@": {"ietf-netconf:operation": "delete"}}]}})


# Edits the datastore must refuse; a fast edit that skipped these checks measures nothing.
GUARDS: list[tuple[str, str]] = [
    ("reject: create without mandatory param",
     instances_doc([{"name": "bad-1", "descriptor": "udp-echo"}])),
    ("reject: unknown descriptor (leafref)",
     instances_doc([{**instance(0), "name": "bad-2", "descriptor": "no-such-descriptor"}])),
    ("reject: delete descriptor all N use",
     delete_doc("nfo-catalog:catalog", "nf-descriptor", "id", "udp-echo")),
]


def instance_xpath(i: int) -> str:
    return f"{INSTANCES_XPATH}[name='nf{i}']"


def count_instances(ds: Datastore) -> int:
    return len(ds.tree("running").match(INSTANCES_XPATH))


# -- statistics and memory -------------------------------------------------------

def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def p90(xs: Sequence[float]) -> float:
    if not xs:
        return math.nan
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=10, method="inclusive")[8]


def vmrss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def maxrss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


# -- measurement -------------------------------------------------------------------

@dataclass
class SizeResult:
    size: int
    iterations: int
    bulk_edit_bytes: int = 0
    bulk_load_s: float = math.nan
    create_ms: list[float] = field(default_factory=list)
    modify_ms: list[float] = field(default_factory=list)
    full_read_s: list[float] = field(default_factory=list)
    full_read_bytes: int = 0
    single_read_ms: list[float] = field(default_factory=list)
    guard_ms: dict[str, float] = field(default_factory=dict)
    revalidate_s: list[float] = field(default_factory=list)
    close_s: float = math.nan
    schema_compile_s: float = math.nan
    restart_s: float = math.nan
    replayed_commits: int = 0
    replayed_bytes: int = 0
    instances_after_restart: int = 0
    vmrss_open_kib: int = 0
    vmrss_loaded_kib: int = 0
    vmrss_restarted_kib: int = 0
    maxrss_kib: int = 0

    def summary(self) -> dict[str, float]:
        reval = median(self.revalidate_s) * 1e3
        return {
            "bulk_load_s": self.bulk_load_s,
            "bulk_load_per_s": self.size / self.bulk_load_s,
            "create_median_ms": median(self.create_ms),
            "create_p90_ms": p90(self.create_ms),
            "modify_median_ms": median(self.modify_ms),
            "modify_p90_ms": p90(self.modify_ms),
            "full_read_median_ms": median(self.full_read_s) * 1e3,
            "single_read_median_ms": median(self.single_read_ms),
            "revalidate_median_ms": reval,
            "create_over_revalidate": median(self.create_ms) / reval,
            "modify_over_revalidate": median(self.modify_ms) / reval,
            "restart_s": self.restart_s,
            "schema_compile_s": self.schema_compile_s,
            "vmrss_loaded_mib": self.vmrss_loaded_kib / 1024,
            "vmrss_restarted_mib": self.vmrss_restarted_kib / 1024,
            "maxrss_mib": self.maxrss_kib / 1024,
        }


async def timed_edit(s: Session, text: str) -> float:
    t0 = time.perf_counter()
    changes = await s.edit("running", text, "json")
    dt = time.perf_counter() - t0
    if not changes:
        raise RuntimeError(f"edit made no change, so it measured nothing: {text[:200]}")
    return dt


def full_revalidation(ds: Datastore, text: str, reps: int) -> list[float]:
    """Parse ``text`` once, then time ``lyd_validate_all`` over the whole tree."""
    ctx = ds.schema.cdata
    root = parse_data(ctx, text, "json", parse_opts=_PARSE_REFERENCE)
    holder = ffi.new("struct lyd_node **", root)
    out: list[float] = []
    try:
        for _ in range(reps):
            t0 = time.perf_counter()
            rc = lib.lyd_validate_all(holder, ctx, lib.LYD_VALIDATE_NO_STATE, ffi.NULL)
            out.append(time.perf_counter() - t0)
            if rc != lib.LY_SUCCESS:
                raise RuntimeError(f"reference validation failed (libyang rc {rc})")
    finally:
        if holder[0] != ffi.NULL:
            lib.lyd_free_all(holder[0])
    return out


async def measure(n: int, iterations: int, state_path: Path) -> SizeResult:
    r = SizeResult(size=n, iterations=iterations)
    state = StateDir(state_path)
    r.vmrss_open_kib = vmrss_kib()
    ds = await open_datastore(state, [])
    try:
        s = ds.internal_session("bench")

        # Bulk load: one edit creating all N instances.
        bulk = instances_doc([instance(i) for i in range(n)])
        r.bulk_edit_bytes = len(bulk)
        log(f"N={n}: bulk load ({len(bulk) / 1e6:.1f} MB of JSON)")
        gc.collect()
        r.bulk_load_s = await timed_edit(s, bulk)
        del bulk
        got = count_instances(ds)
        if got != n:
            raise RuntimeError(f"bulk load left {got} instances, expected {n}")
        r.vmrss_loaded_kib = vmrss_kib()

        # Full read (also yields the text for the re-validation reference).
        log(f"N={n}: full read x{FULL_READ_REPS}")
        text = ""
        for _ in range(FULL_READ_REPS):
            t0 = time.perf_counter()
            tree = ds.get("running")
            text = tree.print("json")
            tree.free()
            r.full_read_s.append(time.perf_counter() - t0)
        r.full_read_bytes = len(text)

        # Reference: one full libyang validation of the same N-instance tree.
        log(f"N={n}: full re-validation reference x{REVALIDATE_REPS}")
        r.revalidate_s = full_revalidation(ds, text, REVALIDATE_REPS)
        del text

        # Single-entry read, spread over the list.
        log(f"N={n}: single-entry read x{iterations}")
        ds.get("running", instance_xpath(n - 1)).free()  # warm-up, untimed
        for k in range(iterations):
            i = (k * 7919 + 13) % n
            t0 = time.perf_counter()
            tree = ds.get("running", instance_xpath(i))
            one = tree.print("json")
            tree.free()
            r.single_read_ms.append((time.perf_counter() - t0) * 1e3)
            if f'"nf{i}"' not in one:
                raise RuntimeError(f"single read of nf{i} returned {one[:200]}")

        # Single-entry create: each iteration adds a new instance (one warm-up first).
        log(f"N={n}: single-entry create x{iterations}")
        gc.collect()
        await timed_edit(s, instances_doc([instance(n)]))
        for k in range(iterations):
            r.create_ms.append(await timed_edit(s, instances_doc([instance(n + 1 + k)])) * 1e3)

        # Single-leaf modify: toggle admin-state of one instance in the middle.
        log(f"N={n}: single-leaf modify x{iterations}")
        target = n // 2
        docs = [admin_state_doc(target, st) for st in ("disabled", "enabled")]
        gc.collect()
        await timed_edit(s, docs[0])
        for k in range(iterations):
            r.modify_ms.append(await timed_edit(s, docs[(k + 1) % 2]) * 1e3)

        # Validation guard: invalid edits must still be refused, and change nothing.
        log(f"N={n}: validation guard ({len(GUARDS)} invalid edits)")
        before = ds.info("running").revision
        for label, doc in GUARDS:
            t0 = time.perf_counter()
            try:
                await s.edit("running", doc, "json")
            except NfoError:
                r.guard_ms[label] = (time.perf_counter() - t0) * 1e3
            else:
                raise RuntimeError(f"the datastore accepted an invalid edit ({label}): {doc}")
        if ds.info("running").revision != before:
            raise RuntimeError("a refused edit changed the running revision")

        expected = n + 1 + iterations
        r.replayed_commits, r.replayed_bytes = ds.storage.since_snapshot("running")
        revision = ds.info("running").revision
    finally:
        t0 = time.perf_counter()
        await ds.close()
        r.close_s = time.perf_counter() - t0
    del ds
    gc.collect()

    # Restart: reopen from the same state directory.
    log(f"N={n}: restart ({r.replayed_commits} commits to replay after the snapshot)")
    t0 = time.perf_counter()
    state.schema([])
    r.schema_compile_s = time.perf_counter() - t0
    gc.collect()
    t0 = time.perf_counter()
    ds = await open_datastore(state, [])
    r.restart_s = time.perf_counter() - t0
    try:
        r.vmrss_restarted_kib = vmrss_kib()
        r.instances_after_restart = count_instances(ds)
        if r.instances_after_restart != expected or ds.info("running").revision != revision:
            raise RuntimeError(
                f"after restart: {r.instances_after_restart} instances at revision "
                f"{ds.info('running').revision}, expected {expected} at {revision}")
    finally:
        await ds.close()
    r.maxrss_kib = maxrss_kib()
    return r


# -- reporting ---------------------------------------------------------------------

Row = tuple[str, Callable[[SizeResult], float], str]

ROWS: list[Row] = [
    ("bulk load, one edit (s)", lambda r: r.bulk_load_s, "{:.3f}"),
    ("bulk load (instances/s)", lambda r: r.size / r.bulk_load_s, "{:,.0f}"),
    ("single create, median (ms)", lambda r: median(r.create_ms), "{:.2f}"),
    ("single create, p90 (ms)", lambda r: p90(r.create_ms), "{:.2f}"),
    ("single-leaf modify, median (ms)", lambda r: median(r.modify_ms), "{:.2f}"),
    ("single-leaf modify, p90 (ms)", lambda r: p90(r.modify_ms), "{:.2f}"),
    ("full read get+print, median (ms)", lambda r: median(r.full_read_s) * 1e3, "{:.1f}"),
    ("  full JSON size (MB)", lambda r: r.full_read_bytes / 1e6, "{:.2f}"),
    ("single-entry read, median (ms)", lambda r: median(r.single_read_ms), "{:.3f}"),
    ("REF full re-validation, median (ms)", lambda r: median(r.revalidate_s) * 1e3, "{:.2f}"),
    ("create median / re-validation", lambda r: median(r.create_ms)
     / (median(r.revalidate_s) * 1e3), "{:.3g}x"),
    ("modify median / re-validation", lambda r: median(r.modify_ms)
     / (median(r.revalidate_s) * 1e3), "{:.3g}x"),
    *[(label, (lambda r, k=label: r.guard_ms.get(k, math.nan)), "{:.2f}")
      for label, _ in GUARDS],
    ("close (s)", lambda r: r.close_s, "{:.3f}"),
    ("restart, reopen total (s)", lambda r: r.restart_s, "{:.3f}"),
    ("  schema compile alone (s)", lambda r: r.schema_compile_s, "{:.3f}"),
    ("  commits replayed after snapshot", lambda r: r.replayed_commits, "{:.0f}"),
    ("VmRSS before open (MiB)", lambda r: r.vmrss_open_kib / 1024, "{:.0f}"),
    ("VmRSS after bulk load (MiB)", lambda r: r.vmrss_loaded_kib / 1024, "{:.0f}"),
    ("VmRSS after restart (MiB)", lambda r: r.vmrss_restarted_kib / 1024, "{:.0f}"),
    ("ru_maxrss, process peak (MiB)", lambda r: r.maxrss_kib / 1024, "{:.0f}"),
]

LINEAR_ROWS: list[tuple[str, Callable[[SizeResult], float]]] = [
    ("bulk load", lambda r: r.bulk_load_s),
    ("single create median", lambda r: median(r.create_ms)),
    ("single modify median", lambda r: median(r.modify_ms)),
    ("full read", lambda r: median(r.full_read_s)),
    ("single-entry read", lambda r: median(r.single_read_ms)),
    ("REF full re-validation", lambda r: median(r.revalidate_s)),
    (GUARDS[-1][0], lambda r: r.guard_ms.get(GUARDS[-1][0], math.nan)),
    ("restart", lambda r: r.restart_s),
    ("restart minus schema compile", lambda r: r.restart_s - r.schema_compile_s),
    ("VmRSS after bulk load - before", lambda r: r.vmrss_loaded_kib - r.vmrss_open_kib),
]

LABEL_W = 38
COL_W = 13


def short(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def render(results: Sequence[SizeResult]) -> str:
    lines: list[str] = []
    rs = sorted(results, key=lambda r: r.size)
    head = "N instances in running".ljust(LABEL_W) + "".join(
        f"{r.size:>{COL_W},}" for r in rs)
    lines += [head, "-" * len(head)]
    for label, get, fmt in ROWS:
        lines.append(label.ljust(LABEL_W) + "".join(
            f"{fmt.format(get(r)):>{COL_W}}" for r in rs))
    lines.append("iterations: " + ", ".join(f"{r.size:,}: {r.iterations}" for r in rs)
                 + f"; full read x{FULL_READ_REPS}, re-validation x{REVALIDATE_REPS}")

    if len(rs) > 1:
        lines += ["", "Linearity: ratio between consecutive sizes (growth exponent; "
                      "0 = constant, 1 = linear, >1 = worse than linear)"]
        pairs = list(itertools.pairwise(rs))
        head = "metric".ljust(LABEL_W) + "".join(
            f"{f'{short(b.size)}/{short(a.size)}':>{COL_W + 8}}" for a, b in pairs)
        lines += [head, "-" * len(head)]
        for label, get in LINEAR_ROWS:
            cells = []
            for a, b in pairs:
                va, vb = get(a), get(b)
                if va > 0 and vb > 0:  # False for NaN too
                    ratio = vb / va
                    exp = math.log(ratio) / math.log(b.size / a.size)
                    cells.append(f"{ratio:.2f}x (^{exp:.2f})")
                else:
                    cells.append("n/a")
            lines.append(label.ljust(LABEL_W) + "".join(f"{c:>{COL_W + 8}}" for c in cells))

    ref = NETOPEER2_REFERENCE
    lines += ["", f"Context: {ref['software']} (quoted, NOT measured by this run):"]
    by_size = {r.size: r for r in rs}
    for size_s, ms in ref["single_entry_edit_ms"].items():
        approx = "about " if size_s == "100000" else ""
        ours = by_size.get(int(size_s))
        mine = (f"   (nfo here: create {median(ours.create_ms):.2f} ms, "
                f"modify {median(ours.modify_ms):.2f} ms)") if ours else ""
        lines.append(f"  single-entry edit at {int(size_s):>7,}: {approx}{ms:g} ms{mine}")
    lo, hi = ref["create_10000_entries_s"]
    ours10k = by_size.get(10_000)
    mine = f"   (nfo here: bulk load {ours10k.bulk_load_s:.2f} s)" if ours10k else ""
    lines.append(f"  10,000-entry create: {lo}-{hi} s{mine}")
    return "\n".join(lines)


def write_json(path: Path, results: Sequence[SizeResult], argv: Sequence[str]) -> None:
    try:
        binding = importlib.metadata.version("libyang")
    except importlib.metadata.PackageNotFoundError:
        binding = "unknown"
    doc = {
        "benchmark": "nfo datastore",
        "argv": list(argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "libyang_python": binding,
        },
        "units": "s for *_s, ms for *_ms, KiB for *_kib, bytes for *_bytes",
        "reference_quoted": NETOPEER2_REFERENCE,
        "sizes": [{**asdict(r), "summary": r.summary()} for r in results],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        msg = f"not a comma-separated list of integers: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES),
                   help="comma-separated instance counts (default 1000,10000,100000)")
    p.add_argument("--iterations", type=int, default=None,
                   help="samples per latency loop (default 50 up to 10k instances, 20 above)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write the raw figures to FILE")
    p.add_argument("--tmpdir", type=Path, default=None, metavar="DIR",
                   help="create the per-size state directories under DIR (default: the "
                        "system temp dir); its file system decides what an fsync costs")
    p.add_argument("--smoke", action="store_true",
                   help="a seconds-long run for CI: sizes 100,300, 3 iterations")
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.iterations = [100, 300], 3
    if args.iterations is not None and args.iterations < 1:
        p.error("--iterations must be at least 1")

    results: list[SizeResult] = []
    for n in args.sizes:
        iterations = args.iterations or (50 if n <= 10_000 else 20)
        with tempfile.TemporaryDirectory(prefix=f"nfo-bench-{n}-", dir=args.tmpdir) as tmp:
            t0 = time.perf_counter()
            results.append(asyncio.run(measure(n, iterations, Path(tmp))))
            log(f"N={n}: done in {time.perf_counter() - t0:.1f} s")
        gc.collect()
    print(render(results))
    if args.json is not None:
        write_json(args.json, results, sys.argv if argv is None else argv)
        log(f"raw figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
