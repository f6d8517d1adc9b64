"""VGG-style discriminator of the paper (strided convolutions, LeakyReLU 0.2, dense head).

Eight 3x3 convolutions alternating stride 1 and 2 with doubling width, batch norm after
all but the first, then a dense classifier giving one logit (real high-resolution CT
patch vs generated).  The width is a parameter (the paper used 64; 32 trains on a CPU).
"""

from __future__ import annotations

from torch import nn

DEFAULT_DISCRIMINATOR_CONFIG = {"channels": 32, "dense": 256}


class Discriminator(nn.Module):
    def __init__(self, channels: int = 32, dense: int = 256):
        super().__init__()
        layers = [nn.Conv2d(1, channels, 3, padding=1), nn.LeakyReLU(0.2)]
        width = channels
        plan = [(channels, 2), (channels * 2, 1), (channels * 2, 2), (channels * 4, 1),
                (channels * 4, 2), (channels * 8, 1), (channels * 8, 2)]
        for out_width, stride in plan:
            layers += [nn.Conv2d(width, out_width, 3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(out_width), nn.LeakyReLU(0.2)]
            width = out_width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(width * 16, dense),
                                  nn.LeakyReLU(0.2), nn.Linear(dense, 1))

    def forward(self, image):
        return self.head(self.features(image))


def build_discriminator(config: dict) -> Discriminator:
    merged = {**DEFAULT_DISCRIMINATOR_CONFIG, **(config or {})}
    return Discriminator(channels=int(merged["channels"]), dense=int(merged["dense"]))
