"""Import of a ``covidct analyze`` output folder (written here in the documented format)."""

import json

import numpy as np
import pytest

from slicer_scene_helpers import axial_phantom, make_slicer_scene, write_fake_result

from CovidCTLib import heatmap_display, lung_segmentation, result_import, volume_nodes

pytestmark = pytest.mark.slicer


def _scene_with_input(tmp_path, **kwargs):
    """A slicer-core scene holding the phantom as node "scan", and its result folder."""
    setup = make_slicer_scene()
    phantom = axial_phantom()
    write_fake_result(tmp_path, phantom, **kwargs)
    input_node = volume_nodes.add_volume_node_from_ct(setup.scene, phantom, "scan")
    return setup, setup.scene, phantom, input_node


def _import(tmp_path, **kwargs):
    setup, scene, phantom, input_node = _scene_with_input(tmp_path, **kwargs)
    volume_nodes.set_lung_window(input_node, 1600.0, -500.0)
    before = volume_nodes.array_from_volume_node(input_node)
    result = result_import.read_result(tmp_path)
    nodes = result_import.import_result(scene, result, input_node, heatmap_threshold=0.25)
    return setup, phantom, input_node, before, result, nodes


def test_result_fields_are_read(tmp_path):
    *_, result, _ = _import(tmp_path)
    assert result.decision == "COVID-19"
    assert result.covid_probability == pytest.approx(0.83)
    assert (result.sensitivity, result.specificity) == (0.8, 0.7)
    assert result.key_slices == [5, 7, 3]
    assert "sensitivity 0.80" in result.summary_text()


def test_heatmap_node_has_input_geometry_values_and_display(tmp_path):
    setup, phantom, input_node, _, _, nodes = _import(tmp_path)
    np.testing.assert_allclose(volume_nodes.ijk_to_ras_of_node(nodes.heatmap), phantom.ijk_to_ras(), atol=1e-6)
    heat = volume_nodes.array_from_volume_node(nodes.heatmap)
    assert heat.dtype == np.float32 and heat.max() == 1.0 and heat[5, 15, 8] == 1.0 and heat[4].max() == 0.0
    display = nodes.heatmap.GetDisplayNode()
    assert setup.scene.GetNodeByID(display.GetColorNodeID()).GetName() == heatmap_display.COLOUR_TABLE_NAME
    assert display.GetLowerThreshold() == pytest.approx(0.25)


def test_enhanced_volume_covers_the_same_extent_on_a_finer_grid(tmp_path):
    setup, phantom, input_node, _, _, nodes = _import(tmp_path)  # keep setup: it owns the scene
    enhanced = nodes.enhanced
    assert enhanced.GetImageData().GetDimensions() == (64, 64, 8)
    np.testing.assert_allclose(enhanced.GetSpacing(), (0.5, 0.5, 2.0))
    bounds_in, bounds_out = [0.0] * 6, [0.0] * 6
    input_node.GetRASBounds(bounds_in)
    enhanced.GetRASBounds(bounds_out)
    np.testing.assert_allclose(bounds_out, bounds_in, atol=1e-6)
    assert enhanced.GetDisplayNode().GetWindow() == 1600.0 and enhanced.GetDisplayNode().GetLevel() == -500.0


def test_input_node_is_never_modified(tmp_path):
    setup, phantom, input_node, before, _, nodes = _import(tmp_path)
    np.testing.assert_array_equal(volume_nodes.array_from_volume_node(input_node), before)
    np.testing.assert_allclose(volume_nodes.ijk_to_ras_of_node(input_node), phantom.ijk_to_ras())
    assert input_node.GetName() == "scan"
    assert input_node not in nodes.all_nodes


def test_lung_mask_becomes_a_segmentation_with_the_mask_voxel_count(tmp_path):
    setup, phantom, _, _, _, nodes = _import(tmp_path)
    assert lung_segmentation.segment_voxel_counts(nodes.lung_segmentation) == \
        {"Lungs": int((phantom.voxels < -500).sum())}


