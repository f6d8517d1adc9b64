"""A simple body mask (for "inside the body" metrics and the quality gate).

HU > -500, largest connected component, holes filled, per slice: the patient without
the air around them and without the table in most scans.  Cheap, and independent of
the lung segmentation.
"""

from __future__ import annotations

import numpy as np


def body_mask_slice(hu: np.ndarray, threshold_hu: float = -500.0) -> np.ndarray:
    from scipy import ndimage

    tissue = np.asarray(hu) > threshold_hu
    labels, count = ndimage.label(tissue)
    if count == 0:
        return np.zeros(tissue.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = labels == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(largest)


def body_mask(hu_volume: np.ndarray, threshold_hu: float = -500.0) -> np.ndarray:
    """Boolean mask of the same shape, slice by slice (``[k, j, i]``)."""
    hu_volume = np.asarray(hu_volume)
    if hu_volume.ndim == 2:
        return body_mask_slice(hu_volume, threshold_hu)
    return np.stack([body_mask_slice(s, threshold_hu) for s in hu_volume])
