"""An ML2 mechanism driver for an agentless test Neutron: it binds every port.

There are no L2 agents in nfo's local OpenStack, so no stock mechanism driver would bind a
port and Nova would see ``binding_failed``. This driver binds the first segment offered, on
any host, with VIF type ``other`` and marks the port ACTIVE (Nova's fake compute driver
plugs nothing).
"""

from __future__ import annotations

from typing import Any

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindAllMechanismDriver(api.MechanismDriver):  # type: ignore[misc]
    """Bind any port on any host to its first segment."""

    def initialize(self) -> None:
        pass

    @property
    def connectivity(self) -> str:
        return str(portbindings.CONNECTIVITY_L2)

    def bind_port(self, context: Any) -> None:
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OTHER,
                {portbindings.CAP_PORT_FILTER: False},
                status=constants.PORT_STATUS_ACTIVE,
            )
            return
