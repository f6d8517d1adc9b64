import numpy as np

from covidct.classify.training import train

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
