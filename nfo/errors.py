"""The one exception root of nfo.

Every failure that can reach a client is an :class:`NfoError` carrying the
fields of a NETCONF ``rpc-error`` / RESTCONF ``error`` (RFC 6241 Appendix A,
RFC 8040 section 7): error-type, error-tag, error-path, error-app-tag, the
message and optional error-info.  Front ends translate it in one table each;
nothing below them knows about HTTP status codes or XML replies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "AccessDenied",
    "DataExists",
    "DataMissing",
    "ErrorDetail",
    "InUse",
    "InvalidValue",
    "LocaleUnavailable",
    "LockDenied",
    "MalformedMessage",
    "MissingElement",
    "NfoError",
    "NotPageable",
    "OffsetOutOfRange",
    "OperationFailed",
    "OperationNotSupported",
    "PreconditionFailed",
    "ResourceDenied",
    "StorageCorrupt",
    "StorageFull",
    "Throttled",
    "TooBig",
    "UnknownElement",
    "Veto",
]


@dataclass(frozen=True)
class ErrorDetail:
    """One rpc-error: what a protocol reply needs to describe a failure."""

    tag: str
    message: str
    error_type: str = "application"
    path: str | None = None
    app_tag: str | None = None
    info: Mapping[str, str] = field(default_factory=dict)


class NfoError(Exception):
    """Root of every error nfo reports to a client.

    ``errors`` holds at least one :class:`ErrorDetail`; the first one is also
    reachable through the convenience properties.
    """

    default_tag = "operation-failed"
    default_type = "application"

    def __init__(
        self,
        message: str,
        *,
        tag: str | None = None,
        path: str | None = None,
        app_tag: str | None = None,
        error_type: str | None = None,
        info: Mapping[str, str] | None = None,
        errors: list[ErrorDetail] | None = None,
    ) -> None:
        super().__init__(message)
        first = ErrorDetail(
            tag=tag or self.default_tag,
            message=message,
            error_type=error_type or self.default_type,
            path=path,
            app_tag=app_tag,
            info=dict(info or {}),
        )
        self.errors: list[ErrorDetail] = [first, *(errors or [])]

    @property
    def tag(self) -> str:
        return self.errors[0].tag

    @property
    def error_type(self) -> str:
        return self.errors[0].error_type

    @property
    def path(self) -> str | None:
        return self.errors[0].path

    @property
    def app_tag(self) -> str | None:
        return self.errors[0].app_tag

    @property
    def message(self) -> str:
        return self.errors[0].message

    @property
    def info(self) -> Mapping[str, str]:
        return self.errors[0].info

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{self.tag}: {self.message}{where}"


class InvalidValue(NfoError):
    default_tag = "invalid-value"


class OffsetOutOfRange(InvalidValue):
    """A pagination ``offset`` past the end of the working result set
    (draft-ietf-netconf-list-pagination); RESTCONF answers 416."""

    def __init__(self, message: str, *, info: Mapping[str, str] | None = None) -> None:
        super().__init__(message, app_tag="ietf-list-pagination:offset-out-of-range",
                         info=info)


class LocaleUnavailable(InvalidValue):
    """A pagination ``locale`` the server cannot sort by; RESTCONF answers 501."""

    def __init__(self, message: str, *, info: Mapping[str, str] | None = None) -> None:
        super().__init__(message, app_tag="ietf-list-pagination:locale-unavailable",
                         info=info)


class MissingElement(NfoError):
    default_tag = "missing-element"


class UnknownElement(NfoError):
    default_tag = "unknown-element"


class MalformedMessage(NfoError):
    default_tag = "malformed-message"
    default_type = "rpc"


class TooBig(NfoError):
    default_tag = "too-big"
    default_type = "transport"


class DataExists(NfoError):
    default_tag = "data-exists"


class DataMissing(NfoError):
    default_tag = "data-missing"


class InUse(NfoError):
    default_tag = "in-use"


class LockDenied(NfoError):
    default_tag = "lock-denied"
    default_type = "protocol"


class AccessDenied(NfoError):
    default_tag = "access-denied"


class ResourceDenied(NfoError):
    default_tag = "resource-denied"


class Throttled(ResourceDenied):
    """A request refused without being examined because a rate limit had no room for it
    (the login throttle): ``retry_after`` seconds until one may get through.  RESTCONF
    answers 429 with Retry-After."""

    default_type = "protocol"

    def __init__(self, message: str, *, retry_after: int,
                 app_tag: str | None = None) -> None:
        super().__init__(message, app_tag=app_tag)
        self.retry_after = retry_after


class StorageFull(ResourceDenied):
    """The disk holding the stored state is full: the write was not made.  RESTCONF
    answers 507 Insufficient Storage; the error-app-tag is ``nfo-storage-full``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, app_tag="nfo-storage-full")


class OperationNotSupported(NfoError):
    default_tag = "operation-not-supported"
    default_type = "protocol"


class NotPageable(OperationNotSupported):
    """Pagination asked of a target that is not a list or leaf-list; RESTCONF answers
    400 (draft-ietf-netconf-list-pagination-rc)."""


class OperationFailed(NfoError):
    default_tag = "operation-failed"


class StorageCorrupt(OperationFailed):
    """The stored state is damaged (unreadable pages, a row that does not match its
    checksum): nfo refuses to start on it, or to serve the damaged part."""


class StorageUnavailable(OperationFailed):
    """The distributed store (etcd) could not be reached, or had no leader, within the
    deadline.  Nothing was changed, unless ``ambiguous``: then the write was sent and
    its answer lost, so it may have been made.  RESTCONF answers 503 Service
    Unavailable; the error-app-tag is ``nfo-storage-unavailable``."""

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message, app_tag="nfo-storage-unavailable")
        self.ambiguous = ambiguous


class StorageConflict(OperationFailed):
    """Another replica committed first: what this write was checked against is no
    longer the stored state, so nothing was stored.  Taken again on the newer state it
    may well succeed.  RESTCONF answers 409; the error-app-tag is
    ``nfo-replica-conflict``."""

    def __init__(self, message: str, *, revision: int = 0) -> None:
        super().__init__(message, app_tag="nfo-replica-conflict")
        self.revision = revision
        """The store's revision when the write was refused: this replica needs every
        revision up to it before trying again."""


class Veto(OperationFailed):
    """A change subscriber refused a change; its message reaches the client."""

    default_app_tag = "nfo-change-vetoed"


class PreconditionFailed(OperationFailed):
    """A write's precondition (expected revision, conditional request) did not hold
    on the datastore's state when the write was to be applied; nothing was changed."""

    default_type = "protocol"
