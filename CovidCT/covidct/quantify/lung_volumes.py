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


def patient_left(mask: np.ndarray, volume: CTVolume) -> np.ndarray:
    """Boolean mask of the lung voxels on the patient's left.

    Uses the lung-mask module's mediastinum-following split when it is available.
    """
    mask = np.asarray(mask, dtype=bool)
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
