"""Resampling helpers with explicit geometry: every new grid says where its voxels are."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..volume import CTVolume


def scaled_in_plane_geometry(volume: CTVolume, scale: float) -> tuple[tuple, tuple]:
    """Spacing and origin of a grid ``scale`` times finer in-plane, same physical extent.

    Voxel centres move: the first new centre sits half a new voxel inside the old first
    voxel's edge, i.e. ``origin + D @ ((1/scale - 1) / 2 * spacing)`` along i and j; the
    slice axis is untouched.  ``scale < 1`` gives the coarser grid of a down-sampling.
    """
    sx, sy, sz = volume.spacing_mm
    new_spacing = (sx / scale, sy / scale, sz)
    shift_ijk = np.array([(1.0 / scale - 1.0) / 2.0 * sx, (1.0 / scale - 1.0) / 2.0 * sy, 0.0])
    new_origin = np.asarray(volume.origin_lps) + volume.direction_lps @ shift_ijk
    return new_spacing, tuple(float(v) for v in new_origin)


def area_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Block mean over ``factor`` x ``factor`` pixels of the last two axes, float32.

    This is OpenCV's ``INTER_AREA`` for an integer factor (the down-sampling the enhancer
    paper made its low-quality inputs with), without OpenCV.  Rows/columns that do not
    fill a whole block are dropped from the end, so the output is ``floor(size / factor)``
    pixels.  The mean is accumulated in float64.
    """
    factor = int(factor)
    if factor == 1:
        return np.asarray(image, dtype=np.float32).copy()
    image = np.asarray(image, dtype=np.float32)
    rows, cols = image.shape[-2] // factor, image.shape[-1] // factor
    if rows < 1 or cols < 1:
        raise ValueError(f"image {image.shape[-2:]} is smaller than the down-sampling factor {factor}")
    cropped = image[..., :rows * factor, :cols * factor]
    blocks = cropped.reshape(image.shape[:-2] + (rows, factor, cols, factor))
    return blocks.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)


def resample_to_grid(moving: np.ndarray, moving_volume: CTVolume, reference: CTVolume,
                     order: int = 1, fill_value: float = 0.0) -> np.ndarray:
    """Sample ``moving`` (an array on ``moving_volume``'s grid) on ``reference``'s grid,
    through physical LPS coordinates (so different spacing/origin/direction line up)."""
    ref_to_lps = reference.ijk_to_lps()
    lps_to_moving = np.linalg.inv(moving_volume.ijk_to_lps())
    ref_to_moving = lps_to_moving @ ref_to_lps  # (i, j, k) -> (i, j, k)
    # scipy works in array order (k, j, i): permute the affine accordingly.
    perm = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=float)
    matrix = perm @ ref_to_moving[:3, :3] @ perm
    offset = perm @ ref_to_moving[:3, 3]
    # Exact correspondences (same grid, flips, permutations) must not lose border voxels
    # to rounding: mode="constant" drops a sample 1e-15 voxel outside the input.
    matrix, offset = _snap_to_integers(matrix), _snap_to_integers(offset)
    return ndimage.affine_transform(np.asarray(moving, dtype=np.float32), matrix, offset=offset,
                                    output_shape=reference.shape, order=order, mode="constant",
                                    cval=fill_value)


def _snap_to_integers(values: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    rounded = np.round(values)
    return np.where(np.abs(values - rounded) < tolerance, rounded, values)
