"""The driver protocol: what a VIM driver implements, typed for third-party authors.

A driver is built once per configured VIM account by a :class:`DriverFactory`
registered in the ``nfo.drivers`` entry-point group (built-in drivers register
the same way).  The workload manager only ever calls these methods; it never
waits on a VIM inside a datastore callback.

Contract, in short:

- ``instantiate`` starts creating the workload and returns as soon as the VIM
  has accepted the request, with the VIM's resource id.  It must *tag* what it
  creates with the instance name and the installation's ``owner_tag`` so that
  ``find`` and ``list_resources`` can recognise it after an orchestrator
  restart (no duplicates, no orphans).
- ``status`` reports where the workload stands (a failure another attempt may get
  past is ``temporary``); ``terminate`` is idempotent (a resource that is already
  gone is success) and returns once it is gone.
- A driver may also push a final status (``running``/``failed``) through the
  callback given to ``on_final``; polling ``status`` must give the same answer.
- A driver that can tell the status of all its resources in one call (one paged
  listing) may implement :class:`StatusLister` too: the manager then checks the health
  of that VIM's running instances by one ``statuses`` call a round, not one ``status``
  call per instance, and asks ``status`` only of those the listing shows otherwise.
- Errors: raise :class:`TemporaryError` for conditions worth retrying (VIM
  unreachable, quota momentarily exhausted), :class:`PermanentError` for those
  that are not (bad image, authentication refused).  Anything else counts as
  temporary.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

__all__ = [
    "Capacity",
    "ComputeNeeds",
    "Driver",
    "DriverContext",
    "DriverError",
    "DriverFactory",
    "FinalCallback",
    "InitResponse",
    "InstantiateRequest",
    "PermanentError",
    "Status",
    "StatusLister",
    "TemporaryError",
    "VimAccount",
    "WorkloadState",
]


@dataclass(frozen=True)
class Capacity:
    """Limits of a VIM account; None means unlimited."""

    max_instances: int | None = None
    vcpus: int | None = None
    memory_mb: int | None = None
    disk_gb: int | None = None


@dataclass(frozen=True)
class ComputeNeeds:
    vcpus: int = 1
    memory_mb: int = 512
    disk_gb: int = 0


@dataclass(frozen=True)
class VimAccount:
    """A configured VIM (``/nfo-vim:vims/vim``), as the driver sees it."""

    name: str
    type: str
    """Identity, module-qualified: ``nfo-vim:local``."""
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """The VIM's per-type container (``local``, ``sim``, ``openstack``) as RFC 7951 JSON;
    left out of ``repr`` (it may hold credentials)."""
    capacity: Capacity = Capacity()
    enabled: bool = True


@dataclass(frozen=True)
class InstantiateRequest:
    instance: str
    """The nf-instance name (the key the driver tags resources with)."""
    descriptor: str
    deployment: Mapping[str, Any]
    """The descriptor's deployment data for this VIM type (RFC 7951 JSON of e.g. ``local``)."""
    parameters: Mapping[str, str]
    compute: ComputeNeeds
    timeout: float
    """Seconds the workload has to reach running."""


@dataclass(frozen=True)
class InitResponse:
    resource_id: str


class WorkloadState(enum.Enum):
    INITIALIZING = "initializing"
    RUNNING = "running"
    FAILED = "failed"
    GONE = "gone"
    """The VIM has no such resource (deleted behind our back, or never created)."""


@dataclass(frozen=True)
class Status:
    state: WorkloadState
    reason: str = ""
    temporary: bool = False
    """For ``FAILED``: the VIM failed this attempt for a reason that may pass (no room on
    any host just now).  The manager removes the failed workload and tries again, with
    backoff, until the instantiation timeout; then it is ``failed`` with this reason."""


class DriverError(Exception):
    temporary: ClassVar[bool] = True

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemporaryError(DriverError):
    temporary = True


class PermanentError(DriverError):
    temporary = False


FinalCallback = Callable[[str, Status], None]
"""(resource id, final status): called by a driver that learns the outcome by itself."""


@dataclass(frozen=True)
class DriverContext:
    state_dir: Path
    """A directory of the driver's own for this VIM account (logs, pid files, ...)."""
    owner_tag: str
    """Identifies this nfo installation; tag every VIM resource with it."""
    shared: dict[str, Any] = field(default_factory=dict)
    """State shared by every driver the registry builds with the same factory, for what
    must outlive one driver instance (a rebuilt driver's child processes to reap)."""


@runtime_checkable
class Driver(Protocol):
    async def instantiate(self, req: InstantiateRequest) -> InitResponse: ...

    async def status(self, resource_id: str) -> Status: ...

    async def terminate(self, resource_id: str) -> None: ...

    async def update(self, resource_id: str, req: InstantiateRequest) -> bool:
        """Apply a changed request in place; False when the driver cannot (the manager
        then replaces the workload: terminate, then instantiate)."""
        ...

    async def find(self, instance: str) -> str | None:
        """The resource id this installation created for ``instance``, if the VIM has one."""
        ...

    async def list_resources(self) -> dict[str, str]:
        """Every resource this installation owns on the VIM: instance name -> resource id."""
        ...

    def on_final(self, callback: FinalCallback) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class StatusLister(Protocol):
    """What a driver implements, beside :class:`Driver`, when one call can tell the
    status of every resource it holds for this installation."""

    async def statuses(self) -> Mapping[str, Status]:
        """The status of every resource this installation owns on the VIM, by resource
        id.  A resource may be left out when its status is not known just now; the
        manager asks ``status`` of a running instance whose resource is left out or not
        running, so a listing never fails or removes an instance by itself."""
        ...


class DriverFactory(Protocol):
    """What the ``nfo.drivers`` entry point names: usually the driver class itself."""

    name: ClassVar[str]
    vim_type: ClassVar[str]

    def __call__(self, vim: VimAccount, context: DriverContext) -> Driver: ...
