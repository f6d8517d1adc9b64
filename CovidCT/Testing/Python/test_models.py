"""The model store: each model loaded once, the residency policy, and injection into analyze_scan."""

from __future__ import annotations

import json

import pytest

from classifier_helpers import write_tiny_classifier_weights
from covidct.analyze import AnalysisOptions, analyze_scan
from covidct.models import ModelStore, default_store
from enhancer_helpers import write_tiny_weights


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A weights folder with a tiny classifier and tiny enhancers (not the shipped models)."""
    folder = tmp_path_factory.mktemp("tiny_weights")
    write_tiny_weights(folder)
    write_tiny_classifier_weights(folder)
    return folder


def sha256_in(folder, key: str) -> str:
    return json.loads((folder / f"{key}.json").read_text())["sha256"]


def test_a_store_loads_each_model_once(tiny_weights):
    store = ModelStore(tiny_weights, device="cpu")
    classifier = store.classifier()
    assert store.classifier("cpu") is classifier and classifier.info["version"] == "tiny"
    x4 = store.enhancer(4, "fidelity")
    assert store.enhancer(4, "fidelity") is x4
    assert ModelStore(tiny_weights, device="cpu").classifier() is not classifier  # another store, its own models


def test_x2_gan_is_the_x2_fidelity_model_loaded_once(tiny_weights):
    store = ModelStore(tiny_weights, device="cpu")
    assert store.enhancer(2, "gan") is store.enhancer(2, "fidelity")


def test_only_the_resident_enhancers_stay_loaded(tiny_weights):
    single = ModelStore(tiny_weights, device="cpu")
    x4 = single.enhancer(4, "fidelity")
    single.enhancer(2, "fidelity")
    assert single.enhancer(4, "fidelity") is not x4  # dropped for x2, loaded again
    both = ModelStore(tiny_weights, device="cpu", resident_enhancers=2)
    x4 = both.enhancer(4, "fidelity")
    both.enhancer(2, "fidelity")
    assert both.enhancer(4, "fidelity") is x4


def test_the_default_store_is_one_per_process():
    assert default_store() is default_store()


def test_analyze_scan_takes_its_models_from_the_given_store(tiny_weights, sample_scan, tmp_path):
    store = ModelStore(tiny_weights, device="cpu")
    options = AnalysisOptions(device="cpu", enhance="on", scale=2, report=False)
    result = analyze_scan(sample_scan, tmp_path / "first", options, models=store)
    assert result.model.classifier.sha256 == sha256_in(tiny_weights, "classifier")
    assert result.model.classifier.version == "tiny"
    assert result.model.enhancer.sha256 == sha256_in(tiny_weights, "enhancer_x2_fidelity")
    classifier, enhancer = store.classifier(), store.enhancer(2, "fidelity")
    analyze_scan(sample_scan, tmp_path / "second", options, models=store)
    assert store.classifier() is classifier and store.enhancer(2, "fidelity") is enhancer


def test_the_cli_takes_its_models_from_the_process_wide_store(tiny_weights, tmp_path, monkeypatch, capsys):
    """``default_store`` is looked up when a model is needed: the one point to stand in models for a CLI run."""
    import numpy as np
    from PIL import Image

    import covidct.models
    from covidct.cli import main

    store = ModelStore(tiny_weights, device="cpu")
    monkeypatch.setattr(covidct.models, "default_store", lambda: store)
    image = tmp_path / "slice.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(image)
    assert main(["classify", str(image), "--device", "cpu", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert result["threshold"] == 0.5  # the tiny model's, not the shipped one's
