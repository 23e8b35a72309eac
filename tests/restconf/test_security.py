"""Authentication, body limits, XML hardening and TLS on a real uvicorn, on 127.0.0.1 only.

The app under test is a tiny Starlette app of this file, protected the way the
RESTCONF app is meant to be: :class:`BasicAuth` inside, :class:`BodyLimit` around.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
import os
import ssl
import stat
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from nfo.datastore import Datastore
from nfo.datastore.logins import Budget, LoginGuard, LoginLimits
from nfo.datastore.users import UserStore
from nfo.errors import MalformedMessage, NfoError, Throttled
from nfo.protocol.errors import http_headers, http_status, restconf_errors
from nfo.restconf.security import (
    BasicAuth,
    BodyLimit,
    BodyTooLarge,
    Unauthorized,
    client_certificate,
    dev_certificate,
    tls_context,
    uvicorn_ssl_kwargs,
)
from nfo.wire import xml as xml_reader

PASSWORD = "correct horse battery staple"
LIMIT = 1024
CHALLENGE = 'Basic realm="nfo"'


# -- the app under test ---------------------------------------------------------------


@dataclass
class Calls:
    upload: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)


def make_app(auth: BasicAuth, calls: Calls) -> ASGIApp:
    async def whoami(request: Request) -> Response:
        return PlainTextResponse(await auth.authenticate(request))

    async def upload(request: Request) -> Response:
        calls.upload += 1
        body = await request.body()
        return PlainTextResponse(str(len(body)))

    async def xml(request: Request) -> Response:
        xml_reader.check(await request.body())
        return Response(status_code=204)

    async def tls(request: Request) -> Response:
        info = request.scope.get("extensions", {}).get("tls")
        cert = client_certificate(request)
        return JSONResponse({
            "tls_version": info.get("tls_version") if info else None,
            "client_cert_name": info.get("client_cert_name") if info else None,
            "subject": cert.subject.rfc4514_string() if cert else None,
        })

    async def on_nfo_error(request: HTTPConnection, exc: Exception) -> Response:
        assert isinstance(exc, NfoError)
        if isinstance(exc, Unauthorized):
            return PlainTextResponse(exc.message, status_code=401, headers=exc.headers)
        if isinstance(exc, Throttled):  # as the RESTCONF app answers it: the error table
            return Response(restconf_errors(exc, True), http_status(exc), http_headers(exc),
                            media_type="application/yang-data+json")
        status = 400 if isinstance(exc, MalformedMessage) else 500
        return PlainTextResponse(f"{exc.tag}: {exc.message}", status_code=status)

    app = Starlette(routes=[
        Route("/whoami", whoami),
        Route("/upload", upload, methods=["POST"]),
        Route("/xml", xml, methods=["POST"]),
        Route("/tls", tls),
    ], exception_handlers={Unauthorized: on_nfo_error, MalformedMessage: on_nfo_error,
                           Throttled: on_nfo_error})
    return BodyLimit(app, LIMIT)


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, **kwargs: Any) -> AsyncIterator[int]:
    """A real uvicorn on 127.0.0.1 (a free port) in this test's loop; yields the port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, log_level="warning",
                            lifespan="off", access_log=False, **kwargs)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("uvicorn did not start")
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
async def users(ds: Datastore) -> UserStore:
    store = UserStore(ds)
    await store.add("alice", PASSWORD)
    return store


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
async def http_port(users: UserStore, calls: Calls) -> AsyncIterator[tuple[int, BasicAuth]]:
    auth = BasicAuth(users)
    async with serving(make_app(auth, calls)) as port:
        yield port, auth


def client(port: int, *, scheme: str = "http", verify: ssl.SSLContext | bool = False,
           ) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{scheme}://127.0.0.1:{port}", verify=verify,
                             trust_env=False, timeout=20)


