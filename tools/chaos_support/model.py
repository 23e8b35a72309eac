"""What the chaos run asks for, and what the server acknowledged.

A :class:`Spec` is one nf-instance as configured; a :class:`Profile` is the VIM set-up of a
run (two VIM accounts: one healthy, one that misbehaves) and how new instances are drawn;
the :class:`Ledger` remembers every acknowledged write and the writes still in flight when
the server was killed, so that after a restart the configuration can be checked against
what the server promised (an acknowledged write is never lost, an unacknowledged one may
or may not have landed); :func:`plan_round` draws one burst of operations.
"""

from __future__ import annotations

import random
import shutil
import socket
from dataclasses import dataclass, field, replace
from typing import Any

RUN_ENV = "NFO_CHAOS_RUN"
"""Environment variable every local NF of a run carries (the harness's own tag)."""
GEN_ENV = "NFO_CHAOS_GEN"
"""Environment variable carrying the instance's ``gen`` parameter (updates bump it)."""


@dataclass(frozen=True)
class Spec:
    """One nf-instance as configured in running."""

    descriptor: str
    vim: str
    gen: int
    enabled: bool = True
    port: int | None = None

    def entry(self, name: str) -> dict[str, Any]:
        params = [{"name": "gen", "value": str(self.gen)}]
        if self.port is not None:
            params.append({"name": "port", "value": str(self.port)})
        return {"name": name, "descriptor": self.descriptor, "vim": self.vim,
                "admin-state": "enabled" if self.enabled else "disabled",
                "parameter": params}


def spec_of(entry: dict[str, Any]) -> Spec:
    """The Spec of a configured ``nf-instance`` entry (RFC 7951 JSON)."""
    params = {p["name"]: str(p.get("value", "")) for p in entry.get("parameter", [])}
    port = params.get("port")
    return Spec(descriptor=str(entry["descriptor"]), vim=str(entry.get("vim", "")),
                gen=int(params.get("gen", "0")),
                enabled=entry.get("admin-state", "enabled") == "enabled",
                port=int(port) if port else None)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the VIM set-ups -------------------------------------------------------------------------


@dataclass
class Profile:
    """Two VIM accounts of one type: ``good`` is healthy, ``bad`` misbehaves."""

    kind: str
    good: str
    bad: str
    timeout: int
    """instantiation-timeout of every descriptor (seconds)."""
    setup: dict[str, Any]
    """The VIM accounts and descriptors, one RFC 7951 document."""
    bad_fraction: float = 0.25
    echo_fraction: float = 0.0
    crash_fraction: float = 0.0
    good_descriptors: tuple[str, ...] = ()
    bad_descriptors: tuple[str, ...] = ()

    def new_spec(self, rng: random.Random, *, bad: bool | None = None) -> Spec:
        if bad is None:
            bad = rng.random() < self.bad_fraction
        if self.kind == "sim":
            return Spec("chaos-fw", self.bad if bad else self.good, 0)
        if bad:
            desc = "chaos-crash" if rng.random() < self.crash_fraction else "chaos-stubborn"
            return Spec(desc, self.bad, 0)
        if rng.random() < self.echo_fraction:
            return Spec("chaos-echo", self.good, 0, port=free_udp_port())
        return Spec("chaos-sleep", self.good, 0)

    def moved(self, spec: Spec, rng: random.Random) -> Spec:
        """The same instance asked for on the other VIM account (a replace, not in place)."""
        other = self.new_spec(rng, bad=spec.vim == self.good)
        return replace(other, gen=spec.gen + 1, enabled=spec.enabled)


