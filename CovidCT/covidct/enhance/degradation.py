"""How low-quality CT is simulated, for training and for evaluation.

The paper made its low-quality inputs with OpenCV ``INTER_AREA`` down-sampling by 4.
For an integer factor on a size divisible by it, ``INTER_AREA`` is exactly the mean of
each ``factor x factor`` block, which is what
:func:`covidct.preprocess.resample.area_downsample` computes (no OpenCV needed).  Real
clinic exports are worse than that, so soft kernels (blur), sharp kernels (high-frequency
gain), low-dose noise with CT-like texture (white noise shaped by a band-pass filter, so
neighbouring pixels are correlated as in filtered back-projection), thick-slice partial
volume (the mean of neighbouring slices, :func:`thick_slices`) and JPEG compression
(8-bit exports) can be added.
Everything is done on HU (noise in HU) except JPEG, which acts on the 8-bit lung-window
export as it does in practice.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from ..preprocess.resample import area_downsample
from ..preprocess.windowing import LUNG_WINDOW_HU, lung_window

__all__ = ["Degradation", "area_downsample", "ct_like_noise", "degrade_hu", "degrade_volume_hu",
           "gaussian_blur", "jpeg_roundtrip", "random_degradation", "sharpen", "thick_slices"]


@dataclass(frozen=True)
class Degradation:
    """One low-quality acquisition: down-sampling factor plus optional kernel, noise, JPEG.

    ``thick_slices`` is applied to whole volumes (or to the thick copy of a training
    patch) before the in-plane steps; :func:`degrade_hu` works on one slice and ignores it.
    """

    scale: int = 4
    blur_sigma_px: float = 0.0    # Gaussian blur before down-sampling, in high-resolution pixels
    noise_hu: float = 0.0         # std of additive noise after down-sampling (HU)
    jpeg_quality: Optional[int] = None  # JPEG quality of the 8-bit lung-window export
    sharpen_gain: float = 0.0     # sharp kernel: image + gain * (image - blur_1px(image)), before down-sampling
    noise_correlation_px: float = 0.0  # > 0: noise shaped like CT noise (band-pass, low-resolution pixels)
    thick_slices: int = 1         # partial volume: mean of this many neighbouring slices

    def to_dict(self) -> dict:
        return asdict(self)


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """In-plane Gaussian blur (soft reconstruction kernel, thick-slice partial volume)."""
    from scipy.ndimage import gaussian_filter

    if sigma_px <= 0:
        return np.asarray(image, dtype=np.float32)
    sigma = [0.0] * (image.ndim - 2) + [sigma_px, sigma_px]
    return gaussian_filter(np.asarray(image, dtype=np.float32), sigma=sigma, mode="nearest")


def sharpen(image: np.ndarray, gain: float) -> np.ndarray:
    """A sharp reconstruction kernel: high frequencies boosted by ``1 + gain`` (unsharp mask)."""
    image = np.asarray(image, dtype=np.float32)
    if gain <= 0:
        return image
    return image + np.float32(gain) * (image - gaussian_blur(image, 1.0))


def ct_like_noise(shape, std_hu: float, correlation_px: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean noise of standard deviation ``std_hu`` with a CT-like, band-pass texture.

    Filtered back-projection noise has little power at the lowest frequencies (the ramp
    filter) and none above the kernel's cut-off, so it looks like fine grain of a few
    pixels rather than white speckle.  A difference of Gaussians (``correlation_px`` and
    three times it) shapes white noise that way; the result is rescaled to ``std_hu``.
    ``correlation_px <= 0`` gives white noise.
    """
    white = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
    if correlation_px <= 0:
        return white * np.float32(std_hu)
    shaped = gaussian_blur(white, correlation_px) - gaussian_blur(white, 3.0 * correlation_px)
    return shaped * np.float32(std_hu / max(float(shaped.std()), 1e-6))


def thick_slices(volume_hu: np.ndarray, count: int) -> np.ndarray:
    """Each slice replaced by the mean of ``count`` neighbouring slices (partial volume).

    ``[k, j, i]`` volumes; edges repeat the first/last slice.  ``count`` 1 returns the input.
    """
    volume_hu = np.asarray(volume_hu, dtype=np.float32)
    if count <= 1:
        return volume_hu
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(volume_hu, size=int(count), axis=0, mode="nearest")


