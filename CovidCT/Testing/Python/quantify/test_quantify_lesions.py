"""Lesion segmentation on synthetic lungs: tubes (vessels) must not count, opacities must.

The phantom has a scanner-like grid (0.8 x 0.8 mm pixels, 2 mm slices).  The lesion mask is
decided on a ~1.5 mm working grid and mapped back, so a lesion border can move by about
half a working voxel (0.75 mm); volume tolerances below are that shell (surface area x
0.75 mm), not a guess.
"""

import math

import numpy as np
import pytest

from covidct.quantify import (LesionSettings, NO_VESSEL_FILTER, lesion_label_map, quantify_lungs,
                              quantify_lungs_with_masks)
from covidct.quantify.lesions import segment_lesions
from covidct.volume import CTVolume

SPACING = (0.8, 0.8, 2.0)          # (i, j, k) mm
SHAPE = (40, 100, 100)             # 80 x 80 x 80 mm
HEALTHY_HU = -860.0
HALF_VOXEL_MM = 0.75


def lesion_mask(volume, lung_mask):
    """The lesion mask (the volume's shape) at the default settings and bands."""
    return segment_lesions(np.asarray(volume.voxels), lung_mask, volume.spacing_mm).lesions


def _mm_grids():
    kk, jj, ii = np.meshgrid(*(np.arange(n) * s for n, s in zip(SHAPE, SPACING[::-1])), indexing="ij")
    return kk, jj, ii


def _noise(seed=0):
    return np.random.default_rng(seed).normal(0.0, 25.0, SHAPE).astype(np.float32)


def lung_phantom(seed=0):
    """Healthy lung cube with: a thin vessel, a 6 mm vessel (both with a partial-volume rim
    in the ground-glass range), a 20 mm ground-glass ball and a 5 ml solid 'hilar' tube."""
    kk, jj, ii = _mm_grids()
    hu = np.full(SHAPE, HEALTHY_HU, dtype=np.float32)
    mask = np.zeros(SHAPE, dtype=bool)
    mask[1:-1, 3:-3, 3:-3] = True
    vessels = np.zeros(SHAPE, dtype=bool)
    for (cj, ci, radius) in ((20.0, 20.0, 1.5), (20.0, 60.0, 3.0)):   # tubes along k
        r = np.hypot(jj - cj, ii - ci)
        hu[r <= radius] = 40.0
        hu[(r > radius) & (r <= radius + 1.0)] = -500.0                 # partial-volume rim
        vessels |= r <= radius + 1.0
    # In-plane tube 12 mm wide, 40 mm long, solid: a hilar artery, wider than the opening.
    r_hilar = np.hypot(kk - 60.0, jj - 62.0)
    hilar = (r_hilar <= 6.0) & (ii >= 20.0) & (ii <= 60.0)
    hu[hilar] = 40.0
    ball = (kk - 30.0) ** 2 + (jj - 45.0) ** 2 + (ii - 40.0) ** 2 <= 10.0 ** 2
    hu[ball] = -550.0
    hu = hu + _noise(seed)
    hu[~mask] = 40.0  # chest wall
    return CTVolume(hu, spacing_mm=SPACING), mask, ball, vessels & mask, hilar & mask


def _shell_tolerance_voxels(radius_mm):
    voxel_mm3 = float(np.prod(SPACING))
    return 4.0 * math.pi * radius_mm ** 2 * HALF_VOXEL_MM / voxel_mm3


def test_ground_glass_ball_counts_and_vessels_do_not():
    volume, mask, ball, vessels, hilar = lung_phantom()
    lesions = lesion_mask(volume, mask)
    assert not (lesions & vessels).any(), "vessel or its partial-volume rim counted as lesion"
    assert not (lesions & hilar).any(), "solid hilar tube counted as lesion"
    found, true = np.count_nonzero(lesions & ball), np.count_nonzero(ball)
    assert abs(np.count_nonzero(lesions) - true) <= _shell_tolerance_voxels(10.0)
    assert found >= 0.85 * true
    # Nothing is found away from the ball: everything lies within one working voxel (at most
    # one 2 mm slice) of its surface.
    kk, jj, ii = _mm_grids()
    near_ball = (kk - 30.0) ** 2 + (jj - 45.0) ** 2 + (ii - 40.0) ** 2 <= (10.0 + SPACING[2]) ** 2
    assert not (lesions & ~near_ball).any()


