"""Small synthetic fixtures for the classifier tests (no data files, no shipped weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from covidct.classify.api import Classifier
from covidct.classify.network import build_network
from covidct.volume import CTVolume

TINY_NETWORK = {"stem_channels": 4, "block_channels": [4, 8, 8, 8], "tail_channels": 8, "fc_channels": [8, 4]}


def tiny_classifier(threshold: float = 0.5, pooling: str = "top_k_mean", size_px: int = 32) -> Classifier:
    import torch

    torch.manual_seed(0)
    model = build_network(TINY_NETWORK).eval()
    entry = {"name": "test", "version": "0", "sha256": "none", "threshold": threshold,
             "pooling": pooling, "config": {"network": TINY_NETWORK, "input_size_px": size_px}}
    return Classifier(model, entry, "cpu")


def write_tiny_classifier_weights(directory, threshold: float = 0.5) -> str:
    """A tiny random classifier released as ``classifier.pt`` and its manifest; returns its sha256."""
    import json

    import torch

    from covidct.weights import sha256_of

    directory = Path(directory)
    torch.manual_seed(0)
    torch.save(build_network(TINY_NETWORK).state_dict(), directory / "classifier.pt")
    sha256 = sha256_of(directory / "classifier.pt")
    entry = {"name": "classifier", "file": "classifier.pt", "sha256": sha256, "version": "tiny",
             "threshold": threshold, "pooling": "top_k_mean",
             "config": {"network": TINY_NETWORK, "input_size_px": 32, "standardisation": "none", "crop": "slice"}}
    (directory / "classifier.json").write_text(json.dumps(entry))
    return sha256


def synthetic_chest(num_slices: int = 4, size: int = 64, empty_slices=(0,)) -> tuple:
    """An HU volume with two dark 'lungs' in a soft-tissue body, and its lung mask."""
    hu = np.full((num_slices, size, size), -1000.0, dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    body = (yy - size / 2) ** 2 / (0.42 * size) ** 2 + (xx - size / 2) ** 2 / (0.46 * size) ** 2 <= 1
    lungs = np.zeros((size, size), bool)
    for cx in (0.32 * size, 0.68 * size):
        lungs |= (yy - size / 2) ** 2 / (0.28 * size) ** 2 + (xx - cx) ** 2 / (0.13 * size) ** 2 <= 1
    mask = np.zeros(hu.shape, bool)
    for k in range(num_slices):
        hu[k][body] = 40.0
        if k not in empty_slices:
            hu[k][lungs] = -850.0
            mask[k] = lungs
    rng = np.random.default_rng(0)
    hu += rng.normal(0, 10, hu.shape).astype(np.float32)
    volume = CTVolume(voxels=hu, spacing_mm=(0.7, 0.7, 2.0), origin_lps=(-20.0, -30.0, 100.0))
    return volume, mask
