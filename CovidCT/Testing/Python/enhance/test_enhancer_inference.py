"""enhance_volume: shapes, geometry, HU range, 2D images, scale choice, progress and cancel."""

from __future__ import annotations

import numpy as np
import pytest

from covidct.enhance import assess_quality, choose_scale, enhance_volume
from covidct.enhance.inference import residual_detail
from covidct.errors import CancelledError, DeviceError, InvalidCTError
from covidct.models import ModelStore
from covidct.preprocess.resample import scaled_in_plane_geometry
from covidct.progress import CancelToken
from covidct.volume import CTVolume
from enhancer_helpers import synthetic_hu_volume, write_tiny_weights


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    directory = tmp_path_factory.mktemp("enhancer_weights")
    write_tiny_weights(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_models(tiny_weights):
    return ModelStore(tiny_weights)


def _voxel_corner_lps(volume: CTVolume) -> np.ndarray:
    """LPS position of the outer corner of voxel (0, 0) in-plane (half a voxel before its centre)."""
    si, sj, _ = volume.spacing_mm
    return np.asarray(volume.origin_lps) - volume.direction_lps @ np.array([si / 2, sj / 2, 0.0])


@pytest.mark.parametrize("scale", [2, 4])
def test_shape_geometry_and_hu_range(tiny_models, scale):
    volume = synthetic_hu_volume()
    before = volume.voxels.copy()
    out, info = enhance_volume(volume, scale=scale, device="cpu", models=tiny_models)
    assert np.array_equal(volume.voxels, before), "input must not be modified"
    assert out.shape == (2, 32 * scale, 40 * scale)
    assert out.voxels.dtype == np.int16
    assert out.spacing_mm == pytest.approx((0.8 / scale, 0.7 / scale, 2.5))
    assert np.allclose(out.direction_lps, volume.direction_lps)
    # Physical extent preserved: same outer corner, same far corner.
    assert np.allclose(_voxel_corner_lps(out), _voxel_corner_lps(volume), atol=1e-6)
    far_in = volume.ijk_to_lps() @ np.array([40 - 0.5, 32 - 0.5, 0, 1])
    far_out = out.ijk_to_lps() @ np.array([40 * scale - 0.5, 32 * scale - 0.5, 0, 1])
    assert np.allclose(far_in, far_out, atol=1e-6)
    # Slice axis untouched.
    assert np.allclose(out.slice_positions_mm(), volume.slice_positions_mm())
    assert out.voxels.min() >= volume.voxels.min() and out.voxels.max() <= volume.voxels.max()
    # HU kept: the body stays near -800, the air near -1000.
    centre = out.voxels[:, 16 * scale - 2:16 * scale + 2, 8 * scale:10 * scale]
    assert abs(float(centre.mean()) + 800) < 60
    assert info["scale"] == scale and info["model_key"].startswith(f"enhancer_x{scale}")
    assert len(info["sha256"]) == 64 and info["device"] == "cpu"


def test_enhanced_geometry_formula():
    volume = synthetic_hu_volume()
    spacing, origin = scaled_in_plane_geometry(volume, 4)
    expected = np.asarray(volume.origin_lps) + volume.direction_lps @ np.array([-0.375 * 0.8, -0.375 * 0.7, 0])
    assert np.allclose(origin, expected) and spacing == pytest.approx((0.2, 0.175, 2.5))


def test_float_input_gives_float_output_and_bone_keeps_hu(tiny_models):
    volume = synthetic_hu_volume(dtype=np.float32)
    out, _ = enhance_volume(volume, scale=2, device="cpu", models=tiny_models)
    assert out.voxels.dtype == np.float32
    # The 300 HU line lies outside the lung window: it must survive in HU, not be clipped to 150.
    assert out.voxels.max() > 200


def test_2d_image_stays_in_unit_range(tiny_models):
    rng = np.random.default_rng(1)
    image = CTVolume(voxels=rng.random((1, 48, 48)).astype(np.float32), is_hounsfield=False)
    out, info = enhance_volume(image, scale=4, model="gan", device="cpu", models=tiny_models)
    assert out.shape == (1, 192, 192) and out.voxels.dtype == np.float32
    assert 0.0 <= out.voxels.min() and out.voxels.max() <= 1.0
    assert info["model_key"] == "enhancer_x4_gan" and out.is_hounsfield is False


def test_auto_scale_and_scale_one(tiny_models):
    assert choose_scale((128, 128))[0] == 4
    assert choose_scale((256, 200))[0] == 2
    assert choose_scale((512, 512))[0] == 1
    assert choose_scale((64, 64))[0] == 4
    big = CTVolume(voxels=np.full((1, 512, 512), -700, np.int16))
    out, info = enhance_volume(big, scale="auto", device="cpu", models=tiny_models)
    assert info["scale"] == 1 and out.shape == big.shape and out.voxels is not big.voxels
    with pytest.raises(InvalidCTError):
        choose_scale((128, 128), 3)


def test_x2_gan_falls_back_to_fidelity_and_says_so(tiny_models):
    _, info = enhance_volume(synthetic_hu_volume(slices=1), scale=2, model="gan", device="cpu",
                             models=tiny_models)
    assert info["model_key"] == "enhancer_x2_fidelity" and "note" in info


def test_progress_and_cancel(tiny_models):
    seen = []
    enhance_volume(synthetic_hu_volume(slices=3), scale=2, device="cpu", models=tiny_models, batch_size=1,
                   progress=lambda fraction, stage: seen.append(fraction))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) == 4
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        enhance_volume(synthetic_hu_volume(), scale=2, device="cpu", models=tiny_models, cancel=token)


def test_out_of_memory_halves_the_batch_then_gives_a_clear_error(tiny_models, monkeypatch):
    import covidct.enhance.inference as inference

    real, sizes = inference._enhance_batch, []

    def fussy(generator, slices, *args, **kwargs):
        sizes.append(len(slices))
        if len(slices) > 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(generator, slices, *args, **kwargs)

    monkeypatch.setattr(inference, "_enhance_batch", fussy)
    _, info = enhance_volume(synthetic_hu_volume(slices=3), scale=2, device="cpu", models=tiny_models,
                             batch_size=4)
    assert sizes == [3, 2, 1, 1, 1] and info["batch_size"] == 1 and "fallback" not in info
    monkeypatch.setattr(inference, "_enhance_batch", lambda *a, **k: fussy(None, [0, 0]))
    with pytest.raises(DeviceError, match="single slice on the CPU"):
        enhance_volume(synthetic_hu_volume(slices=1), scale=2, device="cpu", models=tiny_models)


def test_tiling_matches_whole_image(tiny_weights):
    import torch

    from covidct.enhance.weights_io import load_generator

    generator, _ = load_generator("enhancer_x2_fidelity", tiny_weights)
    torch.manual_seed(0)
    low = torch.rand(1, 1, 40, 36)
    with torch.inference_mode():
        whole = generator.residual(low)
        tiled = residual_detail(generator, low, 2, tile=16, margin=16)
    assert tiled.shape == whole.shape
    # The tiny net sees about 12 low-resolution pixels around each output: a 16 px margin is exact.
    assert torch.allclose(whole, tiled, atol=1e-5)


def test_quality_gate_on_small_matrix():
    volume = synthetic_hu_volume(slices=3, rows=128, cols=128)
    quality = assess_quality(volume)
    assert quality.needs_enhancement and quality.suggested_scale == 4
    assert quality.measures["in_plane_matrix"] == [128, 128]
    assert any("below 512" in reason for reason in quality.reasons)
