"""A CO-RADS-*style* suggestion: a transparent rule that a reader can check, never a diagnosis.

CO-RADS (Prokop et al., Radiology 2020) grades the suspicion of COVID-19 pneumonia on
chest CT from 1 (very low) to 5 (very high), with 0 for a scan that cannot be
interpreted and 6 for PCR-proven infection.  The real categories rest on the pattern a
radiologist sees (ground glass, crazy paving, multifocal bilateral peripheral
distribution, and what else is in the lung).  CovidCT has only three weaker signals:
the classifier's probability, the share of involved lung and its distribution
(bilateral, peripheral).  So this module only *suggests* a category, lists every reason
it used, and says when it cannot: category 0 when the quality checks fail.  Category 6
needs a laboratory test and is never suggested.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

# A lung counts as involved (for "bilateral") above this share of its volume.
SIDE_INVOLVED_PERCENT = 2.0
# Below this total involvement the lungs read as normal for this rule.
MINIMAL_INVOLVEMENT_PERCENT = 1.0
# Share of the involved volume in the outer shell above which it is "peripheral".
PERIPHERAL_SHARE = 0.6
# Smallest plausible lung volume: below it the mask (and everything measured in it) failed.
MIN_LUNG_VOLUME_ML = 1000.0

CATEGORY_LABELS = {
    0: "not interpretable",
    1: "very low suspicion",
    2: "low suspicion",
    3: "equivocal",
    4: "high suspicion",
    5: "very high suspicion",
}

NOT_A_DIAGNOSIS = ("Computer-generated CO-RADS-style suggestion from a classifier probability and "
                   "density measures; not a CO-RADS reading and not a diagnosis. The reader decides.")


@dataclass
class CoradsSuggestion:
    category: int
    label: str
    reasons: list = field(default_factory=list)
    note: str = NOT_A_DIAGNOSIS

    @property
    def text(self) -> str:
        if self.category == 0:
            return "CO-RADS-style suggestion: 0 (not interpretable)"
        return f"CO-RADS-style suggestion: {self.category} ({self.label})"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["text"] = self.text
        return out


def _quality_failures(quality: Optional[dict], total_lung_ml: Optional[float]) -> list:
    reasons = []
    quality = quality or {}
    if quality.get("interpretable") is False or quality.get("passed") is False:
        reasons.append("the quality checks failed: " + "; ".join(quality.get("reasons") or ["no reason given"]))
    elif quality.get("needs_enhancement") and not quality.get("enhancement_applied"):
        reasons.append("the scan needed enhancement for reliable analysis but it was not applied ("
                       + "; ".join(quality.get("reasons") or ["no reason given"]) + ")")
    if total_lung_ml is not None and total_lung_ml < MIN_LUNG_VOLUME_ML:
        reasons.append(f"the lung mask holds only {total_lung_ml:.0f} ml (< {MIN_LUNG_VOLUME_ML:.0f} ml): "
                       "segmentation failed or the lungs are not fully in the scan")
    return reasons


def suggest_corads(probability: Optional[float], threshold: float, quantification: Optional[dict],
                   quality: Optional[dict] = None) -> CoradsSuggestion:
    """Suggest a category from the classifier ``probability`` (0-1), its decision ``threshold``,
    a :func:`covidct.quantify.quantify_lungs` result and the quality-gate dict."""
    quantification = quantification or {}
    total = quantification.get("total") or {}
    failures = _quality_failures(quality, total.get("volume_ml"))
    if probability is None:
        failures.append("no classifier probability is available")
    if not quantification:
        failures.append("no lung quantification is available")
    if failures:
        return CoradsSuggestion(0, CATEGORY_LABELS[0], failures)

    involvement = float(total.get("involvement_percent", 0.0))
    sides = {side: float((quantification.get(side) or {}).get("involvement_percent", 0.0))
             for side in ("right", "left")}
    bilateral = all(value >= SIDE_INVOLVED_PERCENT for value in sides.values())
    peripheral_share = quantification.get("distribution", {}).get("peripheral_share")
    peripheral = peripheral_share is not None and peripheral_share >= PERIPHERAL_SHARE
    positive = probability >= threshold

    reasons = [f"classifier probability {probability:.2f} is {'at or above' if positive else 'below'} "
               f"the decision threshold {threshold:.2f}",
               f"involved lung {involvement:.1f} % (right {sides['right']:.1f} %, left {sides['left']:.1f} %)"]
    if involvement >= MINIMAL_INVOLVEMENT_PERCENT:
        reasons.append("bilateral involvement" if bilateral else "involvement is not bilateral "
                       f"(each lung needs >= {SIDE_INVOLVED_PERCENT:g} %)")
        if peripheral_share is not None:
            reasons.append(f"{100 * peripheral_share:.0f} % of the involved volume is peripheral "
                           f"({'peripheral' if peripheral else 'not peripheral'} predominance, "
                           f"cut-off {100 * PERIPHERAL_SHARE:.0f} %)")

    if involvement < MINIMAL_INVOLVEMENT_PERCENT:
        reasons.append(f"involvement {involvement:.2f} % is below {MINIMAL_INVOLVEMENT_PERCENT:g} %: "
                       "no measurable opacity")
        if positive:
            reasons.append("the classifier disagrees with the density measure; review the heatmap")
            category = 3
        else:
            category = 1
    elif positive:
        if bilateral and peripheral:
            category = 5
        elif bilateral or peripheral:
            category = 4
        else:
            category = 3
    else:
        category = 3 if (bilateral and peripheral) else 2
    return CoradsSuggestion(category, CATEGORY_LABELS[category], reasons)
