"""Turn a training run into shipped weights: pick pooling and threshold, write the manifest.

Pooling is the config's ``pooling`` when it names one (fixed before the results), else
picked on the held-out HU scans (largest margin between the lowest COVID-19 scan and the
highest non-COVID scan: only three scans here, so this is weak evidence and said so in the
card).  The operating threshold comes from held-out data, chosen by ``threshold_from``
(the command line's, else the config's, else ``validation_2d``):

* ``"hu_slices"``: Youden's J on the held-out HU slices (COVID-19 scans' infected slices vs
  the non-COVID scans' slices); with a leave-one-patient-out ensemble every scan is scored
  by the members that never saw it;
* ``"hu_scans"``: midpoint between the lowest pooled COVID-19 scan score and the highest
  pooled non-COVID scan score (scan-level ROC on the HU scans);
* ``"validation_2d"``: Youden's J on the held-out SARS + UCSD slices.

A source that lacks what a choice needs falls back to ``validation_2d`` (the manifest's
``threshold_from`` says which was used).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ...classify import metrics, pooling
from ...classify.network import build_network
from .training import evaluate_splits, held_out_splits, hu_slice_sets, make_splits


def _load_run_model(run_dir: Path, cfg: dict):
    import torch

    model = build_network(cfg["network"])
    state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


def _architecture(network_cfg: dict) -> str:
    text = ("GARCD diagnosis net (conv, 4 residual blocks 3/3/4/4 convs, 2 convs, "
            "3 per-position FC layers, mean-pooled logits = CAM)")
    members = int(network_cfg.get("ensemble_members", 1))
    if members > 1:
        text = f"seed ensemble of {members} x " + text + "; member logit maps averaged, CAM = mean of the members' CAMs"
    return text


def _is_covid_scan(name: str, scan: dict) -> bool:
    """The scan's label as its evaluation recorded it (no patient name is assumed to mean anything)."""
    if "covid_scan" not in scan:
        raise ValueError(f"HU scan '{name}' in run.json has no 'covid_scan' label (a run from before labels were "
                         "recorded): re-run its evaluation with this version.")
    return bool(scan["covid_scan"])


def _hu_rows(scans: dict, exclude=()) -> dict:
    """The HU slice rows' (labels, scores) over the scored scans, less ``exclude`` (in-sample ones)."""
    held = {k: v for k, v in scans.items() if k not in set(exclude)}
    if not held:
        return {}
    infection = np.concatenate([np.asarray(v["infection"]) for v in held.values()])
    scores = np.concatenate([np.asarray(v["scores"], dtype=float) for v in held.values()])
    covid_scan = np.concatenate([np.full(len(v["scores"]), _is_covid_scan(k, v)) for k, v in held.items()])
    return hu_slice_sets(infection, covid_scan, scores)


def _hu_rows_at(scans: dict, threshold: float) -> dict:
    """The HU slice rows' threshold metrics (``evaluate_splits`` reports them at 0.5; AUCs do not change)."""
    return {row: metrics.at_threshold(labels, row_scores, threshold)
            for row, (labels, row_scores) in _hu_rows(scans).items()}


def scan_margin(scans: dict, method: str):
    """(lowest COVID-19 scan score, highest non-COVID scan score) pooled by ``method``; None without both."""
    covid = [v["pooled"][method] for k, v in scans.items() if _is_covid_scan(k, v)]
    others = [v["pooled"][method] for k, v in scans.items() if not _is_covid_scan(k, v)]
    return (min(covid), max(others)) if covid and others else None


def choose_pooling(scans: dict) -> tuple:
    """(method, margins) from HU scans' pooled scores; top_k_mean if none separates them."""
    pairs = {m: scan_margin(scans, m) for m in pooling.POOLING_FUNCTIONS}
    if None in pairs.values():
        return "top_k_mean", {}
    margins = {m: covid - other for m, (covid, other) in pairs.items()}
    best = max(margins, key=margins.get)
    return (best if margins[best] > 0 else "top_k_mean"), margins  # none separates: keep the default


