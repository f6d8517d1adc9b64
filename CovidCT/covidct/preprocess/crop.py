"""Bounding boxes around the lungs, so models see lungs, not table, text or borders."""

from __future__ import annotations

import numpy as np


def lung_bounding_box(mask: np.ndarray, margin_vox: int = 0) -> tuple[slice, ...] | None:
    """Slices ``(k, j, i)`` of the smallest box holding ``mask`` (grown by a margin).

    Works for 2D masks too (returns two slices).  ``None`` when the mask is empty.
    """
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        start = max(0, int(present[0]) - margin_vox)
        stop = min(mask.shape[axis], int(present[-1]) + 1 + margin_vox)
        box.append(slice(start, stop))
    return tuple(box)


def square_box_2d(box: tuple[slice, slice], shape: tuple[int, int]) -> tuple[slice, slice]:
    """Grow a 2D box to a square (keeps aspect ratio when resized), clipped to the image."""
    rows, cols = box
    height, width = rows.stop - rows.start, cols.stop - cols.start
    side = min(max(height, width), min(shape))
    centre_r, centre_c = (rows.start + rows.stop) // 2, (cols.start + cols.stop) // 2
    r0 = int(np.clip(centre_r - side // 2, 0, shape[0] - side))
    c0 = int(np.clip(centre_c - side // 2, 0, shape[1] - side))
    return slice(r0, r0 + side), slice(c0, c0 + side)
