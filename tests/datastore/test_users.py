"""The user store: accounts as nfo-users data in a real datastore; hashes, checks,
persistence, groups, the admin bootstrap and the import of the older user document."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from nfo.datastore import Datastore, Identity, SqliteStorage
from nfo.datastore import users as users_module
from nfo.datastore.users import ADMIN, META_KEY, UserStore, hash_password
from nfo.errors import AccessDenied, DataExists, DataMissing, InvalidValue
from nfo.schema import Fmt, Schema

HASH = re.compile(r"scrypt\$16384\$8\$1\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})")


@pytest.fixture
def store(ds: Datastore) -> UserStore:
    return UserStore(ds)


def running(ds: Datastore) -> dict[str, Any]:
    with ds.get("running") as t:
        doc: dict[str, Any] = json.loads(t.print(Fmt.JSON))
    return doc


def hashes(ds: Datastore) -> dict[str, str]:
    return {u["name"]: u.get("password") for u in running(ds)["nfo-users:users"]["user"]}


def ssh_key(comment: str = "") -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{public} {comment}".strip()


async def test_add_and_verify(store: UserStore) -> None:
    await store.add("alice", "correct horse battery staple")
    await store.add("bob.ops-1_x", "s3cret-bob")
    assert store.names() == ["alice", "bob.ops-1_x"]
    assert store.verify("alice", "correct horse battery staple")
    assert not store.verify("alice", "correct horse battery stapl")
    assert not store.verify("alice", "")
    assert not store.verify("bob.ops-1_x", "correct horse battery staple")
    assert not store.verify("carol", "s3cret-bob")
    assert not store.verify("not a valid name!", "s3cret-bob")
    assert store.exists("alice") and "alice" in store and "carol" not in store


async def test_unicode_passwords_are_normalised(store: UserStore) -> None:
    await store.add("alice", "caf\u00e9 au lait")  # precomposed
    assert store.verify("alice", "cafe\u0301 au lait")  # decomposed: the same text


async def test_duplicates_refused(store: UserStore) -> None:
    await store.add("alice", "first-password")
    with pytest.raises(DataExists):
        await store.add("alice", "second-password")
    assert store.verify("alice", "first-password")


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "caf\u00e9", "a/b", "a:b", "a\n", "a\x00",
                                  "a']/x[name='b"])
async def test_bad_names_refused(store: UserStore, name: str) -> None:
    with pytest.raises(InvalidValue):
        await store.add(name, "password")
    assert store.names() == []


@pytest.mark.parametrize("password", ["", "   ", "\t\n", " " * 8, "x", "seven-7",
                                      "cafe\u0301-xy", "x" * 1025, "a\x00bcdefgh"])
async def test_weak_passwords_refused(store: UserStore, password: str) -> None:
    with pytest.raises(InvalidValue) as info:
        await store.add("alice", password)
    assert info.value.app_tag == "nfo-weak-password"
    if 0 < len(password.strip()) < 8:
        assert "at least 8 characters" in info.value.message
    assert store.names() == []
    await store.add("alice", "good-password")
    with pytest.raises(InvalidValue):
        await store.set_password("alice", password)
    assert store.verify("alice", "good-password")


async def test_eight_characters_are_enough(store: UserStore) -> None:
    assert users_module.MIN_PASSWORD == 8
    await store.add("alice", "eight-88")
    await store.add("bob", "caf\u00e9-xyz")  # 8 characters, 9 bytes of UTF-8
    assert store.verify("alice", "eight-88") and store.verify("bob", "caf\u00e9-xyz")


async def test_short_admin_password_from_the_environment_refused(store: UserStore) -> None:
    with pytest.raises(InvalidValue) as info:
        await store.ensure_admin("s3cr3t")
    assert info.value.message == "NFO_ADMIN_PASSWORD must be at least 8 characters long"
    assert store.names() == []


async def test_longest_name_accepted(store: UserStore) -> None:
    await store.add("n" * 64, "pw-alice-1")
    assert store.verify("n" * 64, "pw-alice-1")


async def test_hashes_are_salted_scrypt_without_plaintext(
        store: UserStore, ds: Datastore, stored_bytes: Callable[[], Awaitable[bytes]]) -> None:
    await store.add("alice", "same-password-123")
    await store.add("bob", "same-password-123")
    assert b"same-password-123" not in await stored_bytes()
    got = hashes(ds)
    pair = [got["alice"], got["bob"]]
    assert pair[0] != pair[1]
    salts = []
    for h in pair:
        m = HASH.fullmatch(h)
        assert m, h
        salt, digest = base64.b64decode(m.group(1)), base64.b64decode(m.group(2))
        assert len(salt) == 16 and len(digest) == 32
        salts.append(salt)
        expected = hashlib.scrypt(b"same-password-123", salt=salt, n=2**14, r=8, p=1, dklen=32)
        assert digest == expected
    assert salts[0] != salts[1]


async def test_persists_across_reopen(schema: Schema, db_path: Path) -> None:
    ds = Datastore.open(schema, SqliteStorage(db_path))
    await ds.start()
    await UserStore(ds).add("alice", "pw-alice-1", groups=["ops"])
    await UserStore(ds).add_key("alice", ssh_key("alice@laptop"))
    await ds.close()
    ds = Datastore.open(schema, SqliteStorage(db_path))
    await ds.start()
    try:
        again = UserStore(ds)
        assert again.names() == ["alice"]
        assert again.verify("alice", "pw-alice-1")
        assert len(again.authorized_keys("alice")) == 1
        assert again.groups_of("alice") == ["ops"]
        assert await again.ensure_admin(None) is None  # users exist: no admin made
        assert again.names() == ["alice"]
    finally:
        await ds.close()


async def test_set_password_and_remove(store: UserStore) -> None:
    await store.add("alice", "old-password", groups=["ops", "noc"])
    assert store.verify("alice", "old-password")  # now cached as verified
    await store.set_password("alice", "new-password")
    assert not store.verify("alice", "old-password")  # the cache does not outlive the change
    assert store.verify("alice", "new-password")
    assert store.groups_of("alice") == ["noc", "ops"]
    await store.remove("alice")
    assert not store.verify("alice", "new-password")
    assert store.names() == []
    assert store.groups_of("alice") == []
    with pytest.raises(DataMissing):
        await store.remove("alice")
    with pytest.raises(DataMissing):
        await store.set_password("alice", "x-password")


async def test_disabled_account_cannot_log_in(store: UserStore, scrypt_calls: list[int]) -> None:
    await store.add("alice", "pw-alice-1")
    await store.add_key("alice", ssh_key())
    assert store.verify("alice", "pw-alice-1")  # cached
    await store.set_enabled("alice", False)
    assert not store.enabled("alice") and store.exists("alice")
    scrypt_calls.clear()
    assert not store.verify("alice", "pw-alice-1")
    assert len(scrypt_calls) == 1  # as costly as an unknown user: not a shortcut
    assert store.authorized_keys("alice") == []
    await store.set_enabled("alice", True)
    assert store.verify("alice", "pw-alice-1")


async def test_ensure_admin_with_env_password(store: UserStore, ds: Datastore) -> None:
    assert await store.ensure_admin("from-the-environment") is None
    assert store.names() == [ADMIN]
    assert store.verify(ADMIN, "from-the-environment")
    assert store.groups_of(ADMIN) == [ADMIN]
    rule_lists = running(ds)["ietf-netconf-acm:nacm"]["rule-list"]
    assert [r["name"] for r in rule_lists] == [ADMIN]
    assert rule_lists[0]["rule"][0]["action"] == "permit"
    assert await store.ensure_admin("another") is None
    assert store.verify(ADMIN, "from-the-environment")


async def test_ensure_admin_generates_and_returns_once(
        store: UserStore, ds: Datastore, stored_bytes: Callable[[], Awaitable[bytes]]) -> None:
    generated = await store.ensure_admin(None)
    assert generated is not None and len(generated) >= 24
    assert store.verify(ADMIN, generated)
    assert generated.encode() not in await stored_bytes()
    assert await store.ensure_admin(None) is None
    assert store.verify(ADMIN, generated)
    assert await UserStore(ds).ensure_admin(None) is None


async def test_ensure_admin_refuses_empty_env_password(store: UserStore) -> None:
    with pytest.raises(InvalidValue):
        await store.ensure_admin("")
    assert store.names() == []


async def test_accounts_of_an_older_state_are_imported(ds: Datastore) -> None:
    key = ssh_key("bob@desk")
    ds.storage.set_meta(META_KEY, json.dumps({"format": 1, "users": {
        "alice": {"password": hash_password("pw-a"), "keys": []},
        "bob": {"password": hash_password("pw-b"), "keys": [key]}}}))
    store = UserStore(ds)
    assert await store.ensure_admin(None) is None
    assert store.names() == ["alice", "bob"]
    assert store.verify("alice", "pw-a") and store.verify("bob", "pw-b")
    assert store.authorized_keys("bob") == [key]
    assert store.groups_of("alice") == store.groups_of("bob") == [ADMIN]
    assert not ds.storage.get_meta(META_KEY)


async def test_generated_passwords_differ(schema: Schema, tmp_path: Path) -> None:
    got = set()
    for i in range(3):
        ds = Datastore.open(schema, SqliteStorage(tmp_path / f"{i}.db"))
        await ds.start()
        got.add(await UserStore(ds).ensure_admin(None))
        await ds.close()
    assert len(got) == 3 and None not in got


async def test_unknown_users_cost_a_hash_too(store: UserStore, scrypt_calls: list[int]) -> None:
    await store.add("alice", "pw-alice-1")
    users_module._dummy_hash()  # made once per process; not part of the measurement
    scrypt_calls.clear()
    assert not store.verify("alice", "wrong-password")
    assert len(scrypt_calls) == 1
    assert not store.verify("nobody", "wrong-password")
    assert len(scrypt_calls) == 2
    assert not store.verify("bad name!", "wrong-password")
    assert len(scrypt_calls) == 3


async def test_unknown_user_takes_as_long_as_a_wrong_password(store: UserStore) -> None:
    await store.add("alice", "pw-alice-1")
    users_module._dummy_hash()

    def best_of(n: int, name: str) -> float:
        best = float("inf")
        for _ in range(n):
            start = time.perf_counter()
            assert not store.verify(name, "wrong-password")
            best = min(best, time.perf_counter() - start)
        return best

    known, unknown = best_of(3, "alice"), best_of(3, "nobody")
    assert known > 0.005  # a real scrypt hash, not a shortcut
    assert unknown >= known * 0.3


async def test_unreadable_stored_hash_never_verifies(store: UserStore, ds: Datastore) -> None:
    await store.add("alice", "pw-alice-1")
    for broken in ("scrypt$3$8$1$AAAA$AAAA", "scrypt$2097152$8$1$AAAA$AAAA",
                   hash_password("pw-alice-1").replace("$8$", "$9$", 1)):
        async with ds.internal_session("t") as s:
            await s.edit("running", json.dumps({"nfo-users:users": {"user": [
                {"name": "alice", "password": broken}]}}), "json")
        assert not UserStore(ds).verify("alice", "pw-alice-1")
        assert not UserStore(ds).verify("alice", broken)


async def test_verify_async_off_the_loop_and_cached(
        ds: Datastore, scrypt_calls: list[int]) -> None:
    await UserStore(ds).add("alice", "pw-alice-1")
    store = UserStore(ds)  # nothing remembered yet
    scrypt_calls.clear()
    assert await store.verify_async("alice", "pw-alice-1")
    assert await store.verify_async("alice", "pw-alice-1")
    assert len(scrypt_calls) == 1  # the second check hit the verified-credentials cache
    assert not await store.verify_async("alice", "nope-nope")
    assert not await store.verify_async("ghost", "pw-alice-1")
    assert len(scrypt_calls) == 3


async def test_cache_can_be_disabled(ds: Datastore, scrypt_calls: list[int]) -> None:
    store = UserStore(ds, cache_seconds=0)
    await store.add("alice", "pw-alice-1")
    scrypt_calls.clear()
    assert store.verify("alice", "pw-alice-1") and store.verify("alice", "pw-alice-1")
    assert len(scrypt_calls) == 2


async def test_public_keys(store: UserStore) -> None:
    await store.add("alice", "pw-alice-1")
    assert store.authorized_keys("alice") == []
    key = ssh_key("alice@laptop")
    assert await store.add_key("alice", "  " + key + "\n") == key
    assert store.authorized_keys("alice") == [key]
    with pytest.raises(DataExists):
        await store.add_key("alice", key.rsplit(" ", 1)[0] + " other-comment")
    second = ssh_key()
    await store.add_key("alice", second)
    assert sorted(store.authorized_keys("alice")) == sorted([key, second])
    await store.remove_key("alice", key.rsplit(" ", 1)[0])
    assert store.authorized_keys("alice") == [second]
    with pytest.raises(DataMissing):
        await store.remove_key("alice", key)
    with pytest.raises(DataMissing):
        store.authorized_keys("bob")
    with pytest.raises(DataMissing):
        await store.add_key("bob", key)


@pytest.mark.parametrize("line", [
    "", "ssh-ed25519", "ssh-ed25519 not-base64!", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA",
    'command="rm -rf /" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5', "ssh-rsa AAAAB3NzaC1yc2E=",
])
async def test_bad_public_keys_refused(store: UserStore, line: str) -> None:
    await store.add("alice", "pw-alice-1")
    with pytest.raises(InvalidValue):
        await store.add_key("alice", line)
    assert store.authorized_keys("alice") == []


async def test_set_password_action_is_access_controlled(store: UserStore, ds: Datastore) -> None:
    await store.ensure_admin("admin-pw-1")
    await store.add("alice", "old-password")
    store.register()
    action = json.dumps({"nfo-users:users": {"user": [{"name": "alice", "set-password": {
        "password": "changed-by-admin"}}]}})
    try:
        async with ds.session("alice") as s:
            with pytest.raises(AccessDenied):  # default-deny-all: only a rule allows it
                await s.rpc(action, "json")
        assert store.verify("alice", "old-password")
        async with ds.session(ADMIN) as s:
            (await s.rpc(action, "json")).free()
        assert store.verify("alice", "changed-by-admin")
        # and the hash is never read back, not even by the administrator
        with ds.get("running", who=Identity(ADMIN)) as t:
            users = json.loads(t.print(Fmt.JSON))["nfo-users:users"]["user"]
        assert all("password" not in u for u in users)
        assert {u["name"] for u in users} == {ADMIN, "alice"}
    finally:
        store.unregister()
