"""``python -m covidct.research.classifier.harmonise_gate``: the estimator noise behind ``harmonise.GATE_HU``.

How far :func:`covidct.classify.harmonise.estimate` puts the window of slices whose true
window is known: the HU scans' slices in the classifier's slice cache are rendered at the
canonical lung window, so any deviation there is the estimator's own error.  The 8-bit
sources (true window unknown) are printed alongside for comparison.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from ...classify.harmonise import estimate

PERCENTILES = (50, 90, 95, 99)


def deviation_percentiles(images: np.ndarray, sources: np.ndarray, step: int = 1) -> dict:
    """Per source: percentiles of the estimated window's deviation from the canonical one (HU)."""
    out = {}
    for source in np.unique(sources):
        index = np.flatnonzero(sources == source)[::step]
        deviations = np.array([estimate(images[i].astype(np.float32)).deviation_hu() for i in index])
        deviations = deviations[np.isfinite(deviations)]
        out[str(source)] = {"slices": int(index.size),
                            **{f"p{q}": round(float(np.percentile(deviations, q)), 1) for q in PERCENTILES}}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True,
                        help="classifier slice cache (.npz, built by covidct train-classifier)")
    parser.add_argument("--step", type=int, default=1, help="use every STEP-th slice")
    args = parser.parse_args(argv)
    cache = np.load(args.cache, allow_pickle=False)
    print(json.dumps(deviation_percentiles(cache["images"], cache["source"], args.step), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
