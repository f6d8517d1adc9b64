"""Keep the outputs next to the scan they came from in the Data module's subject hierarchy.

With a DICOM-loaded input the outputs go into a "CovidCT" folder under the input's study,
so they are exported/closed together with it; otherwise the folder sits beside the input.
"""

from __future__ import annotations

from typing import Iterable, Optional

RESULTS_FOLDER_NAME = "CovidCT results"


def _item_for(sh, node) -> int:
    """The node's subject-hierarchy item (created at the scene level if the scene has none)."""
    item = sh.GetItemByDataNode(node)
    if not item:
        item = sh.CreateItem(sh.GetSceneItemID(), node)
    return item


def place_with_input(scene, input_node, output_nodes: Iterable,
                     folder_name: str = RESULTS_FOLDER_NAME) -> Optional[int]:
    """Put ``output_nodes`` in a folder under the input's study (or its parent).

    Returns the folder's item id, or ``None`` when the scene has no subject hierarchy.
    """
    sh = scene.GetSubjectHierarchyNode()
    if sh is None:
        return None
    input_item = _item_for(sh, input_node)
    study_level = "Study"
    try:
        import slicer

        study_level = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelStudy()
    except (ImportError, AttributeError):
        pass
    anchor = sh.GetItemAncestorAtLevel(input_item, study_level)
    if not anchor:
        anchor = sh.GetItemParent(input_item) or sh.GetSceneItemID()
    folder = sh.CreateFolderItem(anchor, folder_name)
    for node in output_nodes:
        if node is not None:
            sh.SetItemParent(_item_for(sh, node), folder)
    return folder
