"""The cohort manifest: states across reruns, atomic saves, refusal of other options."""

from __future__ import annotations

import json

import pytest

from covidct.cohort.discovery import ScanInput
from covidct.cohort.manifest import CohortManifest
from covidct.errors import OutputError

OPTIONS = {"enhance": "off", "report": False}


def _scans(n=4):
    return [ScanInput(key=f"k{i}", scan_id=f"id{i}", path=f"/data/{i}", fingerprint=f"f{i}") for i in range(n)]


def _finish(manifest, key, state, **fields):
    manifest.mark_running(key, "w0")
    manifest.record({"key": key, "state": state, **fields})


def test_states_survive_a_rerun(tmp_path):
    scans = _scans()
    manifest = CohortManifest.open(tmp_path, OPTIONS)
    assert [s.key for s in manifest.reconcile(scans, retry_failed=False)] == ["k0", "k1", "k2", "k3"]
    _finish(manifest, "k0", "done", seconds=1.0, content_sha256="ab")
    _finish(manifest, "k1", "failed", error_class="InvalidCTError", message="not CT", exit_code=4)
    manifest.mark_running("k2", "w1")  # the run dies here
    manifest.save()

    again = CohortManifest.open(tmp_path, OPTIONS)
    assert again.entries["k1"]["message"] == "not CT" and again.entries["k0"]["content_sha256"] == "ab"
    assert again.counts() == {"pending": 1, "running": 1, "done": 1, "failed": 1}
    assert [s.key for s in again.reconcile(scans, retry_failed=False)] == ["k2", "k3"]
    assert again.entries["k2"]["state"] == "pending" and again.entries["k2"]["attempts"] == 1
    assert [s.key for s in again.reconcile(scans, retry_failed=True)] == ["k1", "k2", "k3"]
    assert "message" not in again.entries["k1"]


def test_a_changed_input_is_analysed_again(tmp_path):
    scans = _scans(1)
    manifest = CohortManifest.open(tmp_path, OPTIONS)
    manifest.reconcile(scans, False)
    _finish(manifest, "k0", "done")
    assert manifest.reconcile(scans, False) == []
    scans[0].fingerprint = "changed"
    assert [s.key for s in manifest.reconcile(scans, False)] == ["k0"]


def test_a_late_start_event_never_undoes_a_result(tmp_path):
    manifest = CohortManifest.open(tmp_path, OPTIONS)
    manifest.reconcile(_scans(1), False)
    manifest.record({"key": "k0", "state": "done"})
    manifest.mark_running("k0", "w0")
    manifest.mark_pending("k0")
    assert manifest.entries["k0"]["state"] == "done"


def test_saved_atomically_and_refuses_other_options(tmp_path):
    manifest = CohortManifest.open(tmp_path, OPTIONS)
    manifest.reconcile(_scans(2), False)
    manifest.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    assert json.loads((tmp_path / "manifest.json").read_text())["options"] == OPTIONS
    with pytest.raises(OutputError, match="other options"):
        CohortManifest.open(tmp_path, dict(OPTIONS, enhance="on"))
    (tmp_path / "manifest.json").write_text('{"scans": [')
    with pytest.raises(OutputError, match="damaged"):
        CohortManifest.open(tmp_path, OPTIONS)


def test_scans_of_a_lost_worker_go_back_to_pending(tmp_path):
    manifest = CohortManifest.open(tmp_path, OPTIONS)
    manifest.reconcile(_scans(3), False)
    manifest.mark_running("k0", "0", "tcp://a")
    manifest.mark_running("k1", "1", "tcp://b")
    assert manifest.release_lost({"tcp://a", "tcp://c"}, ["k0", "k1", "k2"])
    assert [manifest.entries[k]["state"] for k in ("k0", "k1", "k2")] == ["running", "pending", "pending"]
    assert not manifest.release_lost({"tcp://a"}, ["k0", "k1", "k2"])


def test_a_done_scan_whose_result_is_gone_runs_again(tmp_path):
    scans = _scans(2)
    manifest = CohortManifest.open(tmp_path, OPTIONS)
    manifest.reconcile(scans, False)
    _finish(manifest, "k0", "done")
    _finish(manifest, "k1", "done")
    again = manifest.reconcile(scans, False, result_exists=lambda key: key == "k1")
    assert [s.key for s in again] == ["k0"]
