"""Building blocks of the cases: the phantom scan, DICOM and volume writers, command
lines, and the probes a test uses (input snapshots, partial leftovers, root, CUDA)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

import dicom_factory as factory


def scan_hu(slices: int = 24) -> np.ndarray:
    """The asymmetric phantom at a size whose lungs pass the lung-size checks (3 mm voxels)."""
    return factory.phantom_hu(rows=96, cols=96, slices=slices)


SCAN_GEOMETRY = {"spacing_mm": (3.0, 3.0), "slice_mm": 3.0}


def write_scan(folder: Path, **kwargs) -> list:
    options = dict(SCAN_GEOMETRY)
    options.update(kwargs)
    hu = options.pop("hu", None)
    return factory.write_series(folder, scan_hu() if hu is None else hu, **options)


def edit_series(paths, edit) -> None:
    """Rewrite each file of a series after ``edit(dataset, index)`` (index = slice order written)."""
    import pydicom

    for index, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        edit(ds, index)
        ds.save_as(path, enforce_file_format=True)


def write_volume(path: Path, hu: np.ndarray, spacing=(3.0, 3.0, 3.0), origin=(0.0, 0.0, 0.0),
                 direction=None) -> Path:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(tuple(np.asarray(direction, dtype=float).flatten()))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def grey_slice_uint8(size: int = 96) -> np.ndarray:
    hu = factory.phantom_hu(rows=size, cols=size, slices=1)[0]
    return np.clip((hu + 1350.0) / 1500.0 * 255.0, 0, 255).astype(np.uint8)


def analyze_argv(input_path, output, *extra) -> list:
    return ["analyze", str(input_path), "-o", str(output), "--device", "cpu", "--progress", "none",
            *map(str, extra)]


def snapshot(paths) -> dict:
    """sha256 and mode of every file under ``paths`` (to prove the input was not touched)."""
    state = {}
    for root in map(Path, paths):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except PermissionError:
                digest = "unreadable"
            state[str(path)] = (digest, path.stat().st_mode)
    return state


def partial_leftovers(folder: Path) -> list:
    """Temporary files/folders an interrupted write could leave behind."""
    if not folder.exists():
        return []
    return sorted(str(p) for p in folder.rglob("*") if ".partial" in p.name)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
