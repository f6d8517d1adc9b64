"""Side-by-side review: original left, enhanced right, heatmap over both, views linked.

The layout also has a plot view underneath for the per-slice score chart.

Works on the two standard slice views "Red" and "Yellow" (both set to axial) in a custom
two-view layout registered on the layout node.  Linking is done the Slicer way
(``LinkedControl`` + ``HotLinkedControl`` on the slice composite nodes), so scrolling,
panning and zooming one view moves the other, exactly as the user would get by pressing
the link button in the view controller.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from covidct.display import HEAT_OPACITY

ORIGINAL_VIEW = "Red"
ENHANCED_VIEW = "Yellow"
COMPARE_VIEWS = (ORIGINAL_VIEW, ENHANCED_VIEW)

# An id far from Slicer's built-in layouts (< 1000) and from other extensions' usual picks.
COMPARE_LAYOUT_ID = 5301
COMPARE_LAYOUT_XML = """
<layout type="vertical" split="true">
  <item splitSize="800">
    <layout type="horizontal" split="true">
      <item splitSize="500">
        <view class="vtkMRMLSliceNode" singletontag="Red">
          <property name="orientation" action="default">Axial</property>
          <property name="viewlabel" action="default">R</property>
          <property name="viewcolor" action="default">#F34A33</property>
        </view>
      </item>
      <item splitSize="500">
        <view class="vtkMRMLSliceNode" singletontag="Yellow">
          <property name="orientation" action="default">Axial</property>
          <property name="viewlabel" action="default">Y</property>
          <property name="viewcolor" action="default">#EDD54C</property>
        </view>
      </item>
    </layout>
  </item>
  <item splitSize="200">
    <view class="vtkMRMLPlotViewNode" singletontag="PlotView1">
      <property name="viewlabel" action="default">P</property>
    </view>
  </item>
</layout>
"""


def register_compare_layout(layout_node) -> int:
    """Add the two-view layout to ``layout_node`` (idempotent); returns its id."""
    if not layout_node.IsLayoutDescription(COMPARE_LAYOUT_ID):
        layout_node.AddLayoutDescription(COMPARE_LAYOUT_ID, COMPARE_LAYOUT_XML)
    return COMPARE_LAYOUT_ID


def show_compare_layout(layout_node) -> None:
    register_compare_layout(layout_node)
    layout_node.SetViewArrangement(COMPARE_LAYOUT_ID)


def _nodes_by_class(scene, class_name: str) -> list:
    return [scene.GetNthNodeByClass(i, class_name)
            for i in range(scene.GetNumberOfNodesByClass(class_name))]


def slice_node_for_view(scene, view_name: str):
    for node in _nodes_by_class(scene, "vtkMRMLSliceNode"):
        if node.GetLayoutName() == view_name:
            return node
    raise LookupError(f"The slice view '{view_name}' does not exist in this scene; "
                      "switch to the CovidCT compare layout first.")


def composite_node_for_view(scene, view_name: str):
    for node in _nodes_by_class(scene, "vtkMRMLSliceCompositeNode"):
        if node.GetLayoutName() == view_name:
            return node
    raise LookupError(f"The slice view '{view_name}' has no composite node in this scene; "
                      "switch to the CovidCT compare layout first.")


def compare_composite_nodes(scene) -> list:
    return [composite_node_for_view(scene, name) for name in COMPARE_VIEWS]


def compare_slice_nodes(scene) -> list:
    return [slice_node_for_view(scene, name) for name in COMPARE_VIEWS]


def _node_id(node) -> Optional[str]:
    return node.GetID() if node is not None else None


def assign_compare_layers(scene, original_node, enhanced_node=None, heatmap_node=None,
                          heatmap_opacity: float = HEAT_OPACITY, link: bool = True) -> None:
    """Original (left) and enhanced (right) as backgrounds, the heatmap over both.

    Without an enhanced volume (enhancement off) both views show the original, so the
    heatmap still has a clean view on the right and a plain one can be had by toggling.
    """
    backgrounds = (original_node, enhanced_node if enhanced_node is not None else original_node)
    for slice_node in compare_slice_nodes(scene):
        slice_node.SetOrientation("Axial")
    for composite, background in zip(compare_composite_nodes(scene), backgrounds):
        was_modifying = composite.StartModify()
        composite.SetBackgroundVolumeID(_node_id(background))
        composite.SetForegroundVolumeID(_node_id(heatmap_node))
        composite.SetForegroundOpacity(float(heatmap_opacity) if heatmap_node is not None else 0.0)
        composite.SetLabelVolumeID(None)
        composite.EndModify(was_modifying)
    set_views_linked(scene, link)


def set_views_linked(scene, linked: bool = True) -> None:
    """Slice, pan and zoom follow each other (hot-linked: while dragging, not only on release)."""
    for composite in compare_composite_nodes(scene):
        composite.SetLinkedControl(bool(linked))
        composite.SetHotLinkedControl(bool(linked))


def set_heatmap_opacity(scene, opacity: float) -> None:
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"Heatmap opacity must be within 0..1, got {opacity}.")
    for composite in compare_composite_nodes(scene):
        composite.SetForegroundOpacity(float(opacity))


def set_heatmap_visible(scene, visible: bool, opacity: float) -> None:
    """One-click on/off: off = opacity 0 (the heatmap stays assigned, nothing is reloaded)."""
    set_heatmap_opacity(scene, opacity if visible else 0.0)


def slice_centre_ras(volume_node, slice_index: int) -> np.ndarray:
    """World RAS position (mm) of the centre of slice ``k = slice_index`` of ``volume_node``
    (parent transforms applied, so the views land where the volume is displayed)."""
    from .volume_nodes import ijk_to_ras_of_node

    dims = volume_node.GetImageData().GetDimensions()
    if not 0 <= slice_index < dims[2]:
        raise IndexError(f"Slice {slice_index} is outside the volume (0..{dims[2] - 1}).")
    ijk = np.array([(dims[0] - 1) / 2.0, (dims[1] - 1) / 2.0, float(slice_index), 1.0])
    local = (ijk_to_ras_of_node(volume_node) @ ijk)[:3]
    world = [0.0, 0.0, 0.0]
    volume_node.TransformPointToWorld(list(local), world)  # identity without a parent transform
    return np.array(world)


def slice_index_shown(slice_node, volume_node) -> Optional[int]:
    """Index ``k`` of the slice of ``volume_node`` that ``slice_node`` shows (after a scroll,
    a jump or a pan), or ``None`` when the view is outside the volume."""
    from .volume_nodes import array_from_vtk_matrix, ijk_to_ras_of_node

    world = array_from_vtk_matrix(slice_node.GetSliceToRAS())[:3, 3]
    local = [0.0, 0.0, 0.0]
    volume_node.TransformPointFromWorld(list(world), local)  # identity without a parent transform
    k = float((np.linalg.inv(ijk_to_ras_of_node(volume_node)) @ np.append(local, 1.0))[2])
    depth = volume_node.GetImageData().GetDimensions()[2]
    index = int(round(k))
    return index if 0 <= index < depth else None


def jump_to_slice(slice_nodes: Iterable, volume_node, slice_index: int) -> np.ndarray:
    """Move every view in ``slice_nodes`` so it shows slice ``slice_index`` of ``volume_node``.

    The views keep their pan (offsetting, not centring) so the radiologist's zoomed region
    stays in place.  Returns the RAS point the views now pass through.
    """
    point = slice_centre_ras(volume_node, slice_index)
    for slice_node in slice_nodes:
        slice_node.JumpSliceByOffsetting(float(point[0]), float(point[1]), float(point[2]))
    return point
