"""Training: a few steps lower the loss; the trainer exports loadable weights; degradations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from covidct.enhance import degradation as deg
from covidct.enhance.generator import build_generator
from covidct.research.enhancer.losses import FeatureLoss, pixel_loss
from covidct.research.enhancer.feature_extractor import build_feature_encoder, frozen
from covidct.research.enhancer.training import Trainer, make_sr_batch
from enhancer_helpers import TINY


def _synthetic_patches(count=32, size=48, seed=0) -> np.ndarray:
    """HU patches with edges and blobs (lung-like -850 HU, vessels +40 HU)."""
    rng = np.random.default_rng(seed)
    jj, ii = np.mgrid[:size, :size]
    out = []
    for _ in range(count):
        patch = np.full((size, size), -850.0)
        for _ in range(6):
            cj, ci, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(2, 7)
            patch[(jj - cj) ** 2 + (ii - ci) ** 2 < r * r] = 40.0
        out.append(patch + rng.normal(0, 5, patch.shape))
    return np.stack(out).astype(np.int16)


def test_area_downsample_is_block_mean():
    image = np.arange(64, dtype=np.float32).reshape(8, 8)
    low = deg.area_downsample(image, 4)
    assert low.shape == (2, 2)
    assert low[0, 1] == pytest.approx(image[:4, 4:].mean())
    assert np.allclose(deg.area_downsample(np.full((3, 12, 12), -500.0), 2), -500.0)


def test_degradations_keep_shape_and_units():
    rng = np.random.default_rng(0)
    hr = _synthetic_patches(1, 48)[0].astype(np.float32)
    spec = deg.Degradation(scale=4, blur_sigma_px=1.0, noise_hu=10.0, jpeg_quality=50)
    low = deg.degrade_hu(hr, spec, rng)
    assert low.shape == (12, 12) and low.dtype == np.float32
    assert -1400 < low.min() and low.max() < 200  # still HU (through the 8-bit lung window)
    mixes = {deg.random_degradation(rng, 2) == deg.Degradation(scale=2) for _ in range(50)}
    assert mixes == {True, False}


def test_a_few_steps_lower_the_pixel_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    # Without the bicubic base the tiny network starts far from the target, so a few steps must
    # visibly lower the loss (with the base it starts at bicubic, already close).
    generator = build_generator({**TINY, "scale": 4, "residual_over_bicubic": False})
    low, high = make_sr_batch(_synthetic_patches(), 4, 4, rng, {"extra_probability": 0.0})
    optimizer = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.9, 0.999))
    generator.train()  # batch statistics throughout: 15 steps are too few for the running ones
    losses = []
    for _ in range(15):
        loss = pixel_loss(generator(low), high)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        after = pixel_loss(generator(low), high).item()
    assert after < 0.5 * losses[0]


def test_feature_loss_is_zero_for_identical_and_positive_otherwise():
    torch.manual_seed(0)
    loss = FeatureLoss(frozen(build_feature_encoder({"channels": 4})), layers=(1, 2))
    image = torch.rand(2, 1, 32, 32)
    assert loss(image, image).item() == pytest.approx(0.0, abs=1e-7)
    assert loss(image.flip(-1), image).item() > 0.01


def test_trainer_runs_all_stages_and_exports_loadable_weights(tmp_path):
    from covidct.enhance import enhance_volume
    from covidct.models import ModelStore
    from enhancer_helpers import synthetic_hu_volume

    config = {
        "name": "test", "seed": 0, "threads": 1,
        "data": {"train_patients": [], "validation_patient": None, "patch_hr": 48},
        "degradation": {"extra_probability": 0.5},
        "generator": {"channels": 8, "blocks": 2, "residual_over_bicubic": True},
        "fidelity": {"steps": 3, "batch": 4, "lr": 1e-3},
        "features": {"channels": 4, "layers": [1, 2], "steps": 3, "batch": 4, "patch": 32, "lr": 1e-3},
        "gan": {"steps": 2, "batch": 2, "lr": 1e-4, "feature_weight": 1.0, "adversarial_weight": 1e-3,
                "pixel_weight": 0.1, "discriminator": {"channels": 4, "dense": 8}},
        "x2": {"steps": 2, "batch": 2, "patch_hr": 32, "lr": 1e-3},
        "refine": {"steps": 2, "batch": 2, "lr": 1e-4, "degradation": {"extra_probability": 0.0}},
    }
    trainer = Trainer(config, work_dir=tmp_path / "work", weights_dir=tmp_path / "weights", log=lambda m: None)
    trainer._patches = _synthetic_patches()
    results = trainer.run()
    assert set(results) == {"fidelity", "x2", "refine", "features", "gan"}
    assert (tmp_path / "work" / "generator_x4_refined.pt").exists()
    out, info = enhance_volume(synthetic_hu_volume(slices=1), scale=2, device="cpu",
                               models=ModelStore(tmp_path / "weights"))
    assert out.shape == (1, 64, 80) and info["model_key"] == "enhancer_x2_fidelity"


def test_resize_stage_converts_the_fidelity_generator_and_the_gan_starts_from_it(tmp_path):
    from covidct.enhance.generator import ResizeConvUpsample
    from covidct.enhance.weights_io import load_generator

    generator = {"channels": 8, "blocks": 2, "residual_over_bicubic": True, "batch_norm": False, "icnr": True}
    config = {
        "name": "test", "seed": 0, "threads": 1,
        "data": {"train_patients": [], "validation_patient": None, "patch_hr": 48},
        "degradation": {"extra_probability": 0.5},
        "generator": generator,
        "fidelity": {"steps": 3, "batch": 4, "lr": 1e-3},
        "features": {"channels": 4, "layers": [0, 1, 2], "steps": 2, "batch": 4, "patch": 32, "lr": 1e-3},
        "gan": {"steps": 2, "batch": 2, "lr": 1e-4, "feature_weight": 1.0, "adversarial_weight": 1e-3,
                "pixel_weight": 0.1, "discriminator": {"channels": 4, "dense": 8}},
    }
    # The sub-pixel fidelity model first (as the shipped 2.1), then the GAN 2.2 stages on it.
    first = Trainer(config, work_dir=tmp_path / "work", log=lambda m: None)
    first._patches = _synthetic_patches()
    first.run(("fidelity",))
    config = {**config, "generator": {**generator, "upsample": "resize_conv"},
              "resize": {"steps": 2, "batch": 2, "lr": 1e-4}}
    trainer = Trainer(config, work_dir=tmp_path / "work", weights_dir=tmp_path / "weights", log=lambda m: None)
    trainer._patches = _synthetic_patches()
    results = trainer.run(("resize", "features", "gan"))
    assert results["resize"]["started_from"] == "generator_x4_fidelity"
    fidelity = torch.load(tmp_path / "work" / "generator_x4_fidelity.pt", weights_only=True)
    resized = torch.load(tmp_path / "work" / "generator_x4_resize.pt", weights_only=True)
    assert resized["upsample.0.conv.weight"].shape == (8, 8, 3, 3)
    assert fidelity["upsample.0.conv.weight"].shape == (32, 8, 3, 3)
    loaded, manifest = load_generator("enhancer_x4_gan", tmp_path / "weights")
    assert manifest["config"]["upsample"] == "resize_conv"
    assert all(isinstance(stage, ResizeConvUpsample) for stage in loaded.upsample)


def test_resize_stage_refuses_a_sub_pixel_generator_config(tmp_path):
    config = {"name": "test", "seed": 0, "data": {"patch_hr": 48}, "generator": {"channels": 8, "blocks": 2},
              "resize": {"steps": 1, "batch": 1, "lr": 1e-4}}
    with pytest.raises(ValueError, match="resize_conv"):
        Trainer(config, work_dir=tmp_path, log=lambda m: None).train_resize()
