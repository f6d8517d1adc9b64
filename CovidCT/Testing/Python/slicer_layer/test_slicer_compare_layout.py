"""Compare layout on real slice composite nodes: layers, opacity, linking, jump to slice."""

import numpy as np
import pytest

from slicer_scene_helpers import axial_phantom, make_slicer_scene

from CovidCTLib import compare_layout, heatmap_display, volume_nodes

pytestmark = pytest.mark.slicer


def _loaded_scene():
    setup = make_slicer_scene()
    scene = setup.scene
    phantom = axial_phantom()
    original = volume_nodes.add_volume_node_from_ct(scene, phantom, "original")
    enhanced = volume_nodes.add_volume_node_from_ct(scene, phantom, "enhanced")
    heat = volume_nodes.add_volume_node_from_ct(scene, phantom.with_voxels(
        np.zeros(phantom.shape, np.float32)), "heat")
    heatmap_display.configure_heatmap_display(heat, heatmap_display.load_colour_table(scene))
    return setup, phantom, original, enhanced, heat


def test_layout_is_registered_and_selected():
    setup = make_slicer_scene()
    layout = setup.layout_node
    assert layout.IsLayoutDescription(compare_layout.COMPARE_LAYOUT_ID)
    assert layout.GetViewArrangement() == compare_layout.COMPARE_LAYOUT_ID
    assert compare_layout.register_compare_layout(layout) == compare_layout.COMPARE_LAYOUT_ID  # idempotent
    assert 'singletontag="Yellow"' in layout.GetLayoutDescription(compare_layout.COMPARE_LAYOUT_ID)
    # The layout logic created the views the layout names, the score plot view included.
    views = {setup.scene.GetNthNodeByClass(i, "vtkMRMLAbstractViewNode").GetLayoutName()
             for i in range(setup.scene.GetNumberOfNodesByClass("vtkMRMLAbstractViewNode"))}
    assert {"Red", "Yellow", "PlotView1"} <= views


def test_original_left_enhanced_right_heatmap_on_both_with_opacity():
    setup, _, original, enhanced, heat = _loaded_scene()
    compare_layout.assign_compare_layers(setup.scene, original, enhanced, heat, heatmap_opacity=0.45)
    red, yellow = compare_layout.compare_composite_nodes(setup.scene)
    assert red.GetBackgroundVolumeID() == original.GetID()
    assert yellow.GetBackgroundVolumeID() == enhanced.GetID()
    for composite in (red, yellow):
        assert composite.GetForegroundVolumeID() == heat.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.45)
        assert composite.GetLinkedControl() and composite.GetHotLinkedControl()
    for slice_node in compare_layout.compare_slice_nodes(setup.scene):
        assert slice_node.GetOrientation() == "Axial"


def test_without_enhanced_volume_both_views_show_the_original():
    setup, _, original, _, heat = _loaded_scene()
    compare_layout.assign_compare_layers(setup.scene, original, None, heat)
    assert [c.GetBackgroundVolumeID() for c in compare_layout.compare_composite_nodes(setup.scene)] == \
        [original.GetID(), original.GetID()]


def test_heatmap_toggle_and_opacity_slider_act_on_both_views():
    setup, _, original, enhanced, heat = _loaded_scene()
    compare_layout.assign_compare_layers(setup.scene, original, enhanced, heat, heatmap_opacity=0.5)
    compare_layout.set_heatmap_visible(setup.scene, False, 0.5)
    assert [c.GetForegroundOpacity() for c in compare_layout.compare_composite_nodes(setup.scene)] == [0.0, 0.0]
    compare_layout.set_heatmap_visible(setup.scene, True, 0.7)
    assert [c.GetForegroundOpacity() for c in compare_layout.compare_composite_nodes(setup.scene)] == \
        pytest.approx([0.7, 0.7])
    with pytest.raises(ValueError):
        compare_layout.set_heatmap_opacity(setup.scene, 1.2)


def test_unlinking_turns_linked_control_off():
    setup, _, original, enhanced, heat = _loaded_scene()
    compare_layout.assign_compare_layers(setup.scene, original, enhanced, heat)
    compare_layout.set_views_linked(setup.scene, False)
    assert not any(c.GetLinkedControl() for c in compare_layout.compare_composite_nodes(setup.scene))


def test_jump_to_slice_moves_both_views_to_the_slice_z():
    setup, phantom, original, enhanced, heat = _loaded_scene()
    compare_layout.assign_compare_layers(setup.scene, original, enhanced, heat)
    for logic in setup.slice_logics.values():
        logic.FitSliceToAll()
    for index in (6, 2):
        point = compare_layout.jump_to_slice(compare_layout.compare_slice_nodes(setup.scene), original, index)
        expected_z = phantom.ijk_to_ras()[2, 3] + index * phantom.spacing_mm[2]
        assert point[2] == pytest.approx(expected_z)
        for logic in setup.slice_logics.values():
            assert logic.GetSliceOffset() == pytest.approx(expected_z)
            # The views pass through that slice: the slice index Slicer shows is ``index``.
            xy_to_ras = logic.GetSliceNode().GetXYToRAS()
            assert xy_to_ras.GetElement(2, 3) == pytest.approx(expected_z)


def test_jump_outside_the_volume_is_refused():
    setup, phantom, original, *_ = _loaded_scene()
    with pytest.raises(IndexError):
        compare_layout.jump_to_slice(compare_layout.compare_slice_nodes(setup.scene), original,
                                     phantom.num_slices)


def test_missing_view_gives_an_actionable_error():
    setup = make_slicer_scene(view_names=("Red",))
    with pytest.raises(LookupError, match="compare layout"):
        compare_layout.composite_node_for_view(setup.scene, "Yellow")


def test_jump_follows_a_parent_transform_of_the_volume():
    setup, phantom, original, enhanced, heat = _loaded_scene()
    transform = setup.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    matrix = transform.GetMatrixTransformToParent()
    matrix.SetElement(2, 3, 30.0)  # 30 mm superior
    transform.SetMatrixTransformToParent(matrix)
    original.SetAndObserveTransformNodeID(transform.GetID())
    point = compare_layout.jump_to_slice(compare_layout.compare_slice_nodes(setup.scene), original, 3)
    expected_z = phantom.ijk_to_ras()[2, 3] + 3 * phantom.spacing_mm[2] + 30.0
    assert point[2] == pytest.approx(expected_z)
    assert setup.slice_logics["Red"].GetSliceOffset() == pytest.approx(expected_z)
