"""Lung quantification from HU alone: volumes, density bands, involvement, zone scores.

Needs no network and no download, so it works on any chest CT in Hounsfield units.
:func:`quantify_lungs` returns one JSON-ready dict that ``result.json`` stores and the
report prints; the settings used travel with the numbers so a result can be reproduced.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidCTError
from ..progress import silent
from ..volume import CTVolume
from .corads import SIDE_INVOLVED_PERCENT, CoradsSuggestion, suggest_corads
from .hu_bands import (DEFAULT_BANDS, CONSOLIDATION_RANGE_HU, GGO_RANGE_HU, HUBand, band_percentages,
                       ggo_consolidation_percentages, involved_mask, validate_bands)
from .lung_volumes import SIDES, lps_coordinate, side_masks
from .severity import NONE_BELOW_PERCENT, severity_settings, zone_score
from .vessels import (DEFAULT_VESSEL_FILTER, NO_VESSEL_FILTER, VesselFilter, filtered_involvement,
                      lung_depth_mm)
from .zones import ZONES, zone_masks

__all__ = [
    "quantify_lungs", "DEFAULT_BANDS", "HUBand", "VesselFilter", "DEFAULT_VESSEL_FILTER",
    "NO_VESSEL_FILTER", "suggest_corads", "CoradsSuggestion", "zone_score", "ZONES", "SIDES",
]

# Outer share of each lung's depth (distance from the lung surface) called "peripheral".
PERIPHERAL_DEPTH_FRACTION = 1.0 / 3.0


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _peripheral_shell(side_mask: np.ndarray, depth_mm: np.ndarray) -> np.ndarray:
    """Outer third (by depth from the lung surface) of one lung.

    Limitation: depth is measured from every lung surface, mediastinal included, so a
    lesion hugging the mediastinum also counts as peripheral.
    """
    if not side_mask.any():
        return np.zeros_like(side_mask)
    max_depth = float(depth_mm[side_mask].max())
    return side_mask & (depth_mm <= PERIPHERAL_DEPTH_FRACTION * max_depth)


def quantify_lungs(volume: CTVolume, lung_mask: np.ndarray, bands=DEFAULT_BANDS,
                   vessel_filter: VesselFilter = DEFAULT_VESSEL_FILTER,
                   none_below_percent: float = NONE_BELOW_PERCENT, progress=silent) -> dict:
    """Per-side and total lung volumes, band shares, involvement and zone-based severity.

    ``lung_mask`` is a boolean array with the volume's shape (False outside the lungs).
    Band percentages are of the raw HU voxels (exact); involvement uses the vessel
    filter (see :mod:`covidct.quantify.vessels`); both are in percent of lung volume.
    The input volume and mask are never modified.
    """
    bands = tuple(bands)
    validate_bands(bands)
    if not volume.is_hounsfield:
        raise InvalidCTError("Lung quantification needs a CT in Hounsfield units; this image is an "
                             "8-bit export, so density bands cannot be measured.")
    lung_mask = np.asarray(lung_mask, dtype=bool)
    if lung_mask.shape != volume.shape:
        raise InvalidCTError(f"The lung mask has shape {lung_mask.shape} but the CT has {volume.shape}; "
                             "compute the mask on the same volume.")
    hu = np.asarray(volume.voxels)
    progress(0.05, "quantify: vessels")
    depth_mm = lung_depth_mm(lung_mask, volume.spacing_mm)
    involved, vessels = filtered_involvement(hu, lung_mask, volume.spacing_mm, bands, vessel_filter, depth_mm)
    unfiltered = involved_mask(hu, bands) & lung_mask
    progress(0.6, "quantify: sides and zones")
    sides = side_masks(lung_mask, volume)
    superior_mm = lps_coordinate(volume, 2)
    voxel_ml = volume.voxel_volume_ml

    result = {}
    all_scores = []
    peripheral_involved = 0
    for side in SIDES:
        side_mask = sides[side]
        side_hu = hu[side_mask]
        n_side = int(side_hu.size)
        n_involved = int(np.count_nonzero(involved & side_mask))
        entry = {
            "volume_ml": n_side * voxel_ml,
            "bands_percent": band_percentages(side_hu, bands),
            **{f"{k}_percent": v for k, v in ggo_consolidation_percentages(side_hu).items()},
            "involvement_percent": _percent(n_involved, n_side),
            "involved_ml": n_involved * voxel_ml,
            "involvement_without_vessel_filter_percent": _percent(
                int(np.count_nonzero(unfiltered & side_mask)), n_side),
            "zones": {},
        }
        for zone, zmask in zone_masks(side_mask, volume, superior_mm).items():
            n_zone = int(np.count_nonzero(zmask))
            pct = _percent(int(np.count_nonzero(involved & zmask)), n_zone)
            score = zone_score(pct, none_below_percent) if n_zone else 0
            all_scores.append(score)
            entry["zones"][zone] = {"volume_ml": n_zone * voxel_ml, "involvement_percent": pct,
                                    "score": score}
        entry["severity_score"] = sum(z["score"] for z in entry["zones"].values())
        peripheral_involved += int(np.count_nonzero(involved & _peripheral_shell(side_mask, depth_mm)))
        result[side] = entry
        progress(0.6 + 0.15 * (1 + SIDES.index(side)), f"quantify: {side} lung")

    lung_hu = hu[lung_mask]
    n_lung = int(lung_hu.size)
    n_involved = int(np.count_nonzero(involved))
    result["total"] = {
        "volume_ml": n_lung * voxel_ml,
        "bands_percent": band_percentages(lung_hu, bands),
        **{f"{k}_percent": v for k, v in ggo_consolidation_percentages(lung_hu).items()},
        "involvement_percent": _percent(n_involved, n_lung),
        "involved_ml": n_involved * voxel_ml,
        "involvement_without_vessel_filter_percent": _percent(int(np.count_nonzero(unfiltered)), n_lung),
        "vessel_ml": float(np.count_nonzero(vessels)) * voxel_ml,
        "severity_score": int(sum(all_scores)),
        "severity_max": 5 * len(all_scores),
    }
    per_slice_lung = lung_mask.sum(axis=(1, 2))
    per_slice_involved = involved.sum(axis=(1, 2))
    result["per_slice_involvement_percent"] = [
        round(_percent(int(i), int(n)), 3) if n else None
        for i, n in zip(per_slice_involved, per_slice_lung)]
    result["distribution"] = {
        "bilateral": all(result[s]["involvement_percent"] >= SIDE_INVOLVED_PERCENT for s in SIDES),
        "peripheral_share": (peripheral_involved / n_involved) if n_involved else None,
    }
    result["settings"] = {
        "bands": [band.to_dict() for band in bands],
        "ground_glass_range_hu": list(GGO_RANGE_HU),
        "consolidation_range_hu": list(CONSOLIDATION_RANGE_HU),
        "vessel_filter": vessel_filter.to_dict(),
        "severity": severity_settings(none_below_percent),
        "zones": "cranio-caudal thirds of each lung's extent (patient superior axis)",
        "sides": "patient's left/right from the LPS geometry",
        "peripheral": f"outer {PERIPHERAL_DEPTH_FRACTION:.2f} of each lung's depth from its surface",
    }
    progress(1.0, "quantify: done")
    return result
