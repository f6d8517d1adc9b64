"""A site evaluates and retrains on its own labelled HU scans: ``--data`` with only ``covid-ct-md/``.

The site's scans here are two shared COVID-CT-MD scans under other names (linked, not
copied), so nothing in the code can recognise them by the shared data's names.
"""

import json

import numpy as np
import pytest


def _site_folder(tmp_path, shared_data, scans: dict):
    """``tmp/site/covid-ct-md/{NEW: linked shared scan}`` with a labels.json of its own."""
    shared = json.loads((shared_data / "covid-ct-md" / "labels.json").read_text(encoding="utf-8"))
    root = tmp_path / "site" / "covid-ct-md"
    root.mkdir(parents=True)
    labels = {"_about": "a site's own scans"}
    for new, old in scans.items():
        (root / new).symlink_to(shared_data / "covid-ct-md" / old, target_is_directory=True)
        labels[new] = shared[old]
    (root / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    return tmp_path / "site"


def test_scans_come_from_labels_json_and_a_listed_scan_must_exist(tmp_path, shared_data):
    from covidct.research.classifier.datasets import hu_scan_names
    from covidct.errors import InputNotFoundError

    site = _site_folder(tmp_path, shared_data, {"site_b": "normal001", "site_a": "P001"})
    assert hu_scan_names(site) == ("site_a", "site_b")
    assert hu_scan_names(shared_data) == ("P001", "cap001", "normal001")
    assert hu_scan_names(tmp_path / "nothing") == ()
    labels = json.loads((site / "covid-ct-md" / "labels.json").read_text())
    labels["site_c"] = labels["site_b"]
    (site / "covid-ct-md" / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(InputNotFoundError, match="site_c"):
        hu_scan_names(site)


def test_a_cache_of_other_data_is_not_reused(tmp_path):
    from covidct.research.classifier.datasets import cache_matches, data_fingerprint

    for name in ("a", "b"):
        folder = tmp_path / name / "covid-ct-md"
        folder.mkdir(parents=True)
        (folder / "labels.json").write_text(json.dumps({"s": {"diagnosis": "Normal", "slices": {}}}))
    assert data_fingerprint(tmp_path / "a") == data_fingerprint(tmp_path / "b")   # same data, any folder
    (tmp_path / "b" / "covid-ct-md" / "labels.json").write_text(json.dumps({"t": {}}))
    cache = {"size_px": np.int32(32), "crop": np.array("slice"), "lung_fraction": np.ones(1),
             "data_fingerprint": np.array(data_fingerprint(tmp_path / "a"))}
    assert cache_matches(cache, 32, "slice", tmp_path / "a")
    assert not cache_matches(cache, 32, "slice", tmp_path / "b")
    assert not cache_matches({k: v for k, v in cache.items() if k != "data_fingerprint"}, 32, "slice", tmp_path / "a")


def test_training_on_a_source_the_data_lacks_is_refused():
    from covidct.research.classifier.training import DEFAULT_TRAINING, check_training_sources
    from covidct.errors import InputNotFoundError

    cache = {"source": np.array(["hu", "hu"]), "group": np.array(["site_a", "site_b"])}
    check_training_sources(dict(DEFAULT_TRAINING, train={"sars": False, "ucsd": False, "hu_scans": ["site_a"]}), cache)
    with pytest.raises(InputNotFoundError, match="sars, ucsd"):
        check_training_sources(DEFAULT_TRAINING, cache)
    with pytest.raises(InputNotFoundError, match="site_c"):
        check_training_sources(dict(DEFAULT_TRAINING, train={"sars": False, "ucsd": False, "hu_scans": ["site_c"]}),
                               cache)


def test_pooling_and_threshold_follow_the_diagnosis_not_the_scan_name():
    from covidct.research.classifier.release import choose_pooling, scan_margin

    def scan(covid, top, middle):
        return {"covid_scan": covid, "pooled": {"top_k_mean": top, "noisy_or": 0.99, "middle_50_mean": middle,
                                                "any_slice": 1.0}}

    scans = {"x_covid": scan(True, 0.9, 0.6), "y_covid": scan(True, 0.8, 0.5), "z_normal": scan(False, 0.85, 0.1)}
    assert scan_margin(scans, "top_k_mean") == (0.8, 0.85)        # the lowest COVID-19 scan counts
    method, margins = choose_pooling(scans)
    assert method == "middle_50_mean" and margins["middle_50_mean"] == pytest.approx(0.4)
    assert scan_margin({"x_covid": scans["x_covid"]}, "top_k_mean") is None


@pytest.mark.slow
def test_evaluate_on_a_site_folder_with_only_its_own_hu_scans(tmp_path, shared_data):
    from covidct.research.classifier.evaluation import evaluate

    site = _site_folder(tmp_path, shared_data, {"site_covid": "P001", "site_normal": "normal001"})
    lines = []
    result = evaluate(site, tmp_path / "eval", device="cpu", n_boot=50, log=lines.append)
    assert set(result["scan"]) == {"site_covid", "site_normal", "_all"}
    assert result["scan"]["site_covid"]["diagnosis"] == "COVID-19"
    assert result["scan"]["site_covid"]["covid_probability"] > result["scan"]["site_normal"]["covid_probability"]
    assert not any(name.startswith(("sars", "ucsd")) for name in result["slice"])
    within = result["slice"]["hu_slices_covid_scan_infected_vs_clean"]
    assert within["n"] > 50 and 0.0 <= within["auc"] <= 1.0
    assert any("sars-cov-2-ct/ not in" in str(line) for line in lines)
    assert (tmp_path / "eval" / "metrics.json").exists()


@pytest.mark.slow
def test_training_cache_of_a_site_folder_holds_its_scans_and_knows_its_data(tmp_path, shared_data):
    from covidct.research.classifier.datasets import build_cache, cache_matches, load_cache
    from covidct.research.classifier.training import DEFAULT_TRAINING, check_training_sources

    site = _site_folder(tmp_path, shared_data, {"site_normal": "normal001"})
    path = build_cache(site, tmp_path / "cache" / "slices32_slice.npz", 32, progress=lambda *_: None)
    assert [p.name for p in path.parent.iterdir()] == ["slices32_slice.npz"]      # no partial file left
    cache = load_cache(path)
    assert set(cache["source"].tolist()) == {"hu"} and set(cache["group"].tolist()) == {"site_normal"}
    assert cache["images"].shape[1:] == (32, 32) and (cache["label"] == 0).all()
    assert cache_matches(cache, 32, "slice", site)
    check_training_sources(dict(DEFAULT_TRAINING, train={"sars": False, "ucsd": False,
                                                         "hu_scans": ["site_normal"]}), cache)
    labels = site / "covid-ct-md" / "labels.json"
    labels.write_text(labels.read_text().replace("a site's own scans", "edited"))
    assert not cache_matches(cache, 32, "slice", site)                           # the data changed
