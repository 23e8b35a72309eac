"""What the client raises: one checker turns every RESTCONF answer into our exceptions.

Why: callers (the CLI, scripts) handle failures by kind and show the server's own words:
the RESTCONF error-tag, app-tag, path and message travel on the exception, and
:func:`raise_for_response` is the only place that reads an error body.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = [
    "AuthenticationFailed",
    "ClientError",
    "Conflict",
    "InvalidData",
    "NotFound",
    "OutOfRange",
    "RequestFailed",
    "Unreachable",
    "WaitFailed",
    "WaitTimeout",
    "raise_for_response",
]


class ClientError(Exception):
    """Every error the client raises."""


class Unreachable(ClientError):
    """The server could not be reached (refused, timed out, TLS failed)."""


class RequestFailed(ClientError):
    """The server answered with an error: its status and RESTCONF error fields."""

    def __init__(self, status: int, message: str, *, tag: str | None = None,
                 app_tag: str | None = None, path: str | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.tag = tag
        self.app_tag = app_tag
        self.path = path
        self.errors = errors or []

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        tag = f" ({self.tag}{', ' + self.app_tag if self.app_tag else ''})" if self.tag else ""
        return f"{self.message}{where}{tag}"


class AuthenticationFailed(RequestFailed):
    """401: wrong user or password (or too many recent failures, 429)."""


class NotFound(RequestFailed):
    """404: no such resource."""


class Conflict(RequestFailed):
    """409: the data exists already, is in use, or a lock or commit is in the way."""


class InvalidData(RequestFailed):
    """400: the request or its data is invalid (the server's validation said why)."""


class OutOfRange(InvalidData):
    """416: a page's ``offset`` is past the end of the list (invalid-value, app-tag
    ``ietf-list-pagination:offset-out-of-range``)."""


class WaitTimeout(ClientError):
    """A wait ran out of time; ``last`` is the instance as last seen (None if gone)."""

    def __init__(self, message: str, last: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.last = last


class WaitFailed(ClientError):
    """A wait ended in a state it cannot leave by itself (failed while waiting for
    running); ``last`` is the instance as seen."""

    def __init__(self, message: str, last: dict[str, Any]) -> None:
        super().__init__(message)
        self.last = last


_BY_STATUS: dict[int, type[RequestFailed]] = {
    400: InvalidData, 401: AuthenticationFailed, 404: NotFound, 409: Conflict,
    416: OutOfRange, 429: AuthenticationFailed,
}


def raise_for_response(r: httpx.Response) -> None:
    """Raise the exception for an error answer; return for 2xx and 304."""
    if r.status_code < 400:
        return
    errors: list[dict[str, Any]] = []
    try:
        body = json.loads(r.content) if r.content else {}
        errors = body.get("ietf-restconf:errors", {}).get("error", []) or []
        status = body.get("ietf-yang-patch:yang-patch-status", {})
        errors += status.get("errors", {}).get("error", []) or []
        for edit in status.get("edit-status", {}).get("edit", []) or []:
            errors += edit.get("errors", {}).get("error", []) or []
    except (ValueError, AttributeError):
        pass
    first = errors[0] if errors else {}
    message = first.get("error-message") or r.reason_phrase or f"HTTP {r.status_code}"
    if r.status_code == 429 and "retry-after" in r.headers:
        message += f" (retry after {r.headers['retry-after']} s)"
    cls = _BY_STATUS.get(r.status_code, RequestFailed)
    raise cls(r.status_code, message, tag=first.get("error-tag"),
              app_tag=first.get("error-app-tag"), path=first.get("error-path"), errors=errors)
