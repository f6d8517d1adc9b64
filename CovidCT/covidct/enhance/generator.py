"""SRResNet generator (the paper's super-resolution network), predicting a residual over bicubic.

Layout as in the paper: a first 9x9 convolution, ``blocks`` residual blocks
(conv-BN-PReLU-conv-BN with identity skip), a conv-BN with a long skip from the first
layer, sub-pixel up-sampling (``x2`` stages: two for x4, one for x2) and a final 9x9
convolution.  One difference, stated in the model card: the network adds its output to
the bicubic up-sampling of the input, so it only has to learn the missing detail; this
trains much faster on a CPU and cannot drift in mean intensity.
Images are lung-window values in [0, 1] (one channel).

Two options of the later recipes (both off for the 1.0 weights, so those load unchanged):
``batch_norm=False`` drops the batch normalisation, as EDSR does for super-resolution (its
statistics differ between training patches and whole slices, and its running averages do
not match averaged weights); ``icnr=True`` initialises each sub-pixel convolution so that
it starts as nearest-neighbour up-sampling of its features (ICNR, Aitken et al. 2017),
which removes the checkerboard a random initialisation starts from.
``upsample="resize_conv"`` (GAN 2.2) replaces each sub-pixel stage by a resize-convolution
(nearest-neighbour x2, then one 3x3 convolution; Odena et al., Distill 2016): the same kernel
at every output pixel, so a flat input cannot come out with a periodic pattern, which the
sub-pixel GAN stages learned whatever their start (docs/enhancer-2-rule.md, rule 4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_GENERATOR_CONFIG = {"channels": 32, "blocks": 16, "scale": 4, "residual_over_bicubic": True,
                            "batch_norm": True, "icnr": False, "upsample": "subpixel"}
UPSAMPLE_KINDS = ("subpixel", "resize_conv")


def _conv_norm(channels: int, batch_norm: bool) -> list:
    """A 3x3 convolution, followed by batch norm when the recipe has it (then no bias)."""
    if batch_norm:
        return [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)]
    return [nn.Conv2d(channels, channels, 3, padding=1)]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, batch_norm: bool = True):
        super().__init__()
        self.body = nn.Sequential(*_conv_norm(channels, batch_norm), nn.PReLU(channels),
                                  *_conv_norm(channels, batch_norm))

    def forward(self, x):
        return x + self.body(x)


class SubPixelUpsample(nn.Module):
    """x2 by convolution to 4x channels then pixel shuffle (ESPCN sub-pixel layer)."""

    def __init__(self, channels: int, icnr: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU(channels)
        if icnr:
            icnr_init(self.conv.weight, 2)
            nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        return self.act(self.shuffle(self.conv(x)))


class ResizeConvUpsample(nn.Module):
    """x2 by nearest-neighbour resize then a 3x3 convolution (no phase-dependent kernels)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.PReLU(channels)

    def forward(self, x):
        return self.act(self.conv(F.interpolate(x, scale_factor=2, mode="nearest")))


@torch.no_grad()
def resize_conv_from_subpixel(source: SubPixelUpsample, target: ResizeConvUpsample) -> ResizeConvUpsample:
    """Start a resize-convolution from a trained sub-pixel layer: the mean of its phase kernels.

    With identical phases (ICNR) the two layers compute the same thing; after training the
    mean is the phase-free part of what the sub-pixel layer learned.
    """
    channels = target.conv.out_channels
    target.conv.weight.copy_(source.conv.weight.view(channels, 4, *source.conv.weight.shape[1:]).mean(1))
    target.conv.bias.copy_(source.conv.bias.view(channels, 4).mean(1))
    target.act.weight.copy_(source.act.weight)
    return target


@torch.no_grad()
def icnr_init(weight: torch.Tensor, factor: int) -> torch.Tensor:
    """Fill a sub-pixel convolution's weight so its ``factor**2`` phases start identical.

    Pixel shuffle takes output channel ``c * factor**2 + phase`` to phase ``phase`` of
    channel ``c``; giving every phase the same kernel makes the shuffled output a
    nearest-neighbour up-sampling of one convolution, so no phase (grid) pattern is there
    to begin with.
    """
    out_channels = weight.shape[0] // (factor * factor)
    base = torch.empty(out_channels, *weight.shape[1:])
    nn.init.kaiming_normal_(base)
    weight.copy_(base.repeat_interleave(factor * factor, dim=0))
    return weight


class SRResNet(nn.Module):
    def __init__(self, channels: int = 32, blocks: int = 16, scale: int = 4,
                 residual_over_bicubic: bool = True, batch_norm: bool = True, icnr: bool = False,
                 upsample: str = "subpixel"):
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, not {scale}")
        if upsample not in UPSAMPLE_KINDS:
            raise ValueError(f"upsample must be one of {UPSAMPLE_KINDS}, not {upsample!r}")
        self.scale = scale
        self.residual_over_bicubic = residual_over_bicubic
        self.head = nn.Sequential(nn.Conv2d(1, channels, 9, padding=4), nn.PReLU(channels))
        self.trunk = nn.Sequential(*[ResidualBlock(channels, batch_norm) for _ in range(blocks)])
        self.trunk_tail = nn.Sequential(*_conv_norm(channels, batch_norm))
        stage = (lambda: ResizeConvUpsample(channels)) if upsample == "resize_conv" else (
            lambda: SubPixelUpsample(channels, icnr))
        self.upsample = nn.Sequential(*[stage() for _ in range(int(math.log2(scale)))])
        self.tail = nn.Conv2d(channels, 1, 9, padding=4)
        if residual_over_bicubic:
            # Start as plain bicubic: the residual branch begins at zero.
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def residual(self, low: torch.Tensor) -> torch.Tensor:
        """The learned detail at the high resolution (without the bicubic base)."""
        features = self.head(low)
        features = features + self.trunk_tail(self.trunk(features))
        return self.tail(self.upsample(features))

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        out = self.residual(low)
        if self.residual_over_bicubic:
            out = out + bicubic_upsample(low, self.scale)
        return out


def fold_batch_norm(generator: SRResNet) -> SRResNet:
    """Inference copy with every BatchNorm folded into the convolution before it.

    Same outputs in eval mode (to float rounding), a third fewer kernels per block:
    BatchNorm is a per-channel affine map once its statistics are frozen.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(generator).eval()
    for sequential in [block.body for block in folded.trunk] + [folded.trunk_tail]:
        for index, layer in enumerate(list(sequential)):
            if isinstance(layer, nn.BatchNorm2d) and isinstance(sequential[index - 1], nn.Conv2d):
                sequential[index - 1] = fuse_conv_bn_eval(sequential[index - 1], layer)
                sequential[index] = nn.Identity()
    return folded


def bicubic_upsample(low: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic (a = -0.75, as OpenCV) with pixel-centre alignment, the baseline and the base."""
    return F.interpolate(low, scale_factor=scale, mode="bicubic", align_corners=False)


def build_generator(config: dict) -> SRResNet:
    merged = {**DEFAULT_GENERATOR_CONFIG, **(config or {})}
    return SRResNet(channels=int(merged["channels"]), blocks=int(merged["blocks"]),
                    scale=int(merged["scale"]), residual_over_bicubic=bool(merged["residual_over_bicubic"]),
                    batch_norm=bool(merged["batch_norm"]), icnr=bool(merged["icnr"]),
                    upsample=str(merged["upsample"]))
