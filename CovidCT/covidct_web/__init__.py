"""CovidCT in the browser: the Slicer module's analysis and review on trame-slicer.

A second thin face over ``CovidCTLib``: every MRML operation (loading results, heatmap
display, compare views, slice navigation) and the analysis process runner are the ones
the Slicer module uses.  Needs the ``web`` extra (``pip install "covidct[web]"``); the pure
core ``covidct`` never imports this package.

Design (trame-slicer 2.0): a trame server shares one state among all its browser clients
and ``SlicerApp`` points process-wide singletons (the displayable-manager factories) at
its scene, so one process holds one session.  ``covidct serve`` therefore runs a small
launcher (:mod:`covidct_web.launcher`) that starts one session process
(:mod:`covidct_web.session_app`) per browser tab, each with its own scene and work folder.
"""

import sys
from pathlib import Path

# ``CovidCTLib`` sits next to this package (the Slicer module's folder).
_MODULE_DIR = str(Path(__file__).resolve().parent.parent)
if _MODULE_DIR not in sys.path:
    sys.path.insert(0, _MODULE_DIR)
