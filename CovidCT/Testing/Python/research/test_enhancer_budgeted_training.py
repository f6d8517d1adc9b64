"""Budgeted enhancer training: schedule, EMA, batch-norm refresh, resume and the new degradations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from covidct.enhance import degradation as deg
from covidct.research.enhancer.budgeted_training import EMA, BudgetedRun, budget_lr, make_pair_batch, refresh_batch_norm
from covidct.research.enhancer.data import extract_pair_patches
from covidct.enhance.generator import build_generator
from covidct.errors import UnsupportedInputError

TINY = {"channels": 4, "blocks": 1, "residual_over_bicubic": True}


def _config(max_steps: int) -> dict:
    return {"name": "budget-test", "seed": 3, "threads": 1,
            "data": {"train_patients": [], "validation_patients": [], "patch_hr": 32},
            "degradation": {"extra_probability": 0.7, "max_sharpen_gain": 1.0,
                            "noise_correlation_px_range": [0.6, 1.2], "thick_probability": 0.5},
            "generator": TINY,
            "budgeted": {"max_seconds": 1e9, "max_steps": max_steps, "batch": 2, "lr": 1e-3, "warmup_steps": 2,
                         "ema_decay": 0.9, "validate_every": 1000, "checkpoint_seconds": 0, "batch_norm_batches": 2}}


def _pairs(count: int = 6, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    thin = rng.normal(-600, 200, (count, size, size))
    return np.round(np.stack([thin, thin * 0.8 - 100], axis=1)).astype(np.int16)


def test_schedule_warms_up_then_decays_to_the_floor():
    cfg = {"lr": 1e-3, "min_lr": 1e-5, "warmup_steps": 10, "max_steps": 100, "max_seconds": 1e9}
    warm = [budget_lr(s, 0.0, cfg) for s in range(10)]
    assert warm == sorted(warm) and warm[-1] == pytest.approx(1e-3)
    decay = [budget_lr(s, 0.0, cfg) for s in range(10, 101, 10)]
    assert all(a >= b for a, b in zip(decay, decay[1:])) and decay[-1] == pytest.approx(1e-5)
    # Time can finish the budget before the steps do.
    assert budget_lr(20, 2e9, cfg) == pytest.approx(1e-5)


def test_ema_follows_the_weights_and_batch_norm_is_re_estimated():
    torch.manual_seed(0)
    model = build_generator({**TINY, "scale": 4})
    ema = EMA(model, 0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model, step=100)
    key = "head.0.weight"
    assert torch.allclose(ema.shadow[key], model.state_dict()[key] - 0.5, atol=1e-6)
    batch = torch.rand(4, 1, 8, 8) * 0.2 + 0.7
    refresh_batch_norm(model, [batch], "cpu")
    norm = model.trunk[0].body[1]
    assert not model.training
    assert float(norm.running_mean.abs().sum()) > 0  # measured on the batch, no longer the reset zeros


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    whole = BudgetedRun(_config(6), tmp_path, tmp_path / "whole", log=lambda m: None)
    whole.pairs = _pairs()
    whole.run()
    first = BudgetedRun(_config(6), tmp_path, tmp_path / "split", log=lambda m: None)
    first.pairs = _pairs()
    assert first.run(stop_at_step=3)["steps"] == 3
    second = BudgetedRun(_config(6), tmp_path, tmp_path / "split", log=lambda m: None)
    second.pairs = _pairs()
    summary = second.run()
    assert summary["steps"] == 6
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=False)
    for key, value in a["generator"].items():
        assert torch.equal(value, b["generator"][key]), key


def test_a_checkpoint_of_another_recipe_is_refused(tmp_path):
    run = BudgetedRun(_config(2), tmp_path, tmp_path / "run", log=lambda m: None)
    run.pairs = _pairs()
    run.run()
    other = _config(2)
    other["generator"] = {**TINY, "channels": 8}
    with pytest.raises(UnsupportedInputError, match="another config"):
        BudgetedRun(other, tmp_path, tmp_path / "run", log=lambda m: None).run()


def test_pair_batches_take_the_thick_copy_for_thick_slice_samples():
    rng = np.random.default_rng(1)
    pairs = _pairs()
    pairs[:, 1] = -1000  # the thick copy is air: a sample that used it has a black input
    low, high = make_pair_batch(pairs, 64, 4, rng, {"extra_probability": 1.0, "thick_probability": 1.0}, 32)
    assert low.shape == (64, 1, 8, 8) and high.shape == (64, 1, 32, 32)
    assert float(low.mean()) < 0.26 and float(high.mean()) > 0.4


def test_ct_like_noise_has_the_asked_spread_and_neighbour_correlation():
    rng = np.random.default_rng(0)
    noise = deg.ct_like_noise((256, 256), 20.0, 1.0, rng)
    white = deg.ct_like_noise((256, 256), 20.0, 0.0, rng)
    assert noise.std() == pytest.approx(20.0, rel=0.02) and abs(noise.mean()) < 1.0
    corr = lambda x: np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1]  # noqa: E731
    assert corr(noise) > 0.3 and abs(corr(white)) < 0.05


def test_sharp_kernel_adds_edge_contrast_and_thick_slices_average_neighbours():
    edge = np.zeros((32, 32), np.float32)
    edge[:, 16:] = 100.0
    sharp = deg.sharpen(edge, 1.0)
    assert sharp.max() > 100.0 and sharp.min() < 0.0 and deg.sharpen(edge, 0.0) is not None
    volume = np.stack([np.full((4, 4), v, np.float32) for v in (0.0, 30.0, 60.0)])
    thick = deg.thick_slices(volume, 3)
    assert thick[1, 0, 0] == pytest.approx(30.0) and thick[0, 0, 0] == pytest.approx(10.0)
    low = deg.degrade_volume_hu(np.repeat(volume, 2, axis=1).repeat(2, axis=2),
                                deg.Degradation(scale=2, thick_slices=3))
    assert low.shape == (3, 4, 4) and low[0, 0, 0] == pytest.approx(10.0)


def test_old_recipes_draw_the_same_degradations_as_before():
    """New faults are drawn only when configured, so the shipped 1.0 recipe's stream is unchanged."""
    a = [deg.random_degradation(np.random.default_rng(5), 4) for _ in range(1)]
    rng = np.random.default_rng(5)
    draws = [deg.random_degradation(rng, 4) for _ in range(50)]
    assert a[0] == draws[0]
    assert all(d.sharpen_gain == 0 and d.noise_correlation_px == 0 and d.thick_slices == 1 for d in draws)


