"""Preprocessing shared by every model: window, masks, crops and resampling."""

from .body_mask import body_mask_per_slice, body_mask_slice
from .crop import lung_bounding_box, square_box_2d
from .lung_mask import body_mask, compute_lung_mask, lung_volumes_ml, patient_left_mask
from .resample import area_downsample, resample_to_grid, resize_in_plane, scaled_in_plane_geometry
from .windowing import LUNG_WINDOW_HU, inverse_lung_window, lung_window, window_to_uint8

__all__ = [
    "LUNG_WINDOW_HU", "lung_window", "inverse_lung_window", "window_to_uint8",
    "body_mask", "body_mask_slice", "body_mask_per_slice", "compute_lung_mask", "lung_volumes_ml", "patient_left_mask",
    "lung_bounding_box", "square_box_2d",
    "resize_in_plane", "scaled_in_plane_geometry", "area_downsample", "resample_to_grid",
]
