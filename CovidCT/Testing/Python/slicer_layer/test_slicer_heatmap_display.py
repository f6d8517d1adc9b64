"""Shipped colour table and heatmap display settings on a real MRML scene."""

import numpy as np
import pytest

from slicer_scene_helpers import axial_phantom, make_slicer_scene

from CovidCTLib import heatmap_display, volume_nodes

pytestmark = pytest.mark.slicer


def _table_rows():
    rows = []
    for line in heatmap_display.DEFAULT_COLOUR_TABLE_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append([int(v) for v in (line.split()[0], *line.split()[2:6])])
    return np.array(rows)


def test_colour_table_file_has_256_opaque_entries_dark_to_bright():
    rows = _table_rows()
    assert rows.shape == (256, 5)
    np.testing.assert_array_equal(rows[:, 0], np.arange(256))
    assert np.all(rows[:, 4] == 255)
    lightness = rows[:, 1:4] @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.diff(lightness) > -1.0)  # perceptual map: lightness never goes down
    assert lightness[0] < 10 and lightness[-1] > 200


def test_colour_table_node_holds_the_file_values():
    scene = make_slicer_scene().scene
    node = heatmap_display.load_colour_table(scene)
    assert node.GetName() == heatmap_display.COLOUR_TABLE_NAME
    assert node.GetNumberOfColors() == 256
    rows = _table_rows()
    for index in (0, 100, 255):
        rgba = [0.0] * 4
        node.GetColor(index, rgba)
        np.testing.assert_allclose(np.array(rgba[:3]) * 255, rows[index, 1:4], atol=0.5)
    # Loading twice gives the same node, not a second copy.
    assert heatmap_display.load_colour_table(scene) is node
    assert scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode") >= 1
    assert len([n for n in [scene.GetNthNodeByClass(i, "vtkMRMLColorTableNode") for i in
                range(scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode"))]
                if n.GetName() == heatmap_display.COLOUR_TABLE_NAME]) == 1


def test_heatmap_display_uses_table_fixed_window_and_threshold():
    scene = make_slicer_scene().scene
    phantom = axial_phantom()
    heat = volume_nodes.add_volume_node_from_ct(scene, phantom.with_voxels(
        np.linspace(0, 1, phantom.voxels.size, dtype=np.float32).reshape(phantom.shape)), "heat")
    colour = heatmap_display.load_colour_table(scene)
    heatmap_display.configure_heatmap_display(heat, colour, threshold=0.35)
    display = heat.GetDisplayNode()
    assert display.GetColorNodeID() == colour.GetID()
    assert not display.GetAutoWindowLevel()
    assert display.GetWindow() == pytest.approx(1.0) and display.GetLevel() == pytest.approx(0.5)
    assert display.GetApplyThreshold()
    assert display.GetLowerThreshold() == pytest.approx(0.35)
    heatmap_display.set_heatmap_threshold(heat, 0.6)
    assert display.GetLowerThreshold() == pytest.approx(0.6)
    with pytest.raises(ValueError):
        heatmap_display.configure_heatmap_display(heat, colour, threshold=1.5)


def test_colour_legend_is_attached_to_the_heatmap():
    scene = make_slicer_scene().scene
    phantom = axial_phantom()
    heat = volume_nodes.add_volume_node_from_ct(scene, phantom.with_voxels(
        np.zeros(phantom.shape, np.float32)), "heat")
    heatmap_display.configure_heatmap_display(heat, heatmap_display.load_colour_table(scene))
    legend = heatmap_display.show_colour_legend(heat, "COVID-19 evidence")
    assert legend is not None
    assert legend.GetTitleText() == "COVID-19 evidence"
    assert legend.GetVisibility()
    assert legend.GetDisplayableNode() is heat
