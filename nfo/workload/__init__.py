"""Reconcile layer, upper half: the workload manager."""

from nfo.workload.manager import OWNER, Desired, WorkloadManager

__all__ = ["OWNER", "Desired", "WorkloadManager"]
