"""Classical lung segmentation from HU (no trained model, no download).

Steps, each a named function so they can be tested and reused:

1. :func:`body_mask` - everything denser than air that is connected to the largest
   object, holes filled slice by slice (the patient, without the table's air).
2. Low-density voxels inside the body (``< air_threshold_hu``) form the candidates;
   air connected to the image border (outside the patient) is excluded.
3. The large connected components are the lungs plus the airways.  :func:`airway_mask`
   grows the trachea from its most cranial cross-section through nearly pure air
   (``< -950 HU``) and removes it, so lung volumes are not inflated by the bronchi.
4. Holes (vessels, consolidation, ground glass) are filled slice by slice and a small
   closing recovers dense lesions touching the mediastinum, because disease inside the
   lung must stay inside the mask for quantification.

Limits: a large sub-pleural consolidation touching the chest wall can still be partly
outside the mask (it looks like chest wall to a threshold); emphysematous lung is kept.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InvalidCTError
from ..volume import CTVolume
from .body_mask import below, body_mask
from .morphology import (
    border_connected_in_plane, bounding_box, closing_in_plane, component_sizes, fill_holes, lookup,
)

AIR_THRESHOLD_HU = -400.0
AIRWAY_THRESHOLD_HU = -950.0
MIN_LUNG_COMPONENT_ML = 50.0
MAX_AIRWAY_ML = 250.0
HOLE_CLOSING_MM = 4.0
# In-plane holes up to this area are filled slice by slice (vessels, small nodules and
# lesions); larger ones only when enclosed in 3D.  Without the limit the dome of the
# diaphragm, cut where lung surrounds it, would be filled into the lung.
MAX_SLICE_HOLE_MM2 = 600.0


def _largest_components(sizes: np.ndarray, count: int, min_voxels: int) -> list[int]:
    """Labels of the ``count`` largest components of at least ``min_voxels`` (``sizes[0]``: background)."""
    sizes = sizes.copy()
    sizes[0] = 0
    order = np.argsort(sizes)[::-1]
    return [int(lab) for lab in order[:count] if sizes[lab] >= min_voxels]


def _select(labels: np.ndarray, count: int, keep) -> np.ndarray:
    selected = np.zeros(count + 1, dtype=bool)
    selected[list(keep)] = True
    return lookup(labels, selected)


def superior_end_index(volume: CTVolume) -> int:
    """Index of the most superior (cranial) slice, from the geometry (LPS +z is superior)."""
    m = volume.ijk_to_lps()
    return 0 if m[2, 2] < 0 else volume.num_slices - 1


def airway_mask(hu: np.ndarray, lungs_and_airways: np.ndarray, voxel_ml: float,
                superior_index: int) -> np.ndarray:
    """Trachea and main bronchi, grown from the trachea's most cranial cross-section.

    The seed is the single small air component in the most superior slice that has air
    inside the body (above the apices only the trachea is air-filled).  Returns the
    trachea alone when growth through pure air leaks into lung (more than
    ``MAX_AIRWAY_ML``), and nothing when no tube-like seed is found.
    """
    pure_air = below(hu, AIRWAY_THRESHOLD_HU) & lungs_and_airways
    slices_with_air = np.flatnonzero(pure_air.any(axis=(1, 2)))
    if slices_with_air.size == 0:
        return np.zeros_like(lungs_and_airways)
    direction = 1 if superior_index == 0 else -1  # walking caudally
    k = slices_with_air[0] if direction == 1 else slices_with_air[-1]
    labels, count = ndimage.label(pure_air[k])
    if count == 0:
        return np.zeros_like(lungs_and_airways)
    sizes = np.bincount(labels.ravel())[1:]
    if sizes.max() * voxel_ml > 8.0:  # wider than a trachea: a lung apex, no tube to follow
        return np.zeros_like(lungs_and_airways)
    seed = labels == (int(np.argmax(sizes)) + 1)
    # Components are labelled inside the box holding all pure air (the same components).
    box = bounding_box(pure_air, (0, 0, 0))
    labels3d, count3d = ndimage.label(pure_air[box])
    seed_labels = np.unique(labels3d[k - box[0].start][seed[box[1:]]])
    seed_labels = seed_labels[seed_labels > 0]
    airway = np.zeros_like(lungs_and_airways)
    airway[box] = _select(labels3d, count3d, seed_labels)
    if airway.sum() * voxel_ml > MAX_AIRWAY_ML:
        airway = _trachea_only(pure_air, k, direction, voxel_ml=voxel_ml)
    # Two voxels of margin take the partial-volume wall with it, which would otherwise
    # survive as a ring that hole filling turns back into a solid trachea.  Dilating
    # inside the airway's box plus that margin gives the same voxels, faster.
    out = np.zeros_like(lungs_and_airways)
    if airway.any():
        box = bounding_box(airway, (2, 2, 2))
        out[box] = ndimage.binary_dilation(airway[box], iterations=2) & lungs_and_airways[box]
    return out


def _trachea_only(pure_air: np.ndarray, k: int, direction: int, voxel_ml: float) -> np.ndarray:
    """Follow the single small air tube slice by slice until it splits or widens."""
    out = np.zeros_like(pure_air)
    previous = None
    while 0 <= k < pure_air.shape[0]:
        labels, count = ndimage.label(pure_air[k])
        if count == 0:
            break
        if previous is not None:
            overlapping = np.unique(labels[previous & (labels > 0)])
            overlapping = overlapping[overlapping > 0]
        else:
            overlapping = np.arange(1, count + 1)
        if overlapping.size != 1:
            break
        tube = labels == overlapping[0]
        if tube.sum() * voxel_ml > 8.0:
            break
        out[k] = tube
        previous = tube
        k += direction
    return out


def compute_lung_mask(volume: CTVolume) -> np.ndarray:
    """Boolean lung mask with the volume's shape (both lungs, airways removed).

    Raises :class:`InvalidCTError` when no lung-sized air region is found (not a chest
    CT, or intensities not in HU).
    """
    if not volume.is_hounsfield:
        raise InvalidCTError("A lung mask needs a CT in Hounsfield units; this image is an 8-bit export.")
    hu = np.asarray(volume.voxels)  # thresholds work on int16 as is: no float copy
    voxel_ml = volume.voxel_volume_ml
    body = body_mask(hu)
    candidates = below(hu, AIR_THRESHOLD_HU) & body
    # Air connected (in-plane) to the border of its slice is around the patient.
    candidates &= ~border_connected_in_plane(candidates)
    labels, count = ndimage.label(candidates)
    sizes = component_sizes(labels, count)
    min_voxels = max(1, int(MIN_LUNG_COMPONENT_ML / voxel_ml)) if volume.num_slices > 1 else 1
    keep = _largest_components(sizes, 3, min_voxels)
    if not keep:
        raise InvalidCTError(
            "No lungs found: no air-filled region of lung size inside the body. Is this a chest CT "
            "in Hounsfield units?")
    # Keep the two largest, plus a third only if comparable (a lung split by the airway removal).
    keep = [lab for lab in keep if sizes[lab] >= 0.1 * sizes[keep[0]]][:3]
    lungs = _select(labels, count, keep)
    del labels
    airways = airway_mask(hu, lungs, voxel_ml, superior_end_index(volume))
    lungs &= ~airways
    radius_vox = np.maximum(1, np.round(HOLE_CLOSING_MM / np.array(volume.spacing_mm[:2]))).astype(int)
    yy, xx = np.ogrid[-radius_vox[1]:radius_vox[1] + 1, -radius_vox[0]:radius_vox[0] + 1]
    disk = (yy / radius_vox[1]) ** 2 + (xx / radius_vox[0]) ** 2 <= 1.0
    # The rest works inside the lungs' box: closing reaches at most two radii out
    # (dilation then erosion, zero outside the image) and one free voxel around the box
    # keeps hole filling exact, so the result is the same as on the whole volume.
    box = bounding_box(lungs, (1, 2 * int(radius_vox[1]) + 2, 2 * int(radius_vox[0]) + 2))
    inner = closing_in_plane(lungs[box], disk) & body[box]
    max_hole_px = int(MAX_SLICE_HOLE_MM2 / (volume.spacing_mm[0] * volume.spacing_mm[1]))
    inner = fill_holes(inner, in_plane=False)  # lesions enclosed by lung in 3D
    inner = fill_holes(inner, in_plane=True, max_hole_voxels=max_hole_px) & ~airways[box]
    # Closing can bridge to small stray air pockets; keep lung-sized components only.
    labels, count = ndimage.label(inner)
    keep = _largest_components(component_sizes(labels, count), 3, min_voxels)
    lungs = np.zeros(hu.shape, dtype=bool)
    lungs[box] = _select(labels, count, keep) if keep else inner
    return lungs
