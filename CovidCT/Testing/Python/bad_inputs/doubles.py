"""Test doubles: deterministic stand-in models and patches that simulate failures a test
machine cannot produce safely (GPU out of memory, a full disk, permission denied, a run
held inside the lung-mask stage until it is cancelled)."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path
from unittest import mock

import numpy as np

from bad_inputs.framework import READY_MARKER


def fake_classify_volume(volume, lung_mask=None, device="auto", progress=None, cancel=None, **_):
    """Deterministic classifier stand-in: heatmap = lung-windowed CT inside the lungs."""
    from covidct.classify.api import ScanClassification
    from covidct.preprocess.lung_mask import compute_lung_mask
    from covidct.preprocess.windowing import lung_window
    from covidct.result import slice_scores

    if cancel is not None:
        cancel.check("classification")
    mask = compute_lung_mask(volume) if lung_mask is None else np.asarray(lung_mask, dtype=bool)
    heat = (lung_window(np.asarray(volume.voxels, dtype=np.float32)) * mask).astype(np.float32)
    scores = [round(float(heat[k][mask[k]].mean()), 5) if mask[k].any() else None for k in range(volume.num_slices)]
    per_slice = [entry.to_dict() for entry in slice_scores([round(float(z), 3) for z in volume.slice_positions_mm()],
                                                           scores)]
    probability = float(np.mean([s for s in scores if s is not None]))
    if progress is not None:
        progress(1.0, "classified")
    return ScanClassification(
        covid_probability=probability, threshold=0.5,
        decision="COVID-19" if probability >= 0.5 else "non-COVID", per_slice=per_slice,
        heatmap=heat, model={"name": "fake", "version": "test", "sha256": "fake"}, pooling="mean")


def fake_enhance_volume(volume, scale=4, model="fidelity", device="auto", progress=None, cancel=None, **_):
    """Enhancer stand-in: exact-geometry linear up-sampling (what the real one must line up with)."""
    from covidct.enhance.inference import choose_scale
    from volume_helpers import resize_in_plane

    chosen, reason = choose_scale(volume.shape[1:], scale)
    if cancel is not None:
        cancel.check("enhance")
    out = resize_in_plane(volume, chosen, order=1)
    if np.asarray(volume.voxels).dtype.kind in "iu":
        out = out.with_voxels(np.round(out.voxels).astype(np.int16))
    return out, {"scale": chosen, "scale_choice": reason, "model": model, "model_key": "fake",
                 "version": "test", "sha256": "fake"}


@contextlib.contextmanager
def fake_models():
    import covidct.classify
    import covidct.enhance

    with mock.patch.object(covidct.classify, "classify_volume", fake_classify_volume), \
            mock.patch.object(covidct.enhance, "enhance_volume", fake_enhance_volume):
        yield


def gpu_out_of_memory_in_classifier():
    """Classification on any device but the CPU fails as a CUDA OOM does; the CPU works."""
    import covidct.classify

    def classify(volume, lung_mask=None, device="auto", **kwargs):
        if str(device) != "cpu":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return fake_classify_volume(volume, lung_mask, device=device, **kwargs)

    return mock.patch.object(covidct.classify, "classify_volume", classify)


def gpu_out_of_memory_in_enhancer():
    import covidct.enhance

    def enhance(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 8.00 GiB (simulated)")

    return mock.patch.object(covidct.enhance, "enhance_volume", enhance)


def disk_full_on_text_write():
    """Every text write gets half its bytes onto disk, then ENOSPC (a full disk)."""
    real = Path.write_text

    def write_text(self, data, *args, **kwargs):
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return mock.patch.object(Path, "write_text", write_text)


def disk_full_on_volume_write():
    """ITK reports a full disk as a RuntimeError after writing part of the file."""
    import SimpleITK as sitk

    def write_image(image, path, *args, **kwargs):
        Path(path).write_bytes(b"NRRD0004\n# half a file")
        raise RuntimeError("ImageFileWriter (0x1): Could not write file: No space left on device")

    return mock.patch.object(sitk, "WriteImage", write_image)


def permission_denied_for(path: Path):
    """What the kernel answers a non-root user for a ``chmod 000`` file (root reads anyway)."""
    real = os.access
    target = str(path)

    def access(p, mode, *args, **kwargs):
        if str(p) == target:
            return False
        return real(p, mode, *args, **kwargs)

    return mock.patch.object(os, "access", access)


def pause_after_lung_mask():
    """Hold the run inside the lung-mask stage until it is cancelled (for the SIGTERM case)."""
    import covidct.cli.analyze_command as analyze_command
    import covidct.preprocess.lung_mask as lung_mask
    from covidct.progress import CancelToken

    tokens = []

    class RecordingToken(CancelToken):
        def __init__(self):
            super().__init__()
            tokens.append(self)

    real = lung_mask.compute_lung_mask

    def compute(volume):
        mask = real(volume)
        print(READY_MARKER, flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(t.cancelled for t in tokens):
            time.sleep(0.05)
        return mask

    return [mock.patch.object(analyze_command, "CancelToken", RecordingToken),
            mock.patch.object(lung_mask, "compute_lung_mask", compute)]
