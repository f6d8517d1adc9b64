"""``python -m covidct.cli``: the same as the ``covidct`` command (used by the Slicer module)."""

import sys

from . import main

sys.exit(main())
