"""Authentication under attack, as clients meet it on both front ends: real servers on
127.0.0.1 (uvicorn with httpx, asyncssh with asyncssh and ncclient clients) sharing one
datastore, one user store and one login throttle, and guessing clients bound to other
loopback addresses (127.0.0.2 and up).

What is checked: a flood of wrong passwords from many concurrent clients does not keep
the administrator out on either front end; guesses are counted by the server's own
counters (never by the wall clock) and stay within the account's and the address's
budgets however the guessers rotate addresses or account names; failures are logged
without the password, and summarised when there are many; the counters are operational
data; a short password is refused by set-password on both front ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest
import uvicorn
from ncclient.operations import RPCError
from ncclient.transport import session as nc_session
from ncclient.xml_ import to_ele

from nfo.datastore import Datastore
from nfo.datastore.logins import Budget, LoginGuard, LoginLimits
from nfo.datastore.users import ADMIN, UserStore
from nfo.netconf.messages import BASE_1_1, NC_NS
from nfo.netconf.server import NetconfServer, start_netconf
from nfo.restconf.server import build_app
from nfo.wire.framing import Decoder, encode_eom
from tests.netutil import netconf_run
from tests.waiting import wait_for

nc_session.TICK = 0.001

PW = "admin-password-1"
JSON = "application/yang-data+json"
USERS_NS = "urn:nfo:users"
STATS = "/restconf/data/nfo-users:users/login-statistics"
NEVER = 1e-9  # a refill rate that adds nothing within a test
HELLO = (f'<hello xmlns="{NC_NS}"><capabilities><capability>{BASE_1_1}</capability>'
         "</capabilities></hello>").encode()


@dataclass
class Env:
    ds: Datastore
    users: UserStore
    base: str
    nc: NetconfServer

    @property
    def counters(self) -> Any:
        return self.users.logins.counters

    def http(self, address: str = "127.0.0.1", **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=30, trust_env=False,
                                 headers={"Accept": JSON},
                                 transport=httpx.AsyncHTTPTransport(local_address=address),
                                 **kw)

    async def nc_run(self, fn: Callable[[Any], Any], user: str = ADMIN,
                     password: str = PW) -> Any:
        return await netconf_run(self.nc.port, user, password, fn, timeout=30)


Start = Callable[..., Awaitable[Env]]


@pytest.fixture
async def start(ds: Datastore, tmp_path: Path) -> AsyncIterator[Start]:
    """Start both servers on one user store; ``limits`` None: the defaults, as ``nfo serve``
    has them.  ``cache_seconds=0``: no password is remembered, so every login is hashed
    (and so goes through the throttle)."""
    stops: list[Callable[[], Awaitable[None]]] = []

    async def started(limits: LoginLimits | None = None, cache_seconds: float = 60.0) -> Env:
        users = UserStore(ds, logins=LoginGuard(limits), cache_seconds=cache_seconds)
        await users.ensure_admin(PW)
        users.register()
        nc = await start_netconf(ds, users, "127.0.0.1", 0, tmp_path / "keys",
                                 auth_backoff=0.01)
        http = uvicorn.Server(uvicorn.Config(build_app(ds, users=users), host="127.0.0.1",
                                             port=0, lifespan="off", log_level="warning"))
        task = asyncio.get_running_loop().create_task(http.serve())

        async def stop() -> None:
            http.should_exit = True
            await task
            await nc.stop()
            users.unregister()
        stops.append(stop)
        while not http.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        port = http.servers[0].sockets[0].getsockname()[1]
        return Env(ds, users, f"http://127.0.0.1:{port}", nc)

    try:
        yield started
    finally:
        for stop in stops:
            await stop()


# -- guessing clients ---------------------------------------------------------------------


async def restconf_guesser(env: Env, address: str, name: Callable[[int], str],
                           stop: asyncio.Event, seen: Counter[int], limit: int = 10**9) -> None:
    """Wrong passwords (never the same twice) over RESTCONF from ``address`` until
    ``stop`` (or ``limit`` of them)."""
    tag = secrets.token_hex(4)
    async with env.http(address) as c:
        for i in range(limit):
            if stop.is_set():
                return
            r = await c.get(STATS, auth=(name(i), f"wrong-{tag}-{i}"))
            seen[r.status_code] += 1
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
                await asyncio.sleep(0.01)  # refused cheaply; no need to spin the machine


def guesser(tag: str, tries: list[int]) -> Callable[[], asyncssh.SSHClient]:
    """An SSH client that offers a new wrong password each time it is asked."""
    offered = iter(range(10**9))

    class Guesser(asyncssh.SSHClient):
        def password_auth_requested(self) -> str:
            tries.append(1)
            return f"wrong-{tag}-{next(offered)}"

    return Guesser


async def netconf_guesser(env: Env, address: str, name: Callable[[int], str],
                          stop: asyncio.Event, tries: list[int], limit: int = 10**9) -> None:
    """SSH connections from ``address`` offering wrong passwords (never the same twice;
    the server allows three per connection) until ``stop`` (or ``limit`` connections)."""
    tag = secrets.token_hex(4)
    for i in range(limit):
        if stop.is_set():
            return
        with contextlib.suppress(asyncssh.Error, OSError):
            conn = await asyncssh.connect(
                "127.0.0.1", env.nc.port, local_addr=(address, 0), username=name(i),
                known_hosts=None, client_keys=None, agent_path=None, password=None,
                preferred_auth="password", client_factory=guesser(f"{tag}-{i}", tries),
                login_timeout=30)
            conn.close()
            raise AssertionError("a wrong password logged in")


async def netconf_hello(env: Env, address: str, user: str = ADMIN,
                        password: str = PW) -> bytes:
    """Log in over NETCONF from ``address`` and return the server's hello."""
    async with asyncssh.connect("127.0.0.1", env.nc.port, local_addr=(address, 0),
                                username=user, password=password, known_hosts=None,
                                client_keys=None, agent_path=None,
                                preferred_auth="password") as conn:
        w, r, _ = await conn.open_session(subsystem="netconf", encoding=None)
        dec = Decoder()
        while (msg := dec.next()) is None:
            data = await asyncio.wait_for(r.read(65536), 30)
            assert data, "the session closed before the hello"
            dec.feed(data)
        w.write(encode_eom(HELLO))
        w.close()
        return msg


