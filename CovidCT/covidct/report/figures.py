"""Key-slice panels and the per-slice chart, drawn as a Slicer slice view would draw them.

Why not a screenshot of Slicer: the report must also be built from the command line and
in CI, without a display.  So the blending of a Slicer slice view is reproduced with
numpy: the background is the CT through a window/level (grey), the foreground is the
heatmap through a colour table, made fully transparent below a lower threshold, and
composited with the foreground opacity::

    rgb = (1 - opacity * alpha) * grey + opacity * alpha * colour(heat)

with ``alpha = 0`` where ``heat < lower_threshold`` and 1 elsewhere.  The colour table,
window, threshold and opacity are the Slicer module's defaults, from :mod:`covidct.display`
(the colour table read from the same file), so the report shows the pixels the user saw
with the default settings.

Orientation follows Slicer's axial view (radiological convention): the patient's right
on the screen's left, anterior at the top.  Letters at the edges are computed from the
volume's direction cosines, never assumed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..display import HEAT_COLORMAP, HEAT_LOWER_THRESHOLD, HEAT_OPACITY, HEAT_RANGE, colour_table_file
from ..preprocess.windowing import LUNG_WINDOW_HU, lung_window
from ..result import SliceScore
from ..volume import CTVolume

LETTERS = {0: ("R", "L"), 1: ("A", "P"), 2: ("I", "S")}  # (negative, positive) LPS axis letters


# --------------------------------------------------------------------------- blending
@lru_cache(maxsize=8)
def _table_rgb(colormap: str) -> np.ndarray:
    """``(N, 3)`` RGB in [0, 1] of a shipped Slicer colour-table file (``CovidCT-*``, ``index
    name R G B A``; a missing file is an error, never another map), or of a matplotlib map."""
    if colormap.startswith("CovidCT-"):
        path = colour_table_file(colormap)
        rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
        return np.array([[float(v) for v in row[2:5]] for row in rows], dtype=np.float32) / 255.0
    from matplotlib import colormaps

    return colormaps[colormap].resampled(256)(np.arange(256))[:, :3].astype(np.float32)


def colour_table(values: np.ndarray, colormap: str = HEAT_COLORMAP,
                 value_range: tuple = HEAT_RANGE) -> np.ndarray:
    """Scalar -> RGB in [0, 1] through the colour table, window ``value_range`` (as VTK's
    lookup table: the range split into N equal bins, values outside clamped)."""
    table = _table_rgb(colormap)
    low, high = value_range
    fraction = (np.asarray(values, dtype=np.float32) - low) / max(high - low, 1e-12)
    index = np.clip(np.floor(fraction * len(table)), 0, len(table) - 1).astype(np.int64)
    return table[index]


def blend_like_slicer(hu: np.ndarray, heat: Optional[np.ndarray] = None,
                      window_hu: tuple = LUNG_WINDOW_HU, opacity: float = HEAT_OPACITY,
                      lower_threshold: float = HEAT_LOWER_THRESHOLD, colormap: str = HEAT_COLORMAP,
                      value_range: tuple = HEAT_RANGE) -> np.ndarray:
    """RGB float image in [0, 1]: grey CT background with the heatmap foreground composited on top."""
    grey = lung_window(hu, window_hu)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if heat is None:
        return rgb
    heat = np.asarray(heat, dtype=np.float32)
    alpha = (opacity * (heat >= lower_threshold)).astype(np.float32)[..., None]
    return (1.0 - alpha) * rgb + alpha * colour_table(heat, colormap, value_range)


# ------------------------------------------------------------------------ orientation
def _axis_letter(vector: np.ndarray) -> str:
    axis = int(np.argmax(np.abs(vector)))
    return LETTERS[axis][1] if vector[axis] > 0 else LETTERS[axis][0]


class DisplayOrientation:
    """How to turn a ``[j, i]`` slice of a volume into a screen image like Slicer's view.

    Screen right points to the patient's left (+x LPS) and screen down to posterior
    (+y) or inferior (-z), whichever the in-plane axis is closest to.
    """

    def __init__(self, direction_lps: np.ndarray, spacing_mm: Sequence[float]):
        direction = np.asarray(direction_lps, dtype=float).reshape(3, 3)
        di, dj = direction[:, 0], direction[:, 1]
        self.transpose = abs(dj[0]) > abs(di[0])
        horizontal, vertical = (dj, di) if self.transpose else (di, dj)
        self.flip_cols = self._needs_flip(horizontal)
        self.flip_rows = self._needs_flip(vertical)
        self.right_vector = -horizontal if self.flip_cols else horizontal
        self.down_vector = -vertical if self.flip_rows else vertical
        self.col_spacing_mm = float(spacing_mm[1] if self.transpose else spacing_mm[0])
        self.row_spacing_mm = float(spacing_mm[0] if self.transpose else spacing_mm[1])

    @staticmethod
    def _needs_flip(vector: np.ndarray) -> bool:
        axis = int(np.argmax(np.abs(vector)))
        wanted = -1.0 if axis == 2 else 1.0
        return bool(np.sign(vector[axis]) != wanted)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image[j, i, ...]`` -> screen ``[row, col, ...]``."""
        out = np.swapaxes(image, 0, 1) if self.transpose else image
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def screen_position(self, j: int, i: int, shape: tuple) -> tuple:
        """Screen ``(row, col)`` of voxel ``(j, i)`` in a slice of ``shape = (nj, ni)``."""
        row, col = (i, j) if self.transpose else (j, i)
        rows, cols = (shape[1], shape[0]) if self.transpose else shape
        if self.flip_rows:
            row = rows - 1 - row
        if self.flip_cols:
            col = cols - 1 - col
        return row, col

    def letters(self) -> dict:
        return {"right": _axis_letter(self.right_vector), "left": _axis_letter(-self.right_vector),
                "bottom": _axis_letter(self.down_vector), "top": _axis_letter(-self.down_vector)}


