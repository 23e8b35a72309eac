"""The ``local`` driver against real processes and real sockets (127.0.0.1 only).

Every test gets its own state directory and owner tag; the ``h`` fixture closes
every driver the test built and then sweeps the state directory, so a failing
test still leaves no network function running.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import pytest

from nfo.drivers.local import LocalDriver
from nfo.drivers.local.udp_echo import main as udp_echo_main
from nfo.registry.protocol import (
    ComputeNeeds,
    Driver,
    DriverContext,
    InstantiateRequest,
    PermanentError,
    Status,
    TemporaryError,
    VimAccount,
    WorkloadState,
)
from tests.netutil import free_port, udp_roundtrip

CHILD = Path(__file__).with_name("_local_orchestrator_child.py")
PY = sys.executable
SLEEPER = ["{python}", "-c", "import time; time.sleep(60)"]


# -- helpers ----------------------------------------------------------------------------


def demo_udp_echo() -> dict[str, Any]:
    """The ``local`` container of the demo descriptor ``udp-echo``, as shipped."""
    text = resources.files("nfo.yang").joinpath("nfo-demo-catalog.json").read_text()
    catalog = json.loads(text)["nfo-catalog:catalog"]["nf-descriptor"]
    (desc,) = [d for d in catalog if d["id"] == "udp-echo"]
    local_container: dict[str, Any] = desc["local"]
    return local_container


def udp_echo(interval_ms: int = 50) -> dict[str, Any]:
    dep = demo_udp_echo()
    dep["readiness-probe"] = {**dep["readiness-probe"], "interval-ms": interval_ms}
    return dep


def request(instance: str, deployment: Mapping[str, Any],
            params: Mapping[str, str] | None = None) -> InstantiateRequest:
    return InstantiateRequest(instance, "test", deployment, params or {}, ComputeNeeds(), 30.0)


def proc_state(pid: int) -> str | None:
    """The /proc state letter of pid; None if there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()[0].decode()


def proc_alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z", "X")


def pid_of(resource_id: str) -> int:
    return int(resource_id.split("-")[1])


