"""``nfo serve``: compose the orchestrator with its embedded defaults and run it.

Today that is the datastore over SQLite in the state directory (module set
loaded, demo catalog and local VIM seeded on first start) and the workload
manager with every driver registered under ``nfo.drivers``; the front ends
attach here as they land.  The server holds the state directory's lock for its
whole life and answers ``nfo user`` on its control socket.  SIGINT and SIGTERM
shut down cleanly: nothing acknowledged is lost either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Any

from nfo.cli.control import ControlServer
from nfo.cli.demo import router_descriptor
from nfo.cli.moduleset import StateDir
from nfo.cli.statelock import StateLock
from nfo.collector import Collector
from nfo.datastore import Datastore, SqliteStorage, Storage
from nfo.datastore.handover import RpcHandover
from nfo.datastore.logins import LoginGuard, LoginLimits
from nfo.datastore.notifications import NFO_STREAM
from nfo.datastore.storage.etcd import EtcdStorage
from nfo.datastore.txrpcs import TransactionRpcs
from nfo.datastore.users import UserStore
from nfo.datastore.workers import Workers
from nfo.errors import InvalidValue, NfoError
from nfo.netconf.monitoring import Monitor
from nfo.netconf.server import NetconfOptions, start_netconf
from nfo.protocol.limits import Reclaimer, raise_open_files_limit
from nfo.registry import DriverRegistry
from nfo.restconf.server import RestconfOptions, start_server
from nfo.schema import Fmt
from nfo.workload import ACTION_PATHS, ACTION_TIMEOUT, OWNER, WorkloadManager

__all__ = [
    "DEMO_INSTANCE",
    "bootstrap_admin",
    "check_open_files",
    "ensure_demo_instance",
    "installation_id",
    "open_datastore",
    "open_storage",
    "serve",
    "start_manager",
]

log = logging.getLogger("nfo")

DEMO_INSTANCE = "demo-echo"


def installation_id(ds: Datastore) -> str:
    """A stable id for this state directory; drivers tag VIM resources with it."""
    tag = ds.storage.get_meta("installation-id")
    if not tag:
        tag = f"nfo-{uuid.uuid4().hex[:12]}"
        ds.storage.set_meta("installation-id", tag)
    return tag


def make_manager(ds: Datastore, state: StateDir, *, drivers_dir: Path | None = None,
                 **options: Any) -> WorkloadManager:
    """``drivers_dir``: where drivers keep what they know of their VIMs' workloads
    (default: the state directory); replicas on one host share it, so that the one that
    leads next adopts what the last one started."""
    registry = DriverRegistry.from_entry_points(drivers_dir or state.path,
                                                installation_id(ds))
    return WorkloadManager(ds, registry, **options)


async def start_manager(ds: Datastore, state: StateDir, **options: Any) -> WorkloadManager:
    """The workload manager, started: every instance loaded and resynced."""
    manager = make_manager(ds, state, **options)
    await manager.start()
    return manager


def open_storage(state: StateDir, store: str | None = None,
                 replica: str | None = None) -> Storage:
    """The state directory's SQLite file, or (``store``: ``etcd://...``) the etcd
    cluster shared with other replicas."""
    if store is None:
        return SqliteStorage(state.db)
    if not store.startswith("etcd://"):
        raise InvalidValue(f"--store: not an etcd://host:port,... address: {store!r}")
    st = EtcdStorage(store, replica=replica)
    print(f"nfo: joined the etcd cluster {', '.join(st.endpoints)} as replica "
          f"{st.replica} (etcd revision {st.revision})", flush=True)
    return st


async def open_datastore(state: StateDir, yang_dirs: list[Path],
                         workers: Workers | None = None, *,
                         notification_retention: Mapping[str, int] | None = None,
                         store: str | None = None, replica: str | None = None
                         ) -> Datastore:
    state.ensure()
    schema = state.schema(yang_dirs)
    ds = Datastore.open(schema, open_storage(state, store, replica), workers,
                        notification_retention=notification_retention)
    await ds.start()
    if ds.info("running").revision == 0:
        demo = resources.files("nfo.yang").joinpath("nfo-demo-catalog.json").read_text()
        router = {"nfo-catalog:catalog": {"nf-descriptor": [router_descriptor()]}}
        async with ds.internal_session("nfo") as s:
            await s.edit_many("running", [demo, json.dumps(router)], Fmt.JSON)
        log.info("first start: seeded the local VIM and the demo catalog")
    return ds


async def _print_state_changes(ds: Datastore, demo_port: int | None) -> None:
    """Show every nf-instance state change on the console; answer-check the demo NF.
    Subscribed to the ``nfo`` stream, so configuration changes never reach it."""
    async for ev in ds.notifications.subscribe(NFO_STREAM):
        content = getattr(ev, "content", None)
        if content is None:
            continue
        body = json.loads(content).get("nfo-instances:nf-instance-state-change")
        if body is None:
            continue
        reason = f" ({body['reason']})" if body.get("reason") else ""
        print(f"nfo: nf-instance {body['name']}: {body.get('old-status', '-')} -> "
              f"{body['new-status']}{reason}", flush=True)
        if body["name"] == DEMO_INSTANCE and body["new-status"] == "running" and demo_port:
            answer = await _udp_echo_check(demo_port)
            print(f"nfo: {DEMO_INSTANCE} answers on udp 127.0.0.1:{demo_port}: {answer}",
                  flush=True)


async def _udp_echo_check(port: int) -> str:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client,
                                                       remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(b"hello from nfo")
        return repr((await asyncio.wait_for(got, timeout=2)).decode())
    except TimeoutError:
        return "no answer within 2 s"
    finally:
        transport.close()


async def ensure_demo_instance(ds: Datastore, port: int) -> None:
    """Ask for one udp-echo NF (``demo-echo``) on the local VIM, if not there yet."""
    if ds.tree("running").node(
            f"/nfo-instances:nf-instances/nf-instance[name='{DEMO_INSTANCE}']") is not None:
        return
    async with ds.internal_session("nfo-demo") as s:
        await s.edit("running", json.dumps({"nfo-instances:nf-instances": {"nf-instance": [{
            "name": DEMO_INSTANCE, "descriptor": "udp-echo", "vim": "local",
            "parameter": [{"name": "port", "value": str(port)}]}]}}), Fmt.JSON)


async def bootstrap_admin(ds: Datastore) -> UserStore:
    """The user store with the server's one login throttle (both front ends log in
    through it), serving its set-password action and login counters; on first start
    create ``admin`` and its access rules (password from NFO_ADMIN_PASSWORD, else
    generated and printed this once)."""
    users = UserStore(ds, logins=LoginGuard(LoginLimits()))
    generated = await users.ensure_admin(os.environ.get("NFO_ADMIN_PASSWORD"))
    if generated is not None:
        print(f"nfo: created user 'admin' with password {generated} (shown once; set "
              "NFO_ADMIN_PASSWORD before the first start to choose it)", flush=True)
    users.register()
    return users


def check_open_files(restconf: RestconfOptions | None, netconf: NetconfOptions | None,
                     reserve: int = 128) -> None:
    """Raise the open-files limit to the hard limit; warn when the connection limits do
    not fit under it (beyond, accepting pauses instead of the limits answering)."""
    allowed = raise_open_files_limit()
    need = reserve
    if restconf is not None:
        need += restconf.limits.max_connections + restconf.limits.reserve
    if netconf is not None:
        need += netconf.max_connections
    if need > allowed:
        log.warning("the connection limits allow about %d open files but this process may "
                    "open %d (ulimit -n): lower the limits or raise the limit", need, allowed)


async def _front_ends(ds: Datastore, users: UserStore, state: StateDir,
                      restconf: RestconfOptions | None, netconf: NetconfOptions | None,
                      reclaimer: Reclaimer) -> tuple[Any, Any]:
    """RESTCONF and NETCONF, each if asked for, started and announced."""
    rest = nc = None
    try:
        if restconf is not None:
            rest = await start_server(ds, users, restconf, state.path, reclaimer=reclaimer)
            print(f"nfo: RESTCONF on {rest.scheme}://{restconf.host}:{rest.port}/restconf",
                  flush=True)
        if netconf is not None:
            nc = await start_netconf(
                ds, users, netconf.host, netconf.port, state.path / "ssh",
                login_timeout=netconf.login_timeout, max_message=netconf.max_message,
                message_timeout=netconf.message_timeout, max_sessions=netconf.max_sessions,
                max_sessions_per_user=netconf.max_sessions_per_user,
                max_startups=netconf.max_startups, monitor=Monitor(ds), reclaimer=reclaimer)
            print(f"nfo: NETCONF over SSH on {netconf.host}:{nc.port}", flush=True)
    except BaseException:
        if rest is not None:
            await rest.stop()
        raise
    return rest, nc


async def _stop_serving(ds: Datastore, control: ControlServer, rest: Any, nc: Any,
                        users: UserStore, transactions: TransactionRpcs) -> None:
    """The control socket, then the subscriptions: an open event stream (SSE, a NETCONF
    notifier) ends with them, and the front ends then stop at once (new changes are
    still logged); then what they registered."""
    await control.stop()
    await ds.notifications.close()
    if nc is not None:
        await nc.stop()
    if rest is not None:
        await rest.stop()
    users.unregister()
    transactions.unregister()


REPLICAS = "/nfo-replicas:replicas"
"""Where a replica's operational state lists the replicas and what each leads."""

