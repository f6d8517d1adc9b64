"""The report's key-slice overlay has the same pixels as Slicer's own slice-view blend.

Slicer's vtkMRMLSliceLogic composites the scene exactly as the module sets it up (lung
window, CovidCT-Inferno table, threshold, foreground opacity); the report reproduces
that with numpy.  Here both are computed for the same voxels and compared.
"""

import inspect

import numpy as np
import pytest

from slicer_scene_helpers import axial_phantom, make_slicer_scene

from CovidCTLib import compare_layout, heatmap_display, slice_render, volume_nodes
from covidct.report import figures

pytestmark = pytest.mark.slicer

HOT_SLICE = 5
# (rows j, columns i, heat value): full evidence, medium evidence, below the threshold.
BLOCKS = [((slice(10, 20), slice(5, 13)), 1.0), ((slice(10, 20), slice(19, 27)), 0.6),
          ((slice(22, 26), slice(19, 27)), 0.2)]


def test_report_defaults_are_the_slicer_module_defaults():
    configure = inspect.signature(heatmap_display.configure_heatmap_display).parameters
    assign = inspect.signature(compare_layout.assign_compare_layers).parameters
    assert configure["threshold"].default == pytest.approx(figures.HEAT_LOWER_THRESHOLD)
    assert assign["heatmap_opacity"].default == pytest.approx(figures.HEAT_OPACITY)
    assert heatmap_display.COLOUR_TABLE_NAME == figures.HEAT_COLORMAP
    assert heatmap_display.DEFAULT_COLOUR_TABLE_FILE.is_file()


def test_numpy_blend_equals_slicer_blend():
    setup = make_slicer_scene()
    phantom = axial_phantom()
    original = volume_nodes.add_volume_node_from_ct(setup.scene, phantom, "original")
    volume_nodes.set_lung_window(original)
    heat_voxels = np.zeros(phantom.shape, np.float32)
    for (rows, cols), value in BLOCKS:
        heat_voxels[HOT_SLICE, rows, cols] = value
    heat = volume_nodes.add_volume_node_from_ct(setup.scene, phantom.with_voxels(heat_voxels), "heat")
    heatmap_display.configure_heatmap_display(heat, heatmap_display.load_colour_table(setup.scene))
    compare_layout.assign_compare_layers(setup.scene, original, None, heat)
    logic = setup.slice_logics["Red"]
    logic.FitSliceToAll()
    compare_layout.jump_to_slice(compare_layout.compare_slice_nodes(setup.scene), original, HOT_SLICE)
    rgba = slice_render.blended_slice_rgba(logic).astype(float) / 255.0
    xy_to_ras = np.array([[logic.GetSliceNode().GetXYToRAS().GetElement(r, c) for c in range(4)]
                          for r in range(4)])
    ras_to_xy = np.linalg.inv(xy_to_ras)
    ijk_to_ras = phantom.ijk_to_ras()
    ours = figures.blend_like_slicer(phantom.voxels[HOT_SLICE], heat_voxels[HOT_SLICE])
    checked = 0
    for (rows, cols), _ in BLOCKS + [((slice(6, 26), slice(15, 17)), 0.0)]:  # + soft tissue, no heat
        j = (rows.start + rows.stop - 1) // 2
        i = (cols.start + cols.stop - 1) // 2
        x, y = (ras_to_xy @ (ijk_to_ras @ np.array([i, j, HOT_SLICE, 1.0])))[:2]
        row, col = int(round(rgba.shape[0] - 1 - y)), int(round(x))
        assert np.allclose(rgba[row, col, :3], ours[j, i], atol=3 / 255), (i, j, rgba[row, col], ours[j, i])
        checked += 1
    assert checked == 4
    setup.close()
