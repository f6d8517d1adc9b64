"""Where the repository's own folders are, resolved from the package (never the cwd).

The configs live inside the repository; one place computes where, so every command agrees.
The development data is research's business (:mod:`covidct.research.data_paths`).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def configs_dir() -> Path:
    return REPO_ROOT / "configs"
