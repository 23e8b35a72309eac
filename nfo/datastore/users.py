"""The one user store of nfo, shared by the RESTCONF and NETCONF front ends.

Accounts are YANG data (``nfo-users``, in running): administrators manage them over
RESTCONF and NETCONF like anything else, access control guards them, and they are as
durable as the rest of the configuration.  An account has a password hash, SSH public
keys for NETCONF, and an ``enabled`` flag; its NACM groups are the groups that list
it.  Passwords are never stored: each is hashed with scrypt (random 16-byte salt,
n=2**14, r=8, p=1, 32-byte key) and kept as ``scrypt$<n>$<r>$<p>$<salt>$<hash>``, so
the parameters can change later without breaking old hashes; the ``set-password``
action (:meth:`UserStore.register`) hashes what it is given.

Verification compares with :func:`hmac.compare_digest`, and a name that is not an
enabled account (or not even a valid name) is hashed against a dummy so that it costs
the same time as a wrong password: response times do not reveal which names exist.
Because a scrypt hash costs ~50 ms of CPU and 16 MiB of memory,
:meth:`UserStore.verify_async` runs it on a small dedicated thread pool (the event
loop keeps serving; at most :data:`HASH_THREADS` hashes run at once) and remembers
recently verified credentials for a short while, keyed by an HMAC under a per-process
random key over the name, the stored hash and the password, so that a client sending
the same ``Authorization`` header on every request pays for scrypt once, not per
request (forgotten after a minute without use).  Changing the password (the stored
hash) or disabling the account ends that at once.  A password set through the server
is remembered the same way for :data:`SET_PASSWORD_MEMORY` seconds.

Network logins go through :meth:`UserStore.login`: the remembered password passes at
once, a wrong password already refused (remembered the same way) fails at once, and
anything else is a guess that the login throttle (:mod:`nfo.datastore.logins`, shared
by both front ends) must admit before it is hashed.

Nothing here logs or returns a password, except :meth:`UserStore.ensure_admin`
returning the one it generated so that the caller can show it once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization

from nfo.datastore.logins import Admission, LoginGuard
from nfo.datastore.session import RpcCall
from nfo.datastore.storage.base import Storage
from nfo.errors import DataExists, DataMissing, InvalidValue, OperationFailed, Throttled
from nfo.schema import Fmt
from nfo.schema.changes import Change, Run, touch

if TYPE_CHECKING:
    from nfo.datastore.datastore import Datastore

__all__ = [
    "ADMIN",
    "HASH_THREADS",
    "META_KEY",
    "MIN_PASSWORD",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "SET_PASSWORD_MEMORY",
    "USERS",
    "UserStore",
    "hash_password",
]

log = logging.getLogger("nfo.users")

META_KEY = "users"
"""The storage meta key where users lived before they were YANG data (imported once)."""

ADMIN = "admin"
"""The user (and NACM group) :meth:`UserStore.ensure_admin` creates on a fresh state."""

USERS = "/nfo-users:users"
_GROUPS = "/ietf-netconf-acm:nacm/groups"
_OWNER = "nfo-users"

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_DKLEN = 32
_MAXMEM = 64 * 1024 * 1024
# Bounds accepted when reading a stored hash: a tampered database must not make
# one verification cost minutes or gigabytes.
_MAX_N = 2**20

SET_PASSWORD_MEMORY = 600.0
"""Seconds a password set through the server (set-password, ``nfo user add|passwd``)
is recognised at login without a hash, whatever the login throttle says."""

HASH_THREADS = 4
"""At most this many scrypt hashes run at once in :meth:`UserStore.verify_async`
(each needs 16 MiB), whatever the number of concurrent logins."""

MIN_PASSWORD = 8
"""The shortest password accepted (in characters, after NFC normalisation): every way
of setting one checks it; passwords stored before this minimum keep working."""
_MAX_PASSWORD = 1024
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
_DOC_FORMAT = 1
_KEY_LINE = re.compile(r"([A-Za-z0-9@._-]+) +([A-Za-z0-9+/]+={0,3})(?: +(.*))?")


# -- hashing (pure functions, safe on any thread) ---------------------------------


def _normalise(password: str) -> bytes:
    # RFC 8265 OpaqueString: the same password typed on two systems compares equal.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R,
                  p: int = SCRYPT_P) -> str:
    """A new ``scrypt$n$r$p$salt$hash`` string for ``password`` with a random salt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(_normalise(password), salt=salt, n=n, r=r, p=p, dklen=_DKLEN,
                            maxmem=_MAXMEM)
    return "$".join(("scrypt", str(n), str(r), str(p),
                     base64.b64encode(salt).decode("ascii"),
                     base64.b64encode(digest).decode("ascii")))


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        return None
    if 128 * r * n * p > _MAXMEM // 2 or not salt or not 16 <= len(digest) <= 64:
        return None
    return n, r, p, salt, digest


