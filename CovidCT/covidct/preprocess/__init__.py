"""Preprocessing shared by every model: window, masks, boxes and resampling."""

from .body_mask import body_mask_per_slice, body_mask_slice
from .lung_mask import body_mask, compute_lung_mask
from .morphology import bounding_box
from .resample import area_downsample, resample_to_grid, scaled_in_plane_geometry
from .windowing import LUNG_WINDOW_HU, lung_window

__all__ = [
    "LUNG_WINDOW_HU", "lung_window",
    "body_mask", "body_mask_slice", "body_mask_per_slice", "compute_lung_mask",
    "bounding_box",
    "scaled_in_plane_geometry", "area_downsample", "resample_to_grid",
]
