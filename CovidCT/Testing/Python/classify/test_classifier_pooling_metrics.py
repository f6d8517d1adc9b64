import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covidct.classify import metrics, pooling
from covidct.classify.input_normalisation import normalise_slice, standardise_histogram


def test_top_k_mean_uses_the_highest_tenth():
    scores = [0.1] * 27 + [0.9, 0.8, 0.7]          # 30 slices -> k = 3
    assert pooling.top_k(30) == 3
    assert pooling.top_k_mean(scores) == pytest.approx(0.8)
    assert pooling.top_k(100) == 10 and pooling.top_k(2) == 2


def test_pooling_ignores_slices_without_lung():
    scores = [None, 0.2, float("nan"), 0.4, None]
    assert pooling.any_slice(scores) == pytest.approx(0.4)
    assert pooling.top_k_mean(scores) == pytest.approx(0.3)
    assert np.isnan(pooling.top_k_mean([None, None]))


def test_noisy_or_of_top_slices():
    scores = [0.5, 0.5, 0.5, 0.0, 0.0, 0.0]          # top 3 are 0.5
    assert pooling.noisy_or(scores) == pytest.approx(1 - 0.5 ** 3)


def test_middle_50_mean_uses_central_slices_in_order():
    scores = [1.0, 1.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0]   # central half = indices 2..5
    assert pooling.middle_50_mean(scores) == pytest.approx(0.5)


def test_focal_disease_beats_diffuse_low_scores_except_for_middle_mean():
    focal = [0.05] * 20 + [0.95] * 3 + [0.05] * 7
    diffuse = [0.3] * 30
    assert pooling.top_k_mean(focal) > pooling.top_k_mean(diffuse)
    assert pooling.any_slice(focal) > pooling.any_slice(diffuse)
    assert pooling.middle_50_mean(focal) < pooling.middle_50_mean(diffuse)
    with pytest.raises(ValueError):
        pooling.pool(focal, "median-of-everything")


