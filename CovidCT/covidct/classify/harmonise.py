"""Map any export's grey levels onto the canonical lung window before the network sees it.

Why: an 8-bit slice export carries whatever window the exporting workstation used.  A
network trained on near-black lungs reads a wide-window export (mid-grey lungs) as a
different disease (an unseen source of that kind scored AUC 0.38, inverted).  So each
image's own window is estimated from its histogram, in the spirit of Nyúl-Udupa
histogram standardisation, but with two landmarks only, chosen so that disease does not
move them much:

* the **dark class** (aerated lung and air) and the **bright class** (soft tissue and
  bone), split by Otsu's threshold; each landmark is its class's median;
* a linear map takes the image's landmarks to their levels in HU slices shown at the
  canonical lung window [-1350, 150] HU (``REFERENCE_*``: medians over every lung slice
  of the three COVID-CT-MD scans; the SARS-CoV-2 and UCSD exports sit within 0.02 of
  them, so the map is close to identity for the training sources).

Intermediate percentiles are deliberately not landmarks: ground glass lives there, and
standardising it away would hide the disease.  When a class is mostly clipped (lungs
black in a mediastinal window, tissue saturated in a narrow one) the Otsu split replaces
that landmark; when neither is usable, or the implied gain is implausible, the image is
passed through unchanged and the status says so (``fallback``), so a caller can flag it.

**Gated** harmonisation (``harmonise_gated``, classifier 1.3.2) applies the map only as far
as the estimate lies outside the estimator's own noise: HU slices shown exactly at the
canonical window are estimated within ``GATE_HU[0]`` HU of it in 95 % of cases
(``python -m covidct.research.classifier.harmonise_gate``), so a smaller deviation is not evidence of
another window and correcting it would only add noise.  Between ``GATE_HU[0]`` and
``GATE_HU[1]`` the correction is blended in linearly; beyond, it is applied in full.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ..preprocess.windowing import LUNG_WINDOW_HU
from .input_normalisation import padding_mask

REFERENCE_DARK = 0.33     # median of the dark class: about -855 HU (aerated lung, some air)
REFERENCE_SPLIT = 0.625   # Otsu threshold: about -410 HU
REFERENCE_BRIGHT = 0.92   # median of the bright class: about +30 HU (soft tissue; bone clipped)
CLIP_TOLERANCE = 1.5 / 255.0
MAX_CLIPPED_SHARE = 0.4   # a class more clipped than this gives no landmark
MIN_LANDMARK_GAP = 0.04   # landmarks closer than this (unit grey) give no usable scale
GAIN_RANGE = (0.25, 4.0)  # exports wider than 4x or narrower than 1/4 of the canonical window: not trusted
# Estimator noise on canonical renders (95th percentile of the deviation, HU) and twice it.
GATE_HU = (115.0, 230.0)
HISTOGRAM_BINS = 256

STATUSES = ("dark+bright", "dark+split", "split+bright", "fallback")


@dataclass(frozen=True)
class Harmonisation:
    """How one image was mapped: ``canonical = offset + gain * grey`` (both unit scales)."""

    status: str
    gain: float
    offset: float
    dark: float
    split: float
    bright: float
    lung_detail_clipped: bool = False  # the dark class is mostly black: lung texture was cut off by the window
    weight: float = 1.0  # share of the correction applied (gated harmonisation blends it in)

    @property
    def reliable(self) -> bool:
        return self.status != "fallback"

    def window_hu(self) -> tuple:
        """The export's estimated window (HU shown as black, HU shown as white)."""
        low, high = LUNG_WINDOW_HU
        width = high - low
        return (low + width * self.offset, low + width * (self.offset + self.gain))

    def deviation_hu(self) -> float:
        """How far the estimated window lies from the canonical one (the larger end's distance, HU)."""
        low, high = self.window_hu()
        return max(abs(low - LUNG_WINDOW_HU[0]), abs(high - LUNG_WINDOW_HU[1]))

    def to_dict(self) -> dict:
        out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        out["window_hu"] = [round(v, 1) for v in self.window_hu()]
        return out


