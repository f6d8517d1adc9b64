"""The image Slicer would display (vtkMRMLSliceLogic blend) shows heat colour where the score is high."""

import numpy as np
import pytest

from slicer_scene_helpers import axial_phantom, make_slicer_scene

from CovidCTLib import compare_layout, heatmap_display, slice_render, volume_nodes

pytestmark = pytest.mark.slicer

HOT_SLICE = 5


def _hot_scene(opacity=0.6):
    setup = make_slicer_scene()
    scene = setup.scene
    phantom = axial_phantom()
    original = volume_nodes.add_volume_node_from_ct(scene, phantom, "original")
    volume_nodes.set_lung_window(original)
    heat_voxels = np.zeros(phantom.shape, np.float32)
    heat_voxels[HOT_SLICE, 10:20, 6:12] = 1.0
    heat = volume_nodes.add_volume_node_from_ct(scene, phantom.with_voxels(heat_voxels), "heat")
    heatmap_display.configure_heatmap_display(heat, heatmap_display.load_colour_table(scene), threshold=0.3)
    compare_layout.assign_compare_layers(scene, original, None, heat, heatmap_opacity=opacity)
    for logic in setup.slice_logics.values():
        logic.FitSliceToAll()
    return setup, phantom, original, heat


def _heat_pixels(rgba):
    """Grey CT pixels have R == G == B; inferno's hot end is yellow (blue far below red)."""
    rgb = rgba[:, :, :3].astype(int)
    return (rgb[:, :, 0] - rgb[:, :, 2]) > 30


def _pixels_to_ras(logic, rows, cols, height):
    xy_to_ras = np.array([[logic.GetSliceNode().GetXYToRAS().GetElement(r, c) for c in range(4)]
                          for r in range(4)])
    xy = np.stack([cols, height - 1 - rows, np.zeros_like(rows), np.ones_like(rows)]).astype(float)
    return (xy_to_ras @ xy)[:3].T


@pytest.mark.parametrize("view", ["Red", "Yellow"])
def test_heat_colour_only_where_the_score_is_high(view):
    setup, phantom, original, _ = _hot_scene()
    logic = setup.slice_logics[view]
    compare_layout.jump_to_slice(compare_layout.compare_slice_nodes(setup.scene), original, HOT_SLICE)
    rgba = slice_render.blended_slice_rgba(logic)
    hot = _heat_pixels(rgba)
    assert hot.sum() > 100
    # Every heat-coloured pixel lies on the hot block (in RAS), within one voxel.
    rows, cols = np.nonzero(hot)
    ras = _pixels_to_ras(logic, rows, cols, rgba.shape[0])
    ijk_to_ras = phantom.ijk_to_ras()
    corners = np.array([ijk_to_ras @ np.array([i, j, HOT_SLICE, 1.0]) for i in (6, 11) for j in (10, 19)])
    low, high = corners[:, :3].min(axis=0) - 1.0, corners[:, :3].max(axis=0) + 1.0
    assert np.all((ras[:, :2] >= low[:2]) & (ras[:, :2] <= high[:2]))
    # Away from the block the CT is shown unchanged (grey).
    grey = rgba[~hot][:, :3].astype(int)
    assert np.all(np.abs(grey[:, 0] - grey[:, 2]) <= 2)


def test_no_heat_colour_on_a_slice_without_evidence():
    setup, _, original, _ = _hot_scene()
    compare_layout.jump_to_slice(compare_layout.compare_slice_nodes(setup.scene), original, 1)
    assert _heat_pixels(slice_render.blended_slice_rgba(setup.slice_logics["Red"])).sum() == 0


def test_heatmap_toggle_off_removes_the_colour():
    setup, _, original, _ = _hot_scene()
    compare_layout.jump_to_slice(compare_layout.compare_slice_nodes(setup.scene), original, HOT_SLICE)
    compare_layout.set_heatmap_visible(setup.scene, False, 0.6)
    assert _heat_pixels(slice_render.blended_slice_rgba(setup.slice_logics["Red"])).sum() == 0
    compare_layout.set_heatmap_visible(setup.scene, True, 0.6)
    assert _heat_pixels(slice_render.blended_slice_rgba(setup.slice_logics["Red"])).sum() > 100


def test_higher_opacity_gives_stronger_colour():
    strengths = []
    for opacity in (0.3, 0.9):
        setup, _, original, _ = _hot_scene(opacity)
        compare_layout.jump_to_slice(compare_layout.compare_slice_nodes(setup.scene), original, HOT_SLICE)
        rgba = slice_render.blended_slice_rgba(setup.slice_logics["Red"]).astype(int)
        hot = _heat_pixels(rgba)
        strengths.append(np.median(rgba[hot][:, 0] - rgba[hot][:, 2]))
    assert strengths[1] > strengths[0]


def test_snapshot_png_is_written(tmp_path):
    setup, _, original, _ = _hot_scene()
    compare_layout.jump_to_slice(compare_layout.compare_slice_nodes(setup.scene), original, HOT_SLICE)
    path = slice_render.save_slice_png(setup.slice_logics["Red"], tmp_path / "red.png")
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(pixels, slice_render.blended_slice_rgba(setup.slice_logics["Red"])[:, :, :3])
