"""What a cohort is made of: one :class:`ScanInput` per series (or volume file) to analyse.

A folder is searched recursively; DICOM images are grouped by SeriesInstanceUID, never by
folder name (a folder may hold several series, a series may span folders), and each
series is analysed from the deepest folder holding all its files.  A CSV manifest lists
the inputs instead (``path``, optional ``id``, ``label``, ``series_uid``).

Each input gets a ``key`` that stays the same between runs (it names its result folder
and its manifest entry) and a ``fingerprint`` of its files' names, sizes and modification
times, so a rerun can tell an unchanged input from a replaced one without reading it.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import InputNotFoundError, UnsupportedInputError
from ..io.dicom_series import read_headers
from ..io.volume_files import has_volume_suffix

POSITIVE_LABELS = {"1", "true", "yes", "positive", "covid", "covid-19", "covid19"}
NEGATIVE_LABELS = {"0", "false", "no", "negative", "non-covid", "non_covid", "noncovid", "normal"}


@dataclass
class ScanInput:
    """One analysis to run: a DICOM series (folder + SeriesInstanceUID) or a volume file."""

    key: str                     # stable across runs; names the result folder
    scan_id: str                 # what the cohort table shows (the manifest's id, else the key)
    path: str                    # folder or file given to ``analyze_scan``
    series_uid: Optional[str] = None
    # Whether ``analyze_scan`` must be told the series: only when its folder holds others, so
    # a lone series fails with exactly the message ``covidct analyze FOLDER`` would give.
    choose_series: bool = False
    label: Optional[int] = None  # 1 COVID-19, 0 not, None unknown
    fingerprint: str = ""
    files: list = field(default_factory=list)  # what the content hash covers


def _digest(*parts) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def fingerprint_of(files) -> str:
    """Names, sizes and modification times of ``files``: cheap, and changes when a file does."""
    entries = []
    for path in sorted(files):
        try:
            stat = os.stat(path)
            entries.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
        except OSError:
            entries.append(f"{path}:missing")
    return _digest(*entries)


def content_sha256(files) -> str:
    """sha256 over the bytes of ``files`` in path order (recorded with each analysed scan)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(Path(path).name).encode("utf-8"))
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def parse_label(text, where: str) -> Optional[int]:
    value = str(text or "").strip().lower()
    if not value:
        return None
    if value in POSITIVE_LABELS:
        return 1
    if value in NEGATIVE_LABELS:
        return 0
    raise UnsupportedInputError(
        f"{where}: label '{text}' is not understood; use 1/0 (or COVID-19 / non-COVID, positive / negative).")


def _scan(root: Path, path: Path, series_uid: Optional[str], files, scan_id: str = "",
          label: Optional[int] = None) -> ScanInput:
    relative = os.path.relpath(path, root)
    key = _digest(relative, series_uid or "")[:16]
    return ScanInput(key=key, scan_id=scan_id or key, path=str(path), series_uid=series_uid, label=label,
                     fingerprint=fingerprint_of(files), files=[str(f) for f in sorted(files)])


def discover_folder(root) -> list[ScanInput]:
    """Every DICOM image series and volume file under ``root``, in a stable order."""
    root = Path(root).resolve()
    headers, unreadable = read_headers(root)
    series_files = defaultdict(list)
    has_pixels = defaultdict(bool)
    for path, ds in headers:
        uid = str(getattr(ds, "SeriesInstanceUID", ""))
        series_files[uid].append(path)
        has_pixels[uid] |= "Rows" in ds
    series_in_folder = defaultdict(set)  # every series with a file directly in a folder
    for uid, files in series_files.items():
        for path in files:
            series_in_folder[path.parent].add(uid)
    scans = []
    folders_with_series = set(series_in_folder)
    for uid, files in series_files.items():
        if not has_pixels[uid]:
            continue  # structured reports, key-object notes: nothing to analyse
        folder = Path(os.path.commonpath([str(f.parent) for f in files]))
        scan = _scan(root, folder, uid, files)
        scan.choose_series = len(set().union(*(uids for where, uids in series_in_folder.items()
                                               if where == folder or folder in where.parents))) > 1
        scans.append(scan)
    # A folder of files that are all unreadable is still a scan the user expects to see, as failed.
    broken = defaultdict(list)
    for path in unreadable:
        if path.parent not in folders_with_series:
            broken[path.parent].append(path)
    scans += [_scan(root, folder, None, files) for folder, files in broken.items()]
    scans += [_scan(root, path, None, [path]) for path in sorted(root.rglob("*"))
              if path.is_file() and has_volume_suffix(path)]
    return sorted(scans, key=lambda s: (s.path, s.series_uid or ""))


