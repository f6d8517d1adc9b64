import numpy as np
import pytest
import torch

from covidct.classify.network import CLASS_NAMES, DEFAULT_CONFIG, build_network


def test_forward_shapes_and_cam_match_logits():
    torch.manual_seed(0)
    model = build_network().eval()
    x = torch.rand(2, 1, 128, 128)
    logits, cam = model.forward_with_cam(x)
    assert logits.shape == (2, len(CLASS_NAMES))
    assert cam.shape == (2, 8, 8)
    # CAM is exact: its spatial mean is the COVID-minus-non-COVID logit.
    assert torch.allclose(cam.mean(dim=(1, 2)), logits[:, 1] - logits[:, 0], atol=1e-5)
    assert torch.allclose(model(x), logits, atol=1e-6)


def test_layout_is_garcd():
    model = build_network()
    convs_per_block = [sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) for m in b.body.modules())
                       for b in model.blocks]
    assert convs_per_block == [3, 3, 4, 4]
    fc = [m for m in model.head if isinstance(m, torch.nn.Conv2d)]
    assert len(fc) == 3 and all(m.kernel_size == (1, 1) for m in fc)
    drop = [m for m in model.head if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in drop] == [DEFAULT_CONFIG["dropout"]] * 2


@pytest.mark.parametrize("size", [96, 160])
def test_other_input_sizes(size):
    logits = build_network().eval()(torch.rand(1, 1, size, size))
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()
