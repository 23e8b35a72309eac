"""The login throttle and the record of failed logins, one for every front end.

Checking a password costs a scrypt hash (~50 ms of CPU and 16 MiB), and every wrong
password checked is a guess.  Both front ends authenticate through
:meth:`nfo.datastore.users.UserStore.login`, which asks the one :class:`LoginGuard`
(made by ``nfo serve``) before it hashes, so the limits hold whichever protocol,
address or account name a guesser uses.  docs/authentication.md is the user's view.

What is limited is the *checked guesses*: passwords that must be hashed because they are
neither the account's verified password nor one refused before (the user store remembers
both).  A guess is checked only when three token buckets each hold a token: the
account's (one per name asked for, existing or not, so that the throttle tells nothing
about which names exist), the client address's (an IPv4 address, an IPv6 /64) and the
server's (all scrypt work of logins).  A guess that finds no token is refused unchecked
with :class:`~nfo.errors.Throttled`; a success gives its account and address tokens back.

A flood must not deny the account's owner, so who may spend the last tokens depends on
the address, judged before any hash:

- An address the account logged in from (within ``trust_memory``, and without
  ``free_failures`` failures on it since) does not spend the account's budget at all:
  however many addresses flood the account, its owner still logs in from there.
- Otherwise the account and server buckets keep a *reserve* that only addresses in
  good standing may spend: an address with ``free_failures`` or more recent failures
  (failed guesses within ``failure_memory`` seconds, plus its guesses being checked
  right now) stops at the reserve, one with fewer at a proportional part of it.  Wrong
  guesses from other addresses thus drain the account down to its reserve, and the
  owner, coming from an address without failures, finds a token there.  A guesser
  with many addresses gets one or two guesses from each new one (so it can drain the
  reserve, never more than the account's budget); the owner then waits for the next
  token.
- A guesser on the owner's own address is what the throttle cannot tell apart.  For
  that the user store recognises the owner's password without hashing it once it was
  verified or set through the server (the recovery path: ``nfo user passwd``), and
  :meth:`LoginGuard.forget` (``nfo user unlock``) clears an account's record.

Failures are logged one line each (account name, address, front end, reason; never a
password) until ``log_lines`` in a ``log_interval``; beyond that they are counted by
source and summarised once at the end of the interval.  The counters are operational
data of ``nfo-users`` (:meth:`LoginGuard.oper_json`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from nfo.errors import Throttled
from nfo.schema.values import format_time

__all__ = ["Admission", "Budget", "LoginCounters", "LoginGuard", "LoginLimits",
           "client_address"]

log = logging.getLogger("nfo.logins")

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
_INVALID_NAME = "\x00invalid"
"""The one bucket of every name that cannot be an account (the rule is public)."""
_MAX_SOURCES = 1000
_MAX_RETRY_AFTER = 3600
_MAX_TRUSTED = 16
"""Addresses remembered per account as ones it logged in from."""


@functools.lru_cache(maxsize=1024)
def client_address(host: str) -> str:
    """The throttling key of a client: its IPv4 address, an IPv6 client's /64."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{addr}/64", strict=False))
    return str(addr)


@dataclass(frozen=True)
class Budget:
    """A token bucket: ``burst`` guesses at once, refilled at ``per_second``;
    ``reserve`` tokens only addresses in good standing may take."""

    burst: float
    per_second: float
    reserve: float = 0.0

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second < 0 or not 0 <= self.reserve <= self.burst - 1:
            raise ValueError(f"unusable login budget {self}")


@dataclass(frozen=True)
class LoginLimits:
    """The throttle's settings; the defaults are documented in docs/authentication.md."""

    account: Budget = Budget(10, 0.1, 6)
    """Guesses checked per account name: 10, then one every 10 s; 6 kept in reserve."""
    address: Budget = Budget(30, 0.5)
    """Guesses checked per client address (any accounts): 30, then one every 2 s."""
    server: Budget = Budget(20, 10.0, 10)
    """Guesses checked in all: 20, then 10 a second (about half a CPU of scrypt)."""
    free_failures: int = 3
    """Recent failures after which an address may no longer spend any reserve."""
    failure_memory: float = 900.0
    """Seconds after its last failure that an address's failures are forgotten."""
    trust_memory: float = 7 * 86400.0
    """Seconds an address an account logged in from is trusted for that account: its
    guesses there do not spend the account's budget (until ``free_failures`` of them
    fail)."""
    log_interval: float = 60.0
    log_lines: int = 20
    """Failures logged one by one per interval; the rest are summarised."""
    max_entries: int = 100_000
    """A hard bound on the addresses and accounts tracked (never reached by design:
    entries are made by checked guesses only, and dropped once they are full again)."""


