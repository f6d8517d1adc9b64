"""The whole analysis of one scan, top to bottom, as the radiologist's Analyze button runs it.

load -> validate -> lung mask -> quality gate -> enhance -> classify + CAM -> quantify
-> write volumes and ``result.json`` -> PDF report.

Everything is written into a temporary sibling folder that is renamed onto the output
folder only at the end, so an interrupted or failed run never leaves a result that
looks complete.  The input is never modified.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from . import __version__
from .errors import OutputError
from .io import load_ct, save_volume, write_text_atomic
from .json_encoding import to_plain
from .progress import CancelToken, ProgressCallback, silent, sub_progress
from .result import (KEY_SLICE_COUNT, RESULT_NAME, AnalysisResult, Enhancement, Geometry, ModelInfo,
                     Models, OperatingPoint, Probabilities, Quality, Quantification, SliceScore, Software, Study,
                     lesion_label_names, pick_key_slices, suggest_corads_for)
from .validation import validate_ct_volume
from .volume import CTVolume

log = logging.getLogger(__name__)

# Share of the progress bar each stage gets (roughly its share of CPU time).
STAGES = [("load", 0.05), ("lung mask", 0.08), ("quality", 0.02), ("enhance", 0.35),
          ("classify", 0.30), ("quantify", 0.08), ("write", 0.04), ("report", 0.08)]


@dataclass
class AnalysisOptions:
    """What the user chose; defaults are what the Analyze button does."""

    device: str = "auto"
    enhance: str = "auto"            # auto (quality gate decides) | on | off
    scale: object = "auto"           # auto | 1 | 2 | 4
    enhancer_model: str = "default"  # default | gan | fidelity
    classify_on: str = "original"    # original | enhanced
    series_uid: Optional[str] = None
    include_identifiers: bool = False
    report: bool = True
    key_slice_count: int = KEY_SLICE_COUNT
    overwrite: bool = False


class _Run:
    """One run's state: the models it uses, the warnings it gathers (for ``result.json``), and its clock.

    Kept apart from :class:`AnalysisOptions`, which one caller reuses for many scans.
    Times each stage and maps its own progress onto the whole run's bar.
    """

    def __init__(self, models, progress: ProgressCallback, cancel: CancelToken):
        self.models = models
        self.progress = progress
        self.cancel = cancel
        self.warnings: list = []
        self.timings_s: dict = {}
        self._starts = {}
        position = 0.0
        for name, share in STAGES:
            self._starts[name] = (position, position + share)
            position += share

    @contextmanager
    def stage(self, name: str):
        self.cancel.check(name)
        start, end = self._starts[name]
        self.progress(start, name)
        began = time.perf_counter()
        yield sub_progress(self.progress, start, end, name)
        self.timings_s[name] = round(time.perf_counter() - began, 3)
        self.cancel.check(name)


def _prepare_output(output_dir: Path, overwrite: bool) -> Path:
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(
            f"The output {output_dir} is a file, not a folder. Choose a folder name for the results.")
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise OutputError(
            f"The output folder {output_dir} already exists and is not empty. Choose another "
            "folder or pass --overwrite.")
    # A unique staging name: two analyses into the same parent never share one.
    staging = output_dir.with_name(f".{output_dir.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(f"Cannot create {staging.parent}: {exc.strerror}.") from None
    return staging


def _publish(staging: Path, output_dir: Path) -> None:
    if output_dir.exists():
        shutil.rmtree(output_dir)
    staging.rename(output_dir)


def _enhance(volume: CTVolume, options: AnalysisOptions, quality, models, progress, cancel):
    """Run the enhancer when asked or when the quality gate says it helps."""
    wanted = options.enhance == "on" or (options.enhance == "auto" and quality.needs_enhancement)
    if not wanted:
        return None, {"applied": False, "reason": "quality gate: not needed" if options.enhance == "auto"
                      else "disabled by the user"}
    from .enhance import enhance_volume

    scale = quality.suggested_scale if options.scale == "auto" else int(options.scale)
    if scale <= 1:
        return None, {"applied": False, "reason": "scale 1 requested: nothing to enhance"}
    kwargs = {} if options.enhancer_model == "default" else {"model": options.enhancer_model}
    enhanced, info = enhance_volume(volume, scale=scale, device=options.device, progress=progress,
                                    cancel=cancel, models=models, **kwargs)
    info = dict(info)
    info["applied"] = True
    info["reason"] = "requested by the user" if options.enhance == "on" else "quality gate: " + "; ".join(quality.reasons)
    return enhanced, info


def _classify(volume: CTVolume, lung_mask, options: AnalysisOptions, run: _Run, progress):
    """Classify on the chosen device; a GPU that runs out of memory re-runs it on the CPU, with a warning."""
    from .classify import classify_volume
    from .devices import run_with_cpu_fallback

    def warn(_exc):
        run.warnings.append("The GPU ran out of memory during classification; it was re-run on the CPU.")
        log.warning(run.warnings[-1])

    return run_with_cpu_fallback(
        lambda device: classify_volume(volume, lung_mask, device=device, progress=progress, cancel=run.cancel,
                                       models=run.models),
        options.device, "Out of memory while classifying on the CPU; free memory and retry.", on_fallback=warn)


def analyze_scan(input_path, output_dir, options: Optional[AnalysisOptions] = None,
                 progress: ProgressCallback = silent, cancel: Optional[CancelToken] = None,
                 models=None) -> AnalysisResult:
    """Analyse one chest CT and write the result folder; returns what ``result.json`` holds.

    ``models``: the :class:`covidct.models.ModelStore` to take the classifier and enhancer
    from (default: the process-wide one); a store is asked only for the models a run needs.
    """
    from .models import default_store

    options = options or AnalysisOptions()
    cancel = cancel or CancelToken()
    output_dir = Path(output_dir)
    run = _Run(models or default_store(), progress, cancel)
    # Refuse an absent GPU now, not after minutes of loading and segmenting.
    from .devices import configure_cpu_threads, select_device

    select_device(options.device)
    configure_cpu_threads()  # the cores this process may use, not the host's count
    staging = _prepare_output(output_dir, options.overwrite)
    try:
        result = _run(input_path, staging, options, run)
        _publish(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(1.0, "done")
    return result


def _run(input_path, staging: Path, options: AnalysisOptions, run: _Run) -> AnalysisResult:
    from .decision import decide
    from .enhance.quality_gate import assess_quality
    from .preprocess.lung_mask import compute_lung_mask
    from .quantify import quantify_lungs_with_masks
    from .quantify.lesions import lesion_label_map

    with run.stage("load"):
        volume = load_ct(input_path, options.series_uid, options.include_identifiers)
        run.warnings.extend(validate_ct_volume(volume))
    with run.stage("lung mask"):
        lung_mask = compute_lung_mask(volume)
    with run.stage("quality"):
        quality = assess_quality(volume)
    with run.stage("enhance") as report:
        from .devices import run_with_cpu_fallback

        # The enhancer already falls back to smaller batches and the CPU on its own.
        enhanced, enhancement = run_with_cpu_fallback(
            lambda _device: _enhance(volume, options, quality, run.models, report, run.cancel), options.device,
            "The GPU ran out of memory while enhancing; retry with --device cpu.")
    with run.stage("classify") as report:
        if options.classify_on == "enhanced" and enhanced is not None:
            from .preprocess.resample import resample_to_grid

            enhanced_mask = resample_to_grid(lung_mask.astype(np.float32), volume, enhanced, order=0) > 0.5
            classification = _classify(enhanced, enhanced_mask, options, run, report)
            heatmap = resample_to_grid(classification.heatmap, enhanced, volume, order=1)
        else:
            classification = _classify(volume, lung_mask, options, run, report)
            heatmap = classification.heatmap
    with run.stage("quantify") as report:
        quantification, quantified_masks = quantify_lungs_with_masks(volume, lung_mask, progress=report)
        lesion_labels = lesion_label_map(volume, quantified_masks["lesions"])
    with run.stage("write"):
        # Kept in memory for the report, which would otherwise read them back.
        written = {"input.nrrd": volume,
                   "heatmap.nrrd": volume.with_voxels(heatmap.astype(np.float32), is_hounsfield=False),
                   "lung_mask.nrrd": volume.with_voxels(lung_mask.astype(np.uint8), is_hounsfield=False),
                   "lesions.nrrd": volume.with_voxels(lesion_labels, is_hounsfield=False)}
        if enhanced is not None:
            written["enhanced.nrrd"] = enhanced
        for name, item in written.items():
            save_volume(item, staging / name)
    scan_decision = decide(classification.covid_probability, classification.threshold, quantification)
    per_slice = [SliceScore.from_dict(entry) for entry in to_plain(classification.per_slice)]
    classifier = ModelInfo.from_dict(to_plain(classification.model))
    enhancer_info = Enhancement.from_dict(to_plain(enhancement))
    enhancer = None
    if enhancer_info.applied:
        enhancer = ModelInfo.from_dict({k: enhancer_info.extra[k] for k in ("model", "version", "sha256")
                                        if k in enhancer_info.extra})
    result = AnalysisResult(
        software=Software(__version__),
        probabilities=Probabilities(round(classification.covid_probability, 5),
                                    round(1.0 - classification.covid_probability, 5)),
        decision=scan_decision.decision,
        classifier_decision=classification.decision,
        decision_basis=scan_decision,
        threshold=classification.threshold,
        operating_point=classifier.operating_point or OperatingPoint(),
        pooling=classification.pooling,
        classified_on=options.classify_on if enhanced is not None else "original",
        per_slice=per_slice,
        key_slices=pick_key_slices(per_slice, options.key_slice_count, volume.spacing_mm[2]),
        input="input.nrrd",
        enhanced="enhanced.nrrd" if enhanced is not None else None,
        heatmap="heatmap.nrrd",
        lung_mask="lung_mask.nrrd",
        lesions="lesions.nrrd",
        lesion_labels=lesion_label_names(),
        quality=Quality.from_dict(to_plain(dict(quality.to_dict(), enhancement_applied=enhancer_info.applied,
                                                enhancement=enhancement))),
        quantification=Quantification.from_dict(to_plain(quantification)),
        model=Models(classifier=classifier, enhancer=enhancer),
        study=Study.from_facts(volume.facts, options.include_identifiers),
        geometry=Geometry(list(volume.shape), list(volume.spacing_mm)),
        warnings=list(run.warnings),
        timings_s=run.timings_s,
    )
    result.corads = suggest_corads_for(result)
    write_text_atomic(staging / RESULT_NAME, result.to_json())
    if options.report:
        with run.stage("report"):
            from .report import build_report

            source = Path(input_path)
            dicom_dir = source if source.is_dir() else (
                source.parent if volume.facts.source_format == "DICOM" else None)
            build_report(staging, include_identifiers=options.include_identifiers,
                         source_dicom_dir=dicom_dir, volumes=written)
        result.timings_s = run.timings_s
        write_text_atomic(staging / RESULT_NAME, result.to_json())
    return result
