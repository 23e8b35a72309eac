"""nfo's built-in VIM drivers: ``local``, ``sim`` and ``openstack``.

Each is registered in the ``nfo.drivers`` entry-point group by pyproject.toml,
exactly as a driver from another distribution would be, and implements the
typed protocol of :mod:`nfo.registry.protocol`; nothing here imports the
datastore or the workload manager.
"""
