"""Find, verify and load shipped model weights.

Weights are data with a manifest: each model ``KEY`` has ``weights/KEY.json`` (weights
file name, sha256, architecture config, version, validation metrics) next to its
``*.pt`` file, so models can be added or retrained independently.
Loading always verifies the sha256 first, so a truncated or swapped file is refused
with a message that names the file and the expected hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import WeightsError

MANIFEST_SUFFIX = ".json"


def package_data_dir(name: str) -> Path:
    """``covidct/_data/NAME`` inside an installed wheel (through ``importlib.resources``)."""
    from importlib.resources import files

    return Path(str(files("covidct") / "_data" / name))


def weights_dir() -> Path:
    """``$COVIDCT_WEIGHTS_DIR`` if set, else the repository's ``weights/`` folder.

    Inside an installed Slicer extension the weights are copied next to the module
    (``<module>/Resources/weights``), the second candidate; a wheel carries them as
    package data (``covidct/_data/weights``, see ``setup.py``), the third.
    """
    env = os.environ.get("COVIDCT_WEIGHTS_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "weights", here.parents[1] / "Resources" / "weights", package_data_dir("weights")]
    for candidate in candidates:
        if any(candidate.glob("*" + MANIFEST_SUFFIX)):
            return candidate
    return candidates[0]


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def available_models(directory=None) -> list[str]:
    directory = Path(directory) if directory else weights_dir()
    return sorted(p.stem for p in directory.glob("*" + MANIFEST_SUFFIX))


def model_entry(model_key: str, directory=None) -> dict:
    """The manifest of ``model_key`` (e.g. ``"enhancer_x4_gan"``, ``"classifier"``)."""
    directory = Path(directory) if directory else weights_dir()
    path = directory / f"{model_key}{MANIFEST_SUFFIX}"
    if not path.exists():
        raise WeightsError(
            f"No weights manifest for model '{model_key}' at {path} (models available: "
            f"{', '.join(available_models(directory)) or 'none'}). Reinstall CovidCT or set "
            "COVIDCT_WEIGHTS_DIR to the folder that holds the shipped weights.")
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"The weights manifest {path} is not valid JSON ({exc}).") from None
    for key in ("file", "sha256"):
        if key not in entry:
            raise WeightsError(f"The weights manifest {path} lacks the field '{key}'.")
    return entry


def write_manifest(model_key: str, entry: dict, directory=None, indent: int = 2) -> Path:
    """Write ``KEY.json`` atomically (a crash never leaves a half manifest next to good weights).

    ``indent`` keeps each model family's existing layout (the enhancers use 2, the
    classifier 1); numbers that are not plain floats (numpy) are written as floats.
    """
    from .io.atomic_write import write_text_atomic

    directory = Path(directory) if directory else weights_dir()
    path = directory / f"{model_key}{MANIFEST_SUFFIX}"
    return write_text_atomic(path, json.dumps(entry, indent=indent, default=float) + "\n")


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
