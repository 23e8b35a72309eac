"""Authentication, TLS and request hardening for the RESTCONF front end.

The pieces here are protocol plumbing only; users and passwords live in
:class:`nfo.datastore.users.UserStore`, shared with NETCONF.

- :class:`BasicAuth` authenticates a request (HTTP Basic, RFC 7617, or a
  verified TLS client certificate mapped to a user) and returns the user name,
  or raises :class:`Unauthorized` (401 with ``WWW-Authenticate``).  Passwords
  go through :meth:`UserStore.login` and so through the login throttle shared
  with NETCONF (:mod:`nfo.datastore.logins`): a guess it refuses unchecked is
  429 with Retry-After.
- :class:`BodyLimit` is pure ASGI middleware: a request whose Content-Length
  is too large gets 413 before its body is read; a streamed (chunked) body is
  counted and cut off with 413 when it grows too large.
- :func:`tls_context`, :func:`dev_certificate` and :func:`uvicorn_ssl_kwargs`
  set up HTTPS (TLS 1.2 minimum, forward-secret AEAD ciphers only).

Client certificates and uvicorn: uvicorn (checked with 0.54, h11, httptools and
zttp protocols) does not implement the ASGI TLS extension: nothing about the
TLS session, let alone the peer certificate, reaches ``scope``, and the
transport is not reachable from the app.  Each of its HTTP protocol classes,
though, is created per connection and keeps the ASGI app in ``self.app``.
:func:`tls_http_protocol` subclasses one so that, on a TLS connection, the app
is wrapped to add ``scope["extensions"]["tls"]`` (the ASGI TLS extension:
``client_cert_chain`` with the *verified* leaf certificate as PEM,
``client_cert_name``, ``client_cert_error``, ``tls_version``).
:func:`uvicorn_ssl_kwargs` passes that class as ``http=``.  Python's ssl module
hands over only the leaf of the verified chain (before Python 3.13), so a
certificate is mapped to a user by its subject common name through the
``cert_users`` mapping given to :class:`BasicAuth`; the CA file given as
``client_ca`` is what makes that name trustworthy, so it should be a CA that
issues certificates for this purpose only.  A server without that protocol
class (another ASGI server, or HTTP/2 via uvicorn's zttp auto-switching
protocol, which replaces itself per connection) simply never presents a client
certificate, and Basic authentication applies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import hashlib
import inspect
import ipaddress
import logging
import os
import re
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nfo.datastore.users import UserStore
from nfo.errors import NfoError, TooBig
from nfo.protocol.errors import HttpError, restconf_errors

__all__ = [
    "TLS_CIPHERS",
    "BasicAuth",
    "BodyLimit",
    "BodyTooLarge",
    "Unauthorized",
    "client_certificate",
    "dev_certificate",
    "tls_context",
    "tls_http_protocol",
    "uvicorn_ssl_kwargs",
]

log = logging.getLogger("nfo.restconf.security")

FRONT_END = "restconf"
"""How failed logins of this front end are named in the log."""


# -- errors ---------------------------------------------------------------------------


class Unauthorized(HttpError):
    """Authentication is missing or failed: HTTP 401 with ``headers`` added.

    The message is the same whether the user exists or not.
    """

    def __init__(self, message: str = "authentication required", *,
                 realm: str = "nfo", scheme: str = "Basic") -> None:
        headers = {"WWW-Authenticate": f'{scheme} realm="{realm}"'}
        super().__init__(401, message, tag="access-denied", headers=headers)


class BodyTooLarge(TooBig):
    """Raised from ``receive`` by :class:`BodyLimit` when a streamed body grows too large.

    An app that maps ``too-big`` to 413 itself may let it become its response;
    otherwise :class:`BodyLimit` answers 413 in its place.
    """


# -- HTTP Basic and client certificates ----------------------------------------------

_MAX_CREDENTIALS = 4096
_KNOWN_LOGINS = 256
"""Verified Authorization headers remembered (by digest) at most."""
_REALM = re.compile(r'[^"\\\x00-\x1f\x7f]{1,64}')


def _parse_basic(values: list[str]) -> tuple[str, str] | None:
    """(user, password) from exactly one ``Authorization: Basic`` header, else None."""
    if len(values) != 1:
        return None
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "basic" or not token or len(token) > _MAX_CREDENTIALS:
        return None
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return None
    return user, password


def client_certificate(conn: HTTPConnection) -> x509.Certificate | None:
    """The verified TLS client certificate of ``conn``, from the ASGI TLS extension.

    None when the server does not provide the extension (see the module
    docstring), the client sent no certificate, or it was not verified.
    """
    extensions = conn.scope.get("extensions")
    tls = extensions.get("tls") if isinstance(extensions, Mapping) else None
    if not isinstance(tls, Mapping) or tls.get("client_cert_error") is not None:
        return None
    chain = tls.get("client_cert_chain") or ()
    leaf = next(iter(chain), None)
    if not isinstance(leaf, str):
        return None
    try:
        return x509.load_pem_x509_certificate(leaf.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None


class BasicAuth:
    """Authenticate Starlette requests against a :class:`UserStore`.

    ``await auth.authenticate(request)`` (or ``await auth(request)``) returns
    the user name or raises:

    1. A verified TLS client certificate (see :func:`client_certificate`) whose
       subject common name ``cert_users`` maps to an existing user is that user.
    2. Else ``Authorization: Basic`` is required; missing -> :class:`Unauthorized`
       (401, not a failed login); malformed or wrong -> 401, a failed login.
    3. The password goes through :meth:`UserStore.login`, the login throttle
       shared with NETCONF: a guess it refuses unchecked is
       :class:`~nfo.errors.Throttled`, 429 with Retry-After through the error table.

    A header that logged in is remembered by a keyed digest (at most 256, for the
    user store's cache time, and only while running's revision is the one it was
    verified under: any change of an account, password or group forgets them all), so
    a client's next requests skip the decoding and the account lookup.
    """

    def __init__(
        self,
        users: UserStore,
        *,
        realm: str = "nfo",
        cert_users: Mapping[str, str] | None = None,
        cert_cn_is_user: bool = False,
    ) -> None:
        if not _REALM.fullmatch(realm):
            raise ValueError(f"unusable realm {realm!r}")
        self.users = users
        self.realm = realm
        self._cert_users = dict(cert_users or {})
        self._cn_is_user = cert_cn_is_user
        self._key = secrets.token_bytes(32)
        # keyed digest of an Authorization header -> (user, running revision, expiry)
        self._known: OrderedDict[bytes, tuple[str, int, float]] = OrderedDict()

    async def __call__(self, request: HTTPConnection) -> str:
        return await self.authenticate(request)

    def _challenge(self, message: str) -> Unauthorized:
        return Unauthorized(message, realm=self.realm)

    async def authenticate(self, request: HTTPConnection) -> str:
        user = self._certificate_user(request)
        if user is not None:
            return user
        headers = [value.decode("latin-1") for name, value in request.scope["headers"]
                   if name == b"authorization"]
        if not headers:
            raise self._challenge("authentication required")
        digest = self._digest(headers)
        if digest is not None and digest in self._known:
            user, revision, expiry = self._known[digest]
            if revision == self.users.revision and time.monotonic() < expiry:
                return user
            del self._known[digest]
        credentials = _parse_basic(headers)
        address = request.client.host if request.client is not None else ""
        # as of before the check: a change committed while it runs forgets this login
        revision = self.users.revision
        if credentials is None:
            self.users.login_failed(None, address, FRONT_END, "malformed credentials")
        elif await self.users.login(*credentials, address, FRONT_END):
            if digest is not None:
                self._remember(digest, credentials[0], revision)
            return credentials[0]
        raise self._challenge("authentication failed")

    def _digest(self, headers: list[str]) -> bytes | None:
        """A keyed digest of the one Authorization header (nothing of the password is
        kept), or None when the verified logins are not remembered."""
        if len(headers) != 1 or self.users.cache_seconds <= 0 \
                or len(headers[0]) > _MAX_CREDENTIALS + 16:
            return None
        return hashlib.blake2b(headers[0].encode("utf-8", "surrogateescape"),
                               key=self._key, digest_size=32).digest()

    def _remember(self, digest: bytes, user: str, revision: int) -> None:
        """A verified header is that user, without a decode or an account lookup, while
        running (accounts, passwords, groups) is still at ``revision``, for the user
        store's cache time at most."""
        self._known[digest] = (user, revision, time.monotonic() + self.users.cache_seconds)
        self._known.move_to_end(digest)
        while len(self._known) > _KNOWN_LOGINS:
            self._known.popitem(last=False)

    def _certificate_user(self, request: HTTPConnection) -> str | None:
        if not self._cert_users and not self._cn_is_user:
            return None
        cert = client_certificate(request)
        if cert is None:
            return None
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(names) != 1 or not isinstance(names[0].value, str):
            return None
        user = self._cert_users.get(names[0].value)
        if user is None and self._cn_is_user:
            user = names[0].value  # a certificate whose CN names an existing user
        if user is None or not self.users.enabled(user):
            log.info("client certificate %r maps to no user; Basic authentication applies",
                     names[0].value[:64])
            return None
        return user


