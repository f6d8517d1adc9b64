"""Read ``OUTDIR/result.json`` written by ``covidct analyze`` and bring its volumes into the scene.

The input node is only read (for its name, window/level and subject-hierarchy place),
never modified: every output is a new node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from covidct.display import HEAT_LOWER_THRESHOLD
from covidct.errors import ResultFileError
from covidct.result import RESULT_NAME, VOLUME_FIELDS
from covidct.result import AnalysisResult as ResultFile

from . import heatmap_display, lung_segmentation, slice_scores, subject_hierarchy, volume_nodes


class ResultFormatError(ResultFileError, ValueError):
    """result.json is missing, unreadable or not in the format this module understands."""


@dataclass
class AnalysisResult:
    """The parsed result.json (:class:`covidct.result.AnalysisResult`) plus the folder its
    relative paths refer to."""

    out_dir: Path
    analysis: ResultFile

    @property
    def covid_probability(self) -> float:
        return float(self.analysis.probabilities.covid19)

    @property
    def decision(self) -> str:
        return self.analysis.decision

    @property
    def threshold(self) -> float:
        return float(self.analysis.threshold)

    @property
    def sensitivity(self) -> Optional[float]:
        return self.analysis.operating_point.sensitivity

    @property
    def specificity(self) -> Optional[float]:
        return self.analysis.operating_point.specificity

    @property
    def per_slice(self) -> list:
        """``[{"index", "z_mm", "covid19", "in_lung"}, ...]``, as the score table reads them."""
        return [entry.to_dict() for entry in self.analysis.per_slice]

    @property
    def key_slices(self) -> list:
        """The slices the analysis chose (chosen the same way now for results that lack them)."""
        return self.analysis.chosen_key_slices()

    def volume_path(self, key: str) -> Optional[Path]:
        """Path of the volume ``key`` (``input``, ``enhanced``, ``heatmap``, ``lung_mask``, ``lesions``)."""
        if key not in VOLUME_FIELDS:
            raise KeyError(key)
        name = getattr(self.analysis, key)
        if not name:
            return None
        path = Path(name)
        return path if path.is_absolute() else self.out_dir / path

    def summary_lines(self) -> list:
        """Lines for the results panel (no identifiers: result.json holds none)."""
        lines = [f"Decision: {self.decision} (COVID-19 probability {self.covid_probability:.2f}, "
                 f"threshold {self.threshold:.2f})"]
        if self.sensitivity is not None and self.specificity is not None:
            lines.append(f"At this threshold the model card reports sensitivity {self.sensitivity:.2f}, "
                         f"specificity {self.specificity:.2f}.")
        basis = self.analysis.decision_basis
        if basis and basis.basis:
            line = f"Decided by {basis.basis}: " + "; ".join(basis.reasons)
            if basis.classifier_decision and basis.classifier_decision != self.decision:
                line += f" (classifier alone: {basis.classifier_decision})"
            lines.append(line)
        total = self.analysis.quantification.total if self.analysis.quantification else None
        if total is not None:
            line = f"Lung involvement {total.involvement_percent:.1f} % of {total.volume_ml:.0f} ml"
            if total.severity_score is not None:
                line += f"; severity score {total.severity_score}"
                if total.severity_max is not None:
                    line += f" of {total.severity_max}"
            lines.append(line + ".")
        corads = self.analysis.corads
        if corads is not None:
            lines.append(corads.text or f"CO-RADS-style suggestion: {corads.category} ({corads.label})")
        return lines

    def summary_text(self) -> str:
        return "\n".join(self.summary_lines())


def read_result(out_dir) -> AnalysisResult:
    out_dir = Path(out_dir)
    path = out_dir / RESULT_NAME
    if not path.is_file():
        raise ResultFormatError(f"The analysis finished without writing {path}; see the log for the cause.")
    try:
        analysis = ResultFile.load(path)
    except ResultFileError as exc:
        if exc.missing:
            raise ResultFormatError(f"{path} lacks {', '.join(exc.missing)}; the core and the Slicer module "
                                    "versions do not match. Update the extension.", exc.missing) from None
        raise ResultFormatError(str(exc)) from None
    return AnalysisResult(out_dir=out_dir, analysis=analysis)


@dataclass
class ImportedNodes:
    enhanced: Optional[object] = None
    heatmap: Optional[object] = None
    lung_segmentation: Optional[object] = None
    lesion_segmentation: Optional[object] = None   # ground glass / consolidation, when any were found
    score_table: Optional[object] = None
    score_chart: Optional[object] = None
    folder_item: Optional[int] = None
    all_nodes: list = field(default_factory=list)


def _read_volume(path: Path):
    """CTVolume from a NRRD written by the core (LPS geometry, exact)."""
    import SimpleITK as sitk

    from covidct.volume import from_sitk

    if not path.is_file():
        raise ResultFormatError(f"{path.name} is listed in result.json but missing from {path.parent}.")
    return from_sitk(sitk.ReadImage(str(path)))


def import_result(scene, result: AnalysisResult, input_node, colour_node=None,
                  heatmap_threshold: float = HEAT_LOWER_THRESHOLD) -> ImportedNodes:
    """Load enhanced volume, heatmap, lung segmentation and per-slice scores as new nodes."""
    base = input_node.GetName() if input_node is not None else "CovidCT"
    nodes = ImportedNodes()

    enhanced_path = result.volume_path("enhanced")
    if enhanced_path is not None:
        enhanced = _read_volume(enhanced_path)
        nodes.enhanced = volume_nodes.add_volume_node_from_ct(scene, enhanced, f"{base} enhanced")
        if input_node is not None:
            volume_nodes.copy_window_level(input_node, nodes.enhanced)
        else:
            volume_nodes.set_lung_window(nodes.enhanced)

    heatmap = _read_volume(result.volume_path("heatmap"))
    heatmap = heatmap.with_voxels(np.asarray(heatmap.voxels, dtype=np.float32))
    nodes.heatmap = volume_nodes.add_volume_node_from_ct(scene, heatmap, f"{base} COVID-19 heatmap")
    if colour_node is None:
        colour_node = heatmap_display.load_colour_table(scene)
    heatmap_display.configure_heatmap_display(nodes.heatmap, colour_node, heatmap_threshold)
    heatmap_display.show_colour_legend(nodes.heatmap)

    mask_path = result.volume_path("lung_mask")
    if mask_path is not None:
        mask = _read_volume(mask_path)
        names = {int(k): v for k, v in (result.analysis.lung_mask_labels or {}).items()} or None
        nodes.lung_segmentation = lung_segmentation.segmentation_from_labelmap(
            scene, mask.voxels, mask.ijk_to_ras(), f"{base} lungs",
            reference_volume_node=input_node, segment_names=names)

    lesion_path = result.volume_path("lesions")
    lesions = _read_volume(lesion_path) if lesion_path is not None else None
    if lesions is not None and np.asarray(lesions.voxels).any():  # no empty segmentation for clean lungs
        names = {int(k): v for k, v in result.analysis.lesion_labels.items()} or None
        nodes.lesion_segmentation = lung_segmentation.segmentation_from_labelmap(
            scene, lesions.voxels, lesions.ijk_to_ras(), f"{base} lesions",
            reference_volume_node=input_node, segment_names=names,
            segment_colours=lung_segmentation.LESION_COLOURS_RGB)

    if result.per_slice:
        nodes.score_table = slice_scores.add_score_table(scene, result.per_slice, f"{base} slice scores")
        nodes.score_chart = slice_scores.add_score_plot(scene, nodes.score_table, f"{base} slice scores",
                                                        result.threshold)

    nodes.all_nodes = [n for n in (nodes.enhanced, nodes.heatmap, nodes.lung_segmentation,
                                   nodes.lesion_segmentation, nodes.score_table, nodes.score_chart)
                       if n is not None]
    transform_id = input_node.GetTransformNodeID() if input_node is not None else None
    if transform_id:
        # The core saw the input in its own (untransformed) grid; outputs follow the same
        # parent transform so they stay on the input wherever the user moved it.
        for node in (nodes.enhanced, nodes.heatmap, nodes.lung_segmentation, nodes.lesion_segmentation):
            if node is not None:
                node.SetAndObserveTransformNodeID(transform_id)
    if input_node is not None:
        nodes.folder_item = subject_hierarchy.place_with_input(scene, input_node, nodes.all_nodes)
    return nodes
