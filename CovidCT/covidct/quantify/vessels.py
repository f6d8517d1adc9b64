"""Keep vessels from reading as disease.

A lung mask with its holes filled contains the pulmonary vessels.  Their cores are
denser than 0 HU and so fall outside the "involved" bands, but every vessel is wrapped
in a rim of voxels that partial-volume averaging puts between -750 and 0 HU, and image
noise scatters single voxels of healthy lung above -750 HU.  Counted naively, a healthy
lung then reads as 15-20 % "involved" (measured on the normal COVID-CT-MD scan).

The filter works on shape, not on a trained model:

1. light Gaussian smoothing (``smoothing_sigma_mm``) so noise does not make speckle;
2. vessels = dense voxels (``>= vessel_core_hu``) that a ball of radius
   ``vessel_max_radius_mm`` does not fit into (thin, tubular), plus everything at or above
   ``always_vessel_hu``; they and a rim of ``rim_mm`` around them are excluded;
3. a shell of ``pleural_rim_mm`` inside the lung surface is excluded from the candidates
   (partial volume with chest wall, diaphragm and mediastinum);
4. a morphological opening with a ball of ``min_opacity_radius_mm`` keeps only
   candidate regions at least that thick: opacities are blob-like, leftovers are not.

Erosion and dilation use Euclidean distance maps in millimetres, so the balls are
round on anisotropic grids and the cost does not grow with the radius.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from .hu_bands import involved_mask


@dataclass(frozen=True)
class VesselFilter:
    enabled: bool = True
    smoothing_sigma_mm: float = 1.0
    vessel_core_hu: float = -400.0
    vessel_max_radius_mm: float = 3.0
    always_vessel_hu: float = 0.0
    rim_mm: float = 1.5
    pleural_rim_mm: float = 1.5
    min_opacity_radius_mm: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_VESSEL_FILTER = VesselFilter()
NO_VESSEL_FILTER = VesselFilter(enabled=False)


def _sampling(spacing_mm) -> tuple:
    """(k, j, i) sampling for scipy from the (i, j, k) spacing."""
    return (float(spacing_mm[2]), float(spacing_mm[1]), float(spacing_mm[0]))


def erode_mm(mask: np.ndarray, radius_mm: float, spacing_mm) -> np.ndarray:
    """Voxels farther than ``radius_mm`` from the outside of ``mask`` (ball erosion)."""
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    padded = np.pad(mask, 1, constant_values=False)  # the array border counts as outside
    depth = ndimage.distance_transform_edt(padded, sampling=_sampling(spacing_mm))[1:-1, 1:-1, 1:-1]
    return depth > radius_mm


def dilate_mm(mask: np.ndarray, radius_mm: float, spacing_mm) -> np.ndarray:
    """Voxels within ``radius_mm`` of ``mask`` (ball dilation)."""
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    distance = ndimage.distance_transform_edt(~mask, sampling=_sampling(spacing_mm))
    return distance <= radius_mm


def open_mm(mask: np.ndarray, radius_mm: float, spacing_mm) -> np.ndarray:
    """Morphological opening with a ball: removes parts thinner than ``2 * radius_mm``."""
    return dilate_mm(erode_mm(mask, radius_mm, spacing_mm), radius_mm, spacing_mm) & mask


def lung_bounding_box(mask: np.ndarray, margin: int = 2) -> tuple:
    """Slices of the smallest box holding ``mask`` (plus a margin), to keep the filters cheap."""
    out = []
    for axis, size in enumerate(mask.shape):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(np.any(mask, axis=others))  # projections: cheaper than nonzero()
        if not present.size:
            return tuple(slice(0, 0) for _ in mask.shape)
        out.append(slice(max(0, int(present[0]) - margin), min(size, int(present[-1]) + margin + 1)))
    return tuple(out)


def lung_depth_mm(lung_mask: np.ndarray, spacing_mm) -> np.ndarray:
    """Distance (mm) of every lung voxel from the lung surface; 0 outside the lungs.

    Computed once and shared by the pleural-shell exclusion and the peripheral measure,
    because the distance map is the most expensive step of the quantification.
    """
    lung_mask = np.asarray(lung_mask, dtype=bool)
    depth = np.zeros(lung_mask.shape, dtype=np.float32)
    box = lung_bounding_box(lung_mask)
    sub = lung_mask[box]
    if sub.any():
        padded = np.pad(sub, 1, constant_values=False)
        depth[box] = ndimage.distance_transform_edt(padded, sampling=_sampling(spacing_mm))[1:-1, 1:-1, 1:-1]
    return depth


def filtered_involvement(hu: np.ndarray, lung_mask: np.ndarray, spacing_mm, bands: Sequence,
                         settings: VesselFilter = DEFAULT_VESSEL_FILTER,
                         depth_mm: Optional[np.ndarray] = None) -> tuple:
    """``(involved, vessels)``: boolean masks (full shape) of involved lung and of vessels.

    With the filter disabled, ``involved`` is simply the lung voxels in the involved
    bands and ``vessels`` is empty.  ``depth_mm`` (from :func:`lung_depth_mm`) may be
    passed in to save recomputing it.
    """
    lung_mask = np.asarray(lung_mask, dtype=bool)
    involved_full = np.zeros(lung_mask.shape, dtype=bool)
    vessels_full = np.zeros(lung_mask.shape, dtype=bool)
    if not settings.enabled:
        involved_full = involved_mask(np.asarray(hu), bands) & lung_mask
        return involved_full, vessels_full
    box = lung_bounding_box(lung_mask)
    lung = lung_mask[box]
    if not lung.any():
        return involved_full, vessels_full
    hu_box = np.asarray(hu[box], dtype=np.float32)
    sampling = _sampling(spacing_mm)
    if settings.smoothing_sigma_mm > 0:
        sigma = tuple(settings.smoothing_sigma_mm / s for s in sampling)
        smooth = ndimage.gaussian_filter(hu_box, sigma=sigma)
    else:
        smooth = hu_box
    core = lung & (hu_box >= settings.vessel_core_hu)
    thin = core & ~open_mm(core, settings.vessel_max_radius_mm, spacing_mm)
    vessels = thin | (lung & (hu_box >= settings.always_vessel_hu))
    excluded = dilate_mm(vessels, settings.rim_mm, spacing_mm)
    if depth_mm is not None:
        inner = lung & (depth_mm[box] > settings.pleural_rim_mm)
    else:
        inner = erode_mm(lung, settings.pleural_rim_mm, spacing_mm)
    candidates = involved_mask(smooth, bands) & inner & ~excluded
    involved = open_mm(candidates, settings.min_opacity_radius_mm, spacing_mm)
    involved_full[box] = involved
    vessels_full[box] = vessels & lung
    return involved_full, vessels_full
