"""How the heatmap looks: shipped perceptual colour table, 0..1 window, transparent low scores.

The heatmap volume holds per-volume normalised evidence in [0, 1].  A fixed 0..1 window
(never auto window/level) keeps colours comparable between patients, and a lower
threshold makes weak evidence fully transparent so the CT underneath stays readable.
The defaults are the core's (:mod:`covidct.display`), which the PDF report draws with.
"""

from __future__ import annotations

import os
from pathlib import Path

import slicer

from covidct.display import HEAT_COLORMAP, HEAT_LOWER_THRESHOLD, HEAT_RANGE, colour_table_file

COLOUR_TABLE_NAME = HEAT_COLORMAP
DEFAULT_COLOUR_TABLE_FILE = colour_table_file(COLOUR_TABLE_NAME)


def load_colour_table(scene, path=DEFAULT_COLOUR_TABLE_FILE, name: str = COLOUR_TABLE_NAME):
    """The colour table node named ``name``, read from ``path`` the first time it is needed.

    Read through Slicer's own colour-table storage node, so the file is proven to be in
    the format Slicer's Colors module reads and saves.
    """
    existing = scene.GetFirstNodeByName(name)
    if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
        return existing
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Colour table {path} is missing; reinstall the CovidCT extension.")
    storage = slicer.vtkMRMLColorTableStorageNode()
    storage.SetFileName(os.fspath(path))
    colour = slicer.vtkMRMLColorTableNode()
    colour.SetName(name)
    if not storage.ReadData(colour):
        raise ValueError(f"{path} is not a valid Slicer colour table file.")
    colour.SetName(name)  # ReadData may rename it after the file
    scene.AddNode(colour)
    scene.AddNode(storage)
    colour.SetAndObserveStorageNodeID(storage.GetID())
    return colour


def configure_heatmap_display(heatmap_node, colour_node, threshold: float = HEAT_LOWER_THRESHOLD,
                              opacity: float = 1.0) -> None:
    """Colour table, fixed 0..1 window and transparent scores below ``threshold``.

    ``opacity`` here is the display node's own opacity (3D / single layer); the slice-view
    blending opacity lives on the composite nodes (see ``compare_layout``).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"Heatmap threshold must be within 0..1, got {threshold}.")
    display = heatmap_node.GetDisplayNode()
    if display is None:
        heatmap_node.CreateDefaultDisplayNodes()
        display = heatmap_node.GetDisplayNode()
    was_modifying = display.StartModify()
    display.SetAndObserveColorNodeID(colour_node.GetID())
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(*HEAT_RANGE)
    display.SetInterpolate(True)
    set_heatmap_threshold(heatmap_node, threshold)
    display.SetOpacity(float(opacity))
    display.EndModify(was_modifying)


def set_heatmap_threshold(heatmap_node, threshold: float) -> None:
    """Scores below ``threshold`` become transparent (display only; the data never change)."""
    display = heatmap_node.GetDisplayNode()
    display.SetAutoThreshold(False)
    display.SetApplyThreshold(True)
    display.SetLowerThreshold(float(threshold))
    display.SetUpperThreshold(max(1.0, float(threshold)) + 1e-6)


def show_colour_legend(heatmap_node, title: str = "COVID-19 evidence"):
    """Colour legend next to the heatmap (Slicer >= 5.0); ``None`` where the API is missing."""
    colour_logic = getattr(slicer, "vtkSlicerColorLogic", None)
    if colour_logic is None or not hasattr(colour_logic, "AddDefaultColorLegendDisplayNode"):
        return None
    scene = heatmap_node.GetScene()
    legend_class = getattr(slicer, "vtkMRMLColorLegendDisplayNode", None)
    if legend_class is None:
        return None
    if not scene.IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):
        # Registered by the Colors module in the application; not in a bare scene.
        scene.RegisterNodeClass(legend_class())
    legend = colour_logic.AddDefaultColorLegendDisplayNode(heatmap_node)
    if legend is None:
        return None
    legend.SetTitleText(title)
    legend.SetLabelFormat("%.1f")
    legend.SetVisibility(True)
    return legend