LEASE_TTL = 5
"""Seconds the workload manager's leader keeps its lease without renewing it: the
longest another replica waits to take over from one that died or stood still."""


async def _lead(ds: Datastore, state: StateDir, storage: EtcdStorage,
                concurrency: int, drivers_dir: Path | None) -> None:
    """Run the workload manager whenever this replica leads it, never when it does
    not; on cancellation, stop it and hand the lead over at once.

    While it does not lead, a manager that only checks (``reconciles=False``) refuses
    the writes the leader's would, so a write is judged alike through every replica;
    and the manager's actions are handed over to the leader (:class:`RpcHandover`).
    Each side hands over to the other once in place, so no write slips through
    unchecked and no action finds nobody to serve it."""

    def checking() -> WorkloadManager:
        checks = make_manager(ds, state, drivers_dir=drivers_dir, reconciles=False)
        checks.begin()
        return checks

    handover = RpcHandover(ds, storage, ACTION_PATHS, timeout=ACTION_TIMEOUT + 10)
    handover.hand_over()
    checks: WorkloadManager | None = checking()
    try:
        while True:
            held = await storage.lead("workload", ttl=LEASE_TTL, owner=OWNER)
            print(f"nfo: replica {storage.replica} leads the workload manager", flush=True)
            manager = make_manager(ds, state, concurrency=concurrency, fence=held.valid,
                                   drivers_dir=drivers_dir)
            try:
                handover.take_back()  # its handlers next (no await between)
                loading = manager.begin()
                if checks is not None:
                    await checks.stop()
                    checks = None
                try:
                    await handover.serve()
                except NfoError as e:  # new calls are answered; waiting ones time out
                    log.warning("cannot take the calls waiting for the leader: %s", e)
                try:
                    await loading
                except NfoError as e:
                    if not held.lost.is_set():
                        raise
                    log.warning("the workload manager's start ended with the lead: %s", e)
                    continue
                n = manager.instances
                print(f"nfo: workload manager ready ({n} instance{'' if n == 1 else 's'})",
                      flush=True)
                await held.lost.wait()
                print(f"nfo: replica {storage.replica} no longer leads the workload "
                      "manager", flush=True)
            finally:
                await handover.stop_serving()
                if checks is None:
                    checks = checking()
                await manager.stop()
                handover.hand_over()
                await held.release()
    finally:
        handover.take_back()
        if checks is not None:
            await checks.stop()