async def raw_exchange(port: int, request: bytes, *, parts: list[bytes] | None = None) -> bytes:
    """Send bytes over a plain TCP connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        for part in parts or []:
            writer.write(part)
            await writer.drain()
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


# -- Basic authentication -----------------------------------------------------------------


async def test_basic_auth_over_http(http_port: tuple[int, BasicAuth]) -> None:
    port, _ = http_port
    async with client(port) as c:
        r = await c.get("/whoami")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == CHALLENGE
        for headers in (basic("alice", "wrong"), basic("mallory", PASSWORD),
                        {"Authorization": "Basic !!!not-base64"},
                        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
                        {"Authorization": "Bearer abc"}, {"Authorization": "Basic"}):
            r = await c.get("/whoami", headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"] == CHALLENGE
            assert "authentication failed" in r.text
        r = await c.get("/whoami", headers=basic("alice", PASSWORD))
        assert r.status_code == 200
        assert r.text == "alice"


async def test_a_remembered_login_is_forgotten_when_an_account_changes(
        http_port: tuple[int, BasicAuth], users: UserStore, ds: Datastore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A verified Authorization header is recognised again without UserStore.login,
    until a commit changes an account: a new password, a disabled account or any other
    change under /nfo-users:users sends it through a full login again; other commits
    do not."""
    port, _ = http_port
    logins: list[str] = []
    login = users.login

    async def counting(name: str, password: str, address: str, front_end: str) -> bool:
        logins.append(name)
        return await login(name, password, address, front_end)

    monkeypatch.setattr(users, "login", counting)
    async with client(port) as c:
        for _ in range(3):
            assert (await c.get("/whoami", headers=basic("alice", PASSWORD))).text == "alice"
        assert logins == ["alice"]
        r = await c.get("/whoami", headers=basic("alice", PASSWORD + "x"))
        assert r.status_code == 401 and logins == ["alice", "alice"]
        await users.set_password("alice", PASSWORD + "-new")
        r = await c.get("/whoami", headers=basic("alice", PASSWORD))
        assert r.status_code == 401
        assert (await c.get("/whoami", headers=basic("alice", PASSWORD + "-new"))).text == "alice"
        await users.set_enabled("alice", False)
        r = await c.get("/whoami", headers=basic("alice", PASSWORD + "-new"))
        assert r.status_code == 401
        await users.set_enabled("alice", True)
        assert (await c.get("/whoami", headers=basic("alice", PASSWORD + "-new"))).text == "alice"
        before = len(logins)
        async with ds.internal_session("seed") as s:  # not an account: still remembered
            await s.edit("running", '{"nfo-test:top": {"name": "x"}}', "json")
        assert (await c.get("/whoami", headers=basic("alice", PASSWORD + "-new"))).text == "alice"
        assert len(logins) == before
        await users.add("carol", PASSWORD)  # another account: checked again
        assert (await c.get("/whoami", headers=basic("alice", PASSWORD + "-new"))).text == "alice"
        assert len(logins) == before + 1


