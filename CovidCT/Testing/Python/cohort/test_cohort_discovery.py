"""Cohort discovery: series grouped by SeriesInstanceUID (not folder), CSV manifests, labels."""

from __future__ import annotations

import os

import pytest

import cohort_factory
from bad_inputs.building import write_scan
from covidct.cohort.discovery import apply_labels, discover_inputs
from covidct.errors import InputNotFoundError, UnsupportedInputError


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, sample_scan):
    return cohort_factory.build_cohort(tmp_path_factory.mktemp("cohort"), sample_scan)


def test_one_scan_per_series_whatever_the_folders(cohort):
    scans = discover_inputs(cohort.root)
    assert len(scans) == cohort.size
    by_path = {}
    for scan in scans:
        by_path.setdefault(scan.path, []).append(scan)
    mixed = by_path[str(cohort.shared_folder.resolve())]
    assert len(mixed) == 2 and len({s.series_uid for s in mixed}) == 2
    assert all(s.choose_series for s in mixed)
    split = by_path[str((cohort.root / "site-b" / "split").resolve())]
    assert len(split) == 1 and len(split[0].files) == 24 and not split[0].choose_series
    assert str((cohort.root / "site-b" / "split" / "part1").resolve()) not in by_path
    # The unreadable file lies in its series' folder: no scan of its own, the series fails on it.
    assert str((cohort.root / "broken" / "corrupt_file_in_series" / "s").resolve()) in by_path
    assert {str(p.resolve()) for p in list(cohort.good) + list(cohort.broken)} <= set(by_path)


def test_keys_stable_and_fingerprints_follow_the_files(cohort, tmp_path):
    first = {s.key: s for s in discover_inputs(cohort.root)}
    again = {s.key: s for s in discover_inputs(cohort.root)}
    assert first.keys() == again.keys() and len(first) == cohort.size
    assert all(first[k].fingerprint == again[k].fingerprint for k in first)
    folder = tmp_path / "one"
    paths = write_scan(folder)
    before = discover_inputs(tmp_path)[0]
    os.utime(paths[3], ns=(1, 1))
    after = discover_inputs(tmp_path)[0]
    assert before.key == after.key and before.fingerprint != after.fingerprint


def test_a_folder_of_unreadable_files_is_a_scan(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(500))
    scans = discover_inputs(tmp_path)
    assert [s.path for s in scans] == [str((tmp_path / "junk").resolve())]


def test_csv_manifest_ids_labels_and_relative_paths(tmp_path, sample_scan):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.nrrd").write_bytes(sample_scan.read_bytes())
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("path,id,label\ndata/x.nrrd,case-1,COVID-19\nmissing.nrrd,case-2,0\n")
    scans = discover_inputs(manifest)
    assert [(s.scan_id, s.label) for s in scans] == [("case-1", 1), ("case-2", 0)]
    assert scans[0].path == str(tmp_path / "data" / "x.nrrd") and scans[1].files == []
    manifest.write_text("path,label\ndata/x.nrrd,maybe\n")
    with pytest.raises(UnsupportedInputError, match="line 2: label 'maybe'"):
        discover_inputs(manifest)
    manifest.write_text("path\ndata/x.nrrd\ndata/x.nrrd\n")
    with pytest.raises(UnsupportedInputError, match="listed twice"):
        discover_inputs(manifest)
    manifest.write_text("file\ndata/x.nrrd\n")
    with pytest.raises(UnsupportedInputError, match="no 'path' column"):
        discover_inputs(manifest)
    with pytest.raises(InputNotFoundError):
        discover_inputs(tmp_path / "nowhere")


def test_labels_by_id_or_path(cohort, tmp_path):
    scans = discover_inputs(cohort.root)
    labels = cohort_factory.labels_csv(cohort, tmp_path / "labels.csv")
    assert apply_labels(scans, labels) == len(cohort.good)
    by_path = {s.path: s.label for s in scans if not s.choose_series}
    assert all(by_path[str(p.resolve())] == label for p, label in cohort.good.items())
    (tmp_path / "by_id.csv").write_text(f"id,label\n{scans[0].key},negative\nnot-a-scan,1\n")
    assert apply_labels(scans, tmp_path / "by_id.csv") == 1 and scans[0].label == 0
