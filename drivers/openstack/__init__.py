"""The ``openstack`` driver: network functions run as Nova servers on an OpenStack cloud.

Why it exists: OpenStack is the VIM nfo was designed for (issue 6).  This module
maps the driver protocol (:mod:`nfo.registry.protocol`) onto openstacksdk, so the
workload manager can boot, watch, adopt and delete servers exactly as it does
local processes or simulated resources.

How it keeps the driver contract:

- One :class:`openstack.connection.Connection` per driver (the registry builds
  one driver per VIM account), made on first use from the VIM account's
  ``openstack`` settings: a ``cloud`` of clouds.yaml, or explicit Keystone v3
  credentials (then neither clouds.yaml nor ``OS_*`` variables are read).
- openstacksdk blocks, so every call runs in the driver's own bounded thread
  pool, and every call goes through one checker (:meth:`OpenStackDriver._call`
  with :func:`classify`) that turns openstacksdk and keystoneauth exceptions
  into :class:`TemporaryError` (unreachable, timeouts, 5xx, 409, 429, quota) or
  :class:`PermanentError` (authentication refused, not found, bad request).
  The password is scrubbed from every reason; it is never logged and not part
  of the driver's ``repr``.
- Servers are tagged with metadata ``nfo-instance``, ``nfo-owner`` (the
  installation's owner tag) and ``nfo-spec`` (a digest of what was asked for);
  their name is ``nfo-<instance>-<owner tag>``.  ``find`` and
  ``list_resources`` narrow the server list with Nova's name filter and decide
  by the metadata, so a restarted orchestrator adopts what it created and
  removes what nobody asks for any more.
- ``instantiate`` is idempotent (an existing server for the instance is
  returned) and returns as soon as Nova accepted the request.  A single poll
  loop per driver (one server list per round, backoff from 0.5 s to 5 s)
  pushes ``running``/``failed`` through the ``on_final`` callbacks; polling
  ``status`` gives the same answer.  ``status`` calls that arrive together
  share one list request (N instances being polled cost one call, not N), and
  ``statuses`` (:class:`~nfo.registry.StatusLister`) gives the manager the whole
  list: running instances are checked by one list call a health interval.
- ``terminate`` deletes (a missing server is success) and waits until Nova no
  longer has the server (404; status DELETED counts after a grace period),
  re-issuing the delete when Nova dropped it, with a timeout and Nova's fault
  message when the deletion failed.

Placeholders ``{param:NAME}`` and ``{instance}`` are substituted in the image,
flavor and network names and in the user data; any other text in braces is left
as it is (cloud-init YAML may contain braces).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from nfo.registry.protocol import (
    ComputeNeeds,
    DriverContext,
    DriverError,
    FinalCallback,
    InitResponse,
    InstantiateRequest,
    PermanentError,
    Status,
    TemporaryError,
    VimAccount,
    WorkloadState,
)
from nfo.threads import DaemonPool

__all__ = [
    "META_INSTANCE",
    "META_OWNER",
    "META_SPEC",
    "OpenStackDriver",
    "classify",
    "keystone_v3",
    "server_status",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

META_INSTANCE = "nfo-instance"
META_OWNER = "nfo-owner"
META_SPEC = "nfo-spec"

MAX_CALLS = 10
"""Concurrent openstacksdk calls per driver (requests keeps 10 connections per host)."""
API_TIMEOUT = 60.0
"""Seconds one HTTP request to the cloud may take."""
CALL_TIMEOUT = 240.0
"""Seconds one driver call (a few requests: look-ups, then the operation) may take before
its caller stops waiting (a temporary error; the thread is abandoned)."""
ABSENT_TTL = 10.0
"""Seconds a "no server" answer of ``find`` spares ``instantiate`` its own look."""
LOOKUP_TTL = 60.0
"""Seconds an image/flavor/network name -> id resolution is reused."""
POLL_MIN = 0.5
POLL_MAX = 5.0
POLL_GROWTH = 1.5
TERMINATE_POLL = 0.25
"""First poll interval of ``terminate`` (growing by a quarter each round, up to 2 s)."""
TERMINATE_TIMEOUT = 300.0
"""Seconds ``terminate`` waits for Nova to drop the server."""
REDELETE_EVERY = 15.0
"""Seconds after which a server that is not being deleted gets the delete again."""
DELETED_GRACE = 30.0
"""Seconds ``terminate`` waits for a server in status DELETED to leave Nova's list."""
ERROR_GRACE = 5.0
"""Seconds a server may stay in ERROR without a task after a delete before it is retried."""
MAX_USER_DATA = 65535
"""Nova's limit on base64-encoded user data, in bytes."""

