"""``python -m nfo`` runs the command line."""

import sys

from nfo.cli import main

sys.exit(main())
