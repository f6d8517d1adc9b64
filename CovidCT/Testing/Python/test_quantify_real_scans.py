"""On the real scans: a normal lung stays low once vessels are handled; a COVID-19 lung reads higher."""

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def measured(shared_data):
    from covidct.quantify.evaluate import evaluate_scan
    import json

    root = shared_data / "covid-ct-md"
    labels = json.loads((root / "labels.json").read_text())
    return {name: evaluate_scan(root / name, labels[name]) for name in ("normal001", "P001")}


def test_normal_lung_reads_low_only_with_the_vessel_filter(measured):
    normal = measured["normal001"]
    assert normal["involvement_percent"] < 0.5
    assert normal["involvement_without_vessel_filter_percent"] > 5.0  # what the filter removes
    assert normal["severity_score"] == 0
    assert 1000 < normal["lung_ml"]["right"] and 1000 < normal["lung_ml"]["left"]


def test_covid_lung_reads_higher_than_normal(measured):
    covid, normal = measured["P001"], measured["normal001"]
    assert covid["involvement_percent"] > 3 * normal["involvement_percent"]
    assert covid["severity_score"] > normal["severity_score"]
    assert covid["involvement_percent_in_infected_slices"] > covid["involvement_percent_in_clean_slices"]
