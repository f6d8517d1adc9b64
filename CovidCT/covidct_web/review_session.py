"""One browser session's scan, analysis and review on its own MRML scene.

The web counterpart of the Slicer module's logic class, over the same ``CovidCTLib``
functions: ``analysis_run`` starts the analysis and imports its results, ``compare_layout``
and ``heatmap_display`` set the views up, ``slice_scores`` picks the slices to visit.
Nothing here knows about trame; :mod:`covidct_web.session_app` drives it from the
server's event loop (the only thread that touches the scene).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from covidct.display import HEAT_LOWER_THRESHOLD, HEAT_OPACITY
from covidct.io import load_ct
from covidct.validation import validate_ct_volume

from CovidCTLib import analysis_run, compare_layout, heatmap_display, slice_scores, volume_nodes
from CovidCTLib.analysis_process import AnalysisProcess, AnalysisState

SCAN_NODE_NAME = "Scan"  # never the patient's name: the scene may be shown or logged
RESULT_VOLUME_KEYS = ("enhanced", "heatmap", "lung_mask", "lesions")
TABLE_FILES = ("result.json", "report_per_slice.csv", "report_measurements.csv", "report_measurements.json")


@dataclass
class HeatmapSettings:
    visible: bool = True
    opacity: float = HEAT_OPACITY
    threshold: float = HEAT_LOWER_THRESHOLD


@dataclass
class OpenedScan:
    """What was loaded, minus anything identifying (the loader drops identifiers)."""

    shape_kji: tuple
    spacing_mm: tuple
    warnings: list = field(default_factory=list)


def read_scan(path):
    """Load and check a scan exactly as ``covidct analyze`` does (same errors, same messages).

    Pure numpy/SimpleITK work: safe to run off the event loop.
    """
    volume = load_ct(path)
    warnings = validate_ct_volume(volume)
    return volume, warnings


class ReviewSession:
    """Scan -> analysis -> review for one scene; ``work_dir`` holds every file it writes."""

    def __init__(self, scene, work_dir, device: str = "auto"):
        self.scene = scene
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.input_node = None
        self.run: Optional[AnalysisProcess] = None
        self.result = None
        self.nodes = None
        self.heatmap = HeatmapSettings()
        self.current_slice: Optional[int] = None
        self._run_count = 0

    # -- scan ----------------------------------------------------------------------------
    def show_scan(self, volume, warnings=()) -> OpenedScan:
        """Put a loaded volume in the scene (replacing the previous scan and its results)."""
        self.cancel()
        self._remove_nodes()
        self.input_node = volume_nodes.add_volume_node_from_ct(self.scene, volume, SCAN_NODE_NAME)
        volume_nodes.set_lung_window(self.input_node)
        compare_layout.assign_compare_layers(self.scene, self.input_node)
        return OpenedScan(tuple(volume.voxels.shape), tuple(volume.spacing_mm), list(warnings))

    def _remove_nodes(self) -> None:
        nodes = [self.input_node] + (list(self.nodes.all_nodes) if self.nodes is not None else [])
        for node in nodes:
            if node is not None and self.scene.IsNodePresent(node):
                volume_nodes.remove_with_display_nodes(self.scene, node)
        self.input_node, self.nodes, self.result, self.current_slice = None, None, None, None

    # -- analysis ------------------------------------------------------------------------
    def prepare_analysis(self, enhancement: str = "auto", scale: str = "auto") -> AnalysisProcess:
        """The run for the current scan, not yet started (the queue starts it)."""
        if self.input_node is None:
            raise ValueError("Open a scan first.")
        if self.run is not None and self.run.state.busy:
            raise RuntimeError("An analysis is already running.")
        self.remove_previous_run()
        self._run_count += 1
        work_dir = self.work_dir / f"run-{self._run_count}"
        self.run = analysis_run.start_analysis(
            self.scene, self.input_node, work_dir, device=self.device, enhancement=enhancement, scale=scale,
            heatmap_threshold=self.heatmap.threshold, on_imported=self._on_imported, start=False)
        return self.run

    def remove_previous_run(self) -> None:
        if self.run is not None and not self.run.state.busy:
            self.run.remove_work_dir()

    def cancel(self) -> None:
        if self.run is not None and self.run.state.busy:
            self.run.cancel()

    def _on_imported(self, result, nodes) -> None:
        self.result, self.nodes = result, nodes
        compare_layout.assign_compare_layers(self.scene, self.input_node, nodes.enhanced, nodes.heatmap,
                                             self._foreground_opacity())
        self.current_slice = None

    @property
    def state(self) -> AnalysisState:
        return self.run.state if self.run is not None else AnalysisState.IDLE

    # -- display -------------------------------------------------------------------------
    def _foreground_opacity(self) -> float:
        return self.heatmap.opacity if self.heatmap.visible else 0.0

    def set_heatmap(self, visible: Optional[bool] = None, opacity: Optional[float] = None,
                    threshold: Optional[float] = None) -> None:
        if visible is not None:
            self.heatmap.visible = bool(visible)
        if opacity is not None:
            self.heatmap.opacity = float(opacity)
        if threshold is not None:
            self.heatmap.threshold = float(threshold)
        if self.nodes is None or self.nodes.heatmap is None:
            return
        heatmap_display.set_heatmap_threshold(self.nodes.heatmap, self.heatmap.threshold)
        compare_layout.set_heatmap_visible(self.scene, self.heatmap.visible, self.heatmap.opacity)
        legend = _colour_legend_of(self.nodes.heatmap)
        if legend is not None:
            legend.SetVisibility(self.heatmap.visible)

    def set_window(self, preset: str) -> None:
        volume_nodes.set_window_preset([self.input_node, self.nodes.enhanced if self.nodes else None], preset)

    # -- navigation ----------------------------------------------------------------------
    @property
    def key_slices(self) -> list:
        return list(self.result.key_slices) if self.result is not None else []

    def jump_to_slice(self, index: int) -> int:
        reference = (self.nodes.heatmap if self.nodes is not None else None) or self.input_node
        if reference is None:
            raise ValueError("Open a scan first.")
        compare_layout.jump_to_slice(compare_layout.compare_slice_nodes(self.scene), reference, int(index))
        self.current_slice = int(index)
        return self.current_slice

    def slice_shown(self) -> Optional[int]:
        """The slice the original view shows now (follows wheel scrolls in the browser)."""
        reference = (self.nodes.heatmap if self.nodes is not None else None) or self.input_node
        if reference is None:
            return None
        view = compare_layout.slice_node_for_view(self.scene, compare_layout.ORIGINAL_VIEW)
        self.current_slice = compare_layout.slice_index_shown(view, reference)
        return self.current_slice

    def jump_to_most_suspicious(self) -> Optional[int]:
        if self.result is None:
            return None
        index = slice_scores.most_suspicious_slice(self.result.per_slice, self.key_slices)
        return None if index is None else self.jump_to_slice(index)

    def step_key_slice(self, step: int) -> Optional[int]:
        index = slice_scores.neighbour_key_slice(self.key_slices, self.current_slice, step)
        return None if index is None else self.jump_to_slice(index)

    # -- files ---------------------------------------------------------------------------
    def downloads(self) -> list:
        """``[(label, path relative to work_dir)]`` of the last run's report, tables and volumes."""
        if self.result is None:
            return []
        out_dir = self.result.out_dir
        files = [("PDF report", out_dir / analysis_run.REPORT_NAME)]
        files += [(name, out_dir / name) for name in TABLE_FILES]
        files += [(f"{key.replace('_', ' ')} volume (NRRD)", self.result.volume_path(key))
                  for key in RESULT_VOLUME_KEYS]
        return [(label, path.relative_to(self.work_dir).as_posix()) for label, path in files
                if path is not None and path.is_file()]

    def close(self) -> None:
        """Stop any analysis and remove the work folder (the tab is gone)."""
        self.cancel()
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _colour_legend_of(volume_node):
    """The colour legend display node ``heatmap_display.show_colour_legend`` added, if any."""
    for index in range(volume_node.GetNumberOfDisplayNodes()):
        display = volume_node.GetNthDisplayNode(index)
        if display is not None and display.IsA("vtkMRMLColorLegendDisplayNode"):
            return display
    return None
