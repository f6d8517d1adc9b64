"""Does the classifier's answer depend on how a slice was exported?  A window grid, measured.

Every lung slice of the HU scans is rendered as an 8-bit export at a grid of windows
(W 1000-2000 HU x L -800..-400 HU), a mediastinal-like window, JPEG compression and a
wide window with a grey background (lungs mid-grey, as in an export style the shipped 1.3
model scored below chance), then scored through the 8-bit path of the classifier (crop
to the slice's lung box, the model's own standardisation).  Two more conditions export
the whole slice inside a circular field of view (padded black-ish, or grey) and crop it
as ``covidct classify`` crops any export, by its content box.  Reported per model and
condition: the slice AUC (COVID-19 scans' infected slices vs the non-COVID scans'
slices), each scan's pooled probability, and how far slice and scan probabilities move
from the canonical export (W 1500 L -600, the lung window the models were built on).

A leave-one-patient-out model scores each scan with the members that never saw it.

    python -m covidct.research.classifier.window_grid --baseline weights/baselines/classifier-1.3.0 \\
        --out benchmarks/results/window-grid.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ...classify import metrics, pooling
from ...classify.input_normalisation import crop_and_resize, lung_slices, slice_crop_boxes

CANONICAL = "W1500 L-600"
LUNG_LIKE = tuple(f"W{w} L{lev}" for w in (1000, 1500, 2000) for lev in (-800, -600, -400))
EXTRA = ("W1500 L-600 JPEG q50", "W2000 L-850 grey background", "W400 L40 (mediastinal)",
         "W1500 L-600 full slice, circular FOV", "W2000 L-850 full slice, grey circular FOV")
PADDING_HU = -1024.0  # what a scanner writes outside its circular field of view
CONDITIONS = LUNG_LIKE + EXTRA
GREY_BACKGROUND = 0.45
OUTSIDE_BODY_HU = -500.0  # connected air around the body: what a grey padding replaces


def _window(name: str) -> tuple:
    width, level = name.split()[:2]
    return float(width[1:]), float(level[1:])


def render_export(hu: np.ndarray, condition: str, body: np.ndarray | None = None) -> np.ndarray:
    """One HU slice as an 8-bit export (uint8) under a named condition."""
    width, level = _window(condition)
    hu = np.asarray(hu, np.float32)
    if "circular FOV" in condition:
        rows, cols = np.ogrid[:hu.shape[0], :hu.shape[1]]
        radius = 0.5 * min(hu.shape)
        outside = (rows - (hu.shape[0] - 1) / 2) ** 2 + (cols - (hu.shape[1] - 1) / 2) ** 2 > radius ** 2
        hu = np.where(outside, PADDING_HU, hu)
    unit = np.clip((hu - (level - width / 2)) / width, 0.0, 1.0)
    if "grey" in condition and body is not None:
        unit = np.where(body, unit, GREY_BACKGROUND)
    if "JPEG" in condition:
        from ...enhance.degradation import jpeg_roundtrip

        unit = jpeg_roundtrip(unit, int(condition.split("q")[-1]))
    return np.round(unit * 255).astype(np.uint8)


def _body(hu_slice: np.ndarray) -> np.ndarray:
    """Everything but the air connected to the image border (the padding a scanner would grey)."""
    from scipy import ndimage

    air = hu_slice < OUTSIDE_BODY_HU
    labels, _ = ndimage.label(air)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return ~np.isin(labels, border[border > 0])


def prepare_scans(data_root, size_px: int, min_lung_fraction: float, crop: str, log=print) -> list:
    """Per HU scan: (name, is COVID-19, infection labels, {condition: cropped unit slices})."""
    from ...preprocess.lung_mask import compute_lung_mask
    from .datasets import COVID_DIAGNOSES, hu_scan_names, load_hu_scan

    scans = []
    for scan in hu_scan_names(data_root):
        volume, diagnosis, infection = load_hu_scan(data_root, scan)
        mask = compute_lung_mask(volume)
        scored = np.flatnonzero(lung_slices(mask, min_lung_fraction))
        boxes = slice_crop_boxes(mask, scored, crop)
        units = {c: [] for c in CONDITIONS}
        for k in scored:
            body = _body(volume.voxels[k])
            for condition in CONDITIONS:
                grey = render_export(volume.voxels[k], condition, body)
                box = None if "full slice" in condition else boxes[int(k)]  # full slices: the 2D path's content crop
                units[condition].append(crop_and_resize(grey, False, None, size_px, box)[0])
        scans.append((scan, diagnosis in COVID_DIAGNOSES, infection[scored], units))
        log(f"{scan}: {scored.size} lung slices x {len(CONDITIONS)} conditions")
    return scans


def score_grid(clf, scans: list) -> dict:
    """Slice scores per condition and scan (each scan by the members that never saw it)."""
    out = {}
    for scan, covid, infection, units in scans:
        held_out = clf.held_out_for(scan)
        scan_clf = held_out or clf
        out[scan] = {"covid_scan": covid, "infection": infection.tolist(), "in_sample": held_out is None,
                     "scores": {c: scan_clf.predict(units[c])[0].astype(float) for c in CONDITIONS}}
    return out


def summarise(scored: dict, pooling_method: str, n_boot: int = 0) -> dict:
    """Per condition: AUC, scan probabilities, |dp| to the canonical export; plus the grid's spread."""
    from .training import hu_slice_sets

    rows = {}
    canonical = {s: v["scores"][CANONICAL] for s, v in scored.items()}
    for condition in CONDITIONS:
        infection = np.concatenate([v["infection"] for v in scored.values()])
        covid = np.concatenate([np.full(len(v["infection"]), v["covid_scan"]) for v in scored.values()])
        scores = np.concatenate([v["scores"][condition] for v in scored.values()])
        sets = hu_slice_sets(infection, covid, scores)
        labels, row_scores = sets["hu_covid_infected_vs_noncovid"]
        slice_dp = np.concatenate([np.abs(v["scores"][condition] - canonical[s]) for s, v in scored.items()])
        scan_p = {s: pooling.pool(v["scores"][condition], pooling_method) for s, v in scored.items()}
        scan_p0 = {s: pooling.pool(canonical[s], pooling_method) for s in scored}
        rows[condition] = {
            "auc_covid_infected_vs_noncovid": metrics.auc(labels, row_scores),
            **({"auc_ci95": metrics.bootstrap_auc_ci(labels, row_scores, n_boot)} if n_boot else {}),
            "scan_probability": {s: round(p, 4) for s, p in scan_p.items()},
            "max_abs_dp_scan": round(max(abs(scan_p[s] - scan_p0[s]) for s in scored), 4),
            "mean_abs_dp_slice": round(float(slice_dp.mean()), 4),
            "max_abs_dp_slice": round(float(slice_dp.max()), 4)}
    grid = [rows[c] for c in LUNG_LIKE]
    aucs = [r["auc_covid_infected_vs_noncovid"] for r in grid]
    return {"conditions": rows, "lung_like_grid": {
        "auc_min": round(min(aucs), 4), "auc_max": round(max(aucs), 4), "auc_spread": round(max(aucs) - min(aucs), 4),
        "max_abs_dp_scan": max(r["max_abs_dp_scan"] for r in grid),
        "mean_abs_dp_slice": round(float(np.mean([r["mean_abs_dp_slice"] for r in grid])), 4)}}


