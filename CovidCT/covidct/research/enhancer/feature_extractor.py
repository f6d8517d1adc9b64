"""A feature network that knows CT, for the feature ("perceptual") loss.

The paper compared generated and real images in the feature space of an ImageNet VGG19.
No ImageNet weights can be fetched here, and photographs are not CT anyway, so this
small VGG-like encoder is trained **self-supervised on the training patients' CT
slices**: it learns to tell an original high-resolution lung-window patch from the same
patch after each kind of degradation the enhancer must undo (x2 / x4 area down-sampling
then bicubic, blur, noise, JPEG).  Its features are therefore sensitive to exactly the
detail that super-resolution must restore (edges, fissures, vessel walls, texture), and
it needs no labels.  The features used by the loss are taken before the activation, as
in ESRGAN, so they are not sparse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_FEATURE_CONFIG = {"channels": 32, "layers": [1, 2]}

# Self-supervised classes: what happened to the patch.
DEGRADATION_CLASSES = ("original", "area_x2", "area_x4", "blur", "noise", "jpeg")


def _conv_bn(inputs: int, outputs: int) -> list:
    return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs)]


class CTFeatureEncoder(nn.Module):
    """VGG-like, with batch norm (without it the self-supervised task did not train in
    200 CPU steps) and a fixed high-pass copy of the input as a second channel, so the
    fine detail that separates the classes is visible from the first layer."""

    def __init__(self, channels: int = 32, num_classes: int = len(DEGRADATION_CLASSES)):
        super().__init__()
        c1, c2, c3 = channels, channels * 2, channels * 4
        self.level0 = nn.Sequential(*_conv_bn(2, c1), nn.ReLU(), *_conv_bn(c1, c1))
        self.level1 = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2), *_conv_bn(c1, c2), nn.ReLU(), *_conv_bn(c2, c2))
        self.level2 = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2), *_conv_bn(c2, c3), nn.ReLU(), *_conv_bn(c3, c3))
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c3, num_classes))
        binomial = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        self.register_buffer("smoothing", ((binomial[:, None] * binomial[None]) / 256.0)[None, None],
                             persistent=False)

    def _inputs(self, image: torch.Tensor) -> torch.Tensor:
        smooth = F.conv2d(F.pad(image, (2, 2, 2, 2), mode="replicate"), self.smoothing)
        return torch.cat([image - 0.5, (image - smooth) * 10.0], dim=1)

    def features(self, image: torch.Tensor) -> list:
        """Pre-activation feature maps of the three levels (full, 1/2 and 1/4 resolution)."""
        f0 = self.level0(self._inputs(image))
        f1 = self.level1(f0)
        f2 = self.level2(f1)
        return [f0, f1, f2]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image)[-1])


def build_feature_encoder(config: dict) -> CTFeatureEncoder:
    merged = {**DEFAULT_FEATURE_CONFIG, **(config or {})}
    return CTFeatureEncoder(channels=int(merged["channels"]))


def frozen(module: nn.Module) -> nn.Module:
    """Evaluation mode with gradients off for the parameters (inputs still get gradients)."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module
