"""Read 2D lung-window slice exports (PNG, JPEG, WebP, 8-bit) as the classifier sees them.

These are not HU: they are already windowed by whoever exported them, as in the
SARS-CoV-2 and UCSD sets.  Colour images are accepted only when they are grey in
disguise (R = G = B); genuinely coloured images (annotated figures) are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputNotFoundError, InvalidCTError, UnsupportedInputError
from ..volume import CTVolume, StudyFacts

SLICE_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MIN_SIDE_PX = 32


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
            mode = image.mode
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UnsupportedInputError(f"Cannot read {path.name} as an image ({exc}).") from None
    if array.ndim == 3:
        channels = array[..., :3].astype(np.int32)
        if not (np.array_equal(channels[..., 0], channels[..., 1])
                and np.array_equal(channels[..., 0], channels[..., 2])):
            raise InvalidCTError(
                f"{path.name} is a colour image; CovidCT needs a grey-scale CT slice "
                "(annotated figures and colour screenshots are not supported).")
        array = array[..., 0]
    if min(array.shape) < MIN_SIDE_PX:
        raise InvalidCTError(f"{path.name} is only {array.shape[1]}x{array.shape[0]} pixels; too small for a CT slice.")
    if mode in ("I;16", "I;16B", "I") or array.dtype == np.uint16:
        scale = 65535.0
    elif array.dtype == bool:
        scale = 1.0
    else:
        scale = 255.0
    return array.astype(np.float32) / scale


def load_slice_image(path) -> CTVolume:
    """A one-slice, non-HU :class:`CTVolume` (unit pixel spacing: exports carry none)."""
    pixels = read_slice_image(path)
    return CTVolume(voxels=pixels[np.newaxis], facts=StudyFacts(source_format="image"),
                    is_hounsfield=False)