def _files_of(path: Path) -> list:
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file()]
    return [path] if path.exists() else []


def read_manifest_csv(csv_path) -> list[ScanInput]:
    """The inputs listed in a CSV (``path`` required; ``id``, ``label``, ``series_uid`` optional).

    Relative paths are relative to the CSV's folder.  A missing input is kept: it is
    recorded as failed with the reason, like any other bad scan.
    """
    csv_path = Path(csv_path).resolve()
    rows = _read_csv_rows(csv_path, required=("path",))
    scans, seen = [], set()
    for number, row in enumerate(rows, start=2):
        path = Path(row["path"].strip())
        path = path if path.is_absolute() else (csv_path.parent / path)
        series_uid = (row.get("series_uid") or "").strip() or None
        scan = _scan(csv_path.parent, path, series_uid, _files_of(path), (row.get("id") or "").strip(),
                     parse_label(row.get("label"), f"{csv_path.name} line {number}"))
        scan.choose_series = series_uid is not None
        if scan.key in seen or scan.scan_id in seen:
            raise UnsupportedInputError(f"{csv_path.name} line {number}: '{row['path']}' (id '{scan.scan_id}') is "
                                        "listed twice. Each scan must appear once.")
        seen.update({scan.key, scan.scan_id})
        scans.append(scan)
    return scans


def _read_csv_rows(csv_path: Path, required=()) -> list[dict]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            rows = [{k.strip().lower(): (v or "") for k, v in row.items() if k} for row in reader]
    except OSError as exc:
        raise InputNotFoundError(f"Cannot read {csv_path}: {exc.strerror}.") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UnsupportedInputError(f"{csv_path.name} is not a readable CSV file ({exc}).") from None
    missing = [c for c in required if c not in columns]
    if missing:
        raise UnsupportedInputError(f"{csv_path.name} has no '{missing[0]}' column (columns found: "
                                    f"{', '.join(columns) or 'none'}).")
    return rows


def discover_inputs(inputs) -> list[ScanInput]:
    """A folder (searched recursively) or a CSV manifest."""
    inputs = Path(inputs)
    if not inputs.exists():
        raise InputNotFoundError(f"{inputs} does not exist. Give a folder of DICOM series or a CSV manifest.")
    if inputs.is_dir():
        return discover_folder(inputs)
    if inputs.suffix.lower() == ".csv":
        return read_manifest_csv(inputs)
    raise UnsupportedInputError(f"{inputs.name}: give a folder of scans or a CSV manifest (path,id,label).")


def apply_labels(scans: list, labels_csv) -> int:
    """Set each scan's label from a CSV (``label`` plus ``id`` or ``path``); returns how many matched."""
    labels_csv = Path(labels_csv).resolve()
    rows = _read_csv_rows(labels_csv, required=("label",))
    by_name = {}
    for scan in scans:
        by_name[scan.scan_id] = by_name[scan.key] = scan
        by_name.setdefault(str(Path(scan.path).resolve()), scan)
    matched = 0
    for number, row in enumerate(rows, start=2):
        where = f"{labels_csv.name} line {number}"
        name = (row.get("id") or "").strip()
        if not name and (row.get("path") or "").strip():
            path = Path(row["path"].strip())
            name = str((path if path.is_absolute() else labels_csv.parent / path).resolve())
        scan = by_name.get(name)
        if scan is None:
            continue  # labels for scans outside this cohort are not an error
        scan.label = parse_label(row.get("label"), where)
        matched += 1
    return matched
