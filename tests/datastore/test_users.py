"""The user store on a real SQLite storage: hashes, checks, persistence, admin bootstrap."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from nfo.datastore import SqliteStorage
from nfo.datastore import users as users_module
from nfo.datastore.users import ADMIN, META_KEY, UserStore, hash_password
from nfo.errors import DataExists, DataMissing, InvalidValue

HASH = re.compile(r"scrypt\$16384\$8\$1\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})")


@pytest.fixture
def storage(db_path: Path) -> Iterator[SqliteStorage]:
    s = SqliteStorage(db_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def store(storage: SqliteStorage) -> UserStore:
    return UserStore(storage)


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count scrypt computations done by the user store."""
    calls: list[int] = []
    real: Callable[..., bytes] = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


def stored_doc(storage: SqliteStorage) -> dict[str, Any]:
    raw = storage.get_meta(META_KEY)
    assert raw is not None
    doc: dict[str, Any] = json.loads(raw)
    return doc


def ssh_key(comment: str = "") -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{public} {comment}".strip()


def test_add_and_verify(store: UserStore) -> None:
    store.add("alice", "correct horse battery staple")
    store.add("bob.ops-1_x", "s3cret")
    assert store.names() == ["alice", "bob.ops-1_x"]
    assert store.verify("alice", "correct horse battery staple")
    assert not store.verify("alice", "correct horse battery stapl")
    assert not store.verify("alice", "")
    assert not store.verify("bob.ops-1_x", "correct horse battery staple")
    assert not store.verify("carol", "s3cret")
    assert not store.verify("not a valid name!", "s3cret")
    assert store.exists("alice") and "alice" in store and "carol" not in store


def test_unicode_passwords_are_normalised(store: UserStore) -> None:
    store.add("alice", "caf\u00e9")  # precomposed
    assert store.verify("alice", "cafe\u0301")  # decomposed: the same text


def test_duplicates_refused(store: UserStore) -> None:
    store.add("alice", "one")
    with pytest.raises(DataExists):
        store.add("alice", "two")
    assert store.verify("alice", "one")


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "caf\u00e9", "a/b", "a:b", "a\n", "a\x00"])
def test_bad_names_refused(store: UserStore, name: str) -> None:
    with pytest.raises(InvalidValue):
        store.add(name, "password")
    assert store.names() == []


@pytest.mark.parametrize("password", ["", "   ", "\t\n", "x" * 1025, "a\x00b"])
def test_weak_passwords_refused(store: UserStore, password: str) -> None:
    with pytest.raises(InvalidValue):
        store.add("alice", password)
    assert store.names() == []
    store.add("alice", "good")
    with pytest.raises(InvalidValue):
        store.set_password("alice", password)
    assert store.verify("alice", "good")


def test_longest_name_accepted(store: UserStore) -> None:
    store.add("n" * 64, "pw")
    assert store.verify("n" * 64, "pw")


def test_hashes_are_salted_scrypt_without_plaintext(
        store: UserStore, storage: SqliteStorage) -> None:
    store.add("alice", "same-password-123")
    store.add("bob", "same-password-123")
    raw = storage.get_meta(META_KEY)
    assert raw is not None
    assert "same-password-123" not in raw
    users = stored_doc(storage)["users"]
    hashes = [users["alice"]["password"], users["bob"]["password"]]
    assert hashes[0] != hashes[1]
    salts = []
    for h in hashes:
        m = HASH.fullmatch(h)
        assert m, h
        salt, digest = base64.b64decode(m.group(1)), base64.b64decode(m.group(2))
        assert len(salt) == 16 and len(digest) == 32
        salts.append(salt)
        expected = hashlib.scrypt(b"same-password-123", salt=salt, n=2**14, r=8, p=1, dklen=32)
        assert digest == expected
    assert salts[0] != salts[1]


def test_persists_across_reopen(db_path: Path) -> None:
    with SqliteStorage(db_path) as s:
        UserStore(s).add("alice", "pw-alice")
        UserStore(s).add_key("alice", ssh_key("alice@laptop"))
    with SqliteStorage(db_path) as s:
        again = UserStore(s)
        assert again.names() == ["alice"]
        assert again.verify("alice", "pw-alice")
        assert len(again.authorized_keys("alice")) == 1
        assert again.ensure_admin(None) is None  # users exist: no admin made
        assert again.names() == ["alice"]


def test_two_stores_on_one_database_do_not_lose_writes(db_path: Path) -> None:
    with SqliteStorage(db_path) as s1, SqliteStorage(db_path) as s2:
        UserStore(s1).add("alice", "a")
        UserStore(s2).add("bob", "b")
        UserStore(s1).add("carol", "c")
        assert UserStore(s2).names() == ["alice", "bob", "carol"]


def test_set_password_and_remove(store: UserStore) -> None:
    store.add("alice", "old")
    assert store.verify("alice", "old")  # now cached as verified
    store.set_password("alice", "new")
    assert not store.verify("alice", "old")  # the cache does not outlive the change
    assert store.verify("alice", "new")
    store.remove("alice")
    assert not store.verify("alice", "new")
    assert store.names() == []
    with pytest.raises(DataMissing):
        store.remove("alice")
    with pytest.raises(DataMissing):
        store.set_password("alice", "x")


