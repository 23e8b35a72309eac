"""Reading a large edit-config: nfo.wire.xml.read against ElementTree and bare expat.

One edit-config whose ``<config>`` holds N list entries (three elements each)
is read, in one process and in alternating order, by:

- ``read (config opaque)``: :func:`nfo.wire.xml.read` with ``<config>``
  opaque, as the NETCONF front end reads an edit-config;
- ``read + content_xml``: the same, then the config content cut for libyang;
- ``read (all elements)``: every element materialised, for comparison;
- ``ElementTree.fromstring``: the whole tree built by ElementTree;
- ``bare expat``: one expat parse with no handlers at all (the floor).

Reported: the median and minimum wall time per variant, and the ratios of each
median to those of ElementTree and bare expat.

Run: ``.venv/bin/python bench/bench_xml.py [--entries 10000] [--runs 21]``;
``--smoke`` is a seconds-long run for CI.
"""

from __future__ import annotations

import argparse
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from xml.parsers import expat

from nfo.wire.xml import read

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = "urn:nfo:bench"
CONFIG = (NC, "config")


def edit_config(entries: int) -> bytes:
    body = "".join(f"<bulk><name>e{k}</name><value>{k}</value></bulk>" for k in range(entries))
    return (f'<rpc xmlns="{NC}" message-id="1"><edit-config><target><running/></target>'
            f'<config><bench xmlns="{NS}">{body}</bench></config></edit-config></rpc>').encode()


def variants(data: bytes, entries: int) -> dict[str, Callable[[], object]]:
    def opaque() -> object:
        return read(data, opaque={CONFIG})

    def cut() -> object:
        config = read(data, opaque={CONFIG}).children[0].children[1]
        return config.content_xml()

    def full() -> object:
        return read(data)

    def etree() -> object:
        return ET.fromstring(data)

    def bare() -> object:
        return expat.ParserCreate().Parse(data, True)

    config = read(data, opaque={CONFIG}).children[0].children[1]
    assert config.opaque and config.child_count == 1
    bench = read(data).children[0].children[1].children[0]
    assert bench.child_count == entries
    return {"read (config opaque)": opaque, "read + content_xml": cut,
            "read (all elements)": full, "ElementTree.fromstring": etree, "bare expat": bare}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.entries, args.runs = 500, 3
    data = edit_config(args.entries)
    fns = variants(data, args.entries)
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for r in range(args.runs):
        for name in order if r % 2 == 0 else reversed(order):
            t = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"edit-config with {args.entries:,} entries ({len(data):,} bytes, "
          f"{3 * args.entries + 7:,} elements), {args.runs} runs each, alternating")
    print(f"  {'':24} {'median':>9} {'min':>9} {'/ ElementTree':>14} {'/ bare expat':>13}")
    for name, ts in times.items():
        print(f"  {name:24} {med[name] * 1e3:7.2f}ms {min(ts) * 1e3:7.2f}ms "
              f"{med[name] / med['ElementTree.fromstring']:14.2f} "
              f"{med[name] / med['bare expat']:13.2f}")


if __name__ == "__main__":
    main()
