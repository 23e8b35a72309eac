"""The Python client of nfo: RESTCONF over httpx, synchronous and asyncio.

    from nfo.client import Client
    with Client(url="http://127.0.0.1:8080", user="admin", password="...") as nfo:
        nfo.create_instance("echo-1", "udp-echo", parameters={"port": 40001})
        nfo.wait("echo-1", "running", timeout=60)

Settings not given come from the environment and the configuration file
(:mod:`nfo.client.config`); data goes in as RFC 7951 dicts or nfo.bindings objects and
comes out as dicts; failures raise :mod:`nfo.client.errors`.
"""

from nfo.client.api import CONFIG_ACTIONS, FINAL_STATES, AsyncClient, Client, Watch, reached
from nfo.client.calls import Page
from nfo.client.config import ClientConfig
from nfo.client.errors import (
    AuthenticationFailed,
    ClientError,
    Conflict,
    InvalidData,
    NotFound,
    OutOfRange,
    RequestFailed,
    Unreachable,
    WaitFailed,
    WaitTimeout,
)

__all__ = [
    "CONFIG_ACTIONS",
    "FINAL_STATES",
    "AsyncClient",
    "AuthenticationFailed",
    "Client",
    "ClientConfig",
    "ClientError",
    "Conflict",
    "InvalidData",
    "NotFound",
    "OutOfRange",
    "Page",
    "RequestFailed",
    "Unreachable",
    "WaitFailed",
    "WaitTimeout",
    "Watch",
    "reached",
]
