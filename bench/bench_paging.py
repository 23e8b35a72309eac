"""List pagination over RESTCONF: a page of a large list against reading the whole list.

``nfo serve`` runs in its own process with the benchmark module (bench/yang) and N
entries (default 10,000) in its list "entry" (name, a uint32 value, a string note on
two entries in three).  One client (httpx, one keep-alive connection, Basic
authentication as admin, JSON) times GETs of the list resource: the first, a middle
and the last page of ``--page`` entries (``limit``/``offset``), unsorted and sorted by
the number ``value`` and by the string ``note`` (missing values included), a ``where``
filter, and, as the reference in the same run, the whole list without parameters.
A second reference is libyang alone in this process: parsing the same data once, then
printing the whole list (what any server has to do at least to return it all), and
copying it (what a read's private copy costs).

Each figure is the median of ``--requests`` requests (after one warm-up each); the
ratio column divides by the whole-list GET.

Run: ``.venv/bin/python bench/bench_paging.py [--entries 10000] [--page 50]
[--requests 20]``; ``--smoke`` is a seconds-long run (CI).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _servers import PASSWORD, Server, describe

HERE = Path(__file__).resolve().parent
YANG = HERE / "yang"
LIST = "/restconf/data/nfo-bench:bench/entry"
JSON = "application/yang-data+json"


def entries_doc(n: int) -> str:
    return json.dumps({"nfo-bench:bench": {"entry": [
        {"name": f"e{k:06}", "value": (k * 7919) % n,
         **({"note": f"note-{(k * 31) % 997}"} if k % 3 else {})} for k in range(n)]}})


def timed(fn: Callable[[], object], requests: int) -> float:
    fn()
    times = []
    for _ in range(requests):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def libyang_alone(n: int, requests: int) -> dict[str, float]:
    from nfo.schema import Fmt, Schema, Tree

    schema = Schema(extra_dirs=[YANG], with_nfo_modules=False)
    with Tree.parse(schema, entries_doc(n), Fmt.JSON) as tree:
        def copy() -> None:
            tree.extract("/nfo-bench:bench/entry").free()
        return {"libyang alone: print the whole list": timed(lambda: tree.print(Fmt.JSON),
                                                             requests),
                "libyang alone: copy the whole list": timed(copy, requests)}


def run(args: argparse.Namespace) -> None:
    n, size = args.entries, args.page
    print(f"this: {describe(sys.executable)}")
    with tempfile.TemporaryDirectory(prefix="nfo-bench-paging-") as d:
        srv = Server.start("this", sys.executable, Path(d) / "this", restconf=True,
                           netconf=False, yang_dirs=(YANG,))
        try:
            assert srv.restconf_port is not None
            with httpx.Client(base_url=f"http://127.0.0.1:{srv.restconf_port}",
                              auth=("admin", PASSWORD), headers={"Accept": JSON},
                              timeout=600) as c:
                r = c.patch("/restconf/data",
                            content='{"ietf-restconf:data":' + entries_doc(n) + "}",
                            headers={"Content-Type": JSON})
                if r.status_code >= 300:
                    raise SystemExit(f"loading the entries failed: {r.status_code} {r.text}")

                def get(params: dict[str, str], expect: int | None = None) -> Callable[[], None]:
                    def call() -> None:
                        resp = c.get(LIST, params=params)
                        if resp.status_code != 200:
                            raise SystemExit(f"GET {params}: {resp.status_code} {resp.text}")
                        if expect is not None:
                            got = len(resp.json()["nfo-bench:entry"])
                            if got != expect:
                                raise SystemExit(f"GET {params}: {got} entries, not {expect}")
                    return call

                mid, last = str(n // 2), str(n - size)
                page = {"limit": str(size)}
                cases: list[tuple[str, Callable[[], None]]] = [
                    ("reference: GET the whole list", get({}, n)),
                    ("page 1, unsorted", get(page, size)),
                    ("middle page, unsorted", get({**page, "offset": mid}, size)),
                    ("last page, unsorted", get({**page, "offset": last}, size)),
                    ("page 1, sort-by value (uint32)", get({**page, "sort-by": "value"}, size)),
                    ("middle page, sort-by value", get({**page, "sort-by": "value",
                                                        "offset": mid}, size)),
                    ("last page, sort-by value", get({**page, "sort-by": "value",
                                                      "offset": last}, size)),
                    ("page 1, sort-by note (string, 1/3 missing), backwards",
                     get({**page, "sort-by": "note", "direction": "backwards"}, size)),
                    ("page 1, where value < N/2, sort-by value",
                     get({**page, "where": f"value<{n // 2}", "sort-by": "value"}, size)),
                ]
                results = [(name, timed(fn, args.requests)) for name, fn in cases]
        finally:
            srv.stop()
    results += list(libyang_alone(n, args.requests).items())
    whole = results[0][1]
    print(f"\nper-request times (median of {args.requests}), {n:,} entries, pages of {size}; "
          "RESTCONF JSON over one keep-alive connection")
    print(f"{'request':58} {'ms':>9} {'/whole':>7}")
    for name, secs in results:
        print(f"{name:58} {secs * 1000:9.2f} {secs / whole:7.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--page", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.entries, args.page, args.requests = 300, 20, 2
    run(args)


if __name__ == "__main__":
    main()
