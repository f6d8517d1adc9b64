"""Check the quantification on the shared real scans: is a normal lung low and a sick one higher?

Run from the repository root::

    python -m covidct.quantify.evaluate [--data ../shared/data] [--scans normal001 P001 cap001]

For each COVID-CT-MD scan it prints the lung volumes, involvement with and without the
vessel filter, the zone-based severity score and, where slice labels exist, the
involvement in slices labelled infected versus slices labelled clean (one patient per
scan, so these are per-patient numbers, not a validation set).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..paths import default_data_dir

DEFAULT_DATA = default_data_dir()


def _slice_labels(labels: dict, volume) -> np.ndarray:
    """Per-slice infection flag (array order) from labels keyed by file name, matched by SliceLocation."""
    z = volume.slice_positions_mm() * np.sign(volume.direction_lps[2, 2] or 1.0)
    flags = np.zeros(volume.num_slices, dtype=bool)
    for entry in labels.get("slices", {}).values():
        k = int(np.argmin(np.abs(z - float(entry["slice_location"]))))
        flags[k] = bool(entry.get("infection"))
    return flags


def evaluate_scan(folder: Path, labels: dict) -> dict:
    from ..io import load_ct
    from ..preprocess.lung_mask import compute_lung_mask
    from . import quantify_lungs

    volume = load_ct(folder)
    start = time.perf_counter()
    mask = compute_lung_mask(volume)
    mask_s = time.perf_counter() - start
    start = time.perf_counter()
    q = quantify_lungs(volume, mask)
    quantify_s = time.perf_counter() - start
    out = {
        "scan": folder.name,
        "diagnosis": labels.get("diagnosis"),
        "lung_ml": {s: round(q[s]["volume_ml"], 1) for s in ("right", "left", "total")},
        "involvement_percent": round(q["total"]["involvement_percent"], 2),
        "involvement_without_vessel_filter_percent": round(
            q["total"]["involvement_without_vessel_filter_percent"], 2),
        "ground_glass_percent_raw": round(q["total"]["ground_glass_percent"], 2),
        "severity_score": q["total"]["severity_score"],
        "zone_scores": {s: {z: q[s]["zones"][z]["score"] for z in q[s]["zones"]} for s in ("right", "left")},
        "seconds": {"lung_mask": round(mask_s, 1), "quantify": round(quantify_s, 1)},
    }
    flags = _slice_labels(labels, volume)
    if flags.any():
        per_slice = np.array([np.nan if v is None else v for v in q["per_slice_involvement_percent"]])
        lung_per_slice = mask.sum(axis=(1, 2)).astype(float)
        involved_per_slice = np.nan_to_num(per_slice) * lung_per_slice / 100.0

        def pooled(sel):
            return round(100.0 * involved_per_slice[sel].sum() / max(1.0, lung_per_slice[sel].sum()), 2)

        out["involvement_percent_in_infected_slices"] = pooled(flags)
        out["involvement_percent_in_clean_slices"] = pooled(~flags)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--scans", nargs="+", default=["normal001", "P001", "cap001"])
    args = parser.parse_args(argv)
    root = args.data / "covid-ct-md"
    labels = json.loads((root / "labels.json").read_text())
    for name in args.scans:
        print(json.dumps(evaluate_scan(root / name, labels.get(name, {}))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
