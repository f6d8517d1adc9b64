"""The extension's build files stay in step with the source tree."""

from __future__ import annotations

import json
from pathlib import Path
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO


def test_module_cmakelists_lists_every_file():
    done = subprocess.run([sys.executable, str(REPO / "tools" / "cmake_sources.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_extension_cmakelists_declares_metadata_and_pytorch():
    text = (REPO / "CMakeLists.txt").read_text()
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert re.search(rf"set\({key} \"[^\"]+\"\)", text), key
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in text
    assert "add_subdirectory(CovidCT)" in text and "find_package(Slicer REQUIRED)" in text


def test_core_has_no_slicer_or_qt_imports():
    offenders = []
    for path in (REPO / "CovidCT" / "covidct").rglob("*.py"):
        for line in path.read_text().splitlines():
            if re.match(r"\s*(import|from)\s+(slicer|qt|ctk|vtk|PythonQt)\b", line):
                offenders.append(f"{path.name}: {line.strip()}")
    assert not offenders, offenders


def _imported_modules(path: Path, package: str) -> set:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_runtime_imports_nothing_from_research():
    """The Slicer extension ships the runtime only: no runtime module may need the research package.

    The CLI lists the research commands only when the package is installed (an optional import).
    """
    core = REPO / "CovidCT" / "covidct"
    offenders = []
    for path in core.rglob("*.py"):
        relative = path.relative_to(core.parent)
        if relative.parts[1] == "research":
            continue
        package = ".".join(relative.with_suffix("").parts[:-1])
        names = _imported_modules(path, package)
        offenders += [f"{relative}: {n}" for n in sorted(names) if n.startswith("covidct.research")]
    assert not offenders, offenders
    listed = (REPO / "CovidCT" / "CMakeLists.txt").read_text()
    assert "covidct/research" not in listed and "covidct/classify/api.py" in listed


def test_readme_commands_are_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert len(blocks) == 2, "the README gives exactly two set-up commands"
    assert "covidct analyze CovidCT/Resources/SampleData/" in blocks[0]
    ci = (REPO / ".ci" / "run").read_text()
    assert blocks[1].strip() in ci


@pytest.mark.slow
def test_a_built_wheel_carries_the_weights_and_colour_tables(tmp_path):
    """A non-editable install works away from the clone: weights and colour table are package data."""
    import venv

    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(REPO)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("covidct-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import zipfile

    with zipfile.ZipFile(wheel) as archive:  # install by unpacking: no pip inside the venv needed
        archive.extractall(site)
    probe = ("import covidct, json; from covidct.weights import weights_dir, verified_weights_path; "
             "from covidct.display import colour_table_file; "
             "print(json.dumps([covidct.__file__, str(weights_dir()), str(verified_weights_path('classifier')[0]), "
             "str(colour_table_file())]))")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COVIDCT_WEIGHTS_DIR")}
    out = subprocess.run([str(python), "-I", "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    package, weights, classifier, table = json.loads(out.stdout)
    assert package.startswith(site) and weights.startswith(site) and classifier.startswith(site)
    assert table.startswith(site) and table.endswith("CovidCT-Inferno.txt")