def test_ensure_admin_with_env_password(store: UserStore) -> None:
    assert store.ensure_admin("from-the-environment") is None
    assert store.names() == [ADMIN]
    assert store.verify(ADMIN, "from-the-environment")
    assert store.ensure_admin("another") is None
    assert store.verify(ADMIN, "from-the-environment")


def test_ensure_admin_generates_and_returns_once(store: UserStore, storage: SqliteStorage) -> None:
    generated = store.ensure_admin(None)
    assert generated is not None and len(generated) >= 24
    assert store.verify(ADMIN, generated)
    assert generated not in (storage.get_meta(META_KEY) or "")
    assert store.ensure_admin(None) is None
    assert store.verify(ADMIN, generated)
    other = UserStore(storage)
    assert other.ensure_admin(None) is None


def test_ensure_admin_refuses_empty_env_password(store: UserStore) -> None:
    with pytest.raises(InvalidValue):
        store.ensure_admin("")
    assert store.names() == []


def test_generated_passwords_differ(tmp_path: Path) -> None:
    got = set()
    for i in range(3):
        with SqliteStorage(tmp_path / f"{i}.db") as s:
            got.add(UserStore(s).ensure_admin(None))
    assert len(got) == 3 and None not in got


def test_unknown_users_cost_a_hash_too(store: UserStore, scrypt_calls: list[int]) -> None:
    store.add("alice", "pw")
    users_module._dummy_hash()  # made once per process; not part of the measurement
    scrypt_calls.clear()
    assert not store.verify("alice", "wrong")
    assert len(scrypt_calls) == 1
    assert not store.verify("nobody", "wrong")
    assert len(scrypt_calls) == 2
    assert not store.verify("bad name!", "wrong")
    assert len(scrypt_calls) == 3


def test_unknown_user_takes_as_long_as_a_wrong_password(store: UserStore) -> None:
    store.add("alice", "pw")
    users_module._dummy_hash()

    def best_of(n: int, name: str) -> float:
        best = float("inf")
        for _ in range(n):
            start = time.perf_counter()
            assert not store.verify(name, "wrong")
            best = min(best, time.perf_counter() - start)
        return best

    known, unknown = best_of(3, "alice"), best_of(3, "nobody")
    assert known > 0.005  # a real scrypt hash, not a shortcut
    assert unknown >= known * 0.3


def test_unreadable_stored_hash_never_verifies(store: UserStore, storage: SqliteStorage) -> None:
    store.add("alice", "pw")
    doc = stored_doc(storage)
    for broken in ("plaintext", "scrypt$3$8$1$AAAA$AAAA", "scrypt$1073741824$8$1$AAAA$AAAA",
                   hash_password("pw").replace("$", "$x", 1)):
        doc["users"]["alice"]["password"] = broken
        storage.set_meta(META_KEY, json.dumps(doc))
        assert not UserStore(storage).verify("alice", "pw")
        assert not UserStore(storage).verify("alice", broken)


async def test_verify_async_off_the_loop_and_cached(
        store: UserStore, scrypt_calls: list[int]) -> None:
    store.add("alice", "pw")
    scrypt_calls.clear()
    assert await store.verify_async("alice", "pw")
    assert await store.verify_async("alice", "pw")
    assert len(scrypt_calls) == 1  # the second check hit the verified-credentials cache
    assert not await store.verify_async("alice", "nope")
    assert not await store.verify_async("ghost", "pw")
    assert len(scrypt_calls) == 3


def test_cache_can_be_disabled(storage: SqliteStorage, scrypt_calls: list[int]) -> None:
    store = UserStore(storage, cache_seconds=0)
    store.add("alice", "pw")
    scrypt_calls.clear()
    assert store.verify("alice", "pw") and store.verify("alice", "pw")
    assert len(scrypt_calls) == 2


def test_public_keys(store: UserStore) -> None:
    store.add("alice", "pw")
    assert store.authorized_keys("alice") == []
    key = ssh_key("alice@laptop")
    assert store.add_key("alice", "  " + key + "\n") == key
    assert store.authorized_keys("alice") == [key]
    with pytest.raises(DataExists):
        store.add_key("alice", key.rsplit(" ", 1)[0] + " other-comment")
    second = ssh_key()
    store.add_key("alice", second)
    assert store.authorized_keys("alice") == [key, second]
    store.remove_key("alice", key.rsplit(" ", 1)[0])
    assert store.authorized_keys("alice") == [second]
    with pytest.raises(DataMissing):
        store.remove_key("alice", key)
    with pytest.raises(DataMissing):
        store.authorized_keys("bob")
    with pytest.raises(DataMissing):
        store.add_key("bob", key)


@pytest.mark.parametrize("line", [
    "", "ssh-ed25519", "ssh-ed25519 not-base64!", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA",
    'command="rm -rf /" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5', "ssh-rsa AAAAB3NzaC1yc2E=",
])
def test_bad_public_keys_refused(store: UserStore, line: str) -> None:
    store.add("alice", "pw")
    with pytest.raises(InvalidValue):
        store.add_key("alice", line)
    assert store.authorized_keys("alice") == []
