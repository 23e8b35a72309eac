"""Python classes generated from yang/ by pyangbind, for programmatic clients.

``tools/gen_bindings.py`` writes one module per top-level YANG module (pyang 2.7.1,
pyangbind 0.8.7; CI checks they match a fresh generation); the class named after the
module holds its data, e.g. ``nfo.bindings.nfo_instances.nfo_instances()``.  Serialise
with ``pyangbind.lib.pybindJSON.dumps(obj, mode="ietf")`` (RFC 7951, accepted by the
server) and load with ``pybindJSON.loads_ietf``.

What to know when using them: pyangbind checks types, ranges, patterns, enumerations,
unions and identities on assignment, not must, when, mandatory or leafrefs, so the
server (libyang) stays the judge; identityrefs take their module prefix
(``"nfo-vim:local"``) and decimal64 values strings; the names ``local`` and ``default``
become ``local_`` and ``default_``; the YANG 1.1 actions are left out
(tools/bindings/nfo-bindings-deviations.yang), call them through the client.
"""

__all__ = ["nfo_catalog", "nfo_instances", "nfo_users", "nfo_vim"]
