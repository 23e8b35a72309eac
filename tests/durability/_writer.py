"""The writer of a power-loss run: real nfo code writing to a real SQLite file.

Usage: python _writer.py STATE MARKS SEED OPS PREFIX [--autocheckpoint N]
[--checkpoint-every SECONDS] [--snapshot-every N] [--snapshot-part N] [--synchronous MODE]

Opens STATE with ``nfo.cli.serve.open_datastore`` (as ``nfo serve`` does), prints
``OPEN <revision>`` to MARKS and makes OPS random writes, each announced by
``BEGIN <op>`` and, once the call returned (acknowledged), ``ACK <revision> <op>``.
Ops: ``create NAME PORT``, ``modify NAME ADMIN DESCRIPTION``, ``delete NAME``,
``bulk NAME:PORT,...`` (one edit), ``drop NAME,NAME`` (one edit), ``oper NAME STEP``
(operational push of owner ``wm``), ``startup`` (copy-config running to startup),
``snapshot`` (of running), ``reopen`` (close the datastore and open it again),
``confirm-start NAME PORT`` (a confirmed commit creating NAME) always followed by
``confirm-end`` (the confirming commit).
Instance names start with PREFIX, so that chained runs never reuse one.

Under fsshim (LD_PRELOAD) every write, fsync and marker lands in one log; the
parent rebuilds the disk at any point of it (tests/durability/powerloss.py).
``--autocheckpoint`` and ``--synchronous`` reach into the storage's connection:
a small autocheckpoint makes WAL checkpoints and restarts frequent; another
synchronous mode shows what the power-loss check catches.  ``--checkpoint-every``
sets the storage's background checkpoints (a few milliseconds: one alongside nearly
every write; 0: none); ``--snapshot-part`` the characters per part of a snapshot (a few
hundred: every snapshot written in parts, a durable transaction each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from pathlib import Path
from typing import TextIO

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore
from nfo.datastore import Datastore, SqliteStorage
from nfo.datastore.session import Session
from nfo.datastore.storage import sqlite as sqlite_storage


def doc(*entries: dict[str, object]) -> str:
    return json.dumps({"nfo-instances:nf-instances": {"nf-instance": list(entries)}})


def instance(name: str, port: str) -> dict[str, object]:
    return {"name": name, "descriptor": "udp-echo",
            "parameter": [{"name": "port", "value": port}]}


def delete(name: str) -> dict[str, object]:
    return {"@": {"ietf-netconf:operation": "delete"}, "name": name}


def oper_state(step: int) -> dict[str, object]:
    return {"oper-status": ("pending", "initializing", "running", "failed")[step % 4],
            "attempts": step}


class Writer:
    def __init__(self, args: argparse.Namespace, marks: TextIO) -> None:
        self.args = args
        self.marks = marks
        self.rng = random.Random(args.seed)
        self.ds: Datastore | None = None
        self.names: list[str] = []
        self.admin: dict[str, str] = {}
        self.k = 0
        self.session: Session | None = None

    def mark(self, line: str) -> None:
        self.marks.write(line + "\n")
        self.marks.flush()

    async def open(self) -> Datastore:
        ds = await open_datastore(StateDir(self.args.state), [])
        storage = ds.storage
        assert isinstance(storage, SqliteStorage)
        conn = storage._connection()
        if self.args.autocheckpoint:
            conn.execute(f"PRAGMA wal_autocheckpoint = {self.args.autocheckpoint}")
        if self.args.synchronous:
            conn.execute(f"PRAGMA synchronous = {self.args.synchronous}")
        t = ds.get("running")
        try:
            data = json.loads(t.print("json") or "{}")
        finally:
            t.free()
        entries = data.get("nfo-instances:nf-instances", {}).get("nf-instance", [])
        self.names = [e["name"] for e in entries]
        self.admin = {e["name"]: e.get("admin-state", "enabled") for e in entries}
        self.ds = ds
        self.session = ds.internal_session("powerloss")
        return ds

    async def step(self) -> None:
        ds = self.ds
        assert ds is not None
        s = self.session
        assert s is not None
        rng = self.rng
        roll = rng.random()
        if roll < 0.03:
            self.mark("BEGIN reopen")
            await ds.close()
            ds = await self.open()
            self.mark(f"ACK {ds.info('running').revision} reopen")
            return
        if roll < 0.07:
            self.mark("BEGIN snapshot")
            ds.snapshot("running")
            self.mark(f"ACK {ds.info('running').revision} snapshot")
            return
        if roll < 0.06 and self.names:
            # a confirmed commit, then its confirmation: a power cut between the two
            # leaves it unconfirmed, and the restart reverts it
            name, port = self._name(), str(rng.randrange(1, 65536))
            await s.edit("candidate", doc(instance(name, port)), "json")
            self.mark(f"BEGIN confirm-start {name} {port}")
            await s.commit(confirmed=True, timeout=3600)
            self.mark(f"ACK {ds.info('running').revision} confirm-start {name} {port}")
            self.mark("BEGIN confirm-end")
            await s.commit()
            self.mark(f"ACK {ds.info('running').revision} confirm-end")
            self.names.append(name)
            self.admin[name] = "enabled"
            return
        if roll < 0.10:
            self.mark("BEGIN startup")
            await s.copy_config("startup", "running", source_is_datastore=True)
            self.mark(f"ACK {ds.info('startup').revision} startup")
            return
        if roll < 0.25 and self.names:
            name = rng.choice(self.names)
            step = rng.randrange(1, 10**6)
            fields = f"oper {name} {step}"
            self.mark("BEGIN " + fields)
            s.set_oper(doc({"name": name, "state": oper_state(step)}), "json", owner="wm")
            self.mark(f"ACK 0 {fields}")
            return
        if roll < 0.30:
            new = [(self._name(), str(rng.randrange(1, 65536))) for _ in range(rng.randint(2, 6))]
            fields = "bulk " + ",".join(f"{n}:{p}" for n, p in new)
            await self._edit(s, fields, doc(*(instance(n, p) for n, p in new)))
            self.names += [n for n, _ in new]
            self.admin.update({n: "enabled" for n, _ in new})
            return
        if roll < 0.33 and len(self.names) > 3:
            gone = rng.sample(self.names, 2)
            await self._edit(s, "drop " + ",".join(gone), doc(*(delete(n) for n in gone)))
            for n in gone:
                self.names.remove(n)
                del self.admin[n]
            return
        if roll < 0.45 and len(self.names) > 3:
            name = rng.choice(self.names)
            await self._edit(s, f"delete {name}", doc(delete(name)))
            self.names.remove(name)
            del self.admin[name]
            return
        if roll < 0.70 and self.names:
            name = rng.choice(self.names)
            new_admin = "disabled" if self.admin[name] == "enabled" else "enabled"
            desc = f"d{rng.randrange(10**9)}"
            await self._edit(s, f"modify {name} {new_admin} {desc}",
                             doc({"name": name, "admin-state": new_admin, "description": desc}))
            self.admin[name] = new_admin
            return
        name, port = self._name(), str(rng.randrange(1, 65536))
        await self._edit(s, f"create {name} {port}", doc(instance(name, port)))
        self.names.append(name)
        self.admin[name] = "enabled"

    def _name(self) -> str:
        self.k += 1
        return f"{self.args.prefix}{self.k}"

    async def _edit(self, s: Session, fields: str, edit: str) -> None:
        ds = self.ds
        assert ds is not None
        self.mark("BEGIN " + fields)
        await s.edit("running", edit, "json")
        self.mark(f"ACK {ds.info('running').revision} {fields}")


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("state", type=Path)
    p.add_argument("marks", type=Path)
    p.add_argument("seed", type=int)
    p.add_argument("ops", type=int)
    p.add_argument("prefix")
    p.add_argument("--autocheckpoint", type=int, default=0)
    p.add_argument("--checkpoint-every", type=float, default=None)
    p.add_argument("--snapshot-part", type=int, default=0)
    p.add_argument("--snapshot-every", type=int, default=0)
    p.add_argument("--synchronous", default="")
    args = p.parse_args()
    if args.snapshot_every:
        Datastore.snapshot_every_commits = args.snapshot_every
    if args.checkpoint_every is not None:
        sqlite_storage.CHECKPOINT_EVERY = args.checkpoint_every
    if args.snapshot_part:
        sqlite_storage.SNAPSHOT_PART = args.snapshot_part
    with args.marks.open("a", buffering=1) as marks:
        w = Writer(args, marks)
        ds = await w.open()
        w.mark(f"OPEN {ds.info('running').revision}")
        for _ in range(args.ops):
            await w.step()
        assert w.ds is not None
        await w.ds.close()
        w.mark("CLOSED")


if __name__ == "__main__":
    asyncio.run(main())
