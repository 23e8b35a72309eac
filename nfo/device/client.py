"""The southbound NETCONF client: one :class:`Device` is one NETCONF session over one SSH
connection to a network function nfo configures.

Why nfo has its own: the workload manager drives many devices from one event loop and must
tell a failure worth retrying from one that is not.  This client is asyncio throughout
(asyncssh, like nfo's own NETCONF server), reuses the RFC 6242 framing and the hardened XML
reader of :mod:`nfo.wire`, and turns every failure into a
:class:`~nfo.device.errors.DeviceError` in two places only: :func:`_failures` for the
transport (OSError, asyncssh errors, timeouts) and :func:`nfo.device.messages.check_reply`
for replies.

- Framing: base:1.1 chunked framing when both hellos name it, else end-of-message.  A reply
  larger than :data:`MAX_REPLY` ends the session.
- One reader task per session reads every message and hands each reply to the RPC waiting
  for its message-id; RPCs are sent one at a time (a lock per session), each bounded by
  ``Endpoint.rpc_timeout``.  Notifications are ignored.
- Host key: with ``Endpoint.host_key`` set, asyncssh trusts that key only and the key
  exchange fails before any credential is sent; without it any key is accepted and
  :attr:`Device.host_key` tells the caller which (trust on first use is the caller's).
- Credentials: the private key text and/or the password of the endpoint, nothing else: no
  agent, no ``~/.ssh`` key, configuration or known_hosts file is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType

import asyncssh

from nfo.device.errors import DeviceError
from nfo.device.messages import (
    BASE_1_1,
    NC,
    check_reply,
    client_hello,
    parse_hello,
    parse_message,
    rpc_message,
)
from nfo.errors import MalformedMessage
from nfo.wire import framing, xml
from nfo.wire.xml import Element, escape

__all__ = ["MAX_REPLY", "Device", "Endpoint"]

log = logging.getLogger(__name__)

MAX_REPLY = 64 * 1024 * 1024
"""The largest message accepted from a device, in bytes."""
OFFLOAD_SIZE = 1024 * 1024
"""Replies larger than this are parsed on a worker thread, not on the event loop."""
CLOSE_TIMEOUT = 5.0
_READ_SIZE = 65536
_NAME = re.compile(r"[a-z][a-z0-9-]*")
_CAP = "urn:ietf:params:netconf:capability:"
_MONITORING = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
_NOTIFICATION = "urn:ietf:params:xml:ns:netconf:notification:1.0"
_EDIT_OPTIONS = {
    "default-operation": frozenset({"merge", "replace", "none"}),
    "test-option": frozenset({"test-then-set", "set", "test-only"}),
    "error-option": frozenset({"stop-on-error", "continue-on-error", "rollback-on-error"}),
}


@dataclass(frozen=True)
class Endpoint:
    """Where a device is and how to log in; the secrets never appear in its repr."""

    host: str
    port: int
    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    """An OpenSSH (or PEM) private key, as text."""
    host_key: str | None = None
    """The server key expected, an OpenSSH public-key line; None: accept and report it."""
    connect_timeout: float = 10.0
    rpc_timeout: float = 30.0


def _datastore(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a datastore name: {name!r}")
    return f"<{name}/>"


@contextlib.contextmanager
def _failures(ep: Endpoint, doing: str, timeout: float) -> Iterator[None]:
    """Transport failures as DeviceErrors (the one place they are classified)."""
    where = f"{ep.host}:{ep.port}"
    try:
        yield
    except DeviceError:
        raise
    except TimeoutError:
        raise DeviceError("timeout", f"{doing} {where}: no answer within {timeout:g} s") from None
    except asyncssh.HostKeyNotVerifiable:
        raise DeviceError("host-key", f"{doing} {where}: the device presented a host key "
                          "other than the one expected") from None
    except asyncssh.PermissionDenied:
        raise DeviceError("auth", f"{doing} {where}: the device refused the login of user "
                          f"{ep.username!r}") from None
    except (asyncssh.ConnectionLost, asyncssh.ServiceNotAvailable,
            asyncssh.ChannelOpenError) as e:
        raise DeviceError("connect", f"{doing} {where}: {e.reason}") from None
    except asyncssh.DisconnectError as e:
        raise DeviceError("protocol", f"{doing} {where}: SSH failed: {e.reason}") from None
    except (OSError, asyncssh.Error) as e:
        raise DeviceError("connect", f"{doing} {where}: {e.strerror or e}"
                          if isinstance(e, OSError) else f"{doing} {where}: {e}") from None


def _credentials(ep: Endpoint) -> dict[str, object]:
    """asyncssh's options for exactly the endpoint's credentials and host key."""
    methods: list[str] = []
    keys: list[asyncssh.SSHKey] | None = None
    if ep.private_key:
        try:
            keys = [asyncssh.import_private_key(ep.private_key)]
        except (asyncssh.KeyImportError, ValueError):
            raise DeviceError("auth", f"the private key for {ep.host}:{ep.port} cannot be "
                              "read (an unencrypted OpenSSH or PEM private key is needed)"
                              ) from None
        methods.append("publickey")
    if ep.password is not None:
        methods += ["keyboard-interactive", "password"]
    if not methods:
        raise DeviceError("auth", f"no password or private key given for {ep.host}:{ep.port}")
    known: object = None
    if ep.host_key is not None:
        try:
            known = ([asyncssh.import_public_key(ep.host_key)], [], [])
        except (asyncssh.KeyImportError, ValueError):
            raise DeviceError("host-key", f"the expected host key of {ep.host}:{ep.port} is "
                              "not an OpenSSH public-key line") from None
    return {
        "username": ep.username, "password": ep.password, "client_keys": keys,
        "preferred_auth": methods, "known_hosts": known, "config": [], "agent_path": None,
        "agent_identities": None, "pkcs11_provider": None, "x509_trusted_certs": None,
        "x509_trusted_cert_paths": [], "gss_host": None, "client_host_keys": [],
    }


class Device:
    """One NETCONF session over one SSH connection; make it with :meth:`connect`."""

    def __init__(self, ep: Endpoint, conn: asyncssh.SSHClientConnection,
                 writer: asyncssh.SSHWriter[bytes], reader: asyncssh.SSHReader[bytes]) -> None:
        self.endpoint = ep
        self.capabilities: frozenset[str] = frozenset()
        self.session_id = 0
        key = conn.get_server_host_key()
        self.host_key = key.export_public_key("openssh").decode().strip() if key else ""
        self._conn = conn
        self._writer = writer
        self._reader = reader
        self._decoder = framing.Decoder(MAX_REPLY)
        self._chunked = False
        self._hello: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending: dict[str, asyncio.Future[Element]] = {}
        self._next_id = 1
        self._lock = asyncio.Lock()
        self._broken: DeviceError | None = None
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._read_loop(),
                                                            name=f"netconf {ep.host}:{ep.port}")

    def __repr__(self) -> str:
        return (f"<Device {self.endpoint.host}:{self.endpoint.port} "
                f"session {self.session_id}>")

    @classmethod
    async def connect(cls, ep: Endpoint) -> Device:
        """Log in, open the ``netconf`` subsystem and exchange hellos, within
        ``ep.connect_timeout`` seconds."""
        options = _credentials(ep)
        conn: asyncssh.SSHClientConnection | None = None
        device: Device | None = None
        try:
            with _failures(ep, "connecting to", ep.connect_timeout):
                async with asyncio.timeout(ep.connect_timeout):
                    conn = await asyncssh.connect(ep.host, ep.port, **options)
                    writer, reader, _ = await conn.open_session(subsystem="netconf",
                                                                encoding=None)
                    device = cls(ep, conn, writer, reader)
                    writer.write(framing.encode_eom(client_hello()))
                    await device._hello
            return device
        except BaseException:
            if device is not None:
                await device._shut()
            elif conn is not None:
                conn.abort()
            raise

    # -- what the device supports --

    def supports(self, capability_prefix: str) -> bool:
        """Some capability of the device's hello starts with ``capability_prefix``."""
        return any(c.startswith(capability_prefix) for c in self.capabilities)

    @property
    def has_candidate(self) -> bool:
        return self.supports(_CAP + "candidate:1.0")

    @property
    def has_confirmed_commit(self) -> bool:
        return self.supports(_CAP + "confirmed-commit:1.0") or self.supports(
            _CAP + "confirmed-commit:1.1")

    @property
    def has_persist(self) -> bool:
        """A confirmed commit can outlive its session (``<persist>``, RFC 6241 8.4)."""
        return self.supports(_CAP + "confirmed-commit:1.1")

    @property
    def has_validate(self) -> bool:
        return self.supports(_CAP + "validate:1.0") or self.supports(_CAP + "validate:1.1")

    @property
    def has_startup(self) -> bool:
        return self.supports(_CAP + "startup:1.0")

    # -- operations --

    async def get_config(self, source: str = "running", filter_xml: str | None = None) -> str:
        """The configuration in ``source``: the children of ``<data>`` as XML text, each
        carrying the namespace declarations it needs; "" when there is none."""
        flt = f'<filter type="subtree">{filter_xml}</filter>' if filter_xml is not None else ""
        reply = await self._call("get-config", f"<get-config><source>{_datastore(source)}"
                                 f"</source>{flt}</get-config>")
        data = reply.child("data", NC)
        return data.content_xml().decode().strip() if data is not None else ""

    async def edit_config(self, target: str, config_xml: str, *,
                          default_operation: str | None = None,
                          test_option: str | None = None,
                          error_option: str | None = None) -> None:
        """``<edit-config>`` of ``config_xml`` (the content of ``<config>``; declare the
        base namespace for ``operation`` attributes) into ``target``."""
        options = ""
        for name, value in (("default-operation", default_operation),
                            ("test-option", test_option), ("error-option", error_option)):
            if value is not None:
                if value not in _EDIT_OPTIONS[name]:
                    raise ValueError(f"{name} {value!r} is not one of "
                                     f"{sorted(_EDIT_OPTIONS[name])}")
                options += f"<{name}>{value}</{name}>"
        await self._call("edit-config", f"<edit-config><target>{_datastore(target)}</target>"
                         f"{options}<config>{config_xml}</config></edit-config>", check=True)

    async def lock(self, target: str) -> None:
        await self._call("lock", f"<lock><target>{_datastore(target)}</target></lock>")

    async def unlock(self, target: str) -> None:
        await self._call("unlock", f"<unlock><target>{_datastore(target)}</target></unlock>")

    async def commit(self, *, confirmed: bool = False, timeout: int | None = None,
                     persist: str | None = None, persist_id: str | None = None) -> None:
        """``<commit>``; ``confirmed`` starts (or extends) a confirmed commit that the device
        rolls back unless a confirming commit follows within ``timeout`` seconds (default
        600).  With ``persist`` the confirmed commit survives the end of this session, and
        any session confirms it (``persist_id``) or cancels it by that token."""
        if timeout is not None and (not confirmed or timeout < 1):
            raise ValueError("a confirm timeout needs confirmed=True and at least 1 second")
        if persist is not None and not confirmed:
            raise ValueError("persist needs confirmed=True")
        body = ""
        if confirmed:
            body = "<confirmed/>" + (f"<confirm-timeout>{timeout}</confirm-timeout>"
                                     if timeout is not None else "")
            if persist is not None:
                body += f"<persist>{escape(persist)}</persist>"
        if persist_id is not None:
            body += f"<persist-id>{escape(persist_id)}</persist-id>"
        await self._call("commit", f"<commit>{body}</commit>")

    async def cancel_commit(self, persist_id: str | None = None) -> None:
        """``<cancel-commit>`` of this session's confirmed commit, or of the persistent
        one started with ``persist_id``."""
        body = "" if persist_id is None else f"<persist-id>{escape(persist_id)}</persist-id>"
        await self._call("cancel-commit", f"<cancel-commit>{body}</cancel-commit>")

    async def discard_changes(self) -> None:
        await self._call("discard-changes", "<discard-changes/>")

    async def validate(self, source: str = "candidate") -> None:
        await self._call("validate",
                         f"<validate><source>{_datastore(source)}</source></validate>")

    async def get_schema(self, identifier: str, version: str | None = None) -> str:
        """The YANG text of module ``identifier`` (RFC 6022 ``<get-schema>``)."""
        ver = f"<version>{escape(version)}</version>" if version is not None else ""
        reply = await self._call(
            "get-schema", f'<get-schema xmlns="{_MONITORING}"><identifier>'
            f"{escape(identifier)}</identifier>{ver}<format>yang</format></get-schema>")
        data = reply.child("data", _MONITORING)
        if data is None:
            raise DeviceError("protocol", f"get-schema {identifier}: the reply has no <data>")
        return data.text

    async def rpc(self, inner_xml: str) -> Element:
        """Any RPC (``inner_xml`` is the content of ``<rpc>``); the ``<rpc-reply>``.  Its
        ``<data>`` in the base namespace is opaque: read it with ``content_xml()``."""
        return await self._call("rpc", inner_xml, check=True)

    async def close(self) -> None:
        """``<close-session/>``, then close the SSH connection; idempotent, never raises.
        With a request in flight the connection is closed at once and the request fails."""
        if self._closed:
            return
        self._closed = True
        if self._broken is None and not self._lock.locked():
            with contextlib.suppress(DeviceError, TimeoutError, ValueError):
                async with asyncio.timeout(min(CLOSE_TIMEOUT, self.endpoint.rpc_timeout)):
                    await self._call("close-session", "<close-session/>", closing=True)
        await self._shut()

    async def __aenter__(self) -> Device:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- the session --

    async def _call(self, operation: str, inner_xml: str, *, check: bool = False,
                    closing: bool = False) -> Element:
        """Send one RPC and return its checked reply.  ``check``: make sure the message
        is well-formed first (it carries the caller's XML)."""
        if self._closed and not closing:
            raise DeviceError("connect", f"{operation}: the session to {self._where} is closed",
                              temporary=False)
        async with self._lock:
            if self._broken is not None:
                b = self._broken
                raise DeviceError(b.kind, f"{operation}: {b.reason}", errors=b.errors,
                                  temporary=b.temporary)
            mid = str(self._next_id)
            self._next_id += 1
            message = rpc_message(mid, inner_xml)
            if check:
                try:
                    xml.check(message)
                except MalformedMessage as e:
                    raise DeviceError("protocol", f"{operation}: the request is not "
                                      f"acceptable XML: {e}") from None
            fut: asyncio.Future[Element] = asyncio.get_running_loop().create_future()
            self._pending[mid] = fut
            timeout = self.endpoint.rpc_timeout
            try:
                with _failures(self.endpoint, operation + " on", timeout):
                    async with asyncio.timeout(timeout):
                        self._writer.write(framing.encode(message, self._chunked))
                        await self._writer.drain()
                        reply = await fut
            finally:
                self._pending.pop(mid, None)
        return check_reply(reply, operation)

    @property
    def _where(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}"

    async def _read_loop(self) -> None:
        try:
            with _failures(self.endpoint, "reading from", self.endpoint.rpc_timeout):
                while True:
                    data = await self._reader.read(_READ_SIZE)
                    if not data:
                        raise DeviceError("connect", f"{self._where} closed the NETCONF "
                                          "session")
                    self._decoder.feed(data)
                    while (message := self._decoder.next()) is not None:
                        await self._dispatch(message)
        except framing.MessageTooBig as e:
            self._fail(DeviceError("protocol", f"{self._where} sent a message over the "
                                   f"limit of {e.limit} bytes"))
        except framing.FramingError as e:
            self._fail(DeviceError("protocol", f"{self._where} broke the NETCONF framing: {e}"))
        except DeviceError as e:
            self._fail(e)
        except Exception as e:  # a bug here must not leave requests waiting
            log.exception("%s: the NETCONF reader failed", self._where)
            self._fail(DeviceError("protocol", f"{self._where}: the reader failed: {e!r}"))

    async def _dispatch(self, message: bytes) -> None:
        if len(message) > OFFLOAD_SIZE:
            root = await asyncio.to_thread(parse_message, message)
        else:
            root = parse_message(message)
        if not self._hello.done():
            hello = parse_hello(root)
            self.capabilities = hello.capabilities
            self.session_id = hello.session_id
            if BASE_1_1 in hello.capabilities:
                # RFC 6242 4.1: chunked framing from the first message after the hellos
                self._chunked = self._decoder.chunked = True
            self._hello.set_result(None)
            return
        if root.ns == _NOTIFICATION:
            return
        mid = root.attr("message-id")
        fut = self._pending.get(mid) if mid is not None else None
        if fut is None:
            if mid is None and root.name == "rpc-reply" and len(self._pending) == 1:
                # an rpc-error about a request the device could not read names no id
                fut = next(iter(self._pending.values()))
            else:
                log.info("%s: a message for no waiting request (message-id %r) ignored",
                         self._where, mid)
                return
        if not fut.done():
            fut.set_result(root)

    def _fail(self, err: DeviceError) -> None:
        """The session is unusable: every waiting request, and every later one, gets ``err``."""
        if self._broken is None:
            self._broken = err
        if not self._hello.done():
            self._hello.set_exception(err)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)

    async def _shut(self) -> None:
        self._closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._fail(DeviceError("connect", f"the session to {self._where} was closed",
                               temporary=False))
        if self._hello.done() and not self._hello.cancelled():
            self._hello.exception()  # retrieved: never "exception was never retrieved"
        self._conn.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._conn.wait_closed()
