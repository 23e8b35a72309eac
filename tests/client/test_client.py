"""nfo.client against a real ``nfo serve`` on loopback (issue 13): catalog, VIM and
instance CRUD with dicts and bindings, waits, actions, and typed errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from nfo.bindings import nfo_vim
from nfo.client import (
    AsyncClient,
    AuthenticationFailed,
    Client,
    ClientConfig,
    Conflict,
    InvalidData,
    NotFound,
    Unreachable,
    WaitFailed,
    WaitTimeout,
)
from tests.fuzz.server import PASSWORD, ServerProcess
from tests.netutil import free_port, udp_roundtrip_sync


def _client(srv: ServerProcess, **kw: object) -> Client:
    args: dict[str, object] = {"url": srv.base, "user": "admin", "password": PASSWORD}
    args.update(kw)
    return Client(ClientConfig(**args))  # type: ignore[arg-type]


def test_a_local_nf_from_create_to_delete(served: ServerProcess) -> None:
    port = free_port()
    with _client(served) as nfo:
        assert [d["id"] for d in nfo.catalog.list()] == ["udp-echo", "netconf-router"]
        nfo.create_instance("echo-c", "udp-echo", parameters={"port": port})
        seen: list[str | None] = []
        inst = nfo.wait("echo-c", "running", timeout=60, interval=0.2,
                        progress=lambda i: seen.append(i and i.get("state", {}).get("oper-status")))
        assert inst is not None and inst["state"]["oper-status"] == "running"
        assert seen[-1] == "running"
        assert udp_roundtrip_sync(port, b"hello") == b"hello"
        assert [i["name"] for i in nfo.instances.list()] == ["echo-c"]
        assert nfo.restart("echo-c") != {}
        nfo.instances.delete("echo-c")
        assert nfo.wait("echo-c", "gone", timeout=60, interval=0.2) is None
        assert nfo.instances.get("echo-c") is None


def test_bindings_and_dicts_go_in_errors_come_out_typed(served: ServerProcess) -> None:
    vims = nfo_vim.nfo_vim()
    v = vims.vims.vim.add("sim-c")
    v.type = "nfo-vim:sim"
    v.sim.latency.mean = 1
    with _client(served) as nfo:
        nfo.vims.add(vims)
        got = nfo.vims.get("sim-c")
        assert got is not None and got["type"] == "nfo-vim:sim"
        bound = nfo.vims.get("sim-c", bindings=True)
        assert bound.sim.latency.mean == 1 and bound.type == "nfo-vim:sim"
        assert {b.name for b in nfo.vims.list(bindings=True)} == {"local", "sim-c"}
        with pytest.raises(Conflict) as exists:
            nfo.vims.add({"name": "sim-c", "type": "nfo-vim:sim"})
        assert exists.value.tag == "data-exists"
        nfo.catalog.add({"id": "fw-c", "vim-types": ["nfo-vim:sim"]})
        with pytest.raises(Conflict) as missing:
            nfo.create_instance("x-c", "no-such-descriptor")
        assert missing.value.tag == "data-missing" and missing.value.app_tag
        assert missing.value.path is not None and missing.value.path.endswith("/descriptor")
        with pytest.raises(InvalidData) as bad:
            nfo.create_instance("x-c", "fw-c", admin_state="sideways")
        assert bad.value.tag == "invalid-value" and bad.value.status == 400
        with pytest.raises(NotFound):
            nfo.instances.delete("never-made")
        nfo.vims.update("sim-c", {"description": "updated", "enabled": False})
        assert nfo.vims.get("sim-c")["enabled"] is False
        with pytest.raises(NotFound):
            nfo.vims.update("never-made", {"description": "x"})
        nfo.vims.update("sim-c", {"enabled": True})
        nfo.instances.add([{"name": f"fw-{i}", "descriptor": "fw-c", "vim": "sim-c"}
                              for i in range(5)])
        for i in range(5):
            nfo.wait(f"fw-{i}", "running", timeout=60, interval=0.2)
        with pytest.raises(WaitTimeout) as slow:
            nfo.wait("fw-0", "terminated", timeout=0.3, interval=0.1)
        assert slow.value.last is not None
        for i in range(5):
            nfo.instances.delete(f"fw-{i}")
        nfo.catalog.delete("fw-c")
        nfo.vims.delete("sim-c")


def test_a_failed_instance_ends_the_wait_with_its_reason(served: ServerProcess) -> None:
    with _client(served) as nfo:
        nfo.vims.add({"name": "sim-f", "type": "nfo-vim:sim",
                      "sim": {"failure-rate": "1", "latency": {"mean": 1}}})
        nfo.catalog.add({"id": "fw-f", "vim-types": ["nfo-vim:sim"]})
        nfo.create_instance("doomed", "fw-f", vim="sim-f")
        with pytest.raises(WaitFailed) as failed:
            nfo.wait("doomed", "running", timeout=60, interval=0.2)
        assert "failed" in str(failed.value) and failed.value.last["state"]["reason"]
        nfo.instances.delete("doomed")
        nfo.wait("doomed", "gone", timeout=60, interval=0.2)
        nfo.catalog.delete("fw-f")
        nfo.vims.delete("sim-f")


def test_the_asyncio_client(served: ServerProcess) -> None:
    async def main() -> None:
        cfg = ClientConfig(url=served.base + "/restconf", user="admin", password=PASSWORD)
        async with AsyncClient(cfg) as nfo:
            await nfo.vims.add({"name": "sim-a", "type": "nfo-vim:sim",
                                "sim": {"latency": {"mean": 1}}})
            await nfo.catalog.add({"id": "fw-a", "vim-types": ["nfo-vim:sim"]})
            await nfo.create_instance("a-1", "fw-a", vim="sim-a")
            inst = await nfo.wait("a-1", "running", timeout=60, interval=0.2)
            assert inst is not None and inst["state"]["vim"] == "sim-a"
            await nfo.instances.delete("a-1")
            assert await nfo.wait("a-1", "gone", timeout=60, interval=0.2) is None
            await nfo.catalog.delete("fw-a")
            await nfo.vims.delete("sim-a")
    asyncio.run(main())


def test_a_wrong_password_and_an_unreachable_server(served: ServerProcess) -> None:
    with _client(served, password="not-the-password") as nfo, \
            pytest.raises(AuthenticationFailed) as denied:
        nfo.vims.list()
    assert denied.value.status in (401, 429)
    closed = free_port(kind=1)  # SOCK_STREAM: nothing listens there
    with Client(ClientConfig(url=f"http://127.0.0.1:{closed}", user="admin",
                             password="x", timeout=5)) as nfo, pytest.raises(Unreachable):
        nfo.vims.list()


def test_settings_come_from_flags_then_environment_then_file(tmp_path: Path) -> None:
    f = tmp_path / "config.toml"
    f.write_text('url = "http://file:1"\nuser = "file-user"\npassword = "file-pw"\n'
                 'ca = "/file/ca.pem"\n')
    env = {"NFO_URL": "http://env:2", "NFO_USER": "env-user"}
    cfg = ClientConfig.resolve(file=f, env=env, user="flag-user", password=None)
    assert (cfg.url, cfg.user, cfg.password, cfg.ca) == ("http://env:2", "flag-user",
                                                         "file-pw", "/file/ca.pem")
    assert "file-pw" not in repr(cfg)
    assert ClientConfig.resolve(file=tmp_path / "none.toml", env={}).url == \
        "http://127.0.0.1:8080"
    f.write_text('url = "http://x"\npasword = "typo"\n')
    with pytest.raises(Exception, match="unknown settings pasword"):
        ClientConfig.resolve(file=f, env={})


def test_watch_resumes_after_the_server_restarts(tmp_path: Path) -> None:
    """State changes stream from the ``nfo`` SSE stream; when the connection is lost
    (here: the served restarts), the watch reconnects and resumes after the last change
    it delivered: the changes made meanwhile arrive, none twice."""
    import threading
    srv = ServerProcess(state=tmp_path / "state")
    srv.start()
    got: list[dict[str, object]] = []
    w = Client(ClientConfig(url=f"http://127.0.0.1:{srv.restconf_port}", user="admin",
                            password=PASSWORD, timeout=5))
    changes_of = w.watch(reconnect=0.2)

    def changes(name: str) -> list[tuple[object, object]]:
        return [(e.get("old-status"), e["new-status"]) for e in got if e["name"] == name]

    def until(cond: object, what: str) -> None:
        end = time.monotonic() + 60
        while not cond():  # type: ignore[operator]
            assert time.monotonic() < end, f"{what}: {got}"
            time.sleep(0.1)

    t = threading.Thread(target=lambda: got.extend(changes_of), daemon=True)
    try:
        with _client(srv) as nfo:
            nfo.vims.add({"name": "sim-w", "type": "nfo-vim:sim",
                          "sim": {"latency": {"mean": 1}}})
            nfo.catalog.add({"id": "fw-w", "vim-types": ["nfo-vim:sim"]})
            t.start()
            time.sleep(0.5)
            nfo.create_instance("w-1", "fw-w", vim="sim-w")
            until(lambda: (("initializing", "running") in changes("w-1")), "w-1 running")
        srv.stop()
        srv.start()
        with _client(srv) as nfo:
            nfo.create_instance("w-2", "fw-w", vim="sim-w")
            until(lambda: (("initializing", "running") in changes("w-2")), "w-2 running")
    finally:
        changes_of.close()
        t.join(timeout=30)
        w.close()
        srv.stop()
    assert not t.is_alive()
    assert changes("w-1")[:2] == [(None, "initializing"), ("initializing", "running")]
    keys = [(e["time"], e["name"], e.get("old-status"), e["new-status"]) for e in got]
    assert len(keys) == len(set(keys)), got


def test_a_watch_waiting_for_the_server_is_closed_from_another_thread(
        served: ServerProcess) -> None:
    """:meth:`Watch.close` ends an iteration blocked in a read of a quiet stream (the
    socket is shut down, nothing is thrown into httpx), and the watch makes no new
    connection after it; leaving ``with`` closes the connection of a watch not being
    iterated, not at garbage collection."""
    import threading
    ended = threading.Event()
    with _client(served) as nfo:
        changes = nfo.watch(reconnect=0.1)
        got: list[object] = []

        def iterate() -> None:
            got.extend(changes)
            ended.set()

        t = threading.Thread(target=iterate, daemon=True)
        t.start()
        deadline = time.monotonic() + 30
        while changes._sock is None:     # connected, then blocked reading the stream
            assert time.monotonic() < deadline and t.is_alive()
            time.sleep(0.05)
        time.sleep(0.3)
        assert not ended.is_set()
        changes.close()
        assert ended.wait(timeout=30), "the watch went on after close()"
        assert got == [] and changes.closed and changes._sock is None
        nfo.vims.add({"name": "sim-c", "type": "nfo-vim:sim", "sim": {"latency": {"mean": 1}}})
        nfo.catalog.add({"id": "fw-c", "vim-types": ["nfo-vim:sim"]})
        with nfo.watch(names=["c-1"]) as other:
            nfo.create_instance("c-1", "fw-c", vim="sim-c")
            assert next(other)["name"] == "c-1"
            sock = other._sock
            assert sock is not None and sock.fileno() >= 0
        assert other.closed and sock.fileno() == -1
        nfo.instances.delete("c-1")


def test_https_with_a_client_certificate(tmp_path: Path) -> None:
    """TLS from the same settings as the command line: the served's CA (here its
    development certificate) and a client certificate whose CN is the user, no
    password; without the CA the served is not trusted."""
    from tests.restconf.test_security import make_ca, make_client_cert
    ca, ca_key, ca_path = make_ca(tmp_path, "clients-ca")
    cert, key = make_client_cert(tmp_path, ca, ca_key, "admin")
    state = tmp_path / "state"
    with ServerProcess(state=state, extra_args=["--dev-cert", "--tls-client-ca",
                                                str(ca_path)]) as srv:
        assert srv.base.startswith("https://")
        dev = str(state / "tls" / "dev-cert.pem")
        with Client(ClientConfig(url=srv.base, ca=dev, cert=str(cert), key=str(key))) as nfo:
            assert any(v["name"] == "local" for v in nfo.vims.list())
        with Client(ClientConfig(url=srv.base, user="admin", password="x")) as nfo, \
                pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED"):
            nfo.vims.list()
        with Client(ClientConfig(url=srv.base, insecure=True, cert=str(cert), key=str(key))
                    ) as nfo:
            assert nfo.vims.get("local") is not None


def test_accounts_over_the_client(served: ServerProcess) -> None:
    """An administrator manages accounts remotely: create one, give it a password with
    the set-password action, the new account logs in, then goes."""
    with _client(served) as nfo:
        nfo.users.add({"name": "carol"})
        nfo.set_password("carol", "carols-long-password")
        assert "password" not in str(nfo.users.get("carol"))
    with _client(served, user="carol", password="carols-long-password") as carol:
        carol.instances.list()  # logged in (what she may read is NACM's to decide)
    with _client(served) as nfo:
        nfo.users.delete("carol")
    with _client(served, user="carol", password="carols-long-password") as carol, \
            pytest.raises(AuthenticationFailed):
        carol.instances.list()