@dataclass
class LoginCounters:
    """Since the server started."""

    failed: int = 0
    checked: int = 0
    throttled: int = 0
    accounts: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Failures per existing account: (count, time of the last one)."""


@dataclass(frozen=True)
class Admission:
    """A guess allowed to be checked; hand it back to :meth:`LoginGuard.settle`."""

    bucket: str
    address: str
    name: str
    trusted: bool


class _Bucket:
    __slots__ = ("level", "stamp")

    def __init__(self, level: float, stamp: float) -> None:
        self.level = level
        self.stamp = stamp

    def refresh(self, budget: Budget, now: float) -> float:
        self.level = min(budget.burst, self.level + max(0.0, now - self.stamp)
                         * budget.per_second)
        self.stamp = now
        return self.level


class _Standing:
    """An address's recent failures (``by_account`` says on which accounts), and its
    guesses being checked."""

    __slots__ = ("by_account", "failures", "last", "pending")

    def __init__(self) -> None:
        self.failures = 0
        self.last = 0.0
        self.pending = 0
        self.by_account: dict[str, int] = {}

    def forgive(self, account: str) -> None:
        self.failures = max(0, self.failures - self.by_account.pop(account, 0))


class LoginGuard:
    """The throttle, the failure log and the counters of one server (see the module)."""

    def __init__(self, limits: LoginLimits | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.limits = limits or LoginLimits()
        self.counters = LoginCounters()
        self._clock = clock
        self._wall = wall
        self._accounts: dict[str, _Bucket] = {}
        self._addresses: dict[str, _Bucket] = {}
        self._server = _Bucket(self.limits.server.burst, clock())
        self._standing: dict[str, _Standing] = {}
        self._trusts: dict[str, dict[str, float]] = {}
        self._prune_at = 1024
        self._window = clock()
        self._lines = 0
        self._suppressed: Counter[tuple[str, str, str]] = Counter()
        self._timer: asyncio.TimerHandle | None = None

    # -- the throttle --

    def admit(self, name: str, address: str) -> Admission:
        """Take the tokens one checked guess needs, or raise :class:`Throttled`."""
        lim = self.limits
        now = self._clock()
        where = client_address(address)
        key = name if isinstance(name, str) and _NAME.fullmatch(name) else _INVALID_NAME
        standing = self._standing.get(where)
        trusted = self._trusted(key, where, standing, now)
        grade = 0.0 if trusted else self._grade(standing, now)
        account = self._bucket(self._accounts, key, lim.account, now)
        source = self._bucket(self._addresses, where, lim.address, now)
        self._server.refresh(lim.server, now)
        needs = [(source, lim.address), (self._server, lim.server)]
        if not trusted:
            needs.append((account, lim.account))
        wait = 0.0
        for bucket, budget in needs:
            needed = budget.reserve * grade + 1
            if bucket.level < needed:
                rate = budget.per_second
                wait = max(wait, (needed - bucket.level) / rate if rate > 0 else math.inf)
        if wait > 0:
            self.counters.throttled += 1
            raise Throttled("too many failed logins: try again later",
                            retry_after=max(1, min(_MAX_RETRY_AFTER, math.ceil(wait))),
                            app_tag="nfo-login-throttled")
        for bucket, _ in needs:
            bucket.level -= 1
        if not trusted:
            self._accounts[key] = account
        self._addresses[where] = source
        if standing is None:
            standing = self._standing[where] = _Standing()
        standing.pending += 1
        self.counters.checked += 1
        if len(self._accounts) + len(self._addresses) + len(self._standing) > self._prune_at:
            self._prune(now)
        return Admission(key, where, name, trusted)

    def settle(self, admission: Admission, ok: bool) -> None:
        """The checked guess's outcome: a success gives the account and address their
        tokens back and forgives the address its failures on that account."""
        now = self._clock()
        lim = self.limits
        standing = self._standing.get(admission.address)
        if standing is None:  # pruned under overload
            standing = self._standing[admission.address] = _Standing()
        standing.pending = max(0, standing.pending - 1)
        if ok:
            refunds = [(self._addresses, admission.address, lim.address)]
            if not admission.trusted:
                refunds.append((self._accounts, admission.bucket, lim.account))
            for table, key, budget in refunds:
                bucket = table.get(key)
                if bucket is not None:
                    bucket.refresh(budget, now)
                    bucket.level = min(budget.burst, bucket.level + 1)
            standing.forgive(admission.bucket)
            self._trust(admission.bucket, admission.address, now)
            return
        if standing.failures and now - standing.last > lim.failure_memory:
            standing.failures = 0
            standing.by_account.clear()
        standing.failures += 1
        standing.last = now
        standing.by_account[admission.bucket] = standing.by_account.get(admission.bucket, 0) + 1

    def succeeded(self, name: str, address: str) -> None:
        """A login recognised without a check: the address is forgiven its failures on
        that account."""
        where = client_address(address)
        key = name if _NAME.fullmatch(name) else _INVALID_NAME
        standing = self._standing.get(where)
        if standing is not None:
            standing.forgive(key)
        self._trust(key, where, self._clock())

    def forget(self, name: str) -> None:
        """Clear an account's record (``nfo user unlock``): its budget is full again and
        no address stands charged with failures on it."""
        self._accounts.pop(name, None)
        for standing in self._standing.values():
            standing.forgive(name)
        log.info("login throttle: the record of account %r was cleared", name[:64])

    def _trusted(self, key: str, where: str, standing: _Standing | None, now: float) -> bool:
        """Whether ``where`` logged in to ``key`` lately and has not failed on it since
        (``free_failures`` times), with no other guess under way."""
        since = self._trusts.get(key, {}).get(where)
        if since is None or now - since > self.limits.trust_memory:
            return False
        return standing is None or (
            not standing.pending
            and standing.by_account.get(key, 0) < self.limits.free_failures)

    def _trust(self, key: str, where: str, now: float) -> None:
        if key == _INVALID_NAME:
            return
        trusted = self._trusts.setdefault(key, {})
        trusted.pop(where, None)
        trusted[where] = now
        while len(trusted) > _MAX_TRUSTED:
            del trusted[next(iter(trusted))]

    def _grade(self, standing: _Standing | None, now: float) -> float:
        if standing is None:
            return 0.0
        failures = standing.failures if now - standing.last <= self.limits.failure_memory else 0
        free = self.limits.free_failures
        weight = failures + standing.pending
        if free <= 0:
            return 1.0 if weight else 0.0
        return min(weight, free) / free

    @staticmethod
    def _bucket(table: dict[str, _Bucket], key: str, budget: Budget, now: float) -> _Bucket:
        bucket = table.get(key)
        if bucket is None:
            return _Bucket(budget.burst, now)
        bucket.refresh(budget, now)
        return bucket

    def _prune(self, now: float) -> None:
        """Drop what no longer matters: full buckets, forgotten failures."""
        lim = self.limits
        for table, budget in ((self._accounts, lim.account), (self._addresses, lim.address)):
            for key in [k for k, b in table.items() if b.refresh(budget, now) >= budget.burst]:
                del table[key]
        for a in [a for a, s in self._standing.items()
                  if not s.pending and now - s.last > lim.failure_memory]:
            del self._standing[a]
        for key, trusted in list(self._trusts.items()):
            for where in [w for w, t in trusted.items() if now - t > lim.trust_memory]:
                del trusted[where]
            if not trusted:
                del self._trusts[key]
        for table2 in (self._accounts, self._addresses, self._standing):
            while len(table2) > lim.max_entries:
                del table2[next(iter(table2))]
        size = len(self._accounts) + len(self._addresses) + len(self._standing)
        self._prune_at = max(1024, 2 * size)

    # -- the record --

    def failed(self, name: str | None, address: str, front_end: str, reason: str, *,
               account: bool) -> None:
        """Count and log one failed login (``account``: ``name`` is an existing account)."""
        self.counters.failed += 1
        if account and name is not None:
            count, _ = self.counters.accounts.get(name, (0, 0.0))
            self.counters.accounts[name] = (count + 1, self._wall())
        who = "no user name" if name is None else f"user {name[:64]!r}"
        where = client_address(address)
        now = self._clock()
        if now - self._window >= self.limits.log_interval:
            self._flush()
            self._window = now
            self._lines = 0
        if self._lines < self.limits.log_lines:
            self._lines += 1
            log.warning("login failed: %s from %s over %s: %s", who, where, front_end, reason)
            return
        source = (who, where, front_end)
        if source not in self._suppressed and len(self._suppressed) >= _MAX_SOURCES:
            source = ("other users", "other addresses", "any front end")
        self._suppressed[source] += 1
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            delay = max(0.0, self._window + self.limits.log_interval - now)
            self._timer = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._suppressed:
            return
        total = sum(self._suppressed.values())
        top = self._suppressed.most_common(5)
        rest = len(self._suppressed) - len(top)
        sources = "; ".join(f"{who} from {where} over {fe}: {n}" for (who, where, fe), n in top)
        log.warning("login failed %d more times in the last %.0f s (not logged one by one): "
                    "%s%s", total, self.limits.log_interval, sources,
                    f"; and {rest} more sources" if rest else "")
        self._suppressed.clear()

    def close(self) -> None:
        """Log what is still only counted."""
        self._flush()

    def oper_json(self, accounts: Iterable[str]) -> str:
        """The counters as ``nfo-users`` operational data (RFC 7951 JSON)."""
        existing = set(accounts)
        per = self.counters.accounts
        for gone in [n for n in per if n not in existing]:
            del per[gone]
        c = self.counters
        return json.dumps({"nfo-users:users": {
            "login-statistics": {"failed-logins": str(c.failed),
                                 "checked-passwords": str(c.checked),
                                 "throttled-logins": str(c.throttled)},
            **({"user": [{"name": n, "failed-logins": str(count),
                          "last-failed-login": format_time(last)}
                         for n, (count, last) in sorted(per.items())]} if per else {})}})
