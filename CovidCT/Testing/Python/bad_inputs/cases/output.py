"""Cases: the output (existing folder, a file in the way, full disk) and run control (cancel, two runs at once)."""

from __future__ import annotations

from pathlib import Path

from bad_inputs.building import analyze_argv, write_scan
from bad_inputs.checks import expect_complete_analysis
from bad_inputs.doubles import disk_full_on_text_write, disk_full_on_volume_write
from bad_inputs.framework import Expected, Prepared, case
from bad_inputs.runners import run_cancelled_by_sigterm, run_two_at_once
from covidct.errors import CancelledError, OutputError


@case("analysis_succeeds", "output", Expected(0, None, "COVID-19 probability"))
def _baseline(tmp: Path) -> Prepared:
    """The reference: a valid synthetic scan analysed end to end (stand-in models, enhancement on)."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--enhance", "on", "--no-report"), [tmp / "s"],
                    tmp / "out", fakes=True, check=expect_complete_analysis)


@case("output_folder_exists", "output", Expected(7, OutputError, "already exists.*--overwrite"))
def _output_exists(tmp: Path) -> Prepared:
    """The output folder exists and holds files: refused, its content untouched."""
    write_scan(tmp / "s")
    (tmp / "out").mkdir()
    (tmp / "out" / "previous-result.json").write_text("{}")
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s", tmp / "out"], tmp / "out")


@case("output_folder_exists_overwrite", "output", Expected(0, None, ""))
def _output_overwrite(tmp: Path) -> Prepared:
    """The output folder exists and --overwrite is given: replaced by the new, complete result."""
    write_scan(tmp / "s")
    (tmp / "out").mkdir()
    (tmp / "out" / "stale.txt").write_text("old")

    def check(prepared, result):
        assert not (tmp / "out" / "stale.txt").exists()
        expect_complete_analysis(prepared, result)

    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--overwrite", "--enhance", "off", "--no-report"),
                    [tmp / "s"], tmp / "out", fakes=True, check=check)


@case("output_is_a_file", "output", Expected(7, OutputError, "is a file, not a folder"))
def _output_file(tmp: Path) -> Prepared:
    """-o names an existing file."""
    write_scan(tmp / "s")
    (tmp / "out").write_text("not a folder")
    return Prepared(analyze_argv(tmp / "s", tmp / "out"), [tmp / "s", tmp / "out"], tmp / "out")


@case("no_disk_space_result_json", "output", Expected(7, OutputError, "No space left on device"))
def _disk_full_json(tmp: Path) -> Prepared:
    """The disk fills up while result.json is written (ENOSPC, simulated): no half file, no output folder."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--enhance", "off", "--no-report"), [tmp / "s"],
                    tmp / "out", fakes=True, patches=[disk_full_on_text_write])


@case("no_disk_space_volume", "output", Expected(7, OutputError, "No space left on device"))
def _disk_full_volume(tmp: Path) -> Prepared:
    """The disk fills up while a NRRD volume is written (ITK's error, simulated): no half file."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--enhance", "off", "--no-report"), [tmp / "s"],
                    tmp / "out", fakes=True, patches=[disk_full_on_volume_write])


@case("cancel_mid_run", "run control", Expected(130, CancelledError, "cancelled"))
def _cancel(tmp: Path) -> Prepared:
    """SIGTERM (the Slicer module's Cancel) during the lung-mask stage: exit 130, nothing written."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--enhance", "off", "--no-report"), [tmp / "s"],
                    tmp / "out", fakes=True, runner=run_cancelled_by_sigterm)


@case("two_analyses_at_once", "run control", Expected(0, None, "COVID-19 probability"))
def _two_at_once(tmp: Path) -> Prepared:
    """Two processes analyse the same scan into two folders at the same time: both complete, same numbers."""
    write_scan(tmp / "s")
    return Prepared(analyze_argv(tmp / "s", tmp / "out", "--enhance", "on", "--no-report"), [tmp / "s"],
                    tmp / "out", fakes=True, runner=run_two_at_once, check=expect_complete_analysis)
