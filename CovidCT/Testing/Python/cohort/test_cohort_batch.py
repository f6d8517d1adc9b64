"""``covidct batch`` on a LocalCluster with 2 workers over a generated mixed cohort (13 scans).

13 scans rather than tens: each synthetic scan takes 1-3 s on this 2-core machine, and the
cohort is run three times (whole, killed and resumed, rerun).  Good scans must come out
identical to a single-scan ``analyze_scan``; broken ones failed with the message
``covidct analyze`` gives; a killed worker and a killed batch lose and redo nothing.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

import cohort_factory  # noqa: E402
import dicom_factory  # noqa: E402
from bad_inputs.building import write_scan  # noqa: E402
from covidct.analyze import AnalysisOptions, analyze_scan  # noqa: E402
from covidct.cohort import CohortOptions, discover_inputs, run_cohort  # noqa: E402
from covidct.result import AnalysisResult  # noqa: E402

REPO = Path(__file__).resolve().parents[4]
FAST_FLAGS = ["--device", "cpu", "--enhance", "off", "--no-report"]


def _options(**extra) -> CohortOptions:
    return CohortOptions(workers=2, threads_per_worker=1, analysis=AnalysisOptions(**cohort_factory.FAST), **extra)


def _manifest(out: Path) -> dict:
    return {e["key"]: e for e in json.loads((out / "manifest.json").read_text())["scans"]}


def _result(out: Path, key: str) -> AnalysisResult:
    return AnalysisResult.load(out / "scans" / key / "result.json")


def _batch_argv(inputs, out, *extra) -> list:
    return [sys.executable, "-m", "covidct", "batch", str(inputs), "-o", str(out), "--workers", "2",
            "--threads-per-worker", "1", *FAST_FLAGS, *map(str, extra)]


def _env() -> dict:
    env = dict(os.environ, COVIDCT_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "CovidCT"), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, sample_scan):
    return cohort_factory.build_cohort(tmp_path_factory.mktemp("cohort"), sample_scan)


@pytest.fixture(scope="module")
def first_run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "out"
    labels = cohort_factory.labels_csv(cohort, out.parent / "labels.csv")
    summary = run_cohort(cohort.root, out, _options(labels=str(labels)))
    return out, summary


def _keys_by_path(cohort) -> dict:
    return {scan.path: scan.key for scan in discover_inputs(cohort.root) if not scan.choose_series}


def test_good_scans_done_broken_failed_with_their_message(cohort, first_run):
    out, summary = first_run
    entries = _manifest(out)
    assert (summary.total, summary.done, summary.failed) == (cohort.size, cohort.size - len(cohort.broken),
                                                             len(cohort.broken))
    keys = _keys_by_path(cohort)
    for path in cohort.good:
        assert entries[keys[str(path.resolve())]]["state"] == "done", path
    for path, expected in cohort.broken.items():
        entry = entries[keys[str(path.resolve())]]
        assert entry["state"] == "failed" and entry["error_class"] == expected.error.__name__, entry
        assert re.search(expected.message, entry["message"]), entry["message"]
        assert entry["exit_code"] == expected.exit_code
    done = [e for e in entries.values() if e["state"] == "done"]
    # Models loaded once per worker: both workers analysed several scans with the model of their setup.
    assert {e["worker"] for e in done} == {"0", "1"} and all(e["model_reused"] for e in done)
    assert len(summary.model_load_s) == 2 and all(s > 0 for s in summary.model_load_s.values())
    mixed = [e for e in entries.values() if e["path"] == str(cohort.shared_folder.resolve())]
    assert [e["state"] for e in mixed] == ["done", "done"]
    assert all(len(e["content_sha256"]) == 64 for e in entries.values())


def test_results_identical_to_single_scan_analyze(cohort, first_run, tmp_path):
    out, _ = first_run
    scans = {s.key: s for s in discover_inputs(cohort.root)}
    split = next(s for s in scans.values() if s.path.endswith("split"))
    mixed = next(s for s in scans.values() if s.choose_series)
    sample = next(s for s in scans.values() if s.path.endswith("sample.nrrd"))
    for scan in (split, mixed, sample):
        options = AnalysisOptions(**cohort_factory.FAST, series_uid=scan.series_uid if scan.choose_series else None)
        single = analyze_scan(scan.path, tmp_path / scan.key, options)
        batch = _result(out, scan.key)
        assert batch.probabilities == single.probabilities and batch.decision == single.decision
        assert batch.per_slice == single.per_slice and batch.threshold == single.threshold
        assert batch.quantification.total == single.quantification.total
        assert batch.model.classifier.sha256 == single.model.classifier.sha256


def test_cohort_table_and_evaluation_without_identifiers(cohort, first_run):
    out, _ = first_run
    rows = list(csv.DictReader((out / "cohort.csv").open()))
    assert len(rows) == cohort.size and len({r["id"] for r in rows}) == cohort.size
    done = [r for r in rows if r["state"] == "done"]
    assert all(r["decision"] in ("COVID-19", "non-COVID", "indeterminate") and 0 <= float(r["covid19_probability"]) <= 1
               for r in done)
    assert len({r["covid19_probability"] for r in done}) >= 4  # the lesions differ, so do the scores
    assert all(len(r["classifier_sha256"]) == 64 and r["quality_gate"] and r["corads_category"] for r in done)
    assert sum(r["label"] != "" for r in rows) == len(cohort.good)
    assert {r["state"] for r in rows if r["error_class"]} == {"failed"}
    texts = [(out / name).read_text() for name in ("cohort.csv", "cohort.json", "manifest.json")]
    texts += [p.read_text() for p in (out / "scans").glob("*/result.json")]
    for text in texts:
        assert dicom_factory.PATIENT_ID not in text and "Doe" not in text
    assert str(cohort.root) not in texts[0]  # no paths in the table by default
    page = (out / "evaluation" / "evaluation.html").read_text()
    assert "AUC (95 % bootstrap CI)" in page and "scans with a label</th><td>6<" in page
    assert {p.name for p in (out / "evaluation").glob("*.png")} >= {"cohort_roc.png", "confusion_matrix.png",
                                                                    "calibration.png"}


def test_rerun_redoes_nothing_and_retries_failed_only_when_asked(cohort, first_run):
    out, first = first_run
    stamps = {p: p.stat().st_mtime_ns for p in (out / "scans").glob("*/result.json")}
    again = run_cohort(cohort.root, out, _options())
    assert (again.ran, again.skipped, again.done, again.failed) == (0, first.done, first.done, first.failed)
    retried = run_cohort(cohort.root, out, _options(retry_failed=True))
    assert (retried.ran, retried.done, retried.failed) == (len(cohort.broken), first.done, first.failed)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert all(e.get("attempts") == 2 for e in _manifest(out).values() if e["state"] == "failed")


def _worker_processes(batch_pid: int) -> list:
    import psutil

    return [p for p in psutil.Process(batch_pid).children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline())]


def _wait_for_done(out: Path, count: int, proc, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (out / "manifest.json").exists():
            entries = _manifest(out)
            if sum(e["state"] == "done" for e in entries.values()) >= count:
                return entries
        assert proc.poll() is None, "the batch finished before it could be killed"
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} scans done after {timeout_s} s")


def test_killed_worker_then_killed_batch_resume_losing_and_redoing_nothing(cohort, first_run, tmp_path):
    reference_out, _ = first_run
    out = tmp_path / "out"
    log = (tmp_path / "stdout.txt").open("w"), (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(_batch_argv(cohort.root, out, "--progress", "json"), env=_env(), stdout=log[0],
                            stderr=log[1], start_new_session=True)
    try:
        _wait_for_done(out, 2, proc)
        workers = _worker_processes(proc.pid)
        assert len(workers) == 2
        workers[0].send_signal(signal.SIGKILL)  # the nanny starts a new worker, the scheduler reruns its scan
        _wait_for_done(out, 6, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole batch dies: client, scheduler, workers
        proc.wait()
    killed = _manifest(out)
    done_before = {k for k, e in killed.items() if e["state"] == "done"}
    assert 6 <= len(done_before) < len(killed), "the batch must die mid-run"
    stamps = {k: (out / "scans" / k / "result.json").stat().st_mtime_ns for k in done_before}

    rerun = subprocess.run(_batch_argv(cohort.root, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 8, rerun.stderr  # some scans are broken
    assert f"{len(done_before)} from earlier runs" in rerun.stdout
    final = _manifest(out)
    reference = _manifest(reference_out)
    assert {k: e["state"] for k, e in final.items()} == {k: e["state"] for k, e in reference.items()}
    assert {k: (out / "scans" / k / "result.json").stat().st_mtime_ns for k in done_before} == stamps
    for key, entry in final.items():
        if entry["state"] == "done":
            assert _result(out, key).probabilities == _result(reference_out, key).probabilities
    assert not list((out / "scans").glob(".*partial*")) and not (out / ".covidct-batch.lock").exists()
    for text in (rerun.stdout, rerun.stderr, (tmp_path / "stdout.txt").read_text(),
                 (tmp_path / "stderr.txt").read_text()):
        assert dicom_factory.PATIENT_ID not in text and dicom_factory.PATIENT_NAME not in text


def test_identifiers_only_when_asked(tmp_path):
    write_scan(tmp_path / "in" / "s")
    done = subprocess.run(_batch_argv(tmp_path / "in", tmp_path / "out", "--workers", "1", "--include-identifiers"),
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    row = next(csv.DictReader((tmp_path / "out" / "cohort.csv").open()))
    assert row["patient_id"] == dicom_factory.PATIENT_ID and row["patient_name"] == dicom_factory.PATIENT_NAME
    assert dicom_factory.PATIENT_ID not in done.stdout + done.stderr


def test_ctrl_c_stops_cleanly_and_resumes(cohort, tmp_path):
    out = tmp_path / "out"
    with (tmp_path / "stderr.txt").open("w") as stderr:
        # A terminal's Ctrl-C reaches a process whose SIGINT is at its default; a child inherits an
        # ignored SIGINT from its parent (as under some test runners), and Python then never raises
        # KeyboardInterrupt, so the default is restored in the child explicitly.
        proc = subprocess.Popen(_batch_argv(cohort.root, out), env=_env(), stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            _wait_for_done(out, 1, proc)
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C: to every process
            assert proc.wait(timeout=120) == 130
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert "rerun the same command" in (tmp_path / "stderr.txt").read_text()
    states = [e["state"] for e in _manifest(out).values()]
    assert "running" not in states and "done" in states and "pending" in states
    assert not (out / ".covidct-batch.lock").exists() and (out / "cohort.csv").exists()


@pytest.mark.slow
def test_shared_dicom_scans_from_a_csv_manifest(shared_data, tmp_path):
    """The three real 512² COVID-CT-MD series (JPEG lossless), listed in a CSV with labels (~2-3 min)."""
    folder = shared_data / "covid-ct-md"
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("path,id,label\n" + "".join(f"{folder / name},{name},{int(name == 'P001')}\n"
                                                    for name in ("P001", "cap001", "normal001")))
    summary = run_cohort(manifest, tmp_path / "out", _options())
    assert (summary.done, summary.failed) == (3, 0)
    rows = {r["id"]: r for r in csv.DictReader((tmp_path / "out" / "cohort.csv").open())}
    assert set(rows) == {"P001", "cap001", "normal001"} and rows["P001"]["label"] == "1"
    key = next(s.key for s in discover_inputs(manifest) if s.scan_id == "P001")
    single = analyze_scan(folder / "P001", tmp_path / "single", AnalysisOptions(**cohort_factory.FAST))
    batch = _result(tmp_path / "out", key)
    assert batch.probabilities == single.probabilities and batch.per_slice == single.per_slice
    assert float(rows["P001"]["covid19_probability"]) == single.probabilities.covid19
    assert (tmp_path / "out" / "evaluation" / "evaluation.html").exists()


def test_refused_before_any_worker_starts(tmp_path):
    from covidct.errors import DeviceError, UnsupportedInputError

    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedInputError, match="No DICOM series or volume files"):
        run_cohort(tmp_path / "empty", tmp_path / "out", _options())
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="none is available"):
            run_cohort(tmp_path / "empty", tmp_path / "out", CohortOptions(analysis=AnalysisOptions(device="cuda")))
