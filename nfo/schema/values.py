"""YANG values nfo writes and reads outside libyang: ``yang:date-and-time``.

Every timestamp nfo reports (instance state changes, notification event
times, NETCONF monitoring, stream listings) and every time a client gives
(replay start and stop) goes through these two functions.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from nfo.errors import InvalidValue

__all__ = ["format_time", "parse_time"]

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


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
