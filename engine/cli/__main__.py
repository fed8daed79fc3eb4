"""``python -m engine.cli`` is ``artq``."""

import sys

from . import entry

sys.exit(entry())
