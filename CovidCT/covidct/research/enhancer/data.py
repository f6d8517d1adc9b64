"""Where the enhancer's training and evaluation scans come from, and the patch cache.

Scans are the HU DICOM series in ``<data>/covid-ct-md/<patient>/``.  Training patches
are extracted once into a cache under the system temporary folder (never into the
repository) so repeated runs start at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ...errors import InputNotFoundError

HU_SERIES_FOLDER = "covid-ct-md"


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "covidct_enhancer_cache"


def load_patient_hu(data_dir, patient: str) -> np.ndarray:
    """The patient's HU volume ``[slice, row, col]`` (float32), slices in anatomical order."""
    from ...io import load_ct

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

    def build():
        rng = np.random.default_rng(seed)
        parts = []
        for patient in patients:
            log(f"extracting {patch}px patches from {patient}")
            parts.append(extract_patches(load_patient_hu(data_dir, patient), patch, per_slice, rng, min_mean_hu))
        return np.concatenate(parts)

    return _cached(recipe, "patches", cache_dir, build)


def _cached(recipe: dict, prefix: str, cache_dir, build) -> np.ndarray:
    """``build()``'s array, stored once under a name derived from ``recipe`` (written atomically)."""
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache_dir / f"{prefix}_{key}.npy"
    if path.exists():
        return np.load(path)
    array = build()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.partial.npy")  # two runs may build the same cache at once
    np.save(tmp, array)
    tmp.replace(path)
    return array


def reformat_planes(volume_hu: np.ndarray, spacing_xyz_mm: tuple) -> list:
    """Coronal and sagittal planes resampled to the in-plane pixel size (also CT texture).

    ``volume_hu`` is ``[k, j, i]``; the slice axis is linearly resampled from its spacing to
    the in-plane one, so anatomy keeps its proportions.  Returns 2D float32 planes.
    """
    from scipy.ndimage import zoom

    factor = float(spacing_xyz_mm[2]) / float(spacing_xyz_mm[0])
    planes = []
    for axis in (1, 2):
        for index in range(0, volume_hu.shape[axis], 8):
            plane = np.take(volume_hu, index, axis=axis).astype(np.float32)
            planes.append(zoom(plane, (factor, 1.0), order=1))
    return planes


def extract_pair_patches(volume_hu: np.ndarray, spacing_xyz_mm: tuple, patch: int, per_slice: int,
                         rng: np.random.Generator, min_mean_hu: float = -900.0, thick: int = 3,
                         reformat_share: float = 0.0) -> np.ndarray:
    """``N x 2 x patch x patch`` int16: each patch and the same place in a thick-slice copy.

    Channel 0 is the original (the target); channel 1 the mean of ``thick`` neighbouring
    slices, the partial-volume input the ``thick_slices`` degradation trains on.  A share
    of extra patches comes from coronal/sagittal reformats, whose channel 1 is a copy of 0.
    """
    from ...enhance.degradation import thick_slices

    thick_volume = thick_slices(volume_hu, thick)
    pairs = []
    slices, rows, cols = volume_hu.shape
    for k in range(slices):
        taken, tries = 0, 0
        while taken < per_slice and tries < per_slice * 20:
            tries += 1
            j = int(rng.integers(0, rows - patch + 1))
            i = int(rng.integers(0, cols - patch + 1))
            thin = volume_hu[k, j:j + patch, i:i + patch]
            if thin.mean() > min_mean_hu:
                pairs.append(np.stack([thin, thick_volume[k, j:j + patch, i:i + patch]]))
                taken += 1
    wanted = int(round(len(pairs) * reformat_share / max(1e-6, 1.0 - reformat_share))) if reformat_share > 0 else 0
    planes = [p for p in reformat_planes(volume_hu, spacing_xyz_mm) if min(p.shape) >= patch] if wanted else []
    for _ in range(wanted * 20 if planes else 0):
        if wanted == 0:
            break
        plane = planes[int(rng.integers(0, len(planes)))]
        j = int(rng.integers(0, plane.shape[0] - patch + 1))
        i = int(rng.integers(0, plane.shape[1] - patch + 1))
        cut = plane[j:j + patch, i:i + patch]
        if cut.mean() > min_mean_hu:
            pairs.append(np.stack([cut, cut]))
            wanted -= 1
    return np.round(np.stack(pairs)).astype(np.int16)


def pair_patch_cache(data_dir, patients, patch: int, per_slice: int, seed: int, min_mean_hu: float,
                     thick: int = 3, reformat_share: float = 0.0, cache_dir=None, log=print) -> np.ndarray:
    """:func:`extract_pair_patches` of ``patients``, cached under the temporary folder by recipe."""
    from ...io import load_ct

    recipe = {"patients": list(patients), "patch": patch, "per_slice": per_slice, "seed": seed,
              "min_mean_hu": min_mean_hu, "thick": thick, "reformat_share": reformat_share, "version": 2}

    def build():
        rng = np.random.default_rng(seed)
        parts = []
        for patient in patients:
            log(f"extracting {patch}px patch pairs from {patient}")
            folder = Path(data_dir) / HU_SERIES_FOLDER / patient
            if not folder.is_dir():
                raise InputNotFoundError(f"No HU scan for patient '{patient}' at {folder}.")
            volume = load_ct(folder)
            parts.append(extract_pair_patches(volume.voxels.astype(np.float32), volume.spacing_mm, patch, per_slice,
                                              rng, min_mean_hu, thick, reformat_share))
        return np.concatenate(parts)

    return _cached(recipe, "pairs", cache_dir, build)
