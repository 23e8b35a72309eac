"""The ``local`` driver's privilege settings, against real processes: ``run-as-user``
and ``allowed-executable`` (``/nfo-vim:vims/vim/local``).

Starting a network function as another user needs root: those tests skip
otherwise.  Their NFs run programs any user may execute (/usr/bin/python3,
/bin/sleep), since the interpreter of the test virtualenv may live where other
users cannot reach it.  Scenarios that need an orchestrator of their own (one
that gets killed, one that runs as nobody, one without CAP_SYS_PTRACE) run this
module as a child process: ``python -m tests.drivers.test_local_privileges MODE ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from nfo.drivers.local import LocalDriver
from nfo.drivers.local.privileges import resolve_run_as
from nfo.registry.protocol import (
    ComputeNeeds,
    DriverContext,
    InstantiateRequest,
    PermanentError,
    Status,
    VimAccount,
    WorkloadState,
)
from tests.drivers.test_local import (
    Finals,
    Harness,
    child_subreaper,
    eventually,
    pid_of,
    proc_alive,
    reap_orphan,
    request,
    tagged_processes,
)
from tests.netutil import free_port, udp_roundtrip

VIM = "sandbox"
PY = sys.executable
REPO = Path(__file__).resolve().parents[2]
SYS_PY = "/usr/bin/python3"
SLEEP = shutil.which("sleep") or "/bin/sleep"
TRUE = shutil.which("true") or "/bin/true"
CAPSH = shutil.which("capsh")
NOBODY = pwd.getpwnam("nobody")
NOBODY_GROUPS = sorted(os.getgrouplist("nobody", NOBODY.pw_gid))
OTHER_USER = "daemon"
CAP_SYS_PTRACE = 19

root_only = pytest.mark.skipif(os.geteuid() != 0,
                               reason="starting a process as another user needs root")
system_python = pytest.mark.skipif(not os.access(SYS_PY, os.X_OK),
                                   reason=f"{SYS_PY} (an interpreter nobody can run) is missing")

# The NF of the run-as tests: proves where it runs and what it may touch.
WORKER = """
import os, time
with open("proof.txt", "w") as f:
    f.write("written by uid %d" % os.getuid())
try:
    os.listdir("..")
    climb = "climbed"
except PermissionError:
    climb = "confined"
try:
    open(os.path.join(os.getcwd(), "by-absolute-path"), "w").close()
    absolute = "reachable"
except PermissionError:
    absolute = "unreachable"
print("WORKER", os.getcwd(), os.environ.get("HOME"), climb, absolute, flush=True)
time.sleep(60)
"""

# A UDP echo NF for the probe (nfo's own udp_echo needs the virtualenv's interpreter).
ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(65536)
    s.sendto(data, peer)
"""


def echo_deployment() -> dict[str, Any]:
    return {"command": [SYS_PY, "-c", ECHO, "{param:port}"],
            "readiness-probe": {"udp": {"port": "{param:port}", "payload": "nfo-probe"},
                                "interval-ms": 50}}


def make_driver(state_dir: Path, owner: str, settings: Mapping[str, Any],
                shared: dict[str, Any] | None = None) -> LocalDriver:
    return LocalDriver(VimAccount(VIM, "nfo-vim:local", dict(settings)),
                       DriverContext(state_dir, owner, {} if shared is None else shared))


def ids(pid: int) -> dict[str, list[int]]:
    """Uid, Gid (real, effective, saved, filesystem) and Groups of ``pid``."""
    out: dict[str, list[int]] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            out[key] = [int(x) for x in rest.split()]
    return out


# -- fixtures ---------------------------------------------------------------------------


class PrivHarness(Harness):
    def vim(self, settings: Mapping[str, Any], finals: Finals | None = None,
            shared: dict[str, Any] | None = None) -> LocalDriver:
        drv = make_driver(self.state_dir, self.owner, settings,
                          self.shared if shared is None else shared)
        if finals is not None:
            drv.on_final(finals)
        self.drivers.append(drv)
        return drv


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[PrivHarness]:
    harness = PrivHarness(tmp_path / "local-vim")
    try:
        yield harness
    finally:
        await harness.cleanup()


