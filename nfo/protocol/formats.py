"""Protocol values written one way: RFC 3339 times and NMDA datastore names.

Both front ends, the event streams and the NETCONF monitoring data format
and parse these through here, so that a time or a datastore name a client
gives is read the same over RESTCONF and NETCONF.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from nfo.errors import InvalidValue

__all__ = [
    "DATASTORES_MODULE",
    "READABLE",
    "WRITABLE",
    "datastore",
    "format_time",
    "parse_time",
    "read_source",
]

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

DATASTORES_MODULE = "ietf-datastores"
READABLE = ("running", "candidate", "startup", "intended", "operational")
"""RFC 8342 datastores a client may read (``intended`` is running: nfo has no
inactive configuration and no templates)."""
WRITABLE = ("running", "candidate", "startup")


def format_time(t: float) -> str:
    """Unix seconds as an RFC 3339 ``date-and-time`` in UTC with microseconds."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


def parse_time(text: str, what: str = "the time") -> float:
    """An RFC 3339 ``date-and-time`` (a time zone offset is required) as Unix seconds."""
    if not _RFC3339.match(text):
        raise InvalidValue(f"{what} must be an RFC 3339 date-and-time with a time zone, "
                           f"not {text!r}")
    try:
        return datetime.fromisoformat(text.upper()).timestamp()
    except ValueError:
        raise InvalidValue(f"{what}: {text!r} is not a valid date-and-time") from None


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
