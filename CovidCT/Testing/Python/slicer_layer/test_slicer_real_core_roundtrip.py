"""The real core and the real MRML side together: ``covidct analyze`` run by the module's
process runner on the bundled sample, its output imported into a slicer-core scene.

Every other slicer test feeds the import a hand-written result folder; this one proves the
two halves agree on the actual result.json and volumes the core writes.
"""

import numpy as np
import pytest

from slicer_scene_helpers import make_slicer_scene

from CovidCTLib import analysis_process, result_import, volume_nodes
from covidct.io import load_ct

pytestmark = pytest.mark.slicer


def test_real_analysis_imports_onto_the_input_geometry(tmp_path, sample_scan):
    command = analysis_process.analyze_command(sample_scan, tmp_path / "out", device="cpu", enhance="off")
    process = analysis_process.AnalysisProcess(command, env=analysis_process.core_environment())
    state = process.start().wait(timeout_s=300)
    assert state == analysis_process.AnalysisState.DONE, process.error_message
    assert process.progress == pytest.approx(1.0) and process.stage

    setup = make_slicer_scene()
    try:
        ct = load_ct(sample_scan)
        input_node = volume_nodes.add_volume_node_from_ct(setup.scene, ct, "sample")
        before = volume_nodes.array_from_volume_node(input_node).copy()
        result = result_import.read_result(tmp_path / "out")
        nodes = result_import.import_result(setup.scene, result, input_node)

        assert result.decision in ("COVID-19", "non-COVID")
        assert nodes.enhanced is None  # enhancement was turned off: nothing invented
        heat = volume_nodes.ct_volume_from_node(nodes.heatmap)
        assert heat.shape == ct.shape
        assert np.allclose(heat.ijk_to_ras(), ct.ijk_to_ras(), atol=1e-4)
        assert float(heat.voxels.max()) == pytest.approx(1.0, abs=1e-5)
        mask = load_ct(tmp_path / "out" / "lung_mask.nrrd").voxels > 0
        assert not np.any(heat.voxels[~mask]), "heatmap only inside the lungs"
        np.testing.assert_array_equal(volume_nodes.array_from_volume_node(input_node), before)
    finally:
        setup.close()