@contextlib.contextmanager
def nobody_dir() -> Iterator[Path]:
    """A fresh directory under /tmp that belongs to nobody (for an nfo running as nobody)."""
    path = Path(tempfile.mkdtemp(prefix="nfo-as-nobody-"))
    try:
        os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_child(*args: str, drop_ptrace: bool = False,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [PY, "-m", "tests.drivers.test_local_privileges", *args]
    if drop_ptrace:
        assert CAPSH is not None
        argv = [CAPSH, "--drop=cap_sys_ptrace", "--", "-c", 'exec "$0" "$@"', *argv]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          check=False)


def child_lines(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


# -- run-as-user ------------------------------------------------------------------------


@root_only
@system_python
async def test_run_as_user_starts_the_nf_as_that_user(h: PrivHarness) -> None:
    finals = Finals()
    drv = h.vim({"run-as-user": "nobody"}, finals)
    dep = {"command": [SYS_PY, "-c", WORKER], "readiness-probe": {"interval-ms": 50}}
    rid = (await drv.instantiate(request("worker", dep))).resource_id
    await finals.wait(rid, WorkloadState.RUNNING)
    pid = pid_of(rid)
    got = ids(pid)
    assert got["Uid"] == [NOBODY.pw_uid] * 4
    assert got["Gid"] == [NOBODY.pw_gid] * 4
    assert sorted(got["Groups"]) == NOBODY_GROUPS
    record = h.record("worker")
    assert record is not None
    assert (record["user"], record["uid"]) == ("nobody", NOBODY.pw_uid)
    log = h.state_dir / "worker.log"
    await eventually(lambda: "WORKER " in log.read_text())
    line = next(ln for ln in log.read_text().splitlines() if ln.startswith("WORKER "))
    workdir = h.state_dir / "work" / "worker"
    # Started in its own directory, HOME its user's, and unable to reach anything
    # else of nfo's: not the directory above, nor its own by its absolute path.
    assert line == f"WORKER {workdir} {NOBODY.pw_dir} confined unreachable"
    # The log stays nfo's: opened by nfo and handed over as stdout.
    assert log.stat().st_uid == 0
    await drv.terminate(rid)
    assert not proc_alive(pid)


@root_only
@system_python
async def test_the_nf_can_write_in_its_private_working_directory(h: PrivHarness) -> None:
    finals = Finals()
    drv = h.vim({"run-as-user": "nobody"}, finals)
    dep = {"command": [SYS_PY, "-c", WORKER], "readiness-probe": {"interval-ms": 50}}
    rid = (await drv.instantiate(request("writer", dep))).resource_id
    await finals.wait(rid, WorkloadState.RUNNING)
    base = h.state_dir / "work"
    workdir = base / "writer"
    proof = workdir / "proof.txt"
    await eventually(proof.exists)
    assert proof.read_text() == f"written by uid {NOBODY.pw_uid}"
    assert (proof.stat().st_uid, proof.stat().st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
    st = workdir.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
        NOBODY.pw_uid, NOBODY.pw_gid, 0o700)
    st = base.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700)
    # Only the instance directory changed hands: nfo's own files are untouched.
    assert {p.stat().st_uid for p in h.state_dir.iterdir()} == {0}
    await drv.terminate(rid)


@root_only
async def test_an_nf_started_as_root_warns_once_per_vim_account(
        h: PrivHarness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="nfo.drivers.local")
    drv = h.vim({})
    for name in ("first", "second"):
        await drv.instantiate(request(name, {"command": [SLEEP, "60"]}))
    # A rebuilt driver of the same account (the registry shares its state) stays quiet.
    await h.vim({"max-processes": 8}).instantiate(request("third", {"command": [SLEEP, "60"]}))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert f"VIM {VIM!r} run as root" in warnings[0]
    assert "run-as-user" in warnings[0]
    record = h.record("first")
    assert record is not None and (record["user"], record["uid"]) == (None, None)
    assert ids(pid_of(record["resource-id"]))["Uid"] == [0] * 4


@root_only
async def test_run_as_user_is_not_warned_about(
        h: PrivHarness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="nfo.drivers.local")
    await h.vim({"run-as-user": "nobody"}).instantiate(request("quiet", {"command": [SLEEP, "60"]}))
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []


