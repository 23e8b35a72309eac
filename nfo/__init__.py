"""nfo, the model-driven network-function orchestrator.

asyncssh (2.24 and older) names cryptography's DSA classes when it is imported, and
cryptography 51 warns about each name on every start: noise on a command's stderr that no
user can act on. Filtered here, before any module imports asyncssh, unless the user chose
warning filters of their own (``-W`` or ``PYTHONWARNINGS``)."""

import sys as _sys
import warnings as _warnings

if not _sys.warnoptions:
    _warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh\.")