def release(run_dir, weights_dir, cache: dict, key: str = "classifier",
            threshold_from: str | None = None, log=print) -> dict:
    """Write ``weights_dir/KEY.pt`` and ``KEY.json`` from ``run_dir`` (model.pt + run.json)."""
    from ...weights import sha256_of, write_manifest

    run_dir, weights_dir = Path(run_dir), Path(weights_dir)
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    cfg = run["config"]
    model = _load_run_model(run_dir, cfg)
    splits, models = held_out_splits(model, cache, cfg)
    # Score every HU scan as a whole scan, trained on or not (``in_sample`` says which); a
    # leave-one-patient-out ensemble scores each scan with the members that never saw it.
    all_scans = make_splits(cache, dict(cfg, train=dict(cfg["train"], hu_scans=[])))
    splits.update({k: v for k, v in all_scans.items() if k.startswith("hu:") and k not in splits})
    in_sample = sorted(k[3:] for k in splits if k.startswith("hu:") and k not in models
                       and k[3:] in cfg["train"].get("hu_scans", []))
    final = evaluate_splits(model, cache, splits, "cpu", n_boot=2000,
                            standardisation=cfg.get("standardisation", "equalise"), models=models)
    threshold_from = threshold_from or cfg.get("threshold_from", "validation_2d")
    if cfg.get("pooling"):  # fixed in the config before the results: not chosen on the HU scans
        method, margins = cfg["pooling"], {}
    else:
        method, margins = choose_pooling(final["scans"])
    raw = final.get("raw", {})
    labels = np.concatenate([raw[k]["labels"] for k in raw]) if raw else np.zeros(0)
    scores = np.concatenate([raw[k]["scores"] for k in raw]) if raw else np.zeros(0)
    thresholds = {}
    if labels.size:
        t2d = metrics.youden_threshold(labels, scores)
        thresholds["validation_2d"] = {"threshold": t2d, "sets": sorted(raw),
                                       **metrics.at_threshold(labels, scores, t2d)}
    hu_rows = _hu_rows(final["scans"], exclude=in_sample)
    if "hu_covid_infected_vs_noncovid" in hu_rows:
        hu_labels, hu_scores = hu_rows["hu_covid_infected_vs_noncovid"]
        t_hu = metrics.youden_threshold(hu_labels, hu_scores)
        thresholds["hu_slices"] = {"threshold": t_hu, "sets": ["held-out HU slices: COVID-19 infected vs non-COVID scans"],
                                   **metrics.at_threshold(hu_labels, hu_scores, t_hu)}
    margin = scan_margin(final["scans"], method)
    if margin is not None:
        covid, other = margin
        if covid > other:
            thresholds["hu_scans"] = {"threshold": 0.5 * (covid + other), "covid_scan": covid,
                                      "highest_non_covid_scan": other}
    chosen = thresholds.get(threshold_from) or thresholds.get("validation_2d") or {"threshold": 0.5}
    threshold = float(chosen["threshold"])
    scan_results = {}
    for scan, v in final["scans"].items():
        p = v["pooled"][method]
        scan_results[scan] = {"pooled_probability": p, "in_sample": scan in in_sample,
                              "decision": "COVID-19" if p >= threshold else "non-COVID"}
    weights_dir.mkdir(parents=True, exist_ok=True)
    target = weights_dir / f"{key}.pt"
    shutil.copyfile(run_dir / "model.pt", target)
    slice_metrics = {k: {**metrics.at_threshold(raw[k]["labels"], raw[k]["scores"], threshold),
                         "auc": v["auc"], "auc_ci95": v["auc_ci95"], "n": v["n"]}
                     if k in raw else v for k, v in final["slice"].items()}
    for row, at in _hu_rows_at(final["scans"], threshold).items():
        slice_metrics[row] = {**slice_metrics[row], **at}
    entry = {
        "name": key, "file": target.name, "sha256": sha256_of(target), "version": cfg["version"],
        "architecture": _architecture(cfg["network"]),
        "config": {"network": build_network(cfg["network"]).config, "input_size_px": cfg["input_size_px"],
                   "standardisation": cfg.get("standardisation", "equalise"),
                   "crop": cfg.get("crop", "scan"), "min_lung_fraction": cfg.get("min_lung_fraction", 0.10),
                   **({"member_hu_scans": cfg["member_hu_scans"]} if cfg.get("member_hu_scans") else {})},
        "training_config": cfg, "classes": ["non-COVID", "COVID-19"],
        "pooling": method, "pooling_margins_hu": margins, "hu_scans_in_training": in_sample,
        "threshold": threshold, "threshold_from": threshold_from if threshold_from in thresholds else "validation_2d",
        "threshold_candidates": thresholds,
        "metrics": {"slice": slice_metrics, "scans": scan_results},
        "steps_done": run["steps_done"], "training_minutes": run["minutes"],
        "training_environment": run.get("environment"),
        "licence": "Weights inherit CC BY-NC-SA 4.0 (SARS-CoV-2 CT-scan set): non-commercial, share-alike; "
                   "UCSD COVID-CT images are for research only. Research use only, not for diagnosis.",
    }
    write_manifest(key, entry, weights_dir, indent=1)
    log(f"wrote {target} and {key}.json: pooling {method}, threshold {threshold:.4f}")
    return entry
