"""Analyse a whole cohort of scans on Dask: resumable, crash-safe, one model load per worker.

The flow, top to bottom: discover the inputs (:mod:`.discovery`) -> reconcile them with
the manifest in the output folder (:mod:`.manifest`) -> run what is left on a Dask
cluster, one scan at a time per worker (:mod:`.runner`, :mod:`.worker`) -> write the
cohort table (:mod:`.outputs`) and, with labels, the evaluation page (:mod:`.evaluation`).
"""

from .discovery import ScanInput, discover_inputs
from .runner import CohortOptions, CohortSummary, run_cohort

__all__ = ["CohortOptions", "CohortSummary", "ScanInput", "discover_inputs", "run_cohort"]
