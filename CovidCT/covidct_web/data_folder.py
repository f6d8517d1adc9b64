"""The folder the server may read scans from, and a browser that cannot leave it.

Paths from the browser are untrusted: each is resolved (symbolic links and ``..``
followed) and refused unless it stays inside the data folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from covidct.errors import InputNotFoundError
from covidct.io.slice_images import has_slice_image_suffix
from covidct.io.volume_files import has_volume_suffix


class OutsideDataFolderError(InputNotFoundError):
    """A path that leads out of ``--data-dir``."""


@dataclass(frozen=True)
class Entry:
    name: str
    path: str      # relative to the data folder, "/"-separated ("" = the folder itself)
    is_folder: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "path": self.path, "folder": self.is_folder}


class DataFolder:
    def __init__(self, root):
        self.root = Path(root).resolve()

    def contains(self, path: Path) -> bool:
        return path == self.root or self.root in path.parents

    def resolve(self, relative: str) -> Path:
        """Absolute path of ``relative``; :class:`OutsideDataFolderError` if it leaves the folder."""
        candidate = (self.root / (relative or "").lstrip("/\\")).resolve()
        if not self.contains(candidate):
            raise OutsideDataFolderError(f"{relative} is outside the data folder; pick a scan inside it.")
        if not candidate.exists():
            raise InputNotFoundError(f"{relative} does not exist in the data folder.")
        return candidate

    def relative(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.root)).as_posix() if path != self.root else ""

    def list(self, relative: str = "") -> list:
        """Folders and scan files in ``relative`` (hidden entries left out), folders first."""
        folder = self.resolve(relative)
        if not folder.is_dir():
            raise InputNotFoundError(f"{relative} is not a folder.")
        entries = []
        for child in sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower())):
            if child.name.startswith(".") or not self.contains(child.resolve()):
                continue
            if child.is_dir() or has_volume_suffix(child) or has_slice_image_suffix(child):
                entries.append(Entry(child.name, self.relative(child.resolve()), child.is_dir()))
        return entries

    def parent(self, relative: str) -> str:
        path = self.resolve(relative)
        return self.relative(path.parent) if path != self.root else ""
