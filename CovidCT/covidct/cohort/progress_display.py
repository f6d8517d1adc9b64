"""Cohort progress for people (one bar line on a terminal) and programs (JSON lines)."""

from __future__ import annotations

import json
import sys
import time


def _clock(seconds) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class CohortProgress:
    """``update(counts)`` after each change; ``mode`` is ``bar``, ``json`` or ``none``.

    The ETA counts only scans finished in this run (resumed ones took no time now).
    """

    def __init__(self, mode: str, total: int, already_finished: int, stream=None):
        self.mode = mode
        self.total = total
        self.already_finished = already_finished
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._last_line = None

    def eta_s(self, finished: int):
        finished_now = finished - self.already_finished
        if finished_now <= 0:
            return None
        per_scan = (time.monotonic() - self.started) / finished_now
        return per_scan * (self.total - finished)

    def update(self, counts: dict, final: bool = False) -> None:
        finished = counts["done"] + counts["failed"]
        eta = self.eta_s(finished)
        if self.mode == "json":
            line = json.dumps({"done": counts["done"], "failed": counts["failed"], "running": counts["running"],
                               "pending": counts["pending"], "total": self.total,
                               "eta_s": None if eta is None else round(eta, 1)})
            if line != self._last_line or final:
                self.stream.write(line + "\n")
        elif self.mode == "bar":
            width = 30
            filled = int(round(width * finished / max(1, self.total)))
            line = (f"\r[{'#' * filled}{'.' * (width - filled)}] {finished}/{self.total} "
                    f"done {counts['done']} failed {counts['failed']} running {counts['running']} "
                    f"ETA {_clock(eta)}  ")
            if line != self._last_line or final:
                self.stream.write(line + ("\n" if final else ""))
        else:
            return
        self._last_line = line
        self.stream.flush()

    def message(self, text: str) -> None:
        if self.mode == "bar" and self._last_line:
            self.stream.write("\n")
            self._last_line = None
        if self.mode == "json":
            self.stream.write(json.dumps({"message": text}) + "\n")
        elif self.mode == "bar":
            self.stream.write(text + "\n")
        self.stream.flush()
