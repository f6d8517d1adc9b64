"""Tabulate classifier training runs (their ``run.json``) as the model card's Markdown rows.

Every number comes from the run's final held-out evaluation, written by
``covidct train-classifier``, so the card's ablation tables can be rebuilt from the run
folders instead of copied by hand:

    python tools/classifier_runs_table.py runs/input96 runs/ensemble/members/classifier_input192 runs/loso_ucsd
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Column title -> the slice set's name in run.json (UCSD is "ucsd" when wholly held out).
SLICE_COLUMNS = (
    ("SARS held-out", ("sars_val", "sars")),
    ("UCSD held-out", ("ucsd_val", "ucsd")),
    ("HU: P001 infected vs non-COVID scans", ("hu_covid_infected_vs_noncovid",)),
    ("HU: within P001", ("hu_covid_scan_infected_vs_clean",)),
    ("HU: infected vs not (CAP positive)", ("hu_infected_vs_not",)),
)
SCANS = ("P001", "cap001", "normal001")


def _auc(entry: dict | None) -> str:
    if not entry or entry.get("auc") is None:
        return "-"
    low, high = entry.get("auc_ci95") or (None, None)
    ci = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
    return f"{entry['auc']:.3f}{ci}"


def row(run_dir: Path, pooling: str) -> str:
    """One Markdown row: the run, its held-out slice AUCs, its pooled scan probabilities."""
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    slices, scans = run["final"]["slice"], run["final"]["scans"]
    cells = [f"`{run_dir.name}` ({run['config'].get('input_size_px')} px, {run['minutes']} min wall)"]
    for _, names in SLICE_COLUMNS:
        cells.append(_auc(next((slices[n] for n in names if n in slices), None)))
    cells.append(" / ".join(f"{scans[s]['pooled'][pooling]:.3f}" if s in scans else "-" for s in SCANS))
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders holding run.json")
    parser.add_argument("--pooling", default="middle_50_mean", help="scan pooling to print (as in run.json)")
    args = parser.parse_args(argv)
    header = ["run"] + [title for title, _ in SLICE_COLUMNS] + [f"scans {' / '.join(SCANS)} ({args.pooling})"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for run_dir in args.runs:
        print(row(run_dir, args.pooling))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