def sim_profile(*, timeout: int = 15, bad_latency_ms: int = 3000, bad_jitter_ms: int = 2500,
                bad_failure_rate: float = 0.25, seed: int = 1) -> Profile:
    """Healthy ``sim-ok`` (100 +- 50 ms) and ``sim-bad``: slow (its workloads become ready
    late, some past the timeout) and failing (``failure-rate``)."""
    vims = [
        {"name": "sim-ok", "type": "nfo-vim:sim",
         "sim": {"latency": {"mean": 100, "jitter": 50}, "seed": str(seed)}},
        {"name": "sim-bad", "type": "nfo-vim:sim",
         "sim": {"latency": {"mean": bad_latency_ms, "jitter": bad_jitter_ms},
                 "failure-rate": str(bad_failure_rate), "seed": str(seed + 1)}},
    ]
    desc = {"id": "chaos-fw", "vim-types": ["nfo-vim:sim"], "instantiation-timeout": timeout,
            "parameter": [{"name": "gen", "default": "0"}]}
    return Profile("sim", "sim-ok", "sim-bad", timeout,
                   {"nfo-vim:vims": {"vim": vims},
                    "nfo-catalog:catalog": {"nf-descriptor": [desc]}},
                   good_descriptors=("chaos-fw",), bad_descriptors=("chaos-fw",))


