"""The cohort table: ``cohort.csv`` (one row per scan) and ``cohort.json``, rebuilt from the results.

Rows are made from each finished scan's own ``result.json``, so a resumed cohort's table
covers every run.  Without ``include_identifiers`` no row holds a patient identifier, a
path or a DICOM UID: a scan is named by its id (the CSV manifest's, else a key derived
from its location).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..io import write_text_atomic
from ..result import AnalysisResult, RESULT_NAME
from .manifest import DONE

CSV_NAME, JSON_NAME = "cohort.csv", "cohort.json"
COLUMNS = ("id", "state", "label", "decision", "covid19_probability", "non_covid_probability",
           "classifier_decision", "threshold", "involvement_percent", "right_involvement_percent",
           "left_involvement_percent", "severity_score", "severity_max", "corads_category", "corads_label",
           "quality_gate", "enhancement_applied", "classifier_version", "classifier_sha256", "enhancer_sha256",
           "seconds", "content_sha256", "error_class", "message")
IDENTIFIER_COLUMNS = ("path", "series_uid", "patient_id", "patient_name")


def _quality_gate(result: AnalysisResult) -> str:
    quality = result.quality
    if quality is None or quality.needs_enhancement is None:
        return ""
    return "enhancement advised" if quality.needs_enhancement else "adequate"


def result_row(result: AnalysisResult) -> dict:
    """The analysis half of a row (what ``result.json`` says)."""
    row = {"decision": result.decision, "covid19_probability": result.probabilities.covid19,
           "non_covid_probability": result.probabilities.non_covid,
           "classifier_decision": result.classifier_decision, "threshold": result.threshold,
           "quality_gate": _quality_gate(result),
           "enhancement_applied": bool(result.quality and result.quality.enhancement_applied)}
    quantification = result.quantification
    if quantification is not None:
        row.update(involvement_percent=quantification.total.involvement_percent,
                   right_involvement_percent=quantification.right.involvement_percent,
                   left_involvement_percent=quantification.left.involvement_percent,
                   severity_score=quantification.total.severity_score,
                   severity_max=quantification.total.severity_max)
    if result.corads is not None:
        row.update(corads_category=result.corads.category, corads_label=result.corads.label)
    classifier, enhancer = result.model.classifier, result.model.enhancer
    row.update(classifier_version=classifier.version if classifier else None,
               classifier_sha256=classifier.sha256 if classifier else None,
               enhancer_sha256=enhancer.sha256 if enhancer else None)
    return row


def cohort_rows(output_dir: Path, scans, manifest, include_identifiers: bool) -> list[dict]:
    from .runner import result_dir

    rows = []
    for scan in scans:
        entry = manifest.entries[scan.key]
        row = {"id": scan.scan_id, "state": entry["state"], "label": scan.label,
               "seconds": entry.get("seconds"), "content_sha256": entry.get("content_sha256"),
               "error_class": entry.get("error_class"), "message": entry.get("message")}
        result = None
        if entry["state"] == DONE:
            result = AnalysisResult.load(result_dir(output_dir, scan.key) / RESULT_NAME)
            row.update(result_row(result))
        if include_identifiers:
            study = result.study if result is not None else None
            row.update(path=scan.path, series_uid=scan.series_uid,
                       patient_id=study.patient_id if study else None,
                       patient_name=study.patient_name if study else None)
        rows.append(row)
    return rows


def _csv_text(rows: list[dict], columns) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buffer.getvalue()


def write_cohort_tables(output_dir, scans, manifest, include_identifiers: bool = False) -> list:
    """Write ``cohort.csv``, ``cohort.json`` and, with labels, the evaluation page; returns the paths."""
    from .evaluation import write_evaluation

    output_dir = Path(output_dir)
    rows = cohort_rows(output_dir, scans, manifest, include_identifiers)
    columns = COLUMNS + (IDENTIFIER_COLUMNS if include_identifiers else ())
    written = [write_text_atomic(output_dir / CSV_NAME, _csv_text(rows, columns)),
               write_text_atomic(output_dir / JSON_NAME, json.dumps({"scans": rows}, indent=1) + "\n")]
    return [str(p) for p in written] + write_evaluation(output_dir, rows)
