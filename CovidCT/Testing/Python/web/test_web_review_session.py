"""The web app's session logic on a real slicer-core scene (no browser, no trame):
it drives the same ``CovidCTLib`` functions as the Slicer module."""

from __future__ import annotations

import pytest

from slicer_scene_helpers import axial_phantom, make_slicer_scene, write_fake_result

from CovidCTLib import compare_layout
from covidct_web.review_session import ReviewSession

pytestmark = pytest.mark.slicer

HOT_SLICE = 5


@pytest.fixture
def reviewed(tmp_path):
    """A session with the phantom open and a result imported as an analysis would."""
    setup = make_slicer_scene()
    session = ReviewSession(setup.scene, tmp_path / "session")
    phantom = axial_phantom()
    opened = session.show_scan(phantom)
    assert opened.shape_kji == phantom.voxels.shape
    run_dir = session.work_dir / "run-1" / "output"
    write_fake_result(run_dir, phantom, hot_slice=HOT_SLICE)
    from CovidCTLib import analysis_run

    session._on_imported(*analysis_run.import_results(setup.scene, run_dir, session.input_node))
    yield setup, session
    setup.close()


def test_compare_views_show_original_enhanced_and_the_heatmap(reviewed):
    setup, session = reviewed
    original, enhanced = compare_layout.compare_composite_nodes(setup.scene)
    assert original.GetBackgroundVolumeID() == session.input_node.GetID()
    assert enhanced.GetBackgroundVolumeID() == session.nodes.enhanced.GetID()
    assert {c.GetForegroundVolumeID() for c in (original, enhanced)} == {session.nodes.heatmap.GetID()}


def test_heatmap_switch_opacity_and_threshold(reviewed):
    setup, session = reviewed
    session.set_heatmap(visible=False)
    assert all(c.GetForegroundOpacity() == 0.0 for c in compare_layout.compare_composite_nodes(setup.scene))
    session.set_heatmap(visible=True, opacity=0.7, threshold=0.5)
    assert all(c.GetForegroundOpacity() == pytest.approx(0.7)
               for c in compare_layout.compare_composite_nodes(setup.scene))
    assert session.nodes.heatmap.GetDisplayNode().GetLowerThreshold() == pytest.approx(0.5)


def test_navigation_and_the_slice_shown(reviewed):
    _, session = reviewed
    assert session.jump_to_most_suspicious() == session.key_slices[0]
    assert session.slice_shown() == session.key_slices[0]
    assert session.jump_to_slice(2) == 2 and session.slice_shown() == 2
    later = session.step_key_slice(+1)
    assert later == min(k for k in session.key_slices if k > 2)


def test_window_presets(reviewed):
    _, session = reviewed
    session.set_window("mediastinum")
    display = session.input_node.GetDisplayNode()
    assert (display.GetWindow(), display.GetLevel()) == (350.0, 40.0)
    assert session.nodes.enhanced.GetDisplayNode().GetWindow() == 350.0
    with pytest.raises(ValueError, match="Unknown window preset"):
        session.set_window("bone")


def test_downloads_stay_in_the_work_folder_and_close_removes_it(reviewed):
    _, session = reviewed
    names = {path.split("/")[-1] for _, path in session.downloads()}
    assert {"result.json", "heatmap.nrrd", "lung_mask.nrrd", "enhanced.nrrd"} <= names
    assert all(not path.startswith(("/", "..")) for _, path in session.downloads())
    session.close()
    assert not session.work_dir.exists()


def test_opening_another_scan_removes_the_previous_results(reviewed):
    setup, session = reviewed
    old = [n.GetID() for n in session.nodes.all_nodes] + [session.input_node.GetID()]
    session.show_scan(axial_phantom())
    assert all(setup.scene.GetNodeByID(node_id) is None for node_id in old)
    assert session.result is None and session.key_slices == []
