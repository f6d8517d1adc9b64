"""The .ui and CovidCT.py agree: every widget the code uses exists, and every widget bound to
the parameter node names a real parameter of a type its widget can show (the pairs Slicer's
parameter-node GUI connectors accept).  Caught here, not at module load in Slicer."""

import ast
import re
import xml.etree.ElementTree as ElementTree

import pytest

from slicer_scene_helpers import MODULE_DIR

pytestmark = pytest.mark.slicer

UI_FILE = MODULE_DIR / "Resources" / "UI" / "CovidCT.ui"
MODULE_FILE = MODULE_DIR / "CovidCT.py"


def _widgets():
    """objectName -> (class, SlicerParameterName or None)."""
    widgets = {}
    for widget in ElementTree.parse(UI_FILE).iter("widget"):
        bound = None
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound = prop.findtext("string")
        widgets[widget.get("name")] = (widget.get("class"), bound)
    return widgets


def _parameters():
    """Parameter name -> annotation source text, from the @parameterNodeWrapper class."""
    tree = ast.parse(MODULE_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "CovidCTParameterNode":
            return {item.target.id: ast.unparse(item.annotation) for item in node.body
                    if isinstance(item, ast.AnnAssign)}
    raise AssertionError("CovidCTParameterNode not found")


def test_every_widget_used_in_code_exists_in_the_ui():
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE_FILE.read_text()))
    assert used and used <= set(_widgets())


@pytest.mark.parametrize("name", [n for n, (_, bound) in _widgets().items() if bound])
def test_bound_widget_matches_its_parameter_type(name):
    widget_class, parameter = _widgets()[name]
    annotation = _parameters().get(parameter)
    assert annotation is not None, f"{name} is bound to unknown parameter {parameter}"
    if widget_class == "qMRMLNodeComboBox":
        assert annotation.startswith("vtkMRML")
    elif widget_class == "QComboBox":
        assert "Choice(" in annotation  # the combo box connector needs the choices
    elif widget_class == "ctkSliderWidget":
        assert annotation.startswith("Annotated[float") and "WithinRange(" in annotation
    elif widget_class in ("QCheckBox", "QPushButton"):
        assert annotation == "bool"
    else:
        pytest.fail(f"no parameter-node connector for {widget_class}")


def test_input_and_outputs_are_bound_so_saved_scenes_reopen_them():
    bound = {parameter for _, parameter in _widgets().values() if parameter}
    assert {"inputVolume", "device", "enhancement", "scale", "heatmapOpacity", "heatmapThreshold",
            "colourMap", "enhancedVolume", "heatmapVolume", "lungSegmentation"} <= bound
