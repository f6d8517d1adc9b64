"""The extension's build files stay in step with the source tree."""

from __future__ import annotations

import re
import subprocess
import sys

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


def test_readme_commands_are_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert len(blocks) == 2, "the README gives exactly two set-up commands"
    assert "covidct analyze CovidCT/Resources/SampleData/" in blocks[0]
    ci = (REPO / ".ci" / "run").read_text()
    assert blocks[1].strip() in ci