def run(data_root, model_dirs: dict, out_path=None, device="cpu", log=print) -> dict:
    """Score the grid for each named model folder (``{"2.0": weights/, ...}``); write JSON."""
    from ...classify.api import load_classifier

    start = time.time()
    classifiers = {name: load_classifier(device, "classifier", folder) for name, folder in model_dirs.items()}
    prepared = {}
    report = {"conditions": list(CONDITIONS), "canonical": CANONICAL, "models": {}}
    for name, clf in classifiers.items():
        key = (clf.size_px, clf.min_lung_fraction, clf.crop)
        if key not in prepared:
            prepared[key] = prepare_scans(data_root, *key, log=log)
        summary = summarise(score_grid(clf, prepared[key]), clf.pooling)
        report["models"][name] = {"version": clf.info["version"], "sha256": clf.info["sha256"],
                                  "standardisation": clf.standardisation, **summary}
        log(format_table(name, summary))
    report["seconds"] = round(time.time() - start, 1)
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(json.dumps(report, indent=1, default=float) + "\n", encoding="utf-8")
    return report


def format_table(name: str, summary: dict) -> str:
    lines = [f"model {name}", "| condition | AUC | scans | max dp scan | mean dp slice |", "|---|---|---|---|---|"]
    for condition, row in summary["conditions"].items():
        scans = " / ".join(f"{p:.2f}" for p in row["scan_probability"].values())
        lines.append(f"| {condition} | {row['auc_covid_infected_vs_noncovid']:.3f} | {scans} | "
                     f"{row['max_abs_dp_scan']:.3f} | {row['mean_abs_dp_slice']:.3f} |")
    g = summary["lung_like_grid"]
    lines.append(f"lung-like grid: AUC {g['auc_min']:.3f}-{g['auc_max']:.3f} (spread {g['auc_spread']:.3f}), "
                 f"max |dp| scan {g['max_abs_dp_scan']:.3f}, mean |dp| slice {g['mean_abs_dp_slice']:.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from ..data_paths import default_data_dir
    from ...weights import weights_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data folder with covid-ct-md/ (default ../shared/data)")
    parser.add_argument("--weights-dir", default=None, help="the model to measure (default: the shipped one)")
    parser.add_argument("--baseline", action="append", default=[], metavar="FOLDER",
                        help="also measure the classifier released in FOLDER (e.g. weights/baselines/classifier-1.3.0)")
    parser.add_argument("--out", default=None, help="write the JSON report here")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    folders = {"shipped": args.weights_dir or str(weights_dir())}
    folders.update({Path(b).name: b for b in args.baseline})
    run(args.data or default_data_dir(), folders, args.out, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
