"""Volume files, slice images and the clinical validation checks."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

import dicom_factory as factory
from covidct.errors import InputNotFoundError, InvalidCTError, UnsupportedInputError
from covidct.io import load_ct, save_volume
from covidct.validation import validate_ct_volume
from covidct.volume import CTVolume, StudyFacts


def phantom_volume(**kwargs) -> CTVolume:
    return CTVolume(factory.phantom_hu(slices=10), spacing_mm=(0.8, 0.8, 2.0),
                    origin_lps=(-25.0, -30.0, 100.0), facts=StudyFacts(modality="CT"), **kwargs)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".mha"])
def test_volume_round_trip_keeps_geometry(tmp_path, suffix):
    direction = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], dtype=float)  # rotated in-plane
    volume = CTVolume(factory.phantom_hu(slices=6).astype(np.int16), (0.6, 0.7, 1.5),
                      (10.0, -20.0, 30.0), direction)
    path = save_volume(volume, tmp_path / f"v{suffix}")
    back = load_ct(path)
    assert back.same_geometry(volume)
    assert np.array_equal(back.voxels, volume.voxels)
    assert not list(tmp_path.glob(".*partial*")), "no temporary file left behind"


def test_nifti_is_read_in_lps(tmp_path):
    """A NIfTI written by another tool in RAS is reported in LPS like every other format."""
    image = sitk.GetImageFromArray(factory.phantom_hu(slices=6))
    image.SetOrigin((5.0, 6.0, 7.0))
    sitk.WriteImage(image, str(tmp_path / "v.nii.gz"))
    back = load_ct(tmp_path / "v.nii.gz")
    assert np.allclose(back.origin_lps, (5.0, 6.0, 7.0))
    assert np.allclose(back.ijk_to_ras()[:2, 3], (-5.0, -6.0))


def test_valid_phantom_passes():
    assert validate_ct_volume(phantom_volume()) == []


@pytest.mark.parametrize("mutate, message", [
    (lambda v: v.voxels.__setitem__(slice(None), 100.0), "constant"),
    (lambda v: v.voxels.__iadd__(1024.0), "No air|raw stored"),
    (lambda v: v.voxels.__setitem__((0, 0, 0), np.nan), "NaN"),
])
def test_implausible_intensities(mutate, message):
    volume = phantom_volume()
    mutate(volume)
    with pytest.raises(InvalidCTError, match=message):
        validate_ct_volume(volume)


def test_raw_values_without_rescale_detected(tmp_path):
    factory.write_series(tmp_path / "s", rescale=False)
    with pytest.raises(InvalidCTError, match="rescale"):
        validate_ct_volume(load_ct(tmp_path / "s"))


def test_single_slice_and_wrong_modality():
    one = CTVolume(factory.phantom_hu(slices=1), facts=StudyFacts(modality="CT"))
    with pytest.raises(InvalidCTError, match="slice"):
        validate_ct_volume(one)
    mr = phantom_volume()
    mr.facts = StudyFacts(modality="MR")
    with pytest.raises(InvalidCTError, match="not CT"):
        validate_ct_volume(mr)


def test_coarse_spacing_and_bad_direction():
    with pytest.raises(InvalidCTError, match="coarse"):
        validate_ct_volume(CTVolume(factory.phantom_hu(slices=10), spacing_mm=(0.8, 0.8, 20.0)))
    skewed = phantom_volume()
    skewed.direction_lps = np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    with pytest.raises(InvalidCTError, match="orthonormal"):
        validate_ct_volume(skewed)


def test_nan_float_nrrd_refused_at_load(tmp_path):
    hu = factory.phantom_hu(slices=6)
    hu[2, 3, 3] = np.inf
    sitk.WriteImage(sitk.GetImageFromArray(hu), str(tmp_path / "bad.nrrd"))
    with pytest.raises(InvalidCTError, match="NaN or infinite"):
        load_ct(tmp_path / "bad.nrrd")


def test_corrupt_and_unknown_files(tmp_path):
    (tmp_path / "broken.nrrd").write_bytes(b"NRRD0004\ntype: garbage\n")
    with pytest.raises(UnsupportedInputError, match="corrupt|Cannot read"):
        load_ct(tmp_path / "broken.nrrd")
    (tmp_path / "x.xyz").write_text("?")
    with pytest.raises(UnsupportedInputError, match="unknown format"):
        load_ct(tmp_path / "x.xyz")
    with pytest.raises(InputNotFoundError):
        load_ct(tmp_path / "missing")


def test_rgb_volume_file_refused(tmp_path):
    rgb = sitk.GetImageFromArray(np.zeros((4, 40, 40, 3), dtype=np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.nrrd"))
    with pytest.raises(InvalidCTError, match="components"):
        load_ct(tmp_path / "rgb.nrrd")


def test_slice_images(tmp_path, shared_data):
    webp = load_ct(shared_data / "sars-cov-2-ct" / "COVID" / "Covid_1.webp")
    assert not webp.is_hounsfield and webp.num_slices == 1
    assert 0.0 <= webp.voxels.min() and webp.voxels.max() <= 1.0
    grey16 = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    assert load_ct(tmp_path / "g16.png").voxels.max() == pytest.approx(1.0)
    colour = np.zeros((64, 64, 3), dtype=np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "c.jpg")
    with pytest.raises(InvalidCTError, match="colour"):
        load_ct(tmp_path / "c.jpg")
    with pytest.raises(InvalidCTError, match="8-bit export"):
        validate_ct_volume(webp, require_3d=False)
