"""Extra checks on cases that must succeed: what ``info --json`` reports, and that an
analysis wrote a complete result (the same numbers in every output of the run)."""

from __future__ import annotations

import json
from pathlib import Path

from bad_inputs.framework import Prepared, RunResult
from bad_inputs.runners import run_two_at_once


def expect_info_json(**expected):
    def check(prepared: Prepared, result: RunResult) -> None:
        info = json.loads(result.stdout)
        for key, value in expected.items():
            assert info[key] == value, (key, info[key], value)
        assert info["lung_volume_ml"]["total_ml"] > 0

    return check


def expect_complete_analysis(prepared: Prepared, result: RunResult) -> None:
    outputs = [prepared.output] + ([Path(str(prepared.output) + "-b")]
                                   if prepared.runner is run_two_at_once else [])
    contents = []
    for output in outputs:
        saved = json.loads((output / "result.json").read_text())
        for key in ("input", "heatmap", "lung_mask"):
            assert (output / saved[key]).is_file(), key
        contents.append({k: saved[k] for k in ("probabilities", "per_slice", "quantification")})
    assert all(c == contents[0] for c in contents), "the same input gave different numbers"
