"""Body masks: the patient without the air around them (and, mostly, without the table).

Two flavours for two jobs: :func:`body_mask` keeps the largest dense object in 3D (for the
lung mask, where one stray slice must not add a second "body"); :func:`body_mask_slice`
works on one slice at a time (cheap; for the quality gate and "inside the body" image
metrics, where slices are judged one by one).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .morphology import component_sizes, fill_holes

BODY_THRESHOLD_HU = -500.0


def above(hu: np.ndarray, threshold_hu: float) -> np.ndarray:
    """``hu > threshold_hu`` without a float64 copy of an integer volume (same voxels)."""
    hu = np.asarray(hu)
    if hu.dtype.kind not in "iu":
        return hu > threshold_hu
    bound = np.floor(threshold_hu)  # for integers, hu > t  <=>  hu > floor(t)
    info = np.iinfo(hu.dtype)
    if bound < info.min or bound >= info.max:
        return np.full(hu.shape, bound < info.min)
    return hu > hu.dtype.type(bound)


def below(hu: np.ndarray, threshold_hu: float) -> np.ndarray:
    """``hu < threshold_hu`` without a float64 copy of an integer volume (same voxels)."""
    hu = np.asarray(hu)
    if hu.dtype.kind not in "iu":
        return hu < threshold_hu
    bound = np.ceil(threshold_hu)  # for integers, hu < t  <=>  hu < ceil(t)
    info = np.iinfo(hu.dtype)
    if bound > info.max or bound <= info.min:
        return np.full(hu.shape, bound > info.max)
    return hu < hu.dtype.type(bound)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.zeros_like(mask)
    sizes = component_sizes(labels, count)
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def body_mask(hu: np.ndarray) -> np.ndarray:
    """The patient's body: largest dense object, holes (lungs) filled per slice."""
    return fill_holes(_largest_component(above(hu, BODY_THRESHOLD_HU)), in_plane=True)


def body_mask_slice(hu: np.ndarray, threshold_hu: float = BODY_THRESHOLD_HU) -> np.ndarray:
    """One 2D slice: largest object denser than ``threshold_hu``, holes filled."""
    return ndimage.binary_fill_holes(_largest_component(np.asarray(hu) > threshold_hu))


def body_mask_per_slice(hu_volume: np.ndarray, threshold_hu: float = BODY_THRESHOLD_HU) -> np.ndarray:
    """:func:`body_mask_slice` on every slice of a ``[k, j, i]`` volume (or one 2D slice)."""
    hu_volume = np.asarray(hu_volume)
    if hu_volume.ndim == 2:
        return body_mask_slice(hu_volume, threshold_hu)
    return np.stack([body_mask_slice(s, threshold_hu) for s in hu_volume])