# ------------------------------------------------------------------------- resampling
def resample_like(moving: CTVolume, reference: CTVolume, linear: bool = True) -> np.ndarray:
    """``moving`` voxels on ``reference``'s grid (identity when the grids already match)."""
    if moving.same_geometry(reference):
        return np.asarray(moving.voxels)
    import SimpleITK as sitk

    from ..volume import to_sitk

    ref = to_sitk(reference.with_voxels(np.zeros(reference.shape, dtype=np.float32)))
    mov = to_sitk(moving.with_voxels(np.asarray(moving.voxels, dtype=np.float32)))
    interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    out = sitk.Resample(mov, ref, sitk.Transform(), interpolator, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def matching_slice(source: CTVolume, k: int, target: CTVolume) -> Optional[int]:
    """Index of ``target``'s slice through the centre of ``source``'s slice ``k`` (None if outside)."""
    centre = np.array([(source.shape[2] - 1) / 2.0, (source.shape[1] - 1) / 2.0, float(k), 1.0])
    point = source.ijk_to_lps() @ centre
    ijk = np.linalg.solve(target.ijk_to_lps(), point)
    kt = int(round(float(ijk[2])))
    return kt if 0 <= kt < target.num_slices else None


# ----------------------------------------------------------------------------- panels
def _nice_bar_mm(width_mm: float) -> float:
    for length in (100, 50, 20, 10, 5, 2, 1):
        if length <= 0.3 * width_mm:
            return float(length)
    return 1.0


def _draw_panel(ax, image: np.ndarray, orientation: DisplayOrientation, title: str) -> None:
    rows, cols = image.shape[:2]
    width_mm = cols * orientation.col_spacing_mm
    height_mm = rows * orientation.row_spacing_mm
    ax.imshow(image, extent=(0, width_mm, height_mm, 0), interpolation="nearest",
              cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_xlim(0, width_mm)
    ax.set_ylim(height_mm, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    letters = orientation.letters()
    style = dict(color="#ffd700", fontsize=9, fontweight="bold")
    ax.text(0.02, 0.5, letters["left"], transform=ax.transAxes, ha="left", va="center", **style)
    ax.text(0.98, 0.5, letters["right"], transform=ax.transAxes, ha="right", va="center", **style)
    ax.text(0.5, 0.98, letters["top"], transform=ax.transAxes, ha="center", va="top", **style)
    ax.text(0.5, 0.02, letters["bottom"], transform=ax.transAxes, ha="center", va="bottom", **style)
    bar = _nice_bar_mm(width_mm)
    x0, y0 = width_mm * 0.95 - bar, height_mm * 0.93
    ax.plot([x0, x0 + bar], [y0, y0], color="white", linewidth=2.5, solid_capstyle="butt")
    ax.text(x0 + bar / 2, y0 - height_mm * 0.015, f"{bar:g} mm", color="white", fontsize=7,
            ha="center", va="bottom")


def key_slice_images(ct: CTVolume, k: int, heat: Optional[np.ndarray] = None,
                     enhanced: Optional[CTVolume] = None, window_hu: tuple = LUNG_WINDOW_HU) -> dict:
    """Screen images of slice ``k``: ``original`` (grey), ``enhanced`` (grey or absent) and
    ``overlay`` (RGB), each with its :class:`DisplayOrientation` under ``<name>_orientation``.

    ``window_hu`` is the grey window; pass ``(0, 255)`` for 8-bit slice exports.
    """
    orientation = DisplayOrientation(ct.direction_lps, ct.spacing_mm)
    out = {"original": orientation.apply(lung_window(ct.voxels[k], window_hu)),
           "original_orientation": orientation,
           "overlay": orientation.apply(blend_like_slicer(ct.voxels[k], None if heat is None else heat[k],
                                                          window_hu=window_hu)),
           "overlay_orientation": orientation}
    if enhanced is not None:
        ke = matching_slice(ct, k, enhanced)
        if ke is not None:
            enh_orientation = DisplayOrientation(enhanced.direction_lps, enhanced.spacing_mm)
            out["enhanced"] = enh_orientation.apply(lung_window(enhanced.voxels[ke], window_hu))
            out["enhanced_orientation"] = enh_orientation
    return out


def render_key_slices(ct: CTVolume, key_slices: Sequence[int], output_png, heat: Optional[np.ndarray] = None,
                      enhanced: Optional[CTVolume] = None, slice_scores: Optional[dict] = None,
                      window_hu: tuple = LUNG_WINDOW_HU, dpi: int = 150) -> Path:
    """One row per key slice: original | enhanced (when there is one) | heatmap overlay."""
    from matplotlib.figure import Figure

    key_slices = [int(k) for k in key_slices if 0 <= int(k) < ct.num_slices]
    if not key_slices:
        key_slices = [ct.num_slices // 2]
    columns = ["original"] + (["enhanced"] if enhanced is not None else []) + ["overlay"]
    fig = Figure(figsize=(2.6 * len(columns), 2.7 * len(key_slices)), facecolor="white")
    z_mm = ct.slice_positions_mm()
    for row, k in enumerate(key_slices):
        images = key_slice_images(ct, k, heat, enhanced, window_hu)
        score = (slice_scores or {}).get(k)
        for col, name in enumerate(columns):
            ax = fig.add_subplot(len(key_slices), len(columns), row * len(columns) + col + 1)
            if name not in images:
                ax.axis("off")
                ax.text(0.5, 0.5, "no enhanced slice here", ha="center", va="center", fontsize=8)
                continue
            if name == "original":
                title = f"Original - slice {k}, z = {z_mm[k]:.1f} mm"
            elif name == "enhanced":
                title = "Enhanced (super-resolved)"
            else:
                title = "Heatmap overlay" + (f" - score {score:.2f}" if score is not None else "")
            _draw_panel(ax, images[name], images[name + "_orientation"], title)
    fig.tight_layout(pad=0.4)
    output_png = Path(output_png)
    output_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output_png, dpi=dpi)
    return output_png


def render_slice_chart(per_slice: Sequence[SliceScore], output_png, threshold: Optional[float] = None,
                       key_slices: Sequence[int] = (), involvement_percent: Optional[Sequence] = None,
                       dpi: int = 150) -> Path:
    """COVID-19 score of every lung slice along z, with the threshold and the key slices marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 2.6), facecolor="white")
    ax = fig.add_subplot(1, 1, 1)
    points = [(p.z_mm, p.covid19, p.index) for p in per_slice if p.covid19 is not None and p.in_lung is not False]
    if points:
        z, score, _ = zip(*sorted(points, key=lambda t: t[0]))
        ax.plot(z, score, color="#c0392b", linewidth=1.2, label="COVID-19 score per slice")
    index_to_z = {p.index: p.z_mm for p in per_slice}
    for n, k in enumerate(key_slices):
        if index_to_z.get(k) is not None:
            ax.axvline(index_to_z[k], color="#555555", linestyle=":", linewidth=1,
                       label="key slice" if n == 0 else None)
    if threshold is not None:
        ax.axhline(threshold, color="#2c3e50", linestyle="--", linewidth=1, label=f"threshold {threshold:.2f}")
    ax.set_ylim(0, 1)
    ax.set_xlabel("slice position z (mm, patient superior = larger)", fontsize=8)
    ax.set_ylabel("COVID-19 score", fontsize=8)
    ax.tick_params(labelsize=7)
    if involvement_percent is not None:
        pairs = [(p.z_mm, v) for p, v in zip(per_slice, involvement_percent) if v is not None and p.z_mm is not None]
        if pairs:
            twin = ax.twinx()
            zi, vi = zip(*sorted(pairs))
            twin.fill_between(zi, vi, color="#2980b9", alpha=0.25, step="mid", label="involved lung %")
            twin.set_ylabel("involved lung (%)", fontsize=8, color="#2980b9")
            twin.set_ylim(0, max(5.0, 1.2 * max(vi)))
            twin.tick_params(labelsize=7)
    if not points:
        ax.text(0.5, 0.5, "no per-slice scores", transform=ax.transAxes, ha="center", va="center")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper left")
    fig.tight_layout(pad=0.4)
    output_png = Path(output_png)
    output_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output_png, dpi=dpi)
    return output_png
