"""Cases: volume files (NIfTI/NRRD orientation, NaN, constant, tiny, huge, corrupt and truncated)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import dicom_factory as factory
from bad_inputs.building import analyze_argv, scan_hu, write_volume
from bad_inputs.checks import expect_info_json
from bad_inputs.framework import Expected, Prepared, case
from covidct.errors import InvalidCTError, UnsupportedInputError


@case("nifti_ras_orientation", "volume file", Expected(0, None, ""))
def _nifti_ras(tmp: Path) -> Prepared:
    """A NIfTI whose direction is RAS-aligned (x and y flipped relative to LPS)."""
    path = write_volume(tmp / "ras.nii.gz", scan_hu().astype(np.int16), origin=(140.0, 140.0, 0.0),
                        direction=np.diag([-1.0, -1.0, 1.0]))
    return Prepared(["info", path, "--json"], [path], check=expect_info_json(shape_kji=[24, 96, 96]))


@case("flipped_z_nrrd", "volume file", Expected(0, None, ""))
def _flipped_z(tmp: Path) -> Prepared:
    """A NRRD stored feet-to-head reversed (negative slice direction)."""
    path = write_volume(tmp / "flip.nrrd", scan_hu()[::-1].astype(np.int16), origin=(0.0, 0.0, 69.0),
                        direction=np.diag([1.0, 1.0, -1.0]))
    return Prepared(["info", path, "--json"], [path], check=expect_info_json(shape_kji=[24, 96, 96]))


@case("nan_inf_float_nrrd", "volume file", Expected(4, InvalidCTError, "NaN or infinite"))
def _nan(tmp: Path) -> Prepared:
    """A float NRRD with NaN and inf voxels."""
    hu = scan_hu()
    hu[3, 10, 10] = np.nan
    hu[4, 11, 11] = np.inf
    path = write_volume(tmp / "nan.nrrd", hu)
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("constant_image", "volume file", Expected(4, InvalidCTError, "constant"))
def _constant(tmp: Path) -> Prepared:
    """Every voxel at -1000 HU (an empty reconstruction)."""
    path = write_volume(tmp / "flat.nrrd", np.full((24, 96, 96), -1000, dtype=np.int16))
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("tiny_volume", "volume file", Expected(4, InvalidCTError, "too small"))
def _tiny(tmp: Path) -> Prepared:
    """A 6 x 16 x 16 volume."""
    path = write_volume(tmp / "tiny.nrrd", factory.phantom_hu(rows=16, cols=16, slices=6).astype(np.int16))
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("huge_volume_header", "volume file", Expected(4, InvalidCTError, "too large"))
def _huge(tmp: Path) -> Prepared:
    """A NRRD header declaring 4096^3 voxels (128 GiB): refused from the header, nothing allocated."""
    (tmp / "huge.raw").write_bytes(b"\0" * 4096)
    path = tmp / "huge.nhdr"
    path.write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: 4096 4096 4096\nspacings: 1 1 1\n"
                    "encoding: raw\nendian: little\ndata file: huge.raw\n")
    return Prepared(analyze_argv(path, tmp / "out"), [path, tmp / "huge.raw"], tmp / "out")


@case("corrupt_nrrd", "volume file", Expected(3, UnsupportedInputError, "corrupt"))
def _corrupt_nrrd(tmp: Path) -> Prepared:
    """A NRRD whose header is garbage."""
    path = tmp / "broken.nrrd"
    path.write_bytes(b"NRRD0004\ntype: nonsense\nsizes: -3\n" + os.urandom(200))
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("truncated_nrrd", "volume file", Expected(3, UnsupportedInputError, "corrupt or truncated"))
def _truncated_nrrd(tmp: Path) -> Prepared:
    """An uncompressed NRRD cut in half."""
    import SimpleITK as sitk

    path = tmp / "cut.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(scan_hu().astype(np.int16)), str(path), False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")
