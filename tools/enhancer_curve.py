"""Plot budgeted enhancer runs' validation curves (``validation.jsonl``) as one PNG.

    python tools/enhancer_curve.py runs/enh_c32_long/validation.jsonl runs/enh_c64/validation.jsonl -o weights/enhancer_validation_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("curves", nargs="+", help="validation.jsonl files (the run folder's name labels each)")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args(argv)
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=120)
    for path in args.curves:
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        for patient in sorted({p for r in rows for p in r["patients"]}):
            points = [(r["step"], r["patients"][patient]["gain_psnr_body_db"]) for r in rows if patient in r["patients"]]
            ax.plot(*zip(*points), marker="o", label=f"{Path(path).parent.name} ({patient} held out)")
    ax.set_xlabel("training step (16 patches of 128 px)")
    ax.set_ylabel("PSNR gain over bicubic, body (dB)")
    ax.set_title("Enhancer x4, clean area down-sampling, EMA weights", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
