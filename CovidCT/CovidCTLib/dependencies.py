"""Which Python packages the core needs inside Slicer, and installing them the Slicer way.

* torch comes from the PyTorch extension's utilities (right CUDA/CPU build for the
  machine), never from a bare ``pip install torch``;
* other packages are installed on first Analyze after the user confirms, with
  ``slicer.packaging.pip_ensure`` (Slicer >= 5.12) or ``slicer.util.pip_install``;
* Slicer's own numpy, SimpleITK and vtk are pinned by a constraints file so no
  dependency can replace them (that would break Slicer itself).

The checks are pure Python (testable anywhere); only :func:`ensure_core_dependencies`
needs the Slicer application.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from importlib import metadata
from typing import Callable, Dict, List, Optional

# import name -> pip requirement (mirrors pyproject.toml, minus torch and Slicer-owned packages)
CORE_REQUIREMENTS: Dict[str, str] = {
    "scipy": "scipy>=1.10",
    "pydicom": "pydicom>=2.4",
    "pylibjpeg": "pylibjpeg>=2.0",
    "libjpeg": "pylibjpeg-libjpeg>=2.1",
    "PIL": "pillow>=10",
    "reportlab": "reportlab>=4.0",
    "matplotlib": "matplotlib>=3.7",
}
SLICER_OWNED_DISTRIBUTIONS = ("numpy", "SimpleITK", "vtk")


def missing_requirements(find_spec: Callable = importlib.util.find_spec) -> List[str]:
    """pip requirements whose import name cannot be found."""
    missing = []
    for import_name, requirement in CORE_REQUIREMENTS.items():
        try:
            found = find_spec(import_name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(requirement)
    return missing


def torch_missing(find_spec: Callable = importlib.util.find_spec) -> bool:
    try:
        return find_spec("torch") is None
    except (ImportError, ValueError):
        return True


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


def ensure_core_dependencies(confirm: Callable[[str], bool]) -> bool:
    """Install what is missing after ``confirm(message)`` agrees; False if the user declined.

    Runs inside the Slicer application only.
    """
    import slicer

    if torch_missing():
        if not confirm("CovidCT needs PyTorch, which is not installed yet. Install it now with the "
                       "PyTorch extension (a large download; Slicer may need a restart)?"):
            return False
        try:
            import PyTorchUtils
        except ImportError:
            raise RuntimeError("The PyTorch extension is not installed. Install 'PyTorch' from the "
                               "Extensions Manager, restart Slicer and press Analyze again.") from None
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
            raise RuntimeError("PyTorch could not be installed; see the Python console for details.")

    missing = missing_requirements()
    if not missing:
        return True
    constraints = write_constraints_file()
    try:
        packaging = getattr(slicer, "packaging", None)
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            # Slicer >= 5.12 asks the user itself and shows progress.
            packaging.pip_ensure(missing, requester="CovidCT", constraints=constraints)
        else:
            if not confirm("CovidCT needs these Python packages: " + ", ".join(missing)
                           + ". Install them now (Slicer's own numpy, SimpleITK and VTK are kept)?"):
                return False
            slicer.util.pip_install(" ".join(f'"{r}"' for r in missing) + f' --constraint "{constraints}"')
    finally:
        os.unlink(constraints)
    still_missing = missing_requirements()
    if still_missing:
        raise RuntimeError("These packages are still missing after installation: " + ", ".join(still_missing)
                           + ". Restart Slicer and press Analyze again.")
    return True
