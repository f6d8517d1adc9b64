"""The report's numbers as JSON and CSV, for batch use and spreadsheets.

One flat record per study with a fixed column order, so the CSV files of many studies can
be concatenated (``tail -n +2``) into one table.  Patient name and ID never appear here;
the study facts kept are the acquisition facts the PDF header shows.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..io import write_text_atomic
from ..result import SIDES, AnalysisResult

ZONES = ("upper", "middle", "lower")
STUDY_FIELDS = ("study_date", "series_description", "manufacturer", "scanner_model",
                "slice_thickness_mm", "patient_age", "patient_sex")


def _round(value, digits=3):
    return round(float(value), digits) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def measurement_record(result: AnalysisResult) -> dict:
    """Flat, ordered ``{column: value}`` of everything numeric the report states.

    The same columns whatever the result holds (empty where it lacks a measurement), so the
    CSV files of many studies line up.
    """
    rec = {}
    for name in STUDY_FIELDS:
        rec[f"study_{name}"] = getattr(result.study, name)
    op = result.operating_point
    rec["covid19_probability"] = _round(result.probabilities.covid19, 4)
    rec["decision"] = result.decision
    basis = result.decision_basis
    rec["decision_basis"] = basis.basis if basis else ""
    rec["classifier_decision"] = basis.classifier_decision if basis else result.decision
    rec["threshold"] = _round(result.threshold, 4)
    rec["operating_point_sensitivity"] = _round(op.sensitivity, 4)
    rec["operating_point_specificity"] = _round(op.specificity, 4)
    quality = result.quality
    rec["quality_needs_enhancement"] = quality.needs_enhancement if quality else None
    rec["quality_enhancement_applied"] = quality.enhancement_applied if quality else None
    rec["quality_reasons"] = "; ".join(quality.reasons if quality else [])
    q = result.quantification
    for side in SIDES:
        entry = q.side(side) if q else None
        rec[f"{side}_lung_volume_ml"] = _round(getattr(entry, "volume_ml", None), 1)
        rec[f"{side}_involvement_percent"] = _round(getattr(entry, "involvement_percent", None), 2)
        rec[f"{side}_involved_ml"] = _round(getattr(entry, "involved_ml", None), 1)
        rec[f"{side}_ground_glass_percent"] = _round(getattr(entry, "ground_glass_percent", None), 2)
        rec[f"{side}_consolidation_percent"] = _round(getattr(entry, "consolidation_percent", None), 2)
        for band, value in (getattr(entry, "bands_percent", None) or {}).items():
            rec[f"{side}_band_{band}_percent"] = _round(value, 2)
        rec[f"{side}_severity_score"] = getattr(entry, "severity_score", None)
        if side != "total":
            zones = getattr(entry, "zones", None) or {}
            for zone in ZONES:
                rec[f"{side}_{zone}_zone_score"] = zones[zone].score if zone in zones else None
    distribution = q.distribution if q else None
    rec["severity_max"] = q.total.severity_max if q else None
    rec["bilateral"] = distribution.bilateral if distribution else None
    rec["peripheral_share"] = _round(distribution.peripheral_share if distribution else None, 3)
    if result.corads:
        rec["corads_style_suggestion"] = result.corads.category
        rec["corads_style_label"] = result.corads.label
    for key in ("classifier", "enhancer"):
        entry = getattr(result.model, key)
        rec[f"{key}_name"] = entry.display_name if entry else ""
        rec[f"{key}_version"] = (entry.version or "") if entry else ""
        rec[f"{key}_sha256"] = (entry.sha256 or "") if entry else ""
    rec["software_covidct"] = result.software.covidct
    return rec


def write_measurements_json(path, record: dict, extra: dict | None = None) -> Path:
    data = {"measurements": record, **(extra or {})}
    return write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def _csv_text(rows: list, columns: list) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buffer.getvalue()


def write_measurements_csv(path, record: dict) -> Path:
    return write_text_atomic(path, _csv_text([record], list(record)))


def write_per_slice_csv(path, result: AnalysisResult) -> Path:
    """One row per slice: index, z (mm), lung flag, COVID-19 score, involved lung %."""
    involvement = result.quantification.per_slice_involvement_percent if result.quantification else []
    rows = [{"index": s.index, "z_mm": s.z_mm, "in_lung": s.in_lung, "covid19_score": s.covid19,
             "involvement_percent": involvement[s.index] if 0 <= s.index < len(involvement) else None}
            for s in result.per_slice]
    return write_text_atomic(path, _csv_text(rows, ["index", "z_mm", "in_lung", "covid19_score",
                                                    "involvement_percent"]))
