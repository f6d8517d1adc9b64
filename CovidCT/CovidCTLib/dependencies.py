"""Which Python packages the core needs inside Slicer, and installing them the Slicer way.

* torch comes from the PyTorch extension's utilities (``PyTorchUtils``: the right CUDA/CPU
  build for the machine), never from a bare ``pip install torch``;
* the other packages are installed on the first Analyze: with ``slicer.pydeps.pip_ensure``
  (Slicer >= 5.11), which asks the user and shows progress itself, or after our own
  confirmation with ``slicer.util.pip_install`` (older Slicer);
* Slicer's own numpy, SimpleITK and VTK stay as they are: a constraints file pins the
  installed versions, and ``pip_ensure`` also keeps them (and torch) out of the dependency
  tree with ``skip_packages``.

``CORE_REQUIREMENTS`` repeats pyproject.toml's ``[project] dependencies`` (the extension
does not ship pyproject.toml) minus what Slicer and the PyTorch extension provide;
test_slicer_dependencies.py checks that the two agree.

The checks are pure Python (testable anywhere); only :func:`ensure_core_dependencies`
needs the Slicer application.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
from importlib import metadata
from typing import Callable, Dict, List, Optional

# import name -> pip requirement (PEP 508, markers included)
CORE_REQUIREMENTS: Dict[str, str] = {
    "scipy": "scipy>=1.10",
    "pydicom": "pydicom>=2.4",
    "highdicom": "highdicom>=0.28.2; python_version >= '3.10'",
    "pylibjpeg": "pylibjpeg>=2.0",
    "libjpeg": "pylibjpeg-libjpeg>=2.1",
    "PIL": "pillow>=10",
    "reportlab": "reportlab>=4.0",
    "matplotlib": "matplotlib>=3.7",
}
TORCH_REQUIREMENT = "torch>=2.2"
SLICER_OWNED_DISTRIBUTIONS = ("numpy", "SimpleITK", "vtk")
# Never installed or replaced by our pip runs (torch comes through the PyTorch extension).
SKIPPED_DISTRIBUTIONS = SLICER_OWNED_DISTRIBUTIONS + ("torch",)
REQUESTER = "CovidCT"


def parse_requirement(text: str):
    """A ``packaging.requirements.Requirement`` (pip's bundled copy where ``packaging`` is absent)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(text)


def applicable_requirements(environment: Optional[dict] = None) -> Dict[str, str]:
    """``CORE_REQUIREMENTS`` whose environment marker holds here (or in ``environment``)."""
    applicable = {}
    for import_name, text in CORE_REQUIREMENTS.items():
        marker = parse_requirement(text).marker
        if marker is None or marker.evaluate(environment):
            applicable[import_name] = text
    return applicable


def missing_requirements(find_spec: Callable = importlib.util.find_spec,
                         environment: Optional[dict] = None) -> List[str]:
    """Applicable pip requirements whose import name cannot be found."""
    missing = []
    for import_name, requirement in applicable_requirements(environment).items():
        try:
            found = find_spec(import_name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(requirement)
    return missing


def pip_arguments(requirements: List[str]) -> List[str]:
    """``name>=version`` arguments for pip (markers already evaluated, so left out)."""
    arguments = []
    for text in requirements:
        requirement = parse_requirement(text)
        arguments.append(f"{requirement.name}{requirement.specifier}")
    return arguments


def torch_missing(find_spec: Callable = importlib.util.find_spec,
                  version_of: Callable[[str], str] = metadata.version) -> bool:
    """True when torch cannot be imported or is older than ``TORCH_REQUIREMENT`` (torch is not imported)."""
    try:
        if find_spec("torch") is None:
            return True
    except (ImportError, ValueError):
        return True
    try:
        installed = version_of("torch")
    except metadata.PackageNotFoundError:
        return False  # importable without pip metadata: nothing to compare
    return not parse_requirement(TORCH_REQUIREMENT).specifier.contains(installed, prereleases=True)


def constraints_text(version_of: Callable[[str], str] = metadata.version) -> str:
    """pip constraints pinning the Slicer-owned packages at the versions installed now."""
    lines = []
    for name in SLICER_OWNED_DISTRIBUTIONS:
        try:
            lines.append(f"{name}=={version_of(name)}")
        except metadata.PackageNotFoundError:
            continue  # built into Slicer (not a pip distribution): pip cannot replace it anyway
    return "\n".join(lines) + ("\n" if lines else "")


def write_constraints_file(directory: Optional[str] = None) -> str:
    handle, path = tempfile.mkstemp(prefix="covidct-constraints-", suffix=".txt", dir=directory)
    with os.fdopen(handle, "w") as stream:
        stream.write(constraints_text())
    return path


def not_installed_message(requirements: List[str], reason: str = "") -> str:
    """What to do when the packages were not installed (declined, or pip failed)."""
    arguments = pip_arguments(requirements)
    return ("CovidCT cannot analyse without these Python packages: " + ", ".join(arguments)
            + (f" ({reason})" if reason else "") + ". Press Analyze again and accept the installation, or "
            f"install them from Slicer's Python console with slicer.util.pip_install(\"{' '.join(arguments)}\"), "
            "then restart Slicer.")


def _pydeps_available() -> bool:
    try:
        import slicer.pydeps  # noqa: F401  (Slicer >= 5.11)
    except ImportError:
        return False
    return True


def _unsatisfied(modern: bool) -> List[str]:
    """Requirements to install: version-aware with ``slicer.pydeps.pip_check``, else by import name."""
    if not modern:
        return missing_requirements()
    import slicer.pydeps

    return [r for r in applicable_requirements().values() if not slicer.pydeps.pip_check(parse_requirement(r))]


def _install_torch(confirm: Callable[[str], bool]) -> bool:
    if not confirm("CovidCT needs PyTorch, which is not installed yet. Install it now with the "
                   "PyTorch extension (a large download; Slicer may need a restart)?"):
        return False
    try:
        import PyTorchUtils
    except ImportError:
        raise RuntimeError("The PyTorch extension is not installed. Install 'PyTorch' from the "
                           "Extensions Manager, restart Slicer and press Analyze again.") from None
    specifier = str(parse_requirement(TORCH_REQUIREMENT).specifier)
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=specifier)
    if torch is None:
        raise RuntimeError("PyTorch could not be installed; see the Python console for details.")
    return True


def _ensure_with_pydeps(requirements: List[str], constraints: str) -> None:
    """``slicer.pydeps.pip_ensure``: it asks the user (raising RuntimeError on No) and shows progress."""
    import slicer
    import slicer.pydeps

    try:
        slicer.pydeps.pip_ensure([parse_requirement(r) for r in requirements], constraints=constraints,
                                 skip_packages=list(SKIPPED_DISTRIBUTIONS), requester=REQUESTER)
    except RuntimeError as exc:  # the user declined (or pip could not be started)
        raise RuntimeError(not_installed_message(requirements, str(exc))) from exc


def ensure_core_dependencies(confirm: Callable[[str], bool]) -> bool:
    """Install what is missing; False if the user declined in ``confirm(message)``.

    Raises RuntimeError with what to do next when packages stay missing (declined in
    Slicer's own dialog, pip failed, or testing mode, where Slicer does not install).
    Runs inside the Slicer application only.
    """
    import slicer

    if torch_missing() and not _install_torch(confirm):
        return False

    modern = _pydeps_available()
    requirements = _unsatisfied(modern)
    if not requirements:
        return True
    if not modern:  # pip_ensure asks the user itself
        if not confirm("CovidCT needs these Python packages: " + ", ".join(pip_arguments(requirements))
                       + ". Install them now (Slicer's own numpy, SimpleITK and VTK are kept)?"):
            return False
    constraints = write_constraints_file()
    try:
        if modern:
            _ensure_with_pydeps(requirements, constraints)
        else:
            slicer.util.pip_install(pip_arguments(requirements) + ["--constraint", constraints])
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(not_installed_message(
            requirements, f"pip stopped with exit code {exc.returncode}; see the Python console")) from exc
    finally:
        os.unlink(constraints)
    still_missing = _unsatisfied(modern)
    if still_missing:
        testing = (" (Slicer runs in testing mode, where pip_ensure installs nothing)"
                   if modern and slicer.app.testingEnabled() else "")
        raise RuntimeError("These packages are still missing after installation: "
                           + ", ".join(pip_arguments(still_missing)) + testing
                           + ". Restart Slicer and press Analyze again.")
    return True
