"""RESTCONF front end (RFC 8040, RFC 8527 datastores, RFC 8072 YANG Patch).

- :mod:`nfo.restconf.app`: :func:`create_app`, the composition of routes and the one
  exception handler; the API root, YANG library version, module sources, operations.
- :mod:`nfo.restconf.resources`: data resources (read, PUT, POST, PATCH, DELETE, actions).
- :mod:`nfo.restconf.paths`: resource URIs -> libyang data paths; the ``fields`` syntax.
- :mod:`nfo.restconf.codec`: media types, request bodies -> edit trees, replies.
- :mod:`nfo.restconf.conditional`: ETags, Last-Modified, preconditions for the datastore.
- :mod:`nfo.restconf.yangpatch`: YANG Patch parse, plan, apply.
- :mod:`nfo.restconf.streams`: event streams over Server-Sent Events.
- :mod:`nfo.restconf.security`, :mod:`nfo.restconf.server`: authentication, TLS, uvicorn.

``create_app`` is imported lazily so that importing a sibling module (paths, codec)
does not pull in the web framework.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from nfo.restconf.app import create_app

        return create_app
    raise AttributeError(name)
