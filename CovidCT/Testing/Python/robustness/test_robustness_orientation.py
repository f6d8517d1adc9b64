"""Orientation, geometry properties, a bounded DICOM header fuzz, and determinism.

An asymmetric phantom (right lung bigger than left, a bone marker anterior-left-superior)
is stored in several orientations (LPS and RAS-aligned NIfTI, flipped z, rotated
in-plane, DICOM head-first and feet-first).  Whatever the storage, the lung mask and the
analysis outputs must land on the same anatomy in physical (LPS/RAS) space.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dicom_factory as factory
from bad_inputs.building import analyze_argv, scan_hu, write_scan
from bad_inputs.framework import Prepared
from bad_inputs.runners import run_in_process
from covidct.errors import CovidCTError
from covidct.io import load_ct, save_volume
from covidct.preprocess import area_downsample, compute_lung_mask, resample_to_grid
from covidct.preprocess.resample import scaled_in_plane_geometry
from covidct.volume import CTVolume
from volume_helpers import resize_in_plane

MARKER_HU = 1500.0


def asymmetric_phantom() -> CTVolume:
    """The phantom with a bone block anterior (small j), left (large i), superior (large k)."""
    hu = scan_hu(24)
    lung = hu == -850.0
    hu[20:, :, 48:][lung[20:, :, 48:]] = 40.0   # no left lung in the top slices (superior)
    hu[:, :40, :48][lung[:, :40, :48]] = 40.0   # right lung flattened in front (anterior)
    hu[18:21, 12:15, 58:61] = MARKER_HU
    return CTVolume(hu.astype(np.int16), spacing_mm=(3.0, 3.0, 3.0), origin_lps=(-140.0, -150.0, -40.0))


def reindex(volume: CTVolume, perm=(0, 1, 2), flip=(False, False, False)) -> CTVolume:
    """The same physical image stored differently: new axis n is old axis perm[n], maybe reversed.

    Returns a volume whose voxels and geometry describe exactly the same anatomy.
    """
    old_shape_ijk = volume.shape[::-1]
    a = np.zeros((4, 4))
    a[3, 3] = 1.0
    for n, old in enumerate(perm):
        a[old, n] = -1.0 if flip[n] else 1.0
        a[old, 3] = old_shape_ijk[old] - 1 if flip[n] else 0.0
    ijk = np.asarray(volume.voxels).transpose(2, 1, 0).transpose(perm)
    for n in range(3):
        if flip[n]:
            ijk = np.flip(ijk, axis=n)
    spacing = tuple(volume.spacing_mm[old] for old in perm)
    m = volume.ijk_to_lps() @ a
    return CTVolume(np.ascontiguousarray(ijk.transpose(2, 1, 0)), spacing, tuple(m[:3, 3]),
                    m[:3, :3] / np.array(spacing), facts=volume.facts)


def marker_centre_ras(volume: CTVolume) -> np.ndarray:
    k, j, i = np.nonzero(np.asarray(volume.voxels) > MARKER_HU - 300)
    centre = np.array([i.mean(), j.mean(), k.mean(), 1.0])
    return (volume.ijk_to_ras() @ centre)[:3]


def write_dicom(volume: CTVolume, folder) -> None:
    direction = volume.direction_lps
    row, col, normal = direction[:, 0], direction[:, 1], direction[:, 2]
    assert np.allclose(np.cross(row, col), normal), "DICOM needs a right-handed direction"
    origin = np.asarray(volume.origin_lps)
    base = float(origin @ normal)
    factory.write_series(folder, np.asarray(volume.voxels, dtype=np.float32),
                         spacing_mm=volume.spacing_mm[:2], slice_mm=volume.spacing_mm[2],
                         z_positions=[base + k * volume.spacing_mm[2] for k in range(volume.num_slices)],
                         orientation=tuple(float(v) for v in np.concatenate([row, col])),
                         origin_xy=(float(origin @ row), float(origin @ col)))


# (name, perm, flip, storage)
VARIANTS = [
    ("lps_nrrd", (0, 1, 2), (False, False, False), "v.nrrd"),
    ("ras_aligned_nifti", (0, 1, 2), (True, True, False), "v.nii.gz"),
    ("flipped_z_nrrd", (0, 1, 2), (False, False, True), "v.nrrd"),
    ("rotated_in_plane_mha", (1, 0, 2), (True, False, False), "v.mha"),
    ("mirrored_improper_nifti", (0, 1, 2), (True, False, False), "v.nii"),
    ("dicom_head_first", (0, 1, 2), (False, False, False), "dicom"),
    ("dicom_rotated_180", (0, 1, 2), (True, True, False), "dicom"),
    ("dicom_feet_first", (0, 1, 2), (False, True, True), "dicom"),
]


@pytest.fixture(scope="module")
def reference():
    volume = asymmetric_phantom()
    return volume, compute_lung_mask(volume)


def store(volume: CTVolume, tmp_path, storage: str):
    if storage == "dicom":
        write_dicom(volume, tmp_path / "dicom")
        return tmp_path / "dicom"
    return save_volume(volume, tmp_path / storage)


@pytest.mark.parametrize("name, perm, flip, storage", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_lung_mask_lines_up_in_physical_space(reference, tmp_path, name, perm, flip, storage):
    canonical, canonical_mask = reference
    path = store(reindex(canonical, perm, flip), tmp_path, storage)
    loaded = load_ct(path)
    assert np.allclose(marker_centre_ras(loaded), marker_centre_ras(canonical), atol=1e-3)
    mask = compute_lung_mask(loaded)
    back = resample_to_grid(mask.astype(np.float32), loaded, canonical, order=0) > 0.5
    assert np.array_equal(back, canonical_mask), f"{int((back != canonical_mask).sum())} voxels differ"


def test_reference_phantom_is_asymmetric(reference):
    """The checks above could not catch a flip on a symmetric phantom."""
    canonical, mask = reference
    for axis in range(3):
        overlap = (mask & np.flip(mask, axis=axis)).sum() / mask.sum()
        assert overlap < 0.95, f"the lung mask is nearly symmetric along axis {axis}"
    ras = marker_centre_ras(canonical)
    centre = (canonical.ijk_to_ras() @ np.array([47.5, 47.5, 11.5, 1.0]))[:3]
    assert ras[0] < centre[0] and ras[1] > centre[1] and ras[2] > centre[2], "left, anterior, superior"


@pytest.mark.parametrize("name, perm, flip, storage",
                         [v for v in VARIANTS if v[0] in ("ras_aligned_nifti", "dicom_feet_first")],
                         ids=["ras_aligned_nifti", "dicom_feet_first"])
def test_analysis_outputs_line_up_with_the_input(reference, tmp_path, name, perm, flip, storage):
    """heatmap, lung mask and enhanced volumes written by analyze sit on the input's anatomy."""
    canonical, canonical_mask = reference
    path = store(reindex(canonical, perm, flip), tmp_path, storage)
    out = tmp_path / "out"
    result = run_in_process(Prepared(analyze_argv(path, out, "--enhance", "on", "--scale", "2", "--no-report"),
                                     fakes=True))
    assert result.exit_code == 0, result.stderr
    loaded = load_ct(path)
    for name_ in ("heatmap.nrrd", "lung_mask.nrrd", "input.nrrd"):
        assert load_ct(out / name_).same_geometry(loaded), name_
    mask = load_ct(out / "lung_mask.nrrd")
    back = resample_to_grid(mask.voxels.astype(np.float32), mask, canonical, order=0) > 0.5
    assert np.array_equal(back, canonical_mask)
    heat = load_ct(out / "heatmap.nrrd")
    heat_back = resample_to_grid(heat.voxels, heat, canonical, order=0)
    assert heat_back[canonical_mask].min() > 0 and not heat_back[~canonical_mask].any()
    enhanced = load_ct(out / "enhanced.nrrd")
    assert enhanced.shape[1:] == (2 * 96, 2 * 96)
    assert np.allclose(marker_centre_ras(enhanced), marker_centre_ras(canonical), atol=0.5)


