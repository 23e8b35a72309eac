"""The SSH floor of bench/bench_netconf_read.py: an asyncssh server whose ``netconf``
subsystem says hello and answers every framed message with the same fixed reply.

Run as ``python bench/_echo_netconf.py REPLY_FILE PASSWORD HOST_KEY_FILE``: listens on a
free port of 127.0.0.1 (printed on the first line of stdout), user ``admin`` with that
password; the reply file holds a whole framed reply (NETCONF 1.1 chunks).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncssh

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
HELLO = (f'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="{NC}"><capabilities>'
         "<capability>urn:ietf:params:netconf:base:1.1</capability></capabilities>"
         "<session-id>1</session-id></hello>]]>]]>").encode()


class Echo(asyncssh.SSHServer):
    def __init__(self, password: str, reply: bytes) -> None:
        self.password = password
        self.reply = reply

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        return session(self.reply)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == "admin" and password == self.password


def session(reply: bytes) -> asyncssh.SSHServerSession[bytes]:
    class Session(asyncssh.SSHServerSession[bytes]):
        def __init__(self) -> None:
            self.chan: asyncssh.SSHServerChannel[bytes] | None = None
            self.buf = b""
            self.hello = False

        def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
            self.chan = chan

        def subsystem_requested(self, subsystem: str) -> bool:
            return subsystem == "netconf"

        def session_started(self) -> None:
            assert self.chan is not None
            self.chan.write(HELLO)

        def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
            assert self.chan is not None
            self.buf += data
            if not self.hello:
                if b"]]>]]>" not in self.buf:
                    return
                self.buf = self.buf.split(b"]]>]]>", 1)[1]
                self.hello = True
            while b"\n##\n" in self.buf:
                self.buf = self.buf.split(b"\n##\n", 1)[1]
                self.chan.write(reply)

    return Session()


async def main() -> None:
    reply = Path(sys.argv[1]).read_bytes()
    password = sys.argv[2]
    key_file = Path(sys.argv[3])
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(key_file)
    server = await asyncssh.create_server(
        lambda: Echo(password, reply), "127.0.0.1", 0, server_host_keys=[str(key_file)],
        encoding=None)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
