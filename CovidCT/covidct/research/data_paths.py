"""Where the development data lives: ``../shared/data`` beside the repository.

Research only: training and evaluation default to it, the product never does (a user's
data is always named on the command line).
"""

from __future__ import annotations

from pathlib import Path

from ..paths import REPO_ROOT


def default_data_dir() -> Path:
    """``../shared/data`` relative to the repository root."""
    return REPO_ROOT.parent / "shared" / "data"