# -- request bodies --------------------------------------------------------------------


def _error_body(exc: NfoError) -> bytes:
    return restconf_errors(exc, True).encode()


class BodyLimit:
    """ASGI middleware: request bodies of at most ``max_bytes``.

    A declared Content-Length above the limit is answered 413 at once; the app
    is not called and the body is not read.  Otherwise what the app receives is
    counted, and when a streamed body passes the limit ``receive`` raises
    :class:`BodyTooLarge`; unless the app turns that into a 413 response
    itself, its response is replaced by a 413.  Every 413 closes the
    connection, so the rest of the body is never read.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(f"request body larger than {self.max_bytes} bytes")

    async def _send_413(self, send: Send) -> None:
        body = _error_body(self._too_large())
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/yang-data+json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name.lower() == b"content-length":
                # A malformed value is the server's to refuse; the body is counted anyway.
                declared = value.strip()
                if declared.isdigit() and (len(declared) > 18 or int(declared) > self.max_bytes):
                    await self._send_413(send)
                    return

        received = 0
        exceeded = False
        started = False  # a response start reached the client
        suppressed = False  # the app's response is being replaced

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise self._too_large()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise self._too_large()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, suppressed
            if suppressed:
                return
            if message["type"] == "http.response.start" and not started and exceeded:
                if message.get("status") != 413:
                    suppressed = True
                    return
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
            log.debug("request body over %d bytes: the app stopped", self.max_bytes)
        if exceeded and not started:
            await self._send_413(send)


# -- TLS ---------------------------------------------------------------------------------

TLS_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"
"""TLS 1.2 cipher suites: forward secret and AEAD only (TLS 1.3 suites are all
such and are configured apart).  None of them exists before TLS 1.2, so this
list alone already refuses older protocol versions."""

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_context(cert: Path, key: Path, *, client_ca: Path | None = None,
                require_client_cert: bool = False) -> ssl.SSLContext:
    """A server context: TLS 1.2 minimum, :data:`TLS_CIPHERS`, no compression or
    renegotiation.  With ``client_ca``, clients may (or, with
    ``require_client_cert``, must) present a certificate issued by it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.load_cert_chain(os.fspath(cert), os.fspath(key))
    if client_ca is not None:
        ctx.load_verify_locations(cafile=os.fspath(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    elif require_client_cert:
        raise ValueError("require_client_cert needs client_ca")
    return ctx


def _tls_extension(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> dict[str, Any]:
    """The ASGI TLS extension for one connection (only a verified client cert)."""
    verified = ssl_object.getpeercert()  # empty unless the certificate was verified
    der = ssl_object.getpeercert(binary_form=True) if verified else None
    name = x509.load_der_x509_certificate(der).subject.rfc4514_string() if der else None
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": None,
    }


class _TlsScope:
    """Adds the ASGI TLS extension of one connection to each of its scopes."""

    def __init__(self, app: ASGIApp, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> None:
        self.app = app
        self._ssl_object = ssl_object
        self._info: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            if self._info is None:
                self._info = _tls_extension(self._ssl_object)
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = self._info
            scope = {**scope, "extensions": extensions}
        await self.app(scope, receive, send)


def _protocol_class(base: str | type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    if not isinstance(base, str):
        return base
    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.importer import import_from_string

    cls = import_from_string(HTTP_PROTOCOLS.get(base, base))
    if not (isinstance(cls, type) and issubclass(cls, asyncio.Protocol)):
        raise TypeError(f"{base!r} is not an asyncio protocol class")
    return cls


_tls_protocols: dict[type[asyncio.Protocol], type[asyncio.Protocol]] = {}


def tls_http_protocol(base: str | type[asyncio.Protocol] = "auto") -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class (name as for uvicorn's ``http=``, or a class)
    that adds ``scope["extensions"]["tls"]`` on TLS connections."""
    base_cls = _protocol_class(base)
    if base_cls in _tls_protocols.values():
        return base_cls
    known = _tls_protocols.get(base_cls)
    if known is not None:
        return known

    def connection_made(self: Any, transport: asyncio.BaseTransport) -> None:
        base_cls.connection_made(self, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        if hasattr(self, "app"):
            self.app = _TlsScope(self.app, ssl_object)
        else:
            log.warning("%s keeps no app per connection: no TLS client certificates",
                        base_cls.__name__)

    made: type[asyncio.Protocol] = type(f"Tls{base_cls.__name__}", (base_cls,), {
        "connection_made": connection_made,
        "__module__": __name__,
        "__doc__": f"{base_cls.__name__} adding the ASGI TLS extension to scopes.",
    })
    _tls_protocols[base_cls] = made
    return made


def _uvicorn_has_context_factory() -> bool:
    import uvicorn

    return "ssl_context_factory" in inspect.signature(uvicorn.Config).parameters


def uvicorn_ssl_kwargs(cert: Path, key: Path, *, client_ca: Path | None = None,
                       require_client_cert: bool = False,
                       http: str | type[asyncio.Protocol] = "auto") -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run`` to serve HTTPS.

    ``ssl_certfile``, ``ssl_keyfile``, ``ssl_version``, ``ssl_ciphers`` (and
    ``ssl_cert_reqs``/``ssl_ca_certs`` for client certificates), plus, where
    uvicorn supports it (0.36+), ``ssl_context_factory`` building the context
    with :func:`tls_context` (TLS 1.2 minimum); older uvicorn relies on
    :data:`TLS_CIPHERS`, which has no suite before TLS 1.2.  ``http`` is
    uvicorn's HTTP protocol choice, returned wrapped by
    :func:`tls_http_protocol` so that client certificates reach the app.
    """
    if require_client_cert and client_ca is None:
        raise ValueError("require_client_cert needs client_ca")
    reqs = ssl.CERT_NONE if client_ca is None else (
        ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL)
    kwargs: dict[str, Any] = {
        "ssl_certfile": os.fspath(cert),
        "ssl_keyfile": os.fspath(key),
        "ssl_version": ssl.PROTOCOL_TLS_SERVER,
        "ssl_ciphers": TLS_CIPHERS,
        "ssl_cert_reqs": reqs,
        "ssl_ca_certs": os.fspath(client_ca) if client_ca is not None else None,
        "http": tls_http_protocol(http),
    }
    if _uvicorn_has_context_factory():
        def factory(config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
            ctx = tls_context(cert, key, client_ca=client_ca,
                              require_client_cert=require_client_cert)
            alpn = getattr(getattr(config, "http_protocol_class", None), "alpn_protocols", None)
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            return ctx

        kwargs["ssl_context_factory"] = factory
    return kwargs


_DEV_DAYS = 365
_DEV_RENEW = datetime.timedelta(days=30)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically, created with ``mode`` from the start."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _dev_usable(cert_path: Path, key_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc - _DEV_RENEW < now or cert.not_valid_before_utc > now:
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    mine = key.public_key().public_bytes(pem, spki)
    return bool(cert.public_key().public_bytes(pem, spki) == mine)


def dev_certificate(state_dir: Path) -> tuple[Path, Path]:
    """(certificate, key) of a self-signed development certificate in
    ``<state_dir>/tls``, for localhost, 127.0.0.1 and ::1.

    Made once (ECDSA P-256, one year) and reused while valid for 30 more days;
    the key file is mode 0600, its directory 0700.  Clients trust it by using
    the certificate file itself as their CA file (``curl --cacert``).
    """
    directory = Path(state_dir) / "tls"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = directory / "dev-cert.pem", directory / "dev-key.pem"
    if _dev_usable(cert_path, key_path):
        if key_path.stat().st_mode & 0o077:
            key_path.chmod(0o600)
        return cert_path, key_path

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nfo development certificate"),
    ])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=_DEV_DAYS))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.info("made a self-signed development certificate %s", cert_path)
    return cert_path, key_path
