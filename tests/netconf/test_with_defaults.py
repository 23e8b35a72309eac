"""RFC 6243 with-defaults over NETCONF: the four modes on get-config, get and get-data."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

from nfo.netconf.messages import NC_NS, NMDA_NS
from nfo.netconf.server import NetconfServer

from .test_interop import closed, nc, server  # noqa: F401

T = "urn:nfo:test"
WD = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
WD_ATTR = "{urn:ietf:params:xml:ns:netconf:default:1.0}default"
FILTER = f'<filter type="subtree"><top xmlns="{T}"/></filter>'


def rpc(op: str, mode: str | None) -> str:
    wd = f'<with-defaults xmlns="{WD}">{mode}</with-defaults>' if mode else ""
    if op == "get-data":
        return (f'<get-data xmlns="{NMDA_NS}" xmlns:ds="urn:ietf:params:xml:ns:yang:'
                f'ietf-datastores"><datastore>ds:running</datastore><subtree-filter>'
                f'<top xmlns="{T}"/></subtree-filter>{wd}</get-data>')
    source = "<source><running/></source>" if op == "get-config" else ""
    return f'<{op} xmlns="{NC_NS}">{source}{FILTER}{wd}</{op}>'


async def counts(m: Any, op: str, mode: str | None) -> list[tuple[str, bool]]:
    """(value, tagged as default) of every <count> (default 7) and <level> (default 1)."""
    r = await asyncio.to_thread(m.dispatch, to_ele(rpc(op, mode)))
    root = ET.fromstring(r.xml.encode())
    return [(str(e.text), e.get(WD_ATTR) == "true")
            for e in root.iter() if e.tag in (f"{{{T}}}count", f"{{{T}}}level")]


@pytest.mark.parametrize("op", ["get-config", "get", "get-data"])
async def test_four_modes(server: NetconfServer, op: str) -> None:  # noqa: F811
    s = server.ds.internal_session("seed")
    # count is left at its default; extra/level is set explicitly to its default value
    await s.edit("running", '{"nfo-test:top": {"name": "a", "extra": {"level": 1}}}', "json")
    await s.close()
    m = await nc(server)
    try:
        # explicit (the basic mode): what was set, even if equal to the default
        assert await counts(m, op, None) == [("1", False)]
        assert await counts(m, op, "explicit") == [("1", False)]
        # report-all: defaults too, untagged
        assert sorted(await counts(m, op, "report-all")) == [("1", False), ("7", False)]
        # report-all-tagged: every node holding its default value is tagged
        assert sorted(await counts(m, op, "report-all-tagged")) == [("1", True), ("7", True)]
        # trim: nothing equal to its default
        assert await counts(m, op, "trim") == []
        with pytest.raises(RPCError) as ei:
            await counts(m, op, "everything")
        assert ei.value.tag == "invalid-value"
    finally:
        await closed(m)
