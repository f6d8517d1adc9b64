"""Arguments and output helpers shared by the subcommands."""

from __future__ import annotations

import sys

from .. import progress as progress_mod
from ..devices import DEVICE_CHOICES
from ..json_encoding import to_json_text


def add_device_argument(parser) -> None:
    parser.add_argument("--device", default="auto",
                        help=f"compute device: {', '.join(DEVICE_CHOICES)} or cuda:N (default: auto = GPU if present)")


def add_json_argument(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def add_progress_argument(parser) -> None:
    parser.add_argument("--progress", choices=("auto", "bar", "json", "none"), default="auto",
                        help="progress on stderr: a bar on a terminal, JSON lines for programs (default: auto)")


def progress_from_args(args):
    mode = getattr(args, "progress", "none")
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "none"
    return {"bar": progress_mod.terminal_bar, "json": progress_mod.json_lines}.get(
        mode, lambda: progress_mod.silent)()


def print_json(data) -> None:
    sys.stdout.write(to_json_text(data) + "\n")


def add_analysis_arguments(parser) -> None:
    """What the analysis of each scan does (shared by ``analyze`` and ``batch``)."""
    parser.add_argument("--enhance", choices=("auto", "on", "off"), default="auto",
                        help="super-resolution: auto = only when the quality gate says it helps (default)")
    parser.add_argument("--scale", choices=("auto", "1", "2", "4"), default="auto",
                        help="enhancement scale (auto: brings the matrix to at least 512)")
    parser.add_argument("--enhancer-model", choices=("default", "gan", "fidelity"), default="default",
                        help="which shipped enhancer to use (default: the one the model card recommends)")
    parser.add_argument("--classify-on", choices=("original", "enhanced"), default="original",
                        help="classify the original slices (default) or the enhanced ones")
    parser.add_argument("--include-identifiers", action="store_true",
                        help="put patient name/ID/birth date in result.json and the report (off by default)")
    parser.add_argument("--no-report", action="store_true", help="skip the PDF report")


def analysis_options_from_args(args, **extra):
    from ..analyze import AnalysisOptions

    return AnalysisOptions(
        device=args.device, enhance=args.enhance,
        scale=args.scale if args.scale == "auto" else int(args.scale),
        enhancer_model=args.enhancer_model, classify_on=args.classify_on,
        include_identifiers=args.include_identifiers, report=not args.no_report, **extra)
