"""What a password flood gets through: parallel NETCONF connections and RESTCONF clients
guess ``admin``'s password for a while, from loopback addresses of their own, against
in-process servers (RESTCONF on uvicorn, NETCONF on asyncssh) sharing one user store;
meanwhile ``admin`` logs in every second on each front end, from 127.0.0.1, with
nothing remembered (every login of it is hashed).

Reported: the passwords the server hashed per second (counted where the hash runs, so
the figure is comparable between builds), the answers the guessers got, and how many
of admin's logins got in.  Runs against any build with the same user-store API: the
A/B is ``PYTHONPATH=<other build's source> .venv/bin/python bench/bench_logins.py``.

Run: ``.venv/bin/python bench/bench_logins.py [--seconds 20] [--netconf 40]
[--restconf 20] [--addresses 127.0.0.2,127.0.0.3]``; ``--smoke`` is a seconds-long run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import uvicorn

from nfo.datastore import Datastore, SqliteStorage
from nfo.datastore import users as users_module
from nfo.datastore.users import UserStore
from nfo.netconf.server import start_netconf
from nfo.restconf.server import build_app
from nfo.schema import Schema

PASSWORD = "bench-admin-password"
PATH = "/restconf/data/nfo-users:users"


async def run(args: argparse.Namespace) -> None:
    logging.getLogger("nfo").setLevel(logging.ERROR)
    hashed = itertools.count()
    real_check = users_module._check

    def counting(stored: Any, password: str) -> bool:
        next(hashed)
        return bool(real_check(stored, password))

    users_module._check = counting
    tmp = Path(tempfile.mkdtemp(prefix="nfo-bench-logins-"))
    ds = Datastore.open(Schema(), SqliteStorage(tmp / "nfo.db"))
    await ds.start()
    users = UserStore(ds, cache_seconds=0)
    await users.ensure_admin(PASSWORD)
    nc = await start_netconf(ds, users, "127.0.0.1", 0, tmp / "keys")
    http = uvicorn.Server(uvicorn.Config(build_app(ds, users=users), host="127.0.0.1",
                                         port=0, lifespan="off", log_level="critical"))
    task = asyncio.get_running_loop().create_task(http.serve())
    while not http.started:
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{http.servers[0].sockets[0].getsockname()[1]}"
    addresses = args.addresses.split(",")
    stop = asyncio.Event()
    answers: Counter[str] = Counter()
    admin: Counter[str] = Counter()
    guesses = itertools.count()

    async def restconf_guesser(address: str) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=address)
        async with httpx.AsyncClient(base_url=base, transport=transport, timeout=60,
                                     trust_env=False) as c:
            while not stop.is_set():
                r = await c.get(PATH, auth=("admin", f"guess-{next(guesses)}"))
                answers[f"restconf {r.status_code}"] += 1

    class Guesser(asyncssh.SSHClient):
        def password_auth_requested(self) -> str:
            answers["netconf offers"] += 1
            return f"guess-{next(guesses)}"

    async def netconf_guesser(address: str) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncssh.Error, OSError):
                conn = await asyncssh.connect(
                    "127.0.0.1", nc.port, local_addr=(address, 0), username="admin",
                    known_hosts=None, client_keys=None, agent_path=None, password=None,
                    preferred_auth="password", client_factory=Guesser, login_timeout=60)
                conn.close()

    async def administrator() -> None:
        while not stop.is_set():
            await asyncio.sleep(1)
            async with httpx.AsyncClient(base_url=base, timeout=60, trust_env=False) as c:
                r = await c.get(PATH, auth=("admin", PASSWORD))
                admin[f"restconf {r.status_code}"] += 1
            try:
                async with asyncssh.connect("127.0.0.1", nc.port, username="admin",
                                            password=PASSWORD, known_hosts=None,
                                            client_keys=None, agent_path=None,
                                            preferred_auth="password", login_timeout=60):
                    admin["netconf in"] += 1
            except asyncssh.Error:
                admin["netconf refused"] += 1

    tasks = [asyncio.create_task(restconf_guesser(addresses[i % len(addresses)]))
             for i in range(args.restconf)]
    tasks += [asyncio.create_task(netconf_guesser(addresses[i % len(addresses)]))
              for i in range(args.netconf)]
    tasks.append(asyncio.create_task(administrator()))
    began = time.monotonic()
    start_hashes = next(hashed)
    await asyncio.sleep(args.seconds)
    done_hashes = next(hashed) - 1
    elapsed = time.monotonic() - began
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    http.should_exit = True
    await task
    await nc.stop()
    await ds.close()
    users_module._check = real_check

    rate = (done_hashes - start_hashes) / elapsed
    print(f"login flood: {args.netconf} NETCONF connections and {args.restconf} RESTCONF "
          f"clients from {args.addresses}, {elapsed:.0f} s")
    print(f"  passwords hashed per second (server side): {rate:.1f}")
    for key, n in sorted(answers.items()):
        print(f"  guessers: {key}: {n} ({n / elapsed:.0f}/s)")
    print(f"  admin from 127.0.0.1, once a second: {dict(sorted(admin.items()))}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--netconf", type=int, default=40, help="parallel NETCONF guessers")
    p.add_argument("--restconf", type=int, default=20, help="parallel RESTCONF guessers")
    p.add_argument("--addresses", default="127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5",
                   help="the guessers' source addresses (comma-separated)")
    p.add_argument("--smoke", action="store_true", help="a seconds-long run")
    args = p.parse_args()
    if args.smoke:
        args.seconds, args.netconf, args.restconf = 2.5, 2, 2
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
