"""Per-slice COVID-19 scores: a table node, a plot of score against slice position, and
"most suspicious / next / previous" navigation over the key slices.

Slices outside the lungs have no score (``None`` in result.json); they are stored as NaN
so the plot shows a gap instead of a misleading zero.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import vtk

COLUMN_INDEX = "slice"
COLUMN_Z = "z_mm"
COLUMN_SCORE = "covid19"


def score_of(entry: dict) -> float:
    value = entry.get("covid19")
    return float("nan") if value is None else float(value)


def add_score_table(scene, per_slice: Sequence[dict], name: str):
    """Table node with one row per slice: index, z (mm), score (NaN where not scored)."""
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    table = table_node.GetTable()
    columns = []
    for column_name, array_class in ((COLUMN_INDEX, vtk.vtkIntArray), (COLUMN_Z, vtk.vtkDoubleArray),
                                     (COLUMN_SCORE, vtk.vtkDoubleArray)):
        column = array_class()
        column.SetName(column_name)
        column.SetNumberOfTuples(len(per_slice))
        columns.append(column)
    for row, entry in enumerate(per_slice):
        columns[0].SetValue(row, int(entry["index"]))
        columns[1].SetValue(row, float(entry.get("z_mm", row)))
        columns[2].SetValue(row, score_of(entry))
    for column in columns:
        table.AddColumn(column)
    table_node.Modified()
    return table_node


def add_score_plot(scene, table_node, name: str, threshold: Optional[float] = None):
    """Plot chart node: score against slice index (and the decision threshold as title text)."""
    series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", scene.GenerateUniqueName(f"{name} score"))
    series.SetAndObserveTableNodeID(table_node.GetID())
    series.SetXColumnName(COLUMN_INDEX)
    series.SetYColumnName(COLUMN_SCORE)
    series.SetPlotType(series.PlotTypeScatter)
    series.SetMarkerStyle(series.MarkerStyleCircle)
    series.SetColor(0.93, 0.35, 0.12)
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(name))
    chart.AddAndObservePlotSeriesNodeID(series.GetID())
    title = "COVID-19 score per slice"
    if threshold is not None:
        title += f" (decision threshold {threshold:.2f})"
    chart.SetTitle(title)
    chart.SetXAxisTitle("slice index")
    chart.SetYAxisTitle("score")
    chart.SetYAxisRangeAuto(False)
    chart.SetYAxisRange(0.0, 1.0)
    chart.SetLegendVisibility(False)
    return chart


def show_chart_in_plot_views(scene, chart_node) -> int:
    """Show ``chart_node`` in every plot view of the scene; returns how many views."""
    count = scene.GetNumberOfNodesByClass("vtkMRMLPlotViewNode")
    for i in range(count):
        scene.GetNthNodeByClass(i, "vtkMRMLPlotViewNode").SetPlotChartNodeID(chart_node.GetID())
    return count


def most_suspicious_slice(per_slice: Sequence[dict], key_slices: Sequence[int] = ()) -> Optional[int]:
    """Index of the highest-scoring slice (the first key slice when the core ranked them)."""
    if key_slices:
        return int(key_slices[0])
    scored = [(score_of(e), int(e["index"])) for e in per_slice if not math.isnan(score_of(e))]
    if not scored:
        return None
    return max(scored)[1]


def neighbour_key_slice(key_slices: Sequence[int], current: Optional[int], step: int) -> Optional[int]:
    """Next (``step=+1``) or previous (``-1``) key slice in slice order from ``current``.

    Wraps around, so repeated clicks cycle through all key slices.
    """
    ordered = sorted({int(k) for k in key_slices})
    if not ordered:
        return None
    if current is None:
        return ordered[0] if step > 0 else ordered[-1]
    if step > 0:
        later = [k for k in ordered if k > current]
        return later[0] if later else ordered[0]
    earlier = [k for k in ordered if k < current]
    return earlier[-1] if earlier else ordered[-1]
