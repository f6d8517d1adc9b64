"""The cohort's memory: ``OUTDIR/manifest.json``, one entry per scan, written only by the client.

States: ``pending`` -> ``running`` -> ``done`` | ``failed``.  Workers never write it; they
return their result to the client, which rewrites the whole file atomically (temporary
file + rename) after every change, so a crash leaves the last complete version.

On a rerun (:meth:`CohortManifest.reconcile`) a scan that was ``running`` when the run
died goes back to ``pending``; ``done`` stays done unless its input changed;
``failed`` is retried only when asked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import OutputError
from ..io import write_text_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATES = (PENDING, RUNNING, DONE, FAILED)


class CohortManifest:
    """Per-scan state plus the analysis options the cohort was started with."""

    def __init__(self, path: Path, options: dict, entries: dict):
        self.path = Path(path)
        self.options = options
        self.entries = entries  # key -> dict

    @classmethod
    def open(cls, output_dir, options: dict) -> "CohortManifest":
        """The manifest in ``output_dir`` (new when absent); refuses one made with other options."""
        path = Path(output_dir) / MANIFEST_NAME
        if not path.exists():
            return cls(path, options, {})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = {entry["key"]: entry for entry in data["scans"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OutputError(f"{path} is damaged ({type(exc).__name__}); move it away to start the cohort "
                              "afresh (finished result folders are kept but will be redone).") from None
        if data.get("options", options) != options:
            raise OutputError(
                f"{path.parent} holds a cohort analysed with other options ({data.get('options')}); "
                "rerun with the same options, or choose a new output folder.")
        return cls(path, options, entries)

    def reconcile(self, scans, retry_failed: bool, result_exists=lambda key: True) -> list:
        """Bring the entries in line with the inputs found now; returns the scans to run.

        A done scan whose result folder has gone (``result_exists(key)`` false) is run again.
        """
        to_run = []
        for scan in scans:
            entry = self.entries.get(scan.key)
            changed = entry is not None and (entry.get("fingerprint") != scan.fingerprint or (
                entry.get("state") == DONE and not result_exists(scan.key)))
            if entry is None or changed:
                entry = self.entries[scan.key] = {"key": scan.key, "attempts": 0}
            entry.update(id=scan.scan_id, path=scan.path, series_uid=scan.series_uid,
                         fingerprint=scan.fingerprint, label=scan.label)
            if changed or entry.get("state") in (None, RUNNING):
                self._set(entry, PENDING)
            elif entry["state"] == FAILED and retry_failed:
                self._set(entry, PENDING)
            if entry["state"] == PENDING:
                to_run.append(scan)
        return to_run

    @staticmethod
    def _set(entry: dict, state: str, **fields) -> None:
        entry["state"] = state
        entry["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if state in (PENDING, RUNNING):
            for stale in ("error_class", "message", "exit_code"):
                entry.pop(stale, None)
        entry.update(fields)

    def mark_running(self, key: str, worker: str, address: str = "") -> None:
        entry = self.entries[key]
        if entry["state"] in (PENDING, RUNNING):
            self._set(entry, RUNNING, worker=worker, worker_address=address,
                      attempts=int(entry.get("attempts", 0)) + 1)

    def mark_pending(self, key: str) -> None:
        if self.entries[key]["state"] == RUNNING:
            self._set(self.entries[key], PENDING)

    def release_lost(self, live_addresses, keys) -> bool:
        """Scans running on a worker that is gone go back to pending (Dask runs them again)."""
        lost = [k for k in keys if self.entries[k]["state"] == RUNNING
                and self.entries[k].get("worker_address") not in live_addresses]
        for key in lost:
            self.mark_pending(key)
        return bool(lost)

    def record(self, outcome: dict) -> None:
        """A worker's outcome (see :func:`covidct.cohort.worker.analyze_on_worker`)."""
        entry = self.entries[outcome["key"]]
        fields = {k: v for k, v in outcome.items() if k not in ("key", "state", "row")}
        self._set(entry, outcome["state"], **fields)

    def counts(self, keys=None) -> dict:
        keys = self.entries.keys() if keys is None else keys
        counts = dict.fromkeys(STATES, 0)
        for key in keys:
            counts[self.entries[key]["state"]] += 1
        return counts

    def save(self) -> None:
        data = {"manifest_version": MANIFEST_VERSION, "options": self.options,
                "scans": sorted(self.entries.values(), key=lambda e: e["key"])}
        write_text_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
