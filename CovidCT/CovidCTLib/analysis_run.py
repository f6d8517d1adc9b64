"""Start one analysis of a volume node and bring its results into the same scene.

Shared by both faces of CovidCT: the Slicer module (``CovidCT.py``) and the web app
(``covidct_web``).  Nothing here needs Qt or ``slicer.app``: the caller gives the scene,
the input node and the work folder, and polls the returned :class:`AnalysisProcess`
from the thread that owns the scene (Slicer's main thread, the web server's event loop).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

from covidct.display import HEAT_LOWER_THRESHOLD

from . import analysis_process, heatmap_display, result_import, volume_nodes
from .analysis_process import AnalysisProcess

INPUT_NAME = "input.nrrd"
OUTPUT_FOLDER = "output"
REPORT_NAME = "report.pdf"
REPORT_COMPANION_SUFFIXES = (".dcm", "_measurements_sr.dcm")

logger = logging.getLogger(__name__)


def write_input_volume(input_node, path) -> Path:
    """The input as NRRD for the core (voxels + geometry only: no patient identifiers)."""
    import SimpleITK as sitk

    from covidct.volume import to_sitk

    path = Path(path)
    sitk.WriteImage(to_sitk(volume_nodes.ct_volume_from_node(input_node)), str(path), True)
    return path


def import_results(scene, out_dir, input_node, colour_node=None,
                   heatmap_threshold: float = HEAT_LOWER_THRESHOLD):
    """Read ``out_dir/result.json`` and load its volumes as new nodes (input untouched)."""
    colour = colour_node or heatmap_display.load_colour_table(scene)
    result = result_import.read_result(out_dir)
    nodes = result_import.import_result(scene, result, input_node, colour, heatmap_threshold)
    return result, nodes


def start_analysis(scene, input_node, work_dir, *, device="auto", enhancement="auto", scale="auto",
                   dicom_files: Sequence[str] = (), owns_work_dir: bool = True,
                   colour_node=None, heatmap_threshold: float = HEAT_LOWER_THRESHOLD,
                   on_imported: Optional[Callable] = None, importer: Optional[Callable] = None,
                   start: bool = True) -> AnalysisProcess:
    """Write the input to ``work_dir``, start ``covidct analyze`` on it and return the run.

    When the run succeeds its ``poll()`` imports the results into ``scene`` and calls
    ``on_imported(result, nodes)``; ``importer(out_dir) -> (result, nodes)`` replaces the
    default import (the Slicer module reads its parameter node at that moment).
    ``dicom_files`` (the series the node came from) adds the DICOM report step.  With ``owns_work_dir`` the folder is removed if starting fails
    and by ``remove_work_dir()`` once the run is over.  ``start=False`` returns the run
    unstarted (a queue starts it later).
    """
    if input_node is None or input_node.GetImageData() is None:
        raise ValueError("Select a chest CT volume first.")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        input_path = write_input_volume(input_node, work_dir / INPUT_NAME)
        dicom_source = analysis_process.dicom_source_folder(list(dicom_files), work_dir)
    except BaseException:
        if owns_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
        raise
    out_dir = work_dir / OUTPUT_FOLDER
    command = analysis_process.analyze_command(input_path, out_dir, device, enhancement, scale,
                                               report=dicom_source is None)
    then = [] if dicom_source is None else [analysis_process.report_step(out_dir, dicom_source)]
    logger.info("CovidCT: running %s", " ".join(command)
                + "".join(" && " + " ".join(step.command) for step in then))

    def import_into_scene(process):
        if importer is not None:
            result, nodes = importer(process.out_dir)
        else:
            result, nodes = import_results(scene, process.out_dir, input_node, colour_node, heatmap_threshold)
        if on_imported is not None:
            on_imported(result, nodes)

    process = AnalysisProcess(command, env=analysis_process.core_environment(), cwd=str(work_dir),
                              on_success=import_into_scene, then=then, work_dir=work_dir, out_dir=out_dir,
                              owns_work_dir=owns_work_dir)
    return process.start() if start else process


def copy_report(source, destination) -> Path:
    """Copy a run's PDF report to ``destination`` and its DICOM companions, when there are any,
    next to it (``<name>.dcm``, ``<name>_measurements_sr.dcm``)."""
    source = Path(source) if source else None
    if source is None or not source.exists():
        raise ValueError("No report is available: run the analysis first.")
    destination = Path(destination)
    shutil.copyfile(source, destination)
    for suffix in REPORT_COMPANION_SUFFIXES:
        companion = source.with_name(source.stem + suffix)
        if companion.is_file():
            shutil.copyfile(companion, destination.with_name(destination.stem + suffix))
    return destination
