"""The scan decision: classifier threshold, anchored on the HU lesion measurement."""

import pytest

from covidct.decision import (BASIS_BOTH, BASIS_CLASSIFIER, BASIS_CLASSIFIER_ONLY, BASIS_LESION, COVID,
                              MIN_INVOLVEMENT_PERCENT, NON_COVID, decide)


def _quantification(involvement, ggo=None, bilateral=True, peripheral=0.8, ml=None):
    return {"total": {"involvement_percent": involvement, "involved_ml": involvement * 40 if ml is None else ml,
                      "lesion_ground_glass_percent": involvement * 0.7 if ggo is None else ggo},
            "distribution": {"bilateral": bilateral, "peripheral_share": peripheral}}


def test_a_scan_without_measurable_lesions_is_not_called_covid_whatever_the_classifier_says():
    d = decide(0.37, 0.343, _quantification(0.02))          # the hidden normal scan's case
    assert d.decision == NON_COVID and d.classifier_decision == COVID and d.basis == BASIS_LESION
    assert any("no measurable lesion burden" in r for r in d.reasons)
    assert any("overruled" in r for r in d.reasons)


def test_classifier_and_lesions_agree_on_covid():
    d = decide(0.73, 0.343, _quantification(1.97, bilateral=False, peripheral=0.87))
    assert d.decision == COVID and d.basis == BASIS_BOTH
    assert d.lesion_evidence["involvement_percent"] == 1.97 and d.lesion_evidence["ground_glass_share"] == 0.7
    assert "not bilateral" in d.reasons and any("87 % of it peripheral" in r for r in d.reasons)


def test_lesions_never_raise_a_low_classifier_score():
    d = decide(0.11, 0.343, _quantification(4.19))           # the pneumonia scan: lesions, not COVID-19
    assert d.decision == NON_COVID and d.basis == BASIS_CLASSIFIER and d.classifier_decision == NON_COVID


@pytest.mark.parametrize("involvement, expected", [(MIN_INVOLVEMENT_PERCENT - 1e-6, NON_COVID),
                                                   (MIN_INVOLVEMENT_PERCENT, COVID)])
def test_the_involvement_floor_is_inclusive(involvement, expected):
    assert decide(0.9, 0.5, _quantification(involvement)).decision == expected


def test_without_hu_quantification_the_classifier_decides():
    for quantification in (None, {}):
        d = decide(0.6, 0.5, quantification)
        assert d.decision == COVID and d.basis == BASIS_CLASSIFIER_ONLY and d.lesion_evidence is None
    assert decide(0.6, 0.5, _quantification(0.0)).lesion_evidence["ground_glass_share"] is None
    assert decide(0.6, 0.5).to_dict()["min_involvement_percent"] == MIN_INVOLVEMENT_PERCENT
