import numpy as np

from covidct.research.classifier.training import train

from classifier_helpers import TINY_NETWORK


def _easy_cache(n_per_class=24, size=32):
    """Class 1 has a bright round 'lesion', class 0 does not; two sources, like real data."""
    rng = np.random.default_rng(0)
    images, labels, sources = [], [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for source in ("sars", "ucsd"):
        for label in (0, 1):
            for _ in range(n_per_class):
                img = 0.15 + 0.3 * yy / size + 0.01 * rng.random((size, size))
                if label:
                    cy, cx = rng.integers(8, size - 8, 2)
                    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = 0.9
                images.append(img)
                labels.append(label)
                sources.append(source)
    n = len(images)
    return {"images": np.stack(images).astype(np.float16), "label": np.array(labels, np.int8),
            "source": np.array(sources), "group": np.array([f"g{i}" for i in range(n)]),
            "slice_index": np.full(n, -1), "infection": np.full(n, -1, np.int8)}


def test_a_few_training_steps_lower_the_loss(tmp_path):
    cfg = {"name": "t", "version": "0", "input_size_px": 32, "network": TINY_NETWORK,
           "train": {"sars": True, "ucsd": True, "hu_scans": []}, "sars_val_fraction": 0.25,
           "ucsd_val_fraction": 0.25, "split_seed": 0, "seed": 0, "steps": 60, "batch_size": 16,
           "learning_rate": 3e-3, "final_learning_rate": 1e-4, "threads": 1, "device": "cpu",
           "eval_every": 20, "max_minutes": 5,
           "augment": {"p_geometry": 0.0, "p_window": 0.0, "p_kernel": 0.0, "p_noise": 0.0,
                       "p_jpeg": 0.0, "p_resolution": 0.0}}
    report = train(cfg, _easy_cache(), tmp_path, log=lambda *_: None)
    losses = [h["loss"] for h in report["history"]]
    assert losses[-1] < losses[0]
    assert (tmp_path / "model.pt").exists() and (tmp_path / "run.json").exists()
    assert report["final"]["slice"]["sars_val"]["auc"] > 0.7

    # The card's ablation rows are printed from run.json by tools/classifier_runs_table.py.
    import subprocess
    import sys
    from pathlib import Path

    table = Path(__file__).resolve().parents[4] / "tools" / "classifier_runs_table.py"
    done = subprocess.run([sys.executable, str(table), str(tmp_path)], capture_output=True, text=True, check=True)
    header, _, line = done.stdout.strip().splitlines()
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert len(cells) == len(header.strip("|").split("|")) == 7
    assert cells[1].startswith(f"{report['final']['slice']['sars_val']['auc']:.3f} [")
    assert cells[2].startswith(f"{report['final']['slice']['ucsd_val']['auc']:.3f}")
    assert cells[3:] == ["-", "-", "-", "- / - / -"]          # no HU scans in this cache


def test_hu_slices_with_too_little_lung_are_left_out_of_training_and_held_out_sets():
    from covidct.research.classifier.datasets import cache_matches
    from covidct.research.classifier.training import DEFAULT_TRAINING, make_splits

    cache = _easy_cache(n_per_class=4)
    n2d = cache["label"].size
    fractions = np.array([1.0, 0.6, 0.2, 0.1, 0.9, 0.3, 1.0, 0.2], np.float32)   # "scans" P, N (3), Q (2)
    cache["images"] = np.concatenate([cache["images"], np.zeros((8, 32, 32), np.float16)])
    cache["label"] = np.concatenate([cache["label"], np.array([1, 1, 1, 0, 0, 0, 0, 0], np.int8)])
    cache["source"] = np.concatenate([cache["source"], np.array(["hu"] * 8)])
    cache["group"] = np.concatenate([cache["group"], np.array(["P"] * 3 + ["N"] * 3 + ["Q"] * 2)])
    cache["lung_fraction"] = np.concatenate([np.ones(n2d, np.float32), fractions])
    cfg = dict(DEFAULT_TRAINING, train={"sars": True, "ucsd": True, "hu_scans": ["P", "Q"]}, min_lung_fraction=0.25)
    splits = make_splits(cache, cfg)
    hu_train = sorted(int(i) - n2d for i in splits["train"] if i >= n2d)
    assert hu_train == [0, 1, 6]                  # P's and Q's 0.2 slices are dropped
    assert sorted(int(i) - n2d for i in splits["hu:N"]) == [4, 5]   # N's 0.1 slice is dropped
    loose = make_splits(cache, dict(cfg, min_lung_fraction=0.1))
    assert sorted(int(i) - n2d for i in loose["hu:N"]) == [3, 4, 5]

    cache.update(size_px=np.int32(32), crop=np.array("slice"))
    assert cache_matches(cache, 32, "slice")
    assert not cache_matches(cache, 32, "scan") and not cache_matches(cache, 128, "slice")


def _member_config(tmp_path, name, seed, **changes):
    import json

    cfg = {"name": "t", "version": "0", "input_size_px": 32, "network": TINY_NETWORK,
           "train": {"sars": True, "ucsd": True, "hu_scans": []}, "sars_val_fraction": 0.25,
           "ucsd_val_fraction": 0.25, "split_seed": 0, "seed": seed, "steps": 30, "batch_size": 16,
           "learning_rate": 3e-3, "final_learning_rate": 1e-4, "threads": 1, "device": "cpu",
           "eval_every": 30, "max_minutes": 5, "standardisation": "none", **changes}
    (tmp_path / f"{name}.json").write_text(json.dumps(cfg))
    return f"{name}.json"


def test_seed_ensemble_trains_its_members_reuses_them_and_averages_them(tmp_path):
    import json

    import torch

    from covidct.classify.network import build_network
    from covidct.research.classifier.training import load_config, train_ensemble

    names = [_member_config(tmp_path, f"m{seed}", seed) for seed in (0, 1)]
    (tmp_path / "ens.json").write_text(json.dumps({"name": "t", "version": "1", "ensemble_of": names,
                                                    "input_size_px": 32}))
    cfg = load_config(tmp_path / "ens.json")
    messages = []
    report = train_ensemble(cfg, tmp_path / "ens.json", _easy_cache(), tmp_path / "run", log=messages.append)
    assert report["config"]["network"]["ensemble_members"] == 2 and report["config"]["seed"] == [0, 1]
    assert sum("training" in str(m) for m in messages) == 2
    assert [env["numpy"] for env in report["environment"]] == [np.__version__] * 2   # why a rerun may differ
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    members = [torch.load(tmp_path / "run" / "members" / f"m{s}" / "model.pt", weights_only=True) for s in (0, 1)]
    assert not torch.equal(members[0]["stem.0.weight"], members[1]["stem.0.weight"])   # seeds differ
    assert torch.equal(state["members.1.stem.0.weight"], members[1]["stem.0.weight"])

    ensemble = build_network(report["config"]["network"]).eval()
    ensemble.load_state_dict({k: v.float() for k, v in state.items()})
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        logits, cam = ensemble.forward_with_cam(x)
        singles = [m.forward_with_cam(x) for m in ensemble.members]
    assert torch.allclose(logits, (singles[0][0] + singles[1][0]) / 2, atol=1e-5)
    assert torch.allclose(cam, (singles[0][1] + singles[1][1]) / 2, atol=1e-5)
    assert torch.allclose(logits, ensemble(x), atol=1e-6)

    messages.clear()
    train_ensemble(cfg, tmp_path / "ens.json", _easy_cache(), tmp_path / "run", log=messages.append)
    assert sum("reusing" in str(m) for m in messages) == 2       # resumes instead of retraining

    member = tmp_path / names[0]        # a new comment is not a new recipe; a new setting is
    member.write_text(json.dumps(dict(json.loads(member.read_text()), _comment="edited")))
    messages.clear()
    train_ensemble(cfg, tmp_path / "ens.json", _easy_cache(), tmp_path / "run", log=messages.append)
    assert sum("reusing" in str(m) for m in messages) == 2
    member.write_text(json.dumps(dict(json.loads(member.read_text()), steps=31)))
    messages.clear()
    train_ensemble(cfg, tmp_path / "ens.json", _easy_cache(), tmp_path / "run", log=messages.append)
    assert [str(m).split(":")[0] for m in messages if "member" in str(m)] == ["member m0", "member m1"]
    assert sum("reusing" in str(m) for m in messages) == 1


def test_ensemble_members_must_share_data_splits_and_network(tmp_path):
    import json

    import pytest

    from covidct.classify.network import build_network
    from covidct.research.classifier.training import load_config, member_configs

    names = [_member_config(tmp_path, "a", 0), _member_config(tmp_path, "b", 1, split_seed=3)]
    (tmp_path / "ens.json").write_text(json.dumps({"ensemble_of": names}))
    with pytest.raises(ValueError, match="split_seed"):
        member_configs(load_config(tmp_path / "ens.json"), tmp_path / "ens.json")
    with pytest.raises(ValueError, match="two"):
        build_network(dict(TINY_NETWORK, ensemble_members=1)).__class__  # a single net is fine
        from covidct.classify.network import SeedEnsemble
        SeedEnsemble(dict(TINY_NETWORK, ensemble_members=1))


def test_released_hu_slice_rows_are_measured_at_the_operating_threshold():
    from covidct.research.classifier.release import _hu_rows_at

    scans = {"a": {"covid_scan": True, "infection": [1, 1, 0, 0], "scores": [0.9, 0.6, 0.4, 0.2]},
             "b": {"covid_scan": False, "infection": [0, 0, 1], "scores": [0.3, 0.5, 0.7]}}  # b: CAP infection
    from covidct.classify import metrics
    from covidct.research.classifier.training import hu_slice_sets

    rows = _hu_rows_at(scans, threshold=0.55)
    covid_vs_other = rows["hu_covid_infected_vs_noncovid"]
    assert sum(covid_vs_other["confusion"].values()) == 5
    assert covid_vs_other["confusion"]["tp"] + covid_vs_other["confusion"]["fn"] == 2
    assert covid_vs_other["threshold"] == 0.55
    assert covid_vs_other["sensitivity"] == 1.0 and np.isclose(covid_vs_other["specificity"], 2 / 3)
    sets = hu_slice_sets([1, 1, 0, 0, 0, 0, 1], [True] * 4 + [False] * 3, [0.9, 0.6, 0.4, 0.2, 0.3, 0.5, 0.7])
    assert np.isclose(metrics.auc(*sets["hu_covid_infected_vs_noncovid"]), 5 / 6)
    assert metrics.auc(*sets["hu_covid_scan_infected_vs_clean"]) == 1.0
    assert np.asarray(sets["hu_infected_vs_not"][0]).astype(bool).sum() == 3       # CAP infection counts here
    assert _hu_rows_at({}, 0.5) == {}