def test_healthy_lung_with_vessels_has_no_lesions():
    volume, mask, ball, _, _ = lung_phantom(seed=1)
    hu = volume.voxels.copy()
    hu[ball] = HEALTHY_HU
    assert not lesion_mask(volume.with_voxels(hu), mask).any()


def test_consolidation_in_ground_glass_counts_above_0_hu():
    kk, jj, ii = _mm_grids()
    hu = np.full(SHAPE, HEALTHY_HU, dtype=np.float32) + _noise(2)
    mask = np.zeros(SHAPE, dtype=bool)
    mask[1:-1, 3:-3, 3:-3] = True
    r2 = (kk - 40.0) ** 2 + (jj - 40.0) ** 2 + (ii - 40.0) ** 2
    hu[r2 <= 14.0 ** 2] = -500.0    # ground-glass halo
    hu[r2 <= 8.0 ** 2] = 30.0       # dense core above 0 HU (the old 'dense' band)
    volume = CTVolume(hu, spacing_mm=SPACING)
    lesions = lesion_mask(volume, mask)
    core = r2 <= 8.0 ** 2
    assert lesions[core].all()
    labels = lesion_label_map(volume, lesions)
    assert (labels[core] == 2).mean() > 0.95 and (labels[lesions & ~core] == 1).mean() > 0.8


def test_subpleural_opacity_counts_but_a_partial_volume_sliver_does_not():
    kk, jj, ii = _mm_grids()
    hu = np.full(SHAPE, HEALTHY_HU, dtype=np.float32) + _noise(3)
    mask = np.zeros(SHAPE, dtype=bool)
    mask[1:-1, 3:-3, 3:-3] = True
    # A half-ball of ground glass against the lung surface at j = 3 voxels (2.4 mm).
    wall_mm = 3 * SPACING[1]
    half_ball = ((kk - 40.0) ** 2 + (jj - wall_mm) ** 2 + (ii - 40.0) ** 2 <= 12.0 ** 2) & mask
    hu[half_ball] = -500.0
    # A 2 mm layer of partial volume along the opposite surface, like a diaphragm dome.
    sliver = mask & (jj >= (SHAPE[1] - 3) * SPACING[1] - 2.0)
    hu[sliver] = -550.0
    hu[~mask] = 40.0
    lesions = lesion_mask(CTVolume(hu, spacing_mm=SPACING), mask)
    assert np.count_nonzero(lesions & half_ball) >= 0.8 * np.count_nonzero(half_ball)
    assert not (lesions & sliver).any()


def test_quantify_uses_the_lesion_mask_and_keeps_the_band_numbers():
    volume, mask, ball, _, _ = lung_phantom()
    hu_before = volume.voxels.copy()
    q, masks = quantify_lungs_with_masks(volume, mask)
    assert np.array_equal(volume.voxels, hu_before)
    n_lung = np.count_nonzero(mask)
    assert q["total"]["involvement_percent"] == pytest.approx(100.0 * np.count_nonzero(masks["lesions"]) / n_lung)
    assert q["total"]["involvement_percent"] == pytest.approx(100.0 * np.count_nonzero(ball) / n_lung, rel=0.25)
    unfiltered = quantify_lungs(volume, mask, vessel_filter=NO_VESSEL_FILTER)["total"]["involvement_percent"]
    assert q["total"]["involvement_without_vessel_filter_percent"] == pytest.approx(unfiltered)
    assert unfiltered > q["total"]["involvement_percent"]  # rims and noise are what the lesion mask drops
    assert q["total"]["lesion_ground_glass_percent"] + q["total"]["lesion_consolidation_percent"] == \
        pytest.approx(q["total"]["involvement_percent"])
    assert q["settings"]["lesions"]["opening_radius_inplane_mm"] == 3.0
    assert q["total"]["vessel_ml"] > 0


def test_settings_change_the_result():
    volume, mask, ball, _, _ = lung_phantom()
    default = segment_lesions(volume.voxels, mask, volume.spacing_mm).lesions
    wide = segment_lesions(volume.voxels, mask, volume.spacing_mm,
                           settings=LesionSettings(opening_radius_inplane_mm=15.0)).lesions
    assert np.count_nonzero(wide) < 0.5 * np.count_nonzero(default)  # a 30 mm cuboid does not fit the ball


def test_empty_lung_mask_gives_empty_masks():
    volume, mask, _, _, _ = lung_phantom()
    out = segment_lesions(volume.voxels, np.zeros_like(mask), volume.spacing_mm)
    assert not out.lesions.any() and not out.vessels.any()
