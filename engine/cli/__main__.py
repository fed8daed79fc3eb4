"""``python -m engine.cli`` is ``artq``."""

import sys

from . import main

sys.exit(main())
