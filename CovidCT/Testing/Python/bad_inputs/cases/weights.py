"""Cases: model weights (missing, deleted, truncated, wrong checksum or architecture, bad manifest).

The control case classifies with an intact copy, so each failure is the damage's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from bad_inputs.building import grey_slice_uint8, scan_hu, write_volume
from bad_inputs.framework import Expected, Prepared, case
from bad_inputs.runners import run_in_subprocess
from covidct.errors import WeightsError


def classifier_weights(folder: Path) -> Path:
    """A classifier weights folder: a copy of the shipped one if present, else a stand-in.

    The stand-in has the shipped layout (manifest + .pt, sha256) with random weights of
    the real architecture, so every check in :mod:`covidct.weights` is exercised.
    """
    import torch

    from covidct.classify.network import build_network
    from covidct.weights import sha256_of, weights_dir

    folder.mkdir(parents=True, exist_ok=True)
    shipped = weights_dir() / "classifier.json"
    if shipped.exists():
        entry = json.loads(shipped.read_text())
        shutil.copy2(shipped, folder / "classifier.json")
        shutil.copy2(weights_dir() / entry["file"], folder / entry["file"])
        return folder
    torch.manual_seed(0)
    torch.save(build_network({}).state_dict(), folder / "classifier.pt")
    entry = {"file": "classifier.pt", "sha256": sha256_of(folder / "classifier.pt"), "version": "test",
             "config": {"network": {}, "input_size_px": 128}, "threshold": 0.5}
    (folder / "classifier.json").write_text(json.dumps(entry))
    return folder


def _classify_prepared(tmp: Path, weights: Path) -> Prepared:
    from PIL import Image

    image = tmp / "slice.png"
    Image.fromarray(grey_slice_uint8()).save(image)
    return Prepared(["classify", image, "--device", "cpu"], [image, weights],
                    env={"COVIDCT_WEIGHTS_DIR": weights}, runner=run_in_subprocess)


def _weights_file(weights: Path) -> Path:
    return weights / json.loads((weights / "classifier.json").read_text())["file"]


@case("weights_intact", "weights", Expected(0, None, r"p\(COVID-19\) = [01]\.\d{3}"))
def _weights_intact(tmp: Path) -> Prepared:
    """The control: an intact copy of the weights folder classifies the slice (so the failures below are the damage's)."""
    return _classify_prepared(tmp, classifier_weights(tmp / "weights"))


@case("weights_missing", "weights", Expected(5, WeightsError, "No weights manifest.*COVIDCT_WEIGHTS_DIR"))
def _weights_missing(tmp: Path) -> Prepared:
    """No model weights at all (empty weights folder)."""
    (tmp / "weights").mkdir()
    return _classify_prepared(tmp, tmp / "weights")


@case("weights_file_deleted", "weights", Expected(5, WeightsError, "is missing"))
def _weights_file_deleted(tmp: Path) -> Prepared:
    """The manifest is there but its .pt file was deleted."""
    weights = classifier_weights(tmp / "weights")
    _weights_file(weights).unlink()
    return _classify_prepared(tmp, weights)


@case("weights_truncated", "weights", Expected(5, WeightsError, "sha256 .* does not match the expected [0-9a-f]{64}"))
def _weights_truncated(tmp: Path) -> Prepared:
    """The weights file cut in half (an interrupted download)."""
    weights = classifier_weights(tmp / "weights")
    path = _weights_file(weights)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return _classify_prepared(tmp, weights)


@case("weights_wrong_checksum", "weights", Expected(5, WeightsError, "is corrupt or was replaced: sha256 [0-9a-f]{64}"))
def _weights_checksum(tmp: Path) -> Prepared:
    """One byte of the weights file changed (same size, different sha256)."""
    weights = classifier_weights(tmp / "weights")
    path = _weights_file(weights)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return _classify_prepared(tmp, weights)


@case("weights_wrong_architecture", "weights", Expected(5, WeightsError, "do not fit the network architecture"))
def _weights_architecture(tmp: Path) -> Prepared:
    """Weights of another network, with a manifest whose sha256 matches them."""
    import torch

    from covidct.weights import sha256_of

    weights = classifier_weights(tmp / "weights")
    path = _weights_file(weights)
    torch.save({"stem.weight": torch.zeros(3, 3), "head.bias": torch.zeros(7)}, path)
    manifest = json.loads((weights / "classifier.json").read_text())
    manifest["sha256"] = sha256_of(path)
    (weights / "classifier.json").write_text(json.dumps(manifest))
    return _classify_prepared(tmp, weights)


@case("weights_manifest_not_json", "weights", Expected(5, WeightsError, "not valid JSON"))
def _weights_manifest(tmp: Path) -> Prepared:
    """The weights manifest is not JSON (edited by hand, or truncated)."""
    weights = classifier_weights(tmp / "weights")
    (weights / "classifier.json").write_text('{"file": "classifier.pt", "sha256": ')
    return _classify_prepared(tmp, weights)


@case("enhancer_weights_missing", "weights", Expected(5, WeightsError, "No weights manifest"))
def _enhancer_missing(tmp: Path) -> Prepared:
    """covidct enhance with no enhancer weights: refused, and no output file."""
    (tmp / "weights").mkdir()
    path = write_volume(tmp / "scan.nrrd", scan_hu().astype(np.int16))
    return Prepared(["enhance", path, "-o", tmp / "out.nrrd", "--scale", "2", "--device", "cpu"],
                    [path], tmp / "out.nrrd", env={"COVIDCT_WEIGHTS_DIR": tmp / "weights"},
                    runner=run_in_subprocess)
