"""Enhance a CT volume: HU in, HU out, geometry exact, batched and tiled, GPU when present.

The generator sees lung-window values ([-1350, 150] HU -> [0, 1]) and returns the
detail to add to a bicubic up-sampling.  For HU volumes the detail is added to the
bicubic up-sampling **of the HU values themselves** (``HU_out = bicubic(HU) + 1500 *
detail``), so values outside the lung window (bone, contrast) keep their HU and
window/level in Slicer behaves as on the original.  Non-HU 2D exports (values in
[0, 1]) are enhanced directly.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Optional

import numpy as np

from ..errors import InvalidCTError
from ..preprocess.windowing import LUNG_WINDOW_HU
from ..progress import CancelToken, ProgressCallback
from ..volume import CTVolume

LOG = logging.getLogger(__name__)

TARGET_MATRIX = 512
MODEL_CHOICES = ("fidelity", "gan")
DEFAULT_MODEL = "fidelity"
TILE_LR_PX = 256       # largest low-resolution tile side processed at once
TILE_MARGIN_LR_PX = 24  # context around each tile (the network sees ~40 px; edges fade fast)

# (scale, requested model) -> shipped model key.  There is no x2 GAN model: x2 "gan"
# uses the x2 fidelity model and says so in the returned info.
MODEL_KEYS = {
    (4, "fidelity"): "enhancer_x4_fidelity",
    (4, "gan"): "enhancer_x4_gan",
    (2, "fidelity"): "enhancer_x2_fidelity",
    (2, "gan"): "enhancer_x2_fidelity",
}


def choose_scale(shape_rows_cols: tuple, scale="auto") -> tuple[int, str]:
    """The scale to use and why.  ``auto``: smallest of 1, 2, 4 bringing the larger in-plane
    side to at least 512 (4 if none does)."""
    if scale == "auto" or scale is None:
        side = max(shape_rows_cols)
        for candidate in (1, 2, 4):
            if side * candidate >= TARGET_MATRIX:
                return candidate, f"auto: in-plane matrix {shape_rows_cols[0]}x{shape_rows_cols[1]} -> x{candidate} reaches >= {TARGET_MATRIX}"
        return 4, f"auto: in-plane matrix {shape_rows_cols[0]}x{shape_rows_cols[1]} is small; x4 is the largest scale"
    try:
        value = float(scale)
    except (TypeError, ValueError):
        value = -1.0
    if value not in (1.0, 2.0, 4.0):
        raise InvalidCTError(f"Unsupported enhancement scale '{scale}'; use auto, 1, 2 or 4.")
    return int(value), "requested"


def _tiles(length: int, tile: int):
    """Start/stop pairs covering ``range(length)`` with tiles of at most ``tile``."""
    count = max(1, math.ceil(length / tile))
    edges = np.linspace(0, length, count + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def residual_detail(generator, low_unit, scale: int, tile: int = TILE_LR_PX, margin: int = TILE_MARGIN_LR_PX):
    """The generator's learned detail for a batch ``(N, 1, H, W)`` tensor, tiled when large."""
    import torch

    _, _, rows, cols = low_unit.shape
    if rows <= tile and cols <= tile:
        return generator.residual(low_unit)
    out = torch.empty((low_unit.shape[0], 1, rows * scale, cols * scale), device=low_unit.device,
                      dtype=low_unit.dtype)
    for r0, r1 in _tiles(rows, tile):
        for c0, c1 in _tiles(cols, tile):
            a0, a1 = max(0, r0 - margin), min(rows, r1 + margin)
            b0, b1 = max(0, c0 - margin), min(cols, c1 + margin)
            detail = generator.residual(low_unit[:, :, a0:a1, b0:b1])
            out[:, :, r0 * scale:r1 * scale, c0 * scale:c1 * scale] = detail[
                :, :, (r0 - a0) * scale:(r1 - a0) * scale, (c0 - b0) * scale:(c1 - b0) * scale]
    return out


