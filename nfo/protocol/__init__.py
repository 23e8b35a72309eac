"""The protocol-neutral layer shared by the RESTCONF and NETCONF front ends.

What both front ends need before a message reaches the datastore and that
depends on neither HTTP nor SSH: :mod:`nfo.protocol.xml` reads XML messages
under one set of hardening rules.  Nothing here imports from nfo beyond
:mod:`nfo.errors`.
"""

from __future__ import annotations

__all__: list[str] = []
