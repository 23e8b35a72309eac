"""Reconcile layer, upper half: the workload manager."""

from nfo.workload.manager import (
    ACTION_PATHS,
    ACTION_TIMEOUT,
    OWNER,
    Desired,
    WorkloadManager,
)

__all__ = ["ACTION_PATHS", "ACTION_TIMEOUT", "OWNER", "Desired", "WorkloadManager"]