@root_only
async def test_an_unknown_user_or_an_unreachable_program_is_permanent(
        h: PrivHarness, tmp_path: Path) -> None:
    drv = h.vim({"run-as-user": "no-such-user-here"})
    with pytest.raises(PermanentError, match=r"no-such-user-here.*no such user"):
        await drv.instantiate(request("ghost", {"command": [SLEEP, "60"]}))
    assert h.record("ghost") is None
    # A program in a directory only root may enter: nobody cannot execute it.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    program = private / "sleep"
    shutil.copy(SLEEP, program)
    drv = h.vim({"run-as-user": "nobody"})
    with pytest.raises(PermanentError, match="as user 'nobody': Permission denied"):
        await drv.instantiate(request("locked-out", {"command": [str(program), "60"]}))
    assert h.record("locked-out") is None
    assert tagged_processes("locked-out", h.owner) == []


def test_only_root_may_run_nfs_as_another_user() -> None:
    """The decision itself, for every kind of nfo (no process involved)."""
    me = pwd.getpwuid(NOBODY.pw_uid).pw_name
    with pytest.raises(PermanentError) as err:
        resolve_run_as(OTHER_USER, VIM, NOBODY.pw_uid)
    assert err.value.reason == (
        f"local VIM {VIM!r} runs network functions as user {OTHER_USER!r} (run-as-user), "
        f"but nfo runs as {me!r} (uid {NOBODY.pw_uid}), not root, and cannot start "
        f"processes as another user: run nfo as root, or set run-as-user to {me!r} or "
        f"remove it")
    same = resolve_run_as("nobody", VIM, NOBODY.pw_uid)
    assert (same.uid, same.switch) == (NOBODY.pw_uid, False)
    as_root = resolve_run_as("nobody", VIM, 0)
    assert (as_root.uid, as_root.gid, as_root.switch) == (NOBODY.pw_uid, NOBODY.pw_gid, True)
    assert sorted(as_root.groups) == NOBODY_GROUPS
    with pytest.raises(PermanentError, match="no such user"):
        resolve_run_as("no-such-user-here", VIM, 0)


@root_only
def test_an_nfo_running_as_nobody_refuses_another_user() -> None:
    """A real nfo that is not root: this module as a child that drops to nobody first."""
    owner = f"test-{uuid.uuid4().hex[:12]}"
    with nobody_dir() as state:
        try:
            out = child_lines(run_child("as-nobody", str(state), owner))
        finally:
            for pid in tagged_processes("mine", owner):
                os.killpg(pid, signal.SIGKILL)
        refused, started, done = out
        assert refused["uid"] == NOBODY.pw_uid
        assert "but nfo runs as 'nobody'" in refused["refused"]
        assert refused["records"] == [] and refused["tagged"] == []
        # Its own user needs no switch and works.
        assert started["uid"] == [NOBODY.pw_uid] * 4
        assert started["record-user"] == "nobody"
        assert done == {"terminated": True}


# -- allowed-executable -----------------------------------------------------------------


async def test_allowed_executable_refuses_any_other_program(h: PrivHarness) -> None:
    drv = h.vim({"allowed-executable": [SLEEP]})
    for program, found in ((TRUE, TRUE), ("true", shutil.which("true"))):  # as is, in PATH
        with pytest.raises(PermanentError) as err:
            await drv.instantiate(request("other", {"command": [program]}))
        assert err.value.reason == (
            f"executable {found!r} (resolved to {os.path.realpath(TRUE)!r}) is not in "
            f"allowed-executable of local VIM {VIM!r}")
    # Never started: no record, no log, no process carrying the tags.
    assert h.record("other") is None
    assert not (h.state_dir / "other.log").exists()
    assert tagged_processes("other", h.owner) == []


