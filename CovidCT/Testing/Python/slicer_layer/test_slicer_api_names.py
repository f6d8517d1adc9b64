"""CovidCT.py and CovidCTLib/*.py call only Slicer API that exists, with keywords it accepts.

Every ``slicer.<namespace>.X`` name (``slicer.util``, ``slicer.pydeps``, ``slicer.modules``,
``slicer.app``, ``slicer.dicomDatabase``, ...; ``slicer.mrmlScene`` is MRML, left to the MRML
tests), every ``getattr(slicer, "X")``, every ``from slicer.<module> import X`` and the
SampleData / PyTorchUtils methods the code uses are collected with ``ast`` and must be in
``data/slicer_api_allowlist.json``: a list recorded by reading Slicer's sources (5.6-5.10, and
``slicer.pydeps`` of 5.11), with the file each name is defined in and the keywords every
version accepts. The list is not a mock; where the slicer-core wheel has the module
(``slicer.util`` and the MRML classes) the names and keywords are also checked against it.
``slicer.pydeps``, ``slicer.app``, ``slicer.modules``, ``slicer.dicomDatabase``, the parameter
node wrapper, ScriptedLoadableModule, SampleData and PyTorchUtils exist only in the Slicer
application, so for those the recorded list is all there is to check against here.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path

import pytest

from slicer_scene_helpers import MODULE_DIR

import slicer
import slicer.util

pytestmark = pytest.mark.slicer

ALLOWLIST = json.loads((Path(__file__).parent.parent / "data" / "slicer_api_allowlist.json").read_text())["names"]
SOURCES = [MODULE_DIR / "CovidCT.py"] + sorted((MODULE_DIR / "CovidCTLib").glob("*.py"))
# Slicer modules imported by name: the API is module.Class.method.
MODULE_ROOTS = ("SampleData", "PyTorchUtils")
MRML_PREFIXES = ("vtk", "qMRML", "qSlicer")
# Modules only the Slicer application provides (PythonQt, Slicer's Base/Python beyond util).
APPLICATION_ONLY = {"qt", "ctk", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper", "slicer.i18n",
                    "slicer.pydeps", "SampleData", "PyTorchUtils"}


def _chain(node):
    """``a.b().c`` -> ["a", "b", "c"] (calls in between are looked through), else None."""
    parts = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            return parts[::-1]
        else:
            return None


def _api_name(parts):
    """The API a dotted chain uses: ``slicer.<namespace>.X``, ``slicer.<MRML class>``,
    ``<Slicer module>.Class.method``; None for anything else (``slicer.mrmlScene`` included)."""
    if parts[0] == "slicer" and len(parts) >= 2 and parts[1] != "mrmlScene":
        if parts[1].startswith(MRML_PREFIXES):
            return ".".join(parts[:2])
        return ".".join(parts[:3]) if len(parts) >= 3 else None
    if parts[0] in MODULE_ROOTS and len(parts) >= 3:
        return ".".join(parts[:3])
    return None


def _collect():
    """API name -> {"files": set, "keywords": set of keyword arguments used in calls}."""
    used = {}

    def note(name, path, keywords=()):
        entry = used.setdefault(name, {"files": set(), "keywords": set()})
        entry["files"].add(path.name)
        entry["keywords"].update(keywords)

    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                parts = _chain(node)
                name = _api_name(parts) if parts else None
                if name:
                    note(name, path)
            elif isinstance(node, ast.Call):
                parts = _chain(node.func)
                name = _api_name(parts) if parts else None
                if name and len(parts) == len(name.split(".")):  # the call is of the API name itself
                    note(name, path, [k.arg or "**" for k in node.keywords])
                if (parts == ["getattr"] and len(node.args) >= 2 and isinstance(node.args[0], ast.Name)
                        and node.args[0].id == "slicer" and isinstance(node.args[1], ast.Constant)):
                    note(f"slicer.{node.args[1].value}", path)  # getattr(slicer, "X", default)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "slicer":
                for alias in node.names:
                    prefix = node.module if node.module != "slicer" else "slicer"
                    note(f"{prefix}.{alias.name}", path)
    return used


USED = _collect()
MRML_CLASSES = sorted(n for n in USED if n.startswith(("slicer.vtk", "slicer.qMRML")))
API_NAMES = sorted(n for n in USED if n not in MRML_CLASSES)


def test_the_collector_sees_the_calls_that_matter():
    assert {"slicer.util.tryWithErrorDisplay", "slicer.pydeps.pip_ensure", "slicer.util.pip_install",
            "SampleData.SampleDataLogic.registerCustomSampleDataSource",
            "PyTorchUtils.PyTorchUtilsLogic.installTorch", "slicer.modules.covidct"} <= set(API_NAMES)
    assert "waitCursor" in USED["slicer.util.tryWithErrorDisplay"]["keywords"]


def test_every_api_name_used_is_recorded_in_the_allow_list():
    unknown = {name: sorted(USED[name]["files"]) for name in API_NAMES if name not in ALLOWLIST}
    assert not unknown, (f"not in data/slicer_api_allowlist.json (check the Slicer source and add it with "
                         f"the file it is defined in): {unknown}")


def test_the_allow_list_has_no_names_the_code_no_longer_uses():
    assert sorted(set(ALLOWLIST) - set(API_NAMES)) == []


def test_every_entry_says_where_it_is_defined():
    for name, entry in ALLOWLIST.items():
        assert entry.get("defined_in"), name


@pytest.mark.parametrize("name", [n for n in API_NAMES if "keywords" in ALLOWLIST.get(n, {})])
def test_calls_use_only_keywords_every_supported_version_accepts(name):
    used = USED[name]["keywords"]
    assert "**" not in used, f"{name} is called with **kwargs: its keywords cannot be checked"
    assert used <= set(ALLOWLIST[name]["keywords"]), (name, sorted(used))


UTIL_NAMES = [n for n in ALLOWLIST if n.startswith("slicer.util.")]


@pytest.mark.parametrize("name", UTIL_NAMES)
def test_util_names_and_keywords_exist_in_slicer_core(name):
    """slicer-core ships Slicer's Base/Python/slicer/util.py: the recorded names must be in it."""
    attribute = name.split(".", 2)[2]
    assert hasattr(slicer.util, attribute), f"slicer.util has no {attribute}"
    target = getattr(slicer.util, attribute)
    entry = ALLOWLIST[name]
    if "keywords" in entry:
        parameters = inspect.signature(target).parameters
        takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        for keyword in entry["keywords"]:
            assert keyword in parameters or takes_any, f"slicer.util.{attribute} takes no {keyword}="
    for member, keywords in entry.get("members", {}).items():
        assert callable(getattr(target, member, None)), f"{name} has no {member}"
        parameters = inspect.signature(getattr(target, member)).parameters
        assert set(keywords) <= set(parameters), (name, member, keywords)