async def finish(tasks: list[asyncio.Task[None]], stop: asyncio.Event | None = None) -> None:
    """Wait for the guessers (told to stop first when ``stop`` is given)."""
    if stop is not None:
        stop.set()
    async with asyncio.timeout(300):  # a failure guard, not a measurement
        await asyncio.gather(*tasks)


# -- the flood and the administrator -----------------------------------------------------


async def test_a_flood_of_wrong_passwords_does_not_lock_the_administrator_out(
        start: Start) -> None:
    """20 RESTCONF clients and 8 NETCONF connections at a time guess admin's password
    from 127.0.0.2-5 with the server's default limits; meanwhile admin logs in on both
    front ends at the first attempt, from addresses of its own, nothing remembered."""
    env = await start(cache_seconds=0)
    stop = asyncio.Event()
    seen: Counter[int] = Counter()
    tries: list[int] = []
    flooders = [f"127.0.0.{2 + i % 4}" for i in range(28)]
    began = time.monotonic()
    tasks = [asyncio.create_task(restconf_guesser(env, a, lambda _: ADMIN, stop, seen))
             for a in flooders[:20]]
    tasks += [asyncio.create_task(netconf_guesser(env, a, lambda _: ADMIN, stop, tries))
              for a in flooders[20:]]
    try:
        await wait_for(lambda: env.counters.throttled >= 200 and seen[401] and tries, 120,
                       "the flood to be throttled", show=lambda: (env.counters, seen))
        async with env.http("127.0.0.1") as c:
            r = await c.get(STATS, auth=(ADMIN, PW))
        assert r.status_code == 200, r.text
        stats = r.json()["nfo-users:login-statistics"]
        assert int(stats["throttled-logins"]) >= 200
        assert b"<session-id>" in await netconf_hello(env, "127.0.0.10")
    finally:
        await finish(tasks, stop)
    elapsed = time.monotonic() - began  # an upper bound of the time the flood had
    assert seen[429] >= 200 and seen[200] == 0
    c = env.counters
    # the flood's checked guesses stayed in the account's budget: 10, then one per 10 s
    assert c.checked - 2 <= 10 + 0.1 * elapsed + 1
    assert c.failed >= 200 + c.checked - 2 and c.throttled >= 200