async def test_allowed_executable_accepts_listed_programs_through_links(
        h: PrivHarness, tmp_path: Path) -> None:
    real_sleep = os.path.realpath(SLEEP)
    link = tmp_path / "napper"
    link.symlink_to(SLEEP)
    listed_link = tmp_path / "listed-sleep"
    listed_link.symlink_to(real_sleep)
    # Listed by a link of its own; the program named as listed, found in PATH, and by
    # a link: all are the same file.
    drv = h.vim({"allowed-executable": [str(listed_link), TRUE]})
    for name, program in (("plain", SLEEP), ("path", "sleep"), ("linked", str(link))):
        rid = (await drv.instantiate(request(name, {"command": [program, "60"]}))).resource_id
        pid = pid_of(rid)
        assert proc_alive(pid)
        # What runs is the file that was checked; argv[0] stays as the descriptor wrote it.
        assert os.readlink(f"/proc/{pid}/exe") == real_sleep
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert argv0 == program
        await drv.terminate(rid)
    # A link to an unlisted program is judged by what it points to.
    trap = tmp_path / "sleep-not"
    trap.symlink_to("/bin/false")
    with pytest.raises(PermanentError, match=r"resolved to '[^']*/false'"):
        await drv.instantiate(request("trap", {"command": [str(trap)]}))
    assert h.record("trap") is None


async def test_an_empty_allowed_executable_list_allows_anything(h: PrivHarness) -> None:
    drv = h.vim({"allowed-executable": []})
    rid = (await drv.instantiate(request("free", {"command": ["sleep", "60"]}))).resource_id
    assert proc_alive(pid_of(rid))
    await drv.terminate(rid)


# -- adoption ---------------------------------------------------------------------------


