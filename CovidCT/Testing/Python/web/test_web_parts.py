"""The web app's parts that need no browser: the data-folder fence, the analysis queue,
``covidct serve`` without the web extra, and the core staying free of the web package."""

from __future__ import annotations

import builtins
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO
from covidct.cli import main
from covidct.errors import InputNotFoundError
from covidct_web.analysis_queue import AnalysisQueue
from covidct_web.data_folder import DataFolder, OutsideDataFolderError


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    (root / "P001").mkdir(parents=True)
    (root / "P001" / "IM0001.dcm").write_bytes(b"")
    (root / "scan.nrrd").write_bytes(b"")
    (root / "notes.txt").write_text("not a scan")
    (root / ".hidden").mkdir()
    (tmp_path / "secret.nrrd").write_bytes(b"")
    return DataFolder(root)


def test_data_folder_lists_folders_then_scans(data):
    assert [(e.name, e.is_folder) for e in data.list("")] == [("P001", True), ("scan.nrrd", False)]
    assert data.parent("P001") == ""


@pytest.mark.parametrize("relative", ["../secret.nrrd", "P001/../../secret.nrrd", "/../secret.nrrd"])
def test_data_folder_cannot_be_left(data, relative):
    with pytest.raises(OutsideDataFolderError, match="outside the data folder"):
        data.resolve(relative)


def test_data_folder_refuses_a_link_that_leads_out(data, tmp_path):
    os.symlink(tmp_path / "secret.nrrd", data.root / "link.nrrd")
    with pytest.raises(OutsideDataFolderError):
        data.resolve("link.nrrd")
    assert "link.nrrd" not in [e.name for e in data.list("")]


def test_data_folder_missing_path(data):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        data.resolve("nope")


def test_queue_runs_at_most_n_and_serves_in_order(tmp_path):
    queue = AnalysisQueue(tmp_path, slots=2)
    first, second, third, fourth = (queue.join() for _ in range(4))
    assert [queue.position(t) for t in (first, second, third, fourth)] == [0, 0, 1, 2]
    queue.leave(first)
    assert [queue.position(t) for t in (second, third, fourth)] == [0, 0, 1]


def test_queue_drops_tickets_of_dead_sessions(tmp_path):
    queue = AnalysisQueue(tmp_path, slots=1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / "00000000000000000001-dead.ticket").write_text(dead)
    mine = queue.join()
    assert queue.position(mine) == 0
    assert not (tmp_path / "00000000000000000001-dead.ticket").exists()


def test_serve_without_the_web_extra_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    real_import = builtins.__import__

    def no_trame(name, *args, **kwargs):
        if name.startswith("trame_slicer"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_trame)
    assert main(["serve", "--data-dir", str(tmp_path)]) == 5
    assert 'pip install "covidct[web]"' in capsys.readouterr().err


def test_serve_refuses_a_missing_data_dir(tmp_path, capsys):
    assert main(["serve", "--data-dir", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_core_never_imports_the_web_package():
    offenders = [path.name for path in (REPO / "CovidCT" / "covidct").rglob("*.py")
                 if re.search(r"^\s*(import|from)\s+(covidct_web|trame)", path.read_text(), flags=re.M)
                 and path.name != "serve_command.py"]
    assert not offenders
    serve = (REPO / "CovidCT" / "covidct" / "cli" / "serve_command.py").read_text()
    assert not re.search(r"^(import|from)\s+(covidct_web|trame)", serve, flags=re.M), "import lazily"
