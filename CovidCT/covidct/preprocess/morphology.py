"""Binary morphology on whole ``[k, j, i]`` volumes, exact and fast.

Why not call scipy.ndimage directly: its hole filling and closing are generic iterative
propagations that took ~12 s for a 512² x 150 lung mask.  Each function here gives the
*same voxels* as the scipy call it replaces (checked against it in the tests), computed
instead with one connected-component labelling (hole filling) or with 1D running
max/min filters (closing with a flat in-plane element), and on a cropped box where the
result cannot reach beyond it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# 4-connectivity within a slice and no connection between slices: a 3D labelling with
# this structure labels every slice on its own, in one call.
IN_PLANE_4 = np.zeros((3, 3, 3), dtype=bool)
IN_PLANE_4[1] = ndimage.generate_binary_structure(2, 1)


def lookup(labels: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """``np.isin(labels, ...)`` as a table look-up: ``selected[label]`` for every voxel."""
    return np.asarray(selected, dtype=bool)[labels]


def component_sizes(labels: np.ndarray, count: int) -> np.ndarray:
    """Voxel count per label (index 0 is the background)."""
    # bincount on int32 labels is ~5x slower than converting to intp first.
    return np.bincount(labels.ravel().astype(np.intp, copy=False), minlength=count + 1)


def _border_labels(labels: np.ndarray, in_plane: bool) -> np.ndarray:
    faces = [labels[..., 0, :], labels[..., -1, :], labels[..., :, 0], labels[..., :, -1]]
    if not in_plane and labels.ndim == 3:
        faces += [labels[0], labels[-1]]
    return np.unique(np.concatenate([f.ravel() for f in faces]))


def fill_holes(mask: np.ndarray, in_plane: bool = True, max_hole_voxels=None) -> np.ndarray:
    """Fill background regions not connected to the border.

    ``in_plane=True``: slice by slice (4-connectivity), as ``binary_fill_holes`` on each
    slice; ``False``: in 3D (6-connectivity), as ``binary_fill_holes`` on the volume.
    With ``max_hole_voxels``, only holes up to that size (per slice when in plane) are
    filled.  A 2D mask is one slice.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 2:
        return fill_holes(mask[None], in_plane, max_hole_voxels)[0]
    if mask.size == 0:
        return mask.copy()
    structure = IN_PLANE_4 if in_plane else None
    labels, count = ndimage.label(~mask, structure=structure)
    is_hole = np.ones(count + 1, dtype=bool)
    is_hole[0] = False
    is_hole[_border_labels(labels, in_plane)] = False
    if max_hole_voxels is not None:
        is_hole &= component_sizes(labels, count) <= max_hole_voxels
    return mask | lookup(labels, is_hole)


def border_connected_in_plane(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` whose in-plane (4-connected) component touches the slice border."""
    if mask.size == 0:
        return np.zeros_like(mask)
    labels, count = ndimage.label(mask, structure=IN_PLANE_4)
    touches = np.zeros(count + 1, dtype=bool)
    touches[_border_labels(labels, in_plane=True)] = True
    touches[0] = False
    return lookup(labels, touches)


def bounding_box(mask: np.ndarray, margin=0) -> tuple:
    """Slices of the smallest box holding ``mask``, widened by ``margin`` voxels (clipped to the array).

    ``margin`` is one number for every axis or one per axis.  An empty mask gives empty
    slices (``slice(0, 0)`` on every axis), so ``array[box]`` is empty rather than an error.
    Any number of dimensions; the axis projections are cheaper than ``np.nonzero``.
    """
    margins = np.broadcast_to(np.asarray(margin, dtype=int), (mask.ndim,))
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if hits.size == 0:
            return tuple(slice(0, 0) for _ in range(mask.ndim))
        box.append(slice(max(0, int(hits[0]) - int(margins[axis])),
                         min(mask.shape[axis], int(hits[-1]) + int(margins[axis]) + 1)))
    return tuple(box)


def _row_half_widths(structure_2d: np.ndarray) -> dict:
    """{row offset: half width} of a symmetric element whose rows are centred segments."""
    structure_2d = np.asarray(structure_2d, dtype=bool)
    rows, cols = structure_2d.shape
    if rows % 2 == 0 or cols % 2 == 0 or not np.array_equal(structure_2d, structure_2d[::-1, ::-1]):
        raise ValueError("the structuring element must be odd-sized and point-symmetric")
    widths = {}
    for r in range(rows):
        hits = np.flatnonzero(structure_2d[r])
        if hits.size == 0:
            continue
        half = (cols - 1) // 2 - int(hits[0])
        expected = np.zeros(cols, dtype=bool)
        expected[(cols - 1) // 2 - half:(cols - 1) // 2 + half + 1] = True
        if not np.array_equal(structure_2d[r], expected):
            raise ValueError("each row of the structuring element must be one centred segment")
        widths[r - (rows - 1) // 2] = half
    return widths


def _rows_combined(volume: np.ndarray, widths: dict, dilate: bool) -> np.ndarray:
    """Dilation (OR) or erosion (AND) by the element, outside the array counting as 0."""
    nj = volume.shape[1]
    line_filter = ndimage.maximum_filter1d if dilate else ndimage.minimum_filter1d
    filtered = {half: line_filter(volume, size=2 * half + 1, axis=2, mode="constant", cval=0)
                for half in set(widths.values())}
    out = np.zeros_like(volume) if dilate else np.ones_like(volume)
    for dj, half in widths.items():
        source = filtered[half]
        # out[:, j] combines source[:, j + dj]; rows shifted in from outside are 0.
        lo, hi = max(0, -dj), min(nj, nj - dj)
        if hi <= lo:  # the element row lies wholly outside the slice
            if not dilate:
                out[:] = 0
            continue
        if dilate:
            np.maximum(out[:, lo:hi], source[:, lo + dj:hi + dj], out=out[:, lo:hi])
        else:
            np.minimum(out[:, lo:hi], source[:, lo + dj:hi + dj], out=out[:, lo:hi])
            out[:, :lo] = 0
            out[:, hi:] = 0
    return out


def closing_in_plane(mask: np.ndarray, structure_2d: np.ndarray) -> np.ndarray:
    """``ndimage.binary_closing(mask, structure_2d[None])`` (border value 0), per slice.

    The element must be point-symmetric with each row a centred segment (a disk or
    ellipse is); dilation and erosion then decompose into 1D running max/min filters.
    """
    mask = np.asarray(mask, dtype=bool)
    widths = _row_half_widths(structure_2d)
    as_bytes = mask.view(np.uint8)
    dilated = _rows_combined(as_bytes, widths, dilate=True)
    return _rows_combined(dilated, widths, dilate=False).view(bool)
