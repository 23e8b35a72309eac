"""RFC 6242 framing: end-of-message and chunked, incremental, with a size cap."""

from __future__ import annotations

import pytest

from nfo.wire.framing import Decoder, FramingError, encode_chunked, encode_eom


def test_eom_roundtrip_byte_by_byte() -> None:
    d = Decoder()
    data = encode_eom(b"<a/>") + encode_eom(b"<b/>")
    out: list[bytes] = []
    for i in range(len(data)):
        out += d.feed_all(data[i:i + 1])
    assert out == [b"<a/>", b"<b/>"]


def test_chunked_roundtrip_split_everywhere() -> None:
    msg = b"<rpc>" + b"x" * 100 + b"</rpc>"
    data = encode_chunked(msg, chunk_size=7) + encode_chunked(b"<z/>")
    for step in (1, 2, 3, 5, 13, len(data)):
        d = Decoder()
        d.chunked = True
        out: list[bytes] = []
        for i in range(0, len(data), step):
            out += d.feed_all(data[i:i + step])
        assert out == [msg, b"<z/>"]


def test_whole_one_chunk_messages_read_as_split_ones() -> None:
    msgs = [b"<rpc/>", b"<a>" + b"y" * 300 + b"</a>", b"\n##\n", b"<b>\n#3\n</b>"]
    data = b"".join(encode_chunked(m) for m in msgs) + b"\n#2\nab\n#1\nc\n##\n"
    for step in (1, 4, 7, len(data)):
        d = Decoder()
        d.chunked = True
        out: list[bytes] = []
        for i in range(0, len(data), step):
            out += d.feed_all(data[i:i + step])
        assert out == [*msgs, b"abc"] and not d.partial
    d = Decoder(max_size=5)
    d.chunked = True
    with pytest.raises(FramingError):  # the cap holds for a whole chunk too
        d.feed_all(encode_chunked(b"<rpc/>"))
    d = Decoder()
    d.chunked = True
    with pytest.raises(FramingError):  # a whole chunk followed by a bad header
        d.feed_all(b"\n#2\nab\n#x\n")


def test_rfc_6242_example() -> None:
    d = Decoder()
    d.chunked = True
    assert d.feed_all(b"\n#4\n<rpc\n#18\n message-id=\"102\"\n\n##\n") == [
        b'<rpc message-id="102"\n']


def test_switch_to_chunked_after_first_message() -> None:
    d = Decoder()
    d.feed(encode_eom(b"<hello/>") + encode_chunked(b"<rpc/>"))
    assert d.next() == b"<hello/>"
    d.chunked = True
    assert d.next() == b"<rpc/>"
    assert d.next() is None


@pytest.mark.parametrize("bad", [b"\n#0\n", b"\n#01\n", b"#4\n", b"\n#x", b"\n\n", b"\n##\n",
                                 b"\n#99999999999\n", b"abcd"])
def test_bad_chunk_headers(bad: bytes) -> None:
    d = Decoder()
    d.chunked = True
    with pytest.raises(FramingError):
        d.feed_all(bad)


def test_chunk_cap_before_buffering() -> None:
    d = Decoder(max_size=100)
    d.chunked = True
    with pytest.raises(FramingError):
        d.feed_all(b"\n#101\n")  # refused on the header, before any data
    d = Decoder(max_size=100)
    d.chunked = True
    d.feed_all(b"\n#60\n" + b"a" * 60)
    with pytest.raises(FramingError):
        d.feed_all(b"\n#41\n")


def test_eom_cap() -> None:
    d = Decoder(max_size=100)
    assert d.feed_all(b"a" * 100 + b"]]>]]>") == [b"a" * 100]
    d = Decoder(max_size=100)
    with pytest.raises(FramingError):
        d.feed_all(b"a" * 106)
    d = Decoder(max_size=100)
    d.feed_all(b"a" * 100)
    with pytest.raises(FramingError):  # the undrained buffer is refused too
        for _ in range(3):
            d.feed(b"a" * 100)
            d.next()


def test_encode_chunked_splits() -> None:
    assert encode_chunked(b"abcde", chunk_size=2) == b"\n#2\nab\n#2\ncd\n#1\ne\n##\n"
    with pytest.raises(ValueError):
        encode_chunked(b"")
