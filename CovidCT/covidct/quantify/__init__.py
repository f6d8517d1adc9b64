"""Lung quantification from HU alone: volumes, density bands, lesions, involvement, zone scores.

Needs no network and no download, so it works on any chest CT in Hounsfield units.
:func:`quantify_lungs` (in :mod:`.lungs`) returns one JSON-ready dict that ``result.json``
stores and the report prints.
"""

from .corads import CoradsSuggestion, suggest_corads
from .hu_bands import DEFAULT_BANDS, HUBand
from .lesions import DEFAULT_LESION_SETTINGS, LesionSettings, lesion_label_map
from .lung_volumes import SIDES
from .lungs import (DEFAULT_VESSEL_FILTER, NO_VESSEL_FILTER, VesselFilter, quantify_lungs,
                    quantify_lungs_with_masks)
from .severity import zone_score
from .zones import ZONES

__all__ = [
    "quantify_lungs", "quantify_lungs_with_masks", "lesion_label_map", "LesionSettings",
    "DEFAULT_LESION_SETTINGS", "DEFAULT_BANDS", "HUBand", "VesselFilter", "DEFAULT_VESSEL_FILTER",
    "NO_VESSEL_FILTER", "suggest_corads", "CoradsSuggestion", "zone_score", "ZONES", "SIDES",
]