@pytest.mark.slow
def test_shipped_enhancer_and_heatmap_line_up(reference, tmp_path):
    """With the real models: the enhanced volume and heatmap sit on the input's anatomy."""
    from covidct.weights import available_models

    if not {"classifier", "enhancer_x2_fidelity"} <= set(available_models()):
        pytest.skip("shipped weights not in weights/ yet")
    canonical, canonical_mask = reference
    path = store(reindex(canonical, (0, 1, 2), (False, True, True)), tmp_path, "dicom")
    out = tmp_path / "out"
    result = run_in_process(Prepared(analyze_argv(path, out, "--enhance", "on", "--scale", "2", "--no-report")))
    assert result.exit_code == 0, result.stderr
    enhanced = load_ct(out / "enhanced.nrrd")
    assert np.allclose(marker_centre_ras(enhanced), marker_centre_ras(canonical), atol=1.0)
    heat = load_ct(out / "heatmap.nrrd")
    heat_back = resample_to_grid(heat.voxels, heat, canonical, order=0)
    assert not heat_back[~canonical_mask].any(), "the heatmap stays inside the (physically aligned) lungs"


@pytest.mark.slow
def test_shipped_enhancer_output_lines_up_and_repeats(reference, tmp_path):
    """``covidct enhance`` with the real x4 model: anatomy stays put in RAS; same result twice."""
    from covidct.weights import available_models

    if "enhancer_x4_fidelity" not in available_models():
        pytest.skip("the x4 enhancer weights are not in weights/ yet")
    canonical, _ = reference
    path = store(reindex(canonical, (0, 1, 2), (False, True, True)), tmp_path, "dicom")
    outputs = []
    for name in ("a.nrrd", "b.nrrd"):
        result = run_in_process(Prepared(["enhance", path, "-o", tmp_path / name, "--scale", "4",
                                          "--model", "fidelity", "--device", "cpu"]))
        assert result.exit_code == 0, result.stderr
        outputs.append(load_ct(tmp_path / name))
    enhanced = outputs[0]
    assert enhanced.shape == (24, 384, 384)
    assert np.allclose(marker_centre_ras(enhanced), marker_centre_ras(canonical), atol=1.0)
    assert np.array_equal(outputs[0].voxels, outputs[1].voxels), "deterministic on the CPU"


