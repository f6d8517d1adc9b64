"""Zone-based CT severity score: 0-5 per zone from the share of the zone that is involved.

The scale is the one used by the lobar CT severity scores of COVID-19 pneumonia (for
example Pan et al., Radiology 2020, and Chung et al., Radiology 2020): 0 none, 1 under
5 %, 2 from 5 to 25 %, 3 from 25 to 50 %, 4 from 50 to 75 %, 5 over 75 %.  Here it is
applied to six cranio-caudal zones (three per lung) instead of five lobes, so the total
runs from 0 to 30 and is *not* numerically comparable with the lobar 0-25 score; the
report says so.

"None" needs a floor: a density measure never reads exactly 0 % in a real lung (partial
volume at the pleura, dependent density).  Below ``NONE_BELOW_PERCENT`` a zone scores 0.
"""

from __future__ import annotations

# Upper bounds (percent, exclusive) of scores 1..4; above the last one the score is 5.
SCORE_UPPER_BOUNDS_PERCENT = (5.0, 25.0, 50.0, 75.0)
NONE_BELOW_PERCENT = 1.0
MAX_ZONE_SCORE = 5


def zone_score(involvement_percent: float, none_below_percent: float = NONE_BELOW_PERCENT) -> int:
    """Score 0-5 of one zone from its involvement in percent."""
    value = float(involvement_percent)
    if value != value:  # NaN: an empty zone has nothing to score
        return 0
    if value < none_below_percent:
        return 0
    for score, bound in enumerate(SCORE_UPPER_BOUNDS_PERCENT, start=1):
        if value < bound:
            return score
    return MAX_ZONE_SCORE


def severity_settings(none_below_percent: float = NONE_BELOW_PERCENT) -> dict:
    return {
        "scheme": "zone-based CT severity score (3 cranio-caudal zones per lung, 0-5 each, total 0-30)",
        "none_below_percent": none_below_percent,
        "score_upper_bounds_percent": list(SCORE_UPPER_BOUNDS_PERCENT),
    }
