"""A small mixed cohort for the ``covidct batch`` tests: good synthetic and shared scans, and broken ones.

Good scans are the robustness corpus's phantom with a ground-glass ball of a different
size in each (so their probabilities differ), laid out the awkward ways real archives
are: two series in one folder, one series split over two folders, volume files next to
DICOM.  Broken scans are built by the robustness corpus's own cases, so each carries the
error class and message ``covidct analyze`` gives for it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from bad_inputs import CASES  # the package registers every case
from bad_inputs.building import scan_hu, write_scan

BROKEN_CASES = ("modality_mr", "single_dicom_slice", "truncated_pixel_data", "corrupt_file_in_series",
                "corrupt_nrrd")
LESION_RADII_PX = (0, 4, 8, 12, 6, 10)
# The fast options: no enhancement, no PDF (each scan then takes about a second).
FAST = {"device": "cpu", "enhance": "off", "report": False}


@dataclass
class Cohort:
    root: Path
    good: dict = field(default_factory=dict)     # input path -> label (1 COVID-19 / 0)
    broken: dict = field(default_factory=dict)   # input path -> bad_inputs.framework.Expected
    shared_folder: Path = None                   # holds two series

    @property
    def size(self) -> int:
        # The folder of two series is one path and two scans.
        return len(self.good) + 2 + len(self.broken)


def lesion_phantom(radius_px: int, hu_value: float = -400.0) -> np.ndarray:
    """The corpus phantom with a ground-glass ball in the right lung (none for radius 0)."""
    hu = scan_hu()
    if radius_px:
        zz, yy, xx = np.mgrid[0:hu.shape[0], 0:hu.shape[1], 0:hu.shape[2]]
        ball = (zz - 12) ** 2 / 4 + (yy - 48) ** 2 + (xx - 29) ** 2 <= radius_px ** 2
        hu[ball & (hu < -500)] = hu_value
    return hu


def build_cohort(root: Path, sample_scan: Path) -> Cohort:
    root = Path(root)
    cohort = Cohort(root)
    radii = list(LESION_RADII_PX)
    for number, radius in enumerate(radii[:3]):
        folder = root / "site-a" / f"study{number}" / "series"
        write_scan(folder, hu=lesion_phantom(radius))
        cohort.good[folder] = int(radius >= 8)
    # Two series in one folder: two scans, told apart by SeriesInstanceUID.
    cohort.shared_folder = root / "site-b" / "mixed"
    for radius in radii[3:5]:
        written = write_scan(root / "staging", hu=lesion_phantom(radius), series_uid=generate_uid(),
                                        description=f"lesion {radius}")
        cohort.shared_folder.mkdir(parents=True, exist_ok=True)
        for path in written:
            path.rename(cohort.shared_folder / f"r{radius}_{path.name}")
    # One series split over two folders: one scan, from their common parent.
    split = root / "site-b" / "split"
    paths = write_scan(split / "part1", hu=lesion_phantom(radii[5]), series_uid=generate_uid())
    (split / "part2").mkdir()
    for path in paths[len(paths) // 2:]:
        shutil.move(str(path), split / "part2" / path.name)
    cohort.good[split] = 1
    for name in ("sample.nrrd", "copy/sample-again.nrrd"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_scan, root / name)
        cohort.good[root / name] = 1
    for case in BROKEN_CASES:
        (root / "broken" / case).mkdir(parents=True)
        prepared = CASES[case].build(root / "broken" / case)
        cohort.broken[Path(prepared.argv[1])] = CASES[case].expected
    return cohort


def labels_csv(cohort: Cohort, path: Path) -> Path:
    """A labels file by path (the two series of the shared folder have no label)."""
    lines = ["path,label"] + [f"{p},{label}" for p, label in cohort.good.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
