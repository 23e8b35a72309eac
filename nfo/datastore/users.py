"""The one user store of nfo, shared by the RESTCONF and NETCONF front ends.

Users live in the storage backend's meta table as one JSON document (key
``users``), so they are as durable as the datastore and travel with the state
directory.  A user has a password hash and, for NETCONF over SSH, a list of
OpenSSH public keys.  Passwords are never stored: each is hashed with scrypt
(random 16-byte salt, n=2**14, r=8, p=1, 32-byte key) and kept as
``scrypt$<n>$<r>$<p>$<salt-b64>$<hash-b64>``, so the parameters can change
later without breaking old hashes.

Verification compares with :func:`hmac.compare_digest`, and a name that is not
a user (or not even a valid name) is hashed against a dummy so that it costs
the same time as a wrong password: response times do not reveal which names
exist.  Because a scrypt hash costs ~50 ms of CPU and 16 MiB of memory,
:meth:`UserStore.verify_async` runs it on a small dedicated thread pool (the
event loop keeps serving; at most :data:`HASH_THREADS` hashes run at once) and
remembers recently verified credentials for a short while, keyed by an HMAC
under a per-process random key, so that a client sending the same
``Authorization`` header on every request pays for scrypt once a minute, not
per request.  Changing or removing a password invalidates that at once.

The storage is not thread-safe: use a :class:`UserStore` from the thread (the
event loop) that uses its storage.  Writes are read-modify-write inside one
``storage.batch()`` transaction, so two processes on one state directory (a
server and a second process on the same directory) cannot lose each other's
changes.

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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cryptography.hazmat.primitives import serialization

from nfo.datastore.storage.base import Storage
from nfo.errors import DataExists, DataMissing, InvalidValue, OperationFailed

__all__ = [
    "ADMIN",
    "HASH_THREADS",
    "META_KEY",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "UserStore",
    "hash_password",
]

log = logging.getLogger("nfo.users")

META_KEY = "users"
"""The storage meta key holding the user document."""

ADMIN = "admin"
"""The user :meth:`UserStore.ensure_admin` creates on an empty store."""

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_DKLEN = 32
_MAXMEM = 64 * 1024 * 1024
# Bounds accepted when reading a stored hash: a tampered database must not make
# one verification cost minutes or gigabytes.
_MAX_N = 2**20

HASH_THREADS = 4
"""At most this many scrypt hashes run at once in :meth:`UserStore.verify_async`
(each needs 16 MiB), whatever the number of concurrent logins."""

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


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password.strip():
        raise InvalidValue("the password must not be empty", app_tag="nfo-weak-password")
    if len(password) > _MAX_PASSWORD:
        raise InvalidValue(f"the password must be at most {_MAX_PASSWORD} characters",
                           app_tag="nfo-weak-password")
    if "\x00" in password:
        raise InvalidValue("the password must not contain NUL", app_tag="nfo-weak-password")


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


class UserStore:
    """Users, password hashes and SSH public keys in ``storage`` meta.

    Errors are :class:`~nfo.errors.NfoError`: ``InvalidValue`` for a bad name,
    weak password or unusable key, ``DataExists`` for a duplicate, ``DataMissing``
    for an unknown user.
    """

    def __init__(self, storage: Storage, *, cache_seconds: float = 60.0,
                 cache_size: int = 1024) -> None:
        self._storage = storage
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache_key = secrets.token_bytes(32)
        # HMAC(name, stored hash, password) -> expiry (time.monotonic)
        self._verified: OrderedDict[bytes, float] = OrderedDict()

    # -- the stored document --

    def _load(self) -> dict[str, dict[str, Any]]:
        raw = self._storage.get_meta(META_KEY)
        if raw is None:
            return {}
        try:
            doc = json.loads(raw)
            users = doc["users"]
            if doc.get("format") != _DOC_FORMAT or not isinstance(users, dict):
                raise ValueError("unknown format")
        except (ValueError, KeyError, TypeError) as e:
            raise OperationFailed(f"the stored user list is unreadable: {e}") from None
        return users

    def _save(self, users: dict[str, dict[str, Any]]) -> None:
        self._storage.set_meta(META_KEY, json.dumps(
            {"format": _DOC_FORMAT, "users": users}, sort_keys=True, separators=(",", ":")))

    def _user(self, users: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
        entry = users.get(name) if isinstance(name, str) else None
        if entry is None:
            raise DataMissing(f"no user {name!r}")
        return entry

    def _stored_hash(self, name: str) -> str | None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            return None
        entry = self._load().get(name)
        value = entry.get("password") if entry else None
        return value if isinstance(value, str) else None

    # -- users and passwords --

    def add(self, name: str, password: str) -> None:
        """Create ``name`` with ``password``; refuses duplicates and weak input."""
        _check_name(name)
        _check_password(password)
        hashed = hash_password(password)
        with self._storage.batch():
            users = self._load()
            if name in users:
                raise DataExists(f"user {name!r} exists")
            users[name] = {"password": hashed, "keys": []}
            self._save(users)
        log.info("user %s added", name)

    def set_password(self, name: str, password: str) -> None:
        _check_password(password)
        hashed = hash_password(password)
        with self._storage.batch():
            users = self._load()
            self._user(users, name)["password"] = hashed
            self._save(users)
        log.info("password of user %s changed", name)

    def remove(self, name: str) -> None:
        with self._storage.batch():
            users = self._load()
            self._user(users, name)
            del users[name]
            self._save(users)
        log.info("user %s removed", name)

    def names(self) -> list[str]:
        return sorted(self._load())

    def exists(self, name: str) -> bool:
        return isinstance(name, str) and name in self._load()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.exists(name)

    def verify(self, name: str, password: str) -> bool:
        """True when ``password`` is ``name``'s.  Same cost for unknown names.

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

    def _remember_key(self, name: str, stored: str | None, password: str) -> bytes | None:
        if stored is None or self._cache_seconds <= 0 or not isinstance(password, str):
            return None
        msg = b"\x00".join((name.encode(), stored.encode(), _normalise(password)))
        return hmac.new(self._cache_key, msg, hashlib.sha256).digest()

    def _cached(self, key: bytes) -> bool:
        expiry = self._verified.get(key)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._verified[key]
            return False
        self._verified.move_to_end(key)
        return True

    def _remember(self, key: bytes) -> None:
        self._verified[key] = time.monotonic() + self._cache_seconds
        self._verified.move_to_end(key)
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)

    def ensure_admin(self, env_password: str | None) -> str | None:
        """On an empty store, create :data:`ADMIN`.

        Its password is ``env_password`` (``NFO_ADMIN_PASSWORD``) when given
        (an empty one is refused as weak), else a random one that is returned,
        for the caller to show once.  Returns None otherwise, and always when
        users exist already (nothing is changed then).
        """
        if self._load():
            return None
        generated = None if env_password is not None else secrets.token_urlsafe(18)
        password = env_password if env_password is not None else generated
        assert password is not None
        _check_password(password)
        hashed = hash_password(password)
        with self._storage.batch():
            users = self._load()
            if users:
                return None
            users[ADMIN] = {"password": hashed, "keys": []}
            self._save(users)
        log.info("no users: created user %s (%s password)", ADMIN,
                 "generated" if generated else "NFO_ADMIN_PASSWORD")
        return generated

    # -- SSH public keys (NETCONF) --

    def authorized_keys(self, name: str) -> list[str]:
        """``name``'s OpenSSH public key lines (``<type> <base64> [comment]``)."""
        keys = self._user(self._load(), name).get("keys", [])
        return [k for k in keys if isinstance(k, str)]

    def add_key(self, name: str, openssh_public_key_line: str) -> str:
        """Authorise a public key for ``name``; returns the stored (normal) line."""
        line = _normalise_key(openssh_public_key_line)
        material = line.split(" ")[:2]
        with self._storage.batch():
            users = self._load()
            keys: list[str] = self._user(users, name).setdefault("keys", [])
            if any(k.split(" ")[:2] == material for k in keys):
                raise DataExists(f"user {name!r} has this key already")
            keys.append(line)
            self._save(users)
        log.info("public key %s added for user %s", material[0], name)
        return line

    def remove_key(self, name: str, openssh_public_key_line: str) -> None:
        """Remove a key (matched by type and key material; the comment is ignored)."""
        material = _normalise_key(openssh_public_key_line).split(" ")[:2]
        with self._storage.batch():
            users = self._load()
            keys: list[str] = self._user(users, name).setdefault("keys", [])
            kept = [k for k in keys if k.split(" ")[:2] != material]
            if len(kept) == len(keys):
                raise DataMissing(f"user {name!r} has no such key")
            self._user(users, name)["keys"] = kept
            self._save(users)
