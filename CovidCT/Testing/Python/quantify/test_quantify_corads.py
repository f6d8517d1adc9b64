"""The CO-RADS-style suggestion rules: every branch, with its reasons."""

import pytest

from covidct.quantify.corads import suggest_corads


def quant(right=0.0, left=0.0, peripheral=None, volume_ml=4000.0):
    total = (right + left) / 2
    return {"right": {"involvement_percent": right}, "left": {"involvement_percent": left},
            "total": {"involvement_percent": total, "volume_ml": volume_ml},
            "distribution": {"peripheral_share": peripheral}}


GOOD = {"needs_enhancement": False, "enhancement_applied": False, "reasons": []}


@pytest.mark.parametrize("probability, q, expected", [
    (0.1, quant(0.1, 0.2), 1),                    # negative, nothing measurable
    (0.9, quant(0.1, 0.2), 3),                    # classifier and density disagree
    (0.9, quant(10, 8, peripheral=0.8), 5),       # positive, bilateral, peripheral
    (0.9, quant(10, 8, peripheral=0.3), 4),       # positive, bilateral only
    (0.9, quant(10, 0.5, peripheral=0.9), 4),     # positive, peripheral only
    (0.9, quant(10, 0.5, peripheral=0.2), 3),     # positive, unilateral central
    (0.1, quant(10, 0.5, peripheral=0.2), 2),     # negative with an opacity
    (0.1, quant(10, 8, peripheral=0.8), 3),       # negative but a typical distribution
])
def test_categories(probability, q, expected):
    s = suggest_corads(probability, 0.5, q, GOOD)
    assert s.category == expected
    assert any("probability" in r for r in s.reasons)
    assert any("involved lung" in r for r in s.reasons)
    assert "not a diagnosis" in s.note
    assert s.to_dict()["text"].startswith("CO-RADS-style suggestion")


def test_bilateral_and_peripheral_reasons_are_listed():
    s = suggest_corads(0.9, 0.5, quant(10, 8, peripheral=0.8), GOOD)
    assert "bilateral involvement" in s.reasons
    assert any("peripheral predominance" in r for r in s.reasons)


@pytest.mark.parametrize("quality, q, probability", [
    ({"interpretable": False, "reasons": ["motion artefacts"]}, quant(10, 8, 0.8), 0.9),
    ({"needs_enhancement": True, "enhancement_applied": False, "reasons": ["5 mm slices"]}, quant(10, 8, 0.8), 0.9),
    (GOOD, quant(10, 8, 0.8, volume_ml=300.0), 0.9),
    (GOOD, quant(10, 8, 0.8), None),
    (GOOD, {}, 0.9),
])
def test_not_interpretable_when_quality_fails(quality, q, probability):
    s = suggest_corads(probability, 0.5, q, quality)
    assert s.category == 0
    assert s.label == "not interpretable"
    assert s.reasons


def test_quality_reason_is_quoted():
    s = suggest_corads(0.9, 0.5, quant(10, 8, 0.8), {"interpretable": False, "reasons": ["motion artefacts"]})
    assert "motion artefacts" in s.reasons[0]


def test_category_six_is_never_suggested():
    for p in (0.0, 0.5, 0.99, 1.0):
        for q in (quant(0, 0), quant(90, 90, 1.0), quant(50, 0, 0.0)):
            assert suggest_corads(p, 0.5, q, GOOD).category in range(0, 6)
