"""Write and read the enhancer's shipped generator weights (fp16 file + JSON manifest).

The manifest follows :mod:`covidct.weights`: ``file``, ``sha256``, ``version``,
``config`` (the generator architecture), ``training`` and ``metrics`` (filled by
``covidct evaluate-enhancer --update-manifests``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from .. import weights as weights_mod
from ..io import write_bytes_atomic
from ..preprocess.windowing import LUNG_WINDOW_HU

ENHANCER_VERSION = "1.0.0"


def write_generator_weights(directory, key: str, generator, gen_config: dict, training: dict) -> Path:
    """Save ``generator`` as fp16 ``KEY.pt`` and its manifest ``KEY.json`` atomically."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
             for k, v in generator.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    weights_path = directory / f"{key}.pt"
    write_bytes_atomic(weights_path, buffer.getvalue())
    manifest_path = directory / f"{key}.json"
    previous = {}
    if manifest_path.exists():
        try:
            previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            previous = {}
    manifest = {
        "file": weights_path.name,
        "sha256": weights_mod.sha256_of(weights_path),
        "version": ENHANCER_VERSION,
        "architecture": "SRResNet",
        "config": dict(gen_config),
        "input": (f"lung window [{LUNG_WINDOW_HU[0]:g}, {LUNG_WINDOW_HU[1]:g}] HU scaled to [0, 1]; "
                  "output = bicubic + learned residual"),
        "precision": "float16",
        "training": training,
        "metrics": previous.get("metrics", {}),
        "card": "ENHANCER_CARD.md",
    }
    weights_mod.write_manifest(key, manifest, directory)
    return weights_path


def update_manifest_metrics(directory, key: str, metrics: dict) -> None:
    """Record validation metrics in the manifest (the weights file is not touched)."""
    directory = Path(directory) if directory else weights_mod.weights_dir()
    path = directory / f"{key}.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["metrics"] = metrics
    weights_mod.write_manifest(key, manifest, directory)


def _training_patients(directory, key: str) -> list:
    """The patients the manifest says the model was trained on (empty when it does not say)."""
    directory = Path(directory) if directory else weights_mod.weights_dir()
    manifest = json.loads((directory / f"{key}.json").read_text(encoding="utf-8"))
    return list((manifest.get("training") or {}).get("train_patients") or [])


def update_manifests_from_evaluation(results: dict, directory=None) -> None:
    """Store an ``evaluate-enhancer`` run's numbers in the manifest of each model it scored.

    Each x4 (x2) model gets every condition of its scale, with bicubic's PSNR/SSIM beside
    its own, and the command that measured them.
    """
    for condition, scale_part in (("x4", "x4"), ("x2", "x2")):
        if condition not in results["conditions"]:
            continue
        for method, metrics in results["conditions"][condition]["methods"].items():
            if not method.startswith("enhancer") or "model_key" not in metrics:
                continue
            key = metrics["model_key"]
            if f"_{scale_part}_" not in key or not key.endswith(method.split("_", 1)[1]):
                continue
            seen = _training_patients(directory, key)
            patient = results["patient"]
            summary = {"evaluation": f"covidct evaluate-enhancer --patient {patient} "
                                     f"--slice-step {results['slice_step']}",
                       # A patient the model was trained on is recorded as such, never as held out.
                       ("patient_seen_in_training" if patient in seen else "held_out_patient"): patient,
                       "slices": len(results["slices"])}
            for name, entry in results["conditions"].items():
                if entry["degradation"]["scale"] != (4 if scale_part == "x4" else 2):
                    continue
                m = entry["methods"].get(method)
                if m:
                    summary[name] = {k: v for k, v in m.items() if k not in ("model_key", "sha256", "seconds")}
                    summary[name]["bicubic_psnr_body"] = entry["methods"]["bicubic"]["psnr_body"]
                    summary[name]["bicubic_ssim_body"] = entry["methods"]["bicubic"]["ssim_body"]
            update_manifest_metrics(directory, key, summary)


def load_generator(key: str, directory=None):
    """The verified generator (checksum checked first) in eval mode, and its manifest."""
    from .generator import build_generator

    state, entry = weights_mod.load_state_dict(key, directory)
    generator = build_generator(entry.get("config", {}))
    weights_mod.load_into(generator, state, key)
    generator.eval()
    return generator, entry
