"""DICOM pixel decoding to HU: the int16 fast path gives exactly the float32 formula's values."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import dicom_factory as factory
from covidct.errors import InvalidCTError
from covidct.io import load_ct


def _expected_hu(folder) -> np.ndarray:
    """``stored * slope + intercept`` in float32 for every slice, ordered along z."""
    slices = []
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        slices.append((float(ds.ImagePositionPatient[2]), hu))
    return np.stack([hu for _, hu in sorted(slices, key=lambda item: item[0])])


def _set_rescale(path, slope, intercept):
    ds = pydicom.dcmread(path)
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.save_as(path)


def _slice_paths_by_z(folder):
    return sorted(folder.glob("*.dcm"), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))


def test_integer_rescale_gives_int16(tmp_path):
    factory.write_series(tmp_path)
    volume = load_ct(tmp_path)
    assert volume.voxels.dtype == np.int16
    assert np.array_equal(volume.voxels, _expected_hu(tmp_path))


@pytest.mark.parametrize("slice_index", [0, 3, 7])
def test_fractional_rescale_on_one_slice_gives_float32(tmp_path, slice_index):
    factory.write_series(tmp_path)
    _set_rescale(_slice_paths_by_z(tmp_path)[slice_index], 0.5, -1024.25)
    volume = load_ct(tmp_path)
    assert volume.voxels.dtype == np.float32
    expected = _expected_hu(tmp_path)
    assert np.array_equal(volume.voxels, expected)
    assert not np.array_equal(expected, np.round(expected))


def test_whole_values_beyond_int16_stay_float32(tmp_path):
    factory.write_series(tmp_path)
    _set_rescale(_slice_paths_by_z(tmp_path)[5], 20, -1024)
    volume = load_ct(tmp_path)
    expected = _expected_hu(tmp_path)
    assert expected.max() > 32767
    assert volume.voxels.dtype == np.float32
    assert np.array_equal(volume.voxels, expected)


def test_slice_decoding_to_another_size_is_refused(tmp_path):
    factory.write_series(tmp_path)
    path = _slice_paths_by_z(tmp_path)[2]
    ds = pydicom.dcmread(path)
    small = ds.pixel_array[:32, :32].copy()
    ds.Rows, ds.Columns = small.shape
    ds.PixelData = small.tobytes()
    ds.save_as(path)
    with pytest.raises(InvalidCTError, match="matrix sizes|decodes to"):
        load_ct(tmp_path)
