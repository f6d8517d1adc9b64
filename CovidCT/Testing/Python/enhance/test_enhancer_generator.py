"""The generator's recipe options: ICNR starts grid-free, a network without batch norm round-trips."""

from __future__ import annotations

import numpy as np
import torch

from covidct.enhance import enhance_volume
from covidct.enhance.generator import SubPixelUpsample, build_generator, fold_batch_norm
from covidct.enhance.weights_io import load_generator, write_generator_weights
from covidct.models import ModelStore
from enhancer_helpers import synthetic_hu_volume

NO_BN = {"channels": 8, "blocks": 2, "residual_over_bicubic": True, "batch_norm": False, "icnr": True, "scale": 4}


def _phase_spread(layer: SubPixelUpsample, features: torch.Tensor) -> float:
    """How different the four sub-pixel phases of the up-sampled features are (0: none)."""
    with torch.no_grad():
        out = layer.shuffle(layer.conv(features))
    phases = torch.stack([out[..., a::2, b::2] for a in (0, 1) for b in (0, 1)])
    return float((phases - phases.mean(dim=0)).abs().max())


def test_icnr_initialised_sub_pixel_layer_has_identical_phases():
    torch.manual_seed(0)
    features = torch.rand(1, 8, 12, 12)
    assert _phase_spread(SubPixelUpsample(8, icnr=True), features) < 1e-6
    assert _phase_spread(SubPixelUpsample(8, icnr=False), features) > 1e-2  # the default start has a grid


def test_generator_without_batch_norm_has_none_and_starts_as_bicubic():
    generator = build_generator(NO_BN).eval()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in generator.modules())
    low = torch.rand(1, 1, 10, 10)
    assert torch.allclose(generator(low), torch.nn.functional.interpolate(low, scale_factor=4, mode="bicubic"))
    assert torch.equal(fold_batch_norm(generator)(low), generator(low))


def test_weights_without_batch_norm_load_and_enhance(tmp_path):
    torch.manual_seed(1)
    generator = build_generator(NO_BN)
    with torch.no_grad():
        generator.tail.weight.normal_(0, 0.01)
    write_generator_weights(tmp_path, "enhancer_x4_fidelity", generator, NO_BN, training={"test": True})
    loaded, entry = load_generator("enhancer_x4_fidelity", tmp_path)
    assert entry["config"]["batch_norm"] is False
    low = torch.rand(1, 1, 9, 9)
    with torch.no_grad():
        assert torch.allclose(loaded(low), generator.eval()(low).half().float(), atol=2e-3)
    volume = synthetic_hu_volume()
    out, info = enhance_volume(volume, scale=4, device="cpu", models=ModelStore(tmp_path))
    assert out.voxels.shape == (2, 128, 160)
    assert np.isfinite(out.voxels).all()


def _flat_output_phase_spread(generator) -> float:
    """Spread of the four x2 phase means of the output for a flat input (away from the borders)."""
    with torch.no_grad():
        out = generator.eval()(torch.full((1, 1, 48, 48), 0.4))[0, 0, 64:-64, 64:-64].double()
    spread = torch.stack([out[a::4, b::4].mean() for a in range(4) for b in range(4)]).std()
    return float(spread / (out.abs().mean() + 1e-12))  # relative: random weights give any scale


def test_resize_convolution_cannot_make_a_grid_from_a_flat_input_where_sub_pixel_can():
    torch.manual_seed(2)
    config = {**NO_BN, "icnr": False}
    sub_pixel, resize = build_generator(config), build_generator({**config, "upsample": "resize_conv"})
    for generator in (sub_pixel, resize):  # random weights everywhere, tail included
        with torch.no_grad():
            for parameter in generator.parameters():
                parameter.normal_(0, 0.2)
    assert _flat_output_phase_spread(sub_pixel) > 1e-2
    assert _flat_output_phase_spread(resize) < 1e-5


def test_resize_convolution_starts_from_a_sub_pixel_layers_response_to_flat_features():
    from covidct.enhance.generator import ResizeConvUpsample, resize_conv_from_subpixel

    torch.manual_seed(3)
    source = SubPixelUpsample(8, icnr=True)
    with torch.no_grad():
        source.conv.bias.copy_(torch.randn(8).repeat_interleave(4))
    target = resize_conv_from_subpixel(source, ResizeConvUpsample(8))
    features = torch.rand(1, 8, 1, 1).expand(1, 8, 10, 10)
    with torch.no_grad():
        # Same output for flat features (away from the zero-padded border); for structured
        # features the two differ (kernel at the low vs the high resolution): the `resize` stage adapts it.
        assert torch.allclose(source(features)[..., 4:-4, 4:-4], target(features)[..., 4:-4, 4:-4], atol=1e-5)


def test_unknown_upsample_kind_is_refused():
    import pytest

    with pytest.raises(ValueError, match="upsample"):
        build_generator({**NO_BN, "upsample": "deconv"})
