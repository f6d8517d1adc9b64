"""Upper, middle and lower zones of each lung, for a zone-based severity score.

Why zones and not lobes: the CT severity score is defined per lobe, but lobes need the
fissures, which a threshold lung mask cannot find.  Splitting each lung into cranio-caudal
thirds of its own extent (along the patient's superior axis, from the LPS geometry) is
the usual fallback when lobes are unavailable; the report labels the score zone-based.
"""

from __future__ import annotations

import numpy as np

from ..volume import CTVolume
from .lung_volumes import lps_coordinate

ZONES = ("upper", "middle", "lower")


def zone_masks(side_mask: np.ndarray, volume: CTVolume, superior_mm: np.ndarray = None) -> dict:
    """``{"upper": mask, "middle": mask, "lower": mask}`` for one lung.

    ``superior_mm`` (the LPS z of every voxel) can be passed in to avoid recomputing it
    for the second lung.  Thirds are of the lung's cranio-caudal extent (voxel centres).
    """
    side_mask = np.asarray(side_mask, dtype=bool)
    if superior_mm is None:
        superior_mm = lps_coordinate(volume, 2, side_mask.shape)
    empty = np.zeros_like(side_mask)
    z = superior_mm[side_mask]
    if z.size == 0:
        return {zone: empty.copy() for zone in ZONES}
    top, bottom = float(z.max()), float(z.min())
    third = (top - bottom) / 3.0
    upper_from = top - third
    lower_below = bottom + third
    upper = side_mask & (superior_mm >= upper_from)
    lower = side_mask & (superior_mm < lower_below) & ~upper
    middle = side_mask & ~upper & ~lower
    return {"upper": upper, "middle": middle, "lower": lower}
