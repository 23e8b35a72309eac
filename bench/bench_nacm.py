"""What access control costs: get-config of N entries (default 10,000), a single-entry
edit and one edit creating N/10 entries by a user under 100 rules, against the same
requests with NACM off, in process.

The user ``noc`` is in a group whose one rule-list holds 100 rules of every kind: 60
path rules with key predicates (40 hide whole instances, 20 an instance's parameters),
4 on VIM accounts, 10 module rules, 15 rpc-name and 10 notification-name rules, and
last the rule that lets it write instances (so a write is checked past all the others).
Each round measures both settings back to back (``enable-nacm`` true, then false, in
alternating order), so that the machine's noise hits both alike; the ratio is the
median with NACM on over the median with it off.  Requests go through a datastore
session as the NETCONF front end calls it (read + XML encoding; ``Session.edit``),
without the transport, which only adds the same cost to both sides.

Run: ``.venv/bin/python bench/bench_nacm.py [--entries 10000] [--rounds 7]``;
``--smoke`` is a seconds-long run for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from nfo.datastore import Datastore, Identity, Session, SqliteStorage
from nfo.protocol.read import ReadQuery, encode, read
from nfo.schema import Fmt, Schema
from nfo.schema.context import nfo_yang_dir

INST = "/nfo-instances:nf-instances"
NS = "urn:nfo:instances"


def instances(n: int) -> str:
    entries = [{"name": f"i{k}", "descriptor": "udp-echo", "vim": "local",
                "parameter": [{"name": "port", "value": str(20000 + k % 40000)}]}
               for k in range(n)]
    return json.dumps({"nfo-instances:nf-instances": {"nf-instance": entries}})


def hundred_rules(n: int) -> list[dict[str, str]]:
    rules: list[dict[str, str]] = []

    def add(action: str, ops: str, **what: str) -> None:
        rules.append({"name": f"r{len(rules)}", "action": action, "access-operations": ops,
                      **{k.replace("_", "-"): v for k, v in what.items()}})

    step = max(1, n // 60)
    for k in range(40):
        add("deny", "read", path=f"{INST}/nf-instance[name='i{k * step}']")
    for k in range(40, 60):
        add("deny", "read", path=f"{INST}/nf-instance[name='i{k * step}']/parameter")
    for k in range(4):
        add("deny", "read", path=f"/nfo-vim:vims/vim[name='x{k}']")
    for mod in ("nfo-catalog", "nfo-vim", "ietf-netconf-monitoring", "ietf-yang-library",
                "nfo-users", "ietf-restconf-monitoring", "ietf-netconf-notifications",
                "nfo-security", "ietf-origin", "ietf-netconf-nmda"):
        add("permit", "read", module_name=mod)
    for rpc in ("kill-session", "delete-config", "copy-config", "lock", "unlock",
                "commit", "validate", "cancel-commit", "discard-changes", "get-schema",
                "create-subscription", "edit-data", "restart", "redeploy", "set-password"):
        add("deny" if rpc in ("kill-session", "delete-config") else "permit", "exec",
            rpc_name=rpc)
    for notif in ("nf-instance-state-change", "netconf-config-change", "netconf-session-start",
                  "netconf-session-end", "netconf-confirmed-commit", "netconf-capability-change",
                  "replayComplete", "notificationComplete", "vim-state", "other"):
        add("permit", "read", notification_name=notif)
    add("permit", "create update delete", path=INST)
    assert len(rules) == 100
    return rules


def nacm(n: int, enabled: bool) -> str:
    return json.dumps({"ietf-netconf-acm:nacm": {
        "enable-nacm": enabled,
        "groups": {"group": [{"name": "noc", "user-name": ["noc"]}]},
        "rule-list": [{"name": "noc", "group": ["noc"], "rule": hundred_rules(n)}]}})


def get_config(s: Session) -> int:
    with read(s, ReadQuery("running")) as (tree, _):
        return len(encode(tree, Fmt.XML))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=10, help="requests of each kind per round")
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run for CI")
    args = ap.parse_args()
    if args.smoke:
        args.entries, args.rounds, args.calls = 300, 2, 2
    with tempfile.TemporaryDirectory() as tmp:
        ds = Datastore.open(Schema(), SqliteStorage(Path(tmp) / "nfo.db"))
        await ds.start()
        try:
            await run(ds, args)
        finally:
            await ds.close()


async def run(ds: Datastore, args: argparse.Namespace) -> None:
    async with ds.internal_session("bench") as admin:
        await admin.edit("running", (nfo_yang_dir() / "nfo-demo-catalog.json").read_text(),
                         Fmt.JSON)
        await admin.edit("running", instances(args.entries), Fmt.JSON)
    user = ds.session(Identity("noc"))
    times: dict[tuple[str, bool], list[float]] = {}
    sizes: dict[bool, int] = {}
    value = 0
    try:
        for r in range(args.rounds):
            for enabled in ((True, False) if r % 2 == 0 else (False, True)):
                async with ds.internal_session("bench") as admin:
                    await admin.edit("running", nacm(args.entries, enabled), Fmt.JSON)
                for _ in range(args.calls):
                    t = time.perf_counter()
                    sizes[enabled] = get_config(user)
                    times.setdefault(("get-config", enabled), []).append(
                        time.perf_counter() - t)
                    value += 1
                    edit = (f'<nf-instances xmlns="{NS}"><nf-instance><name>i{args.entries - 1}'
                            f"</name><description>v{value}</description></nf-instance>"
                            "</nf-instances>")
                    t = time.perf_counter()
                    await user.edit("running", edit)
                    times.setdefault(("single edit", enabled), []).append(
                        time.perf_counter() - t)
                bulk = json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
                    {"name": f"b{k}", "descriptor": "udp-echo", "vim": "local",
                     "parameter": [{"name": "port", "value": str(10000 + k)}]}
                    for k in range(args.entries // 10)]}})
                t = time.perf_counter()
                await user.edit("running", bulk, Fmt.JSON)
                times.setdefault((f"create {args.entries // 10}", enabled), []).append(
                    time.perf_counter() - t)
                async with ds.internal_session("bench") as admin:
                    await admin.edit("running", json.dumps({"nfo-instances:nf-instances": {
                        "nf-instance": [{"@": {"ietf-netconf:operation": "delete"},
                                         "name": f"b{k}"}
                                        for k in range(args.entries // 10)]}}), Fmt.JSON)
    finally:
        await user.close()
    print(f"access control: user 'noc' under 100 rules vs enable-nacm false, {args.entries} "
          f"nf-instances, {args.rounds} rounds x {args.calls} calls, in process")
    print(f"(the filtered get-config is {sizes[True]:,} bytes of XML, the full one "
          f"{sizes[False]:,})")
    print(f"{'request':<30} {'NACM off':>11} {'NACM on':>11} {'on/off':>7}")
    for what in ("get-config", "single edit", f"create {args.entries // 10}"):
        off = statistics.median(times[(what, False)])
        on = statistics.median(times[(what, True)])
        label = f"{what} ({args.entries} entries)"
        print(f"{label:<30} {off * 1e3:>8.2f} ms {on * 1e3:>8.2f} ms {on / off:>7.2f}")


if __name__ == "__main__":
    asyncio.run(main())
