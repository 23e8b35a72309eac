"""The NMDA datastore names the API accepts, and the one check every entry point uses.

A client may name a datastore bare (``running``) or by its ``ietf-datastores`` identity
(``ietf-datastores:running``); each operation accepts only some of them (no writes to
operational, no delete-config of running...), so the check takes the allowed set.
"""

from __future__ import annotations

from nfo.errors import InvalidValue

__all__ = ["CONFIG_DATASTORES", "DATASTORES", "DURABLE", "datastore_name"]

DATASTORES: tuple[str, ...] = ("running", "candidate", "startup", "operational")
CONFIG_DATASTORES: tuple[str, ...] = ("running", "candidate", "startup")
DURABLE: tuple[str, ...] = ("running", "startup")
"""The datastores kept in storage (snapshots plus a commit log)."""


def datastore_name(name: str, allowed: tuple[str, ...]) -> str:
    """``name`` without its ``ietf-datastores:`` prefix; invalid-value unless allowed."""
    short = name.removeprefix("ietf-datastores:")
    if short not in allowed:
        raise InvalidValue(f"datastore {name!r} is not valid here "
                           f"(use one of {', '.join(allowed)})")
    return short
