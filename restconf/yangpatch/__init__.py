"""YANG Patch (RFC 8072) for the RESTCONF front end, in three steps.

:mod:`.parse` reads the patch envelope (JSON, or XML through the one hardened
reader, the edit values kept as the client wrote them); :mod:`.plan` turns
every edit into an edit tree carrying ``ietf-netconf:operation`` (and
``yang:insert``/``key``/``value`` for positions), its target resolved with the
RESTCONF resource-path parser and its value parsed with the RESTCONF codec;
:mod:`.apply` hands all of them to ONE :meth:`~nfo.datastore.Session.edit_many`
call with default-operation ``none`` (one validation of the final result, one
durable commit, or nothing) and answers the ``yang-patch-status``, its errors
encoded by the one error table of :mod:`nfo.protocol.errors`.
"""

from nfo.restconf.yangpatch.apply import PatchResult, apply_yang_patch
from nfo.restconf.yangpatch.parse import YANG_PATCH_JSON, YANG_PATCH_NS, YANG_PATCH_XML

__all__ = ["YANG_PATCH_JSON", "YANG_PATCH_NS", "YANG_PATCH_XML", "PatchResult",
           "apply_yang_patch"]