# --------------------------------------------------------------------------- geometry properties

signed_permutations = st.tuples(st.permutations([0, 1, 2]), st.tuples(st.booleans(), st.booleans(), st.booleans()))
spacings = st.tuples(st.floats(0.3, 4.0), st.floats(0.3, 4.0), st.floats(0.5, 6.0))
origins = st.tuples(*[st.floats(-400, 400)] * 3)


@settings(max_examples=40, deadline=None)
@given(transform=signed_permutations, spacing=spacings, origin=origins, order=st.sampled_from([0, 1]))
def test_resampling_a_restored_volume_is_exact(transform, spacing, origin, order):
    """Any storage order of the same anatomy resamples back onto the original voxel for voxel."""
    perm, flip = transform
    rng = np.random.default_rng(7)
    original = CTVolume(rng.normal(size=(4, 5, 6)).astype(np.float32), spacing, origin)
    stored = reindex(original, perm, flip)
    back = resample_to_grid(stored.voxels, stored, original, order=order)
    assert np.allclose(back, original.voxels, atol=1e-4)
    assert np.isclose(abs(np.linalg.det(stored.direction_lps)), 1.0)


@settings(max_examples=40, deadline=None)
@given(a=st.sampled_from([0.5, 2.0, 4.0]), b=st.sampled_from([0.5, 2.0, 4.0]), spacing=spacings,
       origin=origins, angle=st.floats(-np.pi, np.pi))
def test_scaled_geometry_composes(a, b, spacing, origin, angle):
    """Scaling by a then b is scaling by a*b: no drift of half voxels accumulates."""
    c, s = np.cos(angle), np.sin(angle)
    direction = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    volume = CTVolume(np.zeros((1, 8, 8)), spacing, origin, direction)
    sp1, or1 = scaled_in_plane_geometry(volume, a)
    sp2, or2 = scaled_in_plane_geometry(CTVolume(np.zeros((1, 8, 8)), sp1, or1, direction), b)
    sp3, or3 = scaled_in_plane_geometry(volume, a * b)
    assert np.allclose(sp2, sp3) and np.allclose(or2, or3, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(scale=st.sampled_from([0.5, 2.0, 4.0]), spacing=spacings, origin=origins,
       angle=st.floats(-np.pi, np.pi), flip_z=st.booleans())
def test_resize_in_plane_keeps_the_physical_centre(scale, spacing, origin, angle, flip_z):
    c, s = np.cos(angle), np.sin(angle)
    direction = np.array([[c, -s, 0], [s, c, 0], [0, 0, -1.0 if flip_z else 1.0]])
    volume = CTVolume(np.zeros((2, 8, 8), dtype=np.float32), spacing, origin, direction)
    resized = resize_in_plane(volume, scale, order=0)

    def centre(v):
        k, j, i = (np.array(v.shape) - 1) / 2.0
        return (v.ijk_to_lps() @ np.array([i, j, k, 1.0]))[:3]

    assert np.allclose(centre(resized), centre(volume), atol=1e-6)
    assert resized.shape == (2, int(8 * scale), int(8 * scale))


@settings(max_examples=25, deadline=None)
@given(factor=st.sampled_from([2, 3, 4]), rows=st.integers(1, 5), cols=st.integers(1, 5),
       seed=st.integers(0, 1000))
def test_area_downsample_keeps_the_mean(factor, rows, cols, seed):
    image = np.random.default_rng(seed).normal(size=(rows * factor, cols * factor)).astype(np.float32)
    small = area_downsample(image, factor)
    assert small.shape == (rows, cols)
    assert np.isclose(small.mean(), image.mean(), atol=1e-5)


# --------------------------------------------------------------------------- DICOM header fuzz

FUZZ_CASES = 40
FUZZ_SEED = 20200305
FUZZ_TAGS = ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns",
             "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
             "PhotometricInterpretation", "RescaleSlope", "RescaleIntercept", "SeriesInstanceUID",
             "Modality", "SliceThickness", "SOPClassUID", "PixelData", "StudyInstanceUID"]
