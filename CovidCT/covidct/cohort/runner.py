"""Run a cohort on Dask: a LocalCluster by default, any scheduler given by address.

The client is the only writer of the output folder's bookkeeping (manifest, tables);
workers write only their scan's result folder, which ``analyze_scan`` publishes
atomically.  Interrupting (Ctrl-C, SIGTERM) cancels what is queued, puts running scans
back to pending and leaves a manifest that a rerun of the same command resumes from.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..analyze import AnalysisOptions
from ..errors import CovidCTError, OutputError, UnsupportedInputError
from .discovery import apply_labels, discover_inputs
from .manifest import DONE, FAILED, PENDING, CohortManifest
from .progress_display import CohortProgress


RESULTS_FOLDER = "scans"
LOCK_NAME = ".covidct-batch.lock"
WORKER_CHECK_S = 2.0  # how often running scans are checked against the live workers
# Options that change what a result holds; a resumed cohort must keep them.
RESULT_OPTIONS = ("enhance", "scale", "enhancer_model", "classify_on", "include_identifiers", "report",
                  "key_slice_count")


@dataclass
class CohortOptions:
    """How to run the cohort (the analysis itself is ``analysis``)."""

    workers: Optional[int] = None          # default: cores // threads (CPU), one per GPU
    threads_per_worker: Optional[int] = None
    scheduler: Optional[str] = None        # tcp://host:8786 of a running cluster
    retry_failed: bool = False
    labels: Optional[str] = None
    progress: str = "none"                 # bar | json | none
    analysis: AnalysisOptions = field(default_factory=AnalysisOptions)


@dataclass
class CohortSummary:
    total: int
    done: int
    failed: int
    pending: int
    skipped: int                           # already done before this run
    ran: int                               # finished (done or failed) in this run
    seconds: float
    interrupted: bool = False
    dashboard: Optional[str] = None
    model_load_s: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    failures: list = field(default_factory=list)   # (id, error class, message)

    @property
    def scans_per_minute(self) -> float:
        return 60.0 * self.ran / self.seconds if self.seconds > 0 else 0.0


def result_dir(output_dir: Path, key: str) -> Path:
    return Path(output_dir) / RESULTS_FOLDER / key


@contextmanager
def _exclusive(output_dir: Path):
    """One batch at a time per output folder (the manifest has a single writer)."""
    lock = output_dir / LOCK_NAME
    for _ in range(2):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # left by a run that was killed
                continue
            except PermissionError:
                pass
            raise OutputError(f"Another covidct batch (process {pid}) is writing {output_dir}; wait for it "
                              "or stop it first.") from None
    else:
        raise OutputError(f"Cannot lock {output_dir}; remove {lock} if no batch is running.")
    os.write(handle, str(os.getpid()).encode())
    os.close(handle)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _remove_staging_leftovers(output_dir: Path) -> None:
    """Half-written result folders of workers that were killed (never published)."""
    for leftover in (output_dir / RESULTS_FOLDER).glob(".*.partial-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def default_layout(device: str, workers: Optional[int], threads: Optional[int]) -> tuple:
    """(workers, threads per worker): one worker per GPU, else the cores shared out."""
    import torch

    from ..devices import available_cpu_cores

    cores = available_cpu_cores()
    gpus = torch.cuda.device_count() if (device.startswith("cuda") or
                                         (device == "auto" and torch.cuda.is_available())) else 0
    if workers is None:
        workers = gpus if gpus and device in ("auto", "cuda") else max(1, cores // (threads or 1))
    if threads is None:
        threads = max(1, cores // workers)
    if workers < 1 or threads < 1:
        raise CovidCTError("--workers and --threads-per-worker must be at least 1.")
    return workers, threads


def _start_client(options: CohortOptions, workers: int, threads: int):
    import importlib.util

    from distributed import Client, LocalCluster

    for name in ("distributed", "distributed.nanny", "distributed.worker", "distributed.scheduler"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if options.scheduler:
        try:
            return Client(options.scheduler, timeout="30s"), None
        except (OSError, TimeoutError) as exc:
            raise OutputError(f"Cannot reach the Dask scheduler at {options.scheduler} ({exc}). Check the "
                              "address and that the scheduler is running.") from None
    dashboard = ":0" if importlib.util.find_spec("bokeh") else None
    # One Dask thread per worker: a worker analyses one scan at a time with `threads` for PyTorch.
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=dashboard,
                           env={"COVIDCT_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)})
    return Client(cluster), cluster


def _failure_of(future) -> dict:
    """The outcome of a task that raised instead of returning (its worker died, or Dask failed)."""
    from distributed import KilledWorker

    exc = future.exception()
    if isinstance(exc, KilledWorker):
        return {"state": FAILED, "error_class": "WorkerCrashed", "exit_code": 1,
                "message": "the worker analysing this scan died repeatedly (out of memory, or a crash in a "
                           "library); give each worker more memory (fewer --workers) and rerun with --retry-failed."}
    return {"state": FAILED, "error_class": type(exc).__name__, "message": str(exc), "exit_code": 1}


@contextmanager
def _sigterm_as_interrupt():
    """A scheduler's SIGTERM stops the cohort as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_pending(client, manifest: CohortManifest, to_run: list, output_dir: Path, analysis: AnalysisOptions,
                 progress: CohortProgress, keys: list) -> None:
    from .worker import STARTED_TOPIC, analyze_on_worker

    started = queue.Queue()
    client.subscribe_topic(STARTED_TOPIC, lambda event: started.put(event[1]))
    run_token = uuid.uuid4().hex[:8]  # task keys never collide with a previous run's on a shared scheduler
    futures = {client.submit(analyze_on_worker, scan, str(result_dir(output_dir, scan.key)), analysis,
                             key=f"covidct-analyze-{scan.key}-{run_token}", pure=False): scan.key
               for scan in to_run}
    remaining = set(futures)
    next_check = time.monotonic() + WORKER_CHECK_S
    # Every change is saved at once for hundreds of scans; a manifest of thousands (megabytes)
    # at most every 2 s, so a crash redoes at most those seconds of work.
    save_interval_s = min(2.0, len(manifest.entries) / 5000)
    unsaved, saved_at = False, time.monotonic()
    try:
        while remaining:
            changed = False
            while not started.empty():
                event = started.get()
                manifest.mark_running(event["key"], event["worker"], event.get("address", ""))
                changed = True
            if time.monotonic() >= next_check:
                changed |= manifest.release_lost(set(client.scheduler_info(n_workers=-1)["workers"]),
                                                 futures.values())
                next_check = time.monotonic() + WORKER_CHECK_S
            finished = [f for f in remaining if f.done()]
            for future in finished:
                remaining.discard(future)
                key = futures.pop(future)
                if future.status == "cancelled":  # e.g. the scheduler was restarted: run it next time
                    manifest.mark_pending(key)
                else:
                    outcome = future.result() if future.status == "finished" else _failure_of(future)
                    manifest.record(dict(outcome, key=key))
                future.release()
                changed = True
            if changed:
                unsaved = True
                progress.update(manifest.counts(keys))
            if unsaved and time.monotonic() - saved_at >= save_interval_s:
                manifest.save()
                unsaved, saved_at = False, time.monotonic()
            if not changed:
                time.sleep(0.2)
    finally:
        if remaining:
            client.cancel(list(remaining))
            for key in futures.values():
                manifest.mark_pending(key)
        manifest.save()


