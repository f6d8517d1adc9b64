"""The process runner the module uses for ``covidct analyze``, driven with tiny Python children."""

import os
import sys
import textwrap
import time

import pytest


from CovidCTLib.analysis_process import (AnalysisProcess, AnalysisState, CORE_SOURCE_DIR, Step, analyze_command,
                                         core_environment, dicom_series_files, dicom_source_folder,
                                         parse_progress_line, report_command, report_step)

pytestmark = pytest.mark.slicer


def _child(code: str):
    return [sys.executable, "-c", textwrap.dedent(code)]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    stat = f"/proc/{pid}/stat"
    if os.path.exists("/proc"):
        try:
            with open(stat) as handle:
                return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_progress_lines_are_parsed_and_other_lines_ignored():
    assert parse_progress_line('{"progress": 0.42, "stage": "classify"}') == (0.42, "classify")
    assert parse_progress_line('{"progress": 7, "stage": "x"}') == (1.0, "x")  # clamped
    assert parse_progress_line("covidct analyze: error: no lungs found") is None
    assert parse_progress_line('{"stage": "no fraction"}') is None
    assert parse_progress_line("{not json") is None


def test_successful_run_reports_stages_then_imports_then_done():
    seen = []
    imported = []
    process = AnalysisProcess(_child("""
        import json, sys, time
        for fraction, stage in ((0.1, "load"), (0.6, "classify"), (0.9, "heatmap")):
            sys.stderr.write(json.dumps({"progress": fraction, "stage": stage}) + "\\n"); sys.stderr.flush()
            time.sleep(0.15)
        print("wrote result.json")
    """), on_success=lambda p: imported.append(p.state))
    process.start()
    while not process.poll().finished:
        seen.append((process.state, process.stage))
        time.sleep(0.02)
    assert process.state == AnalysisState.DONE
    assert imported == [AnalysisState.IMPORTING]  # import runs in the polling thread, in its own state
    stages = [stage for state, stage in seen if state == AnalysisState.RUNNING]
    assert "classify" in stages and stages.index("load") < stages.index("classify")
    assert process.progress == 1.0 and process.returncode == 0
    assert "wrote result.json" in process.log_lines


def test_failure_keeps_the_core_message_for_the_user():
    process = AnalysisProcess(_child("""
        import sys
        sys.stderr.write('{"progress": 0.2, "stage": "load"}\\n')
        sys.stderr.write("covidct analyze: error: weights/classifier.pt is missing; reinstall CovidCT.\\n")
        sys.exit(5)
    """)).start()
    assert process.wait(timeout_s=60) == AnalysisState.FAILED
    assert process.returncode == 5
    assert process.error_message == "covidct analyze: error: weights/classifier.pt is missing; reinstall CovidCT."


def test_import_failure_turns_the_run_into_failed():
    def broken_import(_process):
        raise ValueError("heatmap.nrrd is missing")

    process = AnalysisProcess(_child("print('ok')"), on_success=broken_import).start()
    assert process.wait(timeout_s=60) == AnalysisState.FAILED
    assert "heatmap.nrrd is missing" in process.error_message


