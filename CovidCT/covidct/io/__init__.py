"""Image input/output: one entry point, :func:`load_ct`, whatever the user points at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import InputNotFoundError, UnsupportedInputError
from ..volume import CTVolume
from .atomic_write import atomic_path, write_bytes_atomic, write_text_atomic
from .dicom_series import is_dicom_file, load_dicom_series
from .slice_images import has_slice_image_suffix, load_slice_image, read_slice_image
from .volume_files import has_volume_suffix, load_volume_file, save_volume

__all__ = [
    "load_ct", "load_dicom_series", "load_volume_file", "load_slice_image", "read_slice_image",
    "save_volume", "atomic_path", "write_text_atomic", "write_bytes_atomic",
]


def load_ct(path, series_uid: Optional[str] = None, include_identifiers: bool = False) -> CTVolume:
    """Load a DICOM folder (or one of its files), a NRRD/NIfTI/MHA volume or a 2D slice image.

    Nothing is validated here beyond readability: call
    :func:`covidct.validation.validate_ct_volume` for the clinical checks.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path} does not exist. Check the path and retry.")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise InputNotFoundError(f"{path} cannot be read: permission denied. Check the file permissions.")
    try:
        if path.is_dir():
            entries = list(path.iterdir())
            if not entries:
                raise UnsupportedInputError(f"The folder {path} is empty.")
            return load_dicom_series(path, series_uid, include_identifiers)
        if has_volume_suffix(path):
            return load_volume_file(path)
        if has_slice_image_suffix(path):
            return load_slice_image(path)
        if is_dicom_file(path):
            return load_dicom_series(path.parent, series_uid, include_identifiers)
    except PermissionError:
        raise InputNotFoundError(f"{path} cannot be read: permission denied.") from None
    raise UnsupportedInputError(
        f"{path.name}: unknown format. CovidCT reads DICOM folders, NRRD, NIfTI (.nii/.nii.gz), "
        "MHA/MHD volumes and PNG/JPEG/WebP slice images.")
