"""Find, verify and load shipped model weights.

Weights are data with a manifest: each ``*.pt`` in ``weights/`` has an entry in
``weights/manifest.json`` (file name, sha256, architecture name and config, version).
Loading always verifies the sha256 first, so a truncated or swapped file is refused
with a message that names the file and the expected hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import WeightsError

MANIFEST_NAME = "manifest.json"


def weights_dir() -> Path:
    """``$COVIDCT_WEIGHTS_DIR`` if set, else the repository's ``weights/`` folder.

    Inside an installed Slicer extension the weights are copied next to the module
    (``<module>/Resources/weights``), which is the second candidate.
    """
    env = os.environ.get("COVIDCT_WEIGHTS_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "weights", here.parents[1] / "Resources" / "weights"]
    for candidate in candidates:
        if (candidate / MANIFEST_NAME).exists():
            return candidate
    return candidates[0]


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory=None) -> dict:
    directory = Path(directory) if directory else weights_dir()
    path = directory / MANIFEST_NAME
    if not path.exists():
        raise WeightsError(
            f"No weights manifest at {path}. Reinstall CovidCT or set COVIDCT_WEIGHTS_DIR "
            "to the folder that holds the shipped weights.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"The weights manifest {path} is not valid JSON ({exc}).") from None


def model_entry(model_key: str, directory=None) -> dict:
    """The manifest entry for ``model_key`` (e.g. ``"enhancer_x4"``, ``"classifier"``)."""
    manifest = read_manifest(directory)
    models = manifest.get("models", {})
    if model_key not in models:
        raise WeightsError(
            f"The weights manifest has no model '{model_key}' (it has: {', '.join(sorted(models)) or 'none'}).")
    return dict(models[model_key])


def verified_weights_path(model_key: str, directory=None) -> tuple[Path, dict]:
    """Path of ``model_key``'s weights after checking the file exists and its sha256 matches."""
    directory = Path(directory) if directory else weights_dir()
    entry = model_entry(model_key, directory)
    path = directory / entry["file"]
    if not path.exists():
        raise WeightsError(f"Weights file {path} is missing. Reinstall CovidCT or restore the file.")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise WeightsError(
            f"Weights file {path.name} is corrupt or was replaced: sha256 {actual} does not match "
            f"the expected {entry['sha256']}. Restore the shipped file.")
    return path, entry


def load_state_dict(model_key: str, directory=None):
    """Verified state dict (fp16 tensors are returned as stored; callers cast)."""
    import torch

    path, entry = verified_weights_path(model_key, directory)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise WeightsError(f"Cannot load weights {path.name}: {exc}") from None
    return state, entry


def load_into(model, state_dict, model_key: str):
    """Load ``state_dict`` into ``model``, turning architecture mismatches into WeightsError."""
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in state_dict.items()})
    except RuntimeError as exc:
        raise WeightsError(
            f"The weights for '{model_key}' do not fit the network architecture "
            f"({str(exc).splitlines()[0]}). The weights and the code are from different versions.") from None
    return model