def local_profile(run_id: str, *, timeout: int = 20, echo_fraction: float = 0.05,
                  crash_fraction: float = 0.2) -> Profile:
    """Healthy ``loc-ok`` (sleep processes, a few udp-echo NFs probed on their port) and
    ``loc-bad``: NFs that ignore SIGTERM (termination takes the grace period and SIGKILL)
    and NFs that exit at once (the VIM refuses: failed with the exit status)."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    sh = shutil.which("sh") or "/bin/sh"
    env = [{"name": RUN_ENV, "value": run_id}, {"name": GEN_ENV, "value": "{param:gen}"}]
    gen = {"name": "gen", "default": "0"}

    def desc(desc_id: str, command: list[str], **extra: Any) -> dict[str, Any]:
        return {"id": desc_id, "vim-types": ["nfo-vim:local"], "instantiation-timeout": timeout,
                "parameter": [gen, *extra.pop("parameter", [])],
                "compute": {"vcpus": 1, "memory-mb": 16},
                "local": {"command": command, "environment": env, **extra}}

    descs = [
        desc("chaos-sleep", [sleep, "86400"]),
        desc("chaos-echo", ["{python}", "-m", "nfo.drivers.local.udp_echo", "--port",
                            "{param:port}"],
             parameter=[{"name": "port", "mandatory": True}],
             **{"readiness-probe": {"udp": {"port": "{param:port}", "payload": "nfo-probe"}}}),
        desc("chaos-stubborn", [sh, "-c", f"trap '' TERM; exec {sleep} 86400"]),
        desc("chaos-crash", [sh, "-c", "echo 'chaos: refusing to run' >&2; exit 3"]),
    ]
    vims = [{"name": n, "type": "nfo-vim:local", "local": {"max-processes": 4096}}
            for n in ("loc-ok", "loc-bad")]
    return Profile("local", "loc-ok", "loc-bad", timeout,
                   {"nfo-vim:vims": {"vim": vims}, "nfo-catalog:catalog": {"nf-descriptor": descs}},
                   echo_fraction=echo_fraction, crash_fraction=crash_fraction,
                   good_descriptors=("chaos-sleep", "chaos-echo"),
                   bad_descriptors=("chaos-stubborn", "chaos-crash"))


# -- the ledger of writes ---------------------------------------------------------------------


@dataclass
class Ledger:
    """Per instance: the configuration every acknowledged write adds up to, and the target
    of the one write in flight (None: a delete) when the server was killed."""

    acked: dict[str, Spec] = field(default_factory=dict)
    inflight: dict[str, Spec | None] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    next_index: int = 0

    def new_name(self, rng: random.Random) -> str:
        reusable = sorted(self.deleted - set(self.acked) - set(self.inflight))
        if reusable and rng.random() < 0.1:
            return rng.choice(reusable)
        name = f"i{self.next_index:05d}"
        self.next_index += 1
        return name

    def sent(self, name: str, target: Spec | None) -> None:
        self.inflight[name] = target

    def acknowledged(self, name: str, target: Spec | None) -> None:
        self.inflight.pop(name, None)
        self.used.add(name)
        if target is None:
            self.acked.pop(name, None)
            self.deleted.add(name)
        else:
            self.acked[name] = target
            self.deleted.discard(name)

    def refused(self, name: str) -> None:
        self.inflight.pop(name, None)

    def settle(self, config: dict[str, Spec]) -> list[str]:
        """After a restart: compare running with the ledger, then adopt running.
        Returns the violations (an acknowledged write lost, a write nobody sent)."""
        bad: list[str] = []
        for name in sorted(set(self.acked) | set(self.inflight) | set(config)):
            have = config.get(name)
            allowed = [self.acked.get(name)]
            if name in self.inflight:
                allowed.append(self.inflight[name])
            if have not in allowed:
                bad.append(f"durability: {name} is configured as {have} after the restart; "
                           f"acknowledged {self.acked.get(name)}"
                           + (f", in flight {self.inflight[name]}" if name in self.inflight
                              else ""))
        self.acked = dict(config)
        for name in self.inflight:
            if name not in config:
                self.deleted.add(name)
        self.inflight.clear()
        return bad


# -- one burst ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    kind: str
    """create, update, move, disable, enable or delete."""
    name: str
    target: Spec | None


@dataclass(frozen=True)
class Request:
    """One RESTCONF write: ``patch`` (a merge of several entries at the datastore root),
    ``put`` (one entry), ``delete`` (one entry) or ``yang-patch`` (several removes)."""

    method: str
    ops: tuple[Op, ...]


def plan_round(rng: random.Random, ledger: Ledger, profile: Profile, creates: int,
               live_max: int | None) -> list[Request]:
    """Draw one burst: ``creates`` new instances, about 30 % as many updates (a tenth of
    them moves to the other VIM account), 25 % deletes (more when the live population
    would exceed ``live_max``) and 5 % admin-state toggles; each instance at most once."""
    touched: set[str] = set()
    ops: list[Op] = []
    existing = sorted(ledger.acked)
    rng.shuffle(existing)

    def pick() -> str | None:
        while existing:
            name = existing.pop()
            if name not in touched:
                touched.add(name)
                return name
        return None

    n_delete = round(creates * 0.25)
    if live_max is not None:
        n_delete = max(n_delete, len(ledger.acked) + creates - live_max)
    for _ in range(n_delete):
        name = pick()
        if name is None:
            break
        ops.append(Op("delete", name, None))
    for _ in range(round(creates * 0.3)):
        name = pick()
        if name is None:
            break
        old = ledger.acked[name]
        if rng.random() < 0.1:
            ops.append(Op("move", name, profile.moved(old, rng)))
        else:
            ops.append(Op("update", name, replace(old, gen=old.gen + 1)))
    for _ in range(round(creates * 0.05)):
        name = pick()
        if name is None:
            break
        old = ledger.acked[name]
        ops.append(Op("enable" if not old.enabled else "disable", name,
                      replace(old, enabled=not old.enabled)))
    for _ in range(creates):
        name = ledger.new_name(rng)
        while name in touched:
            name = ledger.new_name(rng)
        touched.add(name)
        ops.append(Op("create", name, profile.new_spec(rng)))
    rng.shuffle(ops)

    requests: list[Request] = []
    i = 0
    while i < len(ops):
        size = rng.randint(2, 25) if rng.random() < 0.4 else 1
        chunk = ops[i:i + size]
        i += len(chunk)
        deletes = tuple(o for o in chunk if o.target is None)
        # A move replaces the whole entry (a merge would keep parameters it drops).
        writes = tuple(o for o in chunk if o.target is not None and o.kind != "move")
        requests += [Request("put", (o,)) for o in chunk if o.kind == "move"]
        if len(deletes) > 1:
            requests.append(Request("yang-patch", deletes))
        elif deletes:
            requests.append(Request("delete", deletes))
        if len(writes) > 1:
            requests.append(Request("patch", writes))
        elif writes:
            requests.append(Request("put", writes))
    return requests

