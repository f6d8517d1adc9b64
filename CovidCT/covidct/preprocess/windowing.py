"""Lung-window normalisation: the one intensity mapping every model input goes through.

HU volumes are mapped to [0, 1] with the lung window [-1350, 150] HU (level -600,
width 1500), which also matches the 8-bit lung-window exports in the public slice sets,
so HU scans and exported slices look alike to the networks.
"""

from __future__ import annotations

import numpy as np

LUNG_WINDOW_HU = (-1350.0, 150.0)


def lung_window(hu: np.ndarray, window_hu: tuple = LUNG_WINDOW_HU) -> np.ndarray:
    """HU -> float32 in [0, 1] (values outside the window are clipped)."""
    low, high = window_hu
    out = (np.asarray(hu, dtype=np.float32) - low) / (high - low)
    return np.clip(out, 0.0, 1.0, out=out)


def inverse_lung_window(unit: np.ndarray, window_hu: tuple = LUNG_WINDOW_HU) -> np.ndarray:
    """[0, 1] -> HU (the inverse of :func:`lung_window` inside the window)."""
    low, high = window_hu
    return np.asarray(unit, dtype=np.float32) * (high - low) + low


def window_to_uint8(hu: np.ndarray, window_hu: tuple = LUNG_WINDOW_HU) -> np.ndarray:
    """HU -> 8-bit grey, as an export with the lung window would look."""
    return np.round(lung_window(hu, window_hu) * 255.0).astype(np.uint8)
