"""WSGI entry for the OpenStack API services of tools/openstack, served by gunicorn.

``NFO_OS_SERVICE`` names the service (keystone, placement, glance, nova, neutron). The
services parse ``sys.argv`` with oslo.config, which rejects gunicorn's own arguments, so
``sys.argv`` is reset to the bare program name before the service's WSGI module is imported.
Each service finds its configuration through its own ``OS_*_CONFIG_DIR`` variable, which
tools/openstack sets.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

_MODULES = {
    "keystone": ("keystone-api", "keystone.wsgi.api"),
    "placement": ("placement-api", "placement.wsgi.api"),
    "glance": ("glance-api", "glance.wsgi.api"),
    "nova": ("nova-api", "nova.wsgi.osapi_compute"),
    "neutron": ("neutron-api", "neutron.wsgi.api"),
}

_service = os.environ["NFO_OS_SERVICE"]
_prog, _module = _MODULES[_service]
sys.argv = [_prog]
application: Any = importlib.import_module(_module).application
