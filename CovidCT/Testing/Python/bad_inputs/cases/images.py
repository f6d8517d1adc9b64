"""Cases: 2D images (16-bit PNG, a slice where a scan is needed, colour JPEG, grey stored as RGB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bad_inputs.building import analyze_argv, grey_slice_uint8
from bad_inputs.framework import Expected, Prepared, case
from covidct.errors import InvalidCTError


@case("png_16bit_info", "2D image", Expected(0, None, "2D slice image"))
def _png16(tmp: Path) -> Prepared:
    """A 16-bit grey PNG slice: described as a 2D export."""
    from PIL import Image

    path = tmp / "slice16.png"
    Image.fromarray(grey_slice_uint8().astype(np.uint16) * 257).save(path)
    return Prepared(["info", path], [path])


@case("png_where_scan_needed", "2D image", Expected(4, InvalidCTError, "at least 5 axial slices.*covidct classify"))
def _png_analyze(tmp: Path) -> Prepared:
    """A single exported PNG slice given to analyze, which needs a CT scan in HU."""
    from PIL import Image

    path = tmp / "slice.png"
    Image.fromarray(grey_slice_uint8()).save(path)
    return Prepared(analyze_argv(path, tmp / "out"), [path], tmp / "out")


@case("colour_jpeg", "2D image", Expected(4, InvalidCTError, "colour image"))
def _colour_jpeg(tmp: Path) -> Prepared:
    """A colour JPEG (an annotated figure)."""
    from PIL import Image

    grey = grey_slice_uint8()
    rgb = np.stack([grey, grey, grey], axis=-1)
    rgb[20:40, 20:40] = (255, 0, 0)
    path = tmp / "figure.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    return Prepared(["info", path], [path])


@case("grey_jpeg_stored_as_rgb", "2D image", Expected(0, None, "2D slice image"))
def _grey_rgb(tmp: Path) -> Prepared:
    """A grey slice saved as a 3-channel PNG (R = G = B): accepted."""
    from PIL import Image

    grey = grey_slice_uint8()
    path = tmp / "grey_rgb.png"
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path)
    return Prepared(["info", path], [path])
