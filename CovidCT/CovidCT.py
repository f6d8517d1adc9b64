"""CovidCT: COVID-19 analysis of chest CT in 3D Slicer.

Module (metadata, sample data), Widget (thin GUI over the logic), Logic (usable from
scripts without the GUI) and Test (self-test in the real application).  All MRML work is
done by the functions in ``CovidCTLib`` (tested with pytest on the slicer-core wheel);
inference runs in a separate process (``CovidCTLib.analysis_process``) so Slicer stays
responsive and Cancel stops everything at once.
"""

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Optional

import qt
import vtk

import slicer
from slicer import (vtkMRMLColorNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode,
                    vtkMRMLTableNode)
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

try:
    from slicer.i18n import tr as _
    from slicer.i18n import translate
except ImportError:  # Slicer < 5.4
    def _(text):
        return text

    def translate(context, text):
        return text

# The core package (``covidct``) and ``CovidCTLib`` live next to this file.
_MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
if _MODULE_DIR not in sys.path:
    sys.path.insert(0, _MODULE_DIR)

from CovidCTLib import (analysis_process, analysis_run, compare_layout, dependencies, heatmap_display,  # noqa: E402
                        slice_scores, volume_nodes)
from CovidCTLib.analysis_process import AnalysisProcess, AnalysisState  # noqa: E402
from covidct.display import HEAT_LOWER_THRESHOLD, HEAT_OPACITY  # noqa: E402

SAMPLE_FILE_NAME = "covidct-sample-P001-128.nrrd"


#
# Module
#

