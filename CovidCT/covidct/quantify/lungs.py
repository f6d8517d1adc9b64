"""Quantify both lungs of one scan: volumes, density bands, lesions, involvement and zone scores.

:func:`quantify_lungs` returns the JSON-ready dict that ``result.json`` stores and the
report prints; the settings used travel with the numbers so a result can be reproduced.
The work is a few named steps on the lungs' bounding box (every step touches a fraction
of the scan's voxels, with the same numbers as on the whole scan):

1. :func:`_cropped` - the lungs' box as its own volume;
2. lesions and vessels (:func:`.lesions.segment_lesions`), or the raw involved bands;
3. per side (:func:`.lung_volumes.side_masks`): :func:`_side_entry` (volume, bands,
   involvement) and :func:`_zone_entries` (zone-based severity);
4. both lungs together, per slice, distribution and settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InvalidCTError
from ..preprocess.morphology import bounding_box
from ..progress import silent
from ..volume import CTVolume
from .corads import SIDE_INVOLVED_PERCENT
from .hu_bands import (CONSOLIDATION_RANGE_HU, DEFAULT_BANDS, GGO_RANGE_HU, band_percentages,
                       ggo_consolidation_percentages, involved_mask, validate_bands)
from .lesions import (CONSOLIDATION_FROM_HU, DEFAULT_LESION_SETTINGS, LesionSettings, lowest_involved_hu,
                      segment_lesions)
from .lung_volumes import SIDES, lps_coordinate, side_masks
from .severity import MAX_ZONE_SCORE, NONE_BELOW_PERCENT, severity_settings, zone_score
from .zones import zone_masks

# Outer share of each lung's depth (distance from the lung surface) called "peripheral".
PERIPHERAL_DEPTH_FRACTION = 1.0 / 3.0
# Voxels of margin around the lungs' box (room for the lesion filters at the box edge).
BOX_MARGIN_VOXELS = 2


@dataclass(frozen=True)
class VesselFilter:
    """Whether vessels are kept out of "involved": ``enabled`` uses the lesion mask of
    :mod:`.lesions` (lesions told apart from vessels by shape); disabled, involvement is
    simply the lung voxels in the involved HU bands (for comparison and phantoms)."""

    enabled: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_VESSEL_FILTER = VesselFilter()
NO_VESSEL_FILTER = VesselFilter(enabled=False)


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _count(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


def _peripheral_shell(side_mask: np.ndarray, depth_mm: np.ndarray) -> np.ndarray:
    """Outer third (by depth from the lung surface) of one lung.

    Limitation: depth is measured from every lung surface, mediastinal included, so a
    lesion hugging the mediastinum also counts as peripheral.
    """
    if not side_mask.any():
        return np.zeros_like(side_mask)
    max_depth = float(depth_mm[side_mask].max())
    return side_mask & (depth_mm <= PERIPHERAL_DEPTH_FRACTION * max_depth)


def _checked_mask(volume: CTVolume, lung_mask: np.ndarray) -> np.ndarray:
    """The lung mask as booleans, after refusing what cannot be quantified."""
    if not volume.is_hounsfield:
        raise InvalidCTError("Lung quantification needs a CT in Hounsfield units; this image is an "
                             "8-bit export, so density bands cannot be measured.")
    mask = np.asarray(lung_mask, dtype=bool)
    if mask.shape != volume.shape:
        raise InvalidCTError(f"The lung mask has shape {mask.shape} but the CT has {volume.shape}; "
                             "compute the mask on the same volume.")
    return mask


def _cropped(volume: CTVolume, lung_mask: np.ndarray) -> tuple:
    """``(volume, mask, box)``: the lungs' bounding box as its own volume (same geometry)."""
    box = bounding_box(lung_mask, BOX_MARGIN_VOXELS)
    start = np.array([box[2].start, box[1].start, box[0].start, 1.0])  # (i, j, k, 1)
    origin = tuple(float(v) for v in (volume.ijk_to_lps() @ start)[:3])
    hu = np.asarray(volume.voxels)[box]
    return volume.with_voxels(hu, origin_lps=origin), lung_mask[box], box


def _side_entry(hu_side: np.ndarray, n_side: int, involved_side: int, unfiltered_side: int,
                lesion_hu: np.ndarray, bands, voxel_ml: float) -> dict:
    """Volume, band shares and involvement of one lung (or both): the measures every entry has."""
    ggo = _count(lesion_hu < CONSOLIDATION_FROM_HU)
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


