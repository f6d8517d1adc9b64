"""Tabulate ``covidct evaluate-enhancer --json`` outputs as the enhancer card's Markdown rows.

Each argument is ``LABEL=PATH`` (the JSON printed by ``covidct evaluate-enhancer --json``);
one row per label, condition and enhancer method, so the card's per-degradation and
cross-validation tables are rebuilt from the evaluation files instead of copied by hand:

    python tools/enhancer_tables.py "1.0 shipped=runs/enh_shipped/eval.json" "2 candidate=runs/enh_c32_long/eval.json"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(label: str, results: dict) -> list:
    out = []
    for condition, entry in results["conditions"].items():
        bicubic = entry["methods"]["bicubic"]
        for method, m in entry["methods"].items():
            if not method.startswith("enhancer"):
                continue
            ci = m.get("gain_psnr_body_db_ci95") or ["?", "?"]
            ssim_ci = m.get("gain_ssim_body_ci95") or ["?", "?"]
            texture = m.get("texture", {})
            out.append(f"| {label} | {results['patient']} | {condition} | {method.split('_', 1)[1]} | "
                       f"{bicubic['psnr_body']:.2f} | {m['psnr_body']:.2f} | **{m['gain_psnr_body_db']:+.2f}** "
                       f"[{ci[0]:+.2f}, {ci[1]:+.2f}] | {m['gain_ssim_body']:+.4f} [{ssim_ci[0]:+.4f}, {ssim_ci[1]:+.4f}] | "
                       f"{m['slices_improved_fraction']:.2f} | {texture.get('high_frequency_power_ratio', '-')} | "
                       f"{texture.get('grid_phase_bias_hu', '-')} | {texture.get('spectrum_distance_db', '-')} |")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=PATH")
    args = parser.parse_args(argv)
    print("| model | held-out patient | degradation | model kind | bicubic PSNR (body) | model PSNR | gain dB [95 % CI] "
          "| SSIM gain [95 % CI] | slices improved | high-freq. power ratio | grid phase bias (HU) | spectrum distance (dB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for item in args.runs:
        label, path = item.split("=", 1)
        for line in rows(label, json.loads(Path(path).read_text(encoding="utf-8"))):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
