"""Crash-test writer for test_durability: drives a real datastore until SIGKILLed.

Usage: python _durability_child.py STATEDIR MODE [ARGS...]

Opens the datastore in STATEDIR with ``nfo.cli.serve.open_datastore`` (exactly
as ``nfo serve`` does) and runs one scenario.  Before a write it prints
``BEGIN <fields>`` and after the write returned ``ACK <revision> <fields>``,
each line flushed: a printed ACK is an acknowledged write, a BEGIN without its
ACK is the write that may have been in flight when the parent killed us.

Modes:

``churn START SEED``
    Loops forever over instances ``nf<START>``, ``nf<START+1>``, ...: creates
    one, toggles ``admin-state`` (and sets a unique ``description``) of a random
    earlier one, deletes the oldest once more than a handful exist, each as its
    own edit, given at random as JSON text, XML text or a tree (each kind of commit
    record).  Fields: ``create NAME PORT``, ``modify NAME ADMIN DESCRIPTION``,
    ``delete NAME``.  Snapshots are made every 17 commits.
``bulk PREFIX COUNT``
    Prints ``START`` and creates COUNT instances ``<PREFIX><i>`` in one edit (XML
    text when PREFIX's digits are odd, else JSON), then prints ``ACK <revision>``
    and sleeps.  Snapshots after every commit.
``oper NAMES``
    Loops forever pushing operational state for the comma-separated
    instances, alternating between owners ``wm`` (oper-status and attempts)
    and ``drv`` (vim-resource-id).  Fields: ``oper OWNER NAME STEP``.
``confirmed NAME [AFTER]``
    Creates instance NAME in candidate, prints ``START``, commits it with
    ``confirmed=True, timeout=3600``, prints ``ACK <revision>``; then makes
    AFTER (default 0) more edits to running while the commit is still
    unconfirmed (each printed as ``ACK <revision>``), prints ``DONE``, sleeps.
``multidelete NAMES``
    Deletes the comma-separated instances in one edit (BEGIN/ACK), sleeps.
``lock``
    Locks running and candidate in one session, prints ``LOCKED``, sleeps.
``private START``
    Loops forever: a session with a private candidate (two of them, in turn) creates
    ``nf<k>`` in its candidate, another session then creates ``nf<k+1>`` in running
    directly, and the private candidate is committed with a comment (rebased on that
    commit).  Fields as ``churn``'s creates; only running's writes are BEGIN/ACK.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore
from nfo.datastore import Datastore, Session
from nfo.schema import Fmt, Tree

SNAPSHOT_EVERY = 17
KEEP = 8


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def instance(name: str, port: str) -> dict[str, object]:
    return {"name": name, "descriptor": "udp-echo",
            "parameter": [{"name": "port", "value": port}]}


def doc(*entries: dict[str, object]) -> str:
    return json.dumps({"nfo-instances:nf-instances": {"nf-instance": list(entries)}})


def _xml_value(name: str, value: object) -> str:
    if isinstance(value, list):
        return "".join(_xml_value(name, v) for v in value)
    if isinstance(value, dict):
        attrs = "".join(f' nc:{k.split(":")[-1]}="{v}"' for k, v in value.get("@", {}).items())
        inner = "".join(_xml_value(k, v) for k, v in value.items() if k != "@")
        return f"<{name}{attrs}>{inner}</{name}>"
    return f"<{name}>{value}</{name}>"


def xml_doc(*entries: dict[str, object]) -> str:
    """``doc`` as NETCONF XML (operations as nc: attributes)."""
    return ('<nf-instances xmlns="urn:nfo:instances" '
            'xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0">'
            + _xml_value("nf-instance", list(entries)) + "</nf-instances>")


async def edit_as(s: Session, how: str, *entries: dict[str, object]) -> None:
    """One edit of running, given as JSON text, XML text or a tree (each kind of
    commit record: the client's text, or the edit printed)."""
    if how == "xml":
        await s.edit("running", xml_doc(*entries), "xml")
    elif how == "tree":
        with Tree.parse(s.datastore.schema, doc(*entries), Fmt.JSON) as t:
            await s.edit("running", t)
    else:
        await s.edit("running", doc(*entries), "json")


def running_instances(ds: Datastore) -> dict[str, dict[str, object]]:
    t = ds.get("running")
    try:
        data = json.loads(t.print("json") or "{}")
    finally:
        t.free()
    entries = data.get("nfo-instances:nf-instances", {}).get("nf-instance", [])
    return {e["name"]: e for e in entries}


async def churn(ds: Datastore, start: int, seed: int) -> None:
    rng = random.Random(seed)
    s = ds.internal_session("churn")
    existing = running_instances(ds)
    order = sorted(existing, key=lambda n: int(n[2:]) if n[2:].isdigit() else -1)
    admin = {n: str(e.get("admin-state", "enabled")) for n, e in existing.items()}
    k, step = start, 0

    async def write(fields: list[str], entry: dict[str, object]) -> None:
        out("BEGIN " + " ".join(fields))
        await edit_as(s, rng.choice(["json", "xml", "tree"]), entry)
        out(f"ACK {ds.info('running').revision} " + " ".join(fields))

    while True:
        name, port = f"nf{k}", str(10000 + k % 50000)
        await write(["create", name, port], instance(name, port))
        order.append(name)
        admin[name] = "enabled"
        k += 1
        if len(order) >= 2:
            step += 1
            target = rng.choice(order[:-1])
            new = "disabled" if admin[target] == "enabled" else "enabled"
            desc = f"m{start}-{step}"
            await write(["modify", target, new, desc],
                        {"name": target, "admin-state": new, "description": desc})
            admin[target] = new
        if len(order) > KEEP:
            victim = order.pop(0)
            await write(["delete", victim],
                        {"@": {"ietf-netconf:operation": "delete"}, "name": victim})
            del admin[victim]


async def bulk(ds: Datastore, prefix: str, count: int) -> None:
    # A snapshot after every commit: the edit then writes one of all COUNT
    # instances after storing the commit and before returning, which widens the
    # window where the commit is stored but not acknowledged.
    Datastore.snapshot_every_commits = 1
    s = ds.internal_session("bulk")
    entries = [instance(f"{prefix}{i}", str(1 + i % 65535)) for i in range(count)]
    out("START")
    # odd rounds (prefix b1x, b3x, ...) as XML, the others as JSON
    await edit_as(s, "xml" if int("0" + "".join(filter(str.isdigit, prefix))) % 2 else "json",
                  *entries)
    out(f"ACK {ds.info('running').revision}")
    await asyncio.sleep(3600)


async def oper(ds: Datastore, names: list[str]) -> None:
    s = ds.internal_session("oper")
    statuses = ("pending", "initializing", "running", "failed")
    step = 0
    while True:
        step += 1
        name = names[step % len(names)]
        if step % 2:
            owner = "wm"
            state: dict[str, object] = {"oper-status": statuses[step % 4], "attempts": step}
        else:
            owner = "drv"
            state = {"vim-resource-id": f"pid-{step}"}
        fields = f"oper {owner} {name} {step}"
        out("BEGIN " + fields)
        s.set_oper(doc({"name": name, "state": state}), "json", owner=owner)
        out("ACK 0 " + fields)


async def confirmed(ds: Datastore, name: str, after: int) -> None:
    s = ds.internal_session("confirmer")
    await s.edit("candidate", doc(instance(name, "4242")), "json")
    out("START")
    await s.commit(confirmed=True, timeout=3600)
    out(f"ACK {ds.info('running').revision}")
    for i in range(after):
        await s.edit("running", doc({"name": name, "description": f"after-{i}"}), "json")
        out(f"ACK {ds.info('running').revision}")
    out("DONE")
    await asyncio.sleep(3600)


async def multidelete(ds: Datastore, names: list[str]) -> None:
    s = ds.internal_session("multidelete")
    out("BEGIN delete " + " ".join(names))
    await s.edit("running", doc(*({"@": {"ietf-netconf:operation": "delete"}, "name": n}
                                  for n in names)), "json")
    out(f"ACK {ds.info('running').revision} delete " + " ".join(names))
    await asyncio.sleep(3600)


async def private(ds: Datastore, start: int) -> None:
    from nfo.datastore.nacm import Identity
    editors = [ds.session(Identity.server(f"ui{i}"), private_candidate=True)
               for i in range(2)]
    direct = ds.internal_session("direct")
    k = start
    while True:
        ui = editors[k % 2]
        mine, port = f"nf{k}", str(10000 + k % 50000)
        await ui.edit("candidate", doc(instance(mine, port)), "json")
        other, oport = f"nf{k + 1}", str(10000 + (k + 1) % 50000)
        out(f"BEGIN create {other} {oport}")
        await direct.edit("running", doc(instance(other, oport)), "json")
        out(f"ACK {ds.info('running').revision} create {other} {oport}")
        out(f"BEGIN create {mine} {port}")
        await ui.commit(comment=f"ui adds {mine}")
        out(f"ACK {ds.info('running').revision} create {mine} {port}")
        k += 2


async def lock(ds: Datastore) -> None:
    s = ds.internal_session("locker")
    s.lock("running")
    s.lock("candidate")
    out("LOCKED")
    await asyncio.sleep(3600)


async def main(argv: list[str]) -> None:
    state, mode, args = Path(argv[1]), argv[2], argv[3:]
    Datastore.snapshot_every_commits = SNAPSHOT_EVERY
    ds = await open_datastore(StateDir(state), [])
    out(f"OPEN {ds.info('running').revision}")
    if mode == "churn":
        await churn(ds, int(args[0]), int(args[1]))
    elif mode == "bulk":
        await bulk(ds, args[0], int(args[1]))
    elif mode == "oper":
        await oper(ds, args[0].split(","))
    elif mode == "confirmed":
        await confirmed(ds, args[0], int(args[1]) if len(args) > 1 else 0)
    elif mode == "multidelete":
        await multidelete(ds, args[0].split(","))
    elif mode == "lock":
        await lock(ds)
    elif mode == "private":
        await private(ds, int(args[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv))
