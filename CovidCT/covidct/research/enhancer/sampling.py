"""Random crops and flips of training patches, shared by every enhancer recipe.

Patches are 2D ``[row, col]`` arrays, or pairs ``[2, row, col]`` (a patch and its
thick-slice copy) that must be cropped and turned together.
"""

from __future__ import annotations

import numpy as np


def augment(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flips and 90-degree turns (CT anatomy is not left-right symmetric, patches are)."""
    patch = np.rot90(patch, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(patch)


def crop(patch: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``size x size`` window of ``patch`` (the patch itself when it already fits)."""
    if patch.shape[0] == size:
        return patch
    j = int(rng.integers(0, patch.shape[0] - size + 1))
    i = int(rng.integers(0, patch.shape[1] - size + 1))
    return patch[j:j + size, i:i + size]


def crop_pair(pair: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """The same random crop of both channels of a ``[2, row, col]`` pair."""
    return np.moveaxis(crop(np.moveaxis(pair, 0, -1), size, rng), -1, 0)


def augment_pair(pair: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same flip and turn of both channels of a ``[2, row, col]`` pair."""
    return np.moveaxis(augment(np.moveaxis(pair, 0, -1), rng), -1, 0)
