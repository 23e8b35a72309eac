"""Calls handed from one replica to another through etcd (``EtcdStorage.ask`` and
``answer``): answered by the replica answering their kind, many at once, waiting ones
taken up by a replica that starts answering later, and a clear error when nobody
answers; no key is left behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from nfo.datastore.storage.etcd import EtcdStorage
from nfo.errors import OperationFailed
from tests.etcd.cluster import EtcdCluster

pytestmark = pytest.mark.etcd


@pytest.fixture
async def pair(etcd_shared: EtcdCluster) -> AsyncIterator[tuple[EtcdStorage, EtcdStorage]]:
    """Replicas ``a`` and ``b`` on a prefix of their own, following it."""
    eps, prefix = etcd_shared.endpoints, f"/h/{uuid.uuid4().hex}/"
    with EtcdStorage(eps, prefix=prefix, replica="a") as a, \
            EtcdStorage(eps, prefix=prefix, replica="b") as b:
        a.follow(lambda _: None)
        b.follow(lambda _: None)
        yield a, b


def asks_left(st: EtcdStorage) -> list[str]:
    kvs, _ = st._io.run(lambda c: c.read_prefix(st.prefix))
    return [k for kv in kvs if (k := kv.key[len(st.prefix):].decode()).startswith(
        ("ask/", "answer/"))]


async def shout(body: str) -> str:
    await asyncio.sleep(0.01)
    return body.upper()


async def test_asks_are_answered_by_the_replica_answering_their_kind(
        pair: tuple[EtcdStorage, EtcdStorage]) -> None:
    a, b = pair
    await a.answer("rpc", shout)
    assert await b.ask("rpc", "hello", 10) == "HELLO"
    many = await asyncio.gather(*(b.ask("rpc", f"call {k}", 10) for k in range(30)))
    assert many == [f"CALL {k}" for k in range(30)]
    assert asks_left(a) == []
    # another kind, which nobody answers: a clear error, and nothing left behind
    with pytest.raises(OperationFailed) as e:
        await b.ask("other", "anyone?", 0.5)
    assert e.value.app_tag == "nfo-no-answer"
    assert asks_left(a) == []


async def test_an_ask_waiting_is_taken_up_by_the_next_replica_to_answer(
        pair: tuple[EtcdStorage, EtcdStorage]) -> None:
    a, b = pair
    waiting = asyncio.ensure_future(b.ask("rpc", "still there?", 10))
    await asyncio.sleep(0.5)  # asked while nobody answers
    assert not waiting.done()
    await a.answer("rpc", shout)
    assert await waiting == "STILL THERE?"
    await a.answer("rpc", None)  # and once it stops answering, nobody does
    with pytest.raises(OperationFailed):
        await b.ask("rpc", "and now?", 0.5)
    assert asks_left(a) == []


async def test_a_key_that_is_no_ask_is_ignored(pair: tuple[EtcdStorage, EtcdStorage]) -> None:
    a, b = pair
    seen: list[str] = []

    async def note(body: str) -> str:
        seen.append(body)
        return "ok"

    # keys of every wrong shape, waiting before it answers and arriving after
    odd = [b"ask/rpc", b"ask/rpc/x", b"ask/rpc/x/y/z", b"ask/rpc/\xff/1", b"answer/b",
           b"answer/b/c/d"]
    for key in odd[:4]:
        a._io.run(lambda c, k=a.prefix + key: c.put(k, b"{}"))
    await a.answer("rpc", note)
    for junk in (b"not json", b'{"body": "no lease"}', b"[1, 2]"):
        key = a.prefix + b"ask/rpc/x/" + junk[:3].hex().encode()
        a._io.run(lambda c, k=key, v=junk: c.put(k, v))
    for key in odd:
        a._io.run(lambda c, k=a.prefix + key: c.put(k, b"\xff"))
    assert await b.ask("rpc", "real", 10) == "ok"
    assert seen == ["real"]
