"""``covidct serve``: the analysis and review in a browser (needs the ``web`` extra).

The web package is imported only when the command runs, so the core and its other
commands never need trame.
"""

from __future__ import annotations

import signal
from pathlib import Path

from ..errors import CovidCTError, InputNotFoundError

WEB_EXTRA_HINT = 'pip install "covidct[web]"  (or: pip install "trame-slicer[standalone]==2.0.0")'


class WebExtraMissingError(CovidCTError):
    """``covidct serve`` without trame-slicer installed."""

    exit_code = 5


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="open, analyse and review scans in a web browser (trame-slicer)",
        description="Start the CovidCT web app. Each browser tab gets its own session (scene and "
                    "work folder); scans are opened from --data-dir (the file browser cannot leave it), "
                    "uploaded, or the bundled sample is used.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: localhost only)")
    parser.add_argument("--port", type=int, default=8080, help="port of the URL to open (default 8080)")
    parser.add_argument("--data-dir", default=".", help="folder the file browser shows (default: current)")
    parser.add_argument("--max-analyses", type=int, default=1,
                        help="analyses run at once; others wait in line (default 1)")
    parser.add_argument("--session-timeout", type=int, default=30,
                        help="seconds after a tab closes before its session and files are removed")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.set_defaults(handler=run_serve)


def run_serve(args) -> int:
    data_dir = Path(args.data_dir).resolve()
    if not data_dir.is_dir():
        raise InputNotFoundError(f"--data-dir {args.data_dir} is not a folder.")
    try:
        from covidct_web.launcher import ServeOptions, serve
        import trame_slicer  # noqa: F401 - only to check the extra is there
    except ImportError as exc:
        raise WebExtraMissingError(f"the web app needs the 'web' extra ({exc.name} is missing): "
                                   f"{WEB_EXTRA_HINT}") from None
    signal.signal(signal.SIGTERM, _stop)  # stop like Ctrl+C: the sessions and their files go too
    return serve(ServeOptions(host=args.host, port=args.port, data_dir=data_dir,
                              max_analyses=args.max_analyses, session_timeout_s=args.session_timeout,
                              device=args.device))


def _stop(*_):
    raise KeyboardInterrupt
