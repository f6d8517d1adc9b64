"""Leave-one-patient-out ensembles: every HU scan is reported by the members that never saw it."""

import json

import numpy as np
import pytest

from classifier_helpers import TINY_NETWORK


def _cache_with_hu_scans(size=32):
    """Two 8-bit sources plus three HU 'scans': A (COVID-19), B and C (non-COVID)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:size, 0:size]
    images, rows = [], []

    def add(label, source, group, infection=-1):
        img = 0.3 + 0.02 * rng.random((size, size))
        if label == 1 or infection == 1:
            cy, cx = rng.integers(8, size - 8, 2)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = 0.9
        images.append(img)
        rows.append((label, source, group, infection))

    for source in ("sars", "ucsd"):
        for label in (0, 1):
            for i in range(16):
                add(label, source, f"{source}{label}_{i}")
    for k in range(12):
        add(1 if k < 8 else -1, "hu", "A", 1 if k < 8 else 0)
    for scan in ("B", "C"):
        for _ in range(10):
            add(0, "hu", scan, 0)
    n = len(images)
    return {"images": np.stack(images).astype(np.float16), "label": np.array([r[0] for r in rows], np.int8),
            "source": np.array([r[1] for r in rows]), "group": np.array([r[2] for r in rows]),
            "name": np.array([r[2] for r in rows]), "slice_index": np.arange(n, dtype=np.int32),
            "infection": np.array([r[3] for r in rows], np.int8), "lung_fraction": np.ones(n, np.float32)}


def _write_members(tmp_path, steps=12):
    names = []
    for seed, held_out in enumerate("ABC"):
        cfg = {"name": f"m{held_out}", "version": "0", "input_size_px": 32, "network": TINY_NETWORK,
               "train": {"sars": True, "ucsd": True, "hu_scans": [s for s in "ABC" if s != held_out]},
               "sars_val_fraction": 0.25, "ucsd_val_fraction": 0.25, "split_seed": 0, "seed": seed,
               "steps": steps, "batch_size": 8, "learning_rate": 3e-3, "final_learning_rate": 1e-4,
               "threads": 1, "device": "cpu", "eval_every": steps, "max_minutes": 5, "standardisation": "harmonise"}
        (tmp_path / f"m{held_out}.json").write_text(json.dumps(cfg))
        names.append(f"m{held_out}.json")
    return names


def test_a_training_source_with_one_class_is_left_out():
    from covidct.research.classifier.training import make_splits

    cache = _cache_with_hu_scans()
    only_negatives = dict(_training_defaults(), train={"sars": True, "ucsd": True, "hu_scans": ["B", "C"]})
    train = make_splits(cache, only_negatives)["train"]
    assert not np.any(cache["source"][train] == "hu")          # B and C are both non-COVID
    both = dict(only_negatives, train={"sars": True, "ucsd": True, "hu_scans": ["A", "C"]})
    train = make_splits(cache, both)["train"]
    assert set(cache["group"][train][cache["source"][train] == "hu"]) == {"A", "C"}


def _training_defaults():
    from covidct.research.classifier.training import DEFAULT_TRAINING

    return dict(DEFAULT_TRAINING, sars_val_fraction=0.25, ucsd_val_fraction=0.25)


def test_members_may_differ_in_hu_scans_only_when_the_ensemble_says_so(tmp_path):
    from covidct.research.classifier.training import load_config, member_configs

    names = _write_members(tmp_path)
    (tmp_path / "plain.json").write_text(json.dumps({"ensemble_of": names}))
    with pytest.raises(ValueError, match="train"):
        member_configs(load_config(tmp_path / "plain.json"), tmp_path / "plain.json")
    (tmp_path / "lopo.json").write_text(json.dumps({"ensemble_of": names, "held_out_per_member": True}))
    assert len(member_configs(load_config(tmp_path / "lopo.json"), tmp_path / "lopo.json")) == 3
    cfg = json.loads((tmp_path / names[0]).read_text())
    (tmp_path / names[0]).write_text(json.dumps(dict(cfg, train=dict(cfg["train"], ucsd=False))))
    with pytest.raises(ValueError, match="train"):      # the 8-bit sources must still agree
        member_configs(load_config(tmp_path / "lopo.json"), tmp_path / "lopo.json")


def test_each_scan_is_scored_by_the_member_that_never_saw_it(tmp_path):
    import torch

    from covidct.classify.api import Classifier
    from covidct.classify.network import build_network
    from covidct.research.classifier.release import release
    from covidct.research.classifier.training import load_config, predict_unit_slices, train_ensemble

    names = _write_members(tmp_path)
    (tmp_path / "lopo.json").write_text(json.dumps({
        "name": "lopo", "version": "2", "ensemble_of": names, "held_out_per_member": True,
        "pooling": "middle_50_mean", "threshold_from": "hu_slices"}))
    cache = _cache_with_hu_scans()
    report = train_ensemble(load_config(tmp_path / "lopo.json"), tmp_path / "lopo.json", cache,
                            tmp_path / "run", log=lambda *_: None)
    assert report["config"]["member_hu_scans"] == [["B", "C"], ["A", "C"], ["A", "B"]]
    assert set(report["final"]["scans"]) == {"A", "B", "C"}     # all three reported, none in-sample

    model = build_network(report["config"]["network"]).eval()
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    for member, scan in enumerate("ABC"):
        idx = np.flatnonzero(cache["group"] == scan)
        own = predict_unit_slices(model.members[member], cache["images"][idx].astype(np.float32),
                                  standardisation="harmonise")
        together = predict_unit_slices(model, cache["images"][idx].astype(np.float32), standardisation="harmonise")
        assert np.allclose(report["final"]["scans"][scan]["scores"], own, atol=1e-4)
        assert not np.allclose(own, together, atol=1e-4)       # the whole ensemble would differ (and saw it)

    entry = release(tmp_path / "run", tmp_path / "weights", cache, "lopo", log=lambda *_: None)
    assert entry["pooling"] == "middle_50_mean" and entry["pooling_margins_hu"] == {}
    assert entry["hu_scans_in_training"] == []
    assert entry["threshold_from"] == "hu_slices" and "hu_slices" in entry["threshold_candidates"]
    assert entry["config"]["member_hu_scans"] == [["B", "C"], ["A", "C"], ["A", "B"]]

    clf = Classifier(model, entry, "cpu")
    held_out = clf.held_out_for("B")
    assert held_out.info["members"] == [1] and held_out.model is model.members[1]
    assert clf.held_out_for("some other hospital's scan") is clf
    single = Classifier(model.members[0], {"training_config": {"train": {"hu_scans": ["B"]}}}, "cpu")
    assert single.held_out_for("B") is None and single.held_out_for("A") is single