def _model_load_seconds(client) -> dict:
    from .worker import STORE_NAME

    def loaded(dask_worker):
        store = dask_worker.plugins.get(STORE_NAME)
        return getattr(store, "load_seconds", None)

    try:
        return {str(k): v for k, v in client.run(loaded).items()}
    except Exception:  # noqa: BLE001 - informative only
        return {}


def run_cohort(inputs, output_dir, options: Optional[CohortOptions] = None) -> CohortSummary:
    """Analyse every scan under ``inputs`` (folder or CSV) into ``output_dir``; resumable."""
    from .outputs import write_cohort_tables
    from .worker import WorkerModels

    options = options or CohortOptions()
    began = time.perf_counter()
    output_dir = Path(output_dir)
    if not options.scheduler:
        from ..devices import select_device

        select_device(options.analysis.device)  # refuse an absent GPU before starting any worker
    scans = discover_inputs(inputs)
    if not scans:
        raise UnsupportedInputError(f"No DICOM series or volume files found under {inputs}.")
    if options.labels:
        apply_labels(scans, options.labels)
    try:
        (output_dir / RESULTS_FOLDER).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create {output_dir}: {exc.strerror}.") from None
    analysis = options.analysis
    recorded = {name: getattr(analysis, name) for name in RESULT_OPTIONS}
    keys = [scan.key for scan in scans]
    with _exclusive(output_dir):
        manifest = CohortManifest.open(output_dir, recorded)
        _remove_staging_leftovers(output_dir)
        to_run = manifest.reconcile(scans, options.retry_failed,
                                    lambda key: (result_dir(output_dir, key) / "result.json").exists())
        manifest.save()
        counts = manifest.counts(keys)
        skipped = counts[DONE] + counts[FAILED]
        progress = CohortProgress(options.progress, len(scans), skipped)
        summary = CohortSummary(total=len(scans), done=0, failed=0, pending=0, skipped=counts[DONE], ran=0,
                                seconds=0.0)
        if to_run:
            workers, threads = default_layout(analysis.device, options.workers, options.threads_per_worker)
            client, cluster = _start_client(options, workers, threads)
            try:
                # A remote worker without --threads-per-worker uses its own cores.
                budget = options.threads_per_worker if options.scheduler else threads
                client.register_plugin(WorkerModels(analysis.device, budget, analysis.enhance,
                                                    analysis.enhancer_model), name=WorkerModels.name)
                summary.dashboard = _dashboard_link(client)
                if summary.dashboard:
                    progress.message(f"Dask dashboard: {summary.dashboard}")
                progress.update(counts)
                with _sigterm_as_interrupt():
                    _run_pending(client, manifest, to_run, output_dir,
                                 analysis, progress, keys)
                summary.model_load_s = _model_load_seconds(client)
            except KeyboardInterrupt:
                summary.interrupted = True
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
        counts = manifest.counts(keys)
        progress.update(counts, final=True)
        summary.done, summary.failed, summary.pending = counts[DONE], counts[FAILED], counts[PENDING] + counts["running"]
        summary.ran = counts[DONE] + counts[FAILED] - skipped
        summary.failures = [(manifest.entries[k]["id"], manifest.entries[k].get("error_class", ""),
                             manifest.entries[k].get("message", "")) for k in keys
                            if manifest.entries[k]["state"] == FAILED]
        summary.outputs = write_cohort_tables(output_dir, scans, manifest, analysis.include_identifiers)
        summary.seconds = round(time.perf_counter() - began, 3)
    return summary


def _dashboard_link(client) -> Optional[str]:
    try:
        import importlib.util

        return client.dashboard_link if importlib.util.find_spec("bokeh") else None
    except Exception:  # noqa: BLE001 - a cluster without a dashboard
        return None
