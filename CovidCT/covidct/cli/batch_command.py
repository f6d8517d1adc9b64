"""``covidct batch INPUTS -o OUTDIR``: a whole cohort on Dask, resumable (see :mod:`covidct.cohort`)."""

from __future__ import annotations

import sys

from ..errors import PARTIAL_FAILURE_EXIT_CODE, MissingDependencyError
from .common import add_analysis_arguments, add_device_argument, add_progress_argument, analysis_options_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "batch", help="analyse a cohort (folder of DICOM series or CSV manifest) on a Dask cluster, resumably",
        description="Analyse every series under INPUTS (searched recursively, grouped by SeriesInstanceUID) "
                    "or every scan listed in a CSV manifest (path, optional id, label, series_uid). Writes "
                    "OUTDIR/scans/<key>/ per scan, OUTDIR/manifest.json, cohort.csv, cohort.json and, with "
                    "labels, OUTDIR/evaluation/. Rerun the same command to resume.")
    parser.add_argument("inputs", help="folder of DICOM studies/series (and volume files), or a CSV manifest")
    parser.add_argument("-o", "--output", required=True, help="output folder (created; reused to resume)")
    parser.add_argument("--workers", type=int, help="local workers (default: one per GPU, else cores / threads)")
    parser.add_argument("--threads-per-worker", type=int, help="PyTorch threads of each worker (default: cores / workers)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                                            "(default: start a LocalCluster on this machine)")
    add_device_argument(parser)
    parser.add_argument("--labels", help="CSV with id (or path) and label (1/0) per scan: adds the evaluation page")
    parser.add_argument("--retry-failed", action="store_true", help="analyse again the scans that failed before")
    add_analysis_arguments(parser)
    add_progress_argument(parser)
    parser.set_defaults(handler=run_batch)


def run_batch(args) -> int:
    try:
        from ..cohort import CohortOptions, run_cohort
    except ImportError as exc:
        raise MissingDependencyError(f"covidct batch needs Dask ({exc.name} is not installed): "
                               "pip install 'covidct[cohort]' (or: pip install dask distributed).") from None
    progress = args.progress
    if progress == "auto":
        progress = "bar" if sys.stderr.isatty() else "none"
    options = CohortOptions(workers=args.workers, threads_per_worker=args.threads_per_worker,
                            scheduler=args.scheduler, retry_failed=args.retry_failed, labels=args.labels,
                            progress=progress, analysis=analysis_options_from_args(args))
    summary = run_cohort(args.inputs, args.output, options)
    print(f"{summary.total} scans: {summary.done} done ({summary.skipped} from earlier runs), "
          f"{summary.failed} failed, {summary.pending} not finished; {summary.ran} analysed in "
          f"{summary.seconds:.1f} s ({summary.scans_per_minute:.1f} scans/min)")
    for scan_id, error_class, message in summary.failures:
        print(f"failed {scan_id}: {error_class}: {message}")
    print(f"Cohort table: {args.output}/cohort.csv" + (" (evaluation in evaluation/)" if any(
        "evaluation" in p for p in summary.outputs) else ""))
    if summary.interrupted:
        print("Interrupted: rerun the same command to continue where it stopped.", file=sys.stderr)
        return 130
    return PARTIAL_FAILURE_EXIT_CODE if summary.failed else 0
