"""Ground-glass and consolidation lesions inside the lung mask, told apart from vessels by shape.

Why not HU bands alone: every vessel carries a partial-volume rim in the ground-glass
range, so bands read a healthy lung as 15-20 % "involved".  Why not a per-voxel vessel
filter: a real COVID-19 opacity is patchy (crazy paving, -500 to -150 HU next to each
other), so its denser parts look like thin vessels and a filter that cuts vessels and
their rims cuts the lesion with them.

This module looks at the *background* density instead of single voxels.  A vessel is a
thin bright line on dark lung; a lesion is a region where the lung itself is denser.

1. **Working grid** (``working_spacing_mm``): the lung's bounding box is box-averaged
   and resampled to about 1.5 mm voxels (never finer than the scan).  Averaging is the
   denoising; the coarse grid makes the rest cheap (about 1/8 of the voxels).
2. **Background density by grey-level opening**: a minimum then a maximum filter over a
   cuboid of half-widths ``opening_radius_inplane_mm`` x ``opening_radius_axial_mm``
   (7.5 x 7.5 x 6 mm at the defaults on this grid), restricted to the lung (voxels
   outside the mask are ignored, so a sub-pleural lesion is not erased by the chest
   wall).  Any bright structure narrower than the cuboid - vessels up to ~7 mm across,
   bronchial walls, fissures, the partial-volume shell along the pleura - disappears;
   a region at least that wide keeps its density.
3. **Seeds**: lung where the background is between the lowest "involved" band edge
   (-750 HU by default) and ``max_lesion_hu`` (150 HU: consolidation counts, calcium
   and contrast-filled vessels do not).
4. **Depth check**: a seed region must reach at least ``min_depth_mm`` from the lung
   surface.  The domes of the diaphragm, cut obliquely by 2 mm slices, leave thin
   slivers of lung that are entirely partial volume; they fail this, while sub-pleural
   opacities (which grow inwards) pass.
5. **Solid tubes**: a seed region in which at least ``solid_fraction`` of the voxels are
   solid (``>= solid_hu``) and whose volume is under ``max_solid_ml`` is dropped.  These are
   the hilar arteries and bronchial walls, wider than the cuboid but with only a thin
   partial-volume rim; a lobar artery 15 mm wide and 5 cm long in the lung mask holds
   about 9 ml.  Consolidation is kept when it is larger or when it sits in ground glass
   (then the region is not mostly solid).
6. **Growth**: seeds grow up to ``grow_mm`` (face-connected steps on the working grid)
   into lung whose smoothed density is in the same range, recovering lesion margins
   thinner than the cuboid.  Growth is short so it cannot run along vessels.
7. The mask is mapped back to the scan's voxels (nearest neighbour) and cut to the lung
   mask.  ``vessels`` is what the opening removed: lung denser than ``vessel_hu`` on the
   working grid that is not lesion (vessels, airway walls, fissures).

Why the defaults: the opening width from vessel calibre (peripheral pulmonary vessels
are under ~5 mm; a 7.5 mm cuboid removes them) and the slice thickness (one neighbour
slice on each side at 2 mm); the HU range from the involved bands; ``max_solid_ml`` from
vessel anatomy (step 5).  How they measure on the shared scans, and which scans they
were chosen on, is ``python -m covidct.research.quantify_evaluation`` (see its notes).

Limits: a small solid consolidation without ground glass around it (under
``max_solid_ml``) is dropped with the vessels; a lesion narrower than the cuboid in every
direction (a small nodule, a thin sub-pleural band) is missed unless it touches a larger
one; large hilar structures that survive the opening inside the lung mask can read as
lesion; dependent (gravitational) density in a supine scan looks like ground glass to any
density measure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from ..preprocess.morphology import bounding_box
from .hu_bands import DEFAULT_BANDS

# Boundaries of the ground-glass / consolidation split inside the lesion mask (label values).
LESION_LABELS = {"ground_glass": 1, "consolidation": 2}
CONSOLIDATION_FROM_HU = -300.0


@dataclass(frozen=True)
class LesionSettings:
    working_spacing_mm: float = 1.5
    opening_radius_inplane_mm: float = 3.0
    opening_radius_axial_mm: float = 2.0
    max_lesion_hu: float = 150.0
    min_depth_mm: float = 5.0
    solid_hu: float = -300.0
    solid_fraction: float = 0.5
    max_solid_ml: float = 10.0
    grow_mm: float = 3.0
    vessel_hu: float = -400.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["method"] = ("grey-level opening (background density) on a ~1.5 mm grid, seeds in the involved "
                         "HU range reaching min_depth_mm into the lung, grown by grow_mm")
        return out


DEFAULT_LESION_SETTINGS = LesionSettings()


@dataclass
class LesionMasks:
    """Full-shape boolean masks plus the depth of each lung voxel (mm), all in array order."""

    lesions: np.ndarray
    vessels: np.ndarray
    depth_mm: np.ndarray
    working_spacing_kji_mm: tuple
    opening_size_voxels: tuple


def lowest_involved_hu(bands: Sequence = DEFAULT_BANDS) -> float:
    """The lowest HU any band marked ``involved`` starts at (the ground-glass floor)."""
    lows = [b.low_hu for b in bands if b.involved and np.isfinite(b.low_hu)]
    return float(min(lows)) if lows else -750.0


def _kji(spacing_mm) -> np.ndarray:
    return np.array([float(spacing_mm[2]), float(spacing_mm[1]), float(spacing_mm[0])])


def _to_working_grid(hu: np.ndarray, lung: np.ndarray, spacing_kji: np.ndarray, target_mm: float) -> tuple:
    """Box-average then linearly resample to about ``target_mm`` voxels (never upsampled)."""
    factors = np.maximum(1, np.floor(target_mm / spacing_kji + 0.5)).astype(int)
    if factors.max() > 1:
        hu = ndimage.uniform_filter(hu, size=tuple(int(f) for f in factors))
    zoom = tuple(float(min(1.0, s / target_mm)) for s in spacing_kji)
    if all(z == 1.0 for z in zoom):
        return hu, lung.copy()
    hu_low = ndimage.zoom(hu, zoom, order=1, prefilter=False, grid_mode=True, mode="nearest")
    lung_low = ndimage.zoom(lung.astype(np.float32), zoom, order=1, prefilter=False, grid_mode=True,
                            mode="nearest") >= 0.5
    return hu_low, lung_low


def _to_scan_grid(low: np.ndarray, shape: tuple) -> np.ndarray:
    """Nearest-neighbour map of a working-grid array back onto ``shape`` (same box)."""
    index = [np.minimum((np.arange(n) * low.shape[a] / n).astype(np.intp), low.shape[a] - 1)
             for a, n in enumerate(shape)]
    return low[np.ix_(*index)]


def masked_opening(hu: np.ndarray, lung: np.ndarray, size: tuple) -> np.ndarray:
    """Grey-level opening over the lung only: voxels outside ``lung`` neither erode nor dilate."""
    eroded = ndimage.minimum_filter(np.where(lung, hu, np.float32(4000.0)), size=size)
    return ndimage.maximum_filter(np.where(lung, eroded, np.float32(-4000.0)), size=size)


def _opening_size(settings: LesionSettings, grid_kji: np.ndarray) -> tuple:
    radii = np.array([settings.opening_radius_axial_mm, settings.opening_radius_inplane_mm,
                      settings.opening_radius_inplane_mm])
    return tuple(int(2 * np.floor(r / g + 0.5) + 1) for r, g in zip(radii, grid_kji))


def _drop_solid_tubes(seeds: np.ndarray, hu_low: np.ndarray, grid_kji: np.ndarray,
                      settings: LesionSettings) -> np.ndarray:
    """Remove seed regions that are mostly solid and small: hilar vessels and bronchial walls."""
    labels, count = ndimage.label(seeds)
    index = np.arange(1, count + 1)
    voxels = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(float)
    solid = ndimage.sum(hu_low >= settings.solid_hu, labels, index)
    volume_ml = voxels * float(np.prod(grid_kji)) / 1000.0
    drop = np.zeros(count + 1, dtype=bool)
    drop[1:] = (solid >= settings.solid_fraction * voxels) & (volume_ml < settings.max_solid_ml)
    return seeds & ~drop[labels]


def segment_lesions(hu: np.ndarray, lung_mask: np.ndarray, spacing_mm, low_hu: float = -750.0,
                    settings: LesionSettings = DEFAULT_LESION_SETTINGS) -> LesionMasks:
    """Lesion and vessel masks (full shape) and lung depth; ``spacing_mm`` is (i, j, k).

    Neither input is modified.
    """
    lung_mask = np.asarray(lung_mask, dtype=bool)
    shape = lung_mask.shape
    lesions = np.zeros(shape, dtype=bool)
    vessels = np.zeros(shape, dtype=bool)
    depth = np.zeros(shape, dtype=np.float32)
    spacing = _kji(spacing_mm)
    box = bounding_box(lung_mask, 2)  # two free voxels: the filters see the lung's edge
    lung = lung_mask[box]
    if not lung.any():
        return LesionMasks(lesions, vessels, depth, tuple(spacing), (1, 1, 1))
    hu_box = np.asarray(hu[box], dtype=np.float32)
    hu_low, lung_low = _to_working_grid(hu_box, lung, spacing, settings.working_spacing_mm)
    grid = spacing * np.array(hu_box.shape) / np.array(hu_low.shape)
    size = _opening_size(settings, grid)

    background = masked_opening(hu_low, lung_low, size)
    in_range = lung_low & (hu_low < settings.max_lesion_hu)
    seeds = lung_low & (background >= low_hu) & (background < settings.max_lesion_hu)
    depth_low = ndimage.distance_transform_edt(np.pad(lung_low, 1), sampling=grid)[1:-1, 1:-1, 1:-1]
    depth_low = depth_low.astype(np.float32)
    if seeds.any() and settings.min_depth_mm > 0:
        labels, count = ndimage.label(seeds)
        deepest = np.zeros(count + 1, dtype=np.float32)
        np.maximum.at(deepest, labels[seeds], depth_low[seeds])  # per-region maximum, seeds only
        seeds = (deepest >= settings.min_depth_mm)[labels] & (labels > 0)
    if seeds.any() and settings.max_solid_ml > 0:
        seeds = _drop_solid_tubes(seeds, hu_low, grid, settings)
    if seeds.any() and settings.grow_mm > 0:
        steps = max(1, int(np.floor(settings.grow_mm / float(grid[1:].min()) + 0.5)))
        grow_into = in_range & (hu_low >= low_hu)
        seeds = ndimage.binary_dilation(seeds, ndimage.generate_binary_structure(3, 1), iterations=steps,
                                        mask=grow_into) | seeds
    vessels_low = lung_low & (hu_low >= settings.vessel_hu) & ~seeds

    lesions[box] = _to_scan_grid(seeds, lung.shape) & lung
    vessels[box] = _to_scan_grid(vessels_low, lung.shape) & lung
    depth[box] = np.where(lung, _to_scan_grid(depth_low, lung.shape), np.float32(0.0))
    return LesionMasks(lesions, vessels, depth, tuple(float(g) for g in grid), size)


def lesion_label_map(volume, lesions: np.ndarray) -> np.ndarray:
    """uint8 label map: 0 none, 1 ground glass (< -300 HU), 2 consolidation (>= -300 HU), per voxel."""
    lesions = np.asarray(lesions, dtype=bool)
    out = np.zeros(lesions.shape, dtype=np.uint8)
    dense = np.asarray(volume.voxels) >= CONSOLIDATION_FROM_HU
    out[lesions] = LESION_LABELS["ground_glass"]
    out[lesions & dense] = LESION_LABELS["consolidation"]
    return out
