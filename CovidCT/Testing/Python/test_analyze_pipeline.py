"""``covidct analyze`` end to end on the bundled sample, and its safety properties."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from covidct.analyze import AnalysisOptions, analyze_scan
from covidct.errors import CancelledError, OutputError
from covidct.io import load_ct
from covidct.progress import CancelToken
from covidct.result import SliceScore, pick_key_slices


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sample_result(tmp_path_factory, sample_scan):
    """One real analysis of the sample with the shipped weights (enhancement forced on)."""
    before = sha(sample_scan)
    out = tmp_path_factory.mktemp("analysis") / "sample"
    stages = []
    result = analyze_scan(sample_scan, out, AnalysisOptions(device="cpu", enhance="on", report=False),
                          progress=lambda f, s: stages.append((f, s)))
    assert sha(sample_scan) == before, "the input file must never be modified"
    return out, result, stages


def test_result_json_contract(sample_result):
    out, result, _ = sample_result
    on_disk = json.loads((out / "result.json").read_text())
    assert on_disk["decision"] in ("COVID-19", "non-COVID")
    p = on_disk["probabilities"]
    assert 0.0 <= p["covid19"] <= 1.0 and p["covid19"] + p["non_covid"] == pytest.approx(1.0, abs=1e-4)
    assert 0.0 < on_disk["threshold"] < 1.0
    assert 0.0 < on_disk["operating_point"]["sensitivity"] <= 1.0
    assert 0.0 < on_disk["operating_point"]["specificity"] <= 1.0
    per_slice = on_disk["per_slice"]
    assert [s["index"] for s in per_slice] == list(range(148))
    assert all(set(s) >= {"index", "z_mm", "covid19", "in_lung"} for s in per_slice)
    assert all((s["covid19"] is None) == (not s["in_lung"]) for s in per_slice)
    assert np.all(np.diff([s["z_mm"] for s in per_slice]) > 0)
    assert on_disk["key_slices"] and all(per_slice[k]["in_lung"] for k in on_disk["key_slices"])
    assert set(on_disk["timings_s"]) >= {"load", "lung mask", "enhance", "classify", "quantify"}
    assert on_disk["model"]["classifier"]["sha256"]
    assert not list(out.parent.glob(".*partial*")), "staging folder removed after publishing"


def test_volumes_have_exact_geometry(sample_result, sample_scan):
    out, result, _ = sample_result
    original = load_ct(sample_scan)
    heatmap = load_ct(out / result.heatmap)
    mask = load_ct(out / result.lung_mask)
    lesions = load_ct(out / result.lesions)
    assert heatmap.same_geometry(original) and mask.same_geometry(original) and lesions.same_geometry(original)
    assert set(np.unique(lesions.voxels)) <= {0, 1, 2} and not np.any(lesions.voxels[mask.voxels == 0])
    assert result.lesion_labels == {"1": "ground glass", "2": "consolidation"}
    assert heatmap.voxels.min() >= 0.0 and heatmap.voxels.max() == pytest.approx(1.0)
    assert not np.any(heatmap.voxels[mask.voxels == 0]), "heatmap is masked to the lungs"
    enhanced = load_ct(out / result.enhanced)
    assert enhanced.shape == (148, 512, 512)
    assert np.allclose(enhanced.spacing_mm, (original.spacing_mm[0] / 4, original.spacing_mm[1] / 4,
                                             original.spacing_mm[2]))
    # Same physical extent: the outer corner of the first voxel coincides.
    corner = lambda v: v.ijk_to_lps() @ np.array([-0.5, -0.5, 0, 1])  # noqa: E731
    assert np.allclose(corner(enhanced), corner(original), atol=1e-4)
    assert -1100 <= float(np.percentile(enhanced.voxels, 1)) and float(enhanced.voxels.max()) <= 3100


def test_progress_is_monotonic_and_named(sample_result):
    _, _, stages = sample_result
    fractions = [f for f, _ in stages]
    assert fractions[-1] == 1.0 and all(b >= a - 1e-9 for a, b in zip(fractions, fractions[1:]))
    assert {"load", "enhance", "classify"} <= {s for _, s in stages}


def test_existing_output_refused_without_overwrite(sample_result, sample_scan):
    out, _, _ = sample_result
    with pytest.raises(OutputError, match="already exists"):
        analyze_scan(sample_scan, out, AnalysisOptions(enhance="off", report=False))


def test_cancel_leaves_nothing(tmp_path, sample_scan):
    cancel = CancelToken()

    def progress(fraction, stage):
        if stage == "classify":
            cancel.cancel()

    with pytest.raises(CancelledError):
        analyze_scan(sample_scan, tmp_path / "out", AnalysisOptions(enhance="off", report=False),
                     progress=progress, cancel=cancel)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.iterdir())


def test_key_slices_are_spread_out():
    per_slice = [SliceScore(k, 2.0 * k, 1.0 - abs(k - 20) / 40, True) for k in range(40)] + \
        [SliceScore(40, 80.0, None, False)]
    keys = pick_key_slices(per_slice, 3, 2.0)
    assert keys[0] == 20
    zs = [2.0 * k for k in keys]
    assert all(abs(a - b) >= 10.0 for i, a in enumerate(zs) for b in zs[i + 1:])


def test_a_runs_warnings_are_its_own(tmp_path, sample_scan):
    """One AnalysisOptions serves many scans (cohort workers, the web app): run state stays in the run."""
    import dataclasses

    import SimpleITK as sitk

    tilted = sitk.ReadImage(str(sample_scan))
    tilted.SetDirection((1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0))  # coronal slices: a warning, not an error
    path = tmp_path / "tilted.nrrd"
    sitk.WriteImage(tilted, str(path))
    options = AnalysisOptions(device="cpu", enhance="off", report=False)
    first = analyze_scan(path, tmp_path / "first", options)
    second = analyze_scan(path, tmp_path / "second", options)
    assert any("not axial" in w for w in first.warnings)
    assert second.warnings == first.warnings  # not doubled by the first run
    assert json.loads((tmp_path / "second" / "result.json").read_text())["warnings"] == first.warnings
    assert options == AnalysisOptions(device="cpu", enhance="off", report=False)
    assert "warnings" not in {f.name for f in dataclasses.fields(AnalysisOptions)}