async def start_orphan(h: PrivHarness, instance: str, port: int) -> str:
    """An NF started as nobody by a child orchestrator that then got SIGKILLed."""
    h.state_dir.mkdir(parents=True, exist_ok=True)
    with child_subreaper():
        orchestrator = await asyncio.create_subprocess_exec(
            PY, "-m", "tests.drivers.test_local_privileges", "start", str(h.state_dir),
            h.owner, instance, str(port), cwd=REPO,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
        try:
            assert orchestrator.stdout is not None
            line = (await asyncio.wait_for(orchestrator.stdout.readline(), 30)).decode().split()
            assert line[:1] == ["READY"], line
            orchestrator.kill()
            await orchestrator.wait()
        finally:
            if orchestrator.returncode is None:
                orchestrator.kill()
                await orchestrator.wait()
    return line[1]


@root_only
@system_python
async def test_an_nf_of_another_user_is_adopted_after_a_restart(h: PrivHarness) -> None:
    port = free_port()
    rid = await start_orphan(h, "survivor", port)
    nf = pid_of(rid)
    try:
        assert ids(nf)["Uid"] == [NOBODY.pw_uid] * 4
        assert await udp_roundtrip(port, b"orphan?") == b"orphan?"
        # A new orchestrator: no shared state, the NF is not its child.
        drv = h.vim({"run-as-user": "nobody"}, shared={})
        assert await drv.list_resources() == {"survivor": rid}
        assert await drv.find("survivor") == rid
        assert await drv.status(rid) == Status(WorkloadState.RUNNING)
        again = await drv.instantiate(request("survivor", echo_deployment(), {"port": str(port)}))
        assert again.resource_id == rid
        await drv.close()

        # A record whose user does not match the process is not about this process.
        record = h.record("survivor")
        assert record is not None and (record["user"], record["uid"]) == (
            "nobody", NOBODY.pw_uid)
        (h.state_dir / "survivor.json").write_text(json.dumps({**record, "uid": 0}))
        drv = h.vim({"run-as-user": "nobody"}, shared={})
        assert (await drv.status(rid)).state is WorkloadState.GONE
        assert h.record("survivor") is None
        assert proc_alive(nf)
        # Its tags still find it, and the rebuilt record names its real user.
        assert await drv.list_resources() == {"survivor": rid}
        record = h.record("survivor")
        assert record is not None and (record["user"], record["uid"]) == (
            "nobody", NOBODY.pw_uid)
        await drv.terminate(rid)
        assert not proc_alive(nf)
        assert await udp_roundtrip(port, b"gone?", 0.3) is None
        await drv.close()
    finally:
        reap_orphan(nf)


@root_only
@system_python
@pytest.mark.skipif(CAPSH is None, reason="capsh (to drop CAP_SYS_PTRACE) is missing")
async def test_adoption_without_cap_sys_ptrace(h: PrivHarness) -> None:
    """A root nfo without CAP_SYS_PTRACE (a container's default) cannot read the socket
    descriptors of another user's process; the probe answer has to do then."""
    port = free_port()
    rid = await start_orphan(h, "unseen", port)
    nf = pid_of(rid)
    try:
        (report,) = child_lines(await asyncio.to_thread(
            run_child, "adopt", str(h.state_dir), h.owner, "unseen", drop_ptrace=True))
        assert report == {"ptrace": False, "fds-readable": False, "found": rid,
                          "status": "running"}
        drv = h.vim({"run-as-user": "nobody"}, shared={})
        await drv.terminate(rid)
        assert not proc_alive(nf)
    finally:
        reap_orphan(nf)


# -- the child orchestrators ------------------------------------------------------------


def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def _child_start(state: str, owner: str, instance: str, port: str) -> None:
    drv = make_driver(Path(state), owner, {"run-as-user": "nobody"})
    final: asyncio.Future[Status] = asyncio.get_running_loop().create_future()

    def on_final(rid: str, st: Status) -> None:
        if not final.done():
            final.set_result(st)

    drv.on_final(on_final)
    resp = await drv.instantiate(InstantiateRequest(
        instance, "echo", echo_deployment(), {"port": port}, ComputeNeeds(), 30.0))
    st = await asyncio.wait_for(final, 20)
    print("READY" if st.state is WorkloadState.RUNNING else "FAILED", resp.resource_id,
          flush=True)
    await asyncio.Event().wait()  # until SIGKILL


async def _child_adopt(state: str, owner: str, instance: str) -> None:
    caps = next(ln for ln in Path("/proc/self/status").read_text().splitlines()
                if ln.startswith("CapEff:"))
    drv = make_driver(Path(state), owner, {"run-as-user": "nobody"})
    rid = await drv.find(instance)
    fds_readable = True
    if rid is not None:
        try:
            for fd in os.scandir(f"/proc/{pid_of(rid)}/fd"):
                os.readlink(fd.path)
        except PermissionError:
            fds_readable = False
    status = None
    if rid is not None:
        for _ in range(100):
            status = (await drv.status(rid)).state.value
            if status == "running":
                break
            await asyncio.sleep(0.05)
    await drv.close()
    _emit(ptrace=bool(int(caps.split()[1], 16) >> CAP_SYS_PTRACE & 1),
          **{"fds-readable": fds_readable}, found=rid, status=status)


async def _child_as_nobody(state: str, owner: str) -> None:
    # Loaded lazily by asyncio.to_thread: load it while the interpreter's files are
    # still readable (the virtualenv's interpreter may live under /root).
    importlib.import_module("concurrent.futures.thread")
    os.setgroups(NOBODY_GROUPS)
    os.setgid(NOBODY.pw_gid)
    os.setuid(NOBODY.pw_uid)
    drv = make_driver(Path(state), owner, {"run-as-user": OTHER_USER})
    try:
        await drv.instantiate(request("theirs", {"command": [SLEEP, "60"]}))
        refused = ""
    except PermanentError as exc:
        refused = exc.reason
    _emit(uid=os.getuid(), refused=refused,
          records=sorted(p.name for p in Path(state).glob("*.json")),
          tagged=tagged_processes("theirs", owner))
    await drv.close()
    drv = make_driver(Path(state), owner, {"run-as-user": "nobody"})
    rid = (await drv.instantiate(request("mine", {"command": [SLEEP, "60"]}))).resource_id
    record = json.loads((Path(state) / "mine.json").read_text())
    _emit(uid=ids(pid_of(rid))["Uid"], **{"record-user": record["user"]})
    await drv.terminate(rid)
    _emit(terminated=not proc_alive(pid_of(rid)))
    await drv.close()


def _child(args: list[str]) -> None:
    mode, rest = args[0], args[1:]
    if mode == "start":
        asyncio.run(_child_start(*rest[:4]))
    elif mode == "adopt":
        asyncio.run(_child_adopt(*rest[:3]))
    elif mode == "as-nobody":
        asyncio.run(_child_as_nobody(*rest[:2]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    _child(sys.argv[1:])
