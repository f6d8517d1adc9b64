"""numpy / :class:`covidct.volume.CTVolume` <-> ``vtkMRMLScalarVolumeNode`` with exact geometry.

Slicer keeps a volume's geometry in its IJK->RAS matrix; the core keeps it as LPS
spacing/origin/direction.  Crossing over only through :meth:`CTVolume.ijk_to_ras` means a
voxel of the enhanced volume or the heatmap lands on exactly the same point of the patient
as the input voxel it came from.
"""

from __future__ import annotations

import numpy as np
import vtk
from vtk.util import numpy_support

from covidct.display import LUNG_WINDOW_LEVEL_HU, LUNG_WINDOW_WIDTH_HU


def vtk_matrix_from_array(matrix) -> vtk.vtkMatrix4x4:
    matrix = np.asarray(matrix, dtype=float)
    out = vtk.vtkMatrix4x4()
    for row in range(4):
        for col in range(4):
            out.SetElement(row, col, float(matrix[row, col]))
    return out


def array_from_vtk_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def ijk_to_ras_of_node(volume_node) -> np.ndarray:
    """4x4 IJK->RAS matrix of a volume node as numpy."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return array_from_vtk_matrix(matrix)


def image_data_from_array(voxels: np.ndarray) -> vtk.vtkImageData:
    """vtkImageData holding a deep copy of ``voxels[k, j, i]`` (origin 0, spacing 1).

    Slicer keeps origin/spacing/direction on the node, not on the image data, so the image
    data stays in plain IJK.
    """
    voxels = np.asarray(voxels)
    if voxels.ndim != 3:
        raise ValueError(f"Expected a 3D array [k, j, i], got shape {voxels.shape}.")
    if voxels.dtype == bool:
        voxels = voxels.astype(np.uint8)
    image = vtk.vtkImageData()
    image.SetDimensions(int(voxels.shape[2]), int(voxels.shape[1]), int(voxels.shape[0]))
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(voxels).ravel(), deep=True)
    scalars.SetName("ImageScalars")
    image.GetPointData().SetScalars(scalars)
    return image


def array_from_volume_node(volume_node) -> np.ndarray:
    """Copy of the node's voxels as ``[k, j, i]`` (never a view: callers cannot modify the node)."""
    image = volume_node.GetImageData()
    if image is None:
        raise ValueError(f"Volume node {volume_node.GetName()} has no image data.")
    i_dim, j_dim, k_dim = image.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    return np.array(scalars).reshape(k_dim, j_dim, i_dim)


def add_volume_node(scene, voxels: np.ndarray, ijk_to_ras, name: str,
                    node_class: str = "vtkMRMLScalarVolumeNode"):
    """New volume node in ``scene`` with ``voxels[k, j, i]`` and the given 4x4 IJK->RAS."""
    node = scene.AddNewNodeByClass(node_class, scene.GenerateUniqueName(name))
    node.SetIJKToRASMatrix(vtk_matrix_from_array(ijk_to_ras))
    node.SetAndObserveImageData(image_data_from_array(voxels))
    node.CreateDefaultDisplayNodes()
    return node


def add_volume_node_from_ct(scene, volume, name: str,
                            node_class: str = "vtkMRMLScalarVolumeNode"):
    """New volume node from a :class:`covidct.volume.CTVolume` (LPS geometry converted to RAS)."""
    return add_volume_node(scene, volume.voxels, volume.ijk_to_ras(), name, node_class)


def remove_with_display_nodes(scene, node) -> None:
    """Remove ``node`` and its display nodes (which the scene would otherwise keep)."""
    display_ids = [node.GetNthDisplayNodeID(i) for i in range(node.GetNumberOfDisplayNodes())] \
        if hasattr(node, "GetNumberOfDisplayNodes") else []
    scene.RemoveNode(node)
    for display_id in display_ids:
        display = scene.GetNodeByID(display_id)
        if display is not None:
            scene.RemoveNode(display)


def ct_volume_from_node(volume_node):
    """:class:`covidct.volume.CTVolume` with the node's voxels and geometry (for writing to disk).

    Slicer has no LPS notion on the node, so the LPS frame is recovered exactly from the
    IJK->RAS matrix: spacing = column norms, direction = normalised columns.
    """
    from covidct.volume import CTVolume, lps_to_ras_matrix

    ijk_to_lps = lps_to_ras_matrix() @ ijk_to_ras_of_node(volume_node)
    axes = ijk_to_lps[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    return CTVolume(voxels=array_from_volume_node(volume_node), spacing_mm=tuple(spacing),
                    origin_lps=tuple(ijk_to_lps[:3, 3]), direction_lps=axes / spacing)


def copy_window_level(source_node, target_node) -> None:
    """Show ``target_node`` with the same grey-scale window/level and colour map as ``source_node``.

    The radiologist compares the enhanced volume with the original side by side; different
    display windows would make the comparison meaningless.
    """
    source = source_node.GetDisplayNode()
    target = target_node.GetDisplayNode()
    if source is None or target is None:
        return
    target.SetAutoWindowLevel(False)
    target.SetWindowLevel(source.GetWindow(), source.GetLevel())
    if source.GetColorNodeID():
        target.SetAndObserveColorNodeID(source.GetColorNodeID())
    target.SetInterpolate(source.GetInterpolate())


# Reading windows (width, level) in HU: lung parenchyma for COVID-19 findings (the models'
# own window), mediastinum for soft tissue (nodes, effusion).
WINDOW_PRESETS_HU = {"lung": (LUNG_WINDOW_WIDTH_HU, LUNG_WINDOW_LEVEL_HU), "mediastinum": (350.0, 40.0)}


def set_window_level(volume_node, window_hu: float, level_hu: float) -> None:
    """Fixed grey-scale window/level (auto window/level off)."""
    display = volume_node.GetDisplayNode()
    if display is None:
        volume_node.CreateDefaultDisplayNodes()
        display = volume_node.GetDisplayNode()
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(float(window_hu), float(level_hu))


def set_window_preset(volume_nodes, preset: str) -> None:
    """Show every node in ``volume_nodes`` (None skipped) in the named reading window."""
    if preset not in WINDOW_PRESETS_HU:
        raise ValueError(f"Unknown window preset {preset!r}; choose one of {', '.join(WINDOW_PRESETS_HU)}.")
    for node in volume_nodes:
        if node is not None:
            set_window_level(node, *WINDOW_PRESETS_HU[preset])


def set_lung_window(volume_node, window_hu: float = LUNG_WINDOW_WIDTH_HU,
                    level_hu: float = LUNG_WINDOW_LEVEL_HU) -> None:
    """The standard lung window (what a radiologist reads COVID-19 findings in; the models' window)."""
    set_window_level(volume_node, window_hu, level_hu)
