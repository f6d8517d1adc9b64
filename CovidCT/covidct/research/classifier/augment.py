"""Augmentations against acquisition differences between hospitals.

Applied to cropped unit-intensity slices *before* histogram equalisation, because that is
where scanners and exports differ: window/level (including clipping), reconstruction
kernel (blur/sharpen), noise, JPEG compression, resolution, framing (crop, rotation).
Each draw uses the ``numpy.random.Generator`` passed in, so runs are reproducible.
"""

from __future__ import annotations


import numpy as np
from scipy import ndimage

DEFAULT_AUGMENT = {
    "p_geometry": 0.9, "scale": [0.75, 1.0], "rotation_deg": 12.0, "shift_fraction": 0.08,
    "p_flip": 0.5, "p_window": 0.7, "gamma": [0.7, 1.4], "clip_low": 0.15, "clip_high": 0.15,
    "p_kernel": 0.5, "blur_sigma": [0.3, 1.3], "sharpen_amount": [0.3, 1.2],
    "p_noise": 0.5, "noise_sd": [0.005, 0.04], "p_jpeg": 0.3, "jpeg_quality": [25, 90],
    "p_resolution": 0.3, "downsample": [1.5, 3.0],
    # Export styles (2.0; off unless a config asks, so older recipes draw the same numbers):
    # the slice re-rendered at another window (width log-uniform, level uniform, in HU of the
    # canonical lung window), sometimes a mediastinal-like one; a circular field of view
    # with a grey or black background; a smooth monotone grey-level curve.
    "p_export_window": 0.0, "window_width_hu": [900.0, 3200.0], "window_level_hu": [-900.0, -250.0],
    "p_mediastinal": 0.0, "mediastinal_width_hu": [350.0, 600.0], "mediastinal_level_hu": [0.0, 80.0],
    "p_fov": 0.0, "fov_radius": [0.45, 0.75], "fov_background": [0.0, 0.6],
    "p_curve": 0.0, "curve_strength": 0.15,  # at most 0.15: the curve stays monotone
}


def _uniform(rng, bounds):
    return float(rng.uniform(bounds[0], bounds[1]))


def geometry(image, rng, cfg):
    """Random zoom-in crop, shift, rotation (about the centre) and left-right flip."""
    n = image.shape[0]
    scale = np.sqrt(_uniform(rng, cfg["scale"]))         # side fraction kept
    angle = np.deg2rad(rng.uniform(-cfg["rotation_deg"], cfg["rotation_deg"]))
    shift = rng.uniform(-cfg["shift_fraction"], cfg["shift_fraction"], size=2) * n
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rot * scale
    centre = np.array([n / 2 - 0.5, n / 2 - 0.5])
    offset = centre + shift - matrix @ centre
    out = ndimage.affine_transform(image, matrix, offset=offset, order=1, mode="nearest")
    if rng.random() < cfg["p_flip"]:
        out = out[:, ::-1]
    return out


def window_jitter(image, rng, cfg):
    """Different window/level: gamma plus clipping at a random low and high level."""
    low = rng.uniform(0.0, cfg["clip_low"])
    high = 1.0 - rng.uniform(0.0, cfg["clip_high"])
    out = np.clip((image - low) / (high - low), 0.0, 1.0)
    return out ** _uniform(rng, cfg["gamma"])


def export_window(image, rng, cfg):
    """The slice as another workstation would export it: another window, in HU.

    The cached slice is the canonical lung window, so HU = low + width * unit; values
    outside [-1350, 150] HU were clipped before caching and stay so.
    """
    from ...preprocess.windowing import LUNG_WINDOW_HU

    low, high = LUNG_WINDOW_HU
    hu = low + (high - low) * image
    if cfg["p_mediastinal"] > 0 and rng.random() < cfg["p_mediastinal"]:
        width, level = _uniform(rng, cfg["mediastinal_width_hu"]), _uniform(rng, cfg["mediastinal_level_hu"])
    else:
        width = float(np.exp(rng.uniform(*np.log(cfg["window_width_hu"]))))
        level = _uniform(rng, cfg["window_level_hu"])
    return np.clip((hu - (level - width / 2)) / width, 0.0, 1.0).astype(np.float32)


def field_of_view(image, rng, cfg):
    """A circular reconstruction field of view; outside it the padding grey of some scanners."""
    n = image.shape[0]
    radius = _uniform(rng, cfg["fov_radius"]) * n
    centre = (n - 1) / 2 + rng.uniform(-0.05, 0.05, size=2) * n
    rows, cols = np.ogrid[:n, :image.shape[1]]
    outside = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 > radius ** 2
    out = image.copy()
    out[outside] = _uniform(rng, cfg["fov_background"])
    return out


def grey_curve(image, rng, cfg):
    """A smooth monotone tone curve (another display LUT): a random sine bend of the grey axis."""
    amount = rng.uniform(-cfg["curve_strength"], cfg["curve_strength"])
    power = rng.uniform(1.0, 2.0)  # |amount| * pi * power < 1: the curve stays monotone
    out = image + amount * np.clip(np.sin(np.pi * image), 0.0, 1.0) ** power
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def kernel(image, rng, cfg):
    """Soft (blur) or sharp (unsharp mask) reconstruction kernel."""
    if rng.random() < 0.5:
        return ndimage.gaussian_filter(image, _uniform(rng, cfg["blur_sigma"]))
    blurred = ndimage.gaussian_filter(image, 1.0)
    return np.clip(image + _uniform(rng, cfg["sharpen_amount"]) * (image - blurred), 0.0, 1.0)


def noise(image, rng, cfg):
    return np.clip(image + rng.normal(0.0, _uniform(rng, cfg["noise_sd"]), image.shape), 0.0, 1.0)


def jpeg(image, rng, cfg):
    from ...enhance.degradation import jpeg_roundtrip

    return jpeg_roundtrip(image, int(rng.integers(cfg["jpeg_quality"][0], cfg["jpeg_quality"][1] + 1)))


def resolution(image, rng, cfg):
    """Lower resolution: down-sample by 1.5-3x and back up (bilinear)."""
    factor = _uniform(rng, cfg["downsample"])
    small = ndimage.zoom(image, 1.0 / factor, order=1)
    back = ndimage.zoom(small, np.array(image.shape) / np.array(small.shape), order=1)
    return np.clip(back[: image.shape[0], : image.shape[1]], 0.0, 1.0)


# In this order: (probability key, step, drawn only when its probability is above zero).
AUGMENT_STEPS = (
    ("p_geometry", geometry, False), ("p_export_window", export_window, True), ("p_window", window_jitter, False),
    ("p_curve", grey_curve, True), ("p_kernel", kernel, False), ("p_resolution", resolution, False),
    ("p_noise", noise, False), ("p_fov", field_of_view, True), ("p_jpeg", jpeg, False),
)


def augment_slice(image: np.ndarray, rng: np.random.Generator, config: dict | None = None) -> np.ndarray:
    """One random acquisition-like variant of a cropped unit slice (same shape, [0, 1])."""
    cfg = dict(DEFAULT_AUGMENT, **(config or {}))
    out = np.asarray(image, dtype=np.float32)
    for probability, step, optional in AUGMENT_STEPS:
        if optional and cfg[probability] <= 0:
            continue  # later additions draw nothing when off, so older recipes' random streams are unchanged
        if rng.random() < cfg[probability]:
            out = step(out, rng, cfg)
    return np.ascontiguousarray(out, dtype=np.float32)
