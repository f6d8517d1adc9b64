"""Dependency checks and installation before the first Analyze.

The pure parts run as they are. ``ensure_core_dependencies`` runs inside Slicer; here the
application pieces it calls are replaced by small recorders that keep the documented
contract of Slicer's API (``slicer.pydeps`` exists from Slicer 5.11 and is not in the
slicer-core wheel): ``pip_check``/``pip_ensure`` take ``packaging`` Requirement objects,
``pip_ensure`` raises RuntimeError when the user declines; ``slicer.util.pip_install``
(older Slicer) takes a string or a list of pip arguments.
"""

import subprocess
import sys
import tomllib
import types
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from slicer_scene_helpers import MODULE_DIR

import slicer

from CovidCTLib import dependencies

pytestmark = pytest.mark.slicer

PYPROJECT = MODULE_DIR.parent / "pyproject.toml"


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def test_core_requirements_match_pyproject():
    """CORE_REQUIREMENTS is pyproject.toml's [project] dependencies minus what Slicer and the
    PyTorch extension provide (the extension ships without pyproject.toml, so it is repeated)."""
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    excluded = {_canonical(n) for n in dependencies.SKIPPED_DISTRIBUTIONS}
    expected = {str(Requirement(r)) for r in declared if _canonical(Requirement(r).name) not in excluded}
    assert {str(Requirement(r)) for r in dependencies.CORE_REQUIREMENTS.values()} == expected
    torch = [Requirement(r) for r in declared if Requirement(r).name == "torch"]
    assert [str(r) for r in torch] == [str(Requirement(dependencies.TORCH_REQUIREMENT))]


def test_every_core_requirement_is_checked_under_an_importable_name():
    """The import names are the ones the installed distributions provide (PIL for pillow, ...)."""
    provided = metadata.packages_distributions()
    for import_name, requirement in dependencies.CORE_REQUIREMENTS.items():
        owners = {_canonical(d) for d in provided.get(import_name, [])}
        assert _canonical(Requirement(requirement).name) in owners, import_name


def test_missing_requirements_lists_only_absent_packages():
    present = {"scipy", "pydicom", "PIL"}
    missing = dependencies.missing_requirements(lambda name: object() if name in present else None)
    assert "scipy>=1.10" not in missing and "pillow>=10" not in missing
    assert "reportlab>=4.0" in missing and "pylibjpeg-libjpeg>=2.1" in missing
    assert not any(Requirement(r).name in ("numpy", "SimpleITK", "vtk", "torch") for r in missing)


def test_environment_markers_are_evaluated():
    """highdicom is only required on Python >= 3.10 (Slicer 5.6 and 5.8 have Python 3.9)."""
    def absent(name):
        return None

    on_39 = dependencies.missing_requirements(absent, {"python_version": "3.9"})
    on_312 = dependencies.missing_requirements(absent, {"python_version": "3.12"})
    assert not any(r.startswith("highdicom") for r in on_39)
    assert any(r.startswith("highdicom") for r in on_312)
    assert "highdicom>=0.28.2" in dependencies.pip_arguments(on_312)


def test_slicer_owned_packages_are_pinned_not_upgraded():
    versions = {"numpy": "1.26.4", "SimpleITK": "2.4.0"}

    def version_of(name):
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]

    assert dependencies.constraints_text(version_of) == "numpy==1.26.4\nSimpleITK==2.4.0\n"


def test_torch_check_follows_find_spec_and_version():
    assert dependencies.torch_missing(lambda name: None)
    assert not dependencies.torch_missing(lambda name: object(), lambda name: "2.5.1+cu121")
    assert dependencies.torch_missing(lambda name: object(), lambda name: "2.1.0")


# -- ensure_core_dependencies with the application's pieces ---------------------------------

class _App:
    def __init__(self, testing=False):
        self.testing = testing

    def testingEnabled(self):
        return self.testing


class _PyDeps(types.ModuleType):
    """Records calls; keeps pydeps' contract (Requirement objects in, RuntimeError on decline)."""

    def __init__(self, installed, accept=True, install=True):
        super().__init__("slicer.pydeps")
        self.installed = set(installed)
        self.accept, self.install = accept, install
        self.ensure_calls = []

    def pip_check(self, requirement):
        assert isinstance(requirement, Requirement), "pip_check takes packaging Requirement objects"
        return requirement.name in self.installed

    def pip_ensure(self, requirements, constraints=None, skip_packages=None, prompt_install=True,
                   prompt_restart=True, requester=None, skip_in_testing=True, show_progress=True):
        assert all(isinstance(r, Requirement) for r in requirements), "pip_ensure takes Requirement objects"
        self.ensure_calls.append({"requirements": [str(r) for r in requirements], "constraints": constraints,
                                  "constraints_text": open(constraints).read(), "skip_packages": skip_packages,
                                  "requester": requester})
        if not self.accept:
            raise RuntimeError("User declined package installation")
        if self.install:
            self.installed.update(r.name for r in requirements)