def test_lesion_map_becomes_a_named_segmentation_and_clean_lungs_get_none(tmp_path):
    setup, phantom, _, _, _, nodes = _import(tmp_path)
    assert lung_segmentation.segment_voxel_counts(nodes.lesion_segmentation) == \
        {"ground glass": 48, "consolidation": 12}
    assert nodes.lesion_segmentation in nodes.all_nodes
    segmentation = nodes.lesion_segmentation.GetSegmentation()
    colours = {segmentation.GetNthSegment(i).GetName(): tuple(round(c, 2) for c in segmentation.GetNthSegment(i).GetColor())
               for i in range(segmentation.GetNumberOfSegments())}
    assert colours == {"ground glass": lung_segmentation.LESION_COLOURS_RGB[1],
                       "consolidation": lung_segmentation.LESION_COLOURS_RGB[2]}
    clean_setup, *_, clean_nodes = _import(tmp_path / "clean", with_lesions=False)
    assert clean_nodes.lesion_segmentation is None and clean_nodes.lung_segmentation is not None


def test_scores_table_and_plot(tmp_path):
    setup, phantom, _, _, result, nodes = _import(tmp_path)
    table = nodes.score_table.GetTable()
    assert table.GetNumberOfRows() == phantom.num_slices
    scores = [table.GetValueByName(r, "covid19").ToDouble() for r in range(table.GetNumberOfRows())]
    assert np.isnan(scores[0])  # outside the lungs: no score, not zero
    assert scores[5] == pytest.approx(0.9)
    assert table.GetValueByName(3, "z_mm").ToDouble() == pytest.approx(result.per_slice[3]["z_mm"])
    series = setup.scene.GetNodeByID(nodes.score_chart.GetPlotSeriesNodeID())
    assert series.GetTableNodeID() == nodes.score_table.GetID()


def test_outputs_go_under_the_input_study_in_the_subject_hierarchy(tmp_path):
    setup, scene, phantom, input_node = _scene_with_input(tmp_path)
    sh = scene.GetSubjectHierarchyNode()
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "anonymous patient")
    study = sh.CreateStudyItem(patient, "chest CT study")
    input_item = sh.GetItemByDataNode(input_node) or sh.CreateItem(study, input_node)
    sh.SetItemParent(input_item, study)
    nodes = result_import.import_result(scene, result_import.read_result(tmp_path), input_node)
    assert sh.GetItemParent(nodes.folder_item) == study
    for node in nodes.all_nodes:
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == nodes.folder_item
    assert sh.GetItemParent(input_item) == study  # the input stays where it was


def test_without_enhanced_volume_nothing_is_invented(tmp_path):
    *_, nodes = _import(tmp_path, with_enhanced=False)
    assert nodes.enhanced is None and nodes.heatmap is not None


def test_missing_or_incompatible_result_gives_actionable_errors(tmp_path):
    with pytest.raises(result_import.ResultFormatError, match="without writing"):
        result_import.read_result(tmp_path)
    (tmp_path / "result.json").write_text(json.dumps({"decision": "COVID-19"}))
    with pytest.raises(result_import.ResultFormatError, match="versions do not match"):
        result_import.read_result(tmp_path)
    write_fake_result(tmp_path, axial_phantom())
    (tmp_path / "heatmap.nrrd").unlink()
    scene = make_slicer_scene().scene
    with pytest.raises(result_import.ResultFormatError, match="heatmap.nrrd"):
        result_import.import_result(scene, result_import.read_result(tmp_path), None)


def test_outputs_follow_the_input_parent_transform(tmp_path):
    setup, scene, phantom, input_node = _scene_with_input(tmp_path)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    matrix = transform.GetMatrixTransformToParent()
    matrix.SetElement(0, 3, 12.5)
    transform.SetMatrixTransformToParent(matrix)
    input_node.SetAndObserveTransformNodeID(transform.GetID())
    nodes = result_import.import_result(scene, result_import.read_result(tmp_path), input_node)
    for node in (nodes.enhanced, nodes.heatmap, nodes.lung_segmentation):
        assert node.GetTransformNodeID() == transform.GetID()
    bounds_in, bounds_heat = [0.0] * 6, [0.0] * 6
    input_node.GetRASBounds(bounds_in)  # world coordinates, transform applied
    nodes.heatmap.GetRASBounds(bounds_heat)
    np.testing.assert_allclose(bounds_heat, bounds_in, atol=1e-6)
