"""The fast binary morphology gives the very voxels of the scipy.ndimage calls it replaces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from covidct.preprocess.body_mask import above, below
from covidct.preprocess.morphology import (
    border_connected_in_plane, bounding_box, closing_in_plane, fill_holes,
)


@st.composite
def masks(draw):
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    seed = draw(st.integers(0, 2**31 - 1))
    density = draw(st.floats(0.05, 0.9))
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < density
    # Blobs with holes as well as salt-and-pepper noise.
    return ndimage.binary_dilation(mask) if draw(st.booleans()) else mask


def _disk(ry: int, rx: int) -> np.ndarray:
    yy, xx = np.ogrid[-ry:ry + 1, -rx:rx + 1]
    return (yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0


@settings(max_examples=150, deadline=None)
@given(masks(), st.integers(1, 6), st.integers(1, 6))
def test_closing_matches_scipy(mask, ry, rx):
    disk = _disk(ry, rx)
    before = mask.copy()
    assert np.array_equal(closing_in_plane(mask, disk), ndimage.binary_closing(mask, structure=disk[None]))
    assert np.array_equal(mask, before)


@settings(max_examples=150, deadline=None)
@given(masks(), st.one_of(st.none(), st.integers(1, 12)))
def test_fill_holes_match_scipy(mask, max_hole):
    assert np.array_equal(fill_holes(mask, in_plane=False), ndimage.binary_fill_holes(mask))
    expected = mask.copy()
    for k in range(mask.shape[0]):
        holes = ndimage.binary_fill_holes(mask[k]) & ~mask[k]
        labels, _ = ndimage.label(holes)
        sizes = np.bincount(labels.ravel())
        fill = sizes <= (max_hole if max_hole is not None else sizes.max())
        fill[0] = False
        expected[k] |= fill[labels]
    assert np.array_equal(fill_holes(mask, in_plane=True, max_hole_voxels=max_hole), expected)


@settings(max_examples=100, deadline=None)
@given(masks())
def test_border_connected_in_plane_matches_per_slice_labels(mask):
    expected = np.zeros_like(mask)
    for k in range(mask.shape[0]):
        labels, _ = ndimage.label(mask[k])
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        expected[k] = np.isin(labels, edge[edge > 0])
    assert np.array_equal(border_connected_in_plane(mask), expected)


def test_closing_refuses_an_element_it_cannot_decompose():
    ring = _disk(3, 3)
    ring[3, 3] = False  # the centre row is no longer one segment
    with pytest.raises(ValueError):
        closing_in_plane(np.ones((1, 8, 8), dtype=bool), ring)


def test_bounding_box_with_margin_is_clipped():
    mask = np.zeros((5, 10, 10), dtype=bool)
    mask[2, 1, 7] = True
    assert bounding_box(mask, (1, 2, 2)) == (slice(1, 4), slice(0, 4), slice(5, 10))
    assert bounding_box(np.zeros((2, 2, 2), dtype=bool), (1, 1, 1)) == (slice(0, 0),) * 3


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.int32, np.float32])
def test_integer_thresholds_match_float_comparison(dtype):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    low, high = (max(info.min, -3000), min(info.max, 3000)) if info else (-3000, 3000)
    hu = np.arange(low, high + 1).astype(dtype)
    for threshold in (-1e9, -500.0, -400.5, -0.5, 0.0, 254.5, 255.0, 2999.5, 1e9):
        assert np.array_equal(above(hu, threshold), hu.astype(np.float64) > threshold)
        assert np.array_equal(below(hu, threshold), hu.astype(np.float64) < threshold)


@pytest.mark.parametrize("shape", [(0, 0, 0), (2, 0, 5), (0, 4, 4)])
def test_empty_boxes_pass_through(shape):
    empty = np.zeros(shape, dtype=bool)
    for out in (closing_in_plane(empty, _disk(2, 2)), fill_holes(empty, in_plane=False),
                fill_holes(empty, max_hole_voxels=3), border_connected_in_plane(empty)):
        assert out.shape == shape and out.dtype == bool
