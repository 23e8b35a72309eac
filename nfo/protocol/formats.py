"""Protocol values written one way: NMDA datastore names, and RFC 3339 times (from
:mod:`nfo.schema.values`, which the layers below use too).

Both front ends, the event streams and the NETCONF monitoring data format
and parse these through here, so that a time or a datastore name a client
gives is read the same over RESTCONF and NETCONF.
"""

from __future__ import annotations

from nfo.errors import InvalidValue
from nfo.schema.values import format_time, parse_time

__all__ = [
    "DATASTORES_MODULE",
    "READABLE",
    "WRITABLE",
    "datastore",
    "format_time",
    "parse_time",
    "read_source",
]

DATASTORES_MODULE = "ietf-datastores"
READABLE = ("running", "candidate", "startup", "intended", "operational")
"""RFC 8342 datastores a client may read (``intended`` is running: nfo has no
inactive configuration and no templates)."""
WRITABLE = ("running", "candidate", "startup")


def datastore(identity: str, allowed: tuple[str, ...] = READABLE) -> str:
    """The datastore an ``ietf-datastores`` identity (``ietf-datastores:running``)
    names, if it is one of ``allowed``; InvalidValue otherwise."""
    module, colon, name = identity.rpartition(":")
    if not colon or module != DATASTORES_MODULE or name not in READABLE:
        raise InvalidValue(f"unknown datastore {identity!r} (RFC 8342: "
                           + ", ".join(f"{DATASTORES_MODULE}:{d}" for d in READABLE) + ")")
    if name not in allowed:
        raise InvalidValue(f"the {name} datastore cannot be used here (use "
                           + ", ".join(allowed) + ")")
    return name


def read_source(name: str) -> str:
    """The datastore a read of ``name`` is served from."""
    return "running" if name == "intended" else name
