"""Cases: DICOM folders (wrong modality, colour, mixed series, broken geometry, damaged files, bad headers)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from bad_inputs.building import analyze_argv, edit_series, scan_hu, write_scan
from bad_inputs.checks import expect_info_json
from bad_inputs.framework import Expected, Prepared, case
from covidct.errors import InvalidCTError, MixedSeriesError


@case("modality_mr", "DICOM", Expected(4, InvalidCTError, "No CT series.*MR"))
def _mr(tmp: Path) -> Prepared:
    """An MR series (not CT)."""
    write_scan(tmp / "mr", modality="MR")
    return Prepared(analyze_argv(tmp / "mr", tmp / "out"), [tmp / "mr"], tmp / "out")


@case("modality_cr", "DICOM", Expected(4, InvalidCTError, "No CT series.*CR"))
def _cr(tmp: Path) -> Prepared:
    """A single CR (chest radiograph) image."""
    write_scan(tmp / "cr", hu=scan_hu(1), modality="CR")
    return Prepared(analyze_argv(tmp / "cr", tmp / "out"), [tmp / "cr"], tmp / "out")


@case("rgb_secondary_capture", "DICOM", Expected(4, InvalidCTError, "colour"))
def _rgb(tmp: Path) -> Prepared:
    """RGB secondary captures labelled CT (screenshots of a viewer)."""
    write_scan(tmp / "sc", rgb=True)
    return Prepared(analyze_argv(tmp / "sc", tmp / "out"), [tmp / "sc"], tmp / "out")


@case("ct_with_secondary_capture_alongside", "DICOM", Expected(0, None, ""))
def _ct_and_sc(tmp: Path) -> Prepared:
    """A CT series plus an RGB secondary-capture series (OT) in the same folder: the CT is used."""
    write_scan(tmp / "study")
    write_scan(tmp / "study" / "sc", hu=scan_hu(2), modality="OT", rgb=True)
    return Prepared(["info", tmp / "study", "--json"], [tmp / "study"],
                    check=expect_info_json(shape_kji=[24, 96, 96]))


@case("single_dicom_slice", "DICOM", Expected(4, InvalidCTError, "fewer than 5|single slice"))
def _single_slice(tmp: Path) -> Prepared:
    """One CT slice where a scan is needed."""
    write_scan(tmp / "one", hu=scan_hu(1))
    return Prepared(analyze_argv(tmp / "one", tmp / "out"), [tmp / "one"], tmp / "out")


@case("two_series_mixed", "DICOM", Expected(4, MixedSeriesError, "several CT series.*--series"))
def _two_series(tmp: Path) -> Prepared:
    """Two CT series (lung and mediastinal kernels) in one folder."""
    write_scan(tmp / "mix", description="Lung 1mm")
    write_scan(tmp / "mix" / "b", description="Mediastinum 3mm")
    return Prepared(analyze_argv(tmp / "mix", tmp / "out"), [tmp / "mix"], tmp / "out")


@case("two_series_one_chosen", "DICOM", Expected(0, None, ""))
def _two_series_chosen(tmp: Path) -> Prepared:
    """Two CT series in one folder, one chosen with --series."""
    write_scan(tmp / "mix", description="Lung", series_uid="1.2.826.0.1.3680043.8.498.1")
    write_scan(tmp / "mix" / "b", hu=scan_hu(12), description="Mediastinum")
    return Prepared(["info", tmp / "mix", "--series", "1.2.826.0.1.3680043.8.498.1", "--json"],
                    [tmp / "mix"], check=expect_info_json(shape_kji=[24, 96, 96]))


@case("unknown_series_uid", "DICOM", Expected(4, MixedSeriesError, "is not in this folder"))
def _unknown_series(tmp: Path) -> Prepared:
    """--series names a series the folder does not hold."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--series", "1.2.3.4"), [tmp / "s"], tmp / "out")


@case("unsorted_positions", "DICOM", Expected(0, None, ""))
def _unsorted(tmp: Path) -> Prepared:
    """Slices stored in shuffled order (names, instance numbers and positions disagree): sorted by position."""
    order = np.random.default_rng(3).permutation(24)
    hu = scan_hu()
    hu[:, 0, 0] = -1000 + 10 * order  # marker: true anatomical rank of each stored slice
    write_scan(tmp / "s", hu=hu, z_positions=[float(3.0 * r) for r in order])

    def check(prepared, result):
        from covidct.io import load_ct

        volume = load_ct(tmp / "s")
        assert np.array_equal(volume.voxels[:, 0, 0], -1000 + 10 * np.arange(24))
        expect_info_json(shape_kji=[24, 96, 96])(prepared, result)

    return Prepared(["info", tmp / "s", "--json"], [tmp / "s"], check=check)


