"""The CT volume type that travels through the whole pipeline.

Geometry is never implicit: the voxel array always comes with its spacing, origin and
direction.  Conventions (the same as ITK, SimpleITK and DICOM):

* ``voxels`` is indexed ``[k, j, i]`` = ``[slice, row, column]`` (numpy order);
* ``spacing_mm``, ``origin_lps`` and the columns of ``direction_lps`` are in
  ``(i, j, k)`` order and in the patient **LPS** frame;
* Slicer works in **RAS**: use :func:`lps_to_ras_matrix` / :meth:`CTVolume.ijk_to_ras`
  to cross over, never an ad-hoc sign flip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .study import StudyFacts  # noqa: F401  (re-exported: the volume's facts)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class CTVolume:
    """A CT image in Hounsfield units (or 8-bit intensities for 2D exports) with geometry.

    ``voxels`` has shape ``(slices, rows, columns)``; a single 2D image has one slice.
    """

    voxels: np.ndarray
    spacing_mm: tuple = (1.0, 1.0, 1.0)
    origin_lps: tuple = (0.0, 0.0, 0.0)
    direction_lps: np.ndarray = field(default_factory=lambda: np.eye(3))
    facts: StudyFacts = field(default_factory=StudyFacts)
    is_hounsfield: bool = True

    def __post_init__(self):
        self.voxels = np.asarray(self.voxels)
        if self.voxels.ndim == 2:
            self.voxels = self.voxels[np.newaxis]
        self.spacing_mm = tuple(float(s) for s in self.spacing_mm)
        self.origin_lps = tuple(float(o) for o in self.origin_lps)
        self.direction_lps = np.asarray(self.direction_lps, dtype=float).reshape(3, 3)

    @property
    def shape(self) -> tuple:
        """``(slices, rows, columns)``."""
        return tuple(self.voxels.shape)

    @property
    def num_slices(self) -> int:
        return int(self.voxels.shape[0])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing_mm)) / 1000.0

    def ijk_to_lps(self) -> np.ndarray:
        """4x4 matrix taking (i, j, k, 1) voxel indices to LPS millimetres."""
        m = np.eye(4)
        m[:3, :3] = self.direction_lps @ np.diag(self.spacing_mm)
        m[:3, 3] = self.origin_lps
        return m

    def ijk_to_ras(self) -> np.ndarray:
        """4x4 matrix taking (i, j, k, 1) voxel indices to RAS millimetres (Slicer)."""
        return lps_to_ras_matrix() @ self.ijk_to_lps()

    def slice_positions_mm(self) -> np.ndarray:
        """Position of each slice along the slice normal (mm), in array order."""
        normal = self.direction_lps[:, 2]
        base = float(np.dot(self.origin_lps, normal))
        return base + np.arange(self.num_slices) * self.spacing_mm[2]

    def with_voxels(self, voxels: np.ndarray, spacing_mm=None, origin_lps=None,
                    is_hounsfield=None) -> "CTVolume":
        """A new volume sharing this one's geometry and facts (input never modified)."""
        return CTVolume(
            voxels=voxels,
            spacing_mm=self.spacing_mm if spacing_mm is None else spacing_mm,
            origin_lps=self.origin_lps if origin_lps is None else origin_lps,
            direction_lps=self.direction_lps.copy(),
            facts=self.facts,
            is_hounsfield=self.is_hounsfield if is_hounsfield is None else is_hounsfield,
        )

    def same_geometry(self, other: "CTVolume", atol: float = 1e-4) -> bool:
        return (self.shape == other.shape
                and np.allclose(self.ijk_to_lps(), other.ijk_to_lps(), atol=atol))


def lps_to_ras_matrix() -> np.ndarray:
    """4x4 homogeneous LPS->RAS (its own inverse)."""
    m = np.eye(4)
    m[:3, :3] = LPS_TO_RAS
    return m


def to_sitk(volume: CTVolume):
    """SimpleITK image with the same voxels and geometry (LPS, as ITK uses)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(volume.voxels)
    image.SetSpacing(volume.spacing_mm)
    image.SetOrigin(volume.origin_lps)
    image.SetDirection(tuple(volume.direction_lps.flatten()))
    return image


def from_sitk(image, facts: Optional[StudyFacts] = None, is_hounsfield: bool = True) -> CTVolume:
    """CTVolume from a 3D SimpleITK image (geometry copied exactly)."""
    import SimpleITK as sitk

    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    return CTVolume(
        voxels=sitk.GetArrayFromImage(image),
        spacing_mm=image.GetSpacing(),
        origin_lps=image.GetOrigin(),
        direction_lps=np.array(image.GetDirection()).reshape(3, 3),
        facts=facts or StudyFacts(),
        is_hounsfield=is_hounsfield,
    )
