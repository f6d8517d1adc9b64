"""Key-slice navigation (pure logic) and the plot shown in plot views."""

import pytest

from slicer_scene_helpers import make_slicer_scene

from CovidCTLib import slice_scores

pytestmark = pytest.mark.slicer

PER_SLICE = [{"index": 0, "z_mm": 0.0, "covid19": None, "in_lung": False},
             {"index": 1, "z_mm": 2.0, "covid19": 0.2, "in_lung": True},
             {"index": 2, "z_mm": 4.0, "covid19": 0.95, "in_lung": True},
             {"index": 3, "z_mm": 6.0, "covid19": 0.4, "in_lung": True}]


def test_most_suspicious_prefers_the_core_ranking_else_the_top_score():
    assert slice_scores.most_suspicious_slice(PER_SLICE, key_slices=[3, 2]) == 3
    assert slice_scores.most_suspicious_slice(PER_SLICE) == 2
    assert slice_scores.most_suspicious_slice([PER_SLICE[0]]) is None


def test_next_and_previous_cycle_through_key_slices_in_slice_order():
    keys = [12, 3, 7]
    assert slice_scores.neighbour_key_slice(keys, 3, +1) == 7
    assert slice_scores.neighbour_key_slice(keys, 7, +1) == 12
    assert slice_scores.neighbour_key_slice(keys, 12, +1) == 3
    assert slice_scores.neighbour_key_slice(keys, 3, -1) == 12
    assert slice_scores.neighbour_key_slice(keys, 5, -1) == 3
    assert slice_scores.neighbour_key_slice(keys, None, +1) == 3
    assert slice_scores.neighbour_key_slice([], 3, +1) is None


def test_chart_is_shown_in_every_plot_view():
    scene = make_slicer_scene().scene
    table = slice_scores.add_score_table(scene, PER_SLICE, "scores")
    chart = slice_scores.add_score_plot(scene, table, "scores", threshold=0.5)
    views = [scene.AddNewNodeByClass("vtkMRMLPlotViewNode") for _ in range(2)]
    views += [scene.GetNthNodeByClass(i, "vtkMRMLPlotViewNode")  # the compare layout's own plot view
              for i in range(scene.GetNumberOfNodesByClass("vtkMRMLPlotViewNode") - 2)]
    assert len(views) == 3
    assert slice_scores.show_chart_in_plot_views(scene, chart) == 3
    assert all(view.GetPlotChartNodeID() == chart.GetID() for view in views)
    assert "0.50" in chart.GetTitle()
