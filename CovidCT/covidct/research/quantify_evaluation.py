"""Check the quantification on the shared real scans: is a normal lung low and a sick one higher?

Run from the repository root::

    python -m covidct.research.quantify_evaluation [--data ../shared/data] [--scans normal001 P001 cap001]

For each COVID-CT-MD scan it prints the lung volumes, involvement from the lesion mask
and without any vessel handling (raw bands), the zone-based severity score, the seconds
taken and, where slice labels exist (labels.json, keyed by file name, matched to slices
by SliceLocation):

* involvement pooled over slices labelled infected and over slices labelled clean;
* ``per_slice_auc``: the AUC of each slice's involvement (percent of that slice's lung)
  against its ``infection`` label, over slices that contain lung;
* where lobe labels exist (LLL, LUL, RLL, RML, RUL), a side check: the AUC of each lung's
  per-slice involvement against "a lobe of that side is labelled", and whether the side
  with more involved millilitres is the side with more labelled lobe-slices.

One patient per scan, so these are per-patient numbers, not a validation set.  The
lesion settings' ``min_depth_mm`` and ``grow_mm`` were chosen on P001 and the solid-tube
rule on the false positives of normal001 and P001, so only cap001 is untouched by the
choices.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .data_paths import default_data_dir

DEFAULT_DATA = default_data_dir()


def _slice_labels(labels: dict, volume) -> np.ndarray:
    """Per-slice infection flag (array order) from labels keyed by file name, matched by SliceLocation."""
    z = volume.slice_positions_mm() * np.sign(volume.direction_lps[2, 2] or 1.0)
    flags = np.zeros(volume.num_slices, dtype=bool)
    for entry in labels.get("slices", {}).values():
        k = int(np.argmin(np.abs(z - float(entry["slice_location"]))))
        flags[k] = bool(entry.get("infection"))
    return flags


LOBES = ("LLL", "LUL", "RLL", "RML", "RUL")
LEFT_LOBES = (0, 1)
RIGHT_LOBES = (2, 3, 4)


def _slice_lobes(labels: dict, volume) -> np.ndarray:
    """Per-slice lobe flags (slices x 5, order of ``LOBES``), matched like :func:`_slice_labels`."""
    z = volume.slice_positions_mm() * np.sign(volume.direction_lps[2, 2] or 1.0)
    flags = np.zeros((volume.num_slices, len(LOBES)), dtype=bool)
    for entry in labels.get("slices", {}).values():
        if "lobes" in entry:
            k = int(np.argmin(np.abs(z - float(entry["slice_location"]))))
            flags[k] = np.asarray(entry["lobes"], dtype=bool)
    return flags


def auc(scores, positive) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties count half); None without both classes."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _round(value, digits=3):
    return None if value is None else round(value, digits)


def side_check(lesions: np.ndarray, mask: np.ndarray, left: np.ndarray, lobes: np.ndarray, voxel_ml: float) -> dict:
    """Does the measured involvement sit on the side the lobe labels name?"""
    out = {}
    has_lung = mask.any(axis=(1, 2))
    measured_ml = {}
    for side, side_mask, columns in (("left", left, LEFT_LOBES), ("right", mask & ~left, RIGHT_LOBES)):
        lung = side_mask.sum(axis=(1, 2)).astype(float)
        involved = (lesions & side_mask).sum(axis=(1, 2)).astype(float)
        percent = np.where(lung > 0, 100.0 * involved / np.maximum(lung, 1.0), 0.0)
        labelled = lobes[:, list(columns)].any(axis=1)
        out[f"{side}_labelled_slices"] = int(labelled.sum())
        out[f"{side}_per_slice_auc"] = _round(auc(percent[has_lung], labelled[has_lung]))
        measured_ml[side] = float(involved.sum()) * voxel_ml
        out[f"{side}_involved_ml"] = round(measured_ml[side], 1)
    labelled_side = max(("left", "right"), key=lambda s: out[f"{s}_labelled_slices"])
    measured_side = max(("left", "right"), key=lambda s: measured_ml[s])
    out["side_with_more_labelled_lobe_slices"] = labelled_side
    out["side_with_more_involved_ml"] = measured_side
    out["sides_agree"] = labelled_side == measured_side
    return out


def evaluate_scan(folder: Path, labels: dict) -> dict:
    from ..io import load_ct
    from ..preprocess.lung_mask import compute_lung_mask
    from ..quantify import quantify_lungs_with_masks
    from ..quantify.lung_volumes import side_masks

    volume = load_ct(folder)
    start = time.perf_counter()
    mask = compute_lung_mask(volume)
    mask_s = time.perf_counter() - start
    start = time.perf_counter()
    q, masks = quantify_lungs_with_masks(volume, mask)
    quantify_s = time.perf_counter() - start
    out = {
        "scan": folder.name,
        "diagnosis": labels.get("diagnosis"),
        "lung_ml": {s: round(q[s]["volume_ml"], 1) for s in ("right", "left", "total")},
        "involvement_percent": round(q["total"]["involvement_percent"], 2),
        "involvement_without_vessel_filter_percent": round(
            q["total"]["involvement_without_vessel_filter_percent"], 2),
        "ground_glass_percent_raw": round(q["total"]["ground_glass_percent"], 2),
        "lesion_ground_glass_percent": round(q["total"]["lesion_ground_glass_percent"], 2),
        "lesion_consolidation_percent": round(q["total"]["lesion_consolidation_percent"], 2),
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
        has_lung = lung_per_slice > 0
        out["per_slice_auc"] = _round(auc(np.nan_to_num(per_slice)[has_lung], flags[has_lung]))
        out["slices_with_lung"] = {"infected": int((flags & has_lung).sum()),
                                   "clean": int((~flags & has_lung).sum())}
    lobes = _slice_lobes(labels, volume)
    if lobes.any():
        left = side_masks(mask, volume)["left"]
        out["side_check"] = side_check(masks["lesions"], mask, left, lobes, volume.voxel_volume_ml)
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
