"""RFC 6242 message framing: end-of-message (``]]>]]>``) and chunked framing.

Pure code: :class:`Decoder` takes bytes as they arrive and hands out whole
messages; the size cap is enforced before anything beyond it is buffered, and
any violation raises :class:`FramingError` (the transport then closes the session;
:class:`MessageTooBig` carries the message's first bytes for the error reply).
Each byte is searched for the end-of-message marker once, however slowly a message
arrives.
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_MAX_MESSAGE", "EOM", "Decoder", "FramingError", "MessageTooBig", "encode",
           "encode_chunked", "encode_eom"]

EOM = b"]]>]]>"
DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024
MAX_CHUNK = 4294967295
_HEADER = re.compile(rb"\n#([1-9][0-9]{0,9})\n")
_HEADER_MAX = 13  # "\n#" + 10 digits + "\n"


class FramingError(Exception):
    """The peer broke the framing rules or the size cap: the session must close."""


class MessageTooBig(FramingError):
    """A message grew beyond the size cap; ``head`` is its beginning (up to 1 KiB)."""

    def __init__(self, limit: int, head: bytes) -> None:
        super().__init__(f"message exceeds the size limit of {limit} bytes")
        self.limit = limit
        self.head = head


def encode_eom(message: bytes) -> bytes:
    return message + EOM


def encode_chunked(message: bytes, chunk_size: int = 65536) -> bytes:
    if not message:
        raise ValueError("a chunked message cannot be empty")
    if len(message) <= chunk_size:
        return b"\n#%d\n%b\n##\n" % (len(message), message)
    parts = []
    for i in range(0, len(message), chunk_size):
        chunk = message[i:i + chunk_size]
        parts.append(b"\n#%d\n" % len(chunk))
        parts.append(chunk)
    parts.append(b"\n##\n")
    return b"".join(parts)


def encode(message: bytes, chunked: bool) -> bytes:
    return encode_chunked(message) if chunked else encode_eom(message)


class Decoder:
    """Incremental decoder; set :attr:`chunked` after the hello exchange (base:1.1).

    ``feed`` appends bytes; ``next`` returns the next whole message or None.
    Call ``next`` until it returns None after every ``feed``: then at most one
    partial message (bounded by ``max_size``) is held.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_size = max_size
        self.chunked = False
        self._raw = bytearray()
        self._msg = bytearray()   # chunked: data of the chunks seen so far
        self._left = 0            # chunked: bytes still due in the current chunk
        self._searched = 0        # end-of-message: bytes of _raw searched for EOM in vain

    @property
    def partial(self) -> bool:
        """Part of a message is buffered (not just white space between messages)."""
        if self.chunked:
            return bool(self._raw or self._msg or self._left)
        return bool(self._raw) and not self._raw.isspace()

    @property
    def buffered(self) -> int:
        return len(self._raw) + len(self._msg)

    def clear(self) -> None:
        """Drop whatever is buffered (the session is over)."""
        self._raw = bytearray()
        self._msg = bytearray()
        self._left = self._searched = 0

    def head(self) -> bytes:
        """The beginning (up to 1 KiB) of the message being received."""
        return bytes((self._msg or self._raw)[:1024]).lstrip()

    def _too_big(self) -> MessageTooBig:
        return MessageTooBig(self.max_size, self.head())

    def feed(self, data: bytes) -> None:
        # Whatever is unparsed must fit one message plus its framing overhead.
        if len(self._raw) > self.max_size + max(len(EOM), _HEADER_MAX) + 4:
            raise self._too_big()
        self._raw += data

    def feed_all(self, data: bytes) -> list[bytes]:
        """Feed and return every message completed (no framing change in between)."""
        self.feed(data)
        out = []
        while (m := self.next()) is not None:
            out.append(m)
        return out

    def next(self) -> bytes | None:
        return self._next_chunked() if self.chunked else self._next_eom()

    def _next_eom(self) -> bytes | None:
        start = max(0, self._searched - len(EOM) + 1)
        end = self._raw.find(EOM, start, self.max_size + len(EOM))
        if end < 0:
            self._searched = len(self._raw)
            if len(self._raw) > self.max_size + len(EOM) - 1:
                raise self._too_big()
            return None
        msg = bytes(self._raw[:end])
        del self._raw[:end + len(EOM)]
        self._searched = 0
        return msg

    def _next_chunked(self) -> bytes | None:
        if not self._left and not self._msg:
            # a message in one chunk, all here: cut out at once
            m = _HEADER.match(self._raw)
            if m is not None:
                size = int(m.group(1))
                end = m.end() + size
                if (size <= min(self.max_size, MAX_CHUNK)
                        and self._raw[end:end + 4] == b"\n##\n"):
                    msg = bytes(self._raw[m.end():end])
                    del self._raw[:end + 4]
                    return msg
        while True:
            if self._left:
                take = min(self._left, len(self._raw))
                if not take:
                    return None
                self._msg += self._raw[:take]
                del self._raw[:take]
                self._left -= take
                continue
            if len(self._raw) < 4:
                head = bytes(self._raw)
                if not (b"\n#".startswith(head[:2]) and (len(head) < 3 or head[2:3] in
                                                         b"#123456789")):
                    raise FramingError("bad chunk header")
                return None
            if self._raw.startswith(b"\n##\n"):
                if not self._msg:
                    raise FramingError("end of chunks without a chunk")
                del self._raw[:4]
                msg = bytes(self._msg)
                self._msg = bytearray()
                return msg
            m = _HEADER.match(self._raw)
            if m is None:
                head = bytes(self._raw[:_HEADER_MAX])
                if (len(self._raw) >= _HEADER_MAX or not head.startswith(b"\n#")
                        or not re.fullmatch(rb"\n#[0-9]*", head) or head.startswith(b"\n#0")):
                    raise FramingError("bad chunk header")
                return None
            size = int(m.group(1))
            if size > MAX_CHUNK:
                raise FramingError("chunk size out of range")
            if len(self._msg) + size > self.max_size:
                raise self._too_big()
            del self._raw[:m.end()]
            self._left = size