class CovidCT(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("CovidCT")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Chest Imaging")]
        self.parent.dependencies = []
        self.parent.contributors = ["CovidCT developers"]
        self.parent.helpText = _(
            "Enhances low-quality chest CT, estimates the probability of COVID-19 pneumonia, and shows "
            "where the evidence is as a heatmap over the original and the enhanced series side by side."
            "<p>Select a chest CT (Hounsfield units), press <b>Analyze</b> (press again to cancel). "
            "The input volume is never modified. Results: enhanced volume, heatmap (colour legend), "
            "lung segmentation, per-slice scores and a decision at the model card's threshold. "
            "Use <b>Most suspicious slice</b> / <b>Next</b> / <b>Previous</b> to move both linked views.</p>"
            "<p><b>For research use only. Not for clinical diagnosis.</b> Results must be reviewed by a "
            "qualified radiologist.</p>")
        self.parent.acknowledgementText = _(
            "Method based on the seed papers: GARCD (GAN-based enhancement of low-quality CT followed by a "
            "residual-network COVID-19 diagnosis); ai-corona (Yousefzadeh et al., radiologist-assistant "
            "deep learning framework for COVID-19 diagnosis in chest CT, PLOS ONE 2021) for slice-to-scan "
            "pooling and class-activation maps; and the COVID-CT-MD dataset (Afshar et al., Scientific Data "
            "8, 121 (2021), CC BY 4.0), from which the bundled sample scan is derived.")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Add the bundled low-resolution sample (COVID-CT-MD P001) to the Sample Data module."""
    import SampleData

    resources = Path(_MODULE_DIR) / "Resources"
    sample = resources / "SampleData" / SAMPLE_FILE_NAME
    if not sample.is_file():
        logging.warning(f"CovidCT sample scan {sample} is missing; not registered in Sample Data.")
        return
    # No load-type argument: it was renamed (loadFileType -> loadFileTypes) within 5.x, and
    # without one every version reads the .nrrd as a scalar volume.
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="CovidCT",
        sampleName="CovidCTSampleP001",
        thumbnailFileName=str(resources / "Icons" / "CovidCT.png"),
        uris=sample.as_uri(),
        fileNames=SAMPLE_FILE_NAME,
        nodeNames="CovidCTSampleP001",
    )


#
# Parameter node
#

@parameterNodeWrapper
class CovidCTParameterNode:
    """Everything the module needs to reopen a saved scene as it was."""

    inputVolume: vtkMRMLScalarVolumeNode
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    enhancement: Annotated[str, Choice(["auto", "on", "off"])] = "auto"
    scale: Annotated[str, Choice(["auto", "1", "2", "4"])] = "auto"
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = HEAT_OPACITY
    heatmapThreshold: Annotated[float, WithinRange(0.0, 1.0)] = HEAT_LOWER_THRESHOLD
    heatmapVisible: bool = True
    linkViews: bool = True
    colourMap: vtkMRMLColorNode
    enhancedVolume: vtkMRMLScalarVolumeNode
    heatmapVolume: vtkMRMLScalarVolumeNode
    lungSegmentation: vtkMRMLSegmentationNode
    lesionSegmentation: vtkMRMLSegmentationNode
    scoreTable: vtkMRMLTableNode
    resultSummary: str = ""
    keySlices: str = ""  # comma-separated slice indices, most suspicious first
    reportPath: str = ""  # report.pdf of the last analysis (its work folder, removed with the next one)
    currentSlice: int = -1


#
# Widget
#

class CovidCTWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    POLL_INTERVAL_MS = 200

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._process: Optional[AnalysisProcess] = None
        self._logLinesShown = 0
        self._pollTimer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CovidCT.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = CovidCTLogic()
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(self.POLL_INTERVAL_MS)
        self._pollTimer.connect("timeout()", self.onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.analyzeButton.connect("clicked(bool)", self.onAnalyzeButton)
        self.ui.heatmapToggleButton.connect("toggled(bool)", self.onHeatmapToggled)
        self.ui.mostSuspiciousButton.connect("clicked(bool)", self.onMostSuspiciousSlice)
        self.ui.nextSliceButton.connect("clicked(bool)", lambda: self.onStepKeySlice(+1))
        self.ui.previousSliceButton.connect("clicked(bool)", lambda: self.onStepKeySlice(-1))
        self.ui.compareLayoutButton.connect("clicked(bool)", self.onShowCompare)
        self.ui.saveReportButton.connect("clicked(bool)", self.onSaveReport)
        self.ui.progressBar.hide()

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._process is not None and self._process.state.busy:
            self._process.cancel()
        if self._pollTimer is not None:
            self._pollTimer.stop()
        if self.logic is not None:
            self.logic.cleanup()  # the analyses' work folders
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        if self._process is not None and self._process.state.busy:
            self._process.cancel()
            self._onProcessFinished()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                self._parameterNode.inputVolume = firstVolume
        if not self._parameterNode.colourMap:
            self._parameterNode.colourMap = heatmap_display.load_colour_table(slicer.mrmlScene)

    def setParameterNode(self, inputParameterNode: Optional[CovidCTParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    # -- parameter node -> GUI and views ------------------------------------------------
    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        parameters = self._parameterNode
        if parameters is None:
            return
        running = self._process is not None and self._process.state.busy
        if running:
            self.ui.analyzeButton.toolTip = _("Stop the running analysis")
            self.ui.analyzeButton.enabled = True
        elif parameters.inputVolume:
            self.ui.analyzeButton.toolTip = _("Analyse the selected chest CT")
            self.ui.analyzeButton.enabled = True
        else:
            self.ui.analyzeButton.toolTip = _("Select a chest CT volume first")
            self.ui.analyzeButton.enabled = False

        self.ui.resultLabel.text = parameters.resultSummary or _("No analysis yet.")
        hasResults = bool(parameters.heatmapVolume)
        for button in (self.ui.mostSuspiciousButton, self.ui.nextSliceButton, self.ui.previousSliceButton):
            button.enabled = hasResults and bool(parameters.keySlices)
        self.ui.compareLayoutButton.enabled = hasResults
        self.ui.saveReportButton.enabled = hasResults and bool(parameters.reportPath)
        self.ui.heatmapToggleButton.enabled = hasResults
        wasBlocked = self.ui.heatmapToggleButton.blockSignals(True)
        self.ui.heatmapToggleButton.checked = parameters.heatmapVisible
        self.ui.heatmapToggleButton.blockSignals(wasBlocked)
        self.ui.heatmapToggleButton.text = _("Heatmap on") if parameters.heatmapVisible else _("Heatmap off")
        self.ui.sliceLabel.text = (_("Showing slice {index}").format(index=parameters.currentSlice)
                                   if parameters.currentSlice >= 0 and hasResults else "")
        self.logic.applyDisplaySettings(parameters)

    # -- user actions -------------------------------------------------------------------
    def onAnalyzeButton(self) -> None:
        if self._process is not None and self._process.state.busy:
            self._process.cancel()
            self._onProcessFinished()
            return
        with slicer.util.tryWithErrorDisplay(_("The analysis could not be started."), waitCursor=True):
            if not dependencies.ensure_core_dependencies(self._confirm):
                return
            parameters = self._parameterNode
            self.ui.logTextEdit.clear()
            self._logLinesShown = 0
            self._process = self.logic.startAnalysis(
                parameters.inputVolume, parameters.device, parameters.enhancement, parameters.scale,
                onImported=self._onImported)
            if self._process.state.finished:  # could not even start
                self._onProcessFinished()
                return
            self.ui.analyzeButton.text = _("Cancel")
            self.ui.progressBar.value = 0
            self.ui.progressBar.show()
            self.ui.stageLabel.text = _("Starting...")
            self._pollTimer.start()
            self._onParameterNodeModified()

    @staticmethod
    def _confirm(message: str) -> bool:
        if slicer.app.testingEnabled():
            return True
        return slicer.util.confirmOkCancelDisplay(message, windowTitle=_("CovidCT"))

    def onPoll(self) -> None:
        process = self._process
        if process is None:
            self._pollTimer.stop()
            return
        state = process.poll()
        self._showProgress(process)
        if state.finished:
            self._onProcessFinished()

    def _showProgress(self, process: AnalysisProcess) -> None:
        self.ui.progressBar.value = int(round(process.progress * 100))
        stage = process.stage.replace("_", " ") if process.stage else process.state.value
        self.ui.stageLabel.text = _("{stage} ({seconds:.0f} s)").format(stage=stage.capitalize(),
                                                                        seconds=process.elapsed_s)
        for line in process.log_lines[self._logLinesShown:]:
            self.ui.logTextEdit.appendPlainText(line)
        self._logLinesShown = len(process.log_lines)

    def _onProcessFinished(self) -> None:
        self._pollTimer.stop()
        process = self._process
        self._showProgress(process)
        self.ui.analyzeButton.text = _("Analyze")
        self.ui.progressBar.hide()
        if process.state == AnalysisState.DONE:
            self.ui.stageLabel.text = _("Done in {seconds:.0f} s.").format(seconds=process.elapsed_s)
        elif process.state == AnalysisState.CANCELLED:
            self.ui.stageLabel.text = _("Cancelled. Press Analyze to run again.")
        elif process.state == AnalysisState.FAILED:
            self.ui.stageLabel.text = _("Failed: see the message and the log.")
            self.ui.logCollapsibleButton.collapsed = False
            if not slicer.app.testingEnabled():
                slicer.util.errorDisplay(_("The analysis failed: {message}").format(message=process.error_message),
                                         detailedText="\n".join(process.log_lines[-200:]))
        self._onParameterNodeModified()

    def _onImported(self, result, nodes) -> None:
        """Runs in the polling (main) thread once the process succeeded and results are loaded."""
        parameters = self._parameterNode
        self.logic.storeResults(parameters, result, nodes)
        self.logic.showCompare(parameters)
        self.onMostSuspiciousSlice()

    def onHeatmapToggled(self, checked: bool) -> None:
        self._parameterNode.heatmapVisible = bool(checked)

    def onShowCompare(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot show the comparison."), waitCursor=True):
            self.logic.showCompare(self._parameterNode)

    def onSaveReport(self) -> None:
        destination = qt.QFileDialog.getSaveFileName(
            slicer.util.mainWindow(), _("Save the CovidCT report"), "CovidCT-report.pdf", "PDF (*.pdf)")
        if not destination:
            return
        with slicer.util.tryWithErrorDisplay(_("The report could not be saved."), waitCursor=True):
            self.logic.saveReport(self._parameterNode, destination)

    def onMostSuspiciousSlice(self) -> None:
        keys = self.logic.keySlices(self._parameterNode)
        if keys:
            self._jumpTo(keys[0])

    def onStepKeySlice(self, step: int) -> None:
        parameters = self._parameterNode
        current = parameters.currentSlice if parameters.currentSlice >= 0 else None
        target = slice_scores.neighbour_key_slice(self.logic.keySlices(parameters), current, step)
        if target is not None:
            self._jumpTo(target)

    def _jumpTo(self, index: int) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot move the views to slice {index}.").format(index=index)):
            self.logic.jumpToSlice(self._parameterNode, index)


#
# Logic
#

class CovidCTLogic(ScriptedLoadableModuleLogic, VTKObservationMixin):
    """Analysis and display, usable from the Python console without the module GUI::

        logic = CovidCTLogic()
        process = logic.process(volumeNode, device="cpu")   # blocks; raises on failure

    Each analysis works in a new folder under Slicer's temporary folder (input NRRD, result
    volumes, report). The logic removes the folders it made when the next analysis starts,
    when the scene closes and in :meth:`cleanup`; the results are in the scene by then.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        VTKObservationMixin.__init__(self)
        self._runs: list = []  # AnalysisProcess objects started here, running or with a folder to remove

    def cleanup(self) -> None:
        """Stop this logic's running analyses and remove every work folder it made."""
        for run in self._runs:
            if run.state.busy:
                run.cancel()
        self.removeWorkFolders()

    def removeWorkFolders(self) -> None:
        """Remove the work folders this logic made for analyses that are over (running ones stay)."""
        self._runs = [run for run in self._runs
                      if run.state.busy or (run.owns_work_dir and not run.remove_work_dir())]
        if not self._runs:
            self.removeObservers(self._onSceneStartClose)

    def _onSceneStartClose(self, caller, event) -> None:
        self.cleanup()

    def getParameterNode(self):
        return CovidCTParameterNode(super().getParameterNode())

    # -- running ------------------------------------------------------------------------
    @staticmethod
    def writeInputVolume(inputVolume, path: Path) -> Path:
        """The input as NRRD for the core (voxels + geometry only: no patient identifiers)."""
        return analysis_run.write_input_volume(inputVolume, path)

    @staticmethod
    def dicomSourceFiles(inputVolume) -> list:
        """Files of the series ``inputVolume`` was loaded from through Slicer's DICOM database
        (its ``DICOM.instanceUIDs``); empty for other volumes or when files are gone."""
        uids = inputVolume.GetAttribute("DICOM.instanceUIDs")
        if not uids or getattr(slicer, "dicomDatabase", None) is None or not slicer.dicomDatabase.isOpen:
            return []
        return analysis_process.dicom_series_files(uids, slicer.dicomDatabase.fileForInstance)

    def startAnalysis(self, inputVolume, device="auto", enhancement="auto", scale="auto",
                      onImported=None, workDir=None) -> AnalysisProcess:
        """Start ``covidct analyze`` in a separate process; poll the returned object.

        When it succeeds, ``poll()`` imports the results into the scene and calls
        ``onImported(result, nodes)``. A volume from the DICOM database also gets the DICOM
        report files (Encapsulated PDF, measurement SR) that reference its series. Without
        ``workDir`` the run gets a new temporary folder, which this logic removes later.
        """
        if inputVolume is None or inputVolume.GetImageData() is None:
            raise ValueError(_("Select a chest CT volume first."))
        self.removeWorkFolders()
        parameters = self.getParameterNode()
        if parameters.reportPath and not Path(parameters.reportPath).is_file():
            parameters.reportPath = ""  # it was in a work folder just removed
        ownsWorkDir = workDir is None
        workDir = Path(tempfile.mkdtemp(prefix="CovidCT-", dir=slicer.app.temporaryPath) if ownsWorkDir
                       else workDir)
        process = analysis_run.start_analysis(
            slicer.mrmlScene, inputVolume, workDir, device=device, enhancement=enhancement, scale=scale,
            dicom_files=self.dicomSourceFiles(inputVolume), owns_work_dir=ownsWorkDir,
            importer=lambda outDir: self.importResults(outDir, inputVolume), on_imported=onImported, start=False)
        self._runs.append(process)
        if not self.hasObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self._onSceneStartClose):
            # After the widget's own handler (priority 0), which updates the GUI.
            self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self._onSceneStartClose,
                             priority=-1.0)
        return process.start()

    def process(self, inputVolume, device="auto", enhancement="auto", scale="auto",
                waitForCompletion=True, timeoutSeconds=None) -> AnalysisProcess:
        """Run the analysis; with ``waitForCompletion`` block until done and show the results."""
        parameters = self.getParameterNode()
        parameters.inputVolume = inputVolume

        def onImported(result, nodes):
            self.storeResults(parameters, result, nodes)
            if slicer.app.layoutManager() is not None:
                self.showCompare(parameters)

        process = self.startAnalysis(inputVolume, device, enhancement, scale, onImported=onImported)
        if not waitForCompletion:
            return process
        startTime = time.time()
        state = process.wait(timeout_s=timeoutSeconds)
        if state == AnalysisState.FAILED:
            raise RuntimeError(process.error_message)
        logging.info(f"CovidCT analysis {state.value} in {time.time() - startTime:.1f} s")
        return process

    # -- results ------------------------------------------------------------------------
    def importResults(self, outDir, inputVolume):
        """Read ``outDir/result.json`` and load its volumes as new nodes (input untouched)."""
        parameters = self.getParameterNode()
        return analysis_run.import_results(slicer.mrmlScene, outDir, inputVolume, parameters.colourMap,
                                           parameters.heatmapThreshold)

    @staticmethod
    def storeResults(parameters, result, nodes) -> None:
        keys = result.key_slices  # chosen once by the core (falls back through the same rule for old results)
        parameters.enhancedVolume = nodes.enhanced
        parameters.heatmapVolume = nodes.heatmap
        parameters.lungSegmentation = nodes.lung_segmentation
        parameters.lesionSegmentation = nodes.lesion_segmentation
        parameters.scoreTable = nodes.score_table
        parameters.keySlices = ",".join(str(k) for k in keys)
        parameters.resultSummary = result.summary_text()
        parameters.currentSlice = -1
        report = result.out_dir / "report.pdf"
        parameters.reportPath = str(report) if report.exists() else ""

    @staticmethod
    def saveReport(parameters, destination) -> Path:
        """Copy the last analysis's PDF report to ``destination`` (a path the user chose), and
        its DICOM files, when there are any, next to it (``<name>.dcm``, ``<name>_measurements_sr.dcm``)."""
        if not parameters.reportPath or not Path(parameters.reportPath).exists():
            raise ValueError(_("No report is available: run the analysis first."))
        return analysis_run.copy_report(parameters.reportPath, destination)

    @staticmethod
    def keySlices(parameters) -> list:
        return [int(k) for k in parameters.keySlices.split(",") if k.strip()]

    # -- display ------------------------------------------------------------------------
    def showCompare(self, parameters) -> None:
        """Compare layout: original left, enhanced right, heatmap over both, views linked."""
        layoutManager = slicer.app.layoutManager()
        layoutNode = layoutManager.layoutLogic().GetLayoutNode()
        compare_layout.register_compare_layout(layoutNode)
        layoutManager.setLayout(compare_layout.COMPARE_LAYOUT_ID)
        opacity = parameters.heatmapOpacity if parameters.heatmapVisible else 0.0
        compare_layout.assign_compare_layers(slicer.mrmlScene, parameters.inputVolume, parameters.enhancedVolume,
                                             parameters.heatmapVolume, opacity, link=parameters.linkViews)
        for viewName in compare_layout.COMPARE_VIEWS:
            layoutManager.sliceWidget(viewName).sliceLogic().FitSliceToAll()
        chart = self._scoreChart(parameters)
        if chart is not None:
            slice_scores.show_chart_in_plot_views(slicer.mrmlScene, chart)

    @staticmethod
    def _scoreChart(parameters):
        table = parameters.scoreTable
        if table is None:
            return None
        scene = slicer.mrmlScene
        for index in range(scene.GetNumberOfNodesByClass("vtkMRMLPlotSeriesNode")):
            series = scene.GetNthNodeByClass(index, "vtkMRMLPlotSeriesNode")
            if series.GetTableNodeID() == table.GetID():
                for chartIndex in range(scene.GetNumberOfNodesByClass("vtkMRMLPlotChartNode")):
                    chart = scene.GetNthNodeByClass(chartIndex, "vtkMRMLPlotChartNode")
                    if chart.HasPlotSeriesNodeID(series.GetID()):
                        return chart
        return None

    @staticmethod
    def applyDisplaySettings(parameters) -> None:
        """Opacity / on-off / threshold / colour map / linking from the parameter node."""
        heatmap = parameters.heatmapVolume
        if heatmap is None or heatmap.GetDisplayNode() is None:
            return
        display = heatmap.GetDisplayNode()
        if parameters.colourMap is not None and display.GetColorNodeID() != parameters.colourMap.GetID():
            display.SetAndObserveColorNodeID(parameters.colourMap.GetID())
        if abs(display.GetLowerThreshold() - parameters.heatmapThreshold) > 1e-6:
            heatmap_display.set_heatmap_threshold(heatmap, parameters.heatmapThreshold)
        try:
            composites = compare_layout.compare_composite_nodes(slicer.mrmlScene)
        except LookupError:
            return
        if all(c.GetForegroundVolumeID() == heatmap.GetID() for c in composites):
            compare_layout.set_heatmap_visible(slicer.mrmlScene, parameters.heatmapVisible,
                                               parameters.heatmapOpacity)
            compare_layout.set_views_linked(slicer.mrmlScene, parameters.linkViews)

    def jumpToSlice(self, parameters, index: int) -> None:
        """Move both compare views to slice ``index`` of the input grid (heatmap's grid)."""
        reference = parameters.heatmapVolume or parameters.inputVolume
        if reference is None:
            raise ValueError(_("No analysed volume to navigate."))
        compare_layout.jump_to_slice(compare_layout.compare_slice_nodes(slicer.mrmlScene), reference, index)
        parameters.currentSlice = int(index)


