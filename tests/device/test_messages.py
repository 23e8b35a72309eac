"""The reply checker and the error classification on canned messages (no socket)."""

from __future__ import annotations

import pytest

from nfo.device import DeviceError
from nfo.device.messages import check_reply, parse_hello, parse_message, rpc_message

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def reply(*errors: str, mid: str = "1") -> bytes:
    return f'<rpc-reply xmlns="{NC}" message-id="{mid}">{"".join(errors)}</rpc-reply>'.encode()


def rpc_error(tag: str, severity: str = "error", **fields: str) -> str:
    extra = "".join(f"<error-{k.replace('_', '-')}>{v}</error-{k.replace('_', '-')}>"
                    for k, v in fields.items())
    return (f"<rpc-error><error-type>application</error-type><error-tag>{tag}</error-tag>"
            f"<error-severity>{severity}</error-severity>{extra}</rpc-error>")


def checked(message: bytes) -> DeviceError:
    with pytest.raises(DeviceError) as err:
        check_reply(parse_message(message), "edit-config")
    return err.value


def test_ok_passes_and_warnings_alone_pass() -> None:
    assert check_reply(parse_message(reply("<ok/>")), "lock").name == "rpc-reply"
    assert check_reply(parse_message(reply(rpc_error("operation-failed", "warning"))), "x")


@pytest.mark.parametrize(("tag", "temporary"), [
    ("in-use", True), ("lock-denied", True), ("resource-denied", True),
    ("invalid-value", False), ("data-missing", False), ("access-denied", False),
    ("operation-failed", False), ("malformed-message", False),
])
def test_rpc_errors_are_classified_by_their_first_tag(tag: str, temporary: bool) -> None:
    err = checked(reply(rpc_error(tag)))
    assert (err.kind, err.tag, err.temporary) == ("rpc", tag, temporary)


def test_every_rpc_error_is_kept_and_the_first_one_described() -> None:
    first = rpc_error("invalid-value", path="/r:a/r:b", message="value\n  not in range",
                      app_tag="not-in-range")
    err = checked(reply(first, rpc_error("data-missing", "warning"), rpc_error("in-use")))
    assert (err.tag, err.path, err.app_tag) == ("invalid-value", "/r:a/r:b", "not-in-range")
    assert [e["tag"] for e in err.errors] == ["invalid-value", "data-missing", "in-use"]
    assert err.errors[0] == {"type": "application", "tag": "invalid-value",
                             "severity": "error", "app-tag": "not-in-range",
                             "path": "/r:a/r:b", "message": "value\n  not in range"}
    assert err.reason == ("edit-config refused by the device: invalid-value at /r:a/r:b: "
                          "value not in range (and 2 more)")
    assert not err.temporary  # the first error decides


def test_a_message_that_is_no_reply_is_a_protocol_error() -> None:
    err = checked(f'<notification xmlns="{NC}"/>'.encode())
    assert (err.kind, err.temporary) == ("protocol", False)


@pytest.mark.parametrize("message", [
    b"<rpc-reply", b"<?xml version='1.0' encoding='UTF-16'?><rpc-reply/>",
    b'<!DOCTYPE r [<!ENTITY big "x">]><r>&big;</r>', b"\xff\xfe<\x00r\x00/\x00>\x00",
])
def test_unacceptable_xml_is_a_protocol_error(message: bytes) -> None:
    with pytest.raises(DeviceError) as err:
        parse_message(message)
    assert err.value.kind == "protocol"


def test_hello_gives_capabilities_and_session_id() -> None:
    h = parse_hello(parse_message(
        f'<hello xmlns="{NC}"><capabilities><capability> urn:ietf:params:netconf:base:1.1 '
        "</capability><capability>urn:x?module=x</capability></capabilities>"
        "<session-id>42</session-id></hello>".encode()))
    assert h.session_id == 42
    assert h.capabilities == {"urn:ietf:params:netconf:base:1.1", "urn:x?module=x"}


def test_the_rpc_envelope_escapes_the_message_id() -> None:
    assert b'message-id="a&quot;b"' in rpc_message('a"b', "<get/>")


def test_device_error_refuses_unknown_kinds_and_keeps_one_line() -> None:
    with pytest.raises(ValueError):
        DeviceError("weird", "x")
    e = DeviceError("protocol", "a\nb " + "c" * 1000)
    assert "\n" not in str(e) and len(str(e)) <= 400
    assert repr(e).startswith("DeviceError(kind='protocol', temporary=False")