FUZZ_VALUES = ["", "abc", "0", "-1", "1e30", "nan", "\\".join(["0"] * 6), "65535"]


def _mutate(rng, folder) -> list:
    """1-3 random header mutations on some files of the series; returns what was done."""
    import pydicom
    from pydicom.dataelem import DataElement
    from pydicom.datadict import tag_for_keyword

    files = sorted(folder.iterdir())
    done = []
    for _ in range(int(rng.integers(1, 4))):
        keyword = FUZZ_TAGS[int(rng.integers(len(FUZZ_TAGS)))]
        chosen = files if rng.random() < 0.5 else [files[int(rng.integers(len(files)))]]
        action = "delete" if rng.random() < 0.4 else FUZZ_VALUES[int(rng.integers(len(FUZZ_VALUES)))]
        if rng.random() < 0.15:
            action = "bytes"
        for path in chosen:
            if action == "bytes":  # flip bytes in the header region
                data = bytearray(path.read_bytes())
                for _ in range(8):
                    position = int(rng.integers(132, min(len(data), 900)))
                    data[position] = int(rng.integers(256))
                path.write_bytes(bytes(data))
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = pydicom.dcmread(path)
                    tag = tag_for_keyword(keyword)
                    if action == "delete":
                        if tag in ds:
                            del ds[tag]
                    else:  # raw bytes, unchecked: read back as the tag's VR, like a corrupt file
                        ds[tag] = DataElement(tag, "UN", action.encode())
                    ds.save_as(path, enforce_file_format=False)
            except Exception:  # noqa: BLE001 - pydicom refused to write it: keep the file as it was
                continue
        done.append((keyword, action, len(chosen)))
    return done


@pytest.fixture(scope="module")
def fuzz_template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz") / "template"
    write_scan(folder, hu=scan_hu(12))
    return folder


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("index", range(FUZZ_CASES))
def test_dicom_header_fuzz_ends_in_success_or_covidct_error(fuzz_template, tmp_path, index):
    from covidct.cli.info_command import describe

    rng = np.random.default_rng([FUZZ_SEED, index])
    folder = tmp_path / "s"
    shutil.copytree(fuzz_template, folder)
    mutations = _mutate(rng, folder)
    try:
        volume = load_ct(folder)
        describe(volume)
    except CovidCTError:
        pass
    except Exception as exc:  # noqa: BLE001 - exactly what this test hunts
        pytest.fail(f"mutations {mutations} escaped as {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- determinism

def test_lung_mask_and_volumes_are_deterministic(sample_scan):
    from covidct.cli.info_command import describe

    first, second = load_ct(sample_scan), load_ct(sample_scan)
    assert np.array_equal(first.voxels, second.voxels)
    assert np.array_equal(compute_lung_mask(first), compute_lung_mask(second))
    assert describe(first) == describe(second)


@pytest.mark.slow
def test_classification_is_deterministic_on_cpu(sample_scan):
    from covidct.weights import available_models

    if "classifier" not in available_models():
        pytest.skip("the classifier weights are not in weights/ yet")
    from covidct.classify import classify_volume

    volume = load_ct(sample_scan)
    mask = compute_lung_mask(volume)
    a = classify_volume(volume, mask, device="cpu")
    b = classify_volume(volume, mask, device="cpu")
    assert a.covid_probability == b.covid_probability and a.per_slice == b.per_slice
    assert np.array_equal(a.heatmap, b.heatmap)
