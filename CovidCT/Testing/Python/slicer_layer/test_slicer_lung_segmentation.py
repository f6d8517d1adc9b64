"""Lung mask -> segmentation node on a real MRML scene (Slicer's own import logic)."""

import numpy as np
import pytest

from slicer_scene_helpers import asymmetric_phantom, axial_phantom, make_slicer_scene

from CovidCTLib import lung_segmentation, volume_nodes

pytestmark = pytest.mark.slicer


def test_segment_has_exactly_the_mask_voxels():
    scene = make_slicer_scene().scene
    phantom = axial_phantom()
    mask = phantom.voxels < -500
    reference = volume_nodes.add_volume_node_from_ct(scene, phantom, "ct")
    node = lung_segmentation.segmentation_from_labelmap(scene, mask, phantom.ijk_to_ras(), "lungs",
                                                        reference_volume_node=reference)
    assert node.GetSegmentation().GetNumberOfSegments() == 1
    assert lung_segmentation.segment_voxel_counts(node) == {"Lungs": int(mask.sum())}
    # The temporary label map is gone: only the CT remains as a volume.
    assert scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 0


def test_two_labels_become_two_named_segments():
    scene = make_slicer_scene().scene
    phantom = asymmetric_phantom()
    labels = np.zeros(phantom.shape, np.uint8)
    labels[1:4, 2:9, 3:8] = 1
    labels[2:5, 10:15, 12:20] = 2
    node = lung_segmentation.segmentation_from_labelmap(
        scene, labels, phantom.ijk_to_ras(), "lungs", segment_names={1: "Right lung", 2: "Left lung"})
    counts = lung_segmentation.segment_voxel_counts(node)
    assert counts == {"Right lung": int((labels == 1).sum()), "Left lung": int((labels == 2).sum())}


def test_segmentation_geometry_matches_the_mask_geometry():
    scene = make_slicer_scene().scene
    phantom = asymmetric_phantom()
    labels = np.zeros(phantom.shape, np.uint8)
    labels[2, 5, 7] = 1  # a single voxel: its RAS position must be preserved
    node = lung_segmentation.segmentation_from_labelmap(scene, labels, phantom.ijk_to_ras(), "dot")
    bounds = [0.0] * 6
    node.GetRASBounds(bounds)
    centre = np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])
    expected = (phantom.ijk_to_ras() @ np.array([7, 5, 2, 1.0]))[:3]
    np.testing.assert_allclose(centre, expected, atol=1e-3)


def test_outline_only_so_ct_and_heatmap_stay_visible():
    scene = make_slicer_scene().scene
    phantom = axial_phantom()
    node = lung_segmentation.segmentation_from_labelmap(scene, phantom.voxels < -500, phantom.ijk_to_ras(), "l")
    display = node.GetDisplayNode()
    assert display.GetVisibility2DOutline() and not display.GetVisibility2DFill()