@case("duplicated_positions", "DICOM", Expected(4, InvalidCTError, "same position"))
def _duplicated(tmp: Path) -> Prepared:
    """Two slices at the same position (the same image exported twice)."""
    z = [3.0 * k for k in range(24)]
    z[10] = z[9]
    write_scan(tmp / "s", z_positions=z)
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("missing_slice_gap", "DICOM", Expected(4, InvalidCTError, "not uniform.*missing slice"))
def _gap(tmp: Path) -> Prepared:
    """One slice missing in the middle of the series (a 6 mm gap in 3 mm spacing)."""
    z = [3.0 * k for k in range(25)]
    del z[12]
    write_scan(tmp / "s", z_positions=z)
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("non_uniform_spacing", "DICOM", Expected(4, InvalidCTError, "not uniform"))
def _non_uniform(tmp: Path) -> Prepared:
    """Spacing that changes along the scan (3 mm, then 5 mm: two reconstructions stitched)."""
    z = [3.0 * k for k in range(16)] + [45.0 + 5.0 * k for k in range(1, 9)]
    write_scan(tmp / "s", z_positions=z)
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("oblique_orientation", "DICOM", Expected(0, None, "not axial"))
def _oblique(tmp: Path) -> Prepared:
    """Slices rotated 35 degrees about the patient's left-right axis (consistent geometry): loaded, with a warning."""
    angle = np.deg2rad(35.0)
    write_scan(tmp / "s", orientation=(1, 0, 0, 0, float(np.cos(angle)), float(np.sin(angle))))
    return Prepared(["info", tmp / "s"], [tmp / "s"])


@case("gantry_tilt", "DICOM", Expected(4, InvalidCTError, "gantry-tilted"))
def _gantry_tilt(tmp: Path) -> Prepared:
    """Gantry tilted 15 degrees: slice normal tilted but positions advance along the table (sheared stack)."""
    angle = np.deg2rad(15.0)
    paths = write_scan(tmp / "s", orientation=(1, 0, 0, 0, float(np.cos(angle)), float(np.sin(angle))))
    edit_series(paths, lambda ds, k: setattr(ds, "ImagePositionPatient", [-25.0, -25.0, 3.0 * k]))
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("missing_image_position", "DICOM", Expected(4, InvalidCTError, "ImagePositionPatient"))
def _no_position(tmp: Path) -> Prepared:
    """ImagePositionPatient deleted from one slice (the slice cannot be placed)."""
    paths = write_scan(tmp / "s")
    edit_series(paths[5:6], lambda ds, k: delattr(ds, "ImagePositionPatient"))
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("mixed_matrix_sizes", "DICOM", Expected(4, InvalidCTError, "different matrix sizes"))
def _mixed_sizes(tmp: Path) -> Prepared:
    """One slice with a different matrix (a localizer sharing the series UID)."""
    paths = write_scan(tmp / "s")

    def shrink(ds, k):
        ds.Rows, ds.Columns = 48, 48
        ds.PixelData = np.full((48, 48), 1024, dtype=np.uint16).tobytes()

    edit_series(paths[3:4], shrink)
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("truncated_pixel_data", "DICOM", Expected(4, InvalidCTError, "Cannot decode the pixel data"))
def _truncated(tmp: Path) -> Prepared:
    """One file cut short (an interrupted copy)."""
    paths = write_scan(tmp / "s")
    data = paths[7].read_bytes()
    paths[7].write_bytes(data[: len(data) - 5000])
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("corrupt_file_in_series", "DICOM", Expected(4, InvalidCTError, "could not be read"))
def _corrupt_file(tmp: Path) -> Prepared:
    """The first slice overwritten with garbage after the DICM preamble (must not be silently dropped)."""
    paths = write_scan(tmp / "s")
    paths[0].write_bytes(b"\0" * 128 + b"DICM" + os.urandom(3000))
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("wrong_transfer_syntax", "DICOM", Expected(4, InvalidCTError, "Cannot decode the pixel data"))
def _wrong_syntax(tmp: Path) -> Prepared:
    """The header says JPEG Lossless but the pixel data is raw."""
    paths = write_scan(tmp / "s")
    old = b"\x02\x00\x10\x00UI\x14\x001.2.840.10008.1.2.1\x00"
    new = b"\x02\x00\x10\x00UI\x16\x001.2.840.10008.1.2.4.70"
    for path in paths:
        data = path.read_bytes()
        assert data.count(old) == 1
        group_length = struct.unpack("<I", data[140:144])[0]  # (0002,0000) value
        data = data[:140] + struct.pack("<I", group_length + 2) + data[144:]
        path.write_bytes(data.replace(old, new))
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("raw_values_without_rescale", "DICOM", Expected(4, InvalidCTError, "rescale intercept"))
def _no_rescale(tmp: Path) -> Prepared:
    """Stored values without RescaleIntercept (HU offset wrong by +1024)."""
    write_scan(tmp / "s", rescale=False)
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s"], tmp / "out")


@case("dicom_file_given_instead_of_folder", "DICOM", Expected(0, None, ""))
def _one_file_given(tmp: Path) -> Prepared:
    """The path of one .dcm file of the series: the whole series in its folder is loaded."""
    paths = write_scan(tmp / "s")
    return Prepared(["info", paths[0], "--json"], [tmp / "s"], check=expect_info_json(shape_kji=[24, 96, 96]))