def test_pip_install_in_slicer_core_takes_the_requirements_only():
    """The form CovidCT's fallback uses (older Slicer): one argument, a list of pip arguments."""
    parameters = [p for p in inspect.signature(slicer.util.pip_install).parameters.values()]
    assert parameters[0].name == "requirements"
    assert all(p.default is not inspect.Parameter.empty for p in parameters[1:])


@pytest.mark.parametrize("name", MRML_CLASSES)
def test_mrml_classes_used_exist_in_slicer_core(name):
    assert hasattr(slicer, name.split(".", 1)[1]), f"slicer-core has no {name}"


def _top_level_imports(path):
    modules = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
    return modules


def _importable(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def test_module_imports_with_the_real_slicer_core():
    """Import CovidCT.py as it is with the slicer-core ``slicer`` package, without stand-ins.

    CovidCT.py needs ``qt`` (PythonQt), ``slicer.ScriptedLoadableModule`` and
    ``slicer.parameterNodeWrapper``, which only the Slicer application provides; the wheel has
    MRML and ``slicer.util``. Where they are missing, the modules that are here are imported
    and the test is skipped, saying which ones were missing: the whole module is covered by
    its self-test in Slicer (CovidCTTest) and its Logic by test_slicer_module_logic.py.
    """
    needed = _top_level_imports(MODULE_DIR / "CovidCT.py")
    absent = [m for m in needed if not _importable(m)]
    assert set(absent) <= APPLICATION_ONLY, f"missing outside the application-only list: {absent}"
    for module in needed:
        if module not in absent:
            importlib.import_module(module)
    sys.modules.pop("CovidCT", None)
    try:
        if absent:
            with pytest.raises(ModuleNotFoundError) as raised:
                importlib.import_module("CovidCT")
            assert raised.value.name in absent
            pytest.skip("CovidCT.py imports " + ", ".join(absent) + ", which only the Slicer application "
                        "provides (slicer-core has MRML and slicer.util, no Qt); its self-test runs in Slicer")
        module = importlib.import_module("CovidCT")
        assert module.CovidCTLogic and module.CovidCTWidget and module.CovidCTTest
    finally:
        sys.modules.pop("CovidCT", None)