def jpeg_roundtrip(unit: np.ndarray, quality: int) -> np.ndarray:
    """Compress a [0, 1] 2D image as an 8-bit JPEG and decode it again: the one JPEG round trip.

    Values are clipped to [0, 1] and rounded to 8 bits first, as an 8-bit export would be.
    """
    from PIL import Image

    grey = np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded, dtype=np.float32) / 255.0


def degrade_hu(hr_hu: np.ndarray, degradation: Degradation, rng: Optional[np.random.Generator] = None,
               window_hu: tuple = LUNG_WINDOW_HU) -> np.ndarray:
    """A 2D HU slice -> its low-resolution version, in HU (JPEG applied through the lung window).

    Returns float32 HU.  When JPEG is applied, values are mapped back from the 8-bit
    window, so HU outside the window are clipped, as in a real 8-bit export.
    """
    rng = rng or np.random.default_rng(0)
    image = gaussian_blur(np.asarray(hr_hu, dtype=np.float32), degradation.blur_sigma_px)
    image = sharpen(image, degradation.sharpen_gain)
    low = area_downsample(image, degradation.scale)
    if degradation.noise_hu > 0:
        if degradation.noise_correlation_px > 0:
            low = low + ct_like_noise(low.shape, degradation.noise_hu, degradation.noise_correlation_px, rng)
        else:  # white noise, drawn exactly as the first recipes did
            low = low + rng.normal(0.0, degradation.noise_hu, size=low.shape).astype(np.float32)
    if degradation.jpeg_quality is not None:
        lo, hi = window_hu
        low = jpeg_roundtrip(lung_window(low, window_hu), degradation.jpeg_quality) * (hi - lo) + lo
    return low.astype(np.float32)


def random_degradation(rng: np.random.Generator, scale: int, extra_probability: float = 0.5,
                       max_blur_sigma_px: float = 1.2, max_noise_hu: float = 30.0,
                       jpeg_quality_range: tuple = (40, 95), max_sharpen_gain: float = 0.0,
                       noise_correlation_px_range: Optional[tuple] = None,
                       thick_probability: float = 0.0) -> Degradation:
    """The training mixture: the paper's pure area down-sampling, or that plus realistic faults.

    With probability ``1 - extra_probability`` the sample is the paper's clean INTER_AREA
    case; otherwise each of blur, noise and JPEG is added independently with probability 1/2.
    The later faults (sharp kernel, CT-textured noise, thick slices) are drawn only when
    their options are set, so the first recipes' random streams, and weights, are unchanged.
    """
    if rng.random() >= extra_probability:
        return Degradation(scale=scale)
    blur = float(rng.uniform(0.3, max_blur_sigma_px)) if rng.random() < 0.5 else 0.0
    noise = float(rng.uniform(3.0, max_noise_hu)) if rng.random() < 0.5 else 0.0
    jpeg = int(rng.integers(jpeg_quality_range[0], jpeg_quality_range[1] + 1)) if rng.random() < 0.5 else None
    sharp, correlation, thick = 0.0, 0.0, 1
    if max_sharpen_gain > 0 and blur == 0.0 and rng.random() < 0.5:  # a kernel is soft or sharp, not both
        sharp = float(rng.uniform(0.2, max_sharpen_gain))
    if noise_correlation_px_range and noise > 0:
        correlation = float(rng.uniform(*noise_correlation_px_range))
    if thick_probability > 0 and rng.random() < thick_probability:
        thick = 3
    return Degradation(scale=scale, blur_sigma_px=blur, noise_hu=noise, jpeg_quality=jpeg, sharpen_gain=sharp,
                       noise_correlation_px=correlation, thick_slices=thick)


def degrade_volume_hu(volume_hu: np.ndarray, degradation: Degradation,
                      rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """A ``[k, j, i]`` HU volume -> its low-quality version: thick slices, then each slice in-plane."""
    rng = rng or np.random.default_rng(0)
    thick = thick_slices(volume_hu, degradation.thick_slices)
    return np.stack([degrade_hu(s, degradation, rng) for s in thick])
