"""CovidCT.py's Logic on a real MRML scene: Analyze (with a stand-in core process) -> import ->
results stored in the parameter node -> display settings -> jump to slice; the DICOM report
for volumes from the DICOM database; work folders removed with the next analysis, scene close
and cleanup.

The desktop application cannot run here, so the few application/Qt pieces CovidCT.py imports
(``qt``, ``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper``, ``slicer.app``, and
``slicer.dicomDatabase`` in one test) are replaced by minimal stand-ins; every MRML object is
real.  The widget itself is covered by the
self-test in Slicer (CovidCTTest).
"""

import importlib
import sys
import textwrap
import types
import typing

import numpy as np
import pytest

from slicer_scene_helpers import MODULE_DIR, axial_phantom, make_slicer_scene

import slicer

from CovidCTLib import analysis_process, compare_layout, volume_nodes

pytestmark = pytest.mark.slicer


def _stand_in_modules(scene):
    qt = types.ModuleType("qt")
    qt.QTimer = object

    class _ScriptedBase:
        def __init__(self, *args, **kwargs):
            pass

        def getParameterNode(self):
            node = scene.GetFirstNodeByName("CovidCT")
            return node or scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "CovidCT")

    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleTest",
                 "ScriptedLoadableModuleLogic"):
        setattr(scripted, name, type(name, (_ScriptedBase,), {}))

    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.Choice = lambda values: ("choice", tuple(values))
    wrapper.WithinRange = lambda low, high: ("range", low, high)

    values_by_node = {}

    def parameter_node_wrapper(cls):
        """Typed attributes with the declared defaults, shared by every wrapper of the same node
        (as the real wrapper's values live in the node); no string serialisation."""
        names = typing.get_type_hints(cls, include_extras=True)

        def __init__(self, node):
            object.__setattr__(self, "parameterNode", node)
            values_by_node.setdefault(node.GetID(), {name: getattr(cls, name, None) for name in names})

        def __getattr__(self, name):
            values = values_by_node[self.parameterNode.GetID()]
            if name not in values:
                raise AttributeError(name)
            return values[name]

        def __setattr__(self, name, value):
            if name not in names:
                raise AttributeError(f"{cls.__name__} has no parameter {name}")
            values_by_node[self.parameterNode.GetID()][name] = value

        return type(cls.__name__, (), {"__init__": __init__, "__getattr__": __getattr__,
                                       "__setattr__": __setattr__})

    wrapper.parameterNodeWrapper = parameter_node_wrapper
    return {"qt": qt, "slicer.ScriptedLoadableModule": scripted, "slicer.parameterNodeWrapper": wrapper}


class _App:
    def __init__(self, temporary_path):
        self.temporaryPath = str(temporary_path)

    def connect(self, *args):
        pass

    def layoutManager(self):
        return None

    def testingEnabled(self):
        return True