def tagged_processes(instance: str, owner: str) -> list[int]:
    """Live processes whose environment says NFO_INSTANCE=instance, NFO_OWNER=owner."""
    want = {f"NFO_INSTANCE={instance}".encode(), f"NFO_OWNER={owner}".encode()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if want <= env and proc_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


async def eventually(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


PR_SET_CHILD_SUBREAPER = 36


@contextlib.contextmanager
def child_subreaper() -> Iterator[None]:
    """Adopt orphaned descendants started meanwhile (Linux ``PR_SET_CHILD_SUBREAPER``).

    The NF whose orchestrator gets killed is then reparented to this test process,
    which reaps it (``reap_orphan``), instead of to the container's init, which
    may never reap it.  Without prctl the test still works; the zombie stays.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        active = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        active = False
    try:
        yield
    finally:
        if active:
            libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def reap_orphan(pid: int) -> None:
    """Reap ``pid`` if it became our child (see ``child_subreaper``) and has exited."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class Finals:
    """Collects on_final callbacks."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Status]] = []

    def __call__(self, resource_id: str, status: Status) -> None:
        self.events.append((resource_id, status))

    def of(self, resource_id: str) -> list[Status]:
        return [st for rid, st in self.events if rid == resource_id]

    async def wait(self, resource_id: str, state: WorkloadState, timeout: float = 10.0) -> Status:
        def hit() -> bool:
            return any(st.state is state for st in self.of(resource_id))
        await eventually(hit, timeout)
        return next(st for st in self.of(resource_id) if st.state is state)


class Harness:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.owner = f"test-{uuid.uuid4().hex[:12]}"
        self.drivers: list[LocalDriver] = []
        self.shared: dict[str, Any] = {}
        """What the registry shares between the local drivers it builds."""

    def driver(self, max_processes: int | None = None,
               finals: Finals | None = None) -> LocalDriver:
        settings: dict[str, Any] = {}
        if max_processes is not None:
            settings["max-processes"] = max_processes
        drv = LocalDriver(VimAccount("local", "nfo-vim:local", settings),
                          DriverContext(self.state_dir, self.owner, self.shared))
        if finals is not None:
            drv.on_final(finals)
        self.drivers.append(drv)
        return drv

    def record(self, instance: str) -> dict[str, Any] | None:
        path = self.state_dir / f"{instance}.json"
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    async def cleanup(self) -> None:
        for drv in self.drivers:
            await drv.close()
        # Terminate whatever is still recorded, through a fresh driver...
        sweeper = LocalDriver(VimAccount("local", "nfo-vim:local", {}),
                              DriverContext(self.state_dir, self.owner, self.shared))
        try:
            for rid in (await sweeper.list_resources()).values():
                with contextlib.suppress(Exception):
                    await sweeper.terminate(rid)
        finally:
            await sweeper.close()
        # ... and, should the driver be broken, by hand: anything carrying our tag.
        for path in self.state_dir.glob("*.json"):
            with contextlib.suppress(Exception):
                instance = json.loads(path.read_text())["instance"]
                for pid in tagged_processes(instance, self.owner):
                    os.killpg(pid, signal.SIGKILL)
        for child in list(self.shared.get("children", {}).values()):
            with contextlib.suppress(Exception):
                child.poll()


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path / "local-vim")
    try:
        yield harness
    finally:
        await harness.cleanup()


# -- the demo NF itself -----------------------------------------------------------------


async def test_udp_echo_module_echoes_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    errlog = tmp_path / "echo.log"
    with errlog.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            PY, "-m", "nfo.drivers.local.udp_echo", "--port", str(port),
            stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        await eventually(lambda: b"listening on 127.0.0.1:" in errlog.read_bytes())
        assert await udp_roundtrip(port, b"hello") == b"hello"
        assert await udp_roundtrip(port, b"\x00\xffbinary") == b"\x00\xffbinary"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 5) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert await udp_roundtrip(port, b"hello", 0.3) is None


def test_udp_echo_module_reports_a_busy_port(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        assert udp_echo_main(["--port", str(busy.getsockname()[1])]) == 1
    assert "cannot listen" in caplog.text


# -- driver basics ----------------------------------------------------------------------


async def test_driver_identity_and_protocol(h: Harness) -> None:
    drv = h.driver()
    assert isinstance(drv, Driver)
    assert (LocalDriver.name, LocalDriver.vim_type) == ("local", "nfo-vim:local")
    assert await drv.update("local-1-1", request("x", udp_echo())) is False
    assert await drv.list_resources() == {}
    assert await drv.find("nothing") is None
    assert (await drv.status("local-1-1")).state is WorkloadState.GONE
    assert (await drv.status("not-a-local-id")).state is WorkloadState.GONE
    await drv.terminate("not-a-local-id")  # nothing to stop: fine


def test_entry_point_names_the_driver() -> None:
    eps = [ep for ep in metadata.entry_points(group="nfo.drivers") if ep.name == "local"]
    if not eps:
        pytest.skip("nfo is not installed with the local entry point yet")
    assert eps[0].load() is LocalDriver


# -- lifecycle --------------------------------------------------------------------------


async def test_udp_echo_runs_answers_and_terminates(h: Harness) -> None:
    finals = Finals()
    drv = h.driver(finals=finals)
    port = free_port()
    rid = (await drv.instantiate(request("echo1", demo_udp_echo(), {"port": str(port)})))\
        .resource_id
    rec = h.record("echo1")
    assert rec is not None  # persisted before instantiate returned
    assert rid == f"local-{rec['pid']}-{rec['starttime']}"
    assert rec["owner"] == h.owner and rec["command"][0] == PY
    assert rec["command"][2:] == ["nfo.drivers.local.udp_echo", "--port", str(port)]

    await finals.wait(rid, WorkloadState.RUNNING)
    assert await drv.status(rid) == Status(WorkloadState.RUNNING)
    assert await udp_roundtrip(port, b"a real datagram") == b"a real datagram"
    assert await drv.list_resources() == {"echo1": rid}
    assert await drv.find("echo1") == rid
    log = (h.state_dir / "echo1.log").read_text()
    assert f"listening on 127.0.0.1:{port}" in log

    pid = pid_of(rid)
    await drv.terminate(rid)
    assert not proc_alive(pid)
    assert (await drv.status(rid)).state is WorkloadState.GONE
    assert await udp_roundtrip(port, b"anyone?", 0.3) is None
    assert h.record("echo1") is None
    assert await drv.list_resources() == {}
    await drv.terminate(rid)  # again: already gone is success
    assert [st.state for st in finals.of(rid)] == [WorkloadState.RUNNING]
    await drv.close()


async def test_process_that_exits_immediately_fails_with_its_status(h: Harness) -> None:
    finals = Finals()
    drv = h.driver(finals=finals)
    cmd = ["{python}", "-c", "import sys; print('bye-bye', file=sys.stderr); sys.exit(3)"]
    rid = (await drv.instantiate(request("quitter", {"command": cmd}))).resource_id
    st = await finals.wait(rid, WorkloadState.FAILED)
    assert "exited with status 3" in st.reason
    assert "bye-bye" in st.reason  # the tail of its log
    assert "--- nfo" not in st.reason  # ... its own output, not the driver's header
    assert await drv.status(rid) == st  # polling agrees with the callback
    assert await drv.list_resources() == {}
    await drv.terminate(rid)
    assert (await drv.status(rid)).state is WorkloadState.GONE
    assert h.record("quitter") is None
    await drv.close()


async def test_death_after_ready_is_reported(h: Harness) -> None:
    finals = Finals()
    drv = h.driver(finals=finals)
    port = free_port()
    rid = (await drv.instantiate(request("victim", udp_echo(), {"port": str(port)}))).resource_id
    await finals.wait(rid, WorkloadState.RUNNING)
    os.kill(pid_of(rid), signal.SIGKILL)
    st = await finals.wait(rid, WorkloadState.FAILED)
    assert "signal 9" in st.reason
    assert [s.state for s in finals.of(rid)] == [WorkloadState.RUNNING, WorkloadState.FAILED]
    assert (await drv.status(rid)).state is WorkloadState.FAILED
    await drv.terminate(rid)
    await drv.close()


async def test_never_ready_stays_initializing(h: Harness) -> None:
    finals = Finals()
    drv = h.driver(finals=finals)
    dep = {"command": SLEEPER,
           "readiness-probe": {"tcp": {"port": str(free_port(socket.SOCK_STREAM))},
                               "interval-ms": 50}}
    rid = (await drv.instantiate(request("sleepy", dep))).resource_id
    await asyncio.sleep(1.0)  # twenty probe rounds
    assert (await drv.status(rid)).state is WorkloadState.INITIALIZING
    assert finals.of(rid) == []
    assert proc_alive(pid_of(rid))
    await drv.terminate(rid)
    assert not proc_alive(pid_of(rid))
    assert (await drv.status(rid)).state is WorkloadState.GONE
    await drv.close()


async def test_tcp_probe_and_no_probe(h: Harness) -> None:
    finals = Finals()
    drv = h.driver(finals=finals)
    port = free_port(socket.SOCK_STREAM)
    server = ("import socket, time; s = socket.socket(); "
              f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)")
    tcp = await drv.instantiate(request("tcp", {
        "command": ["{python}", "-c", server],
        "readiness-probe": {"tcp": {"port": port}, "interval-ms": 50}}))
    plain = await drv.instantiate(request("plain", {"command": SLEEPER,
                                                    "readiness-probe": {"none": [None]}}))
    await finals.wait(tcp.resource_id, WorkloadState.RUNNING)
    await finals.wait(plain.resource_id, WorkloadState.RUNNING)
    assert (await drv.status(tcp.resource_id)).state is WorkloadState.RUNNING
    assert await drv.list_resources() == {"tcp": tcp.resource_id, "plain": plain.resource_id}
    for rid in (tcp.resource_id, plain.resource_id):
        await drv.terminate(rid)
    await drv.close()


async def test_udp_probe_wants_the_expected_reply(h: Harness) -> None:
    finals = Finals()
    drv = h.driver(finals=finals)
    port = free_port()
    dep = udp_echo()
    dep["readiness-probe"] = {"udp": {"port": "{param:port}", "payload": "ping",
                                      "expect": "pong"}, "interval-ms": 50}
    rid = (await drv.instantiate(request("picky", dep, {"port": str(port)}))).resource_id
    await eventually(lambda: "listening" in (h.state_dir / "picky.log").read_text())
    await asyncio.sleep(0.3)
    # The echo answers "ping", not the expected "pong": never ready.
    assert await udp_roundtrip(port, b"ping") == b"ping"
    assert (await drv.status(rid)).state is WorkloadState.INITIALIZING
    assert finals.of(rid) == []
    await drv.terminate(rid)
    await drv.close()


async def test_environment_placeholders_and_working_directory(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NFO_TEST_SECRET", "must-not-leak")
    finals = Finals()
    drv = h.driver(finals=finals)
    script = ("import os, time; e = os.environ; "
              "print('ENV', e.get('GREETING'), e['NFO_INSTANCE'], e['NFO_OWNER'], "
              "e.get('NFO_TEST_SECRET'), os.getcwd(), flush=True); time.sleep(60)")
    dep = {"command": ["{python}", "-c", script, "{param:who}", "{{literal}}"],
           "readiness-probe": {"interval-ms": 50},
           "environment": [{"name": "GREETING", "value": "hi-{param:who}"}]}
    rid = (await drv.instantiate(request("envy", dep, {"who": "bob"}))).resource_id
    await finals.wait(rid, WorkloadState.RUNNING)
    log = h.state_dir / "envy.log"
    await eventually(lambda: "ENV " in log.read_text())
    line = next(ln for ln in log.read_text().splitlines() if ln.startswith("ENV "))
    workdir = h.state_dir / "work" / "envy"
    assert line == f"ENV hi-bob envy {h.owner} None {workdir}"
    record = h.record("envy")
    assert record is not None and record["command"][3:] == ["bob", "{literal}"]
    await drv.terminate(rid)
    await drv.close()


# -- refusals ---------------------------------------------------------------------------


async def test_bad_requests_are_permanent_errors(h: Harness, tmp_path: Path) -> None:
    drv = h.driver()
    not_exec = tmp_path / "script.sh"
    not_exec.write_text("#!/bin/sh\necho hi\n")
    cases: list[tuple[dict[str, Any], dict[str, str], str]] = [
        ({"command": ["nfo-definitely-not-a-command"]}, {}, "command not found"),
        ({"command": [str(tmp_path / "missing")]}, {}, "command not found"),
        ({"command": [str(not_exec)]}, {}, "not an executable"),
        ({"command": [str(tmp_path)]}, {}, "not an executable"),
        ({"command": ["{python}", "--port", "{param:nope}"]}, {}, "'nope'"),
        ({"command": ["{pythn}"]}, {}, "unknown placeholder {pythn}"),
        (udp_echo(), {}, "'port'"),
        (udp_echo(), {"port": "http"}, "not a port number"),
        ({"command": SLEEPER, "environment": [{"name": "X", "value": "{param:gone}"}]}, {},
         "'gone'"),
        ({"command": SLEEPER, "working-directory": str(tmp_path / "nowhere")}, {},
         "not a directory"),
        ({"command": []}, {}, "no command"),
    ]
    for dep, params, needle in cases:
        with pytest.raises(PermanentError) as err:
            await drv.instantiate(request("bad", dep, params))
        assert needle in err.value.reason, (dep, err.value.reason)
        assert not err.value.temporary
    with pytest.raises(PermanentError):
        await drv.instantiate(request("../escape", {"command": SLEEPER}))
    assert h.record("bad") is None
    assert tagged_processes("bad", h.owner) == []
    await drv.close()


async def test_max_processes_is_a_temporary_error(h: Harness) -> None:
    drv = h.driver(max_processes=1)
    first = (await drv.instantiate(request("one", {"command": SLEEPER}))).resource_id
    with pytest.raises(TemporaryError) as err:
        await drv.instantiate(request("two", {"command": SLEEPER}))
    assert "max-processes" in err.value.reason and err.value.temporary
    assert h.record("two") is None
    # Asking again for the instance that already runs is not refused.
    assert (await drv.instantiate(request("one", {"command": SLEEPER}))).resource_id == first
    await drv.terminate(first)
    second = (await drv.instantiate(request("two", {"command": SLEEPER}))).resource_id
    await drv.terminate(second)
    await drv.close()


async def test_instantiate_twice_starts_one_process(h: Harness) -> None:
    drv = h.driver()
    port = free_port()
    req = request("twice", udp_echo(), {"port": str(port)})
    a, b = await asyncio.gather(drv.instantiate(req), drv.instantiate(req))
    c = await drv.instantiate(req)
    assert a.resource_id == b.resource_id == c.resource_id
    assert tagged_processes("twice", h.owner) == [pid_of(a.resource_id)]
    # A second driver on the same state (a restarted orchestrator) does not duplicate it.
    other = h.driver()
    assert (await other.instantiate(req)).resource_id == a.resource_id
    assert tagged_processes("twice", h.owner) == [pid_of(a.resource_id)]
    await drv.terminate(a.resource_id)
    assert tagged_processes("twice", h.owner) == []
    await drv.close()
    await other.close()


async def test_a_dead_instance_is_restarted_by_instantiate(h: Harness) -> None:
    finals = Finals()
    drv = h.driver(finals=finals)
    once = {"command": ["{python}", "-c", "pass"]}
    first = (await drv.instantiate(request("again", once))).resource_id
    await finals.wait(first, WorkloadState.FAILED)
    second = (await drv.instantiate(request("again", {"command": SLEEPER}))).resource_id
    assert second != first
    assert (await drv.status(first)).state is WorkloadState.GONE
    assert await drv.list_resources() == {"again": second}
    await drv.terminate(first)  # the predecessor: must not touch the successor
    assert proc_alive(pid_of(second))
    await drv.terminate(second)
    await drv.close()


# -- adoption ---------------------------------------------------------------------------


async def test_adoption_after_driver_close(h: Harness) -> None:
    finals_a = Finals()
    a = h.driver(finals=finals_a)
    port = free_port()
    rid = (await a.instantiate(request("kept", udp_echo(), {"port": str(port)}))).resource_id
    await finals_a.wait(rid, WorkloadState.RUNNING)
    await a.close()
    # Closing the driver (an orchestrator shutdown) leaves the NF running.
    await asyncio.sleep(0.2)
    assert proc_alive(pid_of(rid))
    assert await udp_roundtrip(port, b"still there?") == b"still there?"

    finals_b = Finals()
    b = h.driver(finals=finals_b)
    assert await b.find("kept") == rid
    assert await b.status(rid) == Status(WorkloadState.RUNNING)
    assert await b.list_resources() == {"kept": rid}
    await finals_b.wait(rid, WorkloadState.RUNNING)  # B monitors what it adopted
    await b.terminate(rid)
    assert not proc_alive(pid_of(rid))
    assert (await b.status(rid)).state is WorkloadState.GONE
    assert await b.find("kept") is None
    assert await udp_roundtrip(port, b"gone?", 0.3) is None
    await b.close()


async def test_two_vim_accounts_never_claim_each_others_processes(h: Harness) -> None:
    """Chaos finding (issue 12): every local VIM account of one installation sees the same
    host.  After a restart the demo account ``local`` adopted, by their owner tag, the
    processes another account had started (writing records of its own), and the
    manager terminated them as a "second resource" of their instance."""

    def account(name: str) -> LocalDriver:
        drv = LocalDriver(VimAccount(name, "nfo-vim:local", {}),
                          DriverContext(h.state_dir / name, h.owner, h.shared))
        h.drivers.append(drv)
        return drv

    a, b = account("vim-a"), account("vim-b")
    rid = (await a.instantiate(request("nf", {"command": SLEEPER}))).resource_id
    try:
        assert await b.list_resources() == {}
        assert await b.find("nf") is None
        # A crash between spawn and record: only the tags are left, and only A claims them.
        (h.state_dir / "vim-a" / "nf.json").unlink()
        fresh_b = account("vim-b")
        assert await fresh_b.list_resources() == {}
        assert await fresh_b.find("nf") is None
        assert not (h.state_dir / "vim-b" / "nf.json").exists()
        fresh_a = account("vim-a")
        assert await fresh_a.list_resources() == {"nf": rid}
        assert proc_alive(pid_of(rid))
        assert _environ_of(pid_of(rid))["NFO_VIM"] == "vim-a"
    finally:
        await a.terminate(rid)
    assert not proc_alive(pid_of(rid))


def _environ_of(pid: int) -> dict[str, str]:
    data = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(i.decode().split("=", 1) for i in data.split(b"\0") if b"=" in i)


async def test_adopted_process_that_dies_is_failed_without_status(h: Harness) -> None:
    a = h.driver()
    rid = (await a.instantiate(request("adoptee", {"command": SLEEPER}))).resource_id
    await a.close()
    finals = Finals()
    b = h.driver(finals=finals)
    assert await b.find("adoptee") == rid
    # Forget that this test process is the parent: B must rely on /proc alone.
    child = h.shared["children"].pop(rid)
    try:
        os.kill(pid_of(rid), signal.SIGKILL)
        child.wait(5)
        st = await finals.wait(rid, WorkloadState.FAILED)
        assert st.reason == "process exited (adopted; exit status unknown)"
        assert await b.status(rid) == st
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    await b.terminate(rid)
    assert h.record("adoptee") is None
    await b.close()


async def test_pid_reuse_guard_never_signals_a_stranger(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    me = os.getpid()
    stat = Path(f"/proc/{me}/stat").read_bytes()
    my_start = int(stat[stat.rindex(b")") + 2:].split()[19])
    signalled: list[tuple[str, int, int]] = []
    real_kill, real_killpg = os.kill, os.killpg

    def spy_kill(pid: int, sig: int) -> None:
        signalled.append(("kill", pid, sig))
        if pid not in (me, 0, -me):
            real_kill(pid, sig)

    def spy_killpg(pgid: int, sig: int) -> None:
        signalled.append(("killpg", pgid, sig))
        if pgid not in (me, os.getpgid(me)):
            real_killpg(pgid, sig)

    monkeypatch.setattr(os, "kill", spy_kill)
    monkeypatch.setattr(os, "killpg", spy_killpg)

    def forge(instance: str, starttime: int) -> str:
        rid = f"local-{me}-{starttime}"
        h.state_dir.mkdir(parents=True, exist_ok=True)
        (h.state_dir / f"{instance}.json").write_text(json.dumps({
            "version": 1, "instance": instance, "resource-id": rid, "pid": me,
            "starttime": starttime, "owner": h.owner, "command": ["x"],
            "probe": {"kind": "none"}, "interval-ms": 100}))
        return rid

    drv = h.driver()
    # 1. The pid lives but started at another time: a reused pid.
    rid = forge("imposter", my_start + 12345)
    assert (await drv.status(rid)).state is WorkloadState.GONE
    assert h.record("imposter") is None  # stale record cleaned
    rid = forge("imposter", my_start + 12345)
    assert await drv.find("imposter") is None
    assert h.record("imposter") is None
    assert (await drv.status(rid)).state is WorkloadState.GONE
    rid = forge("imposter", my_start + 12345)
    assert await drv.list_resources() == {}
    await drv.terminate(rid)
    # 2. Right pid and start time (a forged or foreign record), but the process
    #    does not carry our tags: still not ours.
    rid = forge("twin", my_start)
    assert await drv.find("twin") is None
    rid = forge("twin", my_start)
    await drv.terminate(rid)
    await drv.terminate(f"local-{me}-{my_start}")  # no record at all
    assert (await drv.status(rid)).state is WorkloadState.GONE
    assert signalled == []
    await drv.close()


async def test_orchestrator_killed_nf_survives_and_is_adopted(h: Harness) -> None:
    port = free_port()
    h.state_dir.mkdir(parents=True, exist_ok=True)
    with child_subreaper():
        orchestrator = await asyncio.create_subprocess_exec(
            PY, str(CHILD), str(h.state_dir), h.owner, "survivor", str(port),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
        try:
            assert orchestrator.stdout is not None
            line = (await asyncio.wait_for(orchestrator.stdout.readline(), 20)).decode().split()
            assert line[:1] == ["READY"], line
            rid = line[1]
            orchestrator.kill()  # SIGKILL: no cleanup whatsoever
            await orchestrator.wait()
        finally:
            if orchestrator.returncode is None:
                orchestrator.kill()
                await orchestrator.wait()

    nf = pid_of(rid)
    try:
        assert proc_alive(nf)
        assert await udp_roundtrip(port, b"orphan?") == b"orphan?"
        drv = h.driver()
        assert await drv.list_resources() == {"survivor": rid}
        assert await drv.find("survivor") == rid
        assert await drv.status(rid) == Status(WorkloadState.RUNNING)
        # Instantiating it again (the manager replaying its intent) adopts, no duplicate.
        again = await drv.instantiate(request("survivor", udp_echo(), {"port": str(port)}))
        assert again.resource_id == rid
        await drv.terminate(rid)
        assert not proc_alive(nf)  # (at most a zombie: it is not the driver's child)
        assert (await drv.status(rid)).state is WorkloadState.GONE
        assert await udp_roundtrip(port, b"gone?", 0.3) is None
        await drv.close()
    finally:
        reap_orphan(nf)
