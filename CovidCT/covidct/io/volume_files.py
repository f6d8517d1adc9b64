"""Read and write single-file volumes (NRRD, NIfTI, MetaImage) with SimpleITK.

SimpleITK reports geometry in LPS whatever the file format (it converts NIfTI's RAS
qform/sform), so volumes from any of these formats line up with DICOM-loaded ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InvalidCTError, UnsupportedInputError
from ..volume import CTVolume, StudyFacts, from_sitk, to_sitk
from .atomic_write import atomic_path

VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


def has_volume_suffix(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in VOLUME_SUFFIXES)


def load_volume_file(path) -> CTVolume:
    """Load a NRRD / NIfTI / MHA volume; intensities are taken as HU."""
    import SimpleITK as sitk

    path = Path(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        raise UnsupportedInputError(
            f"Cannot read {path.name} as a volume ({first_line}). The file may be corrupt "
            "or truncated.") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidCTError(
            f"{path.name} has {image.GetNumberOfComponentsPerPixel()} components per voxel "
            "(colour or vector image); a grey-scale CT in HU is needed.")
    if image.GetDimension() not in (2, 3):
        raise InvalidCTError(f"{path.name} is {image.GetDimension()}D; a 3D CT volume is needed.")
    suffix = "NIfTI" if ".nii" in path.name.lower() else path.suffix.lstrip(".").upper()
    volume = from_sitk(image, facts=StudyFacts(source_format=suffix, modality=""))
    if volume.voxels.dtype.kind == "f" and not np.all(np.isfinite(volume.voxels)):
        raise InvalidCTError(f"{path.name} contains NaN or infinite values; it is not a valid CT.")
    return volume


def save_volume(volume: CTVolume, path, compress: bool = True) -> Path:
    """Write ``volume`` atomically (temporary file, then rename) with its geometry."""
    import SimpleITK as sitk

    path = Path(path)
    if not has_volume_suffix(path):
        raise UnsupportedInputError(f"Unsupported output format for {path.name}; use one of {VOLUME_SUFFIXES}.")
    with atomic_path(path) as tmp:
        sitk.WriteImage(to_sitk(volume), str(tmp), compress)
    return path
