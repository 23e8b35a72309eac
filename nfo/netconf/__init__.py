"""NETCONF front end (RFC 6241 over SSH, RFC 6242): framing, messages, filters, operations,
the protocol entry point, monitoring and the SSH server."""

__all__: list[str] = []