def reduced_precision_dtype(device, precision: str = "auto"):
    """The autocast dtype for the generator, or None for plain fp32.

    ``auto``: bfloat16 on CPUs with native bf16 (AVX512-BF16/AMX) and on CUDA, where
    PSNR was checked to stay within 0.01 dB of fp32 (``covidct evaluate-enhancer
    --precision``); fp32 elsewhere.  The bicubic base is always computed in fp32.
    """
    import torch

    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        native_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native_bf16 = False
    return torch.bfloat16 if native_bf16 else None


def _enhance_batch(generator, slices: np.ndarray, scale: int, is_hounsfield: bool, device,
                   precision: str = "auto") -> np.ndarray:
    """float32 slices ``(N, H, W)`` (HU or [0, 1]) -> enhanced float32 ``(N, sH, sW)``."""
    import contextlib

    import torch
    import torch.nn.functional as F

    dtype = reduced_precision_dtype(device, precision)
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                else contextlib.nullcontext())

    def detail_of(unit):
        with autocast:
            detail = residual_detail(generator, unit.contiguous(memory_format=torch.channels_last), scale)
        return detail.float()

    with torch.inference_mode():
        values = torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32))[:, None]
        if device.type == "cuda":  # page-locked host memory: the copy can run asynchronously
            values = values.pin_memory().to(device, non_blocking=True)
        else:
            values = values.to(device)
        if is_hounsfield:
            low, high = LUNG_WINDOW_HU
            unit = ((values - low) / (high - low)).clamp_(0.0, 1.0)
            detail = detail_of(unit)
            base = F.interpolate(values, scale_factor=scale, mode="bicubic", align_corners=False)
            out = base + detail * (high - low)
        else:
            unit = values.clamp(0.0, 1.0)
            out = F.interpolate(unit, scale_factor=scale, mode="bicubic", align_corners=False)
            out = out + detail_of(unit)
        return out[:, 0].float().cpu().numpy()


