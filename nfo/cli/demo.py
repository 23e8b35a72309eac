"""What a first start seeds besides the local VIM and the udp-echo demo: the NETCONF demo
router (yuma123 netconfd behind a private sshd), with an SSH key pair made for this
installation, so that nothing secret ships with nfo and the entry works as it is."""

from __future__ import annotations

import getpass
import json
from importlib import resources
from typing import Any

import asyncssh

__all__ = ["router_descriptor"]

_PACKAGE = "nfo.drivers.local.netconf_device"


def router_descriptor() -> dict[str, Any]:
    """The demo router's catalog entry with a fresh key pair: the private half as the
    descriptor's NETCONF credential, the public half as the router's authorized key."""
    files = resources.files(_PACKAGE)
    desc: dict[str, Any] = json.loads(files.joinpath("descriptor.json").read_text())
    key = asyncssh.generate_private_key("ssh-ed25519", comment="nfo demo router")
    public = key.export_public_key().decode().strip()
    for p in desc["parameter"]:
        if p["name"] == "authorized-key":
            p["default"] = public
    nc = desc["netconf"]
    nc["username"] = getpass.getuser()
    nc["private-key"] = key.export_private_key().decode()
    nc["module"] = [{"name": "nfo-demo-router",
                     "source": files.joinpath("nfo-demo-router.yang").read_text()}]
    return desc