async def _serve_replica(ds: Datastore, state: StateDir, *, ready: asyncio.Event | None,
                         concurrency: int, restconf: RestconfOptions | None,
                         netconf: NetconfOptions | None, storage: EtcdStorage,
                         drivers_dir: Path | None) -> None:
    """One replica of several on an etcd cluster: both front ends serve at once, the
    workload manager runs only while this replica leads it (:func:`_lead`)."""
    rest = nc = control = None
    reclaimer = Reclaimer()
    transactions = TransactionRpcs(ds)
    try:
        users = await bootstrap_admin(ds)
        transactions.register()
        control = ControlServer(state.control, users)
        await control.start()
        rest, nc = await _front_ends(ds, users, state, restconf, netconf, reclaimer)
    except BaseException:
        if control is not None:
            await control.stop()
        reclaimer.close()
        await ds.close()
        raise
    ds.provide_oper(REPLICAS, storage.replicas_json)
    leading = asyncio.get_running_loop().create_task(
        _lead(ds, state, storage, concurrency, drivers_dir), name="nfo-lead-workload")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    leading.add_done_callback(lambda _: stop.set())
    print(f"nfo: serving as replica {storage.replica} (running revision "
          f"{ds.info('running').revision}); Ctrl-C to stop", flush=True)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        leading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leading
        await _stop_serving(ds, control, rest, nc, users, transactions)
        reclaimer.close()
        await ds.close()
        print("nfo: stopped", flush=True)
    if not leading.cancelled() and (e := leading.exception()) is not None:
        raise e


