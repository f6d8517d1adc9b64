"""How low-quality CT is simulated, for training and for evaluation.

The paper made its low-quality inputs with OpenCV ``INTER_AREA`` down-sampling by 4.
For an integer factor on a size divisible by it, ``INTER_AREA`` is exactly the mean of
each ``factor x factor`` block, which is what
:func:`covidct.preprocess.resample.area_downsample` computes (no OpenCV needed).  Real
clinic exports are worse than that, so blur (soft kernels, thick reconstructions), noise
(low dose) and JPEG compression (8-bit exports) can be added.
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

__all__ = ["Degradation", "area_downsample", "degrade_hu", "gaussian_blur", "jpeg_roundtrip",
           "random_degradation"]


@dataclass(frozen=True)
class Degradation:
    """One low-quality acquisition: down-sampling factor plus optional blur, noise, JPEG."""

    scale: int = 4
    blur_sigma_px: float = 0.0    # Gaussian blur before down-sampling, in high-resolution pixels
    noise_hu: float = 0.0         # std of additive Gaussian noise after down-sampling (HU)
    jpeg_quality: Optional[int] = None  # JPEG quality of the 8-bit lung-window export

    def to_dict(self) -> dict:
        return asdict(self)


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """In-plane Gaussian blur (soft reconstruction kernel, thick-slice partial volume)."""
    from scipy.ndimage import gaussian_filter

    if sigma_px <= 0:
        return np.asarray(image, dtype=np.float32)
    sigma = [0.0] * (image.ndim - 2) + [sigma_px, sigma_px]
    return gaussian_filter(np.asarray(image, dtype=np.float32), sigma=sigma, mode="nearest")


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
    low = area_downsample(image, degradation.scale)
    if degradation.noise_hu > 0:
        low = low + rng.normal(0.0, degradation.noise_hu, size=low.shape).astype(np.float32)
    if degradation.jpeg_quality is not None:
        lo, hi = window_hu
        low = jpeg_roundtrip(lung_window(low, window_hu), degradation.jpeg_quality) * (hi - lo) + lo
    return low.astype(np.float32)


def random_degradation(rng: np.random.Generator, scale: int, extra_probability: float = 0.5,
                       max_blur_sigma_px: float = 1.2, max_noise_hu: float = 30.0,
                       jpeg_quality_range: tuple = (40, 95)) -> Degradation:
    """The training mixture: the paper's pure area down-sampling, or that plus realistic faults.

    With probability ``1 - extra_probability`` the sample is the paper's clean INTER_AREA
    case; otherwise each of blur, noise and JPEG is added independently with probability 1/2.
    """
    if rng.random() >= extra_probability:
        return Degradation(scale=scale)
    blur = float(rng.uniform(0.3, max_blur_sigma_px)) if rng.random() < 0.5 else 0.0
    noise = float(rng.uniform(3.0, max_noise_hu)) if rng.random() < 0.5 else 0.0
    jpeg = int(rng.integers(jpeg_quality_range[0], jpeg_quality_range[1] + 1)) if rng.random() < 0.5 else None
    return Degradation(scale=scale, blur_sigma_px=blur, noise_hu=noise, jpeg_quality=jpeg)