@functools.cache
def _dummy_hash() -> str:
    """A valid hash of a random password: what unknown users are checked against."""
    return hash_password(secrets.token_urlsafe(18))


def _check(stored: str | None, password: str) -> bool:
    """Hash ``password`` as ``stored`` says and compare in constant time.

    With ``stored`` None (no such user) or unusable, the same work is done
    against a dummy hash and the answer is False.
    """
    parsed = _parse(stored) if stored is not None else None
    genuine = parsed is not None
    if parsed is None:
        if stored is not None:
            log.warning("a stored password hash is unreadable; that user cannot log in")
        parsed = _parse(_dummy_hash())
        assert parsed is not None
    n, r, p, salt, expected = parsed
    try:
        candidate = hashlib.scrypt(_normalise(password), salt=salt, n=n, r=r, p=p,
                                   dklen=len(expected), maxmem=_MAXMEM)
    except (ValueError, MemoryError):
        candidate = b""
    same = hmac.compare_digest(candidate, expected)
    return same and genuine


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _hash_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="nfo-scrypt")
        return _pool


# -- input checks -------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidValue("a user name is 1 to 64 characters from A-Z a-z 0-9 . _ -",
                           app_tag="nfo-invalid-user-name")


def _check_password(password: str, what: str = "the password") -> None:
    if not isinstance(password, str) or not password.strip():
        raise InvalidValue(f"{what} must not be empty", app_tag="nfo-weak-password")
    if len(unicodedata.normalize("NFC", password)) < MIN_PASSWORD:
        raise InvalidValue(f"{what} must be at least {MIN_PASSWORD} characters long",
                           app_tag="nfo-weak-password")
    if len(password) > _MAX_PASSWORD:
        raise InvalidValue(f"{what} must be at most {_MAX_PASSWORD} characters",
                           app_tag="nfo-weak-password")
    if "\x00" in password:
        raise InvalidValue(f"{what} must not contain NUL", app_tag="nfo-weak-password")


def _normalise_key(line: str) -> str:
    """``<type> <base64> [comment]`` checked by parsing the key; the normal form."""
    m = _KEY_LINE.fullmatch(line.strip()) if isinstance(line, str) else None
    if m is None:
        raise InvalidValue("give an OpenSSH public key as '<type> <base64> [comment]'",
                           app_tag="nfo-invalid-public-key")
    kind, blob, comment = m.group(1), m.group(2), (m.group(3) or "").strip()
    try:
        serialization.load_ssh_public_key(f"{kind} {blob}".encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error) as e:
        raise InvalidValue(f"not a usable OpenSSH public key: {e}",
                           app_tag="nfo-invalid-public-key") from None
    if any(ord(c) < 32 for c in comment):
        raise InvalidValue("the key comment must not contain control characters",
                           app_tag="nfo-invalid-public-key")
    return f"{kind} {blob} {comment}" if comment else f"{kind} {blob}"


# -- the store -----------------------------------------------------------------------


