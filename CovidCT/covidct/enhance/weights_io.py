"""Write and read the enhancer's shipped generator weights (fp16 file + JSON manifest).

The manifest follows :mod:`covidct.weights`: ``file``, ``sha256``, ``version``,
``config`` (the generator architecture), ``training`` and ``metrics`` (filled by
``covidct evaluate-enhancer --update-manifests``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from .. import weights as weights_mod
from ..io import write_bytes_atomic
from ..preprocess.windowing import LUNG_WINDOW_HU

ENHANCER_VERSION = "1.0.0"


def write_generator_weights(directory, key: str, generator, gen_config: dict, training: dict) -> Path:
    """Save ``generator`` as fp16 ``KEY.pt`` and its manifest ``KEY.json`` atomically."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
             for k, v in generator.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    weights_path = directory / f"{key}.pt"
    write_bytes_atomic(weights_path, buffer.getvalue())
    manifest_path = directory / f"{key}.json"
    previous = {}
    if manifest_path.exists():
        try:
            previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            previous = {}
    manifest = {
        "file": weights_path.name,
        "sha256": weights_mod.sha256_of(weights_path),
        "version": ENHANCER_VERSION,
        "architecture": "SRResNet",
        "config": dict(gen_config),
        "input": (f"lung window [{LUNG_WINDOW_HU[0]:g}, {LUNG_WINDOW_HU[1]:g}] HU scaled to [0, 1]; "
                  "output = bicubic + learned residual"),
        "precision": "float16",
        "training": training,
        "metrics": previous.get("metrics", {}),
        "card": "ENHANCER_CARD.md",
    }
    weights_mod.write_manifest(key, manifest, directory)
    return weights_path


def update_manifest_metrics(directory, key: str, metrics: dict) -> None:
    """Record validation metrics in the manifest (the weights file is not touched)."""
    directory = Path(directory) if directory else weights_mod.weights_dir()
    path = directory / f"{key}.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["metrics"] = metrics
    weights_mod.write_manifest(key, manifest, directory)


def load_generator(key: str, directory=None):
    """The verified generator (checksum checked first) in eval mode, and its manifest."""
    from .generator import build_generator

    state, entry = weights_mod.load_state_dict(key, directory)
    generator = build_generator(entry.get("config", {}))
    weights_mod.load_into(generator, state, key)
    generator.eval()
    return generator, entry
