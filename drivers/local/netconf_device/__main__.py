"""``python -m nfo.drivers.local.netconf_device``: see the package docstring."""

import sys

from nfo.drivers.local.netconf_device import main

sys.exit(main())