def _fingerprint(blob_b64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(blob_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _user_path(name: str) -> str:
    return f"{USERS}/user[name='{name}']"


_ACCOUNTS_KEPT = 1024


@dataclass(frozen=True)
class _Account:
    exists: bool
    enabled: bool
    hashed: str | None
    """The stored password hash; None when disabled or without one."""


class UserStore:
    """The accounts in running (``nfo-users``); every change is a commit of the server's
    own identity, so the caller decides who may make it (a NACM-checked action, or the
    local command line).

    Errors are :class:`~nfo.errors.NfoError`: ``InvalidValue`` for a bad name,
    weak password or unusable key, ``DataExists`` for a duplicate, ``DataMissing``
    for an unknown user.
    """

    def __init__(self, ds: Datastore, *, cache_seconds: float = 60.0,
                 cache_size: int = 1024, logins: LoginGuard | None = None,
                 refuted_seconds: float = 900.0, refuted_size: int = 8192) -> None:
        self._ds = ds
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache_key = secrets.token_bytes(32)
        # HMAC(name, stored hash, password) -> expiry (time.monotonic)
        self._verified: OrderedDict[bytes, float] = OrderedDict()
        self._refuted: OrderedDict[bytes, float] = OrderedDict()
        self._refuted_seconds = refuted_seconds
        self._refuted_size = refuted_size
        self.logins = logins if logins is not None else LoginGuard()
        """The login throttle and failure record that :meth:`login` goes through."""
        self._checking: dict[bytes, asyncio.Future[bool]] = {}
        self._accounts: dict[str, _Account] = {}
        """What every login reads of an account, as of :attr:`revision` ``_read_at``."""
        self._read_at = -1
        self._revision = 0
        ds.watch_running(self._changed)

    @property
    def cache_seconds(self) -> float:
        """How long a verified password is recognised without a hash (0: never)."""
        return self._cache_seconds

    @property
    def revision(self) -> int:
        """A count of the commits to running that changed an account (what a front
        end's cache of logins keys on): any change under ``/nfo-users:users``, by this
        replica or another, moves it on before the changed tree is read."""
        return self._revision

    def _changed(self, changes: Iterable[Change | Run]) -> None:
        if touch(changes, USERS):
            self._revision += 1

    # -- reading (running, live) --

    def _value(self, path: str) -> str | None:
        node = self._ds.tree("running").node(path)
        return None if node is None else node.value

    def _account(self, name: str) -> _Account:
        revision = self._revision
        if revision != self._read_at:
            self._accounts.clear()
            self._read_at = revision
        found = self._accounts.get(name)
        if found is None:
            path = _user_path(name)
            exists = self._ds.tree("running").node(path) is not None
            enabled = exists and self._value(path + "/enabled") != "false"
            found = _Account(exists, enabled, self._value(path + "/password") if enabled
                             else None)
            if len(self._accounts) >= _ACCOUNTS_KEPT:
                self._accounts.clear()
            self._accounts[name] = found
        return found

    def exists(self, name: str) -> bool:
        return (isinstance(name, str) and _NAME.fullmatch(name) is not None
                and self._account(name).exists)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.exists(name)

    def enabled(self, name: str) -> bool:
        """Whether ``name`` is an account that may log in."""
        return self.exists(name) and self._account(name).enabled

    def names(self) -> list[str]:
        return sorted(n.value or "" for n in self._ds.tree("running").match(
            f"{USERS}/user/name"))

    def groups_of(self, name: str) -> list[str]:
        """The NACM groups that list ``name``."""
        _check_name(name)
        return sorted(n.value or "" for n in self._ds.tree("running").match(
            f"{_GROUPS}/group[user-name='{name}']/name"))

    def _stored_hash(self, name: str) -> str | None:
        return self._account(name).hashed if self.exists(name) else None

    def authorized_keys(self, name: str) -> list[str]:
        """``name``'s OpenSSH public key lines (none while the account is disabled)."""
        if not self.exists(name):
            raise DataMissing(f"no user {name!r}")
        if not self.enabled(name):
            return []
        out = []
        for key in self._ds.tree("running").match(_user_path(name) + "/authorized-key"):
            parts = {c.name: c.value or "" for c in key.children()}
            line = f"{parts.get('algorithm')} {parts.get('key-data')}"
            out.append(f"{line} {parts['comment']}" if parts.get("comment") else line)
        return out

    # -- verifying --

    def verify(self, name: str, password: str) -> bool:
        """True when ``password`` is ``name``'s and the account is enabled.  Same cost
        for unknown names.

        Blocks for one scrypt hash (~50 ms) unless the credentials were verified
        recently; front ends on an event loop use :meth:`verify_async`.
        """
        stored = self._stored_hash(name)
        key = self._remember_key(name, stored, password)
        if key is not None and self._cached(key):
            return True
        ok = _check(stored, password if isinstance(password, str) else "")
        if ok and key is not None:
            self._remember(key)
        return ok

    async def verify_async(self, name: str, password: str) -> bool:
        """:meth:`verify` with the hash on the scrypt thread pool."""
        stored = self._stored_hash(name)
        key = self._remember_key(name, stored, password)
        if key is not None and self._cached(key):
            return True
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(
            _hash_pool(), _check, stored, password if isinstance(password, str) else "")
        if ok and key is not None:
            self._remember(key)
        return ok

    async def login(self, name: str, password: str, address: str, front_end: str) -> bool:
        """A network login by password from ``address`` over ``front_end``: True when it
        is ``name``'s, through the login throttle (:attr:`logins`), which may refuse
        it unchecked with :class:`~nfo.errors.Throttled`.  Every failure is counted
        and logged, never the password.

        The account's verified password is recognised without a hash (and whatever
        the throttle says), and a wrong password refused before is refused again
        without one: neither is a guess.  Otherwise the hash runs on the scrypt pool,
        once for all attempts with the same credentials at the same time (a client's
        parallel first requests are one guess, and all get its answer).
        """
        account = self.exists(name)
        stored = self._stored_hash(name) if account else None
        key = self._remember_key(name, stored, password)
        if key is not None and self._cached(key):
            self.logins.succeeded(name, address)
            return True
        refuted = self._refuted_key(name, stored, password)
        if refuted is not None and self._was_refuted(refuted):
            self.logins.failed(name, address, front_end, "a wrong password again (not "
                               "checked again)", account=account)
            return False
        check = self._checking.get(refuted) if refuted is not None else None
        waiting = check is not None
        if check is None:
            try:
                admission = self.logins.admit(name, address)
            except Throttled as e:
                self.logins.failed(name, address, front_end, "refused without a check: too "
                                   f"many failed logins (Retry-After {e.retry_after} s)",
                                   account=account)
                raise
            check = asyncio.get_running_loop().run_in_executor(
                _hash_pool(), _check, stored, password if isinstance(password, str) else "")
            if refuted is not None:
                self._checking[refuted] = check
            check.add_done_callback(functools.partial(self._checked, admission, key, refuted))
        if await asyncio.shield(check):
            if waiting:  # its address is forgiven too
                self.logins.succeeded(name, address)
            return True
        reason = ("a wrong password again (checked once for both)" if waiting
                  else "wrong password" if stored is not None
                  else "no such account, or it is disabled")
        self.logins.failed(name, address, front_end, reason, account=account)
        return False

    def _checked(self, admission: Admission, key: bytes | None, refuted: bytes | None,
                 check: asyncio.Future[bool]) -> None:
        """A hash for :meth:`login` is done, whoever still waits for it."""
        if refuted is not None and self._checking.get(refuted) is check:
            del self._checking[refuted]
        ok = not check.cancelled() and check.exception() is None and check.result()
        self.logins.settle(admission, ok)
        if ok and key is not None:
            self._remember(key)
        elif not ok and refuted is not None:
            self._refute(refuted)

    def login_failed(self, name: str | None, address: str, front_end: str,
                     reason: str) -> None:
        """Record a failed login that :meth:`login` did not see (malformed credentials,
        a public key that is not authorised)."""
        account = name is not None and self.exists(name)
        self.logins.failed(name, address, front_end, reason, account=account)

    async def unlock(self, name: str, password: str | None = None) -> None:
        """Clear ``name``'s record in the login throttle (see :meth:`LoginGuard.forget`).

        With ``password`` (the local command line's recovery path, never a network
        login) it is checked here, outside the throttle, and when right recognised at
        login like a password just set, whatever the throttle says."""
        self._need(name)
        if password is not None:
            stored = self._stored_hash(name)
            if stored is None:
                raise InvalidValue(f"user {name!r} is disabled or has no password",
                                   app_tag="nfo-wrong-password")
            ok = await asyncio.get_running_loop().run_in_executor(
                _hash_pool(), _check, stored, password)
            if not ok:
                raise InvalidValue(f"that is not the password of user {name!r}",
                                   app_tag="nfo-wrong-password")
            self._remember_set(name, stored, password)
        self.logins.forget(name)

    def _hmac(self, name: str, stored: str, password: str) -> bytes:
        msg = b"\x00".join((name.encode("utf-8", "surrogatepass"), stored.encode(),
                            _normalise(password)))
        return hmac.new(self._cache_key, msg, hashlib.sha256).digest()

    def _remember_key(self, name: str, stored: str | None, password: str) -> bytes | None:
        if stored is None or self._cache_seconds <= 0 or not isinstance(password, str):
            return None
        return self._hmac(name, stored, password)

    def _refuted_key(self, name: str, stored: str | None, password: str) -> bytes | None:
        # A name that is no enabled account is keyed like one (with an empty hash), so
        # that repeating a wrong password is equally cheap for every name.
        if self._refuted_seconds <= 0 or not isinstance(password, str) \
                or not isinstance(name, str):
            return None
        return self._hmac(name, "\x00refuted\x00" + (stored or ""), password)

    def _cached(self, key: bytes) -> bool:
        expiry = self._verified.get(key)
        if expiry is None:
            return False
        now = time.monotonic()
        if expiry < now:
            del self._verified[key]
            return False
        self._verified[key] = max(expiry, now + self._cache_seconds)  # while in use
        self._verified.move_to_end(key)
        return True

    def _remember(self, key: bytes, seconds: float | None = None) -> None:
        self._verified[key] = time.monotonic() + (
            self._cache_seconds if seconds is None else seconds)
        self._verified.move_to_end(key)
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)

    def _remember_set(self, name: str, hashed: str, password: str) -> None:
        """A password just set through this server is known to be right: its owner's
        next login needs no hash and passes the throttle (the recovery path)."""
        key = self._remember_key(name, hashed, password)
        if key is not None:
            self._remember(key, max(self._cache_seconds, SET_PASSWORD_MEMORY))

    def _was_refuted(self, key: bytes) -> bool:
        expiry = self._refuted.get(key)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._refuted[key]
            return False
        return True

    def _refute(self, key: bytes) -> None:
        self._refuted[key] = time.monotonic() + self._refuted_seconds
        self._refuted.move_to_end(key)
        while len(self._refuted) > self._refuted_size:
            self._refuted.popitem(last=False)

    # -- changing --

    async def _edit(self, *docs: dict[str, Any]) -> None:
        async with self._ds.internal_session(_OWNER) as s:
            await s.edit_many("running", [json.dumps(d) for d in docs], Fmt.JSON,
                              label="users")

    async def _hash(self, password: str) -> str:
        _check_password(password)
        return await asyncio.get_running_loop().run_in_executor(
            _hash_pool(), hash_password, password)

    def _need(self, name: str) -> None:
        _check_name(name)
        if not self.exists(name):
            raise DataMissing(f"no user {name!r}")

    async def add(self, name: str, password: str | None, *, groups: Iterable[str] = (),
                  enabled: bool = True) -> None:
        """Create ``name`` (with ``password``; None: no password, keys only) and add it
        to the NACM ``groups``; refuses duplicates and weak input."""
        _check_name(name)
        hashed = await self._hash(password) if password is not None else None
        if self.exists(name):
            raise DataExists(f"user {name!r} exists")
        user: dict[str, Any] = {"name": name, "@": {"ietf-netconf:operation": "create"}}
        if hashed is not None:
            user["password"] = hashed
        if not enabled:
            user["enabled"] = False
        await self._edit({"nfo-users:users": {"user": [user]}}, *self._groups_doc(name, groups))
        if hashed is not None and password is not None:
            self._remember_set(name, hashed, password)
        log.info("user %s added", name)

    @staticmethod
    def _groups_doc(name: str, groups: Iterable[str]) -> list[dict[str, Any]]:
        wanted = [g for g in dict.fromkeys(groups)]
        if not wanted:
            return []
        return [{"ietf-netconf-acm:nacm": {"groups": {"group": [
            {"name": g, "user-name": [name]} for g in wanted]}}}]

    async def add_to_groups(self, name: str, groups: Iterable[str]) -> None:
        self._need(name)
        docs = self._groups_doc(name, groups)
        if docs:
            await self._edit(*docs)

    async def set_password(self, name: str, password: str) -> None:
        self._need(name)
        hashed = await self._hash(password)
        await self._edit({"nfo-users:users": {"user": [{"name": name, "password": hashed}]}})
        self._remember_set(name, hashed, password)
        log.info("password of user %s changed", name)

    async def set_enabled(self, name: str, enabled: bool) -> None:
        self._need(name)
        await self._edit({"nfo-users:users": {"user": [{"name": name, "enabled": enabled}]}})
        log.info("user %s %s", name, "enabled" if enabled else "disabled")

    async def remove(self, name: str) -> None:
        """Delete the account and take it out of every NACM group."""
        self._need(name)
        groups = self.groups_of(name)
        doc: list[dict[str, Any]] = [{"nfo-users:users": {"user": [
            {"name": name, "@": {"ietf-netconf:operation": "delete"}}]}}]
        if groups:
            doc.append({"ietf-netconf-acm:nacm": {"groups": {"group": [
                {"name": g, "user-name": [name],
                 "@user-name": [{"ietf-netconf:operation": "delete"}]} for g in groups]}}})
        await self._edit(*doc)
        log.info("user %s removed", name)

    async def add_key(self, name: str, openssh_public_key_line: str) -> str:
        """Authorise a public key for ``name``; returns the stored (normal) line."""
        self._need(name)
        line = _normalise_key(openssh_public_key_line)
        kind, blob, *rest = line.split(" ", 2)
        fp = _fingerprint(blob)
        if self._ds.tree("running").node(
                f"{_user_path(name)}/authorized-key[name='{fp}']") is not None:
            raise DataExists(f"user {name!r} has this key already")
        key: dict[str, Any] = {"name": fp, "algorithm": kind, "key-data": blob}
        if rest:
            key["comment"] = rest[0]
        await self._edit({"nfo-users:users": {"user": [{"name": name,
                                                         "authorized-key": [key]}]}})
        log.info("public key %s %s added for user %s", kind, fp, name)
        return line

    async def remove_key(self, name: str, openssh_public_key_line: str) -> None:
        """Remove a key (matched by its material; the comment is ignored)."""
        self._need(name)
        fp = _fingerprint(_normalise_key(openssh_public_key_line).split(" ")[1])
        if self._ds.tree("running").node(
                f"{_user_path(name)}/authorized-key[name='{fp}']") is None:
            raise DataMissing(f"user {name!r} has no such key")
        await self._edit({"nfo-users:users": {"user": [{"name": name, "authorized-key": [
            {"name": fp, "@": {"ietf-netconf:operation": "delete"}}]}]}})

    # -- first start --

    async def ensure_admin(self, env_password: str | None) -> str | None:
        """On a state without accounts, create :data:`ADMIN` in the NACM group
        ``admin`` and an ``admin`` rule-list that permits that group everything.

        Accounts of a state directory from before users were YANG data are imported
        instead (into the ``admin`` group: they could do everything before).  The new
        password is ``env_password`` (``NFO_ADMIN_PASSWORD``) when given (one shorter
        than :data:`MIN_PASSWORD` is refused as weak, naming the variable), else a
        random one that is returned, for the caller to show once.  Returns None
        otherwise, and always when accounts exist already (nothing is changed then)."""
        storage = self._ds.storage
        if self.names():
            if storage.get_meta(META_KEY):
                storage.set_meta(META_KEY, "")
            return None
        old = _old_users(storage)
        if old:
            users = [{"name": n, **({"password": u["password"]} if u.get("password") else {}),
                      "authorized-key": [_key_entry(k) for k in u.get("keys", [])]}
                     for n, u in sorted(old.items())]
            await self._edit({"nfo-users:users": {"user": users}},
                             _admin_rules([u["name"] for u in users]))
            storage.set_meta(META_KEY, "")
            log.warning("imported %d user(s) into nfo-users, all in the NACM group 'admin' "
                        "(they could do everything before); narrow their groups", len(users))
            return None
        if env_password is not None:
            _check_password(env_password, "NFO_ADMIN_PASSWORD")
        generated = None if env_password is not None else secrets.token_urlsafe(18)
        password = env_password if env_password is not None else generated
        assert password is not None
        hashed = await self._hash(password)
        await self._edit({"nfo-users:users": {"user": [{"name": ADMIN, "password": hashed}]}},
                         _admin_rules([ADMIN]))
        self._remember_set(ADMIN, hashed, password)
        log.info("no users: created user %s (%s password) in group %s", ADMIN,
                 "generated" if generated else "NFO_ADMIN_PASSWORD", ADMIN)
        return generated

    async def ensure_admin_rules(self) -> None:
        """The ``admin`` group's permit-all rule-list, unless a rule-list of that name
        exists (what :meth:`ensure_admin` sets up for the first account)."""
        if self._ds.tree("running").node(
                f"/ietf-netconf-acm:nacm/rule-list[name='{ADMIN}']") is None:
            await self._edit(_admin_rules([]))

    # -- the set-password action --

    def register(self) -> None:
        """Serve ``nfo-users``' set-password action (access control has allowed the
        caller by the time it runs) and the login counters (operational data)."""
        self._ds.register_rpc(f"{USERS}/user/set-password", self._set_password_action)
        self._ds.provide_oper(USERS, self._login_state)

    def unregister(self) -> None:
        self._ds.unregister_rpc(f"{USERS}/user/set-password")
        self._ds.unprovide_oper(USERS)
        self.logins.close()

    def _login_state(self) -> str:
        return self.logins.oper_json(self.names())

    async def _set_password_action(self, call: RpcCall) -> None:
        assert call.parent_path is not None
        node = call.tree.node(call.parent_path + "/name")
        password = next((c.value for c in call.op.children() if c.name == "password"), None)
        if node is None or node.value is None or password is None:
            raise InvalidValue("set-password needs the user and a password")
        await self.set_password(node.value, password)


def _admin_rules(members: list[str]) -> dict[str, Any]:
    groups = {"groups": {"group": [{"name": ADMIN, "user-name": members}]}} if members else {}
    return {"ietf-netconf-acm:nacm": {
        **groups,
        "rule-list": [{"name": ADMIN, "group": [ADMIN], "rule": [{
            "name": "permit-all", "module-name": "*", "access-operations": "*",
            "action": "permit",
            "comment": "Administrators may do everything (credentials stay unreadable "
                       "unless a rule names them)."}]}]}}


def _key_entry(line: str) -> dict[str, str]:
    kind, blob, *rest = _normalise_key(line).split(" ", 2)
    entry = {"name": _fingerprint(blob), "algorithm": kind, "key-data": blob}
    if rest:
        entry["comment"] = rest[0]
    return entry


def _old_users(storage: Storage) -> dict[str, dict[str, Any]]:
    """The user document of a state directory from before users were YANG data."""
    raw = storage.get_meta(META_KEY)
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
        users = doc["users"]
        if doc.get("format") != _DOC_FORMAT or not isinstance(users, dict):
            raise ValueError("unknown format")
    except (ValueError, KeyError, TypeError) as e:
        raise OperationFailed(f"the stored user list is unreadable: {e}") from None
    return users