_PLACEHOLDER_RE = re.compile(r"\{(instance|param:([a-zA-Z0-9][a-zA-Z0-9._-]{0,62}))\}")
_QUOTA_RE = re.compile(r"quota|over.?limit|maximum number of .* exceeded", re.IGNORECASE)

# Nova server status -> protocol state (ERROR, UNKNOWN and deletion are handled apart).
_BUILDING = {"BUILD", "REBUILD"}
_UP = {"ACTIVE"}
_BUSY = {"REBOOT", "HARD_REBOOT", "MIGRATING", "RESIZE", "VERIFY_RESIZE", "REVERT_RESIZE",
         "PASSWORD"}
"""Operations on a server that was running: it still exists and comes back by itself."""
_DOWN = {"SHUTOFF", "STOPPED", "PAUSED", "SUSPENDED", "SHELVED", "SHELVED_OFFLOADED", "RESCUE"}
_DELETED = {"DELETED", "SOFT_DELETED"}
_PASSING_FAULT_RE = re.compile(r"^(No valid host was found|Exceeded maximum number of "
                               r"retries)|Failed to allocate the network\(s\)")
"""Faults of a server in ERROR that another server may not meet: Nova's scheduler found
no host (no room just now, or boots racing for the same room: Nova itself calls this
possibly "a temporary occurrence"), the build failed on every host it tried, or Neutron
did not wire the port in time."""


