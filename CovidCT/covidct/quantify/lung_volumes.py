"""Which lung voxel belongs to which side of the patient, and how many millilitres each side holds.

Sides are the *patient's* left and right, taken from the volume's LPS geometry (the
patient's left is +x in LPS), never from the image's left and right: a scan stored
with a flipped column direction must still report the left lung as left.
"""

from __future__ import annotations

import numpy as np

from ..volume import CTVolume

SIDES = ("right", "left")


def lps_coordinate(volume: CTVolume, axis: int, shape=None) -> np.ndarray:
    """LPS coordinate ``axis`` (0 = x/left, 1 = y/posterior, 2 = z/superior) of every voxel centre, in mm.

    Built by broadcasting the three index ramps, so oblique direction cosines are handled.
    """
    nk, nj, ni = shape or volume.shape
    m = volume.ijk_to_lps()
    row = m[axis]
    out = np.full((nk, nj, ni), row[3], dtype=np.float32)
    out += (row[0] * np.arange(ni, dtype=np.float32))[None, None, :]
    out += (row[1] * np.arange(nj, dtype=np.float32))[None, :, None]
    out += (row[2] * np.arange(nk, dtype=np.float32))[:, None, None]
    return out


def _midline_split(mask: np.ndarray, volume: CTVolume) -> np.ndarray:
    """Fallback: left = x beyond the mid-point of the mask's x-extent (used when the
    preprocessing package offers no side split)."""
    x = lps_coordinate(volume, 0)
    xs = x[mask]
    if xs.size == 0:
        return np.zeros_like(mask)
    midline = 0.5 * (float(xs.min()) + float(xs.max()))
    return mask & (x > midline)


def _left_by_components(mask: np.ndarray, volume: CTVolume):
    """Left-lung mask when the lungs are two separate components, else ``None``.

    Each connected component goes to the side of its centroid's LPS x relative to the
    mid-point between the two largest components' centroids.
    """
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count < 2:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(sizes)[::-1]
    if sizes[order[1]] < 0.1 * sizes[order[0]]:
        return None  # one big component (lungs touching) and debris: not separable this way
    m = volume.ijk_to_lps()
    centroids = ndimage.center_of_mass(mask, labels, index=np.arange(1, count + 1))
    x = np.array([m[0, 0] * c[2] + m[0, 1] * c[1] + m[0, 2] * c[0] + m[0, 3] for c in centroids])
    midline = 0.5 * (x[order[0]] + x[order[1]])
    left_labels = np.flatnonzero(x > midline) + 1
    return np.isin(labels, left_labels)


def patient_left(mask: np.ndarray, volume: CTVolume) -> np.ndarray:
    """Boolean mask of the lung voxels on the patient's left.

    Separate lungs are assigned whole (a lesion never straddles the split); lungs that
    touch are split by the lung-mask module's mediastinum-following midline.
    """
    mask = np.asarray(mask, dtype=bool)
    by_components = _left_by_components(mask, volume)
    if by_components is not None:
        return by_components
    try:
        from ..preprocess.lung_mask import patient_left_mask
    except ImportError:  # pragma: no cover - only while the preprocessing module changes
        return _midline_split(mask, volume)
    return np.asarray(patient_left_mask(mask, volume), dtype=bool) & mask


def side_masks(mask: np.ndarray, volume: CTVolume) -> dict:
    """``{"right": mask, "left": mask}`` in the patient's frame."""
    mask = np.asarray(mask, dtype=bool)
    left = patient_left(mask, volume)
    return {"right": mask & ~left, "left": left}


def volume_ml(mask: np.ndarray, volume: CTVolume) -> float:
    return float(np.count_nonzero(mask)) * volume.voxel_volume_ml
