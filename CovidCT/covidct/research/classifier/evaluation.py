"""``covidct evaluate``: metrics of the shipped classifier on the held-out data, rerunnable.

Slice level: the held-out SARS-CoV-2 15 % (random split, patients may leak: optimistic),
the held-out UCSD slices (grouped by preprint), and every lung slice of the HU scans
(infected vs not infected; and infected COVID-19 slices vs non-COVID scans' slices).
Scan level: each HU scan through the full :func:`classify_volume` pipeline (lung mask,
pooling, threshold).  Splits are recomputed from the manifest's training config, so the
sets are exactly those the shipped weights never saw; HU scans that were trained on are
flagged ``in_sample``.  With a degradation (``--degraded 4`` or ``--degradation
x4_realistic``) the held-out HU scans and 2D slices are also classified degraded and
degraded-then-enhanced, with the paired AUC difference: GARCD's claim, measured.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ...errors import CovidCTError
from ...classify import metrics
from ...decision import decide
from ...preprocess.lung_mask import compute_lung_mask
from ...quantify import quantify_lungs
from ...classify.api import load_classifier, classify_volume
from .datasets import COVID_DIAGNOSES, hu_scan_names, load_hu_scan, two_d_slices
from ...classify.input_normalisation import crop_and_resize
from .training import make_splits


def _two_d_sets(data_root, cfg: dict, size_px: int, log=print):
    from ...io import read_slice_image

    units, meta = [], []
    for item in two_d_slices(data_root, log):
        try:
            pixels = read_slice_image(item["path"])
        except CovidCTError:
            continue  # the same unreadable thumbnails the training cache skipped
        units.append(crop_and_resize(pixels, False, None, size_px)[0])
        meta.append(item)
    pseudo = {"source": np.array([m["source"] for m in meta]), "group": np.array([m["group"] for m in meta]),
              "label": np.array([m["label"] for m in meta], np.int8)}
    splits = make_splits(pseudo, cfg)
    return units, pseudo, meta, {k: v for k, v in splits.items()
                                 if k != "train" and not k.startswith("hu:") and v.size}


CONDITIONS = ("original", "degraded", "enhanced")


def _paired_rows(labels, scores: dict, threshold: float, n_boot: int) -> dict:
    """Per-condition summaries plus the paired enhanced-minus-degraded AUC difference."""
    out = {name: metrics.summary(labels, scores[name], threshold, n_boot) for name in CONDITIONS}
    out["enhanced_minus_degraded"] = metrics.paired_auc_difference(
        labels, scores["degraded"], scores["enhanced"], n_boot)
    return out


def as_degradation(value):
    """A :class:`~covidct.enhance.degradation.Degradation` from itself, a scale, or a condition
    name of ``covidct evaluate-enhancer`` (``x2``, ``x4``, ``x4_realistic``)."""
    from ...enhance.degradation import Degradation
    from ..enhancer.evaluation import CONDITIONS as ENHANCER_CONDITIONS

    if isinstance(value, Degradation):
        return value
    if isinstance(value, str) and value in ENHANCER_CONDITIONS:
        return ENHANCER_CONDITIONS[value]
    return Degradation(scale=int(value))


def _is_pure(degradation) -> bool:
    return not (degradation.blur_sigma_px or degradation.noise_hu or degradation.jpeg_quality)


def _degrade_slices(hu: np.ndarray, degradation, seed: int = 0) -> np.ndarray:
    """Degrade each 2D HU slice of ``hu`` (last two axes); pure down-sampling stays exact."""
    from ...enhance.degradation import area_downsample, degrade_hu

    if _is_pure(degradation):
        return area_downsample(np.asarray(hu, dtype=np.float32), degradation.scale)
    rng = np.random.default_rng(seed)
    flat = np.asarray(hu, dtype=np.float32).reshape((-1,) + hu.shape[-2:])
    low = np.stack([degrade_hu(s, degradation, rng) for s in flat])
    return low.reshape(hu.shape[:-2] + low.shape[-2:])


def _degradation_label(degradation) -> str:
    extras = [f"blur {degradation.blur_sigma_px:g} px" if degradation.blur_sigma_px else "",
              f"noise {degradation.noise_hu:g} HU" if degradation.noise_hu else "",
              f"JPEG {degradation.jpeg_quality}" if degradation.jpeg_quality else ""]
    return f"x{degradation.scale}" + "".join(f" + {e}" for e in extras if e)


def degraded_vs_enhanced(data_root, clf, device="auto", degradation=4, n_boot: int = 1000, log=print) -> dict:
    """GARCD's claim on the HU scans: enhanced degraded slices classify better than degraded ones.

    Each scan is degraded with the foundation's degradation (by default the enhancer's own
    area down-sampling; ``x4_realistic`` adds blur, noise and JPEG as ``covidct
    evaluate-enhancer`` does), then classified (a) as is and (b) after the shipped
    enhancer; scan probabilities and three slice AUCs (infected vs not; infected slices of
    the COVID-19 scan vs the non-COVID scans' slices; infected vs clean slices within the
    COVID-19 scan) are compared with the original resolution.  Only slices scored in all
    three conditions count, so the enhanced-minus-degraded difference is paired.
    """
    from ...enhance.inference import enhance_volume
    from ...volume import CTVolume

    degradation = as_degradation(degradation)
    scale, label = degradation.scale, _degradation_label(degradation)
    rows = {"infection": [], "covid": [], **{name: [] for name in CONDITIONS}}
    scans = {}
    names = hu_scan_names(data_root)
    if not names:
        return {"skipped": f"no HU scans listed in {Path(data_root) / 'covid-ct-md' / 'labels.json'}"}
    for scan in names:
        volume, diagnosis, infection = load_hu_scan(data_root, scan)
        low_vox = _degrade_slices(volume.voxels, degradation)
        sx, sy, sz = volume.spacing_mm
        low = CTVolume(voxels=low_vox, spacing_mm=(sx * scale, sy * scale, sz), origin_lps=volume.origin_lps,
                       direction_lps=volume.direction_lps, facts=volume.facts, is_hounsfield=True)
        enhanced, _ = enhance_volume(low, scale=scale, device=device)
        scans[scan] = {}
        scores = {}
        for name, vol in (("original", volume), ("degraded", low), ("enhanced", enhanced)):
            res = classify_volume(vol, None, classifier=clf, cam_slices=[])
            scores[name] = np.array([s["covid19"] if s["covid19"] is not None else np.nan for s in res.per_slice])
            scans[scan][name] = {"covid_probability": res.covid_probability, "decision": res.decision}
        keep = np.all([~np.isnan(v) for v in scores.values()], axis=0)
        scans[scan]["slices_scored_in_all"] = int(keep.sum())
        for name in CONDITIONS:
            rows[name].append(scores[name][keep])
        rows["infection"].append(infection[keep].astype(bool))
        rows["covid"].append(np.full(int(keep.sum()), diagnosis in COVID_DIAGNOSES))
        log(f"{label} {scan}: " + ", ".join(f"{k} {scans[scan][k]['covid_probability']:.3f}" for k in CONDITIONS))
    out = {"scale": scale, "degradation": degradation.to_dict(), "scans": scans}
    joined = {k: np.concatenate(v) for k, v in rows.items()}
    infected, covid = joined["infection"], joined["covid"]
    for metric, labels, sel in (
            ("slice_auc_infected_vs_not", infected, np.ones(infected.size, bool)),
            ("slice_auc_covid_infected_vs_noncovid", covid, (covid & infected) | ~covid),
            ("slice_auc_covid_scan_infected_vs_clean", infected, covid)):
        out[metric] = _paired_rows(labels[sel], {n: joined[n][sel] for n in CONDITIONS}, clf.threshold, n_boot)
        for name in CONDITIONS:
            log(_line(f"{label} {name}: {metric[10:]}", out[metric][name]))
        log(_difference_line(f"{label} {metric[10:]}", out[metric]["enhanced_minus_degraded"]))
    return out


def degraded_vs_enhanced_2d(items: list, sets: dict, clf, device="auto", degradation=4,
                            n_boot: int = 1000, log=print) -> dict:
    """GARCD's claim on the held-out 8-bit slices, where x4 loss matters at the classifier's input.

    The exports are ~350 x 260 px, so x4 area down-sampling leaves ~90 x 65 px of chest:
    less than the classifier's 128 px input, unlike a 512² HU scan.  Each held-out image is
    degraded (down-sampled; blurred, noised and JPEG-compressed too for ``x4_realistic``),
    then classified (a) as is (bilinear up to the input size, what a plain
    pipeline does) and (b) after the shipped enhancer, both cropped with the original
    image's content box; the AUC difference is paired by image.
    """
    from ...enhance.degradation import area_downsample
    from ...enhance.inference import enhance_unit_slice
    from ...io import read_slice_image
    from ...preprocess.windowing import LUNG_WINDOW_HU, lung_window
    from ...classify.input_normalisation import lung_box, to_unit

    degradation = as_degradation(degradation)
    scale, label = degradation.scale, _degradation_label(degradation)
    low_hu, high_hu = LUNG_WINDOW_HU
    out = {"scale": scale, "degradation": degradation.to_dict()}
    for name, idx in sets.items():
        units = {n: [] for n in CONDITIONS}
        for i in idx:
            unit = to_unit(read_slice_image(items[i]["path"]), False)
            rows_px, cols_px = (unit.shape[0] // scale) * scale, (unit.shape[1] // scale) * scale
            unit = unit[:rows_px, :cols_px]
            r0, r1, c0, c1 = lung_box(None, unit)
            if _is_pure(degradation):
                low = area_downsample(unit, scale)
            else:  # the 8-bit export read as lung-window HU, so noise and JPEG act as on a scan
                low = lung_window(_degrade_slices(unit * (high_hu - low_hu) + low_hu, degradation, int(i)))
            enhanced = enhance_unit_slice(low, scale=scale, device=device)
            low_box = (r0 // scale, max(r0 // scale + 1, -(-r1 // scale)),
                       c0 // scale, max(c0 // scale + 1, -(-c1 // scale)))
            for cond, image, box in (("original", unit, (r0, r1, c0, c1)), ("degraded", low, low_box),
                                     ("enhanced", enhanced, (r0, r1, c0, c1))):
                units[cond].append(crop_and_resize(image, False, None, clf.size_px, box=box)[0])
        labels = np.asarray([items[i]["label"] for i in idx], bool)
        scores = {cond: clf.predict(units[cond])[0] for cond in CONDITIONS}
        out[name] = _paired_rows(labels, scores, clf.threshold, n_boot)
        for cond in CONDITIONS:
            log(_line(f"{label} {name} {cond}", out[name][cond]))
        log(_difference_line(f"{label} {name}", out[name]["enhanced_minus_degraded"]))
    return out


def clean_slice_context(infection: np.ndarray, scores: np.ndarray) -> list:
    """Each scored slice without infection in a scan that has infection: its score and how
    many slices away the nearest infected slice is.

    Within-patient slice AUC is limited by neighbours: a clean slice next to an infected one
    shows much the same lung, so listing the distance tells label-boundary errors from
    errors far from any lesion.
    """
    infected = np.flatnonzero(np.asarray(infection) == 1)
    if infected.size == 0:
        return []
    return [{"index": int(i), "covid19": float(scores[i]), "slices_to_infected": int(np.abs(infected - i).min())}
            for i in np.flatnonzero((np.asarray(infection) == 0) & ~np.isnan(scores))]


def leave_one_scan_out_thresholds(names, slice_scores, infection, covid, scan_probs, fallback: float) -> dict:
    """Each HU scan decided at a threshold fitted on the *other* scans' slices (Youden point,
    COVID-19 scans' infected slices vs non-COVID scans' slices); the shipped threshold where
    the other scans do not hold both classes (said per scan)."""
    out = {}
    for i, name in enumerate(names):
        others = [j for j in range(len(slice_scores)) if j != i]
        scores = np.concatenate([slice_scores[j] for j in others])
        inf = np.concatenate([infection[j] for j in others])
        cov = np.concatenate([covid[j] for j in others])
        keep = (cov & (inf == 1)) | ~cov
        labels = (cov & (inf == 1))[keep]
        if labels.any() and not labels.all():
            threshold, source = metrics.youden_threshold(labels, scores[keep]), "other scans' slices"
        else:
            threshold, source = fallback, "shipped threshold (the other scans hold one class only)"
        out[name] = {"threshold": round(float(threshold), 4), "from": source,
                     "decision": "COVID-19" if scan_probs[i] >= threshold else "non-COVID"}
    return out


def evaluate(data_root, out_dir, device="auto", n_boot: int = 2000, log=print,
             degradation=None, model_key: str = "classifier", weights_directory=None) -> dict:
    """Compute, print and write ``metrics.json`` plus ROC/PR PNGs into ``out_dir``.

    ``model_key``/``weights_directory`` evaluate another released model than the shipped
    one (e.g. a leave-the-HU-scans-out run released into its own folder).
    """
    start = time.time()
    clf = load_classifier(device, model_key, weights_directory)
    cfg = clf.entry.get("training_config", {"train": {"sars": True, "ucsd": True, "hu_scans": []},
                                            "split_seed": 0, "sars_val_fraction": 0.15,
                                            "ucsd_val_fraction": 0.2})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"model": clf.info, "threshold": clf.threshold, "pooling": clf.pooling,
              "slice": {}, "scan": {}, "figures": []}
    units, pseudo, items, sets = _two_d_sets(data_root, cfg, clf.size_px, log)
    montage = []
    for name, idx in sets.items():
        probs, cams, _ = clf.predict([units[i] for i in idx])
        labels = pseudo["label"][idx]
        peak = max(1e-6, float(np.maximum(cams, 0).max()))
        for cls, cls_name in ((1, "COVID"), (0, "non-COVID")):
            pick = np.flatnonzero(labels == cls)[:6]
            montage.append((f"{name} {cls_name}", [(_overlay(units[idx[i]], np.maximum(cams[i], 0) / peak),
                                                    float(probs[i])) for i in pick]))
        result["slice"][name] = metrics.summary(labels, probs, clf.threshold, n_boot)
        result["figures"] += metrics.plot_roc_pr(labels, probs, out_dir / f"slice_{name}", name)
        log(_line(name, result["slice"][name]))
    trained_scans = set(cfg.get("train", {}).get("hu_scans", []))
    hu_names, hu_scores, hu_infection, hu_covid = [], [], [], []
    scan_labels, scan_probs = [], []
    for scan in hu_scan_names(data_root):
        try:
            volume, diagnosis, infection = load_hu_scan(data_root, scan)
        except CovidCTError as exc:
            log(f"skipping {scan}: {exc}")
            continue
        scan_clf = clf.held_out_for(scan)  # a leave-one-patient-out ensemble: the members that never saw it
        lung_mask = compute_lung_mask(volume)
        res = classify_volume(volume, lung_mask, classifier=scan_clf or clf)
        product = decide(res.covid_probability, res.threshold, quantify_lungs(volume, lung_mask))
        scores = np.array([s["covid19"] if s["covid19"] is not None else np.nan for s in res.per_slice])
        keep = ~np.isnan(scores)
        from ...preprocess.windowing import lung_window

        picks = np.flatnonzero(keep)[np.linspace(0, keep.sum() - 1, 6).astype(int)]
        montage.append((f"{scan} ({diagnosis})", [(_overlay(lung_window(volume.voxels[k]), res.heatmap[k]),
                                                   float(scores[k])) for k in picks]))
        hu_names.append(scan)
        hu_scores.append(scores[keep])
        hu_infection.append(infection[keep])
        hu_covid.append(np.full(keep.sum(), diagnosis == "COVID-19"))
        scan_labels.append(diagnosis == "COVID-19")
        scan_probs.append(res.covid_probability)
        result["scan"][scan] = {"diagnosis": diagnosis, "covid_probability": res.covid_probability,
                                "decision": res.decision, "correct": (res.decision == "COVID-19") == (diagnosis == "COVID-19"),
                                "product_decision": product.to_dict(),
                                "product_correct": (product.decision == "COVID-19") == (diagnosis == "COVID-19"),
                                "in_sample": scan_clf is None, "lung_slices": int(keep.sum()),
                                "scored_by_members": (scan_clf or clf).info.get("members", "all"),
                                "slice_auc_infected_vs_not": metrics.auc(infection[keep], scores[keep]),
                                "clean_slices": clean_slice_context(infection, scores)}
        log(f"scan {scan:10s} ({diagnosis}): p(COVID-19) {res.covid_probability:.3f} -> {res.decision}; "
            f"with lesion evidence -> {product.decision} ({product.basis})"
            f"{' [in training]' if scan_clf is None else ''}")
    if hu_scores:
        scores, infection, covid = map(np.concatenate, (hu_scores, hu_infection, hu_covid))
        held = ("hu_slices_infected_vs_not", infection.astype(bool), scores)
        sel = (covid & (infection == 1)) | ~covid
        covid_vs = ("hu_slices_covid_infected_vs_noncovid", covid[sel], scores[sel])
        # Within the COVID-19 scan(s): do the slice scores find the infected slices?
        within = ("hu_slices_covid_scan_infected_vs_clean", infection[covid].astype(bool), scores[covid])
        for name, labels, s in (held, covid_vs, within):
            result["slice"][name] = metrics.summary(labels, s, clf.threshold, n_boot)
            result["figures"] += metrics.plot_roc_pr(labels, s, out_dir / f"slice_{name}", name)
            log(_line(name, result["slice"][name]))
        result["scan"]["_all"] = metrics.summary(np.array(scan_labels), np.array(scan_probs),
                                                 clf.threshold, n_boot)
        result["figures"] += metrics.plot_roc_pr(np.array(scan_labels), np.array(scan_probs),
                                                 out_dir / "scan_hu", "HU scans")
        log(f"scan level (n={len(scan_labels)}): " + _line("hu_scans", result["scan"]["_all"]))
    if len(hu_scores) > 1:
        result["scan_threshold_leave_one_out"] = leave_one_scan_out_thresholds(
            hu_names, hu_scores, hu_infection, hu_covid, scan_probs, clf.threshold)
    if montage:
        result["figures"].append(save_cam_montage(montage, out_dir / "cam_montage.png"))
    if degradation:
        try:
            result["degraded_vs_enhanced"] = degraded_vs_enhanced(data_root, clf, device, degradation,
                                                                  min(n_boot, 1000), log)
        except CovidCTError as exc:
            log(f"degraded/enhanced comparison skipped: {exc}")
            result["degraded_vs_enhanced"] = {"skipped": str(exc)}
        result["degraded_vs_enhanced_2d"] = degraded_vs_enhanced_2d(items, sets, clf, device, degradation,
                                                                    min(n_boot, 1000), log)
    result["hu_scans_in_training"] = sorted(trained_scans)
    result["seconds"] = round(time.time() - start, 1)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    log(f"wrote {out_dir / 'metrics.json'} and {len(result['figures'])} figures")
    return result


def _overlay(grey: np.ndarray, heat: np.ndarray, size_px: int = 128) -> np.ndarray:
    """RGB tile: grey slice with the heatmap in red (both resized to ``size_px``)."""
    from ...classify.input_normalisation import resize

    g = np.clip(resize(grey, size_px), 0, 1) * 0.75
    h = np.clip(resize(heat, size_px), 0, 1)
    return np.stack([np.clip(g + h, 0, 1), g, g], axis=-1)


def save_cam_montage(rows: list, path) -> str:
    """Rows of (label, [RGB tiles]) -> one PNG, to check the CAMs sit on lung, not borders or text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(len(tiles) for _, tiles in rows)
    fig, axes = plt.subplots(len(rows), width, figsize=(1.6 * width, 1.7 * len(rows)), squeeze=False)
    for r, (label, tiles) in enumerate(rows):
        for c in range(width):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(tiles):
                ax.imshow(tiles[c][0])
                ax.set_title(f"{tiles[c][1]:.2f}", fontsize=7)
        axes[r][0].text(-10, 64, label, fontsize=7, ha="right", va="center")
    fig.suptitle("CAM (red) and p(COVID-19); volume/set-normalised", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def _difference_line(name: str, d: dict) -> str:
    low, high = d["difference_ci95"]
    return (f"{name:38s} enhanced - degraded AUC {d['difference']:+.3f} [{low:+.3f}, {high:+.3f}] "
            f"(paired bootstrap; P(not better) {d['p_b_not_better']:.3f})")


def _line(name: str, m: dict) -> str:
    c = m["confusion"]
    return (f"{name:38s} n={m['n']:4d} AUC {m['auc']:.3f} [{m['auc_ci95'][0]:.3f}, {m['auc_ci95'][1]:.3f}] "
            f"sens {m['sensitivity']:.3f} spec {m['specificity']:.3f} PPV {m['ppv']:.3f} NPV {m['npv']:.3f} "
            f"F1 {m['f1']:.3f} TP/FP/TN/FN {c['tp']}/{c['fp']}/{c['tn']}/{c['fn']}")
