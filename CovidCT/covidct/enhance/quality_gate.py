"""Does this scan need enhancement?  A cheap estimate (the paper's future-work item).

Looks at a few slices only (< 1 s on a 150-slice scan) and measures:

* the in-plane matrix and pixel spacing;
* ``detail_x2`` / ``detail_x4``: how much of the image is lost by an x2 / x4 area
  down-sampling followed by bicubic up-sampling (lung window, inside the body).  A scan
  that is already a blown-up low-resolution image loses almost nothing, so these give
  its **effective** resolution whatever its matrix says;
* noise (HU): a robust Laplacian estimate (Immerkaer 1996) in soft tissue;
* blockiness: gradient across 8-pixel JPEG block borders relative to elsewhere.

Only a small matrix is something the enhancer can fix (it up-samples); blur, noise and
blockiness are reported so the user knows why a scan looks poor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..preprocess.body_mask import body_mask_slice
from ..preprocess.resample import area_downsample
from ..preprocess.windowing import lung_window
from ..volume import CTVolume
from .inference import TARGET_MATRIX, choose_scale

MAX_SAMPLED_SLICES = 5
# Thresholds calibrated on the shared 512^2 HU scans and their degraded versions
# (see the model card): original 512^2 slices give detail_x2 of about 0.016, the same
# slices after x2 down/up-sampling or a 1-pixel Gaussian blur about 0.006.
BLURRED_DETAIL_X2 = 0.008
NOISY_HU = 25.0
BLOCKY_RATIO = 1.25
_LAPLACIAN = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


@dataclass
class QualityAssessment:
    needs_enhancement: bool
    suggested_scale: int
    reasons: list = field(default_factory=list)
    measures: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _bicubic_up(image: np.ndarray, factor: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.interpolate(tensor, scale_factor=factor, mode="bicubic", align_corners=False)[0, 0].numpy()


def _detail_lost(unit: np.ndarray, mask: np.ndarray, factor: int) -> float:
    rows, cols = (unit.shape[0] // factor) * factor, (unit.shape[1] // factor) * factor
    if rows < factor * 4 or cols < factor * 4:
        return float("nan")
    crop = unit[:rows, :cols]
    rebuilt = _bicubic_up(area_downsample(crop, factor), factor)
    diff = (crop - rebuilt)[mask[:rows, :cols]]
    return float(np.sqrt(np.mean(diff ** 2))) if diff.size else float("nan")


def _noise_sigma(values: np.ndarray, where: np.ndarray) -> float:
    from scipy.ndimage import convolve

    response = convolve(values.astype(np.float32), _LAPLACIAN, mode="nearest")
    inner = where.copy()
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    if inner.sum() < 100:
        return float("nan")
    # |response| of pure Gaussian noise has median 0.6745 * 6 * sigma.
    return float(np.median(np.abs(response[inner])) / (0.6745 * 6.0))


def _blockiness(unit: np.ndarray) -> float:
    grad = np.abs(np.diff(unit, axis=1))
    if grad.shape[1] < 16:
        return float("nan")
    at_border = grad[:, 7::8].mean()
    columns = np.ones(grad.shape[1], dtype=bool)
    columns[7::8] = False
    elsewhere = grad[:, columns].mean()
    return float(at_border / elsewhere) if elsewhere > 0 else float("nan")


def assess_quality(volume: CTVolume) -> QualityAssessment:
    voxels = volume.voxels
    rows, cols = voxels.shape[1:]
    count = min(MAX_SAMPLED_SLICES, voxels.shape[0])
    picks = np.unique(np.linspace(voxels.shape[0] * 0.2, voxels.shape[0] * 0.8 - 1, count).round().astype(int)
                      .clip(0, voxels.shape[0] - 1))
    detail2, detail4, noise, blocky = [], [], [], []
    for k in picks:
        values = voxels[k].astype(np.float32)
        if volume.is_hounsfield:
            unit = lung_window(values)
            mask = body_mask_slice(values)
            soft = mask & (values > -150) & (values < 150)
            noise.append(_noise_sigma(values, soft))
        else:
            unit = np.clip(values, 0.0, 1.0)
            mask = np.ones(unit.shape, dtype=bool)
            # Soft tissue in a lung-window export sits near the top of the range.
            noise.append(_noise_sigma(unit * 1500.0, (unit > 0.8) & (unit < 0.99)))
        if mask.sum() < 0.02 * mask.size:
            mask = np.ones(unit.shape, dtype=bool)
        detail2.append(_detail_lost(unit, mask, 2))
        detail4.append(_detail_lost(unit, mask, 4))
        blocky.append(_blockiness(unit))

    def median(values):
        values = [v for v in values if np.isfinite(v)]
        return round(float(np.median(values)), 5) if values else None

    measures = {
        "in_plane_matrix": [int(rows), int(cols)],
        "pixel_spacing_mm": [round(volume.spacing_mm[0], 4), round(volume.spacing_mm[1], 4)],
        "detail_x2": median(detail2),
        "detail_x4": median(detail4),
        "noise_hu": median(noise),
        "blockiness": median(blocky),
        "sampled_slices": [int(k) for k in picks],
    }
    scale, _ = choose_scale((rows, cols), "auto")
    reasons = []
    if scale > 1:
        reasons.append(f"in-plane matrix {rows}x{cols} is below {TARGET_MATRIX}: x{scale} super-resolution suggested")
    d2 = measures["detail_x2"]
    if d2 is not None and d2 < BLURRED_DETAIL_X2:
        reasons.append(f"little fine detail (detail_x2 {d2:.4f} < {BLURRED_DETAIL_X2}): the image looks up-sampled "
                       "or reconstructed with a soft kernel; its effective resolution is coarser than its pixels")
    if measures["noise_hu"] is not None and measures["noise_hu"] > NOISY_HU:
        unit = "HU" if volume.is_hounsfield else "HU-equivalent in the lung window"
        reasons.append(f"noisy (about {measures['noise_hu']:.0f} {unit} in soft tissue; low-dose?)")
    if measures["blockiness"] is not None and measures["blockiness"] > BLOCKY_RATIO:
        reasons.append(f"JPEG block artefacts (blockiness {measures['blockiness']:.2f} > {BLOCKY_RATIO})")
    if not reasons:
        reasons.append(f"in-plane matrix {rows}x{cols} with fine detail present: no enhancement needed")
    return QualityAssessment(needs_enhancement=scale > 1, suggested_scale=scale, reasons=reasons,
                             measures=measures)
