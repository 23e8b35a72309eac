"""The ``nfo`` client commands driven as a user would, against a real ``nfo serve`` on
loopback (issue 13): exit codes, tables, ``--json``, ``--wait``, input files."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.fuzz.server import PASSWORD, ServerProcess
from tests.netutil import free_port, udp_roundtrip_sync


def cli_env(url: str, password: str = PASSWORD) -> dict[str, str]:
    """This environment without NFO_*, then the server, admin and no config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NFO_")}
    env.update({"NFO_URL": url, "NFO_USER": "admin", "NFO_PASSWORD": password,
                "NFO_CONFIG": "/nonexistent/config.toml"})
    return env


def nfo(served: ServerProcess | None, *args: str, password: str = PASSWORD,
        cwd: Path | None = None, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = cli_env(url or (served.base if served else ""), password)
    return subprocess.run([sys.executable, "-m", "nfo", *args], capture_output=True,
                          text=True, env=env, timeout=180, cwd=cwd)


def test_a_local_nf_created_waited_for_and_deleted(served: ServerProcess) -> None:
    port = free_port()
    r = nfo(served, "instance", "create", "echo-cli", "--descriptor", "udp-echo",
            "--param", f"port={port}", "--wait", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    assert "echo-cli: running" in r.stdout and "1 of 1 running" in r.stdout
    assert udp_roundtrip_sync(port, b"cli") == b"cli"
    r = nfo(served, "instance", "list")
    assert r.returncode == 0 and "echo-cli" in r.stdout and "running" in r.stdout
    r = nfo(served, "instance", "list", "--json")
    rows = json.loads(r.stdout)
    assert [(x["name"], x["state"]["oper-status"]) for x in rows] == [("echo-cli", "running")]
    r = nfo(served, "instance", "show", "echo-cli", "--json")
    assert json.loads(r.stdout)["parameter"] == [{"name": "port", "value": str(port)}]
    r = nfo(served, "instance", "delete", "echo-cli", "--wait", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    assert "1 of 1 gone" in r.stdout
    assert udp_roundtrip_sync(port, b"cli", timeout=0.5) is None
    assert nfo(served, "instance", "show", "echo-cli").returncode == 1


def test_the_same_in_json(served: ServerProcess) -> None:
    port = free_port()
    r = nfo(served, "instance", "create", "echo-json", "--descriptor", "udp-echo",
            "--param", f"port={port}", "--wait", "--timeout", "60", "--json")
    assert r.returncode == 0, r.stderr
    [inst] = json.loads(r.stdout)
    assert inst["name"] == "echo-json" and inst["state"]["oper-status"] == "running"
    assert inst["state"]["vim"] == "local" and inst["state"]["vim-resource-id"]
    assert udp_roundtrip_sync(port, b"json") == b"json"
    r = nfo(served, "instance", "delete", "echo-json", "--wait", "--timeout", "60", "--json")
    assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
    assert all(i["name"] != "echo-json"
               for i in json.loads(nfo(served, "instance", "list", "--json").stdout))
    assert udp_roundtrip_sync(port, b"json", timeout=0.5) is None


def test_vims_catalog_and_instances_from_files(served: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "vims.yaml").write_text(
        "nfo-vim:vims:\n  vim:\n    - name: lab-cli\n      type: nfo-vim:sim\n"
        "      sim: {latency: {mean: 1}}\n")
    (tmp_path / "cat.json").write_text(json.dumps(
        [{"id": "fw-cli", "name": "Firewall", "vim-types": ["nfo-vim:sim"]}]))
    (tmp_path / "inst.yaml").write_text("\n".join(
        f"- {{name: fw-cli-{n}, descriptor: fw-cli, vim: lab-cli}}" for n in range(4)) + "\n")
    for cmd, f in (("vim", "vims.yaml"), ("catalog", "cat.json")):
        r = nfo(served, cmd, "add", "-f", str(tmp_path / f))
        assert r.returncode == 0, r.stderr
    assert "lab-cli" in nfo(served, "vim", "list").stdout
    assert "fw-cli" in nfo(served, "catalog", "list").stdout
    r = nfo(served, "instance", "create", "-f", str(tmp_path / "inst.yaml"), "--wait",
            "--json")
    assert r.returncode == 0, r.stderr
    assert sorted(x["state"]["oper-status"] for x in json.loads(r.stdout)) == ["running"] * 4
    r = nfo(served, "instance", "create", "-f", str(tmp_path / "inst.yaml"))
    assert r.returncode == 1 and "already exists" in r.stderr
    for n in range(4):
        assert nfo(served, "instance", "delete", f"fw-cli-{n}").returncode == 0
    r = nfo(served, "instance", "wait", *[f"fw-cli-{n}" for n in range(4)], "--state", "gone",
            "--timeout", "60")
    assert r.returncode == 0, r.stderr


def test_bad_input_wrong_password_unreachable_server(served: ServerProcess,
                                                     tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {name: x, descriptor: [unclosed\n")
    r = nfo(served, "instance", "create", "-f", str(bad))
    assert r.returncode == 2 and "bad.yaml:2:1: not YAML: expected" in r.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text("- name: ok-1\n  descriptor: udp-echo\n- name: t-2\n  descriptor: udp-echo\n"
                    "  admin-state: sideways\n")
    r = nfo(served, "instance", "create", "-f", str(typo))
    assert r.returncode == 2, r.stderr
    assert "typo.yaml:5: /nfo-instances:nf-instances/nf-instance[name='t-2']/admin-state: " \
           'Invalid enumeration value "sideways"' in r.stderr
    assert nfo(served, "instance", "show", "ok-1").returncode == 1   # nothing was sent
    unknown = tmp_path / "unknown.json"
    unknown.write_text('[{"id": "u", "vim-types": ["nfo-vim:sim"],\n  "colour": "red"}]')
    r = nfo(served, "catalog", "add", "-f", str(unknown))
    assert r.returncode == 2 and "unknown.json:2: " in r.stderr and "colour" in r.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    r = nfo(served, "vim", "add", "-f", str(empty))
    assert r.returncode == 2 and "empty.yaml: no vim in it" in r.stderr
    nameless = tmp_path / "nameless.json"
    nameless.write_text('[{"type": "nfo-vim:sim"}]')
    r = nfo(served, "vim", "add", "-f", str(nameless))
    assert r.returncode == 2 and "entry 1 has no 'name'" in r.stderr
    r = nfo(served, "instance", "create", "x", "--descriptor", "udp-echo", "--param", "port")
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr
    r = nfo(served, "instance", "create", "x", "--descriptor", "no-such")
    assert r.returncode == 1 and "descriptor" in r.stderr
    r = nfo(served, "vim", "list", password="wrong-password")
    assert r.returncode == 4 and r.stderr.count("\n") == 1
    assert "wrong-password" not in r.stderr + r.stdout
    closed = free_port(kind=1)
    r = nfo(None, "vim", "list", url=f"http://127.0.0.1:{closed}")
    assert r.returncode == 3 and "cannot reach nfo" in r.stderr and r.stderr.count("\n") == 1


def _stopped(proc: subprocess.Popen[str], sig: int) -> int:
    """``proc``'s exit code after ``sig``; one that does not exit is made to print
    where it is (faulthandler on SIGABRT) and the test fails with that."""
    import signal
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            _, err = proc.communicate(timeout=10)
        finally:
            proc.kill()
            proc.wait()
        raise AssertionError(f"no exit 20 s after signal {sig}; its threads:\n{err}") from None


def _watcher(served: ServerProcess, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "nfo", "watch", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(served.base) | {"PYTHONFAULTHANDLER": "1"})


def test_status_and_watch(served: ServerProcess) -> None:
    import signal
    r = nfo(served, "status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["reachable"] is True and any(v["name"] == "local" for v in st["vims"])
    assert "instances:" in nfo(served, "status").stdout
    # replayed from before the instances exist: a watcher slow to connect misses nothing
    since = datetime.now(UTC).isoformat(timespec="seconds")
    watcher = _watcher(served, "wt-1", "--json", "--since", since)
    quiet = _watcher(served, "nothing-by-this-name")
    try:
        from nfo.client import Client, ClientConfig
        with Client(ClientConfig(url=served.base, user="admin", password=PASSWORD)) as c:
            c.vims.add({"name": "sim-wt", "type": "nfo-vim:sim",
                        "sim": {"latency": {"mean": 1}}})
            c.catalog.add({"id": "fw-wt", "vim-types": ["nfo-vim:sim"]})
            c.create_instance("wt-0", "fw-wt", vim="sim-wt")   # not watched
            c.create_instance("wt-1", "fw-wt", vim="sim-wt")
            c.wait("wt-1", "running", timeout=60, interval=0.2)
        assert watcher.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        stdout = watcher.stdout
        threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True).start()
        events = [json.loads(lines.get(timeout=60)) for _ in range(2)]
        assert [(e["name"], e["new-status"]) for e in events] == [
            ("wt-1", "initializing"), ("wt-1", "running")]
    finally:
        code = _stopped(watcher, signal.SIGINT)
        quiet_code = _stopped(quiet, signal.SIGTERM)
    assert code == 0, watcher.stderr.read() if watcher.stderr else ""
    assert quiet_code == 0, quiet.stderr.read() if quiet.stderr else ""


def test_a_netconf_router_configured_checked_and_dry_run_from_the_command_line(
        served: ServerProcess) -> None:
    port = free_port()
    r = nfo(served, "instance", "create", "r-cli", "--descriptor", "netconf-router",
            "--param", f"port={port}", "--param", "hostname=cli-router", "--wait",
            "--timeout", "60")
    assert r.returncode == 0, r.stderr
    try:
        deadline = time.monotonic() + 30
        while True:
            shown = json.loads(nfo(served, "instance", "show", "r-cli", "--json").stdout)
            config = shown["state"].get("config", {})
            if config.get("status") == "in-sync" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert config["status"] == "in-sync", shown["state"]
        r = nfo(served, "instance", "check-sync", "r-cli")
        assert r.returncode == 0 and r.stdout.strip() == "in sync", (r.stdout, r.stderr)
        r = nfo(served, "instance", "dry-run", "r-cli", "--json")
        assert r.returncode == 0 and json.loads(r.stdout) == {"target": "candidate", "edit": ""}
        r = nfo(served, "instance", "dry-run", "r-cli")
        assert r.stdout.strip() == "nothing to send (target candidate)"
        r = nfo(served, "instance", "check-sync", "udp-nothing")
        assert r.returncode != 0
    finally:
        r = nfo(served, "instance", "delete", "r-cli", "--wait", "--timeout", "60")
        assert r.returncode == 0, r.stderr
