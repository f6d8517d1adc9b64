"""Progress reporting shared by the CLI, the Slicer process runner and tests.

Long steps call ``progress(fraction, stage)``.  The CLI turns that into a bar on a
terminal, or, with ``--progress json``, into one JSON line per update on stderr which
the Slicer module parses (``{"progress": 0.42, "stage": "classify"}``).  A cancel check
can be passed along: it raises :class:`~covidct.errors.CancelledError` when set.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Callable, Optional

from .errors import CancelledError

ProgressCallback = Callable[[float, str], None]


def silent(fraction: float, stage: str) -> None:  # noqa: ARG001 - the no-op callback
    return None


def json_lines(stream=None) -> ProgressCallback:
    stream = stream or sys.stderr

    def report(fraction: float, stage: str) -> None:
        stream.write(json.dumps({"progress": round(float(fraction), 4), "stage": stage}) + "\n")
        stream.flush()

    return report


def terminal_bar(stream=None) -> ProgressCallback:
    stream = stream or sys.stderr

    def report(fraction: float, stage: str) -> None:
        width = 30
        done = int(round(width * min(max(fraction, 0.0), 1.0)))
        stream.write(f"\r[{'#' * done}{'.' * (width - done)}] {fraction * 100:5.1f}% {stage:<24}")
        if fraction >= 1.0:
            stream.write("\n")
        stream.flush()

    return report


def sub_progress(progress: ProgressCallback, start: float, end: float, stage: str) -> ProgressCallback:
    """Map a step's own 0..1 progress into ``[start, end]`` of the whole run."""

    def report(fraction: float, detail: str = "") -> None:
        progress(start + (end - start) * min(max(fraction, 0.0), 1.0), detail or stage)

    return report


class CancelToken:
    """Set from another thread (or a signal handler) to stop a long run between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, optional_stage: Optional[str] = None) -> None:
        if self._event.is_set():
            where = f" during {optional_stage}" if optional_stage else ""
            raise CancelledError(f"Analysis cancelled by the user{where}; nothing was written.")
