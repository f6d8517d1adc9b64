"""The scan's decision: the classifier's call, anchored on measured lesion evidence for HU scans.

Why: the classifier reads texture and can be fooled by a scanner or export it never saw
(a normal scan from another patient scored 0.37 against the threshold 0.34).  An HU scan
also carries a measurement the classifier does not use: the lesion mask of
:mod:`covidct.quantify` (ground glass and consolidation told apart from vessels).  COVID-19
pneumonia is visible opacity, so a scan with **no measurable lesion burden** is not called
COVID-19, whatever the classifier says; the result says which evidence decided, and the
reader sees both.

The rule is deliberately small, because three labelled scans cannot fit a model:

* no HU quantification (8-bit exports): the classifier decides;
* classifier below its threshold: non-COVID (the lesion measures are reported, not used
  to raise a low score: other pneumonias have lesions too);
* classifier at or above its threshold and involvement below ``MIN_INVOLVEMENT_PERCENT``:
  non-COVID, "no measurable lesion burden", with the classifier's disagreement stated;
* otherwise COVID-19, with involvement, laterality, peripheral share and the ground-glass
  share listed as the supporting evidence.

``MIN_INVOLVEMENT_PERCENT`` = 0.2 % of lung volume: the geometric middle of the shared
normal scan (0.02 %, 0.7 ml, false positives in mid-lung slices) and the mildest shared
COVID-19 scan (1.97 %), fixed before the 2.0 classifier's results; a mild COVID-19 case
below 0.2 % would be missed, which the model card states.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

COVID, NON_COVID = "COVID-19", "non-COVID"
MIN_INVOLVEMENT_PERCENT = 0.2

BASIS_CLASSIFIER = "classifier"
BASIS_CLASSIFIER_ONLY = "classifier (no HU lesion measurement)"
BASIS_LESION = "lesion evidence"
BASIS_BOTH = "classifier and lesion evidence"


@dataclass
class ScanDecision:
    """What was decided, on which evidence, and what the classifier alone said."""

    decision: str
    basis: str
    classifier_decision: str
    reasons: list = field(default_factory=list)
    lesion_evidence: Optional[dict] = None
    min_involvement_percent: float = MIN_INVOLVEMENT_PERCENT

    def to_dict(self) -> dict:
        return asdict(self)


def lesion_evidence(quantification: Optional[dict]) -> Optional[dict]:
    """The lesion measures the rule reads (None without an HU quantification)."""
    total = (quantification or {}).get("total")
    if not total:
        return None
    involvement = float(total.get("involvement_percent", 0.0))
    ggo = float(total.get("lesion_ground_glass_percent", 0.0))
    distribution = quantification.get("distribution") or {}
    return {"involvement_percent": round(involvement, 4),
            "involved_ml": round(float(total.get("involved_ml", 0.0)), 2),
            "bilateral": bool(distribution.get("bilateral", False)),
            "peripheral_share": distribution.get("peripheral_share"),
            "ground_glass_share": round(ggo / involvement, 3) if involvement > 0 else None}


def decide(covid_probability: float, threshold: float, quantification: Optional[dict] = None) -> ScanDecision:
    """The product's decision from the pooled classifier probability and (HU) quantification."""
    classifier_positive = covid_probability >= threshold
    classifier_decision = COVID if classifier_positive else NON_COVID
    said = (f"classifier probability {covid_probability:.2f} is {'at or above' if classifier_positive else 'below'} "
            f"the threshold {threshold:.2f}")
    evidence = lesion_evidence(quantification)
    if evidence is None:
        return ScanDecision(classifier_decision, BASIS_CLASSIFIER_ONLY, classifier_decision, [said])
    involvement = float(quantification["total"].get("involvement_percent", 0.0))  # unrounded
    measured = f"lesion involvement {involvement:.2f} % of lung ({evidence['involved_ml']:.1f} ml)"
    if not classifier_positive:
        return ScanDecision(NON_COVID, BASIS_CLASSIFIER, classifier_decision, [said, measured], evidence)
    if involvement < MIN_INVOLVEMENT_PERCENT:
        return ScanDecision(NON_COVID, BASIS_LESION, classifier_decision, [
            said, f"{measured} is below {MIN_INVOLVEMENT_PERCENT:g} %: no measurable lesion burden",
            "the classifier's call is overruled; review the heatmap"], evidence)
    support = [said, measured, "bilateral" if evidence["bilateral"] else "not bilateral"]
    if evidence["peripheral_share"] is not None:
        support.append(f"{100 * evidence['peripheral_share']:.0f} % of it peripheral")
    if evidence["ground_glass_share"] is not None:
        support.append(f"{100 * evidence['ground_glass_share']:.0f} % of it ground glass")
    return ScanDecision(COVID, BASIS_BOTH, classifier_decision, support, evidence)
