"""The client's session against a scripted device at the wire (tests/device/fake.py):
framing choice, timeouts, the reply cap, notifications, replies that are not replies."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from nfo.device import Device, DeviceError, Endpoint
from nfo.device import client as client_module
from nfo.wire import xml
from tests.device.fake import (
    BASE_1_0,
    NC,
    FakeDevice,
    fake_device,
    hello,
    message_id,
    ok,
)
from tests.waiting import wait_for


async def test_password_login_and_chunked_framing_when_both_say_1_1() -> None:
    fake = FakeDevice()
    async with fake_device(fake) as ep, await Device.connect(ep) as d:
        assert d.session_id == 7
        assert d.host_key.startswith("ssh-ed25519 ")
        await d.lock("running")
    assert fake.chunked is True
    assert b"<lock><target><running/></target></lock>" in fake.requests[0]
    assert b"<close-session/>" in fake.requests[-1]


async def test_end_of_message_framing_with_a_base_1_0_device() -> None:
    fake = FakeDevice(greeting=hello(BASE_1_0))
    async with fake_device(fake) as ep, await Device.connect(ep) as d:
        await d.discard_changes()
        assert not d.has_candidate
    assert fake.chunked is False


async def test_no_reply_in_time_is_a_timeout_and_a_late_reply_is_dropped() -> None:
    unanswered: list[bytes] = []

    def answer(request: bytes) -> bytes | list[bytes] | None:
        if b"<lock>" in request:
            unanswered.append(request)
            return None
        # the late reply to the lock first, then this request's own
        return [ok(r) for r in unanswered] + [ok(request)]

    async with (fake_device(FakeDevice(answer=answer)) as ep,
                await Device.connect(dataclasses.replace(ep, rpc_timeout=0.3)) as d):
        with pytest.raises(DeviceError) as err:
            await d.lock("candidate")
        assert (err.value.kind, err.value.temporary) == ("timeout", True)
        await d.unlock("candidate")


async def test_a_reply_over_the_cap_ends_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_REPLY", 4096)

    def answer(request: bytes) -> bytes:
        filler = "<x/>" * 2000
        return (f'<rpc-reply xmlns="{NC}" message-id="{message_id(request)}"><data>{filler}'
                "</data></rpc-reply>").encode()

    async with fake_device(FakeDevice(answer=answer)) as ep, await Device.connect(ep) as d:
        with pytest.raises(DeviceError) as err:
            await d.get_config()
        assert err.value.kind == "protocol" and not err.value.temporary
        assert "4096" in err.value.reason
        with pytest.raises(DeviceError) as again:
            await d.get_config()
        assert again.value.kind == "protocol"


async def test_notifications_are_skipped_and_data_keeps_its_namespaces() -> None:
    def answer(request: bytes) -> list[bytes]:
        note = (b'<notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">'
                b"<eventTime>2026-12-05T00:00:00Z</eventTime></notification>")
        reply = (f'<rpc-reply xmlns="{NC}" xmlns:r="urn:r" message-id="{message_id(request)}">'
                 '<data><r:a><r:b>1</r:b></r:a><c xmlns="urn:c"/></data></rpc-reply>').encode()
        return [note, reply]

    async with fake_device(FakeDevice(answer=answer)) as ep, await Device.connect(ep) as d:
        got = await d.get_config()
    top = xml.read(f"<w>{got}</w>".encode()).children  # each child parses alone
    assert [(e.ns, e.name) for e in top] == [("urn:r", "a"), ("urn:c", "c")]
    assert top[0].children[0].text == "1"


async def test_an_rpc_error_without_message_id_reaches_the_waiting_request() -> None:
    def answer(request: bytes) -> bytes:
        return (f'<rpc-reply xmlns="{NC}"><rpc-error><error-type>rpc</error-type>'
                "<error-tag>malformed-message</error-tag><error-severity>error"
                "</error-severity></rpc-error></rpc-reply>").encode()

    async with fake_device(FakeDevice(answer=answer)) as ep, await Device.connect(ep) as d:
        with pytest.raises(DeviceError) as err:
            await d.validate()
    assert (err.value.kind, err.value.tag) == ("rpc", "malformed-message")


@pytest.mark.parametrize("reply", [
    b"<rpc-reply xmlns='urn:ietf:params:xml:ns:netconf:base:1.0' message-id='1'><ok>",
    b'<!DOCTYPE x [<!ENTITY a "b">]><rpc-reply/>',
], ids=["not-well-formed", "doctype"])
async def test_a_reply_that_is_not_acceptable_xml_is_a_protocol_error(reply: bytes) -> None:
    async with (fake_device(FakeDevice(answer=lambda _: reply)) as ep,
                await Device.connect(ep) as d):
        with pytest.raises(DeviceError) as err:
            await d.commit()
    assert err.value.kind == "protocol" and not err.value.temporary


@pytest.mark.parametrize(("fake", "kind"), [
    (FakeDevice(greeting=b"<rpc-reply xmlns='urn:ietf:params:xml:ns:netconf:base:1.0'/>"),
     "protocol"),
    (FakeDevice(greeting=hello(BASE_1_0, session_id="none")), "protocol"),
    (FakeDevice(greeting=hello("urn:example:not-netconf")), "protocol"),
    (FakeDevice(raw=b"\n#zz\n"), "timeout"),  # a hello that never ends
], ids=["not-hello", "bad-session-id", "no-base", "garbage"])
async def test_a_bad_hello_fails_the_connection(fake: FakeDevice, kind: str) -> None:
    async with fake_device(fake) as ep:
        with pytest.raises(DeviceError) as err:
            await Device.connect(dataclasses.replace(ep, connect_timeout=1.0))
    assert err.value.kind == kind


async def test_a_device_that_hangs_up_is_a_temporary_connect_error() -> None:
    def answer(request: bytes) -> None:
        raise ConnectionError("the fake hangs up")

    async with fake_device(FakeDevice(answer=answer)) as ep, await Device.connect(ep) as d:
        with pytest.raises(DeviceError) as err:
            await d.lock("running")
    assert (err.value.kind, err.value.temporary) == ("connect", True)


async def test_close_with_a_request_in_flight_fails_it_at_once() -> None:
    fake = FakeDevice(answer=lambda _: None)
    async with fake_device(fake) as ep:
        d = await Device.connect(dataclasses.replace(ep, rpc_timeout=60))
        call = asyncio.create_task(d.lock("running"))
        await wait_for(lambda: fake.requests, 5, "the request to arrive")
        await d.close()
        with pytest.raises(DeviceError) as err:
            await call
    assert (err.value.kind, err.value.temporary) == ("connect", False)


def test_endpoint_repr_hides_the_secrets() -> None:
    ep = Endpoint("h", 830, "u", password="pw-secret", private_key="KEY-secret")
    assert "secret" not in repr(ep) and "secret" not in str(ep)
    assert "u" in repr(ep) and "830" in repr(ep)
