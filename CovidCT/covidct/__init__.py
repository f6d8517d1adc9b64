"""CovidCT core: chest-CT loading, enhancement, COVID-19 classification, heatmaps,
quantification and reports, with no Slicer or Qt dependency.

The flow of one scan reads top to bottom through the sub-packages:
``io`` (load) -> ``validation`` -> ``preprocess`` (window, masks) -> ``enhance`` ->
``classify`` (and CAM) -> ``quantify`` -> ``report``.
"""

__version__ = "0.1.0"

RESEARCH_USE_DISCLAIMER = (
    "For research use only. Not for clinical diagnosis. "
    "Results must be reviewed by a qualified radiologist."
)