@pytest.fixture
def in_slicer(monkeypatch):
    """Torch present, the application object in place, no slicer.pydeps unless a test adds one."""
    monkeypatch.setattr(dependencies, "torch_missing", lambda: False)
    monkeypatch.setattr(slicer, "app", _App(), raising=False)
    monkeypatch.setitem(sys.modules, "slicer.pydeps", None)  # import fails, as in Slicer <= 5.10

    def add_pydeps(pydeps):
        monkeypatch.setitem(sys.modules, "slicer.pydeps", pydeps)
        monkeypatch.setattr(slicer, "pydeps", pydeps, raising=False)
        return pydeps

    return add_pydeps


def _all_names_but(*absent):
    return {Requirement(r).name for r in dependencies.CORE_REQUIREMENTS.values()} - set(absent)


def test_pydeps_gets_requirement_objects_and_keeps_slicer_packages_out(in_slicer):
    pydeps = in_slicer(_PyDeps(_all_names_but("reportlab", "pydicom")))
    confirmations = []
    assert dependencies.ensure_core_dependencies(lambda message: confirmations.append(message) or True)
    assert confirmations == []  # pip_ensure asks the user itself
    (call,) = pydeps.ensure_calls
    assert sorted(call["requirements"]) == ["pydicom>=2.4", "reportlab>=4.0"]
    assert set(call["skip_packages"]) >= {"numpy", "SimpleITK", "vtk", "torch"}
    assert call["requester"] == "CovidCT"
    assert call["constraints_text"] == dependencies.constraints_text()


def test_pydeps_decline_becomes_an_actionable_message(in_slicer):
    in_slicer(_PyDeps(_all_names_but("reportlab"), accept=False))
    with pytest.raises(RuntimeError, match="Press Analyze again") as raised:
        dependencies.ensure_core_dependencies(lambda message: True)
    assert "reportlab>=4.0" in str(raised.value) and 'pip_install("reportlab>=4.0")' in str(raised.value)


def test_pydeps_in_testing_mode_says_why_nothing_was_installed(in_slicer, monkeypatch):
    in_slicer(_PyDeps(_all_names_but("reportlab"), install=False))
    monkeypatch.setattr(slicer, "app", _App(testing=True))
    with pytest.raises(RuntimeError, match="testing mode"):
        dependencies.ensure_core_dependencies(lambda message: True)


def test_nothing_to_do_when_pydeps_finds_everything(in_slicer):
    pydeps = in_slicer(_PyDeps(_all_names_but()))
    assert dependencies.ensure_core_dependencies(lambda message: pytest.fail("nothing to ask"))
    assert pydeps.ensure_calls == []


def test_older_slicer_asks_first_then_uses_util_pip_install_with_constraints(in_slicer, monkeypatch):
    state = {"missing": ["reportlab>=4.0", "highdicom>=0.28.2; python_version >= '3.10'"]}
    monkeypatch.setattr(dependencies, "missing_requirements", lambda: list(state["missing"]))
    calls = []

    def pip_install(requirements):
        assert isinstance(requirements, (str, list))  # the only forms slicer.util.pip_install takes
        calls.append((list(requirements), open(requirements[requirements.index("--constraint") + 1]).read()))
        state["missing"] = []

    monkeypatch.setattr(slicer.util, "pip_install", pip_install)
    assert not dependencies.ensure_core_dependencies(lambda message: False)  # declined: nothing installed
    assert calls == []
    assert dependencies.ensure_core_dependencies(lambda message: True)
    ((arguments, constraints),) = calls
    assert arguments[:2] == ["reportlab>=4.0", "highdicom>=0.28.2"]
    assert arguments[2] == "--constraint" and constraints == dependencies.constraints_text()


def test_pip_failure_becomes_an_actionable_message(in_slicer, monkeypatch):
    monkeypatch.setattr(dependencies, "missing_requirements", lambda: ["reportlab>=4.0"])

    def pip_install(requirements):
        raise subprocess.CalledProcessError(1, ["pip", "install"])

    monkeypatch.setattr(slicer.util, "pip_install", pip_install)
    with pytest.raises(RuntimeError, match="exit code 1"):
        dependencies.ensure_core_dependencies(lambda message: True)
