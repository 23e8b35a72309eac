"""RESTCONF front end (RFC 8040, RFC 8527 datastores).

- :mod:`nfo.restconf.paths`: resource URIs -> libyang data paths; the ``fields`` syntax.
- :mod:`nfo.restconf.codec`: media types, request bodies -> edit trees, replies, errors.
- :mod:`nfo.restconf.app`: the ASGI app, :func:`create_app`, and the one error table.

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
