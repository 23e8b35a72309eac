"""The ``openstack_cloud`` session fixture: a real OpenStack control plane on 127.0.0.1.

``tools/openstack install`` then ``tools/openstack start`` in a temporary directory; the
fixture fails (it never skips) when either fails, with the end of their output. Teardown runs
``tools/openstack stop``. Every test in this folder is marked ``openstack``; the report of
one that fails ends with the services' last warnings and errors.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.openstack.cloud import OpenStackCloud

HERE = Path(__file__).resolve().parent
TOOL = HERE.parent.parent / "tools" / "openstack"
PORTS_PER_CLOUD = 9  # see tools/openstack: base+0 .. base+8


LOGS = pytest.StashKey[Path]()
"""The running cloud's log folder, for the report of a failed test."""
SERVICE_LOGS = ("nova-scheduler", "nova-conductor", "nova-compute", "nova-api", "placement",
                "neutron")


def _warnings(logs: Path, per_log: int = 12) -> str:
    """The last warnings and errors of each service's log (the end of each file)."""
    out = []
    for name in SERVICE_LOGS:
        path = logs / f"{name}.log"
        try:
            with path.open("rb") as f:
                f.seek(max(0, path.stat().st_size - (1 << 20)))
                text = f.read().decode(errors="replace")
        except OSError:
            continue
        lines = [ln[:500] for ln in text.splitlines() if " WARNING " in ln or " ERROR " in ln]
        out += [f"== {name}.log", *lines[-per_log:]]
    return "\n".join(out)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A failed test's report ends with the cloud's last warnings and errors: its logs are
    gone with the cloud, and a CI run keeps only the report."""
    rep: pytest.TestReport = yield
    logs = item.config.stash.get(LOGS, None)
    if rep.failed and logs is not None:
        rep.sections.append(("the cloud's last warnings and errors", _warnings(logs)))
    return rep


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.openstack)


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_base() -> int:
    """NFO_OPENSTACK_PORT_BASE, else the first block of free ports from 27200 on."""
    if os.environ.get("NFO_OPENSTACK_PORT_BASE"):
        return int(os.environ["NFO_OPENSTACK_PORT_BASE"])
    for base in range(27200, 29000, 20):
        if all(_free(base + i) for i in range(PORTS_PER_CLOUD)):
            return base
    raise RuntimeError("no free block of ports on 127.0.0.1 between 27200 and 29000")


def _tool(log: Path, *args: str, timeout: float) -> str:
    """Run tools/openstack; its stderr goes to LOG; on failure, fail with LOG's end."""
    with log.open("a") as err:
        r = subprocess.run(
            [str(TOOL), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=timeout,
        )
    if r.returncode != 0:
        pytest.fail(
            f"tools/openstack {' '.join(args)} failed ({r.returncode}):\n"
            f"{log.read_text(errors='replace')[-4000:]}",
            pytrace=False,
        )
    return r.stdout


@pytest.fixture(scope="session")
def openstack_cloud(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenStackCloud]:
    root = tmp_path_factory.mktemp("openstack")
    state = root / "state"
    log = root / "tools-openstack.log"
    _tool(log, "install", timeout=1800)
    try:
        _tool(log, "start", "--state", str(state), "--port-base", str(_port_base()), timeout=900)
        request.config.stash[LOGS] = state / "logs"
        yield OpenStackCloud.from_state(state)
    finally:
        if LOGS in request.config.stash:
            del request.config.stash[LOGS]
        _tool(log, "stop", "--state", str(state), timeout=120)