IDENTITY = Harmonisation("fallback", 1.0, 0.0, float("nan"), float("nan"), float("nan"))


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's two-class threshold of unit grey values (256 bins)."""
    hist, _ = np.histogram(values, HISTOGRAM_BINS, (0.0, 1.0))
    p = hist.astype(np.float64) / max(1, hist.sum())
    weight = np.cumsum(p)
    mean = np.cumsum(p * np.arange(HISTOGRAM_BINS))
    between = (mean[-1] * weight - mean) ** 2 / (weight * (1.0 - weight) + 1e-12)
    return (float(np.argmax(between)) + 1.0) / HISTOGRAM_BINS


def estimate(unit: np.ndarray) -> Harmonisation:
    """Landmarks of one unit-grey image and the linear map that takes them to the references."""
    unit = np.asarray(unit, dtype=np.float32)
    values = unit.ravel()
    padding = padding_mask(unit)
    if padding is not None:
        values = unit[~padding]
    if values.size < 64:
        return IDENTITY
    split = otsu_threshold(values)
    dark, bright = values[values < split], values[values >= split]
    if dark.size == 0 or bright.size == 0:
        return IDENTITY
    dark_level, bright_level = float(np.median(dark)), float(np.median(bright))
    dark_ok = np.mean(dark <= CLIP_TOLERANCE) <= MAX_CLIPPED_SHARE
    bright_ok = np.mean(bright >= 1.0 - CLIP_TOLERANCE) <= MAX_CLIPPED_SHARE
    pairs = {"dark+bright": (dark_level, bright_level, REFERENCE_DARK, REFERENCE_BRIGHT, dark_ok and bright_ok),
             "dark+split": (dark_level, split, REFERENCE_DARK, REFERENCE_SPLIT, dark_ok),
             "split+bright": (split, bright_level, REFERENCE_SPLIT, REFERENCE_BRIGHT, bright_ok)}
    for status, (low, high, ref_low, ref_high, usable) in pairs.items():
        if not usable or high - low < MIN_LANDMARK_GAP:
            continue
        gain = (ref_high - ref_low) / (high - low)
        if GAIN_RANGE[0] <= gain <= GAIN_RANGE[1]:
            return Harmonisation(status, float(gain), float(ref_low - gain * low), dark_level, split, bright_level,
                                 not dark_ok)
    return Harmonisation("fallback", 1.0, 0.0, dark_level, split, bright_level, not dark_ok)


def gate(harmonisation: Harmonisation, gate_hu: tuple = GATE_HU) -> Harmonisation:
    """The map shrunk towards identity while the estimate is within the estimator's noise."""
    if not harmonisation.reliable:
        return harmonisation
    start, full = gate_hu
    weight = float(np.clip((harmonisation.deviation_hu() - start) / (full - start), 0.0, 1.0))
    return replace(harmonisation, weight=weight)


def apply(unit: np.ndarray, harmonisation: Harmonisation) -> np.ndarray:
    """``unit`` on the canonical scale (float32, clipped to [0, 1])."""
    w = harmonisation.weight
    gain, offset = 1.0 + w * (harmonisation.gain - 1.0), w * harmonisation.offset
    out = np.asarray(unit, dtype=np.float32) * np.float32(gain) + np.float32(offset)
    return np.clip(out, 0.0, 1.0, out=out)


def harmonise(unit: np.ndarray) -> np.ndarray:
    """Estimate and apply in one step (what training and inference do to every input)."""
    return apply(unit, estimate(unit))


def harmonise_gated(unit: np.ndarray) -> np.ndarray:
    """:func:`harmonise` with the correction gated by the estimator's noise (:func:`gate`)."""
    return apply(unit, gate(estimate(unit)))
