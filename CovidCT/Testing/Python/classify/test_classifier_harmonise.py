"""Harmonisation of exported grey levels: a chest phantom rendered at a grid of windows."""

import numpy as np
import pytest

from covidct.classify.harmonise import IDENTITY, apply, estimate, harmonise
from covidct.classify.input_normalisation import crop_box
from covidct.research.classifier.window_grid import CANONICAL, LUNG_LIKE, _body, render_export
from covidct.preprocess.windowing import lung_window


def chest_phantom(size=256, seed=0):
    """HU slice: air, fat ring, soft tissue, two lungs with vessels, a ground-glass patch, a vertebra."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    hu = np.full((size, size), -1000.0)
    hu[((yy - 0.5) / 0.40) ** 2 + ((xx - 0.5) / 0.47) ** 2 <= 1] = -100.0
    hu[((yy - 0.5) / 0.37) ** 2 + ((xx - 0.5) / 0.44) ** 2 <= 1] = 45.0
    lungs = np.zeros((size, size), bool)
    for cx in (0.30, 0.70):
        lungs |= ((yy - 0.48) / 0.28) ** 2 + ((xx - cx) / 0.15) ** 2 <= 1
    hu[lungs] = -860.0
    for _ in range(40):
        cy, cx = rng.uniform(0.25, 0.7), rng.choice([rng.uniform(0.2, 0.4), rng.uniform(0.6, 0.8)])
        hu[((yy - cy) ** 2 + (xx - cx) ** 2 <= 0.006 ** 2) & lungs] = 30.0
    lesion = (((yy - 0.6) ** 2 + (xx - 0.25) ** 2) <= 0.05 ** 2) & lungs
    hu[lesion] = -550.0
    hu[((yy - 0.82) ** 2 + (xx - 0.5) ** 2) <= 0.04 ** 2] = 700.0
    hu += rng.normal(0, 15, hu.shape)
    r0, r1, c0, c1 = crop_box(lungs, 0.03)          # the classifier sees the lung box
    crop = (slice(r0, r1), slice(c0, c1))
    return hu.astype(np.float32), crop, (lungs & ~lesion)[crop], lesion[crop]


@pytest.fixture(scope="module")
def phantom():
    return chest_phantom()


def _export(hu, crop, condition):
    return render_export(hu, condition, _body(hu))[crop].astype(np.float32) / 255.0


def test_the_canonical_window_is_left_almost_unchanged(phantom):
    hu, crop, lung, _ = phantom
    canonical = lung_window(hu)[crop]
    h = estimate(canonical)
    assert h.status == "dark+bright" and abs(h.gain - 1) < 0.05 and abs(h.offset) < 0.03
    assert np.abs(apply(canonical, h) - canonical).mean() < 0.02
    low, high = h.window_hu()
    assert abs(low - -1350) < 60 and abs(high - 150) < 80      # the window it was rendered with


@pytest.mark.parametrize("condition", LUNG_LIKE)
def test_every_lung_like_window_maps_back_to_the_canonical_input(phantom, condition):
    hu, crop, lung, lesion = phantom
    reference = harmonise(lung_window(hu)[crop])
    exported = _export(hu, crop, condition)
    h = estimate(exported)
    out = apply(exported, h)
    raw_error = np.abs(exported - lung_window(hu)[crop]).mean()
    error = np.abs(out - reference).mean()
    assert error < 0.04 and np.abs(out - reference)[lung].mean() < 0.01   # the lungs land where they belong
    if condition != CANONICAL:
        assert error < 0.35 * raw_error
    contrast, ref_contrast = out[lesion].mean() - out[lung].mean(), reference[lesion].mean() - reference[lung].mean()
    assert 0.8 * ref_contrast < contrast < 2.0 * ref_contrast             # ground glass is never erased
    if h.status == "dark+bright":                                          # nothing clipped: nearly exact
        assert error < 0.01 and abs(contrast - ref_contrast) < 0.05 * ref_contrast


def test_a_wide_window_with_grey_padding_and_jpeg_are_undone(phantom):
    hu, crop, lung, lesion = phantom
    reference = harmonise(lung_window(hu)[crop])
    for condition in ("W2000 L-850 grey background", "W1500 L-600 JPEG q50"):
        out = harmonise(_export(hu, crop, condition))
        assert np.abs(out - reference).mean() < 0.025, condition


def test_a_mediastinal_window_is_recognised_as_clipping_the_lungs(phantom):
    hu, crop, lung, _ = phantom
    h = estimate(_export(hu, crop, "W400 L40 (mediastinal)"))
    assert h.status == "split+bright" and h.lung_detail_clipped and h.reliable
    assert abs(apply(_export(hu, crop, "W400 L40 (mediastinal)"), h)[lung].mean() - 0.33) < 0.05


def test_an_image_without_two_tissue_classes_is_passed_through_and_says_so():
    flat = np.full((64, 64), 0.5, np.float32)
    assert estimate(flat).status == "fallback" and not estimate(flat).reliable
    assert np.array_equal(harmonise(flat), flat)
    assert estimate(np.zeros((4, 4), np.float32)) == IDENTITY


def test_harmonised_images_stay_in_range_and_do_not_touch_the_input(phantom):
    hu, crop, _, _ = phantom
    exported = _export(hu, crop, "W1000 L-800")
    before = exported.copy()
    out = harmonise(exported)
    assert np.array_equal(exported, before) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_export_style_augmentations():
    from covidct.research.classifier.augment import DEFAULT_AUGMENT, export_window, field_of_view, grey_curve

    rng = np.random.default_rng(0)
    image = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    cfg = dict(DEFAULT_AUGMENT, window_width_hu=[1500.0, 1500.0], window_level_hu=[-600.0, -600.0])
    assert np.allclose(export_window(image, rng, cfg), image, atol=1e-5)     # the canonical window is identity
    wide = export_window(image, rng, dict(cfg, window_width_hu=[3000.0, 3000.0]))
    assert np.ptp(wide) < 0.55                                               # a wider window: less contrast
    curved = grey_curve(image, rng, dict(DEFAULT_AUGMENT, curve_strength=0.15))
    assert np.all(np.diff(curved.ravel()) >= -1e-6)                           # a tone curve stays monotone
    fov = field_of_view(image, rng, dict(DEFAULT_AUGMENT, fov_radius=[0.4, 0.4], fov_background=[0.5, 0.5]))
    assert fov[0, 0] == 0.5 and fov[32, 32] == image[32, 32]


@pytest.mark.parametrize("condition", ["W1500 L-600 full slice, circular FOV", "W2000 L-850 full slice, grey circular FOV"])
def test_a_full_slice_export_is_cropped_to_its_lungs_not_its_body(phantom, condition):
    from covidct.classify.input_normalisation import content_box, export_lung_mask, lung_box

    hu, crop, _, _ = phantom
    exported = render_export(hu, condition, _body(hu)).astype(np.float32) / 255.0
    lungs = export_lung_mask(exported)
    assert lungs is not None
    r0, r1, c0, c1 = lung_box(None, exported)
    expected = (crop[0].start, crop[0].stop, crop[1].start, crop[1].stop)    # the HU lung box, 3 % margin
    assert max(abs(a - b) for a, b in zip((r0, r1, c0, c1), expected)) <= 6
    body = content_box(exported)
    assert (body[1] - body[0]) * (body[3] - body[2]) > 1.3 * (r1 - r0) * (c1 - c0)   # the body box is larger


def test_a_tightly_cropped_export_keeps_its_content_crop(phantom):
    from covidct.classify.input_normalisation import content_box, export_lung_mask, lung_box

    hu, crop, _, _ = phantom
    tight = render_export(hu, CANONICAL)[crop].astype(np.float32) / 255.0      # as the SARS-CoV-2 exports
    assert export_lung_mask(tight) is None
    assert lung_box(None, tight) == content_box(tight)


def test_gated_harmonisation_leaves_canonical_exports_alone_and_corrects_far_ones(phantom):
    from covidct.classify.harmonise import GATE_HU, gate, harmonise_gated

    hu, crop, lung, _ = phantom
    canonical = lung_window(hu)[crop]
    assert gate(estimate(canonical)).weight == 0.0          # within the estimator's noise: untouched
    assert np.array_equal(harmonise_gated(canonical), np.clip(canonical, 0, 1))
    wide = _export(hu, crop, "W2000 L-400")                 # 450 HU from the canonical window at the top end
    h = gate(estimate(wide))
    assert h.deviation_hu() > GATE_HU[1] and h.weight == 1.0
    assert np.allclose(harmonise_gated(wide), harmonise(wide))
    # Between the two gate levels the correction is blended in, not switched.
    half = gate(estimate(wide), (h.deviation_hu() - 10.0, h.deviation_hu() + 10.0))
    assert half.weight == pytest.approx(0.5)
    blended = apply(wide, half)
    assert np.abs(blended - (wide + harmonise(wide)) / 2).max() < 1e-5


def test_gated_harmonisation_keeps_a_fallback_as_it_is():
    from covidct.classify.harmonise import gate

    flat = np.full((64, 64), 0.5, np.float32)
    h = gate(estimate(flat))
    assert not h.reliable and h.weight == 1.0 and h.gain == 1.0 and h.offset == 0.0
