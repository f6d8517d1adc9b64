"""``covidct``: one entry point, one subcommand per job.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module
adds its parser and sets ``handler``.  Expected failures (:class:`CovidCTError`) print
one clear message and exit with the error's code; no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__
from ..errors import CovidCTError

# Subcommand modules, in the order they appear in --help.
COMMAND_MODULES = [
    "covidct.cli.info_command",
    "covidct.cli.analyze_command",
    "covidct.cli.batch_command",
    "covidct.cli.classify_commands",
    "covidct.cli.enhance_commands",
    "covidct.cli.report_command",
    "covidct.cli.serve_command",
]
# Training and evaluation commands live in the research package, which the Slicer
# extension does not ship: listed when it is installed, absent otherwise.
RESEARCH_COMMAND_MODULES = [
    "covidct.research.cli_classifier",
    "covidct.research.cli_enhancer",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="covidct",
        description="CovidCT: chest-CT enhancement, COVID-19 classification, heatmaps and "
                    "reports. For research use only; not for clinical diagnosis.")
    parser.add_argument("--version", action="version", version=f"covidct {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for name in RESEARCH_COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("covidct.research"):
                continue  # a runtime-only install (the Slicer extension)
            raise
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except CovidCTError as exc:
        if args.debug:
            raise
        print(f"covidct {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except KeyboardInterrupt:
        print(f"covidct {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
