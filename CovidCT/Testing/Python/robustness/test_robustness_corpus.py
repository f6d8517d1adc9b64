"""Every case of the bad-input corpus (the ``bad_inputs`` helpers) through the command line.

For each case: the exact outcome (success, or the error class, exit code and message),
one clear line on stderr and no traceback, no hang, the input byte-identical afterwards,
and no partial output left behind.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from bad_inputs import CASES  # the package registers every case
from bad_inputs.building import partial_leftovers, snapshot
from bad_inputs.framework import RunResult
from bad_inputs.runners import run_case
from covidct.errors import OutputError
from covidct.io import atomic_path, write_text_atomic


def _params():
    for name, case in CASES.items():
        marks = [pytest.mark.slow] if case.slow else []
        yield pytest.param(case, id=name, marks=marks)


def test_corpus_is_large_and_covers_the_issue():
    assert len(CASES) >= 30
    topics = {case.topic for case in CASES.values()}
    assert {"path", "DICOM", "volume file", "2D image", "weights", "device", "output", "run control"} <= topics
    failures = [c for c in CASES.values() if not c.expected.ok]
    assert all(c.expected.error is not None and c.expected.message for c in failures)
    assert all(c.description for c in CASES.values()), "every case explains itself in the table"


def assert_outcome(case, prepared, result: RunResult) -> None:
    expected = case.expected
    where = f"\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout, where
    assert result.exit_code == expected.exit_code, where
    if expected.ok:
        if expected.message:
            assert re.search(expected.message, result.stdout, re.S), where
        if prepared.check is not None:
            prepared.check(prepared, result)
        return
    if result.error_class is not None:  # in-process runs know the exact class
        assert result.error_class is expected.error, where
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) >= 1 and lines[0].startswith("covidct "), where
    assert "error:" in lines[0] or "cancelled" in result.stderr, where
    # One message: continuation lines only list choices (series), never a second error.
    assert sum("error" in line.lower() for line in lines) == 1, where
    assert re.search(expected.message, result.stderr, re.S), where


@pytest.mark.parametrize("case", list(_params()))
def test_corpus_case(case, tmp_path):
    prepared = case.build(tmp_path)
    if prepared.skip:
        pytest.skip(prepared.skip)
    output_existed = prepared.output is not None and prepared.output.exists()
    before_inputs = snapshot(prepared.inputs)
    result = run_case(prepared)
    assert_outcome(case, prepared, result)
    assert snapshot(prepared.inputs) == before_inputs, "the input must never be modified"
    assert partial_leftovers(tmp_path) == [], "no temporary or half-written output may remain"
    if prepared.output is not None and not case.expected.ok and not output_existed:
        assert not prepared.output.exists(), "a failed run must not leave an output that looks complete"


# --------------------------------------------------------------------------- atomic writes

def test_atomic_writer_leaves_no_partial_file_on_enospc(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    target.write_text("previous complete result")
    real = Path.write_text

    def full_disk(self, data, *args, **kwargs):
        real(self, data[:3], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        write_text_atomic(target, '{"new": "result"}')
    monkeypatch.undo()
    assert target.read_text() == "previous complete result", "the old file is kept whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_atomic_path_removes_temporary_file_on_any_error(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "volume.nii.gz") as tmp:
            assert tmp.name.endswith(".nii.gz") and tmp.name.startswith(".")
            tmp.write_bytes(b"half")
            raise ValueError("writer crashed")
    assert list(tmp_path.iterdir()) == []



def test_documented_table_matches_the_corpus():
    """docs/robustness.md is generated from this corpus; a stale copy fails here."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[4]
    done = subprocess.run([sys.executable, str(repo / "tools" / "robustness_table.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
