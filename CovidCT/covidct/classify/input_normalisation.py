"""The one function that makes every classifier input look alike.

Why: a network trained on one hospital's exports learns their crop, window and export
(MEASURED.md: AUC 0.97 in-domain, chance elsewhere).  So every slice, whether an HU
slice from a scanner or an 8-bit lung-window export, goes through the same steps:

1. lung window -> [0, 1] (HU) or /255 (8-bit exports already carry a lung window);
2. crop to the lungs: for HU scans the slice's own lung-mask bounding box with a 3 %
   margin (``crop: slice``), like the tightly cropped 8-bit exports, so both kinds of
   input show the lungs filling the frame; for 2D exports the bounding box of the image
   content, which drops black borders and most figure margins.  (The older ``crop: scan``
   used one box for the whole scan: held-out HU slices then showed a lot of chest wall
   and scored near chance, see the model card);
3. resize to a fixed square size;
4. histogram equalisation: any monotone change of window/level/gamma between sources
   maps to the same image, so the network cannot key on the export's grey levels.

Steps 1-3 (:func:`crop_and_resize`) and step 4 (:func:`standardise_histogram`) are
separate so that training can augment in between; :func:`normalise_slice` chains them.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..preprocess.windowing import lung_window

INPUT_SIZE_PX = 128
CROP_MARGIN_FRACTION = 0.08        # margin of the whole-scan lung box (``crop: scan``)
SLICE_CROP_MARGIN_FRACTION = 0.03  # margin of each slice's own lung box (``crop: slice``)
CROP_MODES = ("slice", "scan")
CONTENT_THRESHOLD = 0.06   # unit intensity above which a pixel counts as image content
MIN_LUNG_PIXELS = 64       # fewer lung pixels than this: the slice is "without lung"
MIN_LUNG_FRACTION = 0.25   # ... or less than this fraction of the scan's largest lung section


def to_unit(image: np.ndarray, is_hounsfield: bool) -> np.ndarray:
    """HU -> lung window [0, 1]; 8-bit exports (0..255 or already 0..1) -> [0, 1]."""
    image = np.asarray(image, dtype=np.float32)
    if is_hounsfield:
        return lung_window(image)
    if image.max(initial=0.0) > 1.5:
        image = image / 255.0
    return np.clip(image, 0.0, 1.0)


def crop_box(mask: np.ndarray, margin_fraction: float) -> Optional[tuple]:
    """``(r0, r1, c0, c1)`` of a 2D mask's bounding box widened by a share of its own size; None if empty."""
    from ..preprocess.morphology import bounding_box

    row_span, col_span = bounding_box(np.asarray(mask, dtype=bool))
    if row_span.stop == row_span.start:
        return None
    r0, r1, c0, c1 = row_span.start, row_span.stop, col_span.start, col_span.stop
    mr = int(round((r1 - r0) * margin_fraction))
    mc = int(round((c1 - c0) * margin_fraction))
    h, w = mask.shape
    return (max(0, r0 - mr), min(h, r1 + mr), max(0, c0 - mc), min(w, c1 + mc))


PADDING_TOLERANCE = 1.5 / 255.0
PADDING_FRAME_SHARE = 0.8  # a frame this uniform at a grey level is padding (a circular field of view)


def padding_level(unit: np.ndarray) -> Optional[float]:
    """The grey level of a uniform frame (the padding around a circular field of view), else None.

    Black or white frames are not padding by this rule: they are clipped air or tissue.
    None of the SARS-CoV-2 or UCSD slices has such a frame; some scanners' exports do.
    """
    unit = np.asarray(unit)
    if unit.ndim != 2 or min(unit.shape) <= 8:
        return None
    frame = np.concatenate([unit[:2].ravel(), unit[-2:].ravel(), unit[:, :2].ravel(), unit[:, -2:].ravel()])
    level = float(np.median(frame))
    if level <= PADDING_TOLERANCE or level >= 1.0 - PADDING_TOLERANCE:
        return None
    if np.mean(np.abs(frame - level) <= PADDING_TOLERANCE) < PADDING_FRAME_SHARE:
        return None
    return level


def padding_mask(unit: np.ndarray) -> Optional[np.ndarray]:
    """The padding itself: pixels at the padding grey connected to the image border (None without).

    Connectivity matters: air in the lungs can share the padding's grey level.
    """
    from scipy import ndimage

    pad = padding_level(unit)
    if pad is None:
        return None
    labels, _ = ndimage.label(np.abs(np.asarray(unit) - pad) <= PADDING_TOLERANCE)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0])


