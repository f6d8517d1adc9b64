"""Where the repository's own folders are, resolved from the package (never the cwd).

The development data lives beside the repository (``../shared/data``); configs and
weights inside it.  One place computes these so every command agrees on them.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def configs_dir() -> Path:
    return REPO_ROOT / "configs"


def default_data_dir() -> Path:
    """``../shared/data`` relative to the repository root."""
    return REPO_ROOT.parent / "shared" / "data"