#
# Test
#

class CovidCTTest(ScriptedLoadableModuleTest):
    """Self-test in the real application: results in the scene, compare layout, and a full
    Analyze -> Cancel -> Analyze again on the bundled sample through the widget."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_CovidCT_ImportAndCompare()
        self.setUp()
        self.test_CovidCT_AnalyzeCancelRetry()

    # helpers ------------------------------------------------------------------------------
    def _loadSample(self):
        sample = Path(_MODULE_DIR) / "Resources" / "SampleData" / SAMPLE_FILE_NAME
        self.assertTrue(sample.is_file(), f"{sample} is missing")
        return slicer.util.loadVolume(str(sample))

    @staticmethod
    def _writeFakeResult(inputVolume, outDir: Path, hotSlice: int) -> None:
        """A result folder in the documented format (heatmap hot on one slice), built by the core's one fixture builder."""
        import numpy as np
        import SimpleITK as sitk

        from covidct.result import RESULT_NAME, Probabilities, example_result, slice_scores
        from covidct.volume import to_sitk

        outDir.mkdir(parents=True, exist_ok=True)
        ct = volume_nodes.ct_volume_from_node(inputVolume)
        heat = np.zeros(ct.shape, np.float32)
        k, j, i = ct.shape
        heat[hotSlice, j // 3: j // 2, i // 4: i // 3] = 1.0
        sitk.WriteImage(to_sitk(ct.with_voxels(heat)), str(outDir / "heatmap.nrrd"), True)
        mask = (ct.voxels < -500).astype(np.uint8)
        sitk.WriteImage(to_sitk(ct.with_voxels(mask)), str(outDir / "lung_mask.nrrd"), True)
        scores = [0.9 if s == hotSlice else 0.1 for s in range(ct.num_slices)]
        result = example_result(slice_scores(ct.slice_positions_mm(), scores), probabilities=Probabilities(0.9, 0.1),
                                key_slices=[hotSlice], input=None, lesions=None)
        (outDir / RESULT_NAME).write_text(result.to_json(), encoding="utf-8")

    def _waitFor(self, condition, timeoutSeconds):
        deadline = time.time() + timeoutSeconds
        while not condition():
            self.assertLess(time.time(), deadline, "timed out")
            slicer.app.processEvents()
            time.sleep(0.05)

    # tests --------------------------------------------------------------------------------
    def test_CovidCT_ImportAndCompare(self):
        self.delayDisplay("Import a result folder and show the compare layout")
        import numpy as np

        from CovidCTLib import slice_render

        inputVolume = self._loadSample()
        before = slicer.util.arrayFromVolume(inputVolume).copy()
        hotSlice = inputVolume.GetImageData().GetDimensions()[2] // 2
        outDir = Path(slicer.app.temporaryPath) / "CovidCTSelfTest" / "output"
        self._writeFakeResult(inputVolume, outDir, hotSlice)

        logic = CovidCTLogic()
        parameters = logic.getParameterNode()
        parameters.inputVolume = inputVolume
        result, nodes = logic.importResults(outDir, inputVolume)
        logic.storeResults(parameters, result, nodes)
        logic.showCompare(parameters)
        logic.jumpToSlice(parameters, hotSlice)

        red, yellow = compare_layout.compare_composite_nodes(slicer.mrmlScene)
        self.assertEqual(red.GetForegroundVolumeID(), nodes.heatmap.GetID())
        self.assertEqual(yellow.GetForegroundVolumeID(), nodes.heatmap.GetID())
        self.assertTrue(red.GetLinkedControl())
        redLogic = slicer.app.layoutManager().sliceWidget("Red").sliceLogic()
        expectedZ = compare_layout.slice_centre_ras(inputVolume, hotSlice)[2]
        self.assertAlmostEqual(redLogic.GetSliceOffset(), expectedZ, places=3)
        rgba = slice_render.blended_slice_rgba(redLogic).astype(int)
        self.assertGreater(int(((rgba[:, :, 0] - rgba[:, :, 2]) > 30).sum()), 0, "no heat colour shown")
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(inputVolume), before)
        self.delayDisplay("Import and compare passed")

    def test_CovidCT_AnalyzeCancelRetry(self):
        self.delayDisplay("Analyze, cancel, analyze again (widget)")
        inputVolume = self._loadSample()
        slicer.util.selectModule("CovidCT")
        widget = slicer.modules.covidct.widgetRepresentation().self()
        widget._parameterNode.inputVolume = inputVolume
        widget._parameterNode.device = "cpu"

        widget.ui.analyzeButton.click()
        self.assertIsNotNone(widget._process)
        self._waitFor(lambda: widget._process.state != AnalysisState.STARTING, 120)
        self.assertEqual(widget.ui.analyzeButton.text, "Cancel")
        widget.ui.analyzeButton.click()  # Cancel
        self.assertEqual(widget._process.state, AnalysisState.CANCELLED)
        self.assertEqual(widget.ui.analyzeButton.text, "Analyze")

        widget.ui.analyzeButton.click()  # retry
        self._waitFor(lambda: widget._process.state.finished, 1200)
        self.assertEqual(widget._process.state, AnalysisState.DONE, widget._process.error_message)
        parameters = widget._parameterNode
        self.assertIsNotNone(parameters.heatmapVolume)
        self.assertTrue(parameters.resultSummary.startswith("Decision:"))
        red, yellow = compare_layout.compare_composite_nodes(slicer.mrmlScene)
        self.assertEqual(red.GetForegroundVolumeID(), parameters.heatmapVolume.GetID())
        self.assertGreaterEqual(parameters.currentSlice, 0)
        widget.ui.heatmapToggleButton.click()  # off
        self.assertEqual(red.GetForegroundOpacity(), 0.0)
        widget.ui.heatmapToggleButton.click()  # on
        self.assertAlmostEqual(red.GetForegroundOpacity(), parameters.heatmapOpacity)
        self.delayDisplay("Analyze, cancel and retry passed")