def content_box(unit: np.ndarray) -> tuple:
    """Rows/columns where at least 5 % of pixels differ from the background.

    The background is black, or the grey of a padded frame (:func:`padding_level`): a
    grey padding must not make the whole field of view "content", which would leave the
    lungs a small part of the network's input.
    """
    pad = padding_level(unit)
    bright = unit > CONTENT_THRESHOLD if pad is None else np.abs(unit - pad) > CONTENT_THRESHOLD
    keep_rows = bright.mean(axis=1) > 0.05
    keep_cols = bright.mean(axis=0) > 0.05
    mask = np.outer(keep_rows, keep_cols)
    box = crop_box(mask, 0.0)
    if box is None or (box[1] - box[0]) < 16 or (box[3] - box[2]) < 16:
        return (0, unit.shape[0], 0, unit.shape[1])
    return box


# A 2D export shows the whole chest when at least this share of its border is background
# (air around the body, or padding): then the lungs, not the body, are what to crop to.
FULL_SLICE_BORDER_SHARE = 0.6
MIN_EXPORT_LUNG_SHARE = 0.05   # enclosed dark regions smaller than this share of the image: no lungs found
MIN_EXPORT_LUNG_PART = 0.005   # a dark enclosed region smaller than this is a bowel gas bubble or airway
MIN_EXPORT_LUNG_WIDTH = 0.6    # both lungs span at least this share of the body's width