@pytest.fixture
def module(tmp_path, monkeypatch):
    setup = make_slicer_scene()
    for name, stand_in in _stand_in_modules(setup.scene).items():
        monkeypatch.setitem(sys.modules, name, stand_in)
    monkeypatch.setattr(slicer, "app", _App(tmp_path), raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", setup.scene, raising=False)
    monkeypatch.syspath_prepend(str(MODULE_DIR))
    sys.modules.pop("CovidCT", None)
    covidct_module = importlib.import_module("CovidCT")
    yield covidct_module, setup
    setup.scene.Clear(0)  # as at the end of a session: the logics' work folders and observers go
    sys.modules.pop("CovidCT", None)
    setup.close()


def _stand_in_core(monkeypatch, tmp_path, script_body, builder="analyze_command"):
    """``builder`` (``analyze_command`` or ``report_command``) runs ``script_body`` instead of
    the real core, with the same arguments."""
    script = tmp_path / f"stand_in_{builder}.py"
    script.write_text(textwrap.dedent(script_body))
    real = getattr(analysis_process, builder)

    def command(*args, **kwargs):
        return [sys.executable, str(script)] + real(*args, **kwargs)[3:]

    monkeypatch.setattr(analysis_process, builder, command)


WRITES_RESULT = f"""
    import json, sys
    from pathlib import Path
    sys.path.insert(0, {str(MODULE_DIR / "Testing" / "Python")!r})
    from covidct.io import load_ct
    from slicer_scene_helpers import write_fake_result
    args = sys.argv
    assert args[args.index("--device") + 1] == "cpu" and args[args.index("--progress") + 1] == "json"
    volume = load_ct(args[args.index("analyze") + 1])
    sys.stderr.write(json.dumps({{"progress": 0.5, "stage": "classify"}}) + "\\n")
    write_fake_result(Path(args[args.index("-o") + 1]), volume)
"""

# ``covidct report OUT --dicom-source DIR`` stand-in: records which instances DIR holds.
WRITES_DICOM_REPORT = """
    import sys
    from pathlib import Path
    import pydicom
    args = sys.argv
    out, source = Path(args[args.index("report") + 1]), Path(args[args.index("--dicom-source") + 1])
    uids = sorted(str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in source.iterdir())
    (out / "report.pdf").write_bytes(b"%PDF-1.4 stand-in")
    (out / "report.dcm").write_text(" ".join(uids))
    (out / "report_measurements_sr.dcm").write_text("SR")
"""


def test_process_blocking_imports_results_into_the_parameter_node(module, tmp_path, monkeypatch):
    covidct_module, setup = module
    _stand_in_core(monkeypatch, tmp_path, WRITES_RESULT)
    phantom = axial_phantom()
    scan = volume_nodes.add_volume_node_from_ct(setup.scene, phantom, "scan")
    before = volume_nodes.array_from_volume_node(scan)

    logic = covidct_module.CovidCTLogic()
    process = logic.process(scan, device="cpu", waitForCompletion=True, timeoutSeconds=120)

    assert process.state == analysis_process.AnalysisState.DONE
    parameters = logic.getParameterNode()
    assert parameters.heatmapVolume is not None and parameters.enhancedVolume is not None
    assert parameters.lungSegmentation is not None and parameters.scoreTable is not None
    assert logic.keySlices(parameters) == [5, 7, 3]
    assert parameters.resultSummary.startswith("Decision: COVID-19")
    # The core was given the input with its exact geometry, and the input node is untouched.
    from covidct.io import load_ct

    written = load_ct(process.work_dir / "input.nrrd")
    assert written.same_geometry(phantom) and np.array_equal(written.voxels, phantom.voxels)
    np.testing.assert_array_equal(volume_nodes.array_from_volume_node(scan), before)
    # Not from the DICOM database: one step, and the core writes its own report.
    assert len(process.steps) == 1 and "--no-report" not in process.command


def test_failed_core_raises_with_its_message(module, tmp_path, monkeypatch):
    covidct_module, setup = module
    _stand_in_core(monkeypatch, tmp_path, """
        import sys
        sys.stderr.write("covidct analyze: error: no lungs found in this image; is it a chest CT?\\n")
        sys.exit(4)
    """)
    scan = volume_nodes.add_volume_node_from_ct(setup.scene, axial_phantom(), "scan")
    with pytest.raises(RuntimeError, match="no lungs found"):
        covidct_module.CovidCTLogic().process(scan, device="cpu", timeoutSeconds=120)
    assert setup.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0


def test_display_settings_and_jump_follow_the_parameter_node(module, tmp_path, monkeypatch):
    covidct_module, setup = module
    _stand_in_core(monkeypatch, tmp_path, WRITES_RESULT)
    phantom = axial_phantom()
    scan = volume_nodes.add_volume_node_from_ct(setup.scene, phantom, "scan")
    logic = covidct_module.CovidCTLogic()
    logic.process(scan, device="cpu", timeoutSeconds=120)
    parameters = logic.getParameterNode()
    compare_layout.assign_compare_layers(setup.scene, scan, parameters.enhancedVolume,
                                         parameters.heatmapVolume, parameters.heatmapOpacity)

    parameters.heatmapVisible = False
    logic.applyDisplaySettings(parameters)
    assert [c.GetForegroundOpacity() for c in compare_layout.compare_composite_nodes(setup.scene)] == [0, 0]
    parameters.heatmapVisible, parameters.heatmapOpacity, parameters.heatmapThreshold = True, 0.8, 0.55
    logic.applyDisplaySettings(parameters)
    assert [c.GetForegroundOpacity() for c in compare_layout.compare_composite_nodes(setup.scene)] == \
        pytest.approx([0.8, 0.8])
    assert parameters.heatmapVolume.GetDisplayNode().GetLowerThreshold() == pytest.approx(0.55)

    logic.jumpToSlice(parameters, 7)
    assert parameters.currentSlice == 7
    expected_z = phantom.ijk_to_ras()[2, 3] + 7 * phantom.spacing_mm[2]
    assert [logic_.GetSliceOffset() for logic_ in setup.slice_logics.values()] == \
        pytest.approx([expected_z, expected_z])


def test_save_report_copies_the_last_pdf(module, tmp_path):
    covidct_module, _ = module
    logic = covidct_module.CovidCTLogic()
    parameters = logic.getParameterNode()
    parameters.reportPath = ""
    with pytest.raises(ValueError, match="run the analysis first"):
        logic.saveReport(parameters, tmp_path / "copy.pdf")
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 test")
    parameters.reportPath = str(report)
    saved = logic.saveReport(parameters, tmp_path / "copy.pdf")
    assert saved.read_bytes() == b"%PDF-1.4 test"


def test_volume_from_the_dicom_database_gets_the_dicom_report(module, tmp_path, monkeypatch):
    """``DICOM.instanceUIDs`` -> the database's files -> ``covidct report --dicom-source`` after
    ``covidct analyze --no-report``; Save report also copies the DICOM files."""
    import pydicom
    from dicom_factory import write_series

    covidct_module, setup = module
    _stand_in_core(monkeypatch, tmp_path, WRITES_RESULT + '    assert "--no-report" in args\n')
    _stand_in_core(monkeypatch, tmp_path, WRITES_DICOM_REPORT, builder="report_command")
    series_folder = tmp_path / "dicom-database" / "study" / "series"
    files = write_series(series_folder)
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    by_uid = dict(zip(uids, map(str, files)))
    # ctkDICOMDatabase is a Qt object (not in slicer-core): the two members the logic uses.
    monkeypatch.setattr(slicer, "dicomDatabase", types.SimpleNamespace(
        isOpen=True, fileForInstance=lambda uid: by_uid.get(uid, "")), raising=False)
    scan = volume_nodes.add_volume_node_from_ct(setup.scene, axial_phantom(), "scan")
    scan.SetAttribute("DICOM.instanceUIDs", " ".join(uids))

    logic = covidct_module.CovidCTLogic()
    assert logic.dicomSourceFiles(scan) == [str(f) for f in files]
    process = logic.process(scan, device="cpu", timeoutSeconds=120)
    assert process.state == analysis_process.AnalysisState.DONE, process.error_message
    assert [step.stage for step in process.steps] == ["", "report"]
    assert process.steps[1].command[-1] == str(series_folder)  # the series folder as it is: nothing copied
    assert (process.out_dir / "report.dcm").read_text().split() == sorted(uids)
    parameters = logic.getParameterNode()
    assert parameters.reportPath == str(process.out_dir / "report.pdf")

    (tmp_path / "saved").mkdir()
    saved = logic.saveReport(parameters, tmp_path / "saved" / "CovidCT-P001.pdf")
    assert saved.read_bytes() == b"%PDF-1.4 stand-in"
    assert (tmp_path / "saved" / "CovidCT-P001.dcm").read_text().split() == sorted(uids)
    assert (tmp_path / "saved" / "CovidCT-P001_measurements_sr.dcm").read_text() == "SR"

    scan.SetAttribute("DICOM.instanceUIDs", " ".join(uids + ["1.2.3.not.in.the.database"]))
    assert logic.dicomSourceFiles(scan) == []  # a partial series is not referenced


def test_work_folders_go_with_the_next_analysis_scene_close_and_cleanup(module, tmp_path, monkeypatch):
    covidct_module, setup = module
    _stand_in_core(monkeypatch, tmp_path, WRITES_RESULT)
    scan = volume_nodes.add_volume_node_from_ct(setup.scene, axial_phantom(), "scan")
    logic = covidct_module.CovidCTLogic()
    first = logic.process(scan, device="cpu", timeoutSeconds=120)
    assert first.work_dir.is_dir() and first.work_dir.parent == tmp_path  # under slicer.app.temporaryPath
    parameters = logic.getParameterNode()
    (first.out_dir / "report.pdf").write_bytes(b"%PDF")
    parameters.reportPath = str(first.out_dir / "report.pdf")

    second = logic.startAnalysis(scan, device="cpu")  # not polled: stays busy
    assert not first.work_dir.exists() and second.work_dir.is_dir()
    assert parameters.reportPath == ""  # the removed report is not offered any more

    setup.scene.Clear(0)  # File > Close Scene
    assert second.state == analysis_process.AnalysisState.CANCELLED and not second.work_dir.exists()

    scan = volume_nodes.add_volume_node_from_ct(setup.scene, axial_phantom(), "scan")
    third = logic.startAnalysis(scan, device="cpu")
    chosen = logic.startAnalysis(scan, device="cpu", workDir=tmp_path / "chosen-by-the-caller")
    logic.cleanup()  # module cleanup: every run stopped, only the logic's own folders removed
    assert third.state == chosen.state == analysis_process.AnalysisState.CANCELLED
    assert not third.work_dir.exists() and (tmp_path / "chosen-by-the-caller" / "input.nrrd").is_file()
