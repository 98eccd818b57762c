"""3D Slicer module: unsupervised tissue segmentation by differentiable feature clustering.

The engine is napari-dfcseg, installed into Slicer's Python on first use (with
the user's confirmation) and run as a separate process (``PythonSlicer -m
napari_dfcseg segment ...`` through ``qt.QProcess``), so Slicer stays
responsive and Cancel can stop it at once.  The module's Slicer-free logic
is in ``DFCSegmentationLib/logic_core.py``; its MRML file exchange in
``DFCSegmentationLib/mrml_io.py``.  Requires Slicer >= 5.10.
"""

import logging
import os
import shutil
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, Default, Minimum, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from DFCSegmentationLib import logic_core, mrml_io

#
# Module
#


class DFCSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "DFC Segmentation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["napari-dfcseg developers"]
        self.parent.helpText = """
Training-free segmentation of CT and MR volumes into tissue classes by differentiable feature
clustering (Kim, Kanezaki and Tanaka, IEEE TIP 2020). Select a volume, optionally a mask segment
and scribbles, and press Apply: the result is a segmentation with one named, coloured segment per
tissue class. Requires 3D Slicer 5.10 or later and the PyTorch extension; the napari-dfcseg Python
package is installed on first use. See docs/slicer.md of napari-dfcseg.
"""
        self.parent.acknowledgementText = """
Method: W. Kim, A. Kanezaki, M. Tanaka, "Unsupervised Learning of Image Segmentation Based on
Differentiable Feature Clustering", IEEE Transactions on Image Processing 29 (2020).
The module's structure follows SlicerTotalSegmentator (A. Lasso).
"""


#
# Parameter node
#


@parameterNodeWrapper
class DFCSegmentationParameterNode:
    """Everything one run needs; saved with the scene."""

    inputVolume: vtkMRMLScalarVolumeNode
    maskSegmentation: vtkMRMLSegmentationNode
    maskSegmentId: str = ""
    scribbles: vtkMRMLSegmentationNode
    # 0 = automatic (the engine chooses the number of tissue classes)
    tissues: Annotated[int, Minimum(0), Default(0)]
    mode: Annotated[str, Choice(["2d", "3d"]), Default("2d")]
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"]), Default("auto")]
    seed: Annotated[int, Default(0)]
    saveModelPath: str = ""
    applyModelPath: str = ""
    outputSegmentation: vtkMRMLSegmentationNode


#
# Widget
#


class DFCSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DFCSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DFCSegmentationLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        # the segment selector has no parameter-node connector: mirror it by hand
        self.ui.maskSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self._onMaskChanged)
        self.ui.maskSegmentSelector.connect("currentSegmentChanged(QString)", self._onMaskChanged)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.cancelButton.enabled = False
        self.ui.progressBar.setRange(0, 1000)
        self.ui.progressBar.value = 0
        major, minor = slicer.app.majorVersion, slicer.app.minorVersion
        if not logic_core.slicer_version_ok(major, minor):
            need = ".".join(map(str, logic_core.MIN_SLICER_VERSION))
            self.ui.statusLabel.plainText = f"This module requires 3D Slicer {need} or later (this is {major}.{minor})."
            self.ui.applyButton.enabled = False
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()
        if self.logic:
            self.logic.cancel()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = parameterNode
        if self._parameterNode:
            # widgets carry a SlicerParameterName property in the .ui file
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            savedSegmentId = self._parameterNode.maskSegmentId  # setCurrentNode() below resets it
            self.ui.maskSegmentSelector.setCurrentNode(self._parameterNode.maskSegmentation)
            if savedSegmentId:
                self.ui.maskSegmentSelector.setCurrentSegmentID(savedSegmentId)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._updateButtons()

    def _onMaskChanged(self, *args):
        if self._parameterNode:
            self._parameterNode.maskSegmentation = self.ui.maskSegmentSelector.currentNode()
            self._parameterNode.maskSegmentId = self.ui.maskSegmentSelector.currentSegmentID() or ""

    def _updateButtons(self, caller=None, event=None):
        running = self.logic.isRunning()
        ready = bool(self._parameterNode and self._parameterNode.inputVolume)
        self.ui.applyButton.enabled = ready and not running and logic_core.slicer_version_ok(
            slicer.app.majorVersion, slicer.app.minorVersion)
        self.ui.applyButton.toolTip = "Segment the input volume" if ready else "Select an input volume"
        self.ui.cancelButton.enabled = running

    def onApplyButton(self):
        self.ui.statusLabel.plainText = ""
        try:
            if not self.logic.ensureEngineInstalled(askConfirmation=True):
                self.ui.statusLabel.appendPlainText("napari-dfcseg is not installed: nothing was run.")
                return
        except Exception as exc:  # noqa: BLE001 - shown to the user, details in the log
            logging.exception("napari-dfcseg installation failed")
            slicer.util.errorDisplay(f"Installing napari-dfcseg failed: {exc}")
            return
        with slicer.util.tryWithErrorDisplay("Could not start the segmentation.", waitCursor=True):
            self.logic.start(self._parameterNode, onProgress=self._onProgress, onFinished=self._onFinished)
        self._updateButtons()

    def onCancelButton(self):
        self.logic.cancel()
        self.ui.statusLabel.appendPlainText("Cancelled.")
        self._updateButtons()

    def _onProgress(self, event):
        if event.fraction is not None:
            self.ui.progressBar.value = int(round(1000 * event.fraction))
        if logic_core.worth_logging(event):
            self.ui.statusLabel.appendPlainText(logic_core.status_text(event))

    def _onFinished(self, segmentationNode, error):
        self._updateButtons()
        if error:
            self.ui.statusLabel.appendPlainText(error)
            slicer.util.errorDisplay(error)
            return
        self.ui.progressBar.value = 1000
        self._parameterNode.outputSegmentation = segmentationNode
        self.ui.statusLabel.appendPlainText(
            f"Done: {segmentationNode.GetSegmentation().GetNumberOfSegments()} segments in {segmentationNode.GetName()}.")


#
# Logic
#


