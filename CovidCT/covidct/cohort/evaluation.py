"""The cohort's evaluation page when labels are known: ROC with a bootstrap CI, the confusion
matrix at the shipped threshold and a calibration plot (PNG), summarised in one HTML file.

AUC, its CI and the operating point come from :mod:`covidct.classify.metrics`, the same
code the classifier's own evaluation uses, so the numbers are comparable with the model card.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ..classify import metrics
from ..io import write_text_atomic
from .manifest import DONE

EVALUATION_FOLDER = "evaluation"
CALIBRATION_BINS = 5


def labelled_scores(rows: list[dict]) -> tuple:
    """(labels, COVID-19 probabilities, threshold) of the finished scans that have a label."""
    usable = [r for r in rows if r["state"] == DONE and r.get("label") is not None]
    labels = np.array([int(r["label"]) for r in usable], dtype=int)
    scores = np.array([float(r["covid19_probability"]) for r in usable], dtype=float)
    thresholds = {float(r["threshold"]) for r in usable}
    return labels, scores, (thresholds.pop() if len(thresholds) == 1 else None)


def calibration_bins(labels, scores, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Mean predicted probability vs observed COVID-19 fraction in equal-width bins (empty bins left out)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    return [{"low": float(edges[b]), "high": float(edges[b + 1]), "n": int((index == b).sum()),
             "mean_predicted": float(scores[index == b].mean()), "observed": float(labels[index == b].mean())}
            for b in range(bins) if (index == b).any()]


def _plot_confusion(confusion: dict, threshold: float, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = np.array([[confusion["tp"], confusion["fn"]], [confusion["fp"], confusion["tn"]]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(table, cmap="Blues")
    for (i, j), count in np.ndenumerate(table):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=14,
                color="white" if count > table.max() / 2 else "black")
    ax.set_xticks([0, 1], ["COVID-19", "non-COVID"])
    ax.set_yticks([0, 1], ["COVID-19", "non-COVID"])
    ax.set(xlabel="CovidCT (probability >= threshold)", ylabel="label", title=f"threshold {threshold:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def _plot_calibration(bins: list[dict], brier: float, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], ls="--", c="grey")
    ax.plot([b["mean_predicted"] for b in bins], [b["observed"] for b in bins], marker="o", lw=2)
    for b in bins:
        ax.annotate(f"n={b['n']}", (b["mean_predicted"], b["observed"]), textcoords="offset points", xytext=(4, -10),
                    fontsize=8)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="mean predicted COVID-19 probability",
           ylabel="observed COVID-19 fraction", title=f"Calibration (Brier {brier:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def _html(summary: dict, bins: list, figures: list, note: str) -> str:
    def pct(value):
        return "n/a" if value is None or np.isnan(value) else f"{100 * value:.1f} %"

    c = summary.get("confusion", {})
    rows = [("scans with a label", summary["n"]), ("of which COVID-19", summary["n_positive"])]
    if "auc" in summary:
        low, high = summary["auc_ci95"]
        rows += [("AUC (95 % bootstrap CI)", f"{summary['auc']:.3f} ({low:.3f} to {high:.3f})"),
                 ("threshold (shipped)", f"{summary['threshold']:.3f}"),
                 ("sensitivity", pct(summary["sensitivity"])), ("specificity", pct(summary["specificity"])),
                 ("PPV", pct(summary["ppv"])), ("NPV", pct(summary["npv"])),
                 ("TP / FN / FP / TN", f"{c['tp']} / {c['fn']} / {c['fp']} / {c['tn']}"),
                 ("Brier score", f"{summary['brier']:.3f}")]
    table = "\n".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    calibration = "\n".join(
        f"<tr><td>{b['low']:.1f}-{b['high']:.1f}</td><td>{b['n']}</td><td>{b['mean_predicted']:.3f}</td>"
        f"<td>{b['observed']:.3f}</td></tr>" for b in bins)
    images = "\n".join(f'<img src="{html.escape(Path(f).name)}" alt="{html.escape(Path(f).stem)}">' for f in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CovidCT cohort evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin-bottom:1em}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left}} img{{margin:4px}}</style></head><body>
<h1>CovidCT cohort evaluation</h1>
<p>Research use only; not for clinical diagnosis. {html.escape(note)}</p>
<table>{table}</table>
<h2>Calibration</h2>
<table><tr><th>predicted</th><th>scans</th><th>mean predicted</th><th>observed</th></tr>{calibration}</table>
{images}
</body></html>
"""


def write_evaluation(output_dir, rows: list[dict], n_boot: int = 2000) -> list:
    """Write ``OUTDIR/evaluation/`` when some finished scans have labels; returns the paths (or [])."""
    labels, scores, threshold = labelled_scores(rows)
    if labels.size == 0:
        return []
    folder = Path(output_dir) / EVALUATION_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"n": int(labels.size), "n_positive": int(labels.sum())}
    figures, bins = [], []
    note = ""
    if threshold is None:
        note = "The scans were analysed with different thresholds (models); no single operating point."
    elif labels.all() or not labels.any():
        note = "All labelled scans have the same label: AUC, ROC and calibration need both classes."
    else:
        summary = metrics.summary(labels, scores, threshold, n_boot)
        summary["brier"] = float(np.mean((scores - labels) ** 2))
        low, high = summary["auc_ci95"]
        roc, pr = metrics.plot_roc_pr(labels, scores, folder / "cohort", f"cohort, 95 % CI {low:.2f}-{high:.2f}")
        bins = calibration_bins(labels, scores)
        figures = [roc, _plot_confusion(summary["confusion"], threshold, folder / "confusion_matrix.png"),
                   _plot_calibration(bins, summary["brier"], folder / "calibration.png"), pr]
        note = f"{labels.size} labelled scans; the CI is a percentile bootstrap over scans ({n_boot} resamples)."
    page = write_text_atomic(folder / "evaluation.html", _html(summary, bins, figures, note))
    return figures + [str(page)]
