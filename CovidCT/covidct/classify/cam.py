"""Class-activation maps mapped back onto the CT grid.

Each scored slice's CAM (the network's per-position COVID-minus-non-COVID logit, on the
cropped, resized input) is resized to its crop box and pasted into the slice.  Only
positive evidence is kept, and the whole volume is divided by its one maximum inside the
lungs: normalising per *volume* keeps a clear slice dark next to a diseased one (per-slice
normalisation would make every slice's best spot look equally hot).  Outside the lungs
the map is 0.  Computed on the original intensities (the input volume, not an enhanced one).
"""

from __future__ import annotations

import numpy as np



def cam_to_slice(cam: np.ndarray, box: tuple, slice_shape: tuple) -> np.ndarray:
    """Resize a (h, w) CAM to its crop box and place it in a zero slice of ``slice_shape``."""
    r0, r1, c0, c1 = box
    out = np.zeros(slice_shape, dtype=np.float32)
    cam = np.asarray(cam, dtype=np.float32)
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(cam), mode="F")
    out[r0:r1, c0:c1] = np.asarray(image.resize((c1 - c0, r1 - r0), Image.BILINEAR), dtype=np.float32)
    return out


def cam_volume(cams: dict, boxes: dict, volume_shape: tuple, lung_mask=None) -> np.ndarray:
    """Float32 heatmap with ``volume_shape``, in [0, 1], per-volume normalised, lung-masked.

    ``cams`` and ``boxes`` map slice index -> CAM array / crop box; slices not in ``cams``
    stay 0.  ``lung_mask`` (bool, ``volume_shape``) limits the map; ``None`` = no mask.
    """
    heat = np.zeros(volume_shape, dtype=np.float32)
    for k, cam in cams.items():
        heat[k] = np.maximum(cam_to_slice(cam, boxes[k], volume_shape[1:]), 0.0)
    if lung_mask is not None:
        heat[~np.asarray(lung_mask, dtype=bool)] = 0.0
    peak = float(heat.max(initial=0.0))
    if peak > 0:
        heat /= peak
    return np.clip(heat, 0.0, 1.0, out=heat)

