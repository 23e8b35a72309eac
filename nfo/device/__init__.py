"""The southbound side: nfo as a NETCONF client of the network functions it configures.

:class:`Device` is one NETCONF session to a device (:mod:`.client`); every failure is a
:class:`DeviceError` (:mod:`.errors`) that says whether retrying may help.
"""

from nfo.device.client import MAX_REPLY, Device, Endpoint
from nfo.device.errors import DeviceError

__all__ = ["MAX_REPLY", "Device", "DeviceError", "Endpoint"]
