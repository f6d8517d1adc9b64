"""Compare the lung mask of this checkout with the one of a reference git revision.

Why: the lung mask was rewritten for speed (issue #7) and must keep its accuracy.  The
reference package is exported from git (``git archive``) into a temporary folder and run
in a child process, so both versions are measured on the same scans by the same command.

    python tools/compare_lung_masks.py                       # P001, cap001, normal001
    python tools/compare_lung_masks.py --scans P001 --reference-rev HEAD~3

Prints, per scan: Dice, lung volume of each version and their relative difference,
voxels that differ, whether the loaded HU volumes are identical, and seconds per mask.
Exit status 1 when a scan misses Dice >= 0.98 or volume within 1 %.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The last revision with the scipy-only lung mask (before the issue #7 speed-up).
DEFAULT_REFERENCE_REV = "b0ce69ab5ad15944e54585c46d1e6654631dcf37"
DEFAULT_SCANS = ("P001", "cap001", "normal001")
MIN_DICE = 0.98
MAX_VOLUME_DIFFERENCE = 0.01

CHILD = """
import sys, time, hashlib, numpy as np
from covidct.io import load_ct
from covidct.preprocess.lung_mask import compute_lung_mask
scan, out = sys.argv[1], sys.argv[2]
volume = load_ct(scan)
start = time.perf_counter()
mask = compute_lung_mask(volume)
seconds = time.perf_counter() - start
np.savez_compressed(out, mask=mask, seconds=seconds, voxel_ml=volume.voxel_volume_ml,
                    hu_sha256=hashlib.sha256(np.ascontiguousarray(volume.voxels).tobytes()).hexdigest())
"""


def export_package(rev: str, target: Path) -> Path:
    """The ``covidct`` package as it was at ``rev``, unpacked under ``target``."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "CovidCT/covidct"], cwd=REPO,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target / "CovidCT"


def mask_with(package_root: Path, scan: Path, out: Path) -> dict:
    import numpy as np

    env_path = str(package_root)
    subprocess.run([sys.executable, "-c", CHILD, str(scan), str(out)], check=True,
                   env={**_clean_env(), "PYTHONPATH": env_path})
    with np.load(out) as data:
        return {key: data[key] for key in data.files}


def _clean_env() -> dict:
    import os

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def compare(reference: dict, current: dict) -> dict:
    import numpy as np

    a, b = reference["mask"], current["mask"]
    overlap = int(np.logical_and(a, b).sum())
    total = int(a.sum()) + int(b.sum())
    ref_ml = float(a.sum()) * float(reference["voxel_ml"])
    new_ml = float(b.sum()) * float(current["voxel_ml"])
    return {"dice": 2.0 * overlap / total if total else 1.0,
            "reference_ml": round(ref_ml, 1), "current_ml": round(new_ml, 1),
            "volume_difference": (new_ml - ref_ml) / ref_ml if ref_ml else 0.0,
            "voxels_differing": int(np.logical_xor(a, b).sum()),
            "same_hu_volume": str(reference["hu_sha256"]) == str(current["hu_sha256"]),
            "reference_s": round(float(reference["seconds"]), 2),
            "current_s": round(float(current["seconds"]), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "covid-ct-md",
                        help="folder holding the scans (default ../shared/data/covid-ct-md)")
    parser.add_argument("--scans", nargs="+", default=list(DEFAULT_SCANS))
    parser.add_argument("--reference-rev", default=DEFAULT_REFERENCE_REV)
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reference_root = export_package(args.reference_rev, tmp / "reference")
        current_root = REPO / "CovidCT"
        for name in args.scans:
            scan = args.data / name
            reference = mask_with(reference_root, scan, tmp / f"{name}-reference.npz")
            current = mask_with(current_root, scan, tmp / f"{name}-current.npz")
            row = compare(reference, current)
            ok = row["dice"] >= MIN_DICE and abs(row["volume_difference"]) <= MAX_VOLUME_DIFFERENCE
            failed |= not ok
            print(f"{name}: dice {row['dice']:.5f}  volume {row['reference_ml']} -> {row['current_ml']} mL "
                  f"({100 * row['volume_difference']:+.3f} %)  voxels differing {row['voxels_differing']}  "
                  f"same HU volume {row['same_hu_volume']}  mask seconds {row['reference_s']} -> "
                  f"{row['current_s']}  {'ok' if ok else 'FAIL'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"({time.perf_counter() - start:.0f} s)")
    sys.exit(code)
