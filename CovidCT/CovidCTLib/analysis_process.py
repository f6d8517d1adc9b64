"""Run ``covidct analyze`` in a separate process so Slicer stays responsive, and follow it.

Why a process and not a thread: PyTorch inference holds the GIL for long stretches and
can exhaust memory; in a child process it neither freezes the GUI nor takes Slicer down,
and Cancel can stop it at once by killing the whole process tree (data loaders and any
helpers the core starts included).

A run may have follow-up steps (``covidct report --dicom-source`` after ``covidct analyze
--no-report`` when the input came from Slicer's DICOM database), started one after the
other in the same way; the run owns its work folder and removes it when asked.

Nothing here imports Qt or VTK.  The widget calls :meth:`AnalysisProcess.poll` from a
``QTimer``; scripts and tests call :meth:`AnalysisProcess.wait`.  Result import runs in
the thread that polls (Slicer's main thread), as MRML requires.
"""

from __future__ import annotations

import enum
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

# The folder holding the ``covidct`` core package (the module's own folder in a clone).
CORE_SOURCE_DIR = Path(__file__).resolve().parent.parent

CLI_MODULE = "covidct.cli"  # ``python -m covidct.cli`` == the ``covidct`` command
# Share of the progress bar for the report step (the core gives its own report stage 8 %).
REPORT_STEP_SHARE = 0.08
DICOM_SOURCE_FOLDER = "dicom-source"


