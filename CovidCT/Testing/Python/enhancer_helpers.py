"""Helpers for the enhancer tests: tiny generators written as 'shipped' weights in a temp folder."""

from __future__ import annotations

import numpy as np
import torch

from covidct.enhance.generator import build_generator
from covidct.enhance.weights_io import write_generator_weights
from covidct.volume import CTVolume

TINY = {"channels": 8, "blocks": 2, "residual_over_bicubic": True}


def write_tiny_weights(directory, seed: int = 0) -> None:
    """x4/x2 fidelity and x4 GAN keys with small random (non-zero) weights."""
    torch.manual_seed(seed)
    for key, scale in (("enhancer_x4_fidelity", 4), ("enhancer_x4_gan", 4), ("enhancer_x2_fidelity", 2)):
        generator = build_generator({**TINY, "scale": scale})
        with torch.no_grad():
            generator.tail.weight.normal_(0, 0.01)
        write_generator_weights(directory, key, generator, {**TINY, "scale": scale}, training={"test": True})


def synthetic_hu_volume(slices=2, rows=32, cols=40, dtype=np.int16, seed=0) -> CTVolume:
    """A body-like disc with 'vessels' and air around, oblique geometry."""
    rng = np.random.default_rng(seed)
    jj, ii = np.mgrid[:rows, :cols]
    disc = ((jj - rows / 2) ** 2 / (rows / 2.3) ** 2 + (ii - cols / 2) ** 2 / (cols / 2.3) ** 2) < 1
    base = np.where(disc, -800.0, -1000.0)
    voxels = np.stack([base + rng.normal(0, 20, base.shape) for _ in range(slices)])
    voxels[:, rows // 2, cols // 3:cols // 2] = 300.0  # a bright vessel / bone edge
    theta = 0.3
    direction = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1.0]])
    return CTVolume(voxels=voxels.astype(dtype), spacing_mm=(0.8, 0.7, 2.5), origin_lps=(-100.0, 50.0, 30.0),
                    direction_lps=direction)
