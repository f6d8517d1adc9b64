"""Hounsfield-unit bands that sort lung voxels into aerated, ground-glass-like and dense tissue.

Why bands and not a learned lesion segmentation: density bands need no training data and
no download, give the same answer on every scanner that is calibrated in HU, and are the
measure radiologists already read in quantitative chest CT papers.

Default bands (half-open intervals ``[low_hu, high_hu)``):

* ``emphysematous`` below -950 HU: the "low attenuation area below -950 HU" index that
  Gevenois and colleagues validated against histology for emphysema (Am J Respir Crit
  Care Med, 1996) and that most lung-density software still uses.
* ``inflated`` -950 to -750, ``infiltrated`` -750 to -400, ``collapsed`` -400 to 0 and
  ``dense`` 0 and above: the default thresholds of the 3D Slicer extension
  SlicerLungCTAnalyzer (R. Bumm), which was built for COVID-19 lungs.  Its
  "infiltrated" band holds ground-glass opacity and its "collapsed" band holds
  consolidation and atelectasis; vessels and other dense tissue fall in "dense".
  Colombi et al. (Radiology 2020) similarly called -950 to -700 HU "well-aerated" lung.
* A second, independent split at -300 HU separates ground-glass opacity (-750 to -300)
  from consolidation (-300 to +50); this split is a common choice in quantitative
  COVID-19 CT studies.  It is reported next to the bands, not instead of them.

The bands marked ``involved`` (infiltrated and collapsed by default) give the raw
"involvement without vessel handling" and the HU range of the lesion seeds; the reported
involvement itself comes from the lesion mask in :mod:`.lesions`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class HUBand:
    """One density band: voxels with ``low_hu <= HU < high_hu``."""

    name: str
    low_hu: float
    high_hu: float
    involved: bool = False
    meaning: str = ""

    def contains(self, hu: np.ndarray) -> np.ndarray:
        return (hu >= self.low_hu) & (hu < self.high_hu)

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("low_hu", "high_hu"):
            if math.isinf(out[key]):
                out[key] = None  # JSON has no infinity; None = open end
        return out

    @classmethod
    def from_dict(cls, item: dict) -> "HUBand":
        """The band back from :meth:`to_dict`'s JSON form (None = open end)."""
        low = -math.inf if item.get("low_hu") is None else float(item["low_hu"])
        high = math.inf if item.get("high_hu") is None else float(item["high_hu"])
        return cls(item["name"], low, high, bool(item.get("involved", False)), item.get("meaning", ""))

    def range_text(self) -> str:
        """``"-950 to -750 HU"``, ``"< -950 HU"`` or ``">= 0 HU"`` (open ends)."""
        low = "" if math.isinf(self.low_hu) else f"{self.low_hu:g}"
        high = "" if math.isinf(self.high_hu) else f"{self.high_hu:g}"
        if not low:
            return f"< {high} HU"
        if not high:
            return f">= {low} HU"
        return f"{low} to {high} HU"


DEFAULT_BANDS: tuple = (
    HUBand("emphysematous", -math.inf, -950.0, False, "hyper-lucent lung, emphysema, bullae"),
    HUBand("inflated", -950.0, -750.0, False, "normally aerated lung"),
    HUBand("infiltrated", -750.0, -400.0, True, "poorly aerated: ground-glass opacity"),
    HUBand("collapsed", -400.0, 0.0, True, "non-aerated: consolidation, atelectasis"),
    HUBand("dense", 0.0, math.inf, False, "vessels, calcification, dense tissue"),
)

# Ground-glass / consolidation split used alongside the bands.
GGO_RANGE_HU = (-750.0, -300.0)
CONSOLIDATION_RANGE_HU = (-300.0, 50.0)


def validate_bands(bands: Sequence[HUBand]) -> None:
    """Bands must be ordered and must not overlap, so percentages add up to at most 100."""
    if not bands:
        raise ValueError("At least one HU band is needed.")
    for band in bands:
        if not band.low_hu < band.high_hu:
            raise ValueError(f"HU band '{band.name}' is empty: {band.low_hu} >= {band.high_hu}.")
    for first, second in zip(bands, bands[1:]):
        if second.low_hu < first.high_hu:
            raise ValueError(f"HU bands '{first.name}' and '{second.name}' overlap or are not in "
                             "increasing order.")
    if not any(band.involved for band in bands):
        raise ValueError("No HU band is marked as 'involved'; involvement would always be 0 %.")


def involved_mask(hu: np.ndarray, bands: Sequence[HUBand]) -> np.ndarray:
    """Voxels whose HU falls into any band marked ``involved``."""
    out = np.zeros(hu.shape, dtype=bool)
    for band in bands:
        if band.involved:
            out |= band.contains(hu)
    return out


def band_percentages(hu_in_lung: np.ndarray, bands: Sequence[HUBand]) -> dict:
    """Share of the given lung voxels (a 1-D array of HU) in each band, in percent."""
    total = hu_in_lung.size
    out = {}
    for band in bands:
        count = int(np.count_nonzero(band.contains(hu_in_lung)))
        out[band.name] = 100.0 * count / total if total else 0.0
    return out


def ggo_consolidation_percentages(hu_in_lung: np.ndarray) -> dict:
    """Ground-glass and consolidation shares (percent of lung) with the -300 HU split."""
    total = hu_in_lung.size
    if not total:
        return {"ground_glass": 0.0, "consolidation": 0.0}
    ggo = (hu_in_lung >= GGO_RANGE_HU[0]) & (hu_in_lung < GGO_RANGE_HU[1])
    cons = (hu_in_lung >= CONSOLIDATION_RANGE_HU[0]) & (hu_in_lung < CONSOLIDATION_RANGE_HU[1])
    return {"ground_glass": 100.0 * np.count_nonzero(ggo) / total,
            "consolidation": 100.0 * np.count_nonzero(cons) / total}
