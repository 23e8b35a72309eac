"""The one exception of the southbound NETCONF client, and how a failure is classified.

Why a class of its own, not an :class:`~nfo.errors.NfoError`: a device's refusal is not an
answer nfo gives its own clients.  The workload manager reads ``kind`` and ``temporary`` to
decide between retrying with backoff and marking the NF failed, and shows ``reason`` (one
line, never a credential) in operational state; the rpc-errors of the reply stay available.
"""

from __future__ import annotations

__all__ = ["KINDS", "TEMPORARY_TAGS", "DeviceError"]

KINDS = frozenset({"connect", "auth", "host-key", "timeout", "protocol", "rpc"})
TEMPORARY_TAGS = frozenset({"in-use", "lock-denied", "resource-denied"})
"""rpc-error tags that may clear by themselves: another session holds the datastore, or
the device is short of a resource (RFC 6241 Appendix A)."""
_TEMPORARY_KINDS = frozenset({"connect", "timeout"})
_REASON_MAX = 400


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _REASON_MAX else line[:_REASON_MAX - 3] + "..."


class DeviceError(Exception):
    """A NETCONF device could not be reached, refused us, or answered with rpc-errors.

    ``kind``: "connect", "auth", "host-key", "timeout", "protocol" or "rpc".  ``temporary``:
    worth retrying (connect and timeout failures; rpc-errors tagged in-use, lock-denied or
    resource-denied).  ``tag``, ``path`` and ``app_tag`` are those of the first rpc-error;
    ``errors`` holds every rpc-error as a dict of its fields (type, tag, severity, path,
    message, app-tag; only those present).
    """

    def __init__(self, kind: str, reason: str, *,
                 errors: list[dict[str, str]] | None = None,
                 temporary: bool | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown DeviceError kind {kind!r}")
        self.kind = kind
        self.reason = _one_line(reason)
        self.errors = list(errors or [])
        first = self.errors[0] if self.errors else {}
        self.tag = first.get("tag")
        self.path = first.get("path")
        self.app_tag = first.get("app-tag")
        if temporary is None:
            temporary = (kind in _TEMPORARY_KINDS
                         or (kind == "rpc" and self.tag in TEMPORARY_TAGS))
        self.temporary = temporary
        super().__init__(self.reason)

    def __repr__(self) -> str:
        extra = f", tag={self.tag!r}" if self.tag else ""
        return (f"DeviceError(kind={self.kind!r}, temporary={self.temporary}{extra}, "
                f"reason={self.reason!r})")
