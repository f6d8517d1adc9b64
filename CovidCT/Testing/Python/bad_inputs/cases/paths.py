"""Cases: paths that are not a readable scan (missing, empty, no DICOM, unknown format, unreadable)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bad_inputs.building import analyze_argv, is_root, scan_hu, write_volume
from bad_inputs.doubles import permission_denied_for
from bad_inputs.framework import Expected, Prepared, case
from covidct.errors import InputNotFoundError, UnsupportedInputError


@case("nonexistent_path", "path", Expected(2, InputNotFoundError, "does not exist"))
def _nonexistent(tmp: Path) -> Prepared:
    """A path that does not exist."""
    return Prepared(analyze_argv(tmp / "no-such-scan", tmp / "out"), output=tmp / "out")


@case("empty_folder", "path", Expected(3, UnsupportedInputError, "is empty"))
def _empty_folder(tmp: Path) -> Prepared:
    """An empty folder."""
    (tmp / "empty").mkdir()
    return Prepared(analyze_argv(tmp / "empty", tmp / "out"), [tmp / "empty"], tmp / "out")


@case("folder_without_dicom", "path", Expected(3, UnsupportedInputError, "No DICOM images"))
def _no_dicom(tmp: Path) -> Prepared:
    """A folder of text files and a thumbnail, no DICOM."""
    folder = tmp / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("scan exported on CD")
    (folder / "thumb.bin").write_bytes(os.urandom(512))
    return Prepared(analyze_argv(folder, tmp / "out"), [folder], tmp / "out")


@case("unknown_file_format", "path", Expected(3, UnsupportedInputError, "unknown format"))
def _unknown_format(tmp: Path) -> Prepared:
    """A file with an extension CovidCT does not read."""
    path = tmp / "scan.xyz"
    path.write_bytes(os.urandom(256))
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("unreadable_permissions", "path", Expected(2, InputNotFoundError, "permission denied"))
def _unreadable(tmp: Path) -> Prepared:
    """A volume file with mode 000 (skipped as root, where the kernel lets every read through)."""
    path = write_volume(tmp / "locked.nrrd", scan_hu().astype(np.int16))
    path.chmod(0)
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out",
                    skip="running as root: chmod 000 does not stop reads (see the simulated case)"
                    if is_root() else None)


@case("unreadable_permissions_simulated", "path", Expected(2, InputNotFoundError, "permission denied"))
def _unreadable_simulated(tmp: Path) -> Prepared:
    """A volume file the OS refuses to read (os.access says no, as for a non-root user and mode 000)."""
    path = write_volume(tmp / "locked.nrrd", scan_hu().astype(np.int16))
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out",
                    patches=[lambda: permission_denied_for(path)])