# -- error classification -----------------------------------------------------------------


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def _http_status(exc: BaseException) -> int | None:
    for attr in ("status_code", "http_status"):
        v = getattr(exc, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    resp = getattr(exc, "response", None)
    v = getattr(resp, "status_code", None)
    return v if isinstance(v, int) and v > 0 else None


def _message(exc: BaseException) -> str:
    """The most telling text of an exception: the service's own message when there is one."""
    details = getattr(exc, "details", None)
    if isinstance(details, str) and details.strip():
        return details.strip()
    text = str(exc).strip()
    return text or type(exc).__name__


def classify(exc: BaseException, what: str, secrets: Iterable[str] = ()) -> DriverError:
    """The protocol error for an exception raised by openstacksdk or keystoneauth.

    ``what`` says what the driver was doing ("create server for 'fw1'"); it starts
    the reason.  Every string in ``secrets`` is replaced by ``***``.
    """
    import requests
    from keystoneauth1 import exceptions as ka
    from openstack import exceptions as sdk

    inner = exc.__cause__ or exc.__context__
    if (type(exc) is sdk.SDKException and inner is not None
            and not isinstance(inner, sdk.SDKException)):
        # openstacksdk re-raises some keystoneauth errors as a bare SDKException
        return classify(inner, what, secrets)
    name = type(exc).__name__
    msg = _message(exc)
    status = _http_status(exc)
    err: DriverError
    if isinstance(exc, DriverError):
        err = type(exc)(exc.reason)
    elif isinstance(exc, ka.Unauthorized) or status == 401:
        err = PermanentError(f"{what}: authentication refused by Keystone (HTTP 401): {msg}")
    elif status == 413 or (status in (400, 403, 409) and _QUOTA_RE.search(msg)):
        err = TemporaryError(f"{what}: quota exceeded (HTTP {status}): {msg}")
    elif isinstance(exc, ka.Forbidden | sdk.ForbiddenException) or status == 403:
        err = PermanentError(f"{what}: not allowed (HTTP 403): {msg}")
    elif status == 429:
        err = TemporaryError(f"{what}: rate limited by the cloud (HTTP 429): {msg}")
    elif status is not None and status >= 500:
        err = TemporaryError(f"{what}: the cloud failed (HTTP {status}): {msg}")
    elif status in (408, 409):
        err = TemporaryError(f"{what}: {'conflict' if status == 409 else 'timeout'} "
                             f"(HTTP {status}): {msg}")
    elif status == 404:
        err = PermanentError(f"{what}: not found (HTTP 404): {msg}")
    elif status is not None and 400 <= status < 500:
        err = PermanentError(f"{what}: refused (HTTP {status}): {msg}")
    elif isinstance(exc, ka.SSLError | requests.exceptions.SSLError):
        err = PermanentError(f"{what}: TLS failure talking to the cloud: {msg}")
    elif isinstance(exc, ka.ConnectTimeout | ka.ConnectFailure | ka.UnknownConnectionError
                    | ka.DiscoveryFailure | requests.ConnectionError | requests.Timeout
                    | TimeoutError | ConnectionError) or (
            isinstance(exc, OSError) and not isinstance(exc, requests.RequestException)):
        err = TemporaryError(f"{what}: cannot reach the cloud ({name}): {msg}")
    elif isinstance(exc, ka.AuthPluginException | ka.EndpointNotFound
                    | ka.AuthorizationFailure | sdk.ConfigException | sdk.EndpointNotFound):
        err = PermanentError(f"{what}: cloud configuration problem ({name}): {msg}")
    elif isinstance(exc, sdk.DuplicateResource):
        err = PermanentError(f"{what}: ambiguous name: {msg}")
    elif isinstance(exc, sdk.ResourceTimeout):
        err = TemporaryError(f"{what}: timed out: {msg}")
    else:
        err = TemporaryError(f"{what}: {name}: {msg}")
    return type(err)(_scrub(err.reason, secrets))


# -- status mapping -------------------------------------------------------------------------


def _fault(server: Any) -> str:
    fault = getattr(server, "fault", None)
    if isinstance(fault, Mapping):
        msg = str(fault.get("message") or "").strip()
        details = str(fault.get("details") or "").strip()
        code = fault.get("code")
        if msg:
            text = f"{msg} (code {code})" if code else msg
            # Nova shows admins the details too: a traceback (left out) or a sentence
            first = details.splitlines()[0].strip() if details else ""
            if first and first not in msg and not first.startswith("Traceback"):
                text = f"{text}: {first}"
            return text
    return ""


def _being_deleted(server: Any) -> bool:
    st = str(getattr(server, "status", "") or "").upper()
    return st in _DELETED or getattr(server, "task_state", None) == "deleting"


def server_status(server: Any) -> Status:
    """The protocol status of a Nova server (``None`` is gone)."""
    if server is None:
        return Status(WorkloadState.GONE, "Nova has no such server")
    st = str(getattr(server, "status", "") or "").upper()
    task = getattr(server, "task_state", None)
    if _being_deleted(server):
        return Status(WorkloadState.GONE, f"Nova is deleting the server ({st.lower()})")
    if st == "ERROR":
        fault = _fault(server)
        return Status(WorkloadState.FAILED,
                      f"Nova: server in ERROR: {fault}" if fault else "Nova: server in ERROR",
                      temporary=_PASSING_FAULT_RE.search(fault) is not None)
    if st in _BUILDING:
        return Status(WorkloadState.INITIALIZING,
                      f"Nova: {st.lower()}" + (f" ({task})" if task else ""))
    if st in _UP or st in _BUSY:
        return Status(WorkloadState.RUNNING, "" if st in _UP else f"Nova: {st.lower()}")
    if st in _DOWN:
        return Status(WorkloadState.FAILED, f"Nova: server is {st} (stopped outside nfo)")
    if st == "UNKNOWN":
        raise TemporaryError("Nova cannot tell the server's state (UNKNOWN: its compute "
                             "host is unreachable)")
    return Status(WorkloadState.INITIALIZING, f"Nova: {st or 'no status yet'}")


# -- settings -----------------------------------------------------------------------------


def keystone_v3(url: str) -> str:
    """Keystone's v3 API under ``url`` (``http://h:5000`` and ``http://h:5000/v3/`` give
    ``http://h:5000/v3``): the v3password plugin posts to ``<url>/auth/tokens``."""
    base = url.rstrip("/")
    return base if base.endswith("/v3") else base + "/v3"


@dataclass(frozen=True)
class _Settings:
    """The VIM account's ``openstack`` container (RFC 7951 JSON names)."""

    cloud: str | None
    auth_url: str | None
    username: str | None
    password: str | None
    project_name: str | None
    project_domain: str
    user_domain: str
    region: str | None

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> _Settings:
        def opt(key: str) -> str | None:
            v = settings.get(key)
            return None if v in (None, "") else str(v)

        return cls(opt("cloud"), opt("auth-url"), opt("username"), opt("password"),
                   opt("project-name"), opt("project-domain") or "Default",
                   opt("user-domain") or "Default", opt("region"))

    def __repr__(self) -> str:
        where = f"cloud={self.cloud!r}" if self.cloud else f"auth_url={self.auth_url!r}"
        return f"_Settings({where}, project={self.project_name!r}, region={self.region!r})"

    def connect(self) -> Any:
        """A new openstacksdk Connection (blocking: reads clouds.yaml, no network yet)."""
        import openstack

        common: dict[str, Any] = {"app_name": "nfo", "api_timeout": API_TIMEOUT}
        if self.region:
            common["region_name"] = self.region
        if self.cloud:
            # the environment may say where clouds.yaml is (OS_CLIENT_CONFIG_FILE); the
            # named entry is used as it stands
            return openstack.connect(cloud=self.cloud, **common)
        missing = [k for k, v in (("auth-url", self.auth_url), ("username", self.username),
                                  ("password", self.password),
                                  ("project-name", self.project_name)) if not v]
        if missing:
            raise PermanentError("the VIM account's openstack settings lack "
                                 f"{', '.join(missing)} (or a clouds.yaml 'cloud')")
        # v3password, not the generic password plugin: keystoneauth's version discovery
        # deadlocks on its own lock when the auth URL answers 401 (the generic plugin
        # re-enters get_access to authenticate the discovery request)
        return openstack.connect(
            load_yaml_config=False, load_envvars=False, auth_type="v3password",
            identity_api_version="3",
            auth={"auth_url": keystone_v3(self.auth_url or ""), "username": self.username,
                  "password": self.password, "project_name": self.project_name,
                  "project_domain_name": self.project_domain,
                  "user_domain_name": self.user_domain},
            **common)


@dataclass(frozen=True)
class _Spec:
    """What one instance asks Nova for, placeholders substituted."""

    image: str
    flavor: str | None
    networks: tuple[tuple[str, str | None], ...]
    user_data: str | None

    def digest(self) -> str:
        text = json.dumps([self.image, self.flavor, self.networks, self.user_data])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _expand(text: str, req: InstantiateRequest, what: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "instance":
            return req.instance
        pname = m.group(2)
        if pname not in req.parameters:
            raise PermanentError(f"{what} uses {{param:{pname}}}, but instance "
                                 f"{req.instance!r} has no parameter {pname!r}")
        return req.parameters[pname]

    return _PLACEHOLDER_RE.sub(sub, text)


def _spec(req: InstantiateRequest) -> _Spec:
    dep = req.deployment
    image = dep.get("image")
    if not image:
        raise PermanentError(f"descriptor {req.descriptor!r} has no openstack image")
    flavor = dep.get("flavor")
    nets = []
    for n in dep.get("network", []) or []:
        name = _expand(str(n["name"]), req, "network name")
        ip = n.get("fixed-ip")
        nets.append((name, None if ip in (None, "") else str(ip)))
    ud = dep.get("user-data")
    return _Spec(
        _expand(str(image), req, "image"),
        None if not flavor else _expand(str(flavor), req, "flavor"),
        tuple(nets),
        None if not ud else _expand(str(ud), req, "user-data"),
    )


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a shared task's exception as seen (its callers may all have gone)."""
    if not task.cancelled():
        task.exception()


def _name_pattern(text: str) -> str:
    """``text`` as a literal in Nova's name filter (a regular expression); names here only
    hold letters, digits and ``._-``, of which ``.`` is the only special character."""
    return re.sub(r"[^a-zA-Z0-9_-]", lambda m: f"[{m.group(0)}]", text)


# -- the driver -----------------------------------------------------------------------------


class OpenStackDriver:
    name: ClassVar[str] = "openstack"
    vim_type: ClassVar[str] = "nfo-vim:openstack"
    call_timeout: float = CALL_TIMEOUT

    def __init__(self, vim: VimAccount, context: DriverContext) -> None:
        self.vim_name = vim.name
        self.owner = context.owner_tag
        self._settings = _Settings.of(vim.settings)
        self._secrets = tuple(s for s in (self._settings.password,) if s)
        self._conn: Any = None
        self._conn_lock = threading.Lock()
        # daemon threads: a call stuck inside keystoneauth or openstacksdk must not keep
        # the process alive once nfo stops
        self._pool = DaemonPool(MAX_CALLS, f"nfo-openstack-{vim.name}")
        self._closed = False
        self._stuck = 0
        """Calls abandoned at :attr:`call_timeout` (their threads may still be blocked)."""
        self._callbacks: list[FinalCallback] = []
        self._watched: dict[str, float] = {}
        self._fresh = False
        self._poller: asyncio.Task[None] | None = None
        self._lookups: dict[tuple[str, str], tuple[float, Any]] = {}
        self._listing: asyncio.Task[list[Any]] | None = None
        self._absent: dict[str, float] = {}
        self._warned: set[tuple[str, str]] = set()
        """Instances ``find`` just saw without a server (monotonic time of the answer)."""

    def __repr__(self) -> str:
        return f"OpenStackDriver(vim={self.vim_name!r}, {self._settings!r}, owner={self.owner!r})"

    # -- the one way to call openstacksdk --------------------------------------------------

    def _connection(self) -> Any:
        """The driver's connection (made and authenticated once, in a worker thread)."""
        conn = self._conn
        if conn is not None:
            return conn
        with self._conn_lock:
            if self._conn is None:
                conn = self._settings.connect()
                try:
                    # one token fetch before calls run in parallel (keystoneauth's own
                    # exceptions: Connection.authorize() would flatten them)
                    conn.session.get_token()
                except BaseException:
                    conn.close()
                    raise
                self._conn = conn
            return self._conn

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run ``fn(connection, *args, **kw)`` in the pool; errors come out classified."""
        if self._closed:
            raise TemporaryError(f"{what}: the driver of VIM {self.vim_name!r} is closed")

        def run() -> T:
            return fn(self._connection(), *args, **kw)

        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._pool, run),
                                          self.call_timeout)
        except TimeoutError:
            self._stuck += 1
            log.warning("openstack VIM %s: %s: no answer within %g s", self.vim_name, what,
                        self.call_timeout)
            raise TemporaryError(f"{what}: no answer from the VIM within "
                                 f"{self.call_timeout:g} s") from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and task is not None and not task.cancelling():
                # close() dropped the queued call, nobody cancelled the caller
                raise TemporaryError(f"{what}: the driver of VIM {self.vim_name!r} is "
                                     "closed") from None
            raise
        except RuntimeError as e:
            if self._closed:  # the pool was shut down while we waited
                raise TemporaryError(f"{what}: the driver of VIM {self.vim_name!r} is "
                                     "closed") from None
            raise classify(e, what, self._secrets) from None
        except Exception as e:
            err = classify(e, what, self._secrets)
            log.debug("openstack VIM %s: %s", self.vim_name, err.reason)
            raise err from None

    # -- blocking helpers (run in the pool) ------------------------------------------------

    def _server_name(self, instance: str) -> str:
        return f"nfo-{instance}-{self.owner}"

    def _owned(self, conn: Any, instance: str | None, deleting: bool = False) -> list[Any]:
        """Servers of this installation (for ``instance`` only, when given), decided by
        their metadata (Nova's name filter only narrows the list); those being deleted
        only when ``deleting``."""
        owner = _name_pattern(self.owner)
        pattern = (f"^nfo-{_name_pattern(instance)}-{owner}$" if instance is not None
                   else f"^nfo-.*-{owner}$")
        out = []
        for s in conn.compute.servers(details=True, name=pattern):
            meta = s.metadata or {}
            if meta.get(META_OWNER) != self.owner or not meta.get(META_INSTANCE):
                continue
            if instance is not None and meta.get(META_INSTANCE) != instance:
                continue
            if _being_deleted(s) and not deleting:
                continue
            out.append(s)
        return out

    @staticmethod
    def _best(servers: list[Any]) -> Any:
        """The server to keep among several for one instance: not failed, oldest first."""
        def key(s: Any) -> tuple[int, str, str]:
            bad = str(s.status or "").upper() == "ERROR"
            return (int(bad), str(s.created_at or ""), str(s.id))
        return sorted(servers, key=key)[0]

    def _resolve(self, conn: Any, kind: str, name: str, find: Callable[..., Any]) -> Any:
        """``find(name, ignore_missing=False)``, remembered for LOOKUP_TTL seconds."""
        from openstack import exceptions as sdk

        key = (kind, name)
        hit = self._lookups.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < LOOKUP_TTL:
            return hit[1]
        try:
            found = find(name, ignore_missing=False)
        except sdk.NotFoundException:
            found = None
        if found is None:
            where = {"image": "Glance", "flavor": "Nova", "network": "Neutron"}[kind]
            raise PermanentError(f"{kind} {name!r} not found in {where} "
                                 f"(VIM {self.vim_name!r})")
        self._lookups[key] = (now, found)
        return found

    def _pick_flavor(self, conn: Any, needs: ComputeNeeds) -> Any:
        fits = [f for f in conn.compute.flavors(details=True)
                if (f.vcpus or 0) >= needs.vcpus and (f.ram or 0) >= needs.memory_mb
                and (f.disk or 0) >= needs.disk_gb]
        if not fits:
            raise PermanentError(f"no flavor on VIM {self.vim_name!r} has {needs.vcpus} vCPU, "
                                 f"{needs.memory_mb} MiB RAM and {needs.disk_gb} GB disk")
        return min(fits, key=lambda f: (f.vcpus or 0, f.ram or 0, f.disk or 0, str(f.name)))

    def _create(self, conn: Any, req: InstantiateRequest, spec: _Spec, checked: bool) -> Any:
        if not checked:
            existing = self._owned(conn, req.instance)
            if existing:
                return self._best(existing)
        image = self._resolve(conn, "image", spec.image, conn.image.find_image)
        if spec.flavor is not None:
            flavor = self._resolve(conn, "flavor", spec.flavor, conn.compute.find_flavor)
            c = req.compute
            small = ((flavor.vcpus or 0) < c.vcpus or (flavor.ram or 0) < c.memory_mb
                     or (flavor.disk or 0) < c.disk_gb)
            if small and (req.descriptor, spec.flavor) not in self._warned:
                self._warned.add((req.descriptor, spec.flavor))
                log.warning("openstack VIM %s: flavor %s (%s vCPU, %s MiB, %s GB) is smaller "
                            "than the compute needs of %s (%s vCPU, %s MiB, %s GB)",
                            self.vim_name, flavor.name, flavor.vcpus, flavor.ram, flavor.disk,
                            req.descriptor, c.vcpus, c.memory_mb, c.disk_gb)
        else:
            flavor = self._pick_flavor(conn, req.compute)
        networks: Any = []
        for net_name, ip in spec.networks:
            net = self._resolve(conn, "network", net_name, conn.network.find_network)
            nic: dict[str, str] = {"uuid": net.id}
            if ip:
                nic["fixed_ip"] = ip
            networks.append(nic)
        if not networks:
            networks = "auto"
        attrs: dict[str, Any] = {
            "name": self._server_name(req.instance),
            "image_id": image.id,
            "flavor_id": flavor.id,
            "networks": networks,
            "metadata": {META_INSTANCE: req.instance, META_OWNER: self.owner,
                         META_SPEC: spec.digest()},
        }
        if spec.user_data is not None:
            encoded = base64.b64encode(spec.user_data.encode()).decode("ascii")
            if len(encoded) > MAX_USER_DATA:
                raise PermanentError(f"user-data of {req.descriptor!r} is {len(encoded)} bytes "
                                     f"base64-encoded; Nova takes at most {MAX_USER_DATA}")
            attrs["user_data"] = encoded
        server = conn.compute.create_server(**attrs)
        log.info("openstack VIM %s: created server %s for %s", self.vim_name, server.id,
                 req.instance)
        return server

    @staticmethod
    def _get(conn: Any, resource_id: str) -> Any:
        from openstack import exceptions as sdk

        try:
            return conn.compute.get_server(resource_id)
        except sdk.NotFoundException:
            return None

    @staticmethod
    def _delete(conn: Any, resource_id: str) -> None:
        conn.compute.delete_server(resource_id, ignore_missing=True)

    # -- the protocol ----------------------------------------------------------------------

    async def instantiate(self, req: InstantiateRequest) -> InitResponse:
        spec = _spec(req)
        # The manager asks find() right before instantiate(); only this installation
        # creates servers for the instance, one step at a time, so that fresh answer
        # stands.  Otherwise the list is asked here.
        seen = self._absent.pop(req.instance, None)
        checked = seen is not None and time.monotonic() - seen < ABSENT_TTL
        server = await self._call(f"create server for {req.instance!r}", self._create, req,
                                  spec, checked)
        rid = str(server.id)
        self._watch(rid, req.timeout)
        return InitResponse(rid)

    async def status(self, resource_id: str) -> Status:
        """From the shared list of this installation's servers; a server the list lacks
        (just created, being deleted, gone, not ours) is asked for by id."""
        server = (await self._owned_shared()).get(resource_id)
        if server is None:
            server = await self._call(f"get server {resource_id}", self._get, resource_id)
        return server_status(server)

    async def statuses(self) -> dict[str, Status]:
        """Every server of this installation's, from the list :meth:`status` shares; one
        whose state Nova cannot tell just now (UNKNOWN) is left out."""
        out: dict[str, Status] = {}
        for rid, server in (await self._owned_shared()).items():
            with contextlib.suppress(TemporaryError):
                out[rid] = server_status(server)
        return out

    async def _owned_shared(self) -> dict[str, Any]:
        """This installation's servers by id (those being deleted too), from one list
        call shared by every caller that comes while it runs: N instances polled at once
        cost one request."""
        task = self._listing
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(
                self._call("list servers", self._owned, None, True),
                name=f"nfo-openstack-list-{self.vim_name}")
            task.add_done_callback(_retrieve)
            self._listing = task
        servers = await asyncio.shield(task)
        return {str(s.id): s for s in servers}

    async def terminate(self, resource_id: str) -> None:
        self._watched.pop(resource_id, None)
        what = f"delete server {resource_id}"
        await self._call(what, self._delete, resource_id)
        loop = asyncio.get_running_loop()
        started = last_delete = loop.time()
        delay = TERMINATE_POLL
        redeleted_error = False
        deleted_at = 0.0
        while True:
            # the shared list first (N deletions polled cost one request); Nova's answer
            # by id decides once the server is no longer listed
            server = (await self._owned_shared()).get(resource_id)
            if server is None:
                server = await self._call(what, self._get, resource_id)
            if server is None:
                log.info("openstack VIM %s: deleted server %s", self.vim_name, resource_id)
                return
            st = str(server.status or "").upper()
            now = loop.time()
            if st in _DELETED:
                # Nova has destroyed it; its record leaves the list a moment later
                deleted_at = deleted_at or now
                if now - deleted_at > DELETED_GRACE:
                    return
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 1.25)
                continue
            idle = server.task_state != "deleting"
            if now - started > TERMINATE_TIMEOUT:
                raise TemporaryError(f"{what}: still there after {TERMINATE_TIMEOUT:.0f}s "
                                     f"(status {st}, task {server.task_state})")
            if st == "ERROR" and idle and now - last_delete > ERROR_GRACE:
                # the delete failed on the compute host: once more, then give up
                if redeleted_error:
                    fault = _fault(server)
                    raise TemporaryError(f"{what}: Nova could not delete it: "
                                         f"{fault or 'server in ERROR'}")
                redeleted_error = True
                await self._call(what, self._delete, resource_id)
                last_delete = now
            elif idle and now - last_delete > REDELETE_EVERY:
                await self._call(what, self._delete, resource_id)
                last_delete = now
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 1.25)

    async def update(self, resource_id: str, req: InstantiateRequest) -> bool:
        """In place only when nothing Nova was given changes (same ``nfo-spec`` digest)."""
        spec = _spec(req)
        server = await self._call(f"get server {resource_id}", self._get, resource_id)
        if server is None:
            return False
        return bool((server.metadata or {}).get(META_SPEC) == spec.digest())

    async def find(self, instance: str) -> str | None:
        servers = await self._call(f"list servers of {instance!r}", self._owned, instance)
        if not servers:
            self._absent[instance] = time.monotonic()
            return None
        self._absent.pop(instance, None)
        return str(self._best(servers).id)

    async def list_resources(self) -> dict[str, str]:
        servers = await self._call("list servers", self._owned, None)
        by_instance: dict[str, list[Any]] = {}
        for s in servers:
            by_instance.setdefault(str(s.metadata[META_INSTANCE]), []).append(s)
        out: dict[str, str] = {}
        for inst, group in by_instance.items():
            keep = self._best(group)
            out[inst] = str(keep.id)
            for extra in group:
                if extra is not keep:
                    log.warning("openstack VIM %s: deleting duplicate server %s of %s",
                                self.vim_name, extra.id, inst)
                    with contextlib.suppress(DriverError):
                        await self._call(f"delete server {extra.id}", self._delete,
                                         str(extra.id))
        return out

    def on_final(self, callback: FinalCallback) -> None:
        self._callbacks.append(callback)

    async def close(self) -> None:
        self._closed = True
        self._watched.clear()
        tasks = [t for t in (self._poller, self._listing) if t is not None]
        self._poller = self._listing = None
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(conn.close)

    # -- the poll loop -----------------------------------------------------------------------

    def _watch(self, resource_id: str, timeout: float) -> None:
        if self._closed or not self._callbacks:
            return
        loop = asyncio.get_running_loop()
        self._watched[resource_id] = loop.time() + timeout
        self._fresh = True
        if self._poller is None or self._poller.done():
            self._poller = loop.create_task(self._poll(),
                                            name=f"nfo-openstack-poll-{self.vim_name}")

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        delay = POLL_MIN
        while self._watched and not self._closed:
            self._fresh = False
            await asyncio.sleep(delay)
            try:
                by_id = await self._owned_shared()
            except DriverError as e:
                log.debug("openstack VIM %s: poll failed: %s", self.vim_name, e.reason)
                delay = min(POLL_MAX, delay * 2)
                continue
            now = loop.time()
            for rid, deadline in list(self._watched.items()):
                if rid not in self._watched:
                    continue
                s = by_id.get(rid)
                try:
                    st = server_status(s)
                except DriverError:
                    st = Status(WorkloadState.INITIALIZING)
                if st.state in (WorkloadState.RUNNING, WorkloadState.FAILED):
                    del self._watched[rid]
                    self._fire(rid, st)
                elif st.state is WorkloadState.GONE or now > deadline:
                    del self._watched[rid]
            delay = POLL_MIN if self._fresh else min(POLL_MAX, delay * POLL_GROWTH)

    def _fire(self, resource_id: str, status: Status) -> None:
        for cb in list(self._callbacks):
            try:
                cb(resource_id, status)
            except Exception:
                log.exception("openstack driver: final-status callback failed for %s",
                              resource_id)
