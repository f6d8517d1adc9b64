"""DICOM series loading: order, HU, geometry, identifiers, and every refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

import dicom_factory as factory
from covidct.errors import InvalidCTError, MixedSeriesError, UnsupportedInputError
from covidct.io import load_ct


def test_p001_sorted_by_position_not_file_name(p001, shared_data):
    labels = json.loads((shared_data / "covid-ct-md" / "labels.json").read_text())["P001"]["slices"]
    locations_by_name = {name: item["slice_location"] for name, item in labels.items()}
    # The file names are out of anatomical order: sorting them does not sort the locations.
    by_name = [locations_by_name[n] for n in sorted(locations_by_name, key=lambda n: int(n.split("_")[1][:-4]))]
    assert by_name != sorted(by_name)
    assert p001.num_slices == 148
    z = p001.slice_positions_mm()
    assert np.all(np.diff(z) > 0)
    assert np.allclose(sorted(locations_by_name.values()), z, atol=0.01)


def test_p001_matches_gdcm_reader(p001, shared_data):
    """Cross-check against a second reader (SimpleITK/GDCM): voxels and geometry identical."""
    folder = str(shared_data / "covid-ct-md" / "P001")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    image = reader.Execute()
    reference = sitk.GetArrayFromImage(image)
    assert reference.shape == p001.shape
    assert np.array_equal(reference.astype(np.int32), p001.voxels.astype(np.int32))
    assert np.allclose(image.GetSpacing(), p001.spacing_mm, atol=1e-4)
    assert np.allclose(image.GetOrigin(), p001.origin_lps, atol=1e-3)
    assert np.allclose(np.array(image.GetDirection()).reshape(3, 3), p001.direction_lps)


def test_p001_hounsfield_and_facts(p001):
    air = p001.voxels[:, :20, :20]
    assert -1030 <= float(np.median(air)) <= -900  # air outside the patient, after the intercept
    facts = p001.facts
    assert facts.modality == "CT" and facts.scanner_model == "SOMATOM Scope"
    assert facts.slice_thickness_mm == 2.0 and facts.kvp == 110.0
    assert facts.patient_id == "" and facts.patient_name == ""
    assert "patient_id" not in facts.to_dict()


def test_identifiers_only_on_request(tmp_path):
    factory.write_series(tmp_path / "s")
    plain = load_ct(tmp_path / "s")
    assert factory.PATIENT_ID not in json.dumps(plain.facts.to_dict(include_identifiers=True))
    named = load_ct(tmp_path / "s", include_identifiers=True)
    assert named.facts.patient_id == factory.PATIENT_ID
    assert named.facts.patient_name == factory.PATIENT_NAME


def test_synthetic_series_geometry_and_order(tmp_path):
    hu = factory.phantom_hu(slices=8)
    hu[:, 0, 0] = np.arange(8) * 10 - 900  # encode the true slice index in a corner voxel
    factory.write_series(tmp_path / "s", hu, spacing_mm=(0.7, 0.9), slice_mm=2.5)
    volume = load_ct(tmp_path / "s")
    assert np.array_equal(volume.voxels[:, 0, 0], np.arange(8) * 10 - 900)
    assert volume.spacing_mm == pytest.approx((0.7, 0.9, 2.5))
    assert np.allclose(volume.voxels, hu)


def test_reversed_slice_normal_is_sorted_along_normal(tmp_path):
    # Feet-first style orientation: the normal points down; positions still ascend along it.
    factory.write_series(tmp_path / "s", orientation=(1, 0, 0, 0, -1, 0))
    volume = load_ct(tmp_path / "s")
    assert np.allclose(volume.direction_lps[:, 2], [0, 0, -1])
    assert np.all(np.diff(volume.slice_positions_mm()) > 0)


def test_two_ct_series_are_listed(tmp_path):
    from pydicom.uid import generate_uid

    uid = generate_uid()
    factory.write_series(tmp_path / "mix", description="Lung", series_uid=uid)
    factory.write_series(tmp_path / "mix" / "b", description="Mediastinum")
    with pytest.raises(MixedSeriesError) as info:
        load_ct(tmp_path / "mix")
    assert "Lung" in str(info.value) and "Mediastinum" in str(info.value) and uid in str(info.value)
    assert load_ct(tmp_path / "mix", series_uid=uid).num_slices == 8


@pytest.mark.parametrize("kwargs, message", [
    ({"modality": "MR"}, "No CT series.*MR"),
    ({"rgb": True}, "colour"),
    ({"z_positions": [0, 2, 4, 4, 6, 8, 10, 12]}, "same position"),
    ({"z_positions": [0, 2, 4, 6, 10, 12, 14, 16]}, "not uniform"),
])
def test_bad_series_are_refused_clearly(tmp_path, kwargs, message):
    factory.write_series(tmp_path / "s", **kwargs)
    with pytest.raises(InvalidCTError, match=message):
        load_ct(tmp_path / "s")


def test_too_few_slices(tmp_path):
    factory.write_series(tmp_path / "s", factory.phantom_hu(slices=2))
    with pytest.raises(InvalidCTError, match="fewer than|at least"):
        load_ct(tmp_path / "s")


def test_truncated_pixel_data(tmp_path):
    paths = factory.write_series(tmp_path / "s")
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: len(data) - 3000])
    with pytest.raises(InvalidCTError, match="decode|pixel"):
        load_ct(tmp_path / "s")


def test_not_dicom_and_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedInputError, match="empty"):
        load_ct(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedInputError, match="No DICOM"):
        load_ct(tmp_path / "junk")


def test_input_files_unchanged(tmp_path):
    import hashlib

    paths = factory.write_series(tmp_path / "s")
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    load_ct(tmp_path / "s")
    assert before == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_image_without_series_uid_is_not_dropped_silently(tmp_path):
    import pydicom

    paths = factory.write_series(tmp_path / "s", shuffle_names=False)
    ds = pydicom.dcmread(paths[0])  # the first slice: losing it would shift nothing visibly
    del ds.SeriesInstanceUID
    ds.save_as(paths[0])
    with pytest.raises(InvalidCTError, match="could not be read.*img_0000"):
        load_ct(tmp_path / "s")
