"""Read 2D lung-window slice exports (PNG, JPEG, WebP, 8-bit) as the classifier sees them.

These are not HU: they are already windowed by whoever exported them, as in the
SARS-CoV-2 and UCSD sets.  Colour images are accepted only when they are grey in
disguise (R = G = B up to compression noise, see :func:`is_grey_in_disguise`); genuinely
coloured images (annotated figures, colour heat maps) are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputNotFoundError, InvalidCTError, UnsupportedInputError
from ..volume import CTVolume, StudyFacts

SLICE_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MIN_SIDE_PX = 32

# How far the channels of a grey slice stored as RGB(A) may drift apart, in 8-bit grey
# levels of the per-pixel spread max(R, G, B) - min(R, G, B).  A grey image saved as a
# colour JPEG (or re-encoded by a viewer, PACS web export or messenger) comes back with
# chroma noise of a few levels (max |R - G| of 7 is typical); a figure with colour
# annotations or a heat-map overlay has spreads of tens to hundreds of levels.
GREY_SPREAD_P99_MAX = 12.0      # 99th percentile: at most 1 % of pixels may be noisier
GREY_SPREAD_MEAN_MAX = 3.0      # mean: a uniform colour cast or tint is not noise
COLOURED_PIXEL_SPREAD = 64.0    # a spread this large is colour, never compression noise
COLOURED_PIXEL_SHARE_MAX = 0.001  # share of such pixels allowed (an annotation arrow is more)


def has_slice_image_suffix(path: Path) -> bool:
    return path.suffix.lower() in SLICE_IMAGE_SUFFIXES


def read_slice_image(path) -> np.ndarray:
    """A 2D float32 array in [0, 1] (0 = black).  16-bit PNGs are scaled by 65535."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path} does not exist.")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("P", "PA"):  # palette PNG/GIF: the grey levels are in the palette, not the indices
                image = image.convert("RGBA")
            mode = image.mode
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UnsupportedInputError(f"Cannot read {path.name} as an image ({exc}).") from None
    if mode in ("I;16", "I;16B", "I") or array.dtype == np.uint16:
        scale = 65535.0
    elif array.dtype == bool:
        scale = 1.0
    else:
        scale = 255.0
    if array.ndim == 3:
        array = _grey_from_channels(array, path.name, scale)
    if min(array.shape) < MIN_SIDE_PX:
        raise InvalidCTError(f"{path.name} is only {array.shape[1]}x{array.shape[0]} pixels; too small for a CT slice.")
    return array.astype(np.float32) / scale


def is_grey_in_disguise(channels: np.ndarray, full_scale: float = 255.0) -> bool:
    """Whether an RGB (rows, cols, 3) image is a grey slice up to compression noise.

    Decided on the per-pixel channel spread max - min, in 8-bit levels (``full_scale`` is
    the channel maximum, 65535 for 16-bit): its 99th percentile at most
    ``GREY_SPREAD_P99_MAX``, its mean at most ``GREY_SPREAD_MEAN_MAX``, and at most
    ``COLOURED_PIXEL_SHARE_MAX`` of the pixels spread by ``COLOURED_PIXEL_SPREAD`` or more.
    The percentile and mean let JPEG chroma noise through; the last test refuses a grey
    slice with a small colour annotation (an arrow, a box), which the percentile alone
    would miss.
    """
    spread = (channels.max(axis=-1).astype(np.float64) - channels.min(axis=-1)) * (255.0 / full_scale)
    if not spread.any():
        return True
    return (float(np.percentile(spread, 99)) <= GREY_SPREAD_P99_MAX
            and float(spread.mean()) <= GREY_SPREAD_MEAN_MAX
            and float(np.mean(spread >= COLOURED_PIXEL_SPREAD)) <= COLOURED_PIXEL_SHARE_MAX)


def _grey_from_channels(array: np.ndarray, name: str, full_scale: float) -> np.ndarray:
    """The grey plane of a (rows, cols, channels) image: LA, RGB or RGBA, alpha ignored.

    RGB(A) is accepted only when :func:`is_grey_in_disguise`; the grey value is the mean
    of R, G and B (not one channel), so compression noise averages out.
    """
    if array.shape[-1] < 3:  # LA: grey plus alpha
        return array[..., 0]
    channels = array[..., :3]
    if not is_grey_in_disguise(channels, full_scale):
        raise InvalidCTError(
            f"{name} is a colour image; CovidCT needs a grey-scale CT slice "
            "(annotated figures and colour screenshots are not supported).")
    return channels.astype(np.float32).mean(axis=-1)


def load_slice_image(path) -> CTVolume:
    """A one-slice, non-HU :class:`CTVolume` (unit pixel spacing: exports carry none)."""
    pixels = read_slice_image(path)
    return CTVolume(voxels=pixels[np.newaxis], facts=StudyFacts(source_format="image"),
                    is_hounsfield=False)
