"""Turn an analysis result folder into the artefacts that leave the software.

:func:`build_report` reads ``RESULT_DIR/result.json`` and the volumes it names, and
writes next to the PDF: the PDF itself, the key-slice figure and per-slice chart (PNG),
the numbers as JSON and CSV, and, when the input was DICOM, a DICOM Encapsulated PDF
that references the source study and (when the source images' headers are at hand) a
DICOM SR (TID 1500) with the measurements, in the same study.  Nothing written carries
the patient's name or ID unless ``include_identifiers=True``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputNotFoundError
from ..result import RESULT_NAME, AnalysisResult

__all__ = ["build_report", "load_result"]

# Rows of the key-slice figure: the first of the result's key slices.
KEY_SLICES_SHOWN = 3


def load_result(result_dir) -> AnalysisResult:
    result_dir = Path(result_dir)
    path = result_dir / RESULT_NAME
    if not path.exists():
        raise InputNotFoundError(f"{path} does not exist. Run 'covidct analyze INPUT -o {result_dir}' first, "
                                 "then build the report from that folder.")
    return AnalysisResult.load(path)


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


def _display_window(study) -> tuple:
    """Lung window for HU scans; the full 8-bit range for slice-image exports (already windowed)."""
    from ..preprocess.windowing import LUNG_WINDOW_HU

    return (0.0, 255.0) if study.source_format.lower() == "image" else LUNG_WINDOW_HU


def _shown_key_slices(result: AnalysisResult, num_slices: int) -> list:
    """The result's key slices that fit the figure (the middle slice when nothing was scored)."""
    keys = [k for k in result.chosen_key_slices() if 0 <= k < num_slices]
    return keys[:KEY_SLICES_SHOWN] or [num_slices // 2]


def build_report(result_dir, output_pdf=None, include_identifiers: bool = False,
                 source_dicom_dir=None, volumes: Optional[dict] = None) -> dict:
    """Write the report files for ``result_dir``; returns ``{kind: path}`` of what was written.

    ``volumes`` maps file names in ``result_dir`` (``input.nrrd``, ...) to the CTVolume
    already in memory, so ``analyze`` does not read back what it has just written.
    """
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
    study = result.study
    reference = None
    if source_dicom_dir:
        reference = read_source_reference(source_dicom_dir, study.series_instance_uid)
    elif study.source_format.upper() == "DICOM":
        reference = reference_from_study_facts(study)
    if include_identifiers and reference:
        study = study.with_identifiers(patient_name=reference.get("PatientName", ""),
                                       patient_id=reference.get("PatientID", ""),
                                       patient_birth_date=reference.get("PatientBirthDate", ""))
    if not include_identifiers:
        study = study.without_identifiers()
    # Results older than schema 2 carry no CO-RADS-style suggestion: made now, as analyze makes it.
    result = dataclasses.replace(result, study=study).with_corads()

    ct = _load_optional_volume(result_dir, result.input, volumes)
    if ct is None:
        raise InputNotFoundError(f"result.json in {result_dir} names no input volume; re-run the analysis.")
    enhanced = _load_optional_volume(result_dir, result.enhanced, volumes)
    heat = _heat_on_ct_grid(_load_optional_volume(result_dir, result.heatmap, volumes), ct)
    quantification = result.quantification

    keys = _shown_key_slices(result, ct.num_slices)
    figures = {
        "key_slices": render_key_slices(ct, keys, f"{stem}_key_slices.png", heat=heat, enhanced=enhanced,
                                        slice_scores=result.scores_by_index(), window_hu=_display_window(study)),
        "slice_chart": render_slice_chart(result.per_slice, f"{stem}_slice_chart.png",
                                          threshold=result.threshold, key_slices=keys,
                                          involvement_percent=quantification.per_slice_involvement_percent
                                          if quantification else None),
    }
    written.update(figures)
    written["pdf"] = build_pdf(result, output_pdf, figures, include_identifiers=include_identifiers)

    record = tables.measurement_record(result)
    written["json"] = tables.write_measurements_json(
        f"{stem}_measurements.json", record,
        extra={"corads_style_suggestion": result.corads.to_dict(),
               "quantification_settings": quantification.settings if quantification else None})
    written["csv"] = tables.write_measurements_csv(f"{stem}_measurements.csv", record)
    written["per_slice_csv"] = tables.write_per_slice_csv(f"{stem}_per_slice.csv", result)

    if reference:
        written["dicom"] = write_encapsulated_pdf(
            written["pdf"], f"{stem}.dcm", reference, include_identifiers=include_identifiers,
            software_version=result.software.covidct)
    from .dicom_sr import can_write_measurement_sr, write_measurement_sr

    if can_write_measurement_sr(reference, result):
        written["dicom_sr"] = write_measurement_sr(f"{stem}_measurements_sr.dcm", reference["headers"], result,
                                                   include_identifiers=include_identifiers)
    return {kind: str(path) for kind, path in written.items()}