async def test_the_administrator_logs_in_where_it_did_before_whatever_the_addresses(
        start: Start) -> None:
    """Guessers on more new addresses (127.0.0.2-25) than the account has tokens spend
    even the reserve of new addresses; an address admin logged in from before still
    gets through, on both front ends."""
    env = await start(LoginLimits(account=Budget(10, NEVER, 6)), cache_seconds=0)
    async with env.http("127.0.0.1") as c:
        assert (await c.get(STATS, auth=(ADMIN, PW))).status_code == 200
    stop = asyncio.Event()
    seen: Counter[int] = Counter()
    tasks = [asyncio.create_task(restconf_guesser(env, f"127.0.0.{2 + i}",
                                                  lambda _: ADMIN, stop, seen, limit=5))
             for i in range(24)]
    await finish(tasks)
    assert env.counters.checked <= 1 + 10
    async with env.http("127.0.0.30") as c:  # a new address: nothing left for it
        assert (await c.get(STATS, auth=(ADMIN, PW))).status_code == 429
    async with env.http("127.0.0.1") as c:
        r = await c.get(STATS, auth=(ADMIN, PW))
        assert r.status_code == 200, r.text
    await env.nc_run(lambda m: m.get_config("running"))  # ncclient, from 127.0.0.1 too


# -- the budgets hold, however the guessers rotate ------------------------------------------


async def test_netconf_guesses_are_throttled_per_account_and_per_address(
        start: Start) -> None:
    limits = LoginLimits(account=Budget(10, NEVER, 6), address=Budget(30, NEVER),
                         server=Budget(1000, NEVER, 10))
    env = await start(limits)
    stop = asyncio.Event()
    tries: list[int] = []
    # 40 connections at a time from 8 addresses, all at admin
    tasks = [asyncio.create_task(netconf_guesser(env, f"127.0.0.{2 + i % 8}",
                                                 lambda _: ADMIN, stop, tries, limit=4))
             for i in range(40)]
    await finish(tasks)
    assert len(tries) >= 40 * 4 * 3  # (a fourth offer may be in flight at the disconnect)
    c = env.counters
    assert c.failed == 40 * 4 * 3  # three failures per connection, then it is cut
    assert c.checked <= 10  # the account's budget, whatever the addresses
    assert c.throttled == c.failed - c.checked
    assert c.accounts[ADMIN][0] == c.failed
    # one address, 120 account names: the address's budget
    before = env.counters.checked
    stop = asyncio.Event()
    tasks = [asyncio.create_task(netconf_guesser(env, "127.0.0.20",
                                                 lambda i, k=k: f"user{k}-{i}", stop, tries,
                                                 limit=4)) for k in range(10)]
    await finish(tasks)
    assert env.counters.checked - before == 30


async def test_restconf_guesses_are_throttled_per_account_and_per_address(
        start: Start) -> None:
    limits = LoginLimits(account=Budget(10, NEVER, 6), address=Budget(30, NEVER),
                         server=Budget(1000, NEVER, 10))
    env = await start(limits)
    stop = asyncio.Event()
    seen: Counter[int] = Counter()
    tasks = [asyncio.create_task(restconf_guesser(env, f"127.0.0.{2 + i % 8}",
                                                  lambda _: ADMIN, stop, seen, limit=25))
             for i in range(40)]
    await finish(tasks)
    assert sum(seen.values()) == 1000
    checked = env.counters.checked
    assert checked == seen[401] <= 10 and seen[429] == 1000 - checked
    seen.clear()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(restconf_guesser(env, "127.0.0.20",
                                                  lambda i, k=k: f"user{k}-{i}", stop, seen,
                                                  limit=20)) for k in range(10)]
    await finish(tasks)
    assert seen[401] == 30 and seen[429] == 170
    assert env.counters.checked == checked + 30


# -- the record ---------------------------------------------------------------------------