class DFCSegmentationLogic(ScriptedLoadableModuleLogic):
    """Install the engine, write the inputs, run it as a process, load the result."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._process = None
        self._buffer = b""
        self._stderr = b""
        self._job = None

    def getParameterNode(self):
        return DFCSegmentationParameterNode(super().getParameterNode())

    # ------------------------------------------------------------------ install

    @staticmethod
    def engineRequirement():
        """What pip installs: ``napari-dfcseg``, or a wheel/folder set in the application settings."""
        return str(qt.QSettings().value("DFCSegmentation/Requirement", logic_core.ENGINE_REQUIREMENT))

    @staticmethod
    def engineInstalled():
        import importlib.util

        return importlib.util.find_spec("napari_dfcseg") is not None

    def ensureEngineInstalled(self, askConfirmation=True):
        """Install PyTorch (PyTorch extension) and napari-dfcseg if missing; False if the user declined."""
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            raise RuntimeError("This module needs the PyTorch extension: install it from the Extensions Manager")
        torchLogic = PyTorchUtils.PyTorchUtilsLogic()
        if not torchLogic.torchInstalled():
            if torchLogic.installTorch(askConfirmation=askConfirmation, torchVersionRequirement=">=2.0") is None:
                return False
        if self.engineInstalled():
            return True
        requirement = self.engineRequirement()
        isPackageName = not any(c in requirement for c in "/\\")  # not a local wheel or folder
        if isPackageName and logic_core.install_method(slicer.app.majorVersion, slicer.app.minorVersion) == "pydeps":
            import importlib

            from packaging.requirements import Requirement

            # (not `import slicer.pydeps`: that would make `slicer` a local name of this function)
            pydeps = importlib.import_module("slicer.pydeps")
            # Slicer >= 5.11: asks the user, installs, skips what Slicer ships, offers a restart if needed
            pydeps.pip_ensure([Requirement(requirement)], skip_packages=list(logic_core.NEVER_REPLACE),
                                     prompt_install=askConfirmation, requester="DFCSegmentation")
        else:
            if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                    f"DFC Segmentation needs the napari-dfcseg Python package ({requirement}).\n"
                    "Install it now? (Slicer's SimpleITK, numpy and PyTorch are kept.)",
                    "Install napari-dfcseg"):
                return False
            self._pipInstallSkipping(requirement)
        return self.engineInstalled()

    @staticmethod
    def _pipInstallSkipping(requirement):
        """pip install ``requirement`` without letting it replace :data:`logic_core.NEVER_REPLACE`."""
        import importlib.metadata
        import re

        slicer.util.pip_install(f"{requirement} --no-deps")
        skip = {name.lower() for name in logic_core.NEVER_REPLACE}
        for dependency in importlib.metadata.requires("napari-dfcseg") or []:
            if "extra ==" in dependency:
                continue
            name = re.split(r"[\s<>=!~;\[]", dependency, maxsplit=1)[0]
            if name.lower() not in skip:
                slicer.util.pip_install(dependency.split(";")[0].replace(" ", ""))

    # ------------------------------------------------------------------ run

    def isRunning(self):
        return self._process is not None and self._process.state() != qt.QProcess.NotRunning

    def _writeInputs(self, parameterNode, folder):
        scene = slicer.mrmlScene
        volume = parameterNode.inputVolume
        if volume is None:
            raise ValueError("Select an input volume")
        if volume.GetImageData() is None or volume.GetImageData().GetNumberOfScalarComponents() != 1:
            raise ValueError(f"{volume.GetName()}: needs a scalar (one-component) volume")
        inputPath = mrml_io.write_volume(scene, volume, os.path.join(folder, "input.nrrd"))
        params = logic_core.RunParameters(
            mode=parameterNode.mode, n_tissues=parameterNode.tissues or None, device=parameterNode.device,
            seed=int(parameterNode.seed), save_model_path=parameterNode.saveModelPath or None,
            apply_model_path=parameterNode.applyModelPath or None)
        if parameterNode.maskSegmentation and parameterNode.maskSegmentId:
            params.mask_path = os.path.join(folder, "mask.nrrd")
            mrml_io.write_segments_as_labelmap(scene, parameterNode.maskSegmentation,
                                               [parameterNode.maskSegmentId], volume, params.mask_path)
        if parameterNode.scribbles and not params.apply_model_path:
            segmentation = parameterNode.scribbles.GetSegmentation()
            ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
            if ids:
                params.scribbles_path = os.path.join(folder, "scribbles.nrrd")
                mrml_io.write_segments_as_labelmap(scene, parameterNode.scribbles, ids, volume,
                                                   params.scribbles_path)
        return inputPath, params

    def start(self, parameterNode, onProgress=None, onFinished=None):
        """Launch the engine on the parameter node's inputs; returns at once (``onFinished`` reports)."""
        if self.isRunning():
            raise RuntimeError("A segmentation is already running")
        python = shutil.which("PythonSlicer")
        if not python:
            raise RuntimeError("PythonSlicer was not found next to Slicer")
        folder = slicer.util.tempDirectory()
        inputPath, params = self._writeInputs(parameterNode, folder)
        outputPath = os.path.join(folder, "result.seg.nrrd")
        command = logic_core.build_command(python, inputPath, outputPath, params)
        logging.info("DFCSegmentation: %s", " ".join(command))
        self._job = {"folder": folder, "output": outputPath, "volume": parameterNode.inputVolume,
                     "onProgress": onProgress, "onFinished": onFinished}
        self._buffer, self._stderr = b"", b""
        process = qt.QProcess()
        process.setProcessChannelMode(qt.QProcess.SeparateChannels)
        process.connect("readyReadStandardOutput()", self._onStdout)
        process.connect("readyReadStandardError()", self._onStderr)
        process.connect("finished(int,QProcess::ExitStatus)", self._onFinished)
        self._process = process
        process.start(command[0], command[1:])
        if not process.waitForStarted(30000):
            self._process = None
            raise RuntimeError(f"Could not start {python}")

    def cancel(self):
        """Kill the engine process (it writes nothing until it has finished)."""
        if self.isRunning():
            job, self._job = self._job, None  # finished() then reports nothing
            self._process.kill()
            self._process.waitForFinished(5000)
            if job:
                shutil.rmtree(job["folder"], ignore_errors=True)

    def _onStdout(self):
        self._buffer += bytes(self._process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            event = logic_core.parse_progress_line(line)
            if event is not None and self._job and self._job["onProgress"]:
                self._job["onProgress"](event)

    def _onStderr(self):
        chunk = bytes(self._process.readAllStandardError().data())
        self._stderr += chunk
        for line in chunk.split(b"\n"):  # the engine's warnings go to the status box as they come
            warning = logic_core.parse_warning_line(line)
            if warning and self._job and self._job["onProgress"]:
                self._job["onProgress"](logic_core.ProgressEvent("warning", message=f"Warning: {warning}"))

    def _onFinished(self, exitCode, exitStatus):
        job, self._job = self._job, None
        if job is None:  # cancelled
            return
        node, error = None, None
        if exitStatus != qt.QProcess.NormalExit or exitCode != 0:
            lines = [ln for ln in self._stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
            error = lines[-1] if lines else f"the engine stopped with exit status {exitCode}"
        else:
            try:
                node = self.loadResult(job["output"], job["volume"])
            except Exception as exc:  # noqa: BLE001 - reported to the widget
                error = str(exc)
        shutil.rmtree(job["folder"], ignore_errors=True)
        if job["onFinished"]:
            job["onFinished"](node, error)

    @staticmethod
    def loadResult(path, volume):
        """Load the ``.seg.nrrd`` as a segmentation on ``volume``'s grid, in its study, shown on it."""
        scene = slicer.mrmlScene
        node = mrml_io.load_segmentation(scene, path, volume)
        node.CreateDefaultDisplayNodes()
        mrml_io.place_in_study_of(scene, node, volume)
        return node

    def process(self, parameterNode, timeoutSeconds=3600):
        """Run synchronously (scripts and the self-test); returns the segmentation node."""
        result = {}
        self.start(parameterNode, onFinished=lambda node, error: result.update(node=node, error=error))
        if not self._process.waitForFinished(int(timeoutSeconds * 1000)):
            self.cancel()
            raise RuntimeError(f"the segmentation did not finish in {timeoutSeconds} s")
        slicer.app.processEvents()
        if "node" not in result:
            self._onFinished(self._process.exitCode(), self._process.exitStatus())
        if result.get("error"):
            raise RuntimeError(result["error"])
        return result["node"]


#
# Test (runs inside Slicer only: Slicer's self-test, or `Slicer --python-code ...`)
#


class DFCSegmentationTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_logic_core()
        self.test_segment_phantom()

    def test_logic_core(self):
        command = logic_core.build_command("PythonSlicer", "in.nrrd", "out.seg.nrrd",
                                           logic_core.RunParameters(n_tissues=4))
        self.assertEqual(command[1:4], ["-m", "napari_dfcseg", "segment"])
        self.assertIn("--n-clusters", command)

    def test_segment_phantom(self):
        import numpy as np

        logic = DFCSegmentationLogic()
        if not logic.engineInstalled():
            self.delayDisplay("napari-dfcseg not installed: skipping the engine run")
            return
        rng = np.random.default_rng(0)
        array = rng.normal(0, 5, (8, 48, 48)).astype(np.float32)
        array[:, 12:36, 12:36] += 100
        array[:, 20:28, 20:28] += 100
        volume = slicer.util.addVolumeFromArray(array, ijkToRAS=[[-1.2, 0, 0, 5], [0, 0.9, 0, -3], [0, 0, 2.5, 1],
                                                                [0, 0, 0, 1]], name="phantom")
        parameters = logic.getParameterNode()
        parameters.inputVolume = volume
        parameters.device = "cpu"
        node = logic.process(parameters, timeoutSeconds=600)
        self.assertGreaterEqual(node.GetSegmentation().GetNumberOfSegments(), 2)
        self.delayDisplay("DFCSegmentation test passed")
