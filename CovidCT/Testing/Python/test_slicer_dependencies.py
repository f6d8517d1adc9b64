"""Dependency checks used before the first Analyze (pure Python parts)."""

from importlib import metadata

import pytest

from slicer_scene_helpers import MODULE_DIR  # noqa: F401  (puts CovidCTLib on sys.path)

from CovidCTLib import dependencies

pytestmark = pytest.mark.slicer


def test_missing_requirements_lists_only_absent_packages():
    present = {"scipy", "pydicom", "PIL"}
    missing = dependencies.missing_requirements(lambda name: object() if name in present else None)
    assert "scipy>=1.10" not in missing and "pillow>=10" not in missing
    assert "reportlab>=4.0" in missing and "pylibjpeg-libjpeg>=2.1" in missing
    assert not any(r.split(">=")[0] in ("numpy", "SimpleITK", "vtk", "torch") for r in missing)


def test_slicer_owned_packages_are_pinned_not_upgraded():
    versions = {"numpy": "1.26.4", "SimpleITK": "2.4.0"}

    def version_of(name):
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]

    assert dependencies.constraints_text(version_of) == "numpy==1.26.4\nSimpleITK==2.4.0\n"


def test_torch_check_follows_find_spec():
    assert dependencies.torch_missing(lambda name: None)
    assert not dependencies.torch_missing(lambda name: object())
