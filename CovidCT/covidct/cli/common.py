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
