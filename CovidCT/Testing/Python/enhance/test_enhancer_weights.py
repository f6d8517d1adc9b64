"""Enhancer weights: checksum refusal, architecture mismatch, fp16 manifest; the shipped models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from covidct.enhance import enhance_volume
from covidct.enhance.weights_io import load_generator
from covidct.errors import WeightsError
from covidct.models import ModelStore
from covidct.volume import CTVolume
from enhancer_helpers import synthetic_hu_volume, write_tiny_weights

SHIPPED_KEYS = ("enhancer_x4_fidelity", "enhancer_x4_gan", "enhancer_x2_fidelity")


def test_corrupted_weights_file_is_refused(tmp_path):
    write_tiny_weights(tmp_path)
    path = tmp_path / "enhancer_x4_fidelity.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        enhance_volume(synthetic_hu_volume(), scale=4, device="cpu", models=ModelStore(tmp_path))


def test_missing_manifest_and_wrong_architecture_are_clear_errors(tmp_path):
    write_tiny_weights(tmp_path)
    manifest_path = tmp_path / "enhancer_x2_fidelity.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["config"]["channels"] = 16  # the file holds an 8-channel network
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="do not fit"):
        load_generator("enhancer_x2_fidelity", tmp_path)
    (tmp_path / "enhancer_x4_gan.json").unlink()
    with pytest.raises(WeightsError, match="No weights manifest"):
        enhance_volume(synthetic_hu_volume(), scale=4, model="gan", device="cpu", models=ModelStore(tmp_path))


def test_manifest_records_fp16_and_checksum(tmp_path):
    import torch

    from covidct.weights import sha256_of

    write_tiny_weights(tmp_path)
    manifest = json.loads((tmp_path / "enhancer_x4_fidelity.json").read_text())
    assert manifest["sha256"] == sha256_of(tmp_path / manifest["file"])
    state = torch.load(tmp_path / manifest["file"], weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("key", SHIPPED_KEYS)
def test_shipped_weights_verify_and_are_small(key):
    from covidct.weights import verified_weights_path

    path, entry = verified_weights_path(key)
    assert path.stat().st_size < 5 * 1024 * 1024
    assert entry["config"]["blocks"] == 16 and entry["version"]


def test_cpu_inference_of_one_128_slice_with_shipped_model():
    """One 128^2 HU slice -> 512^2 on the CPU with the shipped fidelity model."""
    volume = synthetic_hu_volume(slices=1, rows=128, cols=128)
    out, info = enhance_volume(volume, scale="auto", device="cpu")
    assert info["scale"] == 4 and info["model_key"] == "enhancer_x4_fidelity"
    assert out.shape == (1, 512, 512) and np.isfinite(out.voxels).all()


def test_shipped_x4_model_beats_bicubic_on_a_real_slice(shared_data):
    """A held-out patient's slice (P001 is never used in training): fidelity x4 beats bicubic."""
    import torch
    import torch.nn.functional as F

    from covidct.preprocess.body_mask import body_mask_slice
    from covidct.enhance.degradation import area_downsample
    from covidct.research.enhancer.evaluation import psnr
    from covidct.io import load_ct
    from covidct.preprocess.windowing import lung_window

    scan = load_ct(shared_data / "covid-ct-md" / "P001")
    hr = scan.voxels[scan.num_slices // 2].astype(np.float32)
    low = area_downsample(hr, 4)
    out, _ = enhance_volume(CTVolume(voxels=low[None], spacing_mm=(3, 3, 2)), scale=4, device="cpu")
    bicubic = F.interpolate(torch.from_numpy(low)[None, None], scale_factor=4, mode="bicubic",
                            align_corners=False)[0, 0].numpy()
    body = body_mask_slice(hr)
    truth = lung_window(hr)
    gain = psnr(lung_window(out.voxels[0].astype(np.float32)), truth, body) - psnr(lung_window(bicubic), truth, body)
    assert gain > 1.0


def test_evaluation_numbers_go_into_the_manifest_of_the_model_that_was_scored(tmp_path):
    import json

    from covidct.enhance.weights_io import update_manifests_from_evaluation
    from enhancer_helpers import write_tiny_weights

    write_tiny_weights(tmp_path)
    method = {"psnr_body": 31.0, "ssim_body": 0.81, "gain_psnr_body_db": 2.0, "model_key": "enhancer_x4_fidelity",
              "sha256": "x", "seconds": 1.0}
    results = {"patient": "P001", "slice_step": 4, "slices": [0, 4], "conditions": {
        "x4": {"degradation": {"scale": 4}, "methods": {"bicubic": {"psnr_body": 29.0, "ssim_body": 0.78},
                                                        "enhancer_fidelity": method}},
        "x2": {"degradation": {"scale": 2}, "methods": {"bicubic": {"psnr_body": 35.0, "ssim_body": 0.9}}}}}
    update_manifests_from_evaluation(results, tmp_path)
    metrics = json.loads((tmp_path / "enhancer_x4_fidelity.json").read_text())["metrics"]
    assert metrics["held_out_patient"] == "P001" and metrics["slices"] == 2
    assert metrics["x4"]["gain_psnr_body_db"] == 2.0 and metrics["x4"]["bicubic_psnr_body"] == 29.0
    assert "model_key" not in metrics["x4"] and "x2" not in metrics
    assert json.loads((tmp_path / "enhancer_x4_gan.json").read_text())["metrics"] == {}


def test_a_patient_the_model_was_trained_on_is_not_recorded_as_held_out(tmp_path):
    import json

    from covidct.enhance.weights_io import update_manifests_from_evaluation
    from enhancer_helpers import write_tiny_weights

    write_tiny_weights(tmp_path)
    path = tmp_path / "enhancer_x4_fidelity.json"
    manifest = json.loads(path.read_text())
    manifest["training"] = {**(manifest.get("training") or {}), "train_patients": ["cap001", "P001"]}
    path.write_text(json.dumps(manifest))
    method = {"psnr_body": 31.0, "ssim_body": 0.81, "model_key": "enhancer_x4_fidelity"}
    results = {"patient": "P001", "slice_step": 4, "slices": [0], "conditions": {
        "x4": {"degradation": {"scale": 4}, "methods": {"bicubic": {"psnr_body": 29.0, "ssim_body": 0.78},
                                                        "enhancer_fidelity": method}}}}
    update_manifests_from_evaluation(results, tmp_path)
    metrics = json.loads(path.read_text())["metrics"]
    assert metrics["patient_seen_in_training"] == "P001" and "held_out_patient" not in metrics