def _default_batch(device, rows: int, cols: int) -> int:
    budget_px = 2048 * 2048 if device.type == "cuda" else 256 * 256
    return max(1, min(64, budget_px // max(1, rows * cols)))


def _checked_input(volume: CTVolume, model: str) -> np.ndarray:
    """The voxels, after refusing a model or an image the enhancer cannot take."""
    if model not in MODEL_CHOICES:
        raise InvalidCTError(f"Unknown enhancer model '{model}'; use one of {', '.join(MODEL_CHOICES)}.")
    voxels = volume.voxels
    if voxels.ndim != 3 or min(voxels.shape[1:]) < 8:
        raise InvalidCTError(f"Cannot enhance an image of shape {voxels.shape}; need slices of at least 8x8 pixels.")
    return voxels


def _enhance_slices(volume: CTVolume, model: str, scale: int, device, batch_size: Optional[int],
                    models, precision: str, progress: ProgressCallback,
                    cancel: Optional[CancelToken]) -> tuple:
    """Every slice through the generator on ``device``: ``(voxels, entry, device, batch)``.

    Batches halve when the device runs out of memory; out of memory with one slice per
    batch is raised (for :func:`covidct.devices.run_with_cpu_fallback`).  Enhanced values
    are clipped to the input's range (HU) or [0, 1], and rounded back to int16 for
    integer HU input.
    """
    import torch

    from ..devices import is_out_of_memory, release_gpu_memory

    device = torch.device(device)
    generator, entry = models.enhancer(scale, model, device)
    voxels = volume.voxels
    rows, cols = voxels.shape[1:]
    batch = int(batch_size or _default_batch(device, rows, cols))
    lo_value, hi_value = float(np.min(voxels)), float(np.max(voxels))
    out_dtype = np.int16 if (volume.is_hounsfield and voxels.dtype.kind in "iu") else np.float32
    result = np.empty((voxels.shape[0], rows * scale, cols * scale), dtype=out_dtype)
    start = 0
    progress(0.0, "enhance")
    while start < voxels.shape[0]:
        if cancel is not None:
            cancel.check("enhance")
        stop = min(voxels.shape[0], start + batch)
        try:
            enhanced = _enhance_batch(generator, voxels[start:stop].astype(np.float32), scale,
                                      volume.is_hounsfield, device, precision)
        except RuntimeError as exc:
            if batch == 1 or not is_out_of_memory(exc):
                raise
            release_gpu_memory()
            batch = max(1, batch // 2)
            LOG.warning("enhancer ran out of memory on %s; retrying with batch size %d", device, batch)
            continue
        if volume.is_hounsfield:
            np.clip(enhanced, lo_value, hi_value, out=enhanced)
        else:
            np.clip(enhanced, 0.0, 1.0, out=enhanced)
        result[start:stop] = np.round(enhanced) if out_dtype == np.int16 else enhanced
        start = stop
        progress(start / voxels.shape[0], "enhance")
    return result, entry, device, batch


def enhance_volume(volume: CTVolume, scale=4, model: str = DEFAULT_MODEL, device="auto",
                   progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                   batch_size: Optional[int] = None, models=None,
                   precision: str = "auto") -> tuple[CTVolume, dict]:
    """Super-resolve every slice in-plane; returns the new volume and what was done.

    HU volumes come back in HU (int16 if the input was integer, else float32), clipped to
    the input's value range; non-HU images come back in [0, 1].  The input is not modified.
    A GPU that runs out of memory even with one slice per batch hands the whole volume
    to the CPU (``info["fallback"]`` says so).  The generator comes from ``models`` (a
    :class:`covidct.models.ModelStore`; default: the process-wide one).
    """
    from ..devices import run_with_cpu_fallback, select_device
    from ..models import default_store
    from ..preprocess.resample import scaled_in_plane_geometry

    started = time.time()
    progress = progress or (lambda fraction, stage: None)
    voxels = _checked_input(volume, model)
    chosen, reason = choose_scale(voxels.shape[1:], scale)
    info = {"scale": chosen, "scale_choice": reason, "model": model, "input_shape": list(voxels.shape)}
    if chosen == 1:
        info.update({"model_key": None, "version": None, "sha256": None, "device": None,
                     "output_shape": list(voxels.shape), "seconds": round(time.time() - started, 3)})
        progress(1.0, "enhance")
        return volume.with_voxels(voxels.copy()), info

    model_key = MODEL_KEYS[(chosen, model)]
    if (chosen, model) == (2, "gan"):
        info["note"] = "no x2 GAN model is shipped; the x2 fidelity model was used"

    def to_cpu(_exc):
        LOG.warning("enhancer ran out of GPU memory even with one slice; enhancing on the CPU")
        info["fallback"] = "out of GPU memory; finished on CPU"

    result, entry, target, batch = run_with_cpu_fallback(
        lambda dev: _enhance_slices(volume, model, chosen, dev, batch_size, models or default_store(), precision,
                                    progress, cancel),
        select_device(device),
        "Out of memory while enhancing a single slice on the CPU; free memory or use a smaller scale.",
        on_fallback=to_cpu)
    spacing, origin = scaled_in_plane_geometry(volume, chosen)
    output = volume.with_voxels(result, spacing_mm=spacing, origin_lps=origin)
    info.update({"model_key": model_key, "version": entry.get("version"), "sha256": entry.get("sha256"),
                 "device": str(target), "batch_size": batch,
                 "precision": str(reduced_precision_dtype(target, precision) or "float32").replace("torch.", ""),
                 "output_shape": list(result.shape), "seconds": round(time.time() - started, 3)})
    return output, info


def enhance_unit_slice(slice_unit: np.ndarray, scale: int = 4, model: str = DEFAULT_MODEL, device="cpu",
                       models=None) -> np.ndarray:
    """Convenience for one lung-window slice in [0, 1] (used by evaluation and tests)."""
    volume = CTVolume(voxels=np.asarray(slice_unit, dtype=np.float32)[None], is_hounsfield=False)
    out, _ = enhance_volume(volume, scale=scale, model=model, device=device, models=models)
    return out.voxels[0]
