"""``covidct report RESULT_DIR``: the PDF (plus PNG figures, JSON/CSV numbers and DICOM) from an analysis folder."""

from __future__ import annotations

from pathlib import Path

from .common import add_json_argument, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="build the PDF report (and JSON/CSV, DICOM Encapsulated PDF) from an analysis folder",
        description="Build the research-use PDF report from a folder written by 'covidct analyze'. "
                    "Patient name and ID are left out unless --include-identifiers is given.")
    parser.add_argument("result_dir", type=Path, metavar="RESULT_DIR", help="folder holding result.json")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="PDF to write (default: RESULT_DIR/report.pdf); the other files go next to it")
    parser.add_argument("--include-identifiers", action="store_true",
                        help="print patient name/ID/birth date in the PDF and DICOM (off by default)")
    parser.add_argument("--dicom-source", type=Path, default=None, metavar="DIR",
                        help="DICOM folder of the analysed series: the DICOM Encapsulated PDF references its study")
    add_json_argument(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..report import build_report

    written = build_report(args.result_dir, output_pdf=args.output,
                           include_identifiers=args.include_identifiers, source_dicom_dir=args.dicom_source)
    if args.json:
        print_json(written)
    else:
        for kind, path in written.items():
            print(f"{kind}: {path}")
    return 0
