"""Windowing, lung mask, boxes and resampling (with property-based geometry checks)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dicom_factory as factory
from covidct.errors import InvalidCTError
from covidct.preprocess import (
    area_downsample, body_mask, bounding_box, compute_lung_mask, lung_window, resample_to_grid,
    scaled_in_plane_geometry,
)
from covidct.quantify.lung_volumes import side_masks, side_volumes_ml
from covidct.volume import CTVolume
from volume_helpers import resize_in_plane


def test_lung_window_maps_and_clips():
    hu = np.array([-2000.0, -1350.0, -600.0, 150.0, 900.0])
    unit = lung_window(hu)
    assert unit.dtype == np.float32
    assert np.allclose(unit, [0, 0, 0.5, 1, 1])
    assert np.allclose(lung_window(np.array([0, 127.5, 255, 300]), (0.0, 255.0)), [0, 0.5, 1, 1])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["p001", "normal001"])
def test_lung_mask_on_real_scans(request, name):
    volume = request.getfixturevalue(name)
    mask = compute_lung_mask(volume)
    volumes = side_volumes_ml(mask, volume)
    assert 2000 < volumes["total_ml"] < 8000, volumes
    assert 0.35 < volumes["left_ml"] / volumes["total_ml"] < 0.65
    assert not (mask & ~body_mask(volume.voxels.astype(np.float32))).any()
    # The trachea at the top of the scan is not lung.
    top = int(np.argmax(volume.slice_positions_mm()))
    hu_top = volume.voxels[top]
    assert not (mask[top] & (hu_top < -950)).sum() > 200


def test_lung_mask_on_sample(sample_scan):
    from covidct.io import load_ct

    volume = load_ct(sample_scan)
    volumes = side_volumes_ml(compute_lung_mask(volume), volume)
    assert 4000 < volumes["total_ml"] < 8000


def test_lung_mask_sides_follow_lps():
    hu = factory.phantom_hu(rows=96, cols=96, slices=40)
    volume = CTVolume(hu, spacing_mm=(3.0, 3.0, 3.0))
    mask = compute_lung_mask(volume)
    left = side_masks(mask, volume)["left"]
    # The phantom's right lung (small column index) is the bigger one.
    volumes = side_volumes_ml(mask, volume)
    assert volumes["right_ml"] > 1.5 * volumes["left_ml"]
    assert left[:, :, :40].sum() == 0
    # Mirror the image and flip the direction's x: same patient, same answer.
    mirrored = CTVolume(hu[:, :, ::-1].copy(), spacing_mm=(3.0, 3.0, 3.0),
                        origin_lps=(3.0 * 95, 0, 0), direction_lps=np.diag([-1.0, 1.0, 1.0]))
    mirrored_volumes = side_volumes_ml(compute_lung_mask(mirrored), mirrored)
    assert mirrored_volumes["right_ml"] == pytest.approx(volumes["right_ml"], rel=0.02)


def test_no_lungs_is_a_clear_error():
    solid = CTVolume(np.full((10, 64, 64), 40.0), spacing_mm=(1, 1, 1))
    with pytest.raises(InvalidCTError, match="No lungs"):
        compute_lung_mask(solid)


def test_bounding_boxes():
    mask = np.zeros((5, 20, 30), dtype=bool)
    mask[1:3, 4:9, 10:25] = True
    assert bounding_box(mask) == (slice(1, 3), slice(4, 9), slice(10, 25))
    assert bounding_box(mask, 2) == (slice(0, 5), slice(2, 11), slice(8, 27))
    assert bounding_box(mask, (0, 1, 2)) == (slice(1, 3), slice(3, 10), slice(8, 27))
    assert bounding_box(mask[1]) == (slice(4, 9), slice(10, 25))
    assert bounding_box(np.zeros((3, 3), dtype=bool)) == (slice(0, 0), slice(0, 0))


def test_area_downsample_is_block_mean():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert np.allclose(area_downsample(image, 2), [[2.5, 4.5], [10.5, 12.5]])


@settings(max_examples=30, deadline=None)
@given(scale=st.sampled_from([0.25, 0.5, 2.0, 4.0]),
       spacing=st.tuples(st.floats(0.3, 3.0), st.floats(0.3, 3.0), st.floats(0.5, 5.0)),
       origin=st.tuples(*[st.floats(-300, 300)] * 3),
       angle=st.floats(-np.pi, np.pi))
def test_scaled_grid_keeps_physical_extent(scale, spacing, origin, angle):
    c, s = np.cos(angle), np.sin(angle)
    direction = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    volume = CTVolume(np.zeros((2, 8, 8), dtype=np.float32), spacing, origin, direction)
    new_spacing, new_origin = scaled_in_plane_geometry(volume, scale)
    scaled = CTVolume(np.zeros((2, int(8 * scale), int(8 * scale))), new_spacing, new_origin, direction)

    def corner(v, i, j):  # outer edge of voxel (i, j) in LPS
        m = v.ijk_to_lps()
        return m[:3, :3] @ np.array([i - 0.5, j - 0.5, 0]) + m[:3, 3]

    assert np.allclose(corner(volume, 0, 0), corner(scaled, 0, 0), atol=1e-6)
    assert np.allclose(corner(volume, 8, 8), corner(scaled, 8 * scale, 8 * scale), atol=1e-6)
    assert new_spacing[2] == pytest.approx(spacing[2])


@settings(max_examples=15, deadline=None)
@given(shift=st.integers(-3, 3), scale=st.sampled_from([1, 2]))
def test_resample_to_grid_follows_physical_space(shift, scale):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(3, 10, 10)).astype(np.float32)
    reference = CTVolume(data, spacing_mm=(1.0, 1.0, 2.0))
    moved = CTVolume(data, spacing_mm=(1.0, 1.0, 2.0), origin_lps=(float(shift), 0.0, 0.0))
    out = resample_to_grid(data, moved, reference, order=0, fill_value=np.nan)
    # reference voxel i sits where moved voxel i - shift does
    i = np.arange(10)
    valid = (i - shift >= 0) & (i - shift < 10)
    assert np.allclose(out[:, :, i[valid]], data[:, :, (i - shift)[valid]])
    # Up-sampling then sampling back at the original centres is exact for a linear ramp.
    jj, ii = np.mgrid[0:10, 0:10]
    ramp = CTVolume(np.stack([ii + 2.0 * jj] * 3).astype(np.float32), spacing_mm=(1.0, 1.0, 2.0))
    up = resize_in_plane(ramp, scale, order=1)
    back = resample_to_grid(up.voxels, up, ramp, order=1)
    assert np.allclose(back[:, 1:-1, 1:-1], ramp.voxels[:, 1:-1, 1:-1], atol=1e-3)
