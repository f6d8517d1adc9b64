"""Shared fixtures: where the real data lives, and the bundled sample scan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

SHARED_DATA = Path(os.environ.get("COVIDCT_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE_SCAN = REPO / "CovidCT" / "Resources" / "SampleData" / "covidct-sample-P001-128.nrrd"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; in CI its absence is a failure, locally a skip."""
    if not (SHARED_DATA / "covid-ct-md").exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared data missing at {SHARED_DATA}")
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_scan() -> Path:
    assert SAMPLE_SCAN.exists(), "the bundled sample scan is part of the repository"
    return SAMPLE_SCAN


@pytest.fixture(scope="session")
def p001(shared_data):
    from covidct.io import load_ct

    return load_ct(shared_data / "covid-ct-md" / "P001")


@pytest.fixture(scope="session")
def normal001(shared_data):
    from covidct.io import load_ct

    return load_ct(shared_data / "covid-ct-md" / "normal001")
