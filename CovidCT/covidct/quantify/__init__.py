"""Lung quantification from HU alone: volumes, density bands, lesions, involvement, zone scores.

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
from .lesions import (CONSOLIDATION_FROM_HU, DEFAULT_LESION_SETTINGS, LesionSettings, lesion_label_map,
                      lesion_mask, lowest_involved_hu, segment_lesions)
from .vessels import DEFAULT_VESSEL_FILTER, NO_VESSEL_FILTER, VesselFilter, lung_bounding_box
from .zones import ZONES, zone_masks

__all__ = [
    "quantify_lungs", "quantify_lungs_with_masks", "lesion_mask", "lesion_label_map", "LesionSettings",
    "DEFAULT_LESION_SETTINGS", "DEFAULT_BANDS", "HUBand", "VesselFilter", "DEFAULT_VESSEL_FILTER",
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


def _cropped(volume: CTVolume, lung_mask: np.ndarray) -> tuple:
    """The lung's bounding box as its own volume (same geometry) plus the box, so every
    later step touches a fraction of the voxels; results are identical to the full scan."""
    box = lung_bounding_box(lung_mask)
    start = np.array([box[2].start, box[1].start, box[0].start, 1.0])  # (i, j, k, 1)
    origin = tuple(float(v) for v in (volume.ijk_to_lps() @ start)[:3])
    hu = np.asarray(volume.voxels)[box]
    return volume.with_voxels(hu, origin_lps=origin), lung_mask[box], box


def _side_entry(hu_side: np.ndarray, n_side: int, involved_side: int, unfiltered_side: int,
                lesion_hu: np.ndarray, bands, voxel_ml: float) -> dict:
    ggo = int(np.count_nonzero(lesion_hu < CONSOLIDATION_FROM_HU))
    return {
        "volume_ml": n_side * voxel_ml,
        "bands_percent": band_percentages(hu_side, bands),
        **{f"{k}_percent": v for k, v in ggo_consolidation_percentages(hu_side).items()},
        "involvement_percent": _percent(involved_side, n_side),
        "involved_ml": involved_side * voxel_ml,
        "involvement_without_vessel_filter_percent": _percent(unfiltered_side, n_side),
        "lesion_ground_glass_percent": _percent(ggo, n_side),
        "lesion_consolidation_percent": _percent(int(lesion_hu.size) - ggo, n_side),
    }


def quantify_lungs(volume: CTVolume, lung_mask: np.ndarray, bands=DEFAULT_BANDS,
                   vessel_filter: VesselFilter = DEFAULT_VESSEL_FILTER,
                   none_below_percent: float = NONE_BELOW_PERCENT, progress=silent, *,
                   lesion_settings: LesionSettings = DEFAULT_LESION_SETTINGS) -> dict:
    """Per-side and total lung volumes, band shares, involvement and zone-based severity.

    ``lung_mask`` is a boolean array with the volume's shape (False outside the lungs).
    Band percentages are of the raw HU voxels (exact).  Involvement is the lesion mask
    of :mod:`covidct.quantify.lesions` (ground glass and consolidation told apart from
    vessels by shape); with ``vessel_filter.enabled`` False it is simply the voxels in
    the involved bands.  Both are in percent of lung volume.  The input volume and mask
    are never modified.  :func:`quantify_lungs_with_masks` also returns the masks.
    """
    return quantify_lungs_with_masks(volume, lung_mask, bands, vessel_filter, none_below_percent, progress,
                                     lesion_settings=lesion_settings)[0]


def quantify_lungs_with_masks(volume: CTVolume, lung_mask: np.ndarray, bands=DEFAULT_BANDS,
                              vessel_filter: VesselFilter = DEFAULT_VESSEL_FILTER,
                              none_below_percent: float = NONE_BELOW_PERCENT, progress=silent, *,
                              lesion_settings: LesionSettings = DEFAULT_LESION_SETTINGS) -> tuple:
    """``(result, masks)``: :func:`quantify_lungs`'s dict and ``{"lesions": bool array,
    "vessels": bool array}`` with the volume's shape, e.g. to save the lesions as a label map."""
    bands = tuple(bands)
    validate_bands(bands)
    if not volume.is_hounsfield:
        raise InvalidCTError("Lung quantification needs a CT in Hounsfield units; this image is an "
                             "8-bit export, so density bands cannot be measured.")
    full_mask = np.asarray(lung_mask, dtype=bool)
    if full_mask.shape != volume.shape:
        raise InvalidCTError(f"The lung mask has shape {full_mask.shape} but the CT has {volume.shape}; "
                             "compute the mask on the same volume.")
    progress(0.05, "quantify: lesions")
    crop, lung_mask, box = _cropped(volume, full_mask)
    hu = np.asarray(crop.voxels)
    low_hu = lowest_involved_hu(bands)
    segmented = segment_lesions(hu, lung_mask, crop.spacing_mm, low_hu, lesion_settings)
    depth_mm = segmented.depth_mm
    unfiltered = involved_mask(hu, bands) & lung_mask
    if vessel_filter.enabled:
        involved, vessels = segmented.lesions, segmented.vessels
    else:
        involved, vessels = unfiltered, np.zeros_like(lung_mask)
    progress(0.6, "quantify: sides and zones")
    sides = side_masks(lung_mask, crop)
    superior_mm = lps_coordinate(crop, 2)
    voxel_ml = volume.voxel_volume_ml

    result = {}
    all_scores = []
    peripheral_involved = 0
    for side in SIDES:
        side_mask = sides[side]
        involved_side = involved & side_mask
        entry = _side_entry(hu[side_mask], int(np.count_nonzero(side_mask)),
                            int(np.count_nonzero(involved_side)),
                            int(np.count_nonzero(unfiltered & side_mask)), hu[involved_side], bands, voxel_ml)
        entry["zones"] = {}
        for zone, zmask in zone_masks(side_mask, crop, superior_mm).items():
            n_zone = int(np.count_nonzero(zmask))
            pct = _percent(int(np.count_nonzero(involved_side & zmask)), n_zone)
            score = zone_score(pct, none_below_percent) if n_zone else 0
            all_scores.append(score)
            entry["zones"][zone] = {"volume_ml": n_zone * voxel_ml, "involvement_percent": pct,
                                    "score": score}
        entry["severity_score"] = sum(z["score"] for z in entry["zones"].values())
        peripheral_involved += int(np.count_nonzero(involved_side & _peripheral_shell(side_mask, depth_mm)))
        result[side] = entry
        progress(0.6 + 0.15 * (1 + SIDES.index(side)), f"quantify: {side} lung")

    n_lung = int(np.count_nonzero(lung_mask))
    n_involved = int(np.count_nonzero(involved))
    total = _side_entry(hu[lung_mask], n_lung, n_involved, int(np.count_nonzero(unfiltered)), hu[involved],
                        bands, voxel_ml)
    total.update({
        "vessel_ml": float(np.count_nonzero(vessels)) * voxel_ml,
        "severity_score": int(sum(all_scores)),
        "severity_max": 5 * len(all_scores),
    })
    result["total"] = total
    per_slice_lung = np.zeros(volume.num_slices, dtype=np.int64)
    per_slice_involved = np.zeros(volume.num_slices, dtype=np.int64)
    per_slice_lung[box[0]] = lung_mask.sum(axis=(1, 2))
    per_slice_involved[box[0]] = involved.sum(axis=(1, 2))
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
        "involvement": ("lesion mask: ground glass and consolidation regions told apart from vessels by shape "
                        "(see lesions)" if vessel_filter.enabled else
                        "voxels in the involved bands (no vessel handling)"),
        "lesions": {**lesion_settings.to_dict(), "lowest_hu": low_hu,
                    "working_spacing_kji_mm": [round(g, 3) for g in segmented.working_spacing_kji_mm],
                    "opening_size_voxels_kji": list(segmented.opening_size_voxels),
                    "consolidation_from_hu": CONSOLIDATION_FROM_HU},
        "vessel_filter": vessel_filter.to_dict(),
        "severity": severity_settings(none_below_percent),
        "zones": "cranio-caudal thirds of each lung's extent (patient superior axis)",
        "sides": "patient's left/right from the LPS geometry",
        "peripheral": f"outer {PERIPHERAL_DEPTH_FRACTION:.2f} of each lung's depth from its surface",
    }
    masks = {}
    for key, mask in (("lesions", involved), ("vessels", vessels)):
        masks[key] = np.zeros(volume.shape, dtype=bool)
        masks[key][box] = mask
    progress(1.0, "quantify: done")
    return result, masks
