"""What the web UI's RESTCONF extensions cost (docs/ui-api.md), over a real server.

- the schema digest of the default module set: built (first request of a fresh
  process's schema) and served from its cache, beside a GET of the RESTCONF root;
- the values of ``nf-instance=<new>/vim`` (a leafref to VIM accounts) with N VIM
  accounts in running (default 10,000), default limit 50, beside a plain GET of
  the same list (``/restconf/data/nfo-vim:vims``), as an administrator and as a user
  under a rule that hides some accounts;
- an access request for 100 paths.

Each figure is the median of ``--rounds`` requests over one keep-alive connection
(the loopback HTTP round trip included in every row, so the ratios compare the work).

Run: ``.venv/bin/python bench/bench_ui_api.py [--vims 10000] [--rounds 21]``;
``--smoke`` is a seconds-long run for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import uvicorn
from starlette.requests import Request

from nfo.datastore import Datastore, SqliteStorage
from nfo.protocol.uischema import digest
from nfo.restconf.app import create_app
from nfo.schema import Schema

VIMS = "/restconf/data/nfo-vim:vims"
FIELD = "nfo-instances:nf-instances/nf-instance=new-one/vim"


def vims(n: int) -> str:
    return json.dumps({"nfo-vim:vims": {"vim": [
        {"name": f"vim-{k:05d}", "type": "nfo-vim:sim"} for k in range(n)]}})


def rules(n: int) -> str:
    hidden = [{"name": f"h{k}", "module-name": "nfo-vim", "access-operations": "read",
               "path": f"/nfo-vim:vims/vim[name='vim-{k:05d}']", "action": "deny"}
              for k in range(0, n, max(1, n // 20))]
    return json.dumps({"ietf-netconf-acm:nacm": {
        "groups": {"group": [{"name": "admin", "user-name": ["root"]},
                             {"name": "ops", "user-name": ["noc"]}]},
        "rule-list": [
            {"name": "admin", "group": ["admin"], "rule": [
                {"name": "all", "module-name": "*", "access-operations": "*",
                 "action": "permit"}]},
            {"name": "ops", "group": ["ops"], "rule": hidden}]}})


async def header_user(request: Request) -> str:
    return request.headers.get("x-bench-user", "root")


async def median_ms(rounds: int, call: Callable[[], Awaitable[httpx.Response]]) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        r = await call()
        times.append(time.perf_counter() - t)
        if r.status_code >= 400:
            raise SystemExit(f"{r.request.url}: {r.status_code} {r.text[:500]}")
    return statistics.median(times) * 1000


async def run(n: int, rounds: int) -> None:
    t = time.perf_counter()
    fresh = Schema()
    built = digest(fresh)
    build_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    digest(fresh)
    cached_ms = (time.perf_counter() - t) * 1000
    with tempfile.TemporaryDirectory() as tmp:
        schema = Schema()
        ds = Datastore.open(schema, SqliteStorage(Path(tmp) / "nfo.db"))
        await ds.start()
        server: uvicorn.Server | None = None
        task: asyncio.Task[None] | None = None
        try:
            async with ds.internal_session("bench") as s:
                await s.edit("running", vims(n), "json")
                await s.edit("running", rules(n), "json")
            app = create_app(ds, auth=header_user)
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                   lifespan="off", log_level="warning"))
            task = asyncio.get_running_loop().create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                         headers={"Accept": "application/json"}) as c:
                rows = await measure(c, rounds)
        finally:
            if server is not None and task is not None:
                server.should_exit = True
                await task
            await ds.close()
    print(f"schema digest of the default module set: built {build_ms:.1f} ms "
          f"({len(built) // 1024} KiB), from the cache {cached_ms * 1000:.1f} us")
    print(f"\nover HTTP, {n} VIM accounts in running, median of {rounds} requests (ms)")
    print(f"{'request':58} {'ms':>9} {'vs ref':>7}")
    for name, ms, ref in rows:
        print(f"{name:58} {ms:9.2f} {ms / ref if ref else float('nan'):7.2f}")


async def measure(c: httpx.AsyncClient, rounds: int) -> list[tuple[str, float, float]]:
    noc = {"x-bench-user": "noc"}
    root = await median_ms(rounds, lambda: c.get("/restconf"))
    schema = await median_ms(rounds, lambda: c.get("/restconf/ui/schema"))
    etag = (await c.get("/restconf/ui/schema")).headers["etag"]
    revalidated = await median_ms(rounds, lambda: c.get("/restconf/ui/schema",
                                                        headers={"If-None-Match": etag}))
    plain = await median_ms(rounds, lambda: c.get(VIMS))
    plain_noc = await median_ms(rounds, lambda: c.get(VIMS, headers=noc))
    values = await median_ms(rounds, lambda: c.get("/restconf/ui/values",
                                                   params={"path": FIELD}))
    values_noc = await median_ms(rounds, lambda: c.get("/restconf/ui/values",
                                                       params={"path": FIELD}, headers=noc))
    prefixed = await median_ms(rounds, lambda: c.get(
        "/restconf/ui/values", params={"path": FIELD, "prefix": "vim-0001", "limit": "5"}))
    paths = [f"nfo-vim:vims/vim=vim-{k:05d}/type" for k in range(100)]
    access = await median_ms(rounds, lambda: c.post("/restconf/ui/access",
                                                    json={"paths": paths}, headers=noc))
    return [
        ("reference: GET /restconf (the API root)", root, root),
        ("GET /restconf/ui/schema (cached digest)", schema, root),
        ("GET /restconf/ui/schema, If-None-Match -> 304", revalidated, root),
        ("reference: GET /restconf/data/nfo-vim:vims (admin)", plain, plain),
        ("values of nf-instance=<new>/vim (admin)", values, plain),
        ("values, prefix and limit 5 (admin)", prefixed, plain),
        ("reference: GET /restconf/data/nfo-vim:vims (noc, rules)", plain_noc, plain_noc),
        ("values of nf-instance=<new>/vim (noc, rules)", values_noc, plain_noc),
        ("POST /restconf/ui/access, 100 paths (noc)", access, root),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vims", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--smoke", action="store_true", help="a seconds-long run for CI")
    a = p.parse_args()
    if a.smoke:
        a.vims, a.rounds = 200, 3
    asyncio.run(run(a.vims, a.rounds))


if __name__ == "__main__":
    main()
