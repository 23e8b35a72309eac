"""NETCONF front end (RFC 6241 over SSH, RFC 6242): messages, filters, operations,
the protocol entry point, monitoring and the SSH server (framing is nfo.wire.framing)."""

__all__: list[str] = []
