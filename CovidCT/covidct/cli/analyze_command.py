"""``covidct analyze INPUT -o OUTDIR``: the whole analysis of one scan, for batch work."""

from __future__ import annotations

import signal

from ..analyze import analyze_scan
from ..progress import CancelToken
from .common import (add_analysis_arguments, add_device_argument, add_json_argument, add_progress_argument,
                     analysis_options_from_args, print_json, progress_from_args)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze", help="enhance, classify, map and quantify one chest CT; write volumes, JSON and PDF",
        description="Analyse one chest CT (DICOM folder, NRRD, NIfTI, MHA). Writes OUTDIR/result.json, "
                    "the enhanced, heatmap and lung-mask volumes (NRRD, exact geometry) and report.pdf.")
    parser.add_argument("input", help="DICOM folder or volume file")
    parser.add_argument("-o", "--output", required=True, help="output folder (created; must be new or empty)")
    add_device_argument(parser)
    add_analysis_arguments(parser)
    parser.add_argument("--series", help="SeriesInstanceUID to pick when a folder holds several")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_progress_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=run_analyze)


def run_analyze(args) -> int:
    options = analysis_options_from_args(args, series_uid=args.series, overwrite=args.overwrite)
    cancel = CancelToken()
    # SIGTERM (the Slicer module's Cancel, a batch scheduler) stops cleanly between steps.
    signal.signal(signal.SIGTERM, lambda *_: cancel.cancel())
    result = analyze_scan(args.input, args.output, options, progress_from_args(args), cancel)
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"COVID-19 probability {result.probabilities.covid19:.3f} -> {result.decision} "
              f"(threshold {result.threshold:.3f})")
        basis = result.decision_basis
        if basis:
            print(f"Decided by {basis.basis}: {'; '.join(basis.reasons)}")
        if result.quantification:
            print(f"Lung involvement {result.quantification.total.involvement_percent:.1f} %")
        quality = result.quality
        enhancement = quality.enhancement if quality else None
        print(f"Enhancement: {'applied' if quality and quality.enhancement_applied else 'not applied'}"
              f" ({enhancement.reason if enhancement else ''})")
        print(f"Results in {args.output} (result.json{', report.pdf' if options.report else ''})")
        for warning in result.warnings:
            print(f"Warning: {warning}")
    return 0