class AnalysisState(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    IMPORTING = "importing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (AnalysisState.DONE, AnalysisState.FAILED, AnalysisState.CANCELLED)

    @property
    def busy(self) -> bool:
        return self in (AnalysisState.STARTING, AnalysisState.RUNNING, AnalysisState.IMPORTING)


def python_executable() -> str:
    """Python that runs the core: Slicer's ``PythonSlicer`` inside Slicer, else this interpreter.

    Inside Slicer ``sys.executable`` may be the application itself, which cannot run
    ``-m``; ``COVIDCT_PYTHON`` overrides both.
    """
    override = os.environ.get("COVIDCT_PYTHON")
    if override:
        return override
    slicer_module = sys.modules.get("slicer")
    if slicer_module is not None and getattr(slicer_module, "app", None) is not None:
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


def analyze_command(input_path, out_dir, device: str = "auto", enhance: str = "auto",
                    scale: str = "auto", python: Optional[str] = None, report: bool = True) -> List[str]:
    """Argument list for ``covidct analyze`` with JSON progress on stderr.

    ``report=False`` leaves the PDF to a :func:`report_step` that follows (``--no-report``).
    """
    return [python or python_executable(), "-m", CLI_MODULE, "analyze", os.fspath(input_path),
            "-o", os.fspath(out_dir), "--device", str(device), "--enhance", str(enhance),
            "--scale", str(scale), "--progress", "json"] + ([] if report else ["--no-report"])


def report_command(out_dir, dicom_source, python: Optional[str] = None) -> List[str]:
    """Argument list for ``covidct report OUT --dicom-source DIR``: the PDF plus the DICOM
    Encapsulated PDF and measurement SR that reference the analysed series."""
    return [python or python_executable(), "-m", CLI_MODULE, "report", os.fspath(out_dir),
            "--dicom-source", os.fspath(dicom_source)]


@dataclass(frozen=True)
class Step:
    """A command that runs after the previous one exited with status 0."""

    command: Sequence[str]
    stage: str = ""      # shown until the command reports a stage of its own
    share: float = 0.0   # its part of the progress bar (the first command gets the rest)


def report_step(out_dir, dicom_source, python: Optional[str] = None) -> Step:
    return Step(report_command(out_dir, dicom_source, python), stage="report", share=REPORT_STEP_SHARE)


def dicom_series_files(instance_uids: str, file_for_instance: Callable[[str], str]) -> List[str]:
    """Files of the series a volume was loaded from, given its ``DICOM.instanceUIDs`` attribute
    (space-separated) and the DICOM database's ``fileForInstance``.

    Empty unless every instance is still on disk: a partial series would make the DICOM
    report reference images that were not all analysed.
    """
    files = []
    for uid in (instance_uids or "").split():
        path = file_for_instance(uid)
        if not path or not os.path.isfile(path):
            return []
        files.append(os.path.abspath(path))
    return files


def dicom_source_folder(files: Sequence[str], work_dir) -> Optional[Path]:
    """A folder holding exactly ``files`` (one series), for ``covidct report --dicom-source``.

    The series' own folder when it holds nothing else (Slicer's database keeps one folder
    per series); else ``work_dir/dicom-source`` with a link to each file (a copy where the
    file system allows no links).  ``None`` when there are no files.
    """
    paths = [Path(f) for f in files]
    if not paths:
        return None
    parents = {p.parent for p in paths}
    if len(parents) == 1:
        parent = parents.pop()
        if sorted(os.listdir(parent)) == sorted({p.name for p in paths}):
            return parent
    folder = Path(work_dir) / DICOM_SOURCE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for index, source in enumerate(paths):
        _link_or_copy(source, folder / f"{index:06d}-{source.name}")
    return folder


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.symlink(source, target)
        return
    except (OSError, NotImplementedError):  # Windows without the symlink privilege
        pass
    try:
        os.link(source, target)
    except OSError:  # another drive
        shutil.copyfile(source, target)


def core_environment(base: Optional[dict] = None) -> dict:
    """Environment in which the child finds the ``covidct`` package of this clone first."""
    env = dict(os.environ if base is None else base)
    paths = [os.fspath(CORE_SOURCE_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def parse_progress_line(line: str):
    """``(fraction, stage)`` from a ``{"progress": .., "stage": ..}`` line, else ``None``."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(message, dict) or "progress" not in message:
        return None
    try:
        fraction = min(max(float(message["progress"]), 0.0), 1.0)
    except (TypeError, ValueError):
        return None
    return fraction, str(message.get("stage", ""))


def kill_process_tree(process: subprocess.Popen, grace_s: float = 3.0) -> None:
    """Stop ``process`` and everything it started: terminate, then kill after ``grace_s``."""
    if process.poll() is not None and os.name != "nt":
        # The leader is gone, but children it left in its group may still run.
        _signal_group(process.pid, signal.SIGKILL)
        return
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
        return
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(process.pid, signal.SIGKILL)
    process.wait(timeout=grace_s)


def _signal_group(pid: int, sig) -> None:
    try:
        os.killpg(pid, sig)  # the child leads its own session: its pgid is its pid
    except (ProcessLookupError, PermissionError):
        pass


class AnalysisProcess:
    """One run of a command that reports JSON progress on stderr, then of its follow-up ``then`` steps.

    States: idle -> starting -> running -> importing -> done, or failed / cancelled.
    ``on_success(process)`` (e.g. result import) runs inside :meth:`poll` once the last
    command exited with status 0; an exception there turns the run into ``failed``.

    ``work_dir`` is the folder the run works in and ``out_dir`` the one its results land
    in (both only recorded here); with ``owns_work_dir`` the run created ``work_dir`` and
    :meth:`remove_work_dir` deletes it once the run is over.
    """

    def __init__(self, command: Sequence[str], env: Optional[dict] = None, cwd=None,
                 on_success: Optional[Callable[["AnalysisProcess"], None]] = None,
                 then: Sequence[Step] = (), work_dir=None, out_dir=None, owns_work_dir: bool = False):
        follow_up = list(then)
        rest = 1.0 - sum(step.share for step in follow_up)
        if not 0.0 < rest <= 1.0:
            raise ValueError("The follow-up steps must leave part of the progress bar to the first command.")
        self.steps: List[Step] = [Step([os.fspath(c) for c in command], share=rest)] + [
            Step([os.fspath(c) for c in step.command], step.stage, step.share) for step in follow_up]
        self.command = list(self.steps[0].command)
        self.env = env
        self.cwd = cwd
        self.on_success = on_success
        self.work_dir: Optional[Path] = Path(work_dir) if work_dir is not None else None
        self.out_dir: Optional[Path] = Path(out_dir) if out_dir is not None else None
        self.owns_work_dir = bool(owns_work_dir) and self.work_dir is not None
        self.state = AnalysisState.IDLE
        self.progress = 0.0
        self.stage = ""
        self.log_lines: List[str] = []
        self.error_message = ""
        self.returncode: Optional[int] = None
        self._step_index = 0
        self._last_stderr = ""
        self._process: Optional[subprocess.Popen] = None
        self._lines: "queue.Queue" = queue.Queue()
        self._readers: List[threading.Thread] = []
        self._started_at: Optional[float] = None
        self._cancel_requested = False

    # -- control -------------------------------------------------------------------------
    def start(self) -> "AnalysisProcess":
        if self.state.busy:
            raise RuntimeError("This analysis is already running.")
        self.state = AnalysisState.STARTING
        self._started_at = time.monotonic()
        self._start_step(0)
        return self

    def cancel(self) -> None:
        """Kill the whole process tree now; the state becomes ``cancelled``."""
        if self.state.finished or self.state == AnalysisState.IDLE:
            return
        self._cancel_requested = True
        if self._process is not None:
            kill_process_tree(self._process)
            self.returncode = self._process.returncode
        self._drain()
        self.state = AnalysisState.CANCELLED
        self.stage = "cancelled"
        self.log_lines.append("Analysis cancelled by the user.")

    def poll(self) -> AnalysisState:
        """Take in new output and update the state (call often, from one thread)."""
        if self._process is None or self.state.finished:
            return self.state
        self._drain()
        returncode = self._process.poll()
        if returncode is None:
            return self.state
        for reader in self._readers:
            reader.join(timeout=5)
        self._drain()
        self.returncode = returncode
        if self._cancel_requested:
            self.state = AnalysisState.CANCELLED
        elif returncode != 0:
            self._fail(self._failure_message(returncode))
        elif self._step_index + 1 < len(self.steps):
            self._start_step(self._step_index + 1)
        else:
            self.progress = 1.0
            self.state = AnalysisState.IMPORTING
            self.stage = "importing results"
            try:
                if self.on_success is not None:
                    self.on_success(self)
            except Exception as exc:  # noqa: BLE001 - any import failure ends the run as failed
                self._fail(f"The analysis finished but its results could not be loaded: {exc}")
            else:
                self.state = AnalysisState.DONE
                self.stage = "done"
        return self.state

    def wait(self, timeout_s: Optional[float] = None, interval_s: float = 0.05) -> AnalysisState:
        """Block until finished (scripts, tests); on timeout cancel and raise ``TimeoutError``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.poll().finished:
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"The analysis did not finish within {timeout_s:.0f} s and was stopped.")
            time.sleep(interval_s)
        return self.state

    def remove_work_dir(self) -> bool:
        """Delete ``work_dir`` if this run made it and is not running; True once it is gone."""
        if not self.owns_work_dir or self.state.busy:
            return False
        shutil.rmtree(self.work_dir, ignore_errors=True)
        return not self.work_dir.exists()

    # -- information ---------------------------------------------------------------------
    @property
    def pid(self) -> Optional[int]:
        """Process id of the command running now (or last)."""
        return self._process.pid if self._process is not None else None

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at

    # -- internals -----------------------------------------------------------------------
    def _progress_range(self):
        """(offset, share) of the progress bar for the step running now."""
        offset = sum(step.share for step in self.steps[:self._step_index])
        return offset, self.steps[self._step_index].share

    def _start_step(self, index: int) -> None:
        self._step_index = index
        step = self.steps[index]
        self._last_stderr = ""
        self._readers = []
        self.progress = self._progress_range()[0]
        if step.stage:
            self.stage = step.stage
        if index > 0:
            self.state = AnalysisState.RUNNING  # the first command has run
        popen_kwargs = {}
        if os.name == "nt":
            popen_kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            popen_kwargs["start_new_session"] = True  # own process group: Cancel kills the tree
        try:
            self._process = subprocess.Popen(
                list(step.command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=self.env, cwd=self.cwd, text=True, encoding="utf-8", errors="replace", bufsize=1,
                **popen_kwargs)
        except OSError as exc:
            self._fail(f"Could not start the analysis ({exc}). Check that Python and the CovidCT core "
                       "are installed (Analyze installs them on first use).")
            return
        for stream, name in ((self._process.stdout, "stdout"), (self._process.stderr, "stderr")):
            reader = threading.Thread(target=self._read_lines, args=(stream, name), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _read_lines(self, stream, name: str) -> None:
        try:
            for line in iter(stream.readline, ""):
                self._lines.put((name, line.rstrip("\r\n")))
        except (OSError, ValueError):
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    def _drain(self) -> None:
        while True:
            try:
                name, line = self._lines.get_nowait()
            except queue.Empty:
                return
            parsed = parse_progress_line(line) if name == "stderr" else None
            if parsed is not None:
                fraction, self.stage = parsed
                offset, share = self._progress_range()
                self.progress = offset + share * fraction
                if self.state == AnalysisState.STARTING:
                    self.state = AnalysisState.RUNNING
                continue
            if line.strip():
                self.log_lines.append(line)
                if name == "stderr":
                    self._last_stderr = line
            if self.state == AnalysisState.STARTING:
                self.state = AnalysisState.RUNNING

    def _failure_message(self, returncode: int) -> str:
        detail = self._last_stderr.strip()
        if detail:
            return detail
        return f"The analysis stopped with exit code {returncode}; see the log for details."

    def _fail(self, message: str) -> None:
        self.error_message = message
        self.log_lines.append(message)
        self.state = AnalysisState.FAILED
        self.stage = "failed"