async def test_failures_are_logged_without_the_password_and_summarised(
        start: Start, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "nfo")
    env = await start(LoginLimits(log_lines=4, log_interval=2.0))
    async with env.http("127.0.0.2") as c:
        r = await c.get(STATS, auth=(ADMIN, "Secret-Guess-1"))
        assert r.status_code == 401
    with pytest.raises(asyncssh.PermissionDenied):
        await netconf_hello(env, "127.0.0.3", password="Secret-Guess-2")
    lines = [r.getMessage() for r in caplog.records if r.name == "nfo.logins"]
    assert lines[:2] == [
        "login failed: user 'admin' from 127.0.0.2 over restconf: wrong password",
        "login failed: user 'admin' from 127.0.0.3 over netconf: wrong password"]
    stop = asyncio.Event()
    seen: Counter[int] = Counter()
    await asyncio.gather(*(restconf_guesser(env, "127.0.0.4", lambda i: f"nobody{i % 3}",
                                            stop, seen, limit=10) for _ in range(3)))

    def summaries() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.name == "nfo.logins" and "more times in the last" in r.getMessage()]
    await wait_for(summaries, 30, "the summary")
    lines = [r.getMessage() for r in caplog.records if r.name == "nfo.logins"]
    one_by_one = [x for x in lines if x.startswith("login failed: ")]
    counted = sum(int(x.split()[2]) for x in summaries())
    assert len(one_by_one) + counted == env.counters.failed == 32
    assert len(one_by_one) <= 4 * 2  # at most two intervals went by
    assert "user 'nobody" in summaries()[0] and "from 127.0.0.4 over restconf" in summaries()[0]
    text = caplog.text
    assert "Secret-Guess" not in text and "wrong-" not in text and PW not in text


async def test_counters_are_operational_data_on_both_front_ends(start: Start) -> None:
    env = await start()
    async with env.http("127.0.0.2") as c:
        for i in range(3):
            assert (await c.get(STATS, auth=(ADMIN, f"wrong-{i}"))).status_code == 401
    async with env.http() as c:
        r = await c.get("/restconf/data/nfo-users:users", auth=(ADMIN, PW))
        users = r.json()["nfo-users:users"]
    # (admin's own password was set through this server: recognised, not hashed)
    assert users["login-statistics"] == {"failed-logins": "3", "checked-passwords": "3",
                                         "throttled-logins": "0"}
    admin = next(u for u in users["user"] if u["name"] == ADMIN)
    assert admin["failed-logins"] == "3" and "last-failed-login" in admin
    flt = f'<users xmlns="{USERS_NS}"><login-statistics/></users>'
    xml = await env.nc_run(lambda m: m.get(("subtree", flt)).data_xml)
    assert "<failed-logins>3</failed-logins>" in xml
    assert "<checked-passwords>" in xml and "<throttled-logins>0</throttled-logins>" in xml


# -- the password minimum -------------------------------------------------------------------


def set_password_rpc(user: str, password: str) -> str:
    return (f'<action xmlns="urn:ietf:params:xml:ns:yang:1"><users xmlns="{USERS_NS}"><user>'
            f"<name>{user}</name><set-password><password>{password}</password></set-password>"
            "</user></users></action>")


async def test_set_password_refuses_short_passwords_on_both_front_ends(start: Start) -> None:
    env = await start()
    await env.users.add("noc", "noc-password-1")
    for short in ("x", "seven-7", "\u00e9" * 7):
        async with env.http() as c:
            r = await c.post("/restconf/data/nfo-users:users/user=noc/set-password",
                             auth=(ADMIN, PW), headers={"Content-Type": JSON},
                             content=json.dumps({"nfo-users:input": {"password": short}}))
        assert r.status_code == 400, r.text
        err = r.json()["ietf-restconf:errors"]["error"][0]
        assert err["error-tag"] == "invalid-value"
        assert err["error-message"] == "a password is 8 to 1024 characters long"
        assert short not in r.text

        def call(m: Any, p: str = short) -> RPCError:
            with pytest.raises(RPCError) as info:
                m.dispatch(to_ele(set_password_rpc("noc", p)))
            return info.value
        nc_err = await env.nc_run(call)
        assert nc_err.tag == "invalid-value"
        assert nc_err.message == "a password is 8 to 1024 characters long"
        assert short not in nc_err.xml
    assert env.users.verify("noc", "noc-password-1")  # unchanged
    async with env.http() as c:
        r = await c.post("/restconf/data/nfo-users:users/user=noc/set-password",
                         auth=(ADMIN, PW), headers={"Content-Type": JSON},
                         content=json.dumps({"nfo-users:input": {"password": "eight-88"}}))
        assert r.status_code == 204, r.text
    assert env.users.verify("noc", "eight-88")