async def serve(state: StateDir, yang_dirs: list[Path], *,
                ready: asyncio.Event | None = None, demo_port: int | None = None,
                concurrency: int = 64, restconf: RestconfOptions | None = None,
                netconf: NetconfOptions | None = None, workers: Workers | None = None,
                notification_retention: Mapping[str, int] | None = None,
                store: str | None = None, replica: str | None = None,
                drivers_dir: Path | None = None) -> None:
    """``notification_retention``: notifications each event stream keeps for replay.
    ``store``: an etcd cluster (``etcd://...``) shared with other replicas, each with a
    state directory of its own; ``replica``: this one's name there; ``drivers_dir``:
    where the drivers keep their records (see :func:`make_manager`)."""
    with StateLock.acquire(state, f"another nfo serves this state directory {state.path}"):
        await _serve(state, yang_dirs, ready=ready, demo_port=demo_port,
                     concurrency=concurrency, restconf=restconf, netconf=netconf,
                     workers=workers, notification_retention=notification_retention,
                     store=store, replica=replica, drivers_dir=drivers_dir)


async def _serve(state: StateDir, yang_dirs: list[Path], *,
                 ready: asyncio.Event | None, demo_port: int | None, concurrency: int,
                 restconf: RestconfOptions | None, netconf: NetconfOptions | None,
                 workers: Workers | None,
                 notification_retention: Mapping[str, int] | None,
                 store: str | None, replica: str | None,
                 drivers_dir: Path | None) -> None:
    check_open_files(restconf, netconf)
    collector = Collector()
    with collector.loading():
        ds = await open_datastore(state, yang_dirs, workers,
                                  notification_retention=notification_retention,
                                  store=store, replica=replica)
    if isinstance(ds.storage, EtcdStorage):
        await _serve_replica(ds, state, ready=ready, concurrency=concurrency,
                             restconf=restconf, netconf=netconf, storage=ds.storage,
                             drivers_dir=drivers_dir)
        return
    rest = None
    nc = None
    control = None
    manager: WorkloadManager | None = None
    held = ExitStack()
    reclaimer = Reclaimer()
    transactions = TransactionRpcs(ds)
    try:
        users = await bootstrap_admin(ds)
        transactions.register()
        control = ControlServer(state.control, users)
        await control.start()
        # the manager loads every instance while the front ends already serve; no
        # collection until it is done (Collector.loading), then the collector starts
        held.enter_context(collector.loading())
        manager = make_manager(ds, state, concurrency=concurrency, released=collector.trim,
                               drivers_dir=drivers_dir)
        loading = manager.begin()
        started = manager
        rest, nc = await _front_ends(ds, users, state, restconf, netconf, reclaimer)
    except BaseException:
        if manager is not None:
            await manager.stop()
        held.close()
        if rest is not None:
            await rest.stop()
        if control is not None:
            await control.stop()
        reclaimer.close()
        collector.close()  # what the load froze goes back to the collector
        await ds.close()
        raise
    printer = asyncio.get_running_loop().create_task(_print_state_changes(ds, demo_port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    failed: list[BaseException] = []

    def loaded(task: asyncio.Task[None]) -> None:
        held.close()
        if task.cancelled():
            return
        if (e := task.exception()) is not None:
            log.error("the workload manager could not start: %s", e)
            failed.append(e)
            stop.set()
            return
        collector.start()  # what is loaded now lives long: out of every full collection
        n = started.instances
        print(f"nfo: workload manager ready ({n} instance{'' if n == 1 else 's'})",
              flush=True)

    loading.add_done_callback(loaded)
    info = ds.info("running")
    mods = [m for m in ds.schema.modules() if m.implemented]
    log.info("nfo serving: state %s, %d modules, running at revision %d",
             state.path, len(mods), info.revision)
    print(f"nfo: serving state directory {state.path} (running revision {info.revision}, "
          f"{len(mods)} modules); Ctrl-C to stop", flush=True)
    if ready is not None:
        ready.set()
    try:
        if demo_port:   # waits for the workload manager's start, like any such write
            await ensure_demo_instance(ds, demo_port)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await _stop_serving(ds, control, rest, nc, users, transactions)
        await manager.stop()
        await printer
        reclaimer.close()
        held.close()
        collector.close()
        await ds.close()
        print("nfo: stopped", flush=True)
    if failed:
        raise failed[0]
