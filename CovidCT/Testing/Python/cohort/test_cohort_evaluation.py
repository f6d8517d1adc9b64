"""The cohort evaluation page: numbers from the classifier's metrics, figures written, honest when it cannot."""

from __future__ import annotations

import numpy as np
from PIL import Image

from covidct.classify import metrics
from covidct.cohort.evaluation import calibration_bins, labelled_scores, write_evaluation


def _rows(labels, scores, threshold=0.4):
    rows = [{"state": "done", "label": label, "covid19_probability": score, "threshold": threshold}
            for label, score in zip(labels, scores)]
    rows.append({"state": "failed", "label": 1, "covid19_probability": None, "threshold": None})
    rows.append({"state": "done", "label": None, "covid19_probability": 0.9, "threshold": threshold})
    return rows


def test_page_with_roc_confusion_and_calibration(tmp_path):
    labels = [1, 1, 1, 0, 0, 0, 1, 0]
    scores = [0.9, 0.7, 0.35, 0.5, 0.1, 0.2, 0.8, 0.3]
    written = write_evaluation(tmp_path, _rows(labels, scores), n_boot=200)
    names = sorted(p.split("/")[-1] for p in written)
    assert names == ["calibration.png", "cohort_pr.png", "cohort_roc.png", "confusion_matrix.png", "evaluation.html"]
    for path in written[:-1]:
        assert Image.open(path).size[0] > 200
    page = (tmp_path / "evaluation" / "evaluation.html").read_text()
    expected_auc = metrics.auc(labels, scores)
    assert f"{expected_auc:.3f} (" in page and "scans with a label</th><td>8<" in page
    # At 0.4: TP 3 (0.9, 0.7, 0.8), FN 1 (0.35), FP 1 (0.5), TN 3.
    assert "3 / 1 / 1 / 3" in page
    brier = np.mean((np.array(scores) - np.array(labels)) ** 2)
    assert f"Brier score</th><td>{brier:.3f}" in page


def test_labelled_scores_ignore_failed_and_unlabelled():
    labels, scores, threshold = labelled_scores(_rows([1, 0], [0.6, 0.2]))
    assert labels.tolist() == [1, 0] and scores.tolist() == [0.6, 0.2] and threshold == 0.4


def test_calibration_bins_count_every_scan():
    scores = np.array([0.05, 0.1, 0.5, 0.55, 0.95])
    bins = calibration_bins(np.array([0, 0, 1, 0, 1]), scores)
    assert sum(b["n"] for b in bins) == 5
    assert [round(b["observed"], 2) for b in bins] == [0.0, 0.5, 1.0]


def test_one_class_or_no_labels_says_so(tmp_path):
    assert write_evaluation(tmp_path, [{"state": "done", "label": None, "covid19_probability": 0.3,
                                        "threshold": 0.4}]) == []
    written = write_evaluation(tmp_path, _rows([1, 1], [0.6, 0.7]))
    assert [p.split("/")[-1] for p in written] == ["evaluation.html"]
    assert "need both classes" in (tmp_path / "evaluation" / "evaluation.html").read_text()
