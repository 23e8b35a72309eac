"""The login throttle (:class:`LoginGuard`) on a fake clock, and the user store's
:meth:`UserStore.login` through it on a real datastore: what is limited, who keeps
getting through, what is remembered, logged and counted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import pytest

from nfo.datastore import Datastore
from nfo.datastore.logins import Budget, LoginGuard, LoginLimits, client_address
from nfo.datastore.users import UserStore
from nfo.errors import DataMissing, InvalidValue, Throttled
from nfo.schema import Fmt
from tests.waiting import wait_for

NEVER = 1e-9  # a refill rate that adds nothing within a test


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock, **limits: Any) -> LoginGuard:
    return LoginGuard(LoginLimits(**limits), clock=clock, wall=lambda: 1_800_000_000.0)


def guess(g: LoginGuard, name: str, address: str, ok: bool = False) -> bool:
    """One guess: True when it was checked (and settled as ``ok``), False when refused."""
    try:
        adm = g.admit(name, address)
    except Throttled:
        return False
    g.settle(adm, ok)
    return True


def test_addresses_are_keyed_by_ipv4_address_and_ipv6_prefix() -> None:
    assert client_address("192.0.2.7") == "192.0.2.7"
    assert client_address("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_address("2001:db8:1:2::5") == client_address("2001:db8:1:2:ffff::1") \
        == "2001:db8:1:2::/64"
    assert client_address("fe80::1%eth0") == "fe80::/64"
    assert client_address("") == "unknown"


def test_rotating_addresses_do_not_pass_the_account_budget() -> None:
    clock = Clock()
    g = guard(clock, account=Budget(10, NEVER, 6), address=Budget(1000, NEVER),
              server=Budget(1000, NEVER))
    checked = sum(guess(g, "admin", f"10.0.{i // 250}.{i % 250}") for i in range(2000))
    assert checked == 10  # every address was new, the account's budget still holds
    assert g.counters.checked == 10 and g.counters.throttled == 1990
    assert sum(guess(g, "other", f"10.9.0.{i}") for i in range(20)) == 10  # per account


def test_rotating_account_names_do_not_pass_the_address_budget() -> None:
    clock = Clock()
    g = guard(clock, account=Budget(10, NEVER, 6), address=Budget(30, NEVER),
              server=Budget(1000, NEVER))
    assert sum(guess(g, f"user{i}", "192.0.2.1") for i in range(500)) == 30
    assert sum(guess(g, f"user{i}", "192.0.2.2") for i in range(500)) == 30


def test_the_server_budget_bounds_all_hashing() -> None:
    clock = Clock()
    g = guard(clock, account=Budget(10, NEVER, 6), address=Budget(30, NEVER),
              server=Budget(20, 10.0, 10))
    checked = 0
    for second in range(30):  # 100 new names from 100 new addresses every second
        clock.now += 1
        checked += sum(guess(g, f"u{second}-{i}", f"10.1.{second}.{i}") for i in range(100))
    assert checked == 20 + 29 * 10  # 20 at once, then 10 a second
    g = guard(clock, account=Budget(10, NEVER, 6), address=Budget(30, NEVER),
              server=Budget(20, NEVER, 10))
    # one address guessing many names spends the server's budget down to its reserve
    assert sum(guess(g, f"v{i}", "192.0.2.1") for i in range(30)) == 20 - 10
    assert guess(g, "v9", "192.0.2.2")  # which is there for addresses in good standing


def test_a_flood_from_other_addresses_leaves_the_owner_a_token() -> None:
    clock = Clock()
    g = guard(clock)  # the defaults
    flooders = [f"127.0.0.{i}" for i in range(2, 10)]
    checked = 0
    for second in range(600):  # ten minutes, 20 guesses a second per flooding address
        clock.now += 1
        for _ in range(20):
            for a in flooders:
                checked += guess(g, "admin", a)
        if second % 60 == 59:  # the owner logs in now and then, from a clean address
            assert guess(g, "admin", "127.0.0.1", ok=True), f"owner refused at {second}s"
    assert checked <= 10 + 600 * 0.1 + 1  # the account's budget: 10, then one per 10 s


def test_an_address_the_owner_logged_in_from_is_not_denied_by_any_flood() -> None:
    clock = Clock()
    g = guard(clock)  # the defaults
    assert guess(g, "admin", "192.0.2.10", ok=True)  # the owner's usual address
    for i in range(5000):  # new addresses without end: the reserve goes too
        clock.now += 0.01
        guess(g, "admin", f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}")
    assert not guess(g, "admin", "198.51.100.1")  # a new address finds nothing left
    assert guess(g, "admin", "192.0.2.10", ok=True)  # the owner's address still passes
    assert guess(g, "admin", "192.0.2.10")  # even a typo or two
    assert guess(g, "admin", "192.0.2.10")
    assert guess(g, "admin", "192.0.2.10")
    assert not guess(g, "admin", "192.0.2.10")  # three failures: trust is suspended
    assert guess(g, "bob", "192.0.2.10", ok=True)  # (another account's success: no help)
    assert not guess(g, "admin", "192.0.2.10")
    clock.now += 7 * 86400 + 1
    for i in range(100):  # a week later, the trust is gone with the failures
        guess(g, "admin", f"10.99.0.{i}")
    assert not guess(g, "admin", "192.0.2.10")


def test_concurrent_guesses_from_one_address_count_against_its_standing() -> None:
    clock = Clock()
    g = guard(clock, account=Budget(10, NEVER, 6), address=Budget(1000, NEVER),
              server=Budget(1000, NEVER))
    held = []
    for _ in range(20):  # all in flight at once: none has failed yet
        with contextlib.suppress(Throttled):
            held.append(g.admit("admin", "192.0.2.9"))
    assert len(held) == 4  # 10 tokens, and from the 2nd on it may not spend the 6 reserved
    for adm in held:
        g.settle(adm, False)
    assert guess(g, "admin", "198.51.100.1", ok=True)  # a clean address finds the reserve


def test_a_success_gives_back_its_tokens_and_forgives_its_address() -> None:
    clock = Clock()
    g = guard(clock, account=Budget(10, NEVER, 6), address=Budget(10, NEVER),
              server=Budget(1000, NEVER))
    for _ in range(3):
        assert guess(g, "alice", "192.0.2.1")  # typos: now in bad standing
    assert guess(g, "alice", "192.0.2.1", ok=True)
    for _ in range(50):
        assert guess(g, "alice", "192.0.2.1", ok=True)  # successes cost nothing
    for _ in range(3):
        assert guess(g, "alice", "192.0.2.1")
    # another account's success does not forgive the failures on alice
    assert guess(g, "bob", "192.0.2.1", ok=True)
    assert g._grade(g._standing["192.0.2.1"], clock.now) == 1.0


def test_failures_are_forgotten_and_buckets_refill() -> None:
    clock = Clock()
    g = guard(clock, account=Budget(10, 0.1, 6), address=Budget(1000, NEVER),
              server=Budget(1000, NEVER), failure_memory=900)
    for _ in range(4):
        assert guess(g, "admin", "192.0.2.1")
    assert g._grade(g._standing["192.0.2.1"], clock.now) == 1.0
    with pytest.raises(Throttled) as info:
        g.admit("admin", "192.0.2.1")
    assert info.value.retry_after == 10  # one token above the reserve: 10 s at 0.1/s
    assert info.value.tag == "resource-denied" and info.value.app_tag == "nfo-login-throttled"
    clock.now += 10
    assert guess(g, "admin", "192.0.2.1") and not guess(g, "admin", "192.0.2.1")
    clock.now += 901
    assert g._grade(g._standing["192.0.2.1"], clock.now) == 0.0
    assert g._accounts["admin"].refresh(g.limits.account, clock.now) == 10


def test_forget_clears_an_account() -> None:
    clock = Clock()
    g = guard(clock, account=Budget(10, NEVER, 6), address=Budget(1000, NEVER),
              server=Budget(1000, NEVER))
    for i in range(40):  # new addresses, each in good standing for its first guess
        guess(g, "admin", f"192.0.2.{i}")
    assert not guess(g, "admin", "203.0.113.5")  # even the reserve is spent now
    g.forget("admin")
    assert guess(g, "admin", "203.0.113.5", ok=True)
    assert all(g._grade(s, clock.now) == 0.0 for s in g._standing.values())


def test_state_stays_bounded() -> None:
    clock = Clock()
    g = guard(clock, account=Budget(10, 1.0), address=Budget(30, 1.0),
              server=Budget(1000, 1000.0), failure_memory=60)
    for i in range(20_000):
        clock.now += 0.01
        guess(g, f"n{i}", f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}")
    # buckets refill within a second and failures are forgotten after a minute: what
    # is kept is the last minute's (100 failed guesses a second), with pruning's slack
    assert len(g._accounts) + len(g._addresses) < 2 * 1024
    assert len(g._standing) <= 2 * (6000 + 1024)


async def test_failures_logged_then_summarised(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    g = guard(clock, log_lines=3, log_interval=60)
    caplog.set_level(logging.WARNING, "nfo.logins")
    for i in range(10):
        g.failed("admin", f"192.0.2.{i % 2}", "netconf", "wrong password", account=True)
    g.failed(None, "192.0.2.3", "restconf", "malformed credentials", account=False)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["login failed: user 'admin' from 192.0.2.0 over netconf: wrong password",
                     "login failed: user 'admin' from 192.0.2.1 over netconf: wrong password",
                     "login failed: user 'admin' from 192.0.2.0 over netconf: wrong password"]
    assert g._timer is not None  # the summary is due at the end of the interval
    clock.now += 60
    g.failed("admin", "192.0.2.0", "restconf", "wrong password", account=True)
    summary = caplog.records[3].getMessage()
    assert summary == ("login failed 8 more times in the last 60 s (not logged one by one): "
                       "user 'admin' from 192.0.2.1 over netconf: 4; user 'admin' from "
                       "192.0.2.0 over netconf: 3; no user name from 192.0.2.3 over "
                       "restconf: 1")
    assert caplog.records[4].getMessage().startswith("login failed: user 'admin'")
    assert g._timer is None
    for i in range(5):
        g.failed(f"user{i}", "192.0.2.9", "restconf", "wrong password", account=False)
    await asyncio.sleep(0)
    g.close()
    assert caplog.records[-1].getMessage().startswith("login failed 3 more times")
    assert g.counters.failed == 17
    assert g.counters.accounts["admin"] == (11, 1_800_000_000.0)
    assert "user0" not in g.counters.accounts  # not an account: not kept per name


async def test_the_summary_comes_at_the_end_of_the_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    g = LoginGuard(LoginLimits(log_lines=1, log_interval=0.2))
    caplog.set_level(logging.WARNING, "nfo.logins")
    for _ in range(4):
        g.failed("admin", "127.0.0.2", "netconf", "wrong password", account=True)
    assert len(caplog.records) == 1
    await wait_for(lambda: len(caplog.records) == 2, 10, "the summary")
    assert caplog.records[1].getMessage().startswith("login failed 3 more times in the last")
    assert g._timer is None


# -- the user store's logins -------------------------------------------------------------


def tight() -> LoginGuard:
    return LoginGuard(LoginLimits(account=Budget(4, NEVER, 2), address=Budget(1000, NEVER),
                                  server=Budget(1000, NEVER)))


async def test_login_recognises_the_verified_password_whatever_the_throttle(
        ds: Datastore, scrypt_calls: list[int]) -> None:
    await UserStore(ds).add("alice", "alice-password-1")
    users = UserStore(ds, logins=tight())
    assert await users.login("alice", "alice-password-1", "192.0.2.1", "restconf")
    for i in range(10):
        with pytest.raises(Throttled) if i >= 2 else contextlib.nullcontext():
            assert not await users.login("alice", f"guess-{i}", "198.51.100.7", "netconf")
    scrypt_calls.clear()
    assert await users.login("alice", "alice-password-1", "198.51.100.7", "netconf")
    assert scrypt_calls == []
    assert users.logins.counters.checked == 3  # the password once, two guesses


async def test_parallel_logins_with_the_same_password_are_one_check(
        ds: Datastore, scrypt_calls: list[int]) -> None:
    await UserStore(ds).add("alice", "alice-password-1")
    users = UserStore(ds, logins=tight())  # 4 tokens: 50 parallel checks would be refused
    scrypt_calls.clear()
    logins = [users.login("alice", "alice-password-1", "192.0.2.1", "restconf")
              for _ in range(50)]
    assert await asyncio.gather(*logins) == [True] * 50
    wrong = [users.login("alice", "wrong-password", f"192.0.2.{i % 3}", "netconf")
             for i in range(50)]
    assert await asyncio.gather(*wrong) == [False] * 50
    assert len(scrypt_calls) == 2 and users.logins.counters.checked == 2
    assert users.logins.counters.failed == 50 and users.logins.counters.throttled == 0
    assert not users._checking


async def test_an_abandoned_login_still_settles(ds: Datastore) -> None:
    await UserStore(ds).add("alice", "alice-password-1")
    users = UserStore(ds, logins=tight())
    task = asyncio.ensure_future(users.login("alice", "guess-1", "192.0.2.1", "restconf"))
    await asyncio.sleep(0)
    task.cancel()  # the client went away while its password was hashed
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(lambda: not users._checking, 10, "the hash to finish")
    standing = users.logins._standing["192.0.2.1"]
    assert standing.pending == 0 and standing.failures == 1
    assert not await users.login("alice", "guess-1", "192.0.2.1", "restconf")  # refuted
    assert users.logins.counters.checked == 1


async def test_login_repeated_wrong_password_is_no_new_guess(
        ds: Datastore, scrypt_calls: list[int]) -> None:
    await UserStore(ds).add("alice", "alice-password-1")
    users = UserStore(ds, logins=tight())
    users.verify("nobody", "warm-up")  # the dummy hash unknown names are checked against
    scrypt_calls.clear()
    for name in ("alice", "nobody", "disabled-or-not"):
        for _ in range(50):  # a client retrying an old password: one hash, then none
            assert not await users.login(name, "old-password", "192.0.2.1", "restconf")
    assert len(scrypt_calls) == 3 and users.logins.counters.checked == 3
    assert users.logins.counters.failed == 150 and users.logins.counters.throttled == 0
    assert await users.login("alice", "alice-password-1", "192.0.2.1", "restconf")
    await users.set_password("alice", "new-password-2")
    scrypt_calls.clear()
    assert not await users.login("alice", "old-password", "192.0.2.1", "restconf")
    assert len(scrypt_calls) == 1  # a new hash: a new password to check against


async def test_a_password_set_through_the_server_passes_the_throttle(
        ds: Datastore, scrypt_calls: list[int]) -> None:
    users = UserStore(ds, logins=tight())
    await users.add("admin", "admin-password-1")
    for i in range(10):
        with contextlib.suppress(Throttled):
            await users.login("admin", f"guess-{i}", "127.0.0.1", "restconf")
    with pytest.raises(Throttled):
        await users.login("admin", "admin-password-1-not", "127.0.0.1", "restconf")
    await users.set_password("admin", "recovered-password")  # nfo user passwd
    scrypt_calls.clear()
    assert await users.login("admin", "recovered-password", "127.0.0.1", "netconf")
    assert scrypt_calls == []
    await users.unlock("admin")  # nfo user unlock
    assert not await users.login("admin", "another-guess", "127.0.0.1", "netconf")
    for i in range(10):
        with contextlib.suppress(Throttled):
            await users.login("admin", f"more-guesses-{i}", "127.0.0.1", "restconf")
    with pytest.raises(InvalidValue):
        await users.unlock("admin", "not-the-password")
    fresh = UserStore(ds, logins=users.logins)  # nothing remembered
    with pytest.raises(Throttled):
        await fresh.login("admin", "recovered-password", "127.0.0.1", "restconf")
    await fresh.unlock("admin", "recovered-password")  # nfo user unlock --with-password
    scrypt_calls.clear()
    assert await fresh.login("admin", "recovered-password", "127.0.0.1", "restconf")
    assert scrypt_calls == []
    with pytest.raises(DataMissing):
        await fresh.unlock("nobody")


async def test_login_counters_are_operational_data(ds: Datastore) -> None:
    await UserStore(ds).add("alice", "alice-password-1")
    users = UserStore(ds, logins=tight())
    users.register()
    try:
        for i in range(6):
            with contextlib.suppress(Throttled):
                await users.login("alice", f"guess-{i}", "192.0.2.1", "restconf")
        await users.login("ghost", "guess", "192.0.2.1", "restconf")
        users.login_failed("alice", "192.0.2.2", "netconf", "public key not authorised")
        with ds.get("operational", "/nfo-users:users") as t:
            doc = json.loads(t.print(Fmt.JSON))["nfo-users:users"]
        assert doc["login-statistics"] == {"failed-logins": "8", "checked-passwords": "3",
                                           "throttled-logins": "4"}
        alice = next(u for u in doc["user"] if u["name"] == "alice")
        assert alice["failed-logins"] == "7"
        assert alice["last-failed-login"].endswith("Z") or "+" in alice["last-failed-login"]
        assert not any(u["name"] == "ghost" for u in doc["user"])
        with ds.get("running", "/nfo-users:users") as t:
            assert "login-statistics" not in t.print(Fmt.JSON)
    finally:
        users.unregister()

