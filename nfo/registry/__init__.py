"""Reconcile layer, lower half: the driver protocol, the registry and placement."""

from nfo.registry.protocol import (
    Capacity,
    ComputeNeeds,
    Driver,
    DriverContext,
    DriverError,
    DriverFactory,
    FinalCallback,
    InitResponse,
    InstantiateRequest,
    PermanentError,
    Status,
    StatusLister,
    TemporaryError,
    VimAccount,
    WorkloadState,
)
from nfo.registry.registry import (
    ENTRY_POINT_GROUP,
    DriverRegistry,
    Placement,
    PlacementError,
    Usage,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Capacity",
    "ComputeNeeds",
    "Driver",
    "DriverContext",
    "DriverError",
    "DriverFactory",
    "DriverRegistry",
    "FinalCallback",
    "InitResponse",
    "InstantiateRequest",
    "PermanentError",
    "Placement",
    "PlacementError",
    "Status",
    "StatusLister",
    "TemporaryError",
    "Usage",
    "VimAccount",
    "WorkloadState",
]