def _zone_entries(side_mask: np.ndarray, involved_side: np.ndarray, crop: CTVolume, superior_mm: np.ndarray,
                  voxel_ml: float, none_below_percent: float) -> dict:
    """``{zone: {volume_ml, involvement_percent, score}}`` for the cranio-caudal thirds of one lung."""
    zones = {}
    for zone, zmask in zone_masks(side_mask, crop, superior_mm).items():
        n_zone = _count(zmask)
        pct = _percent(_count(involved_side & zmask), n_zone)
        score = zone_score(pct, none_below_percent) if n_zone else 0
        zones[zone] = {"volume_ml": n_zone * voxel_ml, "involvement_percent": pct, "score": score}
    return zones


def _per_slice_percent(lung_mask: np.ndarray, involved: np.ndarray, box: tuple, num_slices: int) -> list:
    """Involved share of each slice's lung (rounded; ``None`` for slices without lung), whole scan."""
    per_slice_lung = np.zeros(num_slices, dtype=np.int64)
    per_slice_involved = np.zeros(num_slices, dtype=np.int64)
    per_slice_lung[box[0]] = lung_mask.sum(axis=(1, 2))
    per_slice_involved[box[0]] = involved.sum(axis=(1, 2))
    return [round(_percent(int(i), int(n)), 3) if n else None
            for i, n in zip(per_slice_involved, per_slice_lung)]


def _settings(bands, vessel_filter: VesselFilter, lesion_settings: LesionSettings, low_hu: float,
              segmented, none_below_percent: float) -> dict:
    """What produced the numbers, stored with them."""
    return {
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


def _full_size(masks: dict, shape: tuple, box: tuple) -> dict:
    """Masks computed on the box, back on the scan's grid (False outside the box)."""
    out = {}
    for key, mask in masks.items():
        out[key] = np.zeros(shape, dtype=bool)
        out[key][box] = mask
    return out


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
    full_mask = _checked_mask(volume, lung_mask)
    progress(0.05, "quantify: lesions")
    crop, lung_mask, box = _cropped(volume, full_mask)
    hu = np.asarray(crop.voxels)
    low_hu = lowest_involved_hu(bands)
    segmented = segment_lesions(hu, lung_mask, crop.spacing_mm, low_hu, lesion_settings)
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
    peripheral_involved = 0
    for side in SIDES:
        side_mask = sides[side]
        involved_side = involved & side_mask
        entry = _side_entry(hu[side_mask], _count(side_mask), _count(involved_side),
                            _count(unfiltered & side_mask), hu[involved_side], bands, voxel_ml)
        entry["zones"] = _zone_entries(side_mask, involved_side, crop, superior_mm, voxel_ml, none_below_percent)
        entry["severity_score"] = sum(z["score"] for z in entry["zones"].values())
        peripheral_involved += _count(involved_side & _peripheral_shell(side_mask, segmented.depth_mm))
        result[side] = entry
        progress(0.6 + 0.15 * (1 + SIDES.index(side)), f"quantify: {side} lung")

    n_involved = _count(involved)
    total = _side_entry(hu[lung_mask], _count(lung_mask), n_involved, _count(unfiltered), hu[involved],
                        bands, voxel_ml)
    zone_scores = [z["score"] for side in SIDES for z in result[side]["zones"].values()]
    total.update({
        "vessel_ml": float(_count(vessels)) * voxel_ml,
        "severity_score": int(sum(zone_scores)),
        "severity_max": MAX_ZONE_SCORE * len(zone_scores),
    })
    result["total"] = total
    result["per_slice_involvement_percent"] = _per_slice_percent(lung_mask, involved, box, volume.num_slices)
    result["distribution"] = {
        "bilateral": all(result[s]["involvement_percent"] >= SIDE_INVOLVED_PERCENT for s in SIDES),
        "peripheral_share": (peripheral_involved / n_involved) if n_involved else None,
    }
    result["settings"] = _settings(bands, vessel_filter, lesion_settings, low_hu, segmented, none_below_percent)
    masks = _full_size({"lesions": involved, "vessels": vessels}, volume.shape, box)
    progress(1.0, "quantify: done")
    return result, masks
