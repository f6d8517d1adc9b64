"""What runs on a Dask worker: a model store loaded once, and one scan's analysis at a time.

:class:`WorkerModels` is a worker plugin: when a worker starts (or restarts after a crash)
it fixes the worker's thread budget and device and fills the worker's own
:class:`covidct.models.ModelStore` with the classifier (and the enhancers the options may
need); ``analyze_scan`` is given that store, so every scan after the first reuses them.
:func:`analyze_on_worker` runs the core's ``analyze_scan`` and turns any failure into an
outcome for the manifest: one bad scan never stops the cohort.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import traceback

from distributed.diagnostics.plugin import WorkerPlugin

from ..analyze import AnalysisOptions, analyze_scan
from ..errors import CovidCTError
from .discovery import ScanInput, content_sha256
from .manifest import DONE, FAILED

log = logging.getLogger(__name__)

STORE_NAME = "covidct-model-store"
STARTED_TOPIC = "covidct-scan-started"


def device_for_worker(requested: str, worker_name) -> str:
    """One GPU per worker: worker ``k`` of a local cluster gets ``cuda:k`` (modulo the GPUs it sees).

    A worker that sees one GPU (``CUDA_VISIBLE_DEVICES`` set per worker, as dask-cuda
    does) uses it; the CPU and explicit ``cuda:N`` stay as asked.
    """
    import torch

    requested = (requested or "auto").lower()
    wants_gpu = requested == "cuda" or (requested == "auto" and torch.cuda.is_available())
    if not wants_gpu:
        return "cpu" if requested == "auto" else requested
    count = torch.cuda.device_count()
    try:
        index = int(worker_name)
    except (TypeError, ValueError):
        index = 0
    return f"cuda:{index % count}" if count > 1 else "cuda"


class WorkerModels(WorkerPlugin):
    """Worker plugin (``distributed`` calls ``setup`` in each worker process)."""

    name = STORE_NAME

    def __init__(self, device: str = "auto", threads=None, enhance: str = "auto",
                 enhancer_model: str = "default"):
        self.requested_device = device
        self.threads = threads  # None: the cores this worker process may use
        self.enhance = enhance
        self.enhancer_model = enhancer_model
        self.device = "cpu"
        self.load_seconds = 0.0
        self.lock = threading.Lock()

    def __getstate__(self):  # the lock and the models stay behind; each worker loads its own
        return {k: v for k, v in self.__dict__.items() if k not in ("lock", "models", "classifier")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.lock = threading.Lock()

    def setup(self, worker=None):
        from ..devices import configure_cpu_threads
        from ..enhance.inference import DEFAULT_MODEL, MODEL_KEYS
        from ..models import ModelStore

        # analyze_scan sets PyTorch's threads from this, so each worker keeps to its budget.
        self.threads = configure_cpu_threads(self.threads)
        os.environ["COVIDCT_NUM_THREADS"] = str(self.threads)
        self.device = device_for_worker(self.requested_device, getattr(worker, "name", 0))
        began = time.perf_counter()
        # Every enhancer stays resident: scans of one cohort need different scales.
        self.models = ModelStore(device=self.device, resident_enhancers=len(set(MODEL_KEYS.values())))
        self.classifier = self.models.classifier()
        if self.enhance != "off":
            model = DEFAULT_MODEL if self.enhancer_model == "default" else self.enhancer_model
            for scale, name in MODEL_KEYS:
                if name == model:
                    self.models.enhancer(scale, name)
        self.load_seconds = round(time.perf_counter() - began, 3)

    def uses_loaded_classifier(self) -> bool:
        """True while the worker's store still returns the classifier loaded at setup."""
        return self.models.classifier() is self.classifier

    def teardown(self, worker=None):
        return None


def _hash_or_empty(files) -> str:
    try:
        return content_sha256(files) if files else ""
    except OSError:
        return ""  # the analysis reports the unreadable input in its own words


def analyze_on_worker(scan: ScanInput, result_dir: str, options: AnalysisOptions) -> dict:
    """Analyse one scan into ``result_dir``; returns the outcome the client records."""
    from distributed import get_worker

    worker = get_worker()
    store = worker.plugins[STORE_NAME]
    with store.lock:  # one scan at a time per worker, whatever its Dask thread count
        worker.log_event(STARTED_TOPIC, {"key": scan.key, "worker": str(worker.name), "address": worker.address})
        began = time.perf_counter()
        outcome = {"key": scan.key, "worker": str(worker.name), "device": store.device,
                   "content_sha256": _hash_or_empty(scan.files)}
        chosen = dataclasses.replace(options, device=store.device,
                                     series_uid=scan.series_uid if scan.choose_series else None,
                                     overwrite=True)
        try:
            analyze_scan(scan.path, result_dir, chosen, models=store.models)
            outcome["state"] = DONE
            outcome["model_reused"] = store.uses_loaded_classifier()
        except CovidCTError as exc:
            outcome.update(state=FAILED, error_class=type(exc).__name__, message=str(exc),
                           exit_code=exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - a bug on one scan must not stop the cohort
            log.error("scan %s: unexpected error\n%s", scan.key, traceback.format_exc())
            outcome.update(state=FAILED, error_class=type(exc).__name__,
                           message=f"unexpected error (a bug; please report it): {exc}", exit_code=1)
        outcome["seconds"] = round(time.perf_counter() - began, 3)
    return outcome
