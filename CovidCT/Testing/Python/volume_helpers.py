"""Volumes for tests: an exact-geometry in-plane resize (the product itself never resizes this way)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from covidct.preprocess.resample import scaled_in_plane_geometry
from covidct.volume import CTVolume


def resize_in_plane(volume: CTVolume, scale: float, order: int = 3) -> CTVolume:
    """Spline interpolation of every slice by ``scale`` (bicubic for order=3); geometry exact."""
    new_rows = int(round(volume.shape[1] * scale))
    new_cols = int(round(volume.shape[2] * scale))
    zoom = (1.0, new_rows / volume.shape[1], new_cols / volume.shape[2])
    data = ndimage.zoom(np.asarray(volume.voxels, dtype=np.float32), zoom, order=order,
                        mode="nearest", grid_mode=True)
    spacing, origin = scaled_in_plane_geometry(volume, scale)
    return volume.with_voxels(data, spacing_mm=spacing, origin_lps=origin)