async def test_a_login_verified_while_the_password_changed_is_not_remembered(
        http_port: tuple[int, BasicAuth], users: UserStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The password changes while a login is being checked against the old one: the
    header is not recognised afterwards on the strength of that check."""
    port, _ = http_port
    login = users.login
    changed: list[bool] = []

    async def racing(name: str, password: str, address: str, front_end: str) -> bool:
        ok = await login(name, password, address, front_end)
        if not changed:
            changed.append(True)
            await users.set_password("alice", PASSWORD + "-new")  # committed meanwhile
        return ok

    monkeypatch.setattr(users, "login", racing)
    async with client(port) as c:
        assert (await c.get("/whoami", headers=basic("alice", PASSWORD))).text == "alice"
        r = await c.get("/whoami", headers=basic("alice", PASSWORD))
        assert r.status_code == 401
        assert (await c.get("/whoami", headers=basic("alice", PASSWORD + "-new"))).text == "alice"


def tight_users(ds: Datastore) -> UserStore:
    """A user store whose login throttle allows 4 checked guesses per account (2 of them
    kept for addresses in good standing) and never refills within a test."""
    return UserStore(ds, logins=LoginGuard(LoginLimits(
        account=Budget(4, 1e-9, 2), address=Budget(100, 1e-9), server=Budget(100, 1e-9))))


async def test_guesses_beyond_the_budget_are_429_with_retry_after(
        ds: Datastore, users: UserStore, calls: Calls) -> None:
    store = tight_users(ds)
    async with serving(make_app(BasicAuth(store), calls)) as port, client(port) as c:
        statuses = []
        for i in range(8):
            r = await c.get("/whoami", headers=basic("alice", f"guess-{i}"))
            statuses.append(r.status_code)
            if r.status_code == 401:
                assert r.headers["www-authenticate"] == CHALLENGE
                assert "retry-after" not in r.headers
        # the address failed at once: it may not spend the 2 reserved tokens
        assert statuses == [401, 401, 429, 429, 429, 429, 429, 429]
        r = await c.get("/whoami", headers=basic("alice", "guess-9"))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["ietf-restconf:errors"]["error"] == [{
            "error-type": "protocol", "error-tag": "resource-denied",
            "error-app-tag": "nfo-login-throttled",
            "error-message": "too many failed logins: try again later"}]
        # the same wrong password again is no new guess: 401, not throttled
        r = await c.get("/whoami", headers=basic("alice", "guess-0"))
        assert r.status_code == 401
        assert store.logins.counters.checked == 2
        assert store.logins.counters.throttled == 7
        assert store.logins.counters.failed == 10


async def test_missing_credentials_are_not_failures(ds: Datastore, users: UserStore) -> None:
    store = tight_users(ds)
    auth = BasicAuth(store)
    for _ in range(10):
        with pytest.raises(Unauthorized) as info:
            await auth.authenticate(request_from("192.0.2.1", None))
        assert info.value.headers == {"WWW-Authenticate": CHALLENGE}
        assert info.value.tag == "access-denied" and info.value.error_type == "protocol"
        assert info.value.status == 401
    assert store.logins.counters.failed == 0


async def test_malformed_credentials_are_failures_but_no_guesses(
        ds: Datastore, users: UserStore, caplog: pytest.LogCaptureFixture) -> None:
    store = tight_users(ds)
    auth = BasicAuth(store)
    caplog.set_level(logging.WARNING, "nfo.logins")
    for header in ("Basic %%%", "Bearer x", "Basic " + base64.b64encode(b"no-colon").decode()):
        for _ in range(5):
            assert await attempt(auth, "192.0.2.1", header) is None
    assert store.logins.counters.failed == 15 and store.logins.counters.checked == 0
    assert await attempt(auth, "192.0.2.1", GOOD) == "alice"
    assert caplog.records[0].getMessage() == (
        "login failed: no user name from 192.0.2.1 over restconf: malformed credentials")


async def test_addresses_reach_the_throttle(ds: Datastore, users: UserStore) -> None:
    store = tight_users(ds)
    auth = BasicAuth(store)
    for i in range(6):
        assert await attempt(auth, f"192.0.2.{i}", basic("alice", f"g{i}")["Authorization"]) \
            is None
    assert store.logins.counters.checked == 4  # new addresses, but one account's budget
    with pytest.raises(Throttled) as info:
        await auth.authenticate(request_from("::ffff:192.0.2.77", basic("alice", "g9")[
            "Authorization"]))
    assert info.value.retry_after >= 1
    assert await attempt(auth, "2001:db8::1", GOOD) is None  # throttled too: unchecked
    await store.set_password("alice", PASSWORD)  # set through the server: recognised
    assert await attempt(auth, "2001:db8::1", GOOD) == "alice"


def request_from(host: str, authorization: str | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers,
                    "client": (host, 50000), "query_string": b""})


async def attempt(auth: BasicAuth, host: str, authorization: str | None) -> str | None:
    try:
        return await auth.authenticate(request_from(host, authorization))
    except (Unauthorized, Throttled):
        return None


GOOD = basic("alice", PASSWORD)["Authorization"]


# -- body limits ------------------------------------------------------------------------


async def test_oversize_content_length_refused_before_reading(
        http_port: tuple[int, BasicAuth], calls: Calls) -> None:
    port, _ = http_port
    # Megabytes announced, none sent: the answer comes anyway, and the app never ran.
    for length in (b"10000000", b"9" * 19):
        response = await raw_exchange(port, (
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            b"Content-Length: " + length + b"\r\n\r\n"))
        head = response.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 413")
        assert b"connection: close" in head
        assert b"too-big" in response
    assert calls.upload == 0
    async with client(port) as c:
        r = await c.post("/upload", content=b"x" * (LIMIT + 1))
        assert r.status_code == 413
        r = await c.post("/upload", content=b"x" * LIMIT)
        assert r.status_code == 200 and r.text == str(LIMIT)
    assert calls.upload == 1


async def test_oversize_chunked_body_refused(
        http_port: tuple[int, BasicAuth], calls: Calls) -> None:
    port, _ = http_port

    async def chunks(n: int, size: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"y" * size

    async with client(port) as c:
        r = await c.post("/upload", content=chunks(4, 200))
        assert r.status_code == 200 and r.text == "800"
        r = await c.post("/upload", content=chunks(8, 200))
        assert r.status_code == 413
        assert r.headers["connection"] == "close"
        assert r.json()["ietf-restconf:errors"]["error"][0]["error-tag"] == "too-big"
    # the same, raw: more chunks are announced than are ever read
    response = await raw_exchange(port, (
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        parts=[b"200\r\n" + b"z" * 0x200 + b"\r\n"] * 3)
    assert response.lower().startswith(b"http/1.1 413")


async def test_app_may_answer_too_big_itself() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except BodyTooLarge as e:
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"x-mine", b"1"), (b"connection", b"keep-alive")]})
            await send({"type": "http.response.body", "body": e.message.encode()})

    async with serving(BodyLimit(app, 10)) as port, client(port) as c:
        async def body() -> AsyncIterator[bytes]:
            yield b"0123456789"
            yield b"x"

        r = await c.post("/", content=body())
        assert r.status_code == 413
        assert r.headers["x-mine"] == "1" and r.headers["connection"] == "close"


# -- XML -------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
    b"<!doctype a><a/>",
    b'<?xml version="1.0"?>\n<!DocType a SYSTEM "file:///etc/passwd"><a/>',
    b"\xef\xbb\xbf  \n<!DOCTYPE a><a/>",
    b"  \t\r\n<!DOCTYPE a><a/>",
    b'<a><!ENTITY x SYSTEM "http://127.0.0.1/"></a>',
    b"<a/><!eNtItY % p 'x'>",
    b"<!-- hidden --><!DOCTYPE a><a/>",
    b"<a><!ELEMENT a ANY></a>",
    b"<!\nDOCTYPE a><a/>",
    "\ufeff<!DOCTYPE a><a/>".encode("utf-16"),
    "<!DOCTYPE a><a/>".encode("utf-16-le"),
    "<!DOCTYPE a><a/>".encode("utf-32"),
])
def test_dtd_and_entities_refused(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        xml_reader.check(body)


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0" encoding="UTF-8"?><data xmlns="urn:x"><a>DOCTYPE &lt;!x</a></data>',
    b"\xef\xbb\xbf<a><!-- a comment --><![CDATA[ x < y ]]></a>",
    "<name>caf\u00e9</name>".encode(),
])
def test_plain_xml_accepted(body: bytes) -> None:
    xml_reader.check(body)


async def test_xml_refused_through_the_server(http_port: tuple[int, BasicAuth]) -> None:
    port, _ = http_port
    async with client(port) as c:
        r = await c.post("/xml", content=b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM '
                                         b'"file:///etc/passwd">]><x>&e;</x>')
        assert r.status_code == 400 and "malformed-message" in r.text
        r = await c.post("/xml", content=b"<x>fine</x>")
        assert r.status_code == 204


# -- TLS ----------------------------------------------------------------------------------


def test_dev_certificate_made_once(tmp_path: Path) -> None:
    cert, key = dev_certificate(tmp_path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    first = cert.read_bytes(), key.read_bytes()
    assert dev_certificate(tmp_path) == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == first
    parsed = x509.load_pem_x509_certificate(first[0])
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert b"PRIVATE KEY" not in first[0]
    # a loosened key mode is tightened; a lost key means a new pair
    key.chmod(0o644)
    dev_certificate(tmp_path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.unlink()
    cert2, key2 = dev_certificate(tmp_path)
    assert cert2.read_bytes() != first[0]
    assert stat.S_IMODE(key2.stat().st_mode) == 0o600


def test_tls_context_settings(tmp_path: Path) -> None:
    cert, key = dev_certificate(tmp_path)
    ctx = tls_context(cert, key)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE
    assert tls_context(cert, key, client_ca=cert).verify_mode == ssl.CERT_OPTIONAL
    kwargs = uvicorn_ssl_kwargs(cert, key)
    assert kwargs["ssl_certfile"] == str(cert) and kwargs["ssl_keyfile"] == str(key)
    assert kwargs["ssl_ciphers"] and "ssl_version" in kwargs


async def test_https_with_dev_certificate(tmp_path: Path, users: UserStore, calls: Calls) -> None:
    cert, key = dev_certificate(tmp_path / "state")
    trust = ssl.create_default_context(cafile=str(cert))
    auth = BasicAuth(users)
    async with serving(make_app(auth, calls), **uvicorn_ssl_kwargs(cert, key)) as port:
        async with client(port, scheme="https", verify=trust) as c:
            r = await c.get("/whoami")
            assert r.status_code == 401 and r.headers["www-authenticate"] == CHALLENGE
            r = await c.get("/whoami", headers=basic("alice", PASSWORD))
            assert r.status_code == 200 and r.text == "alice"
            r = await c.get("/tls")
            assert r.json()["tls_version"] in (0x0303, 0x0304)
            assert r.json()["subject"] is None
            r = await c.post("/upload", content=b"x" * (LIMIT + 1))
            assert r.status_code == 413
        # curl, trusting the certificate file itself
        url = f"https://127.0.0.1:{port}/whoami"
        proc = await asyncio.create_subprocess_exec(
            "/usr/bin/curl", "--silent", "--show-error", "--noproxy", "*", "--cacert", str(cert),
            "--user", f"alice:{PASSWORD}", "--write-out", "\n%{http_code}", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err
        assert out.decode().splitlines() == ["alice", "200"]
        proc = await asyncio.create_subprocess_exec(
            "/usr/bin/curl", "--silent", "--noproxy", "*", "--cacert", str(cert),
            "--output", os.devnull, "--write-out", "%{http_code}", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        assert out == b"401"


def old_client_context(maximum: ssl.TLSVersion) -> ssl.SSLContext:
    """A client willing to speak TLS 1.0 up to ``maximum`` (no certificate checks)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = maximum
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


async def handshake(port: int, ctx: ssl.SSLContext) -> str | None:
    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ctx), 10)
    try:
        return writer.get_extra_info("ssl_object").version()  # type: ignore[no-any-return]
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def test_tls_1_1_refused(tmp_path: Path, users: UserStore, calls: Calls) -> None:
    cert, key = dev_certificate(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tls11 = ssl.TLSVersion.TLSv1_1
    # control: this client does speak TLS 1.1 to a server that allows it
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive.minimum_version = ssl.TLSVersion.TLSv1
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    permissive.load_cert_chain(cert, key)
    control = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=permissive)
    try:
        assert await handshake(control.sockets[0].getsockname()[1],
                               old_client_context(tls11)) == "TLSv1.1"
    finally:
        control.close()
        await control.wait_closed()

    async with serving(make_app(BasicAuth(users), calls), **uvicorn_ssl_kwargs(cert, key)) as port:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await handshake(port, old_client_context(tls11))
        assert await handshake(port, old_client_context(ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"


# -- client certificates --------------------------------------------------------------------


def make_ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey,
                                                   Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, path


def make_client_cert(directory: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                     cn: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / f"{cn}.crt", directory / f"{cn}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_client_certificate_authentication(
        tmp_path: Path, users: UserStore, calls: Calls) -> None:
    cert, key = dev_certificate(tmp_path / "state")
    ca, ca_key, ca_path = make_ca(tmp_path, "clients-ca")
    rogue, rogue_key, _ = make_ca(tmp_path, "rogue-ca")
    laptop = make_client_cert(tmp_path, ca, ca_key, "alice-laptop")
    unmapped = make_client_cert(tmp_path, ca, ca_key, "someone-else")
    ghost = make_client_cert(tmp_path, ca, ca_key, "ghost-laptop")
    (tmp_path / "rogue").mkdir()
    forged = make_client_cert(tmp_path / "rogue", rogue, rogue_key, "alice-laptop")

    def context(chain: tuple[Path, Path] | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(cert))
        if chain is not None:
            ctx.load_cert_chain(*chain)
        return ctx

    auth = BasicAuth(users, cert_users={"alice-laptop": "alice", "ghost-laptop": "ghost"})
    kwargs = uvicorn_ssl_kwargs(cert, key, client_ca=ca_path)
    async with serving(make_app(auth, calls), **kwargs) as port:
        async with client(port, scheme="https", verify=context(laptop)) as c:
            r = await c.get("/whoami")
            assert r.status_code == 200 and r.text == "alice"
            r = await c.get("/tls")
            assert r.json()["subject"] == "CN=alice-laptop"
            assert r.json()["client_cert_name"] == "CN=alice-laptop"
        for chain in (None, unmapped, ghost):  # no certificate, or one that maps to no user
            async with client(port, scheme="https", verify=context(chain)) as c:
                r = await c.get("/whoami")
                assert r.status_code == 401 and r.headers["www-authenticate"] == CHALLENGE
                r = await c.get("/whoami", headers=basic("alice", PASSWORD))
                assert r.status_code == 200 and r.text == "alice"
        # a certificate from another CA does not even complete the handshake
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            async with client(port, scheme="https", verify=context(forged)) as c:
                await c.get("/whoami")


async def test_no_tls_extension_over_plain_http(
        http_port: tuple[int, BasicAuth]) -> None:
    port, _ = http_port
    async with client(port) as c:
        r = await c.get("/tls")
        assert r.json() == {"tls_version": None, "client_cert_name": None, "subject": None}


async def test_certificate_cn_naming_a_user_is_that_user(
        tmp_path: Path, users: UserStore, calls: Calls) -> None:
    """What `nfo serve --tls-client-ca` configures: CN = user name, the user must exist."""
    cert, key = dev_certificate(tmp_path / "state")
    ca, ca_key, ca_path = make_ca(tmp_path, "clients-ca")
    alice = make_client_cert(tmp_path, ca, ca_key, "alice")
    nobody = make_client_cert(tmp_path, ca, ca_key, "nobody")
    auth = BasicAuth(users, cert_cn_is_user=True)
    async with serving(make_app(auth, calls),
                       **uvicorn_ssl_kwargs(cert, key, client_ca=ca_path)) as port:
        for chain, expected in ((alice, 200), (nobody, 401)):
            ctx = ssl.create_default_context(cafile=str(cert))
            ctx.load_cert_chain(*chain)
            async with client(port, scheme="https", verify=ctx) as c:
                r = await c.get("/whoami")
                assert r.status_code == expected
                if expected == 200:
                    assert r.text == "alice"
