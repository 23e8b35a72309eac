"""HTTP conditional requests (RFC 9110 section 13, RFC 8040 section 3.5.4) on datastores.

Entity tags are the datastore's commit revision (``"<revision>"``), so a client
that sends ``If-Match`` with the tag it read cannot overwrite a change it has
not seen.  Replies that include state data (which changes without a commit)
carry ``"<revision>-s<digest of the body>"`` and no Last-Modified; as an
``If-Match`` on a write, such a tag matches while the revision is unchanged.
The candidate, which has no revision of its own once edited, is tagged
``"<revision>-c<digest of its content>"``.

A write's conditions become a datastore :data:`~nfo.datastore.Precondition`,
checked under the datastore's own write lock: no writer of any front end can
commit between the check and the write.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from nfo.datastore import CommitInfo, Datastore, Precondition, Session, WriteView
from nfo.errors import PreconditionFailed
from nfo.schema import Fmt

__all__ = [
    "Validators",
    "check_read",
    "check_write",
    "conditional_headers",
    "raw_validator_headers",
    "state_validators",
    "validator_headers",
    "validators",
    "write_precondition",
]


@dataclass(frozen=True)
class Validators:
    etag: str
    last_modified: float | None


def validators(ds: Datastore, datastore: str, session: Session | None = None) -> Validators:
    """ETag and Last-Modified of a datastore (operational and intended: running's);
    ``session``: the request's long-lived session, whose candidate may be its own."""
    name = "running" if datastore in ("intended", "operational") else datastore
    info = ds.info(name)
    if name != "candidate":
        return _committed(info)
    candidate = (session.candidate_tree() if session is not None else ds.tree("candidate"))
    if candidate is not ds.tree("running"):
        digest = hashlib.sha1(candidate.print(Fmt.JSON).encode(),
                              usedforsecurity=False).hexdigest()[:12]
        return Validators(f'"{info.revision}-c{digest}"', None)
    return _committed(info)


def _committed(info: CommitInfo) -> Validators:
    return Validators(f'"{info.revision}"', info.timestamp)


def state_validators(v: Validators, body: str) -> Validators:
    """The validators of a reply holding state data: the revision and a body digest."""
    digest = hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()[:12]
    return Validators(f'{v.etag[:-1]}-s{digest}"', None)


def validator_headers(v: Validators) -> dict[str, str]:
    out = {"ETag": v.etag}
    if v.last_modified is not None:
        out["Last-Modified"] = _http_date(int(v.last_modified))
    return out


def raw_validator_headers(v: Validators) -> list[tuple[bytes, bytes]]:
    """:func:`validator_headers` as an ASGI response's header list."""
    out = [(b"etag", v.etag.encode("latin-1"))]
    if v.last_modified is not None:
        out.append((b"last-modified", _http_date(int(v.last_modified)).encode("latin-1")))
    return out


_CONDITIONAL = frozenset((b"if-match", b"if-none-match", b"if-modified-since",
                          b"if-unmodified-since"))


def conditional_headers(raw: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request's header list (ASGI: lower-case names) holds a conditional
    header that :func:`check_read` reads."""
    return any(name in _CONDITIONAL for name, _ in raw)


@functools.lru_cache(maxsize=64)
def _http_date(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def _parse_date(value: str) -> float | None:
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if dt is None or dt.tzinfo is None:
        return None
    return dt.timestamp()


def _etags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def _weak_eq(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def _matches_for_write(tag: str, current: str) -> bool:
    if tag.startswith("W/"):
        return False  # If-Match uses the strong comparison
    if tag == current:
        return True
    rev = current.strip('"')
    return "-" not in rev and tag.startswith(f'"{rev}-s')


def check_write(headers: Mapping[str, str], v: Validators, exists: bool) -> None:
    """If-Match / If-Unmodified-Since / If-None-Match on a write: 412 on failure."""
    if "if-match" in headers:
        tags = _etags(headers["if-match"])
        ok = exists if tags == ["*"] else any(_matches_for_write(t, v.etag) for t in tags)
        if not ok:
            raise PreconditionFailed("If-Match does not match: the datastore has changed")
    elif "if-unmodified-since" in headers:
        since = _parse_date(headers["if-unmodified-since"])
        if since is not None and (v.last_modified is None or int(v.last_modified) > since):
            raise PreconditionFailed("the datastore was modified since "
                                     + headers["if-unmodified-since"])
    if "if-none-match" in headers:
        tags = _etags(headers["if-none-match"])
        hit = exists if tags == ["*"] else any(_weak_eq(t, v.etag) for t in tags)
        if hit:
            raise PreconditionFailed("If-None-Match matches the current resource")


def check_read(headers: Mapping[str, str], v: Validators) -> bool:
    """If-Match / If-Unmodified-Since (412) and If-None-Match / If-Modified-Since on a
    read; True when the client's copy is current (304)."""
    if "if-match" in headers:
        tags = _etags(headers["if-match"])
        if tags != ["*"] and not any(t == v.etag for t in tags):
            raise PreconditionFailed("If-Match does not match")
    elif "if-unmodified-since" in headers:
        since = _parse_date(headers["if-unmodified-since"])
        if since is not None and (v.last_modified is None or int(v.last_modified) > since):
            raise PreconditionFailed("modified since " + headers["if-unmodified-since"])
    if "if-none-match" in headers:
        tags = _etags(headers["if-none-match"])
        if tags == ["*"] or any(_weak_eq(t, v.etag) for t in tags):
            return True
    elif "if-modified-since" in headers and v.last_modified is not None:
        since = _parse_date(headers["if-modified-since"])
        if since is not None and int(v.last_modified) <= since:
            return True
    return False


def write_precondition(ds: Datastore, headers: Mapping[str, str],
                       exists_check: Callable[[WriteView], bool],
                       existed: list[bool] | None = None,
                       session: Session | None = None) -> Precondition:
    """A request's conditional headers as a datastore write precondition; it records
    in ``existed`` whether the target existed when it was last checked.

    Both questions are asked of the view, not the live datastore: a write committed
    in a group sees the data as the writes before it in the group left it."""
    def check(view: WriteView) -> None:
        found = exists_check(view)
        if existed is not None:
            existed[:] = [found]
        v = (validators(ds, view.datastore, session) if view.datastore == "candidate"
             else _committed(view.info))
        check_write(headers, v, found)
    return check