def test_auc_and_threshold_metrics_on_crafted_scores():
    labels = [0, 0, 0, 1, 1, 1]
    assert metrics.auc(labels, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]) == 1.0
    assert metrics.auc(labels, [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]) == 0.0
    assert metrics.auc(labels, [0.5] * 6) == 0.5
    m = metrics.at_threshold(labels, [0.1, 0.6, 0.3, 0.7, 0.4, 0.9], 0.5)
    assert m["confusion"] == {"tp": 2, "fp": 1, "tn": 2, "fn": 1}
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["ppv"] == pytest.approx(2 / 3)
    t = metrics.youden_threshold(labels, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert 0.3 < t <= 0.7


def test_bootstrap_ci_contains_auc():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = labels * 0.5 + rng.random(200)
    low, high = metrics.bootstrap_auc_ci(labels, scores, n_boot=300)
    assert low < metrics.auc(labels, scores) < high < 1.0


def test_paired_auc_difference_is_narrower_than_separate_cis_and_signed():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    shared = labels * 0.6 + rng.random(300)            # errors both inputs share
    worse = shared + rng.normal(0, 0.15, 300)           # the same cases, a little noisier
    d = metrics.paired_auc_difference(labels, worse, shared, n_boot=400)
    assert d["difference"] == pytest.approx(metrics.auc(labels, shared) - metrics.auc(labels, worse))
    assert d["difference"] > 0 and d["difference_ci95"][0] > 0 and d["p_b_not_better"] < 0.05
    assert d["b_better_shown"]
    separate = metrics.bootstrap_auc_ci(labels, shared, n_boot=400)
    assert d["difference_ci95"][1] - d["difference_ci95"][0] < separate[1] - separate[0]
    swapped = metrics.paired_auc_difference(labels, shared, worse, n_boot=400)
    assert swapped["difference"] == pytest.approx(-d["difference"]) and swapped["p_b_not_better"] > 0.95
    same = metrics.paired_auc_difference(labels, shared, shared, n_boot=50)
    assert same["difference"] == 0 and same["difference_ci95"] == [0.0, 0.0] and not same["b_better_shown"]
    with pytest.raises(ValueError):
        metrics.paired_auc_difference(labels, shared, shared[:-1])


@settings(max_examples=25, deadline=None)
@given(st.floats(0.5, 2.0), st.floats(-0.2, 0.2))
def test_histogram_standardisation_removes_any_window_change(gamma, level):
    """Equalisation makes a slice and its re-windowed (monotone-mapped) copy identical."""
    rng = np.random.default_rng(1)
    image = rng.permutation(np.linspace(0.2, 1.0, 1024)).reshape(32, 32).astype(np.float32)
    rewindowed = (image ** gamma + level).astype(np.float32)
    np.testing.assert_allclose(standardise_histogram(image), standardise_histogram(rewindowed), atol=1e-6)


def test_normalise_slice_crops_to_lungs_and_has_fixed_size():
    hu = np.full((100, 80), 40.0, np.float32)
    hu[20:60, 10:50] = -850.0
    mask = hu < -500
    image, box = normalise_slice(hu, True, mask, 64)
    assert image.shape == (64, 64) and 0.0 <= image.min() and image.max() <= 1.0
    r0, r1, c0, c1 = box
    assert r0 <= 20 and r1 >= 60 and c0 <= 10 and c1 >= 50 and (r1 - r0) < 60
    assert np.array_equal(hu[20:60, 10:50], np.full((40, 40), -850.0, np.float32))  # input untouched


def test_slices_with_a_sliver_of_lung_are_not_scored_and_crops_follow_the_mode():
    from covidct.classify.input_normalisation import lung_slices, slice_crop_boxes, volume_lung_box

    mask = np.zeros((5, 50, 60), bool)
    mask[1, 10:40, 5:55] = True        # a full section: 1500 pixels
    mask[2, 20:24, 30:34] = True       # 16 pixels: apex sliver
    mask[3, 15:35, 10:50] = True       # 800 pixels: 53 % of the largest
    mask[4, 10:20, 10:40] = True       # 300 pixels: 20 % of the largest
    assert lung_slices(mask).tolist() == [False, True, False, True, False]
    assert lung_slices(mask, 0.10).tolist() == [False, True, False, True, True]
    r0, r1, c0, c1 = volume_lung_box(mask)
    assert r0 <= 10 and r1 >= 40 and c0 <= 5 and c1 >= 55
    scan_boxes = slice_crop_boxes(mask, [1, 3], "scan")
    assert scan_boxes[1] == scan_boxes[3] == volume_lung_box(mask)
    own = slice_crop_boxes(mask, [1, 3], "slice")
    assert own[1] != own[3]
    r0, r1, c0, c1 = own[3]            # slice 3's own lungs, with a small margin
    assert 13 <= r0 <= 15 and 35 <= r1 <= 37 and 8 <= c0 <= 10 and 50 <= c1 <= 52
    with pytest.raises(ValueError, match="crop mode"):
        slice_crop_boxes(mask, [1], "box")


def test_degraded_vs_enhanced_on_2d_exports_is_paired_by_image(tmp_path):
    from PIL import Image

    from covidct.research.classifier.evaluation import CONDITIONS, degraded_vs_enhanced_2d

    from classifier_helpers import tiny_classifier

    rng = np.random.default_rng(0)
    items = []
    for i in range(8):                       # odd sizes: cropped to a multiple of 4 first
        image = (rng.random((70 + i, 61 + 2 * i)) * 200).astype(np.uint8)
        image[20:40, 15:35] = 255 if i % 2 else 30
        path = tmp_path / f"s{i}.png"
        Image.fromarray(image).save(path)
        items.append({"path": path, "label": i % 2})
    out = degraded_vs_enhanced_2d(items, {"val": np.arange(8)}, tiny_classifier(), "cpu", 4, 50,
                                  log=lambda *_: None)
    row = out["val"]
    assert out["scale"] == 4 and set(CONDITIONS) <= set(row)
    assert all(row[c]["n"] == 8 and row[c]["n_positive"] == 4 for c in CONDITIONS)
    d = row["enhanced_minus_degraded"]
    assert d["difference"] == pytest.approx(row["enhanced"]["auc"] - row["degraded"]["auc"])
    assert d["difference_ci95"][0] <= d["difference_ci95"][1]

    realistic = degraded_vs_enhanced_2d(items, {"val": np.arange(8)}, tiny_classifier(), "cpu", "x4_realistic",
                                        20, log=lambda *_: None)
    assert realistic["degradation"]["jpeg_quality"] == 75 and realistic["degradation"]["noise_hu"] == 10.0
    assert all(realistic["val"][c]["n"] == 8 for c in CONDITIONS)


def test_volume_degradation_is_per_slice_and_pure_downsampling_is_exact():
    from covidct.research.classifier.evaluation import _degrade_slices, as_degradation
    from covidct.enhance.degradation import area_downsample

    hu = np.random.default_rng(0).normal(-600, 300, (3, 32, 36)).astype(np.float32)
    pure = _degrade_slices(hu, as_degradation(4))
    assert np.array_equal(pure, area_downsample(hu, 4)) and pure.shape == (3, 8, 9)
    noisy = _degrade_slices(hu, as_degradation("x4_realistic"))
    assert noisy.shape == (3, 8, 9) and not np.allclose(noisy, pure)
    assert np.array_equal(noisy, _degrade_slices(hu, as_degradation("x4_realistic")))   # seeded


def test_clean_slices_are_listed_with_their_distance_to_infection():
    from covidct.research.classifier.evaluation import clean_slice_context

    infection = np.array([0, 1, 1, 0, 0, 0, 1, 0])
    scores = np.array([0.1, 0.9, 0.8, 0.7, np.nan, 0.2, 0.9, 0.3])
    rows = clean_slice_context(infection, scores)
    assert [(r["index"], r["slices_to_infected"]) for r in rows] == [(0, 1), (3, 1), (5, 1), (7, 1)]
    assert rows[1]["covid19"] == pytest.approx(0.7)
    assert clean_slice_context(np.zeros(4), np.zeros(4)) == []
