"""The command line: one entry point, clear errors with exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import dicom_factory as factory
from covidct.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "covidct.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_info_on_sample_json(sample_scan, capsys):
    assert main(["info", str(sample_scan), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape_kji"] == [148, 128, 128]
    assert 4000 < info["lung_volume_ml"]["total_ml"] < 8000


def test_info_and_quantification_report_the_same_lung_volumes(sample_scan, capsys):
    """One left/right split: ``covidct info`` and the report's quantification agree per side."""
    from covidct.io import load_ct
    from covidct.preprocess import compute_lung_mask
    from covidct.quantify import quantify_lungs

    assert main(["info", str(sample_scan), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["lung_volume_ml"]
    volume = load_ct(sample_scan)
    quantified = quantify_lungs(volume, compute_lung_mask(volume))
    for side in ("right", "left", "total"):
        assert info[f"{side}_ml"] == round(quantified[side]["volume_ml"], 1)
    assert 0.3 < info["left_ml"] / info["total_ml"] < 0.7


def test_info_human_readable_no_identifiers(tmp_path):
    factory.write_series(tmp_path / "s", factory.phantom_hu(rows=96, cols=96, slices=30), spacing_mm=(3.0, 3.0), slice_mm=3.0)
    result = run_cli("info", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    assert "Phantom 1" in result.stdout and "Lung volume" in result.stdout
    assert factory.PATIENT_ID not in result.stdout and "Doe" not in result.stdout
    named = run_cli("info", tmp_path / "s", "--include-identifiers", "--no-lung-mask")
    assert factory.PATIENT_ID in named.stdout


def test_errors_are_one_line_with_exit_codes(tmp_path):
    missing = run_cli("info", tmp_path / "nope")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    factory.write_series(tmp_path / "mr", modality="MR")
    mr = run_cli("info", tmp_path / "mr")
    assert mr.returncode == 4 and "Traceback" not in mr.stderr


def test_help_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0 and "info" in result.stdout
