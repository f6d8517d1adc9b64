"""Turn an analysis result folder into the artefacts that leave the software.

:func:`build_report` reads ``RESULT_DIR/result.json`` and the volumes it names, and
writes next to the PDF: the PDF itself, the key-slice figure and per-slice chart (PNG),
the numbers as JSON and CSV, and, when the input was DICOM, a DICOM Encapsulated PDF
that references the source study and (when the source images' headers are at hand) a
DICOM SR (TID 1500) with the measurements, in the same study.  Nothing written carries
the patient's name or ID unless ``include_identifiers=True``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputNotFoundError, InvalidCTError
from ..volume import StudyFacts

IDENTIFYING_FIELDS = StudyFacts.IDENTIFYING_FIELDS

__all__ = ["build_report", "load_result"]


def load_result(result_dir) -> dict:
    result_dir = Path(result_dir)
    path = result_dir / "result.json"
    if not path.exists():
        raise InputNotFoundError(f"{path} does not exist. Run 'covidct analyze INPUT -o {result_dir}' first, "
                                 "then build the report from that folder.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidCTError(f"{path} is not valid JSON ({exc}); re-run the analysis.") from None


def _load_optional_volume(result_dir: Path, name: Optional[str], in_memory: Optional[dict] = None):
    from ..io import load_volume_file

    if not name:
        return None
    if in_memory and in_memory.get(name) is not None:
        return in_memory[name]  # just written by analyze: no need to read it back
    path = result_dir / name
    if not path.exists():
        raise InputNotFoundError(f"{path} is named in result.json but missing; re-run the analysis.")
    return load_volume_file(path)


def _heat_on_ct_grid(heat_volume, ct) -> Optional[np.ndarray]:
    from .figures import resample_like

    if heat_volume is None:
        return None
    heat = resample_like(heat_volume, ct).astype(np.float32)
    peak = float(heat.max()) if heat.size else 0.0
    return heat / peak if peak > 1.0 else heat


def _display_window(study: dict) -> tuple:
    """Lung window for HU scans; the full 8-bit range for slice-image exports (already windowed)."""
    from ..preprocess.windowing import LUNG_WINDOW_HU

    return (0.0, 255.0) if str(study.get("source_format", "")).lower() == "image" else LUNG_WINDOW_HU


def _key_slices(result: dict, num_slices: int) -> list:
    keys = [int(k) for k in result.get("key_slices") or [] if 0 <= int(k) < num_slices]
    if keys:
        return keys[:3]
    scored = [(p["covid19"], p["index"]) for p in result.get("per_slice") or [] if p.get("covid19") is not None]
    return [k for _, k in sorted(scored, reverse=True)[:3]] or [num_slices // 2]


def build_report(result_dir, output_pdf=None, include_identifiers: bool = False,
                 source_dicom_dir=None, volumes: Optional[dict] = None) -> dict:
    """Write the report files for ``result_dir``; returns ``{kind: path}`` of what was written.

    ``volumes`` maps file names in ``result_dir`` (``input.nrrd``, ...) to the CTVolume
    already in memory, so ``analyze`` does not read back what it has just written.
    """
    from ..quantify import quantify_lungs, suggest_corads
    from . import tables
    from .dicom_export import read_source_reference, reference_from_study_facts, write_encapsulated_pdf
    from .figures import render_key_slices, render_slice_chart
    from .pdf_report import build_pdf

    result_dir = Path(result_dir)
    result = load_result(result_dir)
    output_pdf = Path(output_pdf) if output_pdf else result_dir / "report.pdf"
    stem = output_pdf.with_suffix("")
    written = {}

    # Never let identifiers through unless asked, whatever result.json holds.
    study = dict(result.get("study") or {})
    reference = None
    if source_dicom_dir:
        reference = read_source_reference(source_dicom_dir, study.get("series_instance_uid", ""))
    elif study.get("source_format", "").upper() == "DICOM":
        reference = reference_from_study_facts(study)
    if include_identifiers and reference:
        for field, key in (("patient_name", "PatientName"), ("patient_id", "PatientID"),
                           ("patient_birth_date", "PatientBirthDate")):
            study[field] = study.get(field) or reference.get(key, "")
    if not include_identifiers:
        for field in IDENTIFYING_FIELDS:
            study.pop(field, None)
    result = {**result, "study": study}

    ct = _load_optional_volume(result_dir, result.get("input"), volumes)
    if ct is None:
        raise InputNotFoundError(f"result.json in {result_dir} names no input volume; re-run the analysis.")
    enhanced = _load_optional_volume(result_dir, result.get("enhanced"), volumes)
    heat = _heat_on_ct_grid(_load_optional_volume(result_dir, result.get("heatmap"), volumes), ct)
    if not result.get("quantification") and result.get("lung_mask"):
        mask = _load_optional_volume(result_dir, result["lung_mask"], volumes)
        result["quantification"] = quantify_lungs(ct, mask.voxels > 0)

    probability = (result.get("probabilities") or {}).get("covid19")
    threshold = result.get("threshold")
    corads = suggest_corads(probability, 0.5 if threshold is None else float(threshold),
                            result.get("quantification"), result.get("quality")).to_dict()

    keys = _key_slices(result, ct.num_slices)
    scores = {p["index"]: p["covid19"] for p in result.get("per_slice") or [] if p.get("covid19") is not None}
    figures = {
        "key_slices": render_key_slices(ct, keys, f"{stem}_key_slices.png", heat=heat, enhanced=enhanced,
                                        slice_scores=scores, window_hu=_display_window(study)),
        "slice_chart": render_slice_chart(result.get("per_slice") or [], f"{stem}_slice_chart.png",
                                          threshold=result.get("threshold"), key_slices=keys,
                                          involvement_percent=(result.get("quantification") or {}).get(
                                              "per_slice_involvement_percent")),
    }
    written.update(figures)
    written["pdf"] = build_pdf(result, output_pdf, figures, corads, include_identifiers=include_identifiers)

    record = tables.measurement_record(result, corads)
    written["json"] = tables.write_measurements_json(
        f"{stem}_measurements.json", record,
        extra={"corads_style_suggestion": corads,
               "quantification_settings": (result.get("quantification") or {}).get("settings")})
    written["csv"] = tables.write_measurements_csv(f"{stem}_measurements.csv", record)
    written["per_slice_csv"] = tables.write_per_slice_csv(f"{stem}_per_slice.csv", result)

    if reference:
        written["dicom"] = write_encapsulated_pdf(
            written["pdf"], f"{stem}.dcm", reference, include_identifiers=include_identifiers,
            software_version=(result.get("software") or {}).get("covidct", ""))
    from .dicom_sr import can_write_measurement_sr, write_measurement_sr

    if can_write_measurement_sr(reference, result):
        written["dicom_sr"] = write_measurement_sr(f"{stem}_measurements_sr.dcm", reference["headers"], result,
                                                   include_identifiers=include_identifiers)
    return {kind: str(path) for kind, path in written.items()}
