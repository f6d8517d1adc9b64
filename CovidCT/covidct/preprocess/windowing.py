"""Lung-window normalisation: the one intensity mapping every model input goes through.

HU volumes are mapped to [0, 1] with the lung window [-1350, 150] HU (level -600,
width 1500), which also matches the 8-bit lung-window exports in the public slice sets,
so HU scans and exported slices look alike to the networks.
"""

from __future__ import annotations

import numpy as np

LUNG_WINDOW_HU = (-1350.0, 150.0)


def lung_window(hu: np.ndarray, window_hu: tuple = LUNG_WINDOW_HU) -> np.ndarray:
    """HU -> float32 grey in [0, 1] through ``window_hu = (low, high)``, clipped outside it.

    Every window/level display in the core goes through here too (the report's panels),
    so a model input and a picture of the same slice are the same numbers.
    """
    low, high = window_hu
    out = (np.asarray(hu, dtype=np.float32) - low) / (high - low)
    return np.clip(out, 0.0, 1.0, out=out)