def test_pair_patches_keep_the_thick_copy_aligned_and_add_reformats():
    rng = np.random.default_rng(0)
    volume = np.tile(np.arange(12, dtype=np.float32)[:, None, None] * 10 - 500, (1, 48, 48))
    pairs = extract_pair_patches(volume, (0.7, 0.7, 1.4), 16, 2, rng, min_mean_hu=-900, thick=3,
                                 reformat_share=0.2)
    axial = 12 * 2
    assert pairs.shape[1:] == (2, 16, 16) and len(pairs) > axial
    interior = [p for p in pairs[:axial] if -490 <= p[0, 0, 0] <= -400]
    assert interior and all(np.array_equal(p[0], p[1]) for p in interior)  # a linear ramp: thick mean == centre
    assert all(np.array_equal(p[0], p[1]) for p in pairs[axial:])  # reformats: no thick copy


def test_each_single_fault_condition_differs_from_clean_x4_and_gain_cis_cover_the_mean():
    from covidct.research.enhancer.evaluation import CONDITIONS, PER_DEGRADATION, mean_ci

    rng = np.random.default_rng(0)
    volume = rng.normal(-600, 250, (5, 32, 32)).astype(np.float32)
    clean = deg.degrade_volume_hu(volume, CONDITIONS["x4"], np.random.default_rng(1))
    for name in PER_DEGRADATION[1:]:
        low = deg.degrade_volume_hu(volume, CONDITIONS[name], np.random.default_rng(1))
        assert low.shape == clean.shape and np.abs(low - clean).mean() > 1.0, name
    values = rng.normal(2.0, 0.5, 40)
    low, high = mean_ci(values)
    assert low < values.mean() < high and high - low < 0.5


def test_texture_metrics_see_smoothing_noise_and_a_grid():
    from covidct.research.enhancer.evaluation import texture_metrics

    rng = np.random.default_rng(0)
    truth = np.clip(rng.normal(0.5, 0.05, (2, 32, 32)), 0, 1)
    body = np.ones_like(truth, dtype=bool)
    same = texture_metrics(truth, truth, body, 4)
    assert same["high_frequency_power_ratio"] == pytest.approx(1.0) and same["grid_phase_bias_hu"] == 0.0
    smooth = texture_metrics(deg.gaussian_blur(truth, 1.5), truth, body, 4)
    assert smooth["high_frequency_power_ratio"] < 0.3
    grid = truth.copy()
    grid[:, ::4, ::4] += 0.02  # one phase of every 4x4 block brighter: a sub-pixel grid
    assert texture_metrics(grid, truth, body, 4)["grid_phase_bias_hu"] > 5.0


def test_spectrum_distance_is_zero_for_the_truth_and_grows_with_smoothing_and_a_grid():
    from covidct.research.enhancer.evaluation import spectrum_distance_db

    rng = np.random.default_rng(0)
    truth = np.clip(rng.normal(0.5, 0.05, (3, 64, 64)), 0, 1)
    body = np.zeros_like(truth, dtype=bool)
    body[:, 8:56, 4:60] = True
    assert spectrum_distance_db(truth, truth, body, 4) == pytest.approx(0.0, abs=1e-9)
    slight = spectrum_distance_db(deg.gaussian_blur(truth, 0.5), truth, body, 4)
    strong = spectrum_distance_db(deg.gaussian_blur(truth, 1.5), truth, body, 4)
    assert 0.5 < slight < strong
    grid = truth.copy()
    grid[:, ::4, ::4] += 0.1
    noisy = truth + rng.normal(0, 0.002, truth.shape)  # far below the texture's own power
    assert spectrum_distance_db(grid, truth, body, 4) > 3 * spectrum_distance_db(noisy, truth, body, 4)
