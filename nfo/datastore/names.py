"""The NMDA datastore names the API accepts, and the one check every entry point uses.

The API names datastores bare (``running``); a protocol's ``ietf-datastores`` identity
is resolved by the protocol layer (:func:`nfo.protocol.formats.datastore`).  Each
operation accepts only some of them (no writes to operational, no delete-config of
running...), so the check takes the allowed set.
"""

from __future__ import annotations

from nfo.errors import InvalidValue

__all__ = ["CONFIG_DATASTORES", "DATASTORES", "DURABLE", "datastore_name"]

DATASTORES: tuple[str, ...] = ("running", "candidate", "startup", "operational")
CONFIG_DATASTORES: tuple[str, ...] = ("running", "candidate", "startup")
DURABLE: tuple[str, ...] = ("running", "startup")
"""The datastores kept in storage (snapshots plus a commit log)."""


def datastore_name(name: str, allowed: tuple[str, ...]) -> str:
    """``name`` if it is one of ``allowed``; invalid-value otherwise."""
    if name not in allowed:
        raise InvalidValue(f"datastore {name!r} is not valid here "
                           f"(use one of {', '.join(allowed)})")
    return name
