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

SIDES = ("right", "left", "total")
ZONES = ("upper", "middle", "lower")
STUDY_FIELDS = ("study_date", "series_description", "manufacturer", "scanner_model",
                "slice_thickness_mm", "patient_age", "patient_sex")


def _round(value, digits=3):
    return round(float(value), digits) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def measurement_record(result: dict, corads: dict | None = None) -> dict:
    """Flat, ordered ``{column: value}`` of everything numeric the report states."""
    rec = {}
    study = result.get("study") or {}
    for name in STUDY_FIELDS:
        rec[f"study_{name}"] = study.get(name, "")
    probs = result.get("probabilities") or {}
    op = result.get("operating_point") or {}
    rec["covid19_probability"] = _round(probs.get("covid19"), 4)
    rec["decision"] = result.get("decision", "")
    basis = result.get("decision_basis") or {}
    rec["decision_basis"] = basis.get("basis", "")
    rec["classifier_decision"] = basis.get("classifier_decision", result.get("decision", ""))
    rec["threshold"] = _round(result.get("threshold"), 4)
    rec["operating_point_sensitivity"] = _round(op.get("sensitivity"), 4)
    rec["operating_point_specificity"] = _round(op.get("specificity"), 4)
    quality = result.get("quality") or {}
    rec["quality_needs_enhancement"] = quality.get("needs_enhancement")
    rec["quality_enhancement_applied"] = quality.get("enhancement_applied")
    rec["quality_reasons"] = "; ".join(quality.get("reasons") or [])
    q = result.get("quantification") or {}
    for side in SIDES:
        entry = q.get(side) or {}
        rec[f"{side}_lung_volume_ml"] = _round(entry.get("volume_ml"), 1)
        rec[f"{side}_involvement_percent"] = _round(entry.get("involvement_percent"), 2)
        rec[f"{side}_involved_ml"] = _round(entry.get("involved_ml"), 1)
        rec[f"{side}_ground_glass_percent"] = _round(entry.get("ground_glass_percent"), 2)
        rec[f"{side}_consolidation_percent"] = _round(entry.get("consolidation_percent"), 2)
        for band, value in (entry.get("bands_percent") or {}).items():
            rec[f"{side}_band_{band}_percent"] = _round(value, 2)
        rec[f"{side}_severity_score"] = entry.get("severity_score")
        if side != "total":
            for zone in ZONES:
                rec[f"{side}_{zone}_zone_score"] = ((entry.get("zones") or {}).get(zone) or {}).get("score")
    rec["severity_max"] = (q.get("total") or {}).get("severity_max")
    rec["bilateral"] = (q.get("distribution") or {}).get("bilateral")
    rec["peripheral_share"] = _round((q.get("distribution") or {}).get("peripheral_share"), 3)
    if corads:
        rec["corads_style_suggestion"] = corads.get("category")
        rec["corads_style_label"] = corads.get("label")
    models = result.get("model") or {}
    for key in ("classifier", "enhancer"):
        entry = models.get(key) or {}
        rec[f"{key}_name"] = entry.get("name") or entry.get("model") or ""
        rec[f"{key}_version"] = entry.get("version", "")
        rec[f"{key}_sha256"] = entry.get("sha256", "")
    rec["software_covidct"] = (result.get("software") or {}).get("covidct", "")
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


def write_per_slice_csv(path, result: dict) -> Path:
    """One row per slice: index, z (mm), lung flag, COVID-19 score, involved lung %."""
    involvement = (result.get("quantification") or {}).get("per_slice_involvement_percent") or []
    rows = []
    for entry in result.get("per_slice") or []:
        k = entry.get("index")
        rows.append({"index": k, "z_mm": entry.get("z_mm"), "in_lung": entry.get("in_lung"),
                     "covid19_score": entry.get("covid19"),
                     "involvement_percent": involvement[k] if isinstance(k, int) and 0 <= k < len(involvement) else None})
    return write_text_atomic(path, _csv_text(rows, ["index", "z_mm", "in_lung", "covid19_score",
                                                    "involvement_percent"]))