def export_lung_mask(unit: np.ndarray) -> Optional[np.ndarray]:
    """The lungs of a 2D export that shows the whole chest, else None (a tightly cropped export).

    The SARS-CoV-2 and UCSD exports are cropped around the lungs already, so their content
    box frames the lungs as the HU slices' lung boxes do.  A full-slice export (the whole
    body inside the field of view, air or padding around it) framed by its content box
    shows the whole body, with small lungs: the 1.3 ensemble scored such renders of the HU
    scans at AUC 0.003 (inverted).  Here the lungs are the dark regions (below the image's
    Otsu split) enclosed by the body, i.e. not connected to the border, and not padding.
    """
    from scipy import ndimage

    from .harmonise import otsu_threshold

    unit = np.asarray(unit, dtype=np.float32)
    padding = padding_mask(unit)
    if padding is None:
        padding = np.zeros(unit.shape, bool)
    values = unit[~padding]
    if values.size < MIN_LUNG_PIXELS:
        return None
    dark = (unit < otsu_threshold(values)) & ~padding
    labels, count = ndimage.label(dark)
    if count == 0:
        return None
    # Air around the body reaches the image border, or the padding of a circular field of view.
    edge = np.zeros(unit.shape, bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    border = np.unique(labels[edge | ndimage.binary_dilation(padding)])
    outside = np.isin(labels, border[border > 0]) | padding
    frame = np.concatenate([outside[0], outside[-1], outside[:, 0], outside[:, -1]])
    if frame.mean() < FULL_SLICE_BORDER_SHARE:
        return None
    sizes = ndimage.sum(np.ones_like(unit), labels, index=np.arange(1, count + 1))
    keep = [i + 1 for i, n in enumerate(sizes) if n >= MIN_EXPORT_LUNG_PART * unit.size and (i + 1) not in border]
    lungs = np.isin(labels, keep)
    if lungs.sum() < max(MIN_LUNG_PIXELS, MIN_EXPORT_LUNG_SHARE * unit.size):
        return None
    body, found = crop_box(~outside, 0.0), crop_box(lungs, 0.0)
    if (found[3] - found[2]) < MIN_EXPORT_LUNG_WIDTH * (body[3] - body[2]):
        return None  # one lung only (the other open to the border): the content box is safer
    return ndimage.binary_fill_holes(lungs)


def lung_box(lung_mask_2d: Optional[np.ndarray], unit: np.ndarray) -> tuple:
    """Bounding box (r0, r1, c0, c1) of the lungs with a margin, else of the content.

    Without a mask, a full-slice export is cropped to its own lungs (:func:`export_lung_mask`,
    with the HU slices' margin); a tightly cropped export to its content.
    """
    if lung_mask_2d is not None and int(np.count_nonzero(lung_mask_2d)) >= MIN_LUNG_PIXELS:
        box = crop_box(np.asarray(lung_mask_2d, bool), CROP_MARGIN_FRACTION)
        if box is not None:
            return box
    lungs = export_lung_mask(unit)
    if lungs is not None:
        box = crop_box(lungs, SLICE_CROP_MARGIN_FRACTION)
        if box is not None:
            return box
    return content_box(unit)


def resize(unit: np.ndarray, size_px: int) -> np.ndarray:
    """Anti-aliased bilinear resize of a float image to ``size_px`` x ``size_px``."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(unit, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size_px, size_px), Image.BILINEAR), dtype=np.float32)


def lung_fractions(lung_mask: np.ndarray) -> np.ndarray:
    """Each slice's lung area as a fraction of the scan's largest lung cross-section."""
    area = np.asarray(lung_mask, dtype=bool).reshape(len(lung_mask), -1).sum(axis=1)
    return area / max(1, int(area.max(initial=0)))


def lung_slices(lung_mask: np.ndarray, min_fraction: float = MIN_LUNG_FRACTION) -> np.ndarray:
    """Boolean per slice: does it contain enough lung to be scored?

    Apex and base slices with a sliver of lung give crops of a few pixels blown up to the
    network's size (seen to score as high as diseased slices; nothing like them is in the
    8-bit training sets), so slices with less than ``min_fraction`` of the scan's largest
    lung cross-section are not scored.
    """
    area = np.asarray(lung_mask, dtype=bool).reshape(len(lung_mask), -1).sum(axis=1)
    return (area >= MIN_LUNG_PIXELS) & (lung_fractions(lung_mask) >= min_fraction)


def slice_crop_boxes(lung_mask: np.ndarray, slices, crop: str = "slice") -> dict:
    """Crop box (r0, r1, c0, c1) per slice index of an HU scan, by crop mode."""
    if crop not in CROP_MODES:
        raise ValueError(f"Unknown crop mode '{crop}'; use one of {', '.join(CROP_MODES)}.")
    lung_mask = np.asarray(lung_mask, dtype=bool)
    if crop == "scan":
        box = volume_lung_box(lung_mask)
        return {int(k): box for k in slices}
    return {int(k): crop_box(lung_mask[k], SLICE_CROP_MARGIN_FRACTION) for k in slices}


def volume_lung_box(lung_mask: np.ndarray) -> Optional[tuple]:
    """In-plane box of the lungs over the whole scan, with a margin.

    Every slice of a scan is cropped with this one box, so all slices share one
    mm-per-pixel scale and small apical sections are shown at their true size.
    """
    return crop_box(np.asarray(lung_mask, dtype=bool).any(axis=0), CROP_MARGIN_FRACTION)


def crop_and_resize(image: np.ndarray, is_hounsfield: bool, lung_mask_2d=None,
                    size_px: int = INPUT_SIZE_PX, box: Optional[tuple] = None) -> tuple:
    """Steps 1-3: unit intensities cropped to the lungs and resized; returns (image, box).

    ``box`` (r0, r1, c0, c1) overrides the crop (a scan's :func:`volume_lung_box`).
    """
    unit = to_unit(image, is_hounsfield)
    if box is None:
        box = lung_box(lung_mask_2d, unit)
    r0, r1, c0, c1 = box
    return np.clip(resize(unit[r0:r1, c0:c1], size_px), 0.0, 1.0), box


def standardise_histogram(unit: np.ndarray) -> np.ndarray:
    """Step 4: rank-based histogram equalisation to [0, 1] (ties share one value)."""
    flat = np.asarray(unit, dtype=np.float32).ravel()
    ordered = np.sort(flat)
    ranks = np.searchsorted(ordered, flat, side="right").astype(np.float32)
    return (ranks / float(flat.size)).reshape(np.shape(unit))


STANDARDISATIONS = ("equalise", "none", "harmonise", "harmonise_gated")


def standardise(unit: np.ndarray, method: str = "equalise") -> np.ndarray:
    """Step 4 by name: ``harmonise`` (2.0: each image's window mapped to the canonical one,
    :mod:`.harmonise`), ``harmonise_gated`` (1.3.2: only beyond the estimator's noise),
    ``none`` (1.1-1.3: as exported) or ``equalise`` (1.0 ablation)."""
    return standardise_with_estimate(unit, method)[0]


def standardise_with_estimate(unit: np.ndarray, method: str = "equalise") -> tuple:
    """(:func:`standardise`'s image, the window estimate it was harmonised with, or None when
    ``method`` does not harmonise): a caller that reports the estimate does not redo it."""
    if method in ("harmonise", "harmonise_gated"):
        from .harmonise import apply, estimate, gate

        harmonisation = estimate(unit)
        if method == "harmonise_gated":
            harmonisation = gate(harmonisation)
        return apply(unit, harmonisation), harmonisation
    if method == "equalise":
        return standardise_histogram(unit), None
    if method == "none":
        return np.asarray(unit, dtype=np.float32), None
    raise ValueError(f"Unknown standardisation '{method}'; use one of {', '.join(STANDARDISATIONS)}.")


def normalise_slice(image: np.ndarray, is_hounsfield: bool, lung_mask_2d=None,
                    size_px: int = INPUT_SIZE_PX) -> tuple:
    """The full normalisation: returns (float32 ``size_px``² image in [0, 1], crop box)."""
    cropped, box = crop_and_resize(image, is_hounsfield, lung_mask_2d, size_px)
    return standardise_histogram(cropped), box
