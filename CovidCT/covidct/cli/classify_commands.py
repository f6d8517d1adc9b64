"""``covidct classify`` (training and evaluation commands: :mod:`covidct.research.cli_classifier`)."""

from __future__ import annotations

import sys

from .common import add_device_argument, add_json_argument, print_json

from ..errors import PARTIAL_FAILURE_EXIT_CODE


def register(subparsers) -> None:
    p = subparsers.add_parser("classify", help="COVID-19 probability of 2D lung-window slice images",
                              description="Score 2D 8-bit lung-window CT slices (PNG/JPEG/WebP). "
                                          "For whole scans use 'covidct analyze'. Research use only.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    add_device_argument(p)
    add_json_argument(p)
    p.set_defaults(handler=run_classify)


def run_classify(args) -> int:
    """Score every readable image; refused files are listed as errors, not fatal.

    Exit 0 when all were scored, ``PARTIAL_FAILURE_EXIT_CODE`` when some were, else the
    first file's error code (a single bad file exits as it always did).  On failure one
    ``covidct classify: error:`` line goes to stderr, as for every other error.
    """
    from ..classify import classify_images

    results = classify_images(args.images, device=args.device)
    failed = [r for r in results if "error" in r]
    scored = len(results) - len(failed)
    if args.json:
        print_json({"results": results, "failed": len(failed), "scored": scored})
    else:
        for r in results:
            if "error" in r:
                print(f"{r['path']}: ERROR ({r['error']})")
            else:
                print(f"{r['path']}: p(COVID-19) = {r['covid19']:.3f} -> {r['decision']} "
                      f"(threshold {r['threshold']:.3f})" + (f"; warning: {r['warning']}" if "warning" in r else ""))
        print(f"scored {scored} of {len(results)} files; {len(failed)} failed")
    if not failed:
        return 0
    if scored:
        print(f"covidct classify: error: {len(failed)} of {len(results)} files could not be scored "
              "(see their ERROR entries).", file=sys.stderr)
        return PARTIAL_FAILURE_EXIT_CODE
    first = failed[0]["error"] if len(failed) == 1 else \
        f"none of the {len(failed)} files could be scored; the first: {failed[0]['error']}"
    print(f"covidct classify: error: {first}", file=sys.stderr)
    return failed[0]["exit_code"]
