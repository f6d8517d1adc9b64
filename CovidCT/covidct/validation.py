"""Clinical plausibility checks before any model sees a volume.

Loaders only check that an image can be read; these checks say whether it is a chest CT
the models were built for, with messages that tell the user what to do instead.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidCTError
from .volume import CTVolume

MIN_SLICES = 5
# Air is about -1000 HU and cortical bone / contrast reach 1000-3000 HU; a CT in HU
# spans most of that.  Raw detector values without rescale sit around 0..4095.
PLAUSIBLE_MIN_HU = (-1100.0, -700.0)
PLAUSIBLE_MAX_HU = 300.0
MAX_ABS_HU = 32000.0
MAX_SLICE_SPACING_MM = 12.0
MAX_PIXEL_SPACING_MM = 5.0


def validate_ct_volume(volume: CTVolume, require_3d: bool = True) -> list[str]:
    """Raise :class:`InvalidCTError` for unusable volumes; return warnings for odd ones."""
    warnings: list[str] = []
    modality = volume.facts.modality
    if modality and modality != "CT":
        raise InvalidCTError(f"The image is {modality}, not CT. CovidCT analyses chest CT only.")
    voxels = volume.voxels
    if voxels.ndim != 3:
        raise InvalidCTError(f"Expected a 3D volume, got an array of shape {voxels.shape}.")
    if require_3d and volume.num_slices < MIN_SLICES:
        raise InvalidCTError(
            f"The volume has {volume.num_slices} slice(s); a chest CT scan of at least {MIN_SLICES} "
            "axial slices is needed. For single exported slices use 'covidct classify'.")
    if min(voxels.shape[1:]) < 32:
        raise InvalidCTError(f"In-plane matrix {voxels.shape[2]}x{voxels.shape[1]} is too small for a CT.")
    if not volume.is_hounsfield:
        raise InvalidCTError(
            "This image is an 8-bit export, not a CT in Hounsfield units; scan analysis needs HU "
            "(DICOM, NRRD or NIfTI). For exported slices use 'covidct classify'.")
    if voxels.dtype.kind == "f" and not np.all(np.isfinite(voxels)):
        raise InvalidCTError("The volume contains NaN or infinite values; it is not a valid CT.")
    spacing = volume.spacing_mm
    if any(s <= 0 for s in spacing):
        raise InvalidCTError(f"Voxel spacing {spacing} mm is not positive; the geometry is corrupt.")
    if max(spacing[:2]) > MAX_PIXEL_SPACING_MM or spacing[2] > MAX_SLICE_SPACING_MM:
        raise InvalidCTError(
            f"Voxel spacing {tuple(round(s, 2) for s in spacing)} mm is too coarse for chest CT "
            f"(in-plane > {MAX_PIXEL_SPACING_MM} mm or slices > {MAX_SLICE_SPACING_MM} mm).")
    direction = volume.direction_lps
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-3):
        raise InvalidCTError("The direction cosines are not orthonormal; the geometry is corrupt.")
    if abs(direction[2, 2]) < 0.9:
        warnings.append(
            "The slices are not axial (or strongly tilted); models were trained on axial slices.")
    _check_hu_range(voxels)
    return warnings


def _check_hu_range(voxels: np.ndarray) -> None:
    # Percentiles, not min/max: padding values (-2048, -3024) and metal are common.
    low, high = np.percentile(voxels[:: max(1, voxels.shape[0] // 16)], [1, 99.5])
    if float(np.max(voxels)) == float(np.min(voxels)):
        raise InvalidCTError("The volume is constant (every voxel has the same value); nothing to analyse.")
    if np.abs(voxels).max() > MAX_ABS_HU:
        raise InvalidCTError("Voxel values exceed the range of Hounsfield units; the data is not a CT in HU.")
    if low > PLAUSIBLE_MIN_HU[1]:
        hint = (" It looks like raw stored values without the rescale intercept (about -1024 HU)."
                if low >= -50 else "")
        raise InvalidCTError(
            f"No air found: the darkest 1 % of voxels is at {low:.0f} HU, but air in a chest CT is "
            f"about -1000 HU.{hint} Check that the image is a CT in Hounsfield units.")
    if low < PLAUSIBLE_MIN_HU[0] - 1000:
        raise InvalidCTError(
            f"Values down to {low:.0f} HU are implausible for CT; the intensity scaling is wrong.")
    if high < PLAUSIBLE_MAX_HU * -1:
        raise InvalidCTError(
            f"No soft tissue or bone found (99.5th percentile {high:.0f} HU); this does not look like a CT in HU.")
