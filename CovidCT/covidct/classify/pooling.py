"""Slice scores -> one scan probability.

A COVID-19 scan may show disease on only a few slices, so a plain mean dilutes it, and a
plain maximum lets one noisy slice decide.  The candidates compared (on held-out HU scans,
see the model card) are:

* ``top_k_mean``: mean of the k highest slice scores (k = 10 % of lung slices, >= 3);
* ``noisy_or``: 1 - prod(1 - p) over the top-k slices (over all slices it saturates at 1
  for any long scan, so it is restricted the same way);
* ``middle_50_mean``: mean over the central half of the lung slices by position
  (ai-corona: the mid-lung slices carry the most parenchyma);
* ``any_slice``: the maximum slice score, i.e. "COVID-19 if any slice is above the
  threshold" (seed 003's rule).

All take scores in slice order (``None``/NaN = slice without lung, ignored).
"""

from __future__ import annotations

import math

import numpy as np

TOP_FRACTION = 0.10
MIN_TOP_K = 3


def _valid(scores) -> np.ndarray:
    arr = np.array([np.nan if s is None else float(s) for s in scores], dtype=float)
    return arr[~np.isnan(arr)]


def top_k(n: int) -> int:
    return max(1, min(n, max(MIN_TOP_K, int(math.ceil(TOP_FRACTION * n)))))


def top_k_mean(scores) -> float:
    arr = _valid(scores)
    if arr.size == 0:
        return float("nan")
    return float(np.sort(arr)[::-1][: top_k(arr.size)].mean())


def noisy_or(scores) -> float:
    arr = _valid(scores)
    if arr.size == 0:
        return float("nan")
    top = np.clip(np.sort(arr)[::-1][: top_k(arr.size)], 0.0, 1.0)
    return float(1.0 - np.prod(1.0 - top))


def middle_50_mean(scores) -> float:
    """Mean over the central 50 % of the lung slices, in slice order."""
    arr = _valid(scores)
    if arr.size == 0:
        return float("nan")
    start = int(math.floor(arr.size * 0.25))
    stop = max(start + 1, int(math.ceil(arr.size * 0.75)))
    return float(arr[start:stop].mean())


def any_slice(scores) -> float:
    arr = _valid(scores)
    return float(arr.max()) if arr.size else float("nan")


POOLING_FUNCTIONS = {
    "top_k_mean": top_k_mean,
    "noisy_or": noisy_or,
    "middle_50_mean": middle_50_mean,
    "any_slice": any_slice,
}


def pool(scores, method: str) -> float:
    try:
        return POOLING_FUNCTIONS[method](scores)
    except KeyError:
        raise ValueError(f"Unknown pooling '{method}'; choose one of {', '.join(POOLING_FUNCTIONS)}.") from None
