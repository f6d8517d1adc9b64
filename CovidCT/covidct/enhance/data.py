"""Where the enhancer's training and evaluation scans come from, and the patch cache.

Scans are the HU DICOM series in ``<data>/covid-ct-md/<patient>/``.  Training patches
are extracted once into a cache under the system temporary folder (never into the
repository) so repeated runs start at once.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputNotFoundError
from ..paths import default_data_dir  # noqa: F401 - re-exported for the enhancer modules

HU_SERIES_FOLDER = "covid-ct-md"


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "covidct_enhancer_cache"


def load_patient_hu(data_dir, patient: str) -> np.ndarray:
    """The patient's HU volume ``[slice, row, col]`` (float32), slices in anatomical order."""
    from ..io import load_ct

    folder = Path(data_dir) / HU_SERIES_FOLDER / patient
    if not folder.is_dir():
        raise InputNotFoundError(
            f"No HU scan for patient '{patient}' at {folder}. Pass --data pointing at the shared data "
            "folder (it holds covid-ct-md/).")
    volume = load_ct(folder)
    return volume.voxels.astype(np.float32)


def extract_patches(volume_hu: np.ndarray, patch: int, per_slice: int, rng: np.random.Generator,
                    min_mean_hu: float = -900.0, tries: int = 20) -> np.ndarray:
    """Random ``patch x patch`` HU patches, skipping those that are (almost) all air."""
    slices, rows, cols = volume_hu.shape
    out = []
    for k in range(slices):
        taken = 0
        for _ in range(per_slice * tries):
            if taken == per_slice:
                break
            j = int(rng.integers(0, rows - patch + 1))
            i = int(rng.integers(0, cols - patch + 1))
            candidate = volume_hu[k, j:j + patch, i:i + patch]
            if candidate.mean() > min_mean_hu:
                out.append(candidate.astype(np.int16))
                taken += 1
    return np.stack(out)


def patch_cache(data_dir, patients, patch: int, per_slice: int, seed: int, min_mean_hu: float,
                cache_dir=None, log=print) -> np.ndarray:
    """HU patches of ``patients`` (int16, N x patch x patch), cached by their recipe."""
    recipe = {"patients": list(patients), "patch": patch, "per_slice": per_slice, "seed": seed,
              "min_mean_hu": min_mean_hu, "version": 1}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache_dir / f"patches_{key}.npy"
    if path.exists():
        return np.load(path)
    rng = np.random.default_rng(seed)
    parts = []
    for patient in patients:
        log(f"extracting {patch}px patches from {patient}")
        parts.append(extract_patches(load_patient_hu(data_dir, patient), patch, per_slice, rng, min_mean_hu))
    patches = np.concatenate(parts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.npy")
    np.save(tmp, patches)
    tmp.replace(path)
    return patches
