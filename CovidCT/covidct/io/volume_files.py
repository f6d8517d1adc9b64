"""Read and write single-file volumes (NRRD, NIfTI, MetaImage) with SimpleITK.

SimpleITK reports geometry in LPS whatever the file format (it converts NIfTI's RAS
qform/sform), so volumes from any of these formats line up with DICOM-loaded ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InvalidCTError, OutputError, UnsupportedInputError
from ..volume import CTVolume, StudyFacts, from_sitk, to_sitk
from .atomic_write import atomic_path

VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
# A chest CT is at most ~1000 slices of 1024 x 1024; beyond this a header is corrupt or
# the file is not a single CT, and reading it would exhaust memory before any check.
MAX_VOXELS = 1_200_000_000
# The analysis holds several float32 copies of the volume: refuse what cannot fit.
WORKING_COPIES = 6


def has_volume_suffix(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in VOLUME_SUFFIXES)


def load_volume_file(path) -> CTVolume:
    """Load a NRRD / NIfTI / MHA volume; intensities are taken as HU."""
    import SimpleITK as sitk

    path = Path(path)
    try:
        check_volume_size(path)
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


def _physical_memory_bytes() -> int | None:
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_volume_size(path: Path) -> None:
    """Refuse, from the header alone, a volume too large to analyse on this machine."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    voxels = int(np.prod([int(n) for n in reader.GetSize()], dtype=np.float64))
    needed_gib = voxels * 4 * WORKING_COPIES / 2**30
    memory = _physical_memory_bytes()
    if voxels > MAX_VOXELS or (memory and voxels * 4 * WORKING_COPIES > memory):
        size = " x ".join(str(int(n)) for n in reader.GetSize())
        have = f"; this machine has {memory / 2**30:.0f} GiB" if memory else ""
        raise InvalidCTError(
            f"{path.name} declares {size} voxels: too large to analyse (about {needed_gib:.0f} GiB "
            f"of memory needed{have}). Crop or down-sample the volume, or check that its header "
            "is not corrupt.")


def save_volume(volume: CTVolume, path, compress: bool = True) -> Path:
    """Write ``volume`` atomically (temporary file, then rename) with its geometry."""
    import SimpleITK as sitk

    path = Path(path)
    if not has_volume_suffix(path):
        raise UnsupportedInputError(f"Unsupported output format for {path.name}; use one of {VOLUME_SUFFIXES}.")
    with atomic_path(path) as tmp:
        try:
            sitk.WriteImage(to_sitk(volume), str(tmp), compress)
        except RuntimeError as exc:  # ITK reports a full disk or a denied write this way
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "write failed"
            raise OutputError(
                f"Cannot write {path}: {reason}. Check permissions and free disk space.") from None
    return path
