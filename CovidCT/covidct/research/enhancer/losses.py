"""Losses of the two training stages.

* Fidelity (SRResNet warm-up): mean absolute error in the lung window.
* GAN stage: feature loss (mean squared distance of CT-encoder features of generated vs
  real patches) + 1e-3 x adversarial loss, as in the paper, plus an optional small pixel
  term (weight in the config; it keeps the mean intensity anchored when the GAN stage is
  short, as ESRGAN does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pixel_loss(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(generated, target)


class FeatureLoss(nn.Module):
    """Sum over chosen encoder levels of the squared feature distance, relative to the real features.

    Dividing by the mean squared real feature makes the term scale-free (about 1 for
    unrelated images, 0 for identical ones), so its weight does not depend on how the
    encoder happened to scale its activations.
    """

    def __init__(self, encoder: nn.Module, layers=(1, 2)):
        super().__init__()
        self.encoder = encoder
        self.layers = tuple(int(i) for i in layers)

    def forward(self, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fake = self.encoder.features(generated)
        with torch.no_grad():
            real = self.encoder.features(target)
        return sum(F.mse_loss(fake[i], real[i]) / (real[i].pow(2).mean() + 1e-8) for i in self.layers)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy: real patches -> 1, generated -> 0."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss -log D(G(x)), as in SRGAN."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
