import json

import numpy as np
import pytest

from covidct.classify import classify_volume, load_classifier
from covidct.classify.cam import cam_volume
from covidct.errors import WeightsError
from covidct.models import ModelStore

from classifier_helpers import synthetic_chest, tiny_classifier


def test_classify_volume_heatmap_has_the_ct_geometry():
    volume, mask = synthetic_chest(num_slices=4, empty_slices=(0,))
    before = volume.voxels.copy()
    result = classify_volume(volume, mask, classifier=tiny_classifier())
    assert result.heatmap.shape == volume.shape and result.heatmap.dtype == np.float32
    assert result.heatmap.min() >= 0.0 and result.heatmap.max() <= 1.0
    assert not result.heatmap[~mask].any()                     # lung-masked
    assert [s["index"] for s in result.per_slice] == [0, 1, 2, 3]
    assert result.per_slice[0]["in_lung"] is False and result.per_slice[0]["covid19"] is None
    assert all(0.0 <= s["covid19"] <= 1.0 for s in result.per_slice[1:])
    z = [s["z_mm"] for s in result.per_slice]
    assert np.allclose(np.diff(z), 2.0)
    assert result.decision in ("COVID-19", "non-COVID")
    assert np.array_equal(volume.voxels, before)               # input not modified
    assert set(result.to_dict()["probabilities"]) == {"covid19", "non_covid"}


def test_cam_slices_selects_which_slices_get_a_heatmap():
    volume, mask = synthetic_chest(num_slices=3, empty_slices=())
    result = classify_volume(volume, mask, classifier=tiny_classifier(), cam_slices=[1])
    assert not result.heatmap[0].any() and not result.heatmap[2].any()


def test_one_slice_8bit_image_volume():
    from covidct.volume import CTVolume

    rng = np.random.default_rng(0)
    image = np.zeros((80, 90), np.float32)
    image[10:70, 10:80] = rng.random((60, 70))
    volume = CTVolume(voxels=image, is_hounsfield=False)
    result = classify_volume(volume, None, classifier=tiny_classifier())
    assert result.heatmap.shape == (1, 80, 90)
    assert result.per_slice[0]["in_lung"] and result.per_slice[0]["covid19"] is not None
    assert not result.heatmap[0, :5].any()                     # outside the content box


def test_cam_volume_is_normalised_per_volume_not_per_slice():
    cams = {0: np.full((4, 4), 2.0, np.float32), 1: np.full((4, 4), 0.5, np.float32)}
    boxes = {0: (0, 8, 0, 8), 1: (0, 8, 0, 8)}
    heat = cam_volume(cams, boxes, (3, 10, 10))
    assert heat[0, :8, :8].max() == pytest.approx(1.0)
    assert heat[1, :8, :8].max() == pytest.approx(0.25)        # the weaker slice stays weaker
    assert not heat[2].any() and not heat[0, 8:].any()


def test_corrupt_weights_are_refused(tmp_path):
    (tmp_path / "classifier.pt").write_bytes(b"not the shipped weights")
    (tmp_path / "classifier.json").write_text(json.dumps({"file": "classifier.pt", "sha256": "0" * 64}))
    with pytest.raises(WeightsError, match="sha256"):
        load_classifier("cpu", directory=tmp_path)


def test_shipped_weights_load_and_score_a_png(tmp_path):
    from PIL import Image

    from covidct.classify import classify_images

    clf = load_classifier("cpu")                        # verifies the shipped sha256
    assert clf.info["sha256"] and 0.0 < clf.threshold < 1.0
    rng = np.random.default_rng(0)
    path = tmp_path / "slice.png"
    Image.fromarray((rng.random((96, 96)) * 255).astype(np.uint8)).save(path)
    (result,) = classify_images([path], device="cpu")
    assert 0.0 <= result["covid19"] <= 1.0
    assert result["decision"] in ("COVID-19", "non-COVID")


def test_the_model_cache_follows_the_weights_folder(tmp_path, monkeypatch):
    import shutil

    from covidct.weights import weights_dir

    shipped = load_classifier("cpu")
    other = tmp_path / "retrained"
    other.mkdir()
    for name in ("classifier.pt", "classifier.json"):
        shutil.copyfile(weights_dir() / name, other / name)
    entry = json.loads((other / "classifier.json").read_text())
    entry["threshold"] = 0.123                            # a hospital's own operating point
    (other / "classifier.json").write_text(json.dumps(entry))
    monkeypatch.setenv("COVIDCT_WEIGHTS_DIR", str(other))
    retrained = load_classifier("cpu")
    assert retrained is not shipped and retrained.threshold == pytest.approx(0.123)
    monkeypatch.delenv("COVIDCT_WEIGHTS_DIR")
    assert load_classifier("cpu") is shipped


class _NoWeights(ModelStore):
    """A store that must not be asked for a model."""

    def classifier(self, device=None, model_key="classifier"):
        raise AssertionError("weights loaded before the images were checked")


def test_unreadable_image_is_reported_before_the_weights_are_loaded(tmp_path):
    from covidct.classify import classify_images
    from covidct.errors import UnsupportedInputError

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    (entry,) = classify_images([bad], device="cpu", models=_NoWeights())  # a per-file error entry, not an exception
    assert entry["error_type"] == "UnsupportedInputError" and entry["exit_code"] == UnsupportedInputError.exit_code


def test_a_released_seed_ensemble_loads_scores_and_refuses_a_missing_member(tmp_path):
    import torch

    from covidct.classify.network import build_network, ensemble_state_dict
    from covidct.weights import sha256_of

    from classifier_helpers import TINY_NETWORK

    members = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        members.append({k: v.half() if v.is_floating_point() else v
                        for k, v in build_network(TINY_NETWORK).state_dict().items()})

    def release(state, folder):
        folder.mkdir()
        torch.save(state, folder / "classifier.pt")
        entry = {"name": "classifier", "file": "classifier.pt", "sha256": sha256_of(folder / "classifier.pt"),
                 "version": "test", "threshold": 0.5, "pooling": "middle_50_mean",
                 "config": {"network": dict(TINY_NETWORK, ensemble_members=3), "input_size_px": 32,
                            "standardisation": "none", "crop": "slice", "min_lung_fraction": 0.25}}
        (folder / "classifier.json").write_text(json.dumps(entry))
        return folder

    clf = load_classifier("cpu", directory=release(ensemble_state_dict(members), tmp_path / "ok"))
    units = [np.random.default_rng(i).random((32, 32)).astype(np.float32) for i in range(3)]
    probs, cams, _ = clf.predict(units)
    single_cams = []
    for member in clf.model.members:
        with torch.no_grad():
            single_cams.append(member.forward_with_cam(torch.from_numpy(np.stack(units)[:, None]))[1].numpy())
    assert probs.shape == (3,) and np.allclose(cams, np.mean(single_cams, axis=0), atol=1e-4)

    with pytest.raises(WeightsError, match="do not fit"):
        load_classifier("cpu", directory=release(ensemble_state_dict(members[:2]), tmp_path / "two"))
