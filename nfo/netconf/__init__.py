"""NETCONF front end (RFC 6241 over SSH, RFC 6242): framing, operations, the SSH server."""