def test_cancel_kills_the_whole_process_tree(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    process = AnalysisProcess(_child(f"""
        import json, subprocess, sys, time
        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pid_file)!r}, "w").write(str(helper.pid))
        sys.stderr.write(json.dumps({{"progress": 0.3, "stage": "enhance"}}) + "\\n"); sys.stderr.flush()
        time.sleep(120)
    """)).start()
    deadline = time.monotonic() + 30
    while process.poll() != AnalysisState.RUNNING or not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "child never started"
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    child = process.pid
    assert _alive(child) and _alive(grandchild)
    process.cancel()
    assert process.state == AnalysisState.CANCELLED
    deadline = time.monotonic() + 10
    while (_alive(child) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child) and not _alive(grandchild)
    assert process.poll() == AnalysisState.CANCELLED  # stays cancelled, no late import


def test_wait_with_timeout_stops_the_run():
    process = AnalysisProcess(_child("import time; time.sleep(60)")).start()
    with pytest.raises(TimeoutError):
        process.wait(timeout_s=0.5)
    assert process.state == AnalysisState.CANCELLED


def test_missing_python_is_reported_not_raised():
    process = AnalysisProcess(["/nonexistent/python-for-covidct", "-c", "pass"]).start()
    assert process.state == AnalysisState.FAILED
    assert "Could not start" in process.error_message


def test_analyze_command_and_environment():
    command = analyze_command("/data/in.nrrd", "/data/out", device="cpu", enhance="off", scale="2",
                              python="/py")
    assert command[:3] == ["/py", "-m", "covidct.cli"]
    assert command[3:] == ["analyze", "/data/in.nrrd", "-o", "/data/out", "--device", "cpu",
                           "--enhance", "off", "--scale", "2", "--progress", "json"]
    env = core_environment({"PYTHONPATH": "/other"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(CORE_SOURCE_DIR), "/other"]
    assert (CORE_SOURCE_DIR / "covidct" / "__init__.py").is_file()


def test_the_command_reaches_the_core_cli(tmp_path):
    """The real entry point is found with the module's environment (version, no analysis)."""
    command = analyze_command(tmp_path / "in.nrrd", tmp_path / "out", python=sys.executable)
    process = AnalysisProcess(command[:3] + ["--version"], env=core_environment()).start()
    assert process.wait(timeout_s=120) == AnalysisState.DONE
    assert any(line.startswith("covidct ") for line in process.log_lines)


def test_a_real_analyze_failure_reaches_the_user_with_the_core_message(tmp_path):
    """Contract with ``covidct analyze``: non-zero exit and a one-line reason on stderr."""
    command = analyze_command(tmp_path / "missing.nrrd", tmp_path / "out", device="cpu", python=sys.executable)
    process = AnalysisProcess(command, env=core_environment()).start()
    assert process.wait(timeout_s=300) == AnalysisState.FAILED
    assert process.returncode != 0
    assert "missing.nrrd" in process.error_message and "does not exist" in process.error_message
    assert not (tmp_path / "out" / "result.json").exists()


def test_the_commands_parse_with_the_real_core_cli(tmp_path):
    """``--no-report`` and ``report --dicom-source`` are options the core's CLI really has."""
    from covidct.cli import build_parser

    analyze = analyze_command(tmp_path / "in.nrrd", tmp_path / "out", device="cpu", report=False, python="/py")
    assert analyze[-1] == "--no-report"
    args = build_parser().parse_args(analyze[3:])
    assert args.no_report and args.device == "cpu" and args.progress == "json"
    report = report_command(tmp_path / "out", tmp_path / "dicom", python="/py")
    assert report[:4] == ["/py", "-m", "covidct.cli", "report"]
    args = build_parser().parse_args(report[3:])
    assert str(args.result_dir) == str(tmp_path / "out") and str(args.dicom_source) == str(tmp_path / "dicom")


def test_follow_up_step_runs_after_the_first_and_shares_the_progress_bar(tmp_path):
    marker = tmp_path / "first-done"
    seen = []
    process = AnalysisProcess(_child(f"""
        import json, sys, time
        sys.stderr.write(json.dumps({{"progress": 0.5, "stage": "classify"}}) + "\\n"); sys.stderr.flush()
        time.sleep(0.3)
        sys.stderr.write(json.dumps({{"progress": 1.0, "stage": "done"}}) + "\\n"); sys.stderr.flush()
        open({str(marker)!r}, "w").write("1")
    """), then=[Step(_child(f"""
        import os, sys, time
        assert os.path.exists({str(marker)!r}), "started before the first step ended"
        time.sleep(0.3)
        print("report written")
    """), stage="report", share=0.2)], on_success=lambda p: seen.append(("import", p.progress)))
    process.start()
    while not process.poll().finished:
        seen.append((process.stage, round(process.progress, 3)))
        time.sleep(0.02)
    assert process.state == AnalysisState.DONE, process.error_message
    assert ("classify", 0.4) in seen and ("report", 0.8) in seen  # 0.5 of the first 80 %, then 80 %
    assert seen[-1] == ("import", 1.0)
    assert "report written" in process.log_lines


def test_a_failing_follow_up_fails_the_run_with_its_message():
    process = AnalysisProcess(_child("print('analysed')"), then=[report_step("/no/such/out", "/no/such/dicom",
                                                                             python=sys.executable)],
                              env=core_environment(), on_success=lambda p: pytest.fail("no import after a failure"))
    assert process.start().wait(timeout_s=120) == AnalysisState.FAILED
    assert process.error_message.startswith("covidct report: error:")


def test_cancel_during_the_follow_up_stops_it():
    process = AnalysisProcess(_child("pass"), then=[Step(_child("import time; time.sleep(60)"), stage="report",
                                                         share=0.1)]).start()
    deadline = time.monotonic() + 30
    while process.poll() != AnalysisState.RUNNING or process.stage != "report":
        assert time.monotonic() < deadline, "follow-up never started"
        time.sleep(0.02)
    follow_up = process.pid
    process.cancel()
    assert process.state == AnalysisState.CANCELLED
    deadline = time.monotonic() + 10
    while _alive(follow_up) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(follow_up)


def test_work_dir_is_removed_only_when_owned_and_finished(tmp_path):
    owned, foreign = tmp_path / "owned", tmp_path / "foreign"
    for folder in (owned, foreign):
        (folder / "output").mkdir(parents=True)
    running = AnalysisProcess(_child("import time; time.sleep(60)"), work_dir=owned, out_dir=owned / "output",
                              owns_work_dir=True).start()
    assert running.work_dir == owned and running.out_dir == owned / "output"
    assert not running.remove_work_dir() and owned.exists()  # still running
    running.cancel()
    assert running.remove_work_dir() and not owned.exists()
    other = AnalysisProcess(_child("pass"), work_dir=foreign)
    assert other.start().wait(timeout_s=60) == AnalysisState.DONE
    assert not other.remove_work_dir() and foreign.exists()  # the caller's folder


def test_dicom_series_files_need_every_instance(tmp_path):
    files = {}
    for uid in ("1.2.1", "1.2.2"):
        files[uid] = tmp_path / uid
        files[uid].write_bytes(b"DICM")
    lookup = {uid: str(path) for uid, path in files.items()}.get
    assert dicom_series_files("1.2.1 1.2.2", lambda uid: lookup(uid) or "") == [str(files["1.2.1"]),
                                                                                  str(files["1.2.2"])]
    assert dicom_series_files("1.2.1 1.2.3", lambda uid: lookup(uid) or "") == []  # one is not in the database
    files["1.2.2"].unlink()
    assert dicom_series_files("1.2.1 1.2.2", lambda uid: lookup(uid) or "") == []  # one is gone from disk
    assert dicom_series_files("", lambda uid: "") == []


def test_dicom_source_folder_holds_exactly_the_series(tmp_path):
    series = tmp_path / "db" / "study" / "series"
    series.mkdir(parents=True)
    files = [series / name for name in ("a", "b")]
    for path in files:
        path.write_bytes(b"DICM")
    assert dicom_source_folder([str(f) for f in files], tmp_path / "work") == series  # used as it is
    (series / "other-series-file").write_bytes(b"DICM")
    folder = dicom_source_folder([str(f) for f in files], tmp_path / "work")
    assert folder == tmp_path / "work" / "dicom-source"
    assert sorted(p.read_bytes() for p in folder.iterdir()) == [b"DICM", b"DICM"] and len(list(folder.iterdir())) == 2
    assert dicom_source_folder([], tmp_path / "work") is None
