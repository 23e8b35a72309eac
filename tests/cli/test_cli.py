"""The ``nfo`` command line, run as a real subprocess on a real state directory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nfo.cli.moduleset import StateDir
from nfo.cli.serve import open_datastore, start_manager
from nfo.errors import UnknownElement
from tests.netutil import free_port, udp_roundtrip_sync

NFO = [sys.executable, "-m", "nfo"]


def nfo(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*NFO, "--state-dir", str(state), *args], capture_output=True,
                         text=True, timeout=60)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def module(tmp: Path, name: str, body: str, imports: str = "") -> Path:
    p = tmp / f"{name}.yang"
    p.write_text(textwrap.dedent(f"""\
        module {name} {{
          yang-version 1.1;
          namespace "urn:example:{name}";
          prefix {name.replace('-', '')};
          {imports}
          {body}
        }}
        """))
    return p


WIDGETS = 'container widgets { list widget { key id; leaf id { type string; } ' \
          'leaf size { type uint8; } } }'


def test_install_list_and_serve_an_operator_module(tmp_path: Path) -> None:
    state = tmp_path / "state"
    f = module(tmp_path, "ex-widgets", WIDGETS)
    out = nfo(state, "module", "install", str(f))
    assert "ex-widgets" in out.stdout
    listing = nfo(state, "module", "list").stdout
    assert any(line.startswith("ex-widgets") and "installed" in line
               for line in listing.splitlines())
    assert "nfo-instances" in listing

    proc = subprocess.Popen([*NFO, "--state-dir", str(state), "serve", "--restconf",
                             "127.0.0.1:0", "--netconf", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        seen = [proc.stdout.readline() for _ in range(4)]
        assert any("created user 'admin'" in x for x in seen), seen
        assert any("RESTCONF on http://127.0.0.1:" in x for x in seen), seen
        assert any("serving" in x for x in seen), seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()


async def test_installed_module_is_served_by_the_datastore(tmp_path: Path) -> None:
    state = tmp_path / "state"
    nfo(state, "module", "install", str(module(tmp_path, "ex-widgets", WIDGETS)))
    ds = await open_datastore(StateDir(state), [])
    try:
        async with ds.internal_session("op") as s:
            await s.edit("running", '{"ex-widgets:widgets":{"widget":[{"id":"a","size":3}]}}',
                         "json")
        with ds.get("running", "/ex-widgets:widgets") as t:
            assert '"size":3' in t.print("json")
    finally:
        await ds.close()


def test_broken_module_is_refused_and_nothing_installed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    bad = module(tmp_path, "ex-bad", "leaf x { type no-such-type; }")
    res = nfo(state, "module", "install", str(bad), check=False)
    assert res.returncode == 1
    assert "error" in res.stderr
    assert not list((state / "modules").glob("*.yang"))


def test_imports_resolve_from_files_installed_together(tmp_path: Path) -> None:
    state = tmp_path / "state"
    base = module(tmp_path, "ex-types", "typedef percent { type uint8 { range 0..100; } }")
    user = module(tmp_path, "ex-user", "leaf load { type t:percent; }",
                  imports="import ex-types { prefix t; }")
    nfo(state, "module", "install", str(base), str(user))
    res = nfo(state, "module", "remove", "ex-types", check=False)
    assert res.returncode == 1 and "need" in res.stderr


def test_remove_refused_with_data_unless_forced(tmp_path: Path) -> None:
    state = tmp_path / "state"
    nfo(state, "module", "install", str(module(tmp_path, "ex-widgets", WIDGETS)))

    async def put() -> None:
        ds = await open_datastore(StateDir(state), [])
        try:
            async with ds.internal_session("op") as s:
                await s.edit("running", '{"ex-widgets:widgets":{"widget":[{"id":"a"}]}}', "json")
        finally:
            await ds.close()
    asyncio.run(put())

    res = nfo(state, "module", "remove", "ex-widgets", check=False)
    assert res.returncode == 1 and "still has data" in res.stderr
    assert (state / "modules" / "ex-widgets.yang").exists()
    nfo(state, "module", "remove", "ex-widgets", "--force")
    assert not (state / "modules" / "ex-widgets.yang").exists()
    assert "ex-widgets" not in nfo(state, "module", "list").stdout

    async def check() -> None:
        ds = await open_datastore(StateDir(state), [])
        try:
            with ds.get("running") as t:
                assert "widget" not in t.print("json")
            with pytest.raises(UnknownElement):
                ds.subscribe("ex-widgets", _noop)
        finally:
            await ds.close()
    asyncio.run(check())


async def _noop(_: object) -> None:
    return None


def test_yang_dir_adds_modules_for_one_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    extra = tmp_path / "extra"
    extra.mkdir()
    module(extra, "ex-extra", "leaf motd { type string; }")
    assert "ex-extra" in nfo(state, "module", "list", "--yang-dir", str(extra)).stdout
    assert "ex-extra" not in nfo(state, "module", "list").stdout


def test_unknown_module_remove_and_missing_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert nfo(state, "module", "remove", "nope", check=False).returncode == 1
    res = nfo(state, "module", "install", str(tmp_path / "missing.yang"), check=False)
    assert res.returncode == 1 and "no such file" in res.stderr


async def test_notification_retention_option(tmp_path: Path) -> None:
    state = tmp_path / "state"
    off = ("serve", "--restconf", "off", "--netconf", "off")
    for opts, code, said in (
            (["nfo=5", "bogus=5"], 1, "unknown stream 'bogus' (streams: NETCONF, nfo)"),
            (["nfo=5", "nfo=6"], 1, "names a stream more than once"),
            (["nfo=0"], 2, "'nfo=0' is not STREAM=COUNT"),
            (["nfo"], 2, "'nfo' is not STREAM=COUNT")):
        res = nfo(state, *off, *(f"--notification-retention={o}" for o in opts), check=False)
        assert res.returncode == code and said in res.stderr, res.stderr
    ds = await open_datastore(StateDir(state), [], notification_retention={"nfo": 7})
    try:
        assert [(s.name, s.keep) for s in ds.notifications.streams()] == [
            ("NETCONF", 100_000), ("nfo", 7)]
    finally:
        await ds.close()


def test_state_dir_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    nfo(state, "module", "list")
    nfo(state, "module", "install", str(module(tmp_path, "ex-widgets", WIDGETS)))
    assert (os.stat(state).st_mode & 0o077) == 0


def test_serve_demo_runs_a_real_nf_and_keeps_it_across_restarts(tmp_path: Path) -> None:
    """The README's first command: the demo NF reaches running and answers on its port;
    a restart adopts it (same process), and deleting it stops it."""
    state = tmp_path / "state"
    port = free_port()
    record = state / "drivers" / "local" / "local" / "demo-echo.json"

    def run_until(text: str) -> list[str]:
        proc = subprocess.Popen([*NFO, "--state-dir", str(state), "serve", "--demo", str(port),
                                 "--restconf", "127.0.0.1:0", "--netconf", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if text in line:
                    break
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0, lines
        finally:
            proc.kill()
            proc.wait()
        return lines

    try:
        out = run_until("answers on udp")
        assert any("demo-echo: initializing -> running" in x for x in out), out
        assert any("'hello from nfo'" in x for x in out), out
        # the NF outlives the orchestrator process
        assert udp_roundtrip_sync(port, b"ping") == b"ping"
        pid = json.loads(record.read_text())["pid"]

        out = run_until("workload manager ready")
        assert "workload manager ready (1 instance)" in out[-1], out
        assert json.loads(record.read_text())["pid"] == pid  # adopted, not duplicated
        assert udp_roundtrip_sync(port, b"ping") == b"ping"
    finally:
        async def delete() -> None:
            ds = await open_datastore(StateDir(state), [])
            mgr = await start_manager(ds, StateDir(state), poll_interval=0.05)
            try:
                async with ds.internal_session("t") as s:
                    await s.edit("running", '{"nfo-instances:nf-instances":{"nf-instance":'
                                 '[{"name":"demo-echo","@":{"ietf-netconf:operation":"remove"}}]}}',
                                 "json")
                for _ in range(200):
                    await mgr.wait_idle()
                    if mgr._obs.get("demo-echo") is None:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await mgr.stop()
                await ds.close()
        asyncio.run(delete())
    assert udp_roundtrip_sync(port, b"ping") is None
    assert not record.exists()
