"""Build step that puts the shipped weights and colour tables inside the wheel.

Everything else is in ``pyproject.toml``.  The weights live at the repository's top level
(``weights/``, next to their model cards) and the colour tables in the Slicer module's
``Resources/``; a non-editable ``pip install .`` would leave both behind, so ``build_py``
copies them into the package as ``covidct/_data/`` (found through ``importlib.resources``).
Editable installs read them in place and copy nothing.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACKAGE_DATA = {
    "weights": (HERE / "weights", ("*.pt", "*.json")),
    "ColorTables": (HERE / "CovidCT" / "Resources" / "ColorTables", ("*.txt",)),
}


class BuildWithModelData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name, (source, patterns) in PACKAGE_DATA.items():
            target = Path(self.build_lib) / "covidct" / "_data" / name
            target.mkdir(parents=True, exist_ok=True)
            for pattern in patterns:
                for path in source.glob(pattern):
                    shutil.copy2(path, target / path.name)


setup(cmdclass={"build_py": BuildWithModelData})
