"""Lung mask label map -> ``vtkMRMLSegmentationNode`` (editable in Segment Editor, shown as outline).

A segmentation rather than a label-map volume because that is what radiologists correct
and measure in Slicer; the import goes through Slicer's own segmentations logic so the
result is identical to "Import labelmap" in the Data module.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

import slicer

from .volume_nodes import add_volume_node, remove_with_display_nodes

LUNG_COLOUR_RGB = (0.77, 0.63, 0.57)  # Slicer's terminology colour for lung tissue
DEFAULT_SEGMENT_NAMES = {1: "Lungs"}
# The lesion map of ``covidct analyze`` (1 ground glass, 2 consolidation): warm colours that
# stand apart from the lung outline and from each other.
LESION_COLOURS_RGB = {1: (1.0, 0.85, 0.2), 2: (0.9, 0.3, 0.1)}


def _label_dtype(labels: np.ndarray):
    return np.uint8 if labels.max(initial=0) <= 255 and labels.min(initial=0) >= 0 else np.int16


def segmentation_from_labelmap(scene, label_voxels: np.ndarray, ijk_to_ras, name: str,
                               reference_volume_node=None,
                               segment_names: Optional[Mapping[int, str]] = None,
                               segment_colours: Optional[Mapping[int, tuple]] = None):
    """New segmentation node with one segment per non-zero label of ``label_voxels[k, j, i]``.

    ``segment_names`` maps label values to names (default: 1 -> "Lungs", others
    "Lung label N"); ``segment_colours`` maps them to RGB in [0, 1] (default: lung colour).  The reference geometry is the input volume's, so the segment editor
    works on the CT grid.
    """
    labels = np.asarray(label_voxels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if labels.dtype.kind == "f":
        labels = np.rint(labels)
    labels = labels.astype(_label_dtype(labels))
    names = dict(DEFAULT_SEGMENT_NAMES if segment_names is None else segment_names)

    labelmap_node = add_volume_node(scene, labels, ijk_to_ras, "CovidCT temporary label map",
                                    node_class="vtkMRMLLabelMapVolumeNode")
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
    segmentation_node.CreateDefaultDisplayNodes()
    try:
        if reference_volume_node is not None:
            segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
            labelmap_node, segmentation_node)
        if not ok:
            raise ValueError("The lung mask could not be converted to a segmentation.")
    finally:
        remove_with_display_nodes(scene, labelmap_node)

    segmentation = segmentation_node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        label = int(segment.GetLabelValue())
        segment.SetName(names.get(label, f"Lung label {label}"))
        segment.SetColor(*(segment_colours or {}).get(label, LUNG_COLOUR_RGB))
    display = segmentation_node.GetDisplayNode()
    if display is not None:
        display.SetVisibility2DFill(False)  # outline only: the CT and heatmap stay visible
        display.SetVisibility2DOutline(True)
    return segmentation_node


def segment_voxel_counts(segmentation_node) -> dict:
    """``{segment name: voxel count}`` from the binary-labelmap representation."""
    from vtk.util import numpy_support

    segmentation = segmentation_node.GetSegmentation()
    counts = {}
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        image = segment.GetRepresentation("Binary labelmap")
        if image is None or image.GetPointData().GetScalars() is None:
            counts[segment.GetName()] = 0
            continue
        values = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
        counts[segment.GetName()] = int(np.count_nonzero(values == segment.GetLabelValue()))
    return counts
