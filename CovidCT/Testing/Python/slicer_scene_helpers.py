"""Builds a real MRML scene like Slicer's (slicer-core wheel, no Qt, no mocks) for the
``test_slicer_*`` tests, plus small phantoms and a fake ``covidct analyze`` output folder.

Not a conftest: imported explicitly by the tests that need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODULE_DIR = Path(__file__).resolve().parents[2]  # .../CovidCT (holds CovidCTLib and covidct; on pytest's pythonpath)

import slicer  # noqa: E402

from covidct.volume import CTVolume  # noqa: E402

VIEW_SIZE_PX = 96


@dataclass
class SlicerScene:
    scene: object
    app_logic: object
    layout_node: object
    slice_logics: dict  # view name -> vtkMRMLSliceLogic
    helpers: tuple = ()  # other logics, kept referenced for the scene's lifetime

    def close(self) -> None:
        """Detach the logics from the scene before anything is freed.

        Letting Python free the scene before the slice logics that observe it crashes
        (use after free in C++), as it would in the application if a logic outlived its
        scene; the application detaches its logics the same way on exit.
        """
        for logic in (*self.slice_logics.values(), self.app_logic, *self.helpers):
            if logic is not None:
                logic.SetMRMLScene(None)
        self.slice_logics = {}
        self.helpers = ()

    def __del__(self):
        self.close()


def make_slicer_scene(view_names=("Red", "Yellow")) -> SlicerScene:
    """Scene + application/layout logic + one slice logic per view, as the app sets them up.

    The Slicer application also registers module node classes and slice orientation
    presets at start-up; a bare scene needs both done here.
    """
    from CovidCTLib import compare_layout

    scene = slicer.vtkMRMLScene()
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene)
    if not scene.IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):
        scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())
    app_logic = slicer.vtkMRMLApplicationLogic()
    app_logic.SetMRMLScene(scene)
    colour_logic = slicer.vtkMRMLColorLogic()
    colour_logic.SetMRMLScene(scene)
    layout_logic = slicer.vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(scene)
    layout_node = layout_logic.GetLayoutNode()
    compare_layout.show_compare_layout(layout_node)
    slice_logics = {}
    for name in view_names:
        logic = slicer.vtkMRMLSliceLogic()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app_logic)
        # The layout logic already made the view's slice node; the logic must drive that one
        # (AddSliceNode would leave it unbound), as the slice widget does in the application.
        try:
            logic.SetSliceNode(compare_layout.slice_node_for_view(scene, name))
        except LookupError:
            logic.AddSliceNode(name)
        logic.UpdateSliceCompositeNode() if hasattr(logic, "UpdateSliceCompositeNode") else None
        assert logic.GetSliceNode() is not None and logic.GetSliceCompositeNode() is not None
        logic.GetSliceNode().SetDimensions(VIEW_SIZE_PX, VIEW_SIZE_PX, 1)
        slice_logics[name] = logic
    return SlicerScene(scene, app_logic, layout_node, slice_logics, (colour_logic, layout_logic))


def asymmetric_phantom(shape=(6, 20, 24)) -> CTVolume:
    """Small CT whose geometry has no symmetry to hide a transposed or flipped axis:
    different spacing per axis, non-zero origin, oblique direction (rotation about S)."""
    k, j, i = np.indices(shape)
    voxels = (-1000 + 7 * i + 3 * j + 50 * k).astype(np.int16)
    angle = np.deg2rad(20.0)
    direction = np.array([[np.cos(angle), -np.sin(angle), 0.0],
                          [np.sin(angle), np.cos(angle), 0.0],
                          [0.0, 0.0, 1.0]])
    return CTVolume(voxels=voxels, spacing_mm=(0.7, 0.9, 2.5), origin_lps=(-12.0, 30.5, -40.0),
                    direction_lps=direction)


def axial_phantom(shape=(8, 32, 32)) -> CTVolume:
    """Axis-aligned lung-like phantom (air inside soft tissue), 1 x 1 x 2 mm."""
    voxels = np.full(shape, 40, dtype=np.int16)
    voxels[:, 6:26, 4:14] = -850
    voxels[:, 6:26, 18:28] = -850
    return CTVolume(voxels=voxels, spacing_mm=(1.0, 1.0, 2.0), origin_lps=(-16.0, -16.0, -8.0))


def write_fake_result(out_dir: Path, volume: CTVolume, hot_slice: int = 5,
                      with_enhanced: bool = True, with_lesions: bool = True):
    """Folder in the documented ``covidct analyze`` format: result.json + NRRD volumes.

    Heatmap is 1.0 in a block of the right lung on ``hot_slice`` (0 elsewhere); the lung
    mask is the two air blocks of :func:`axial_phantom`; the enhanced volume has a 2x finer
    in-plane grid over the same physical extent; the lesion map has 60 ground-glass voxels
    and 12 consolidation voxels on ``hot_slice`` (all zero when ``with_lesions`` is False).
    Returns the :class:`covidct.result.AnalysisResult` written.
    """
    from covidct.io import save_volume
    from covidct.result import RESULT_NAME, example_result, slice_scores

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    heat = np.zeros(volume.shape, dtype=np.float32)
    heat[hot_slice, 10:20, 6:12] = 1.0
    save_volume(volume.with_voxels(heat, is_hounsfield=False), out_dir / "heatmap.nrrd")
    mask = (volume.voxels < -500).astype(np.uint8)
    save_volume(volume.with_voxels(mask, is_hounsfield=False), out_dir / "lung_mask.nrrd")
    lesions = np.zeros(volume.shape, dtype=np.uint8)
    if with_lesions:
        lesions[hot_slice, 10:20, 6:12] = 1
        lesions[hot_slice, 10:13, 6:10] = 2
    save_volume(volume.with_voxels(lesions, is_hounsfield=False), out_dir / "lesions.nrrd")
    enhanced_name = None
    if with_enhanced:
        fine = np.repeat(np.repeat(volume.voxels, 2, axis=1), 2, axis=2)
        sx, sy, sz = volume.spacing_mm
        # Same physical extent: first fine voxel centre sits a quarter voxel before the coarse one.
        shift = volume.direction_lps @ np.array([-sx / 4, -sy / 4, 0.0])
        enhanced = volume.with_voxels(fine, spacing_mm=(sx / 2, sy / 2, sz),
                                      origin_lps=tuple(np.array(volume.origin_lps) + shift))
        save_volume(enhanced, out_dir / "enhanced.nrrd")
        enhanced_name = "enhanced.nrrd"
    scores = [None if index == 0 else (0.9 if index == hot_slice else 0.1 + 0.01 * index)
              for index in range(volume.num_slices)]  # slice 0: outside the lungs
    result = example_result(slice_scores(volume.slice_positions_mm(), scores), key_slices=[hot_slice, 7, 3],
                            enhanced=enhanced_name, input=None)
    (out_dir / RESULT_NAME).write_text(result.to_json(), encoding="utf-8")
    return result
