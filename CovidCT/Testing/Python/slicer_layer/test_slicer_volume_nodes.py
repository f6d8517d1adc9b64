"""numpy/CTVolume <-> volume node on a real MRML scene: geometry must survive exactly."""

import numpy as np
import pytest

from slicer_scene_helpers import asymmetric_phantom, make_slicer_scene

from CovidCTLib import volume_nodes

pytestmark = pytest.mark.slicer


def test_node_ijk_to_ras_equals_ctvolume_ijk_to_ras():
    phantom = asymmetric_phantom()
    scene = make_slicer_scene().scene
    node = volume_nodes.add_volume_node_from_ct(scene, phantom, "phantom")
    np.testing.assert_allclose(volume_nodes.ijk_to_ras_of_node(node), phantom.ijk_to_ras(), atol=1e-9)
    # Slicer's own accessors agree too (origin and spacing are what the Volumes module shows).
    ras_origin = phantom.ijk_to_ras()[:3, 3]
    np.testing.assert_allclose(node.GetOrigin(), ras_origin, atol=1e-9)
    np.testing.assert_allclose(node.GetSpacing(), phantom.spacing_mm, atol=1e-9)


def test_voxel_ijk_maps_to_the_same_patient_point():
    phantom = asymmetric_phantom()
    scene = make_slicer_scene().scene
    node = volume_nodes.add_volume_node_from_ct(scene, phantom, "phantom")
    image = node.GetImageData()
    assert image.GetDimensions() == (phantom.shape[2], phantom.shape[1], phantom.shape[0])
    k, j, i = 4, 13, 21
    assert image.GetScalarComponentAsDouble(i, j, k, 0) == phantom.voxels[k, j, i]
    lps = phantom.ijk_to_lps() @ np.array([i, j, k, 1.0])
    ras = volume_nodes.ijk_to_ras_of_node(node) @ np.array([i, j, k, 1.0])
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-9)


def test_round_trip_back_to_ctvolume_is_exact():
    phantom = asymmetric_phantom()
    scene = make_slicer_scene().scene
    node = volume_nodes.add_volume_node_from_ct(scene, phantom, "phantom")
    back = volume_nodes.ct_volume_from_node(node)
    assert back.same_geometry(phantom, atol=1e-9)
    np.testing.assert_array_equal(back.voxels, phantom.voxels)
    assert back.voxels.dtype == phantom.voxels.dtype


def test_array_from_node_is_a_copy_so_callers_cannot_modify_the_input():
    phantom = asymmetric_phantom()
    scene = make_slicer_scene().scene
    node = volume_nodes.add_volume_node_from_ct(scene, phantom, "phantom")
    array = volume_nodes.array_from_volume_node(node)
    array[:] = 0
    assert node.GetImageData().GetScalarComponentAsDouble(3, 2, 1, 0) == phantom.voxels[1, 2, 3]


def test_enhanced_volume_gets_the_input_window_level():
    phantom = asymmetric_phantom()
    scene = make_slicer_scene().scene
    original = volume_nodes.add_volume_node_from_ct(scene, phantom, "original")
    volume_nodes.set_lung_window(original, 1400.0, -550.0)
    enhanced = volume_nodes.add_volume_node_from_ct(scene, phantom, "enhanced")
    volume_nodes.copy_window_level(original, enhanced)
    display = enhanced.GetDisplayNode()
    assert (display.GetWindow(), display.GetLevel()) == (1400.0, -550.0)
    assert not display.GetAutoWindowLevel()
    assert display.GetColorNodeID() == original.GetDisplayNode().GetColorNodeID()
