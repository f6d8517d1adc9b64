"""Diagnostic metrics with uncertainty, and ROC/PR figures.

AUC is computed exactly (Mann-Whitney, ties count half); its 95 % CI is a percentile
bootstrap over cases (2000 resamples, fixed seed).  With few cases the CI is wide, and
that is the point of reporting it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def auc(labels, scores) -> float:
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    pos, neg = scores[labels], scores[~labels]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def bootstrap_auc_ci(labels, scores, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple:
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    values = []
    n = labels.size
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if labels[idx].all() or not labels[idx].any():
            continue
        values.append(auc(labels[idx], scores[idx]))
    if not values:
        return (float("nan"), float("nan"))
    alpha = (1.0 - level) / 2
    return (float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha)))


def paired_auc_difference(labels, scores_a, scores_b, n_boot: int = 2000, seed: int = 0,
                          level: float = 0.95) -> dict:
    """AUC(b) - AUC(a) on the same cases, with a paired percentile-bootstrap CI.

    Both score sets are resampled with the same case indices, so the CI is that of the
    difference itself: much narrower than comparing two separate CIs when the two
    inputs share most of their errors (as an image and its enhanced version do).
    ``p_b_not_better`` is the one-sided bootstrap fraction of resamples with a
    difference <= 0; ``b_better_shown`` is true only when the whole CI lies above 0.
    """
    labels = np.asarray(labels).astype(bool)
    a = np.asarray(scores_a, dtype=float)
    b = np.asarray(scores_b, dtype=float)
    if not (labels.shape == a.shape == b.shape):
        raise ValueError("labels and both score sets must describe the same cases")
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(n_boot):
        idx = rng.integers(0, labels.size, labels.size)
        if labels[idx].all() or not labels[idx].any():
            continue
        deltas.append(auc(labels[idx], b[idx]) - auc(labels[idx], a[idx]))
    out = {"n": int(labels.size), "auc_a": auc(labels, a), "auc_b": auc(labels, b)}
    out["difference"] = out["auc_b"] - out["auc_a"]
    if deltas:
        alpha = (1.0 - level) / 2
        out["difference_ci95"] = [float(np.quantile(deltas, alpha)), float(np.quantile(deltas, 1 - alpha))]
        out["p_b_not_better"] = float(np.mean(np.asarray(deltas) <= 0))
        out["b_better_shown"] = bool(out["difference_ci95"][0] > 0)
    else:
        out["b_better_shown"] = False
        out["difference_ci95"] = [float("nan"), float("nan")]
        out["p_b_not_better"] = float("nan")
    return out


def _ratio(a, b):
    return float(a) / float(b) if b else float("nan")


def at_threshold(labels, scores, threshold: float) -> dict:
    """Sensitivity, specificity, PPV, NPV, F1, accuracy and the confusion matrix."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(scores, dtype=float) >= threshold
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    tn = int((~predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
    sens, ppv = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
    return {
        "threshold": float(threshold), "sensitivity": sens, "specificity": _ratio(tn, tn + fp),
        "ppv": ppv, "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn), "accuracy": _ratio(tp + tn, labels.size),
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }


def roc_curve(labels, scores) -> tuple:
    """(false-positive rate, true-positive rate, thresholds), thresholds descending."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    thresholds = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    tpr = np.array([(scores[labels] >= t).mean() if labels.any() else np.nan for t in thresholds])
    fpr = np.array([(scores[~labels] >= t).mean() if (~labels).any() else np.nan for t in thresholds])
    return fpr, tpr, thresholds


def youden_threshold(labels, scores) -> float:
    """Threshold maximising sensitivity + specificity - 1 (midpoint between scores)."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = max(1, int(np.nanargmax(tpr - fpr)))
    if best + 1 < thresholds.size:  # halfway to the next lower score: same decisions, less brittle
        return float(0.5 * (thresholds[best] + thresholds[best + 1]))
    return float(thresholds[best])


def summary(labels, scores, threshold: float, n_boot: int = 2000) -> dict:
    labels = np.asarray(labels).astype(bool)
    low, high = bootstrap_auc_ci(labels, scores, n_boot)
    out = {"n": int(labels.size), "n_positive": int(labels.sum()), "auc": auc(labels, scores),
           "auc_ci95": [low, high]}
    out.update(at_threshold(labels, scores, threshold))
    return out


def plot_roc_pr(labels, scores, path_prefix, title: str = "") -> list:
    """Write ``<prefix>_roc.png`` and ``<prefix>_pr.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    fpr, tpr, thresholds = roc_curve(labels, scores)
    precision = []
    for t in thresholds[1:]:
        predicted = scores >= t
        precision.append((predicted & labels).sum() / max(1, predicted.sum()))
    prefix = Path(path_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr, lw=2)
    ax.plot([0, 1], [0, 1], ls="--", c="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC {title} (AUC {auc(labels, scores):.3f})")
    fig.tight_layout()
    paths.append(str(prefix) + "_roc.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(tpr[1:], precision, lw=2)
    ax.axhline(labels.mean(), ls="--", c="grey")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title=f"PR {title}", ylim=(0, 1.02))
    fig.tight_layout()
    paths.append(str(prefix) + "_pr.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths
