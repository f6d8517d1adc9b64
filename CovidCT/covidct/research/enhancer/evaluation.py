"""``covidct evaluate-enhancer``: PSNR / SSIM of the enhancer against bicubic and bilinear.

On a held-out patient's HU scan: every ``slice_step``-th slice is down-sampled (the
paper's INTER_AREA x2 / x4, and a "realistic" x4 with blur, noise and JPEG), brought
back to full size by bilinear, bicubic and each enhancer model, and compared with the
original in the lung window ([-1350, 150] HU -> [0, 1]) over the whole slice and inside
the body.  Slices labelled as showing infection are also reported alone, as a first
lesion-preservation check.  Prints a table, writes JSON and a side-by-side PNG.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ...preprocess.windowing import LUNG_WINDOW_HU, lung_window
from ...volume import CTVolume
from ...enhance import degradation as deg
from ...preprocess.body_mask import body_mask_per_slice as body_mask
from ..data_paths import default_data_dir
from .data import HU_SERIES_FOLDER
from ...enhance.inference import MODEL_KEYS, enhance_volume

CONDITIONS = {
    "x2": deg.Degradation(scale=2),
    "x4": deg.Degradation(scale=4),
    "x4_realistic": deg.Degradation(scale=4, blur_sigma_px=0.6, noise_hu=10.0, jpeg_quality=75),
    # One real-world fault at a time on top of x4 (issue 17: the gain per degradation).
    "x4_soft_kernel": deg.Degradation(scale=4, blur_sigma_px=1.0),
    "x4_sharp_kernel": deg.Degradation(scale=4, sharpen_gain=0.8),
    "x4_low_dose": deg.Degradation(scale=4, noise_hu=20.0, noise_correlation_px=1.0),
    "x4_thick_slice": deg.Degradation(scale=4, thick_slices=3),
    "x4_jpeg": deg.Degradation(scale=4, jpeg_quality=60),
}
PER_DEGRADATION = ("x4", "x4_soft_kernel", "x4_sharp_kernel", "x4_low_dose", "x4_thick_slice", "x4_jpeg")
GAIN_CI_RESAMPLES = 2000


def mean_ci(values: np.ndarray, n_boot: int = GAIN_CI_RESAMPLES, seed: int = 0) -> list:
    """95 % percentile-bootstrap interval of the mean (slices resampled; neighbours are correlated,
    so read it as a lower bound on the uncertainty)."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]
SSIM_SIGMA_PX = 1.5
BORDER_PX = 5


def _window_text() -> str:
    """``[-1350, 150]``: the lung window as the figures and the table print it."""
    return f"[{LUNG_WINDOW_HU[0]:g}, {LUNG_WINDOW_HU[1]:g}]"


def psnr(a: np.ndarray, b: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    diff = (a - b) if mask is None else (a - b)[mask]
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Gaussian-window SSIM (sigma 1.5, data range 1), as Wang et al. 2004."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    a, b = a.astype(np.float64), b.astype(np.float64)
    blur = lambda x: gaussian_filter(x, SSIM_SIGMA_PX, truncate=3.5)  # noqa: E731 - 11x11 window
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def _interior(shape) -> np.ndarray:
    inside = np.zeros(shape, dtype=bool)
    inside[BORDER_PX:-BORDER_PX, BORDER_PX:-BORDER_PX] = True
    return inside


def slice_metrics(estimate: np.ndarray, truth: np.ndarray, body: np.ndarray) -> dict:
    smap = ssim_map(estimate, truth)
    inside = _interior(truth.shape)
    return {"psnr_slice": psnr(estimate, truth), "ssim_slice": float(smap[inside].mean()),
            "psnr_body": psnr(estimate, truth, body), "ssim_body": float(smap[body & inside].mean())}


def texture_metrics(estimate: np.ndarray, truth: np.ndarray, body: np.ndarray, period: int) -> dict:
    """Is fine texture restored, and is there a grid?  (Volumes ``[k, j, i]`` in unit grey.)

    ``high_frequency_power_ratio``: power of the Laplacian (finest detail) inside the body,
    estimate over truth: 1 is the truth's texture, below 1 smoother, above 1 noisier.
    ``grid_phase_bias_hu``: the error's mean at each of the ``period x period`` pixel phases of
    the up-sampling (sub-pixel shuffles leave a phase-dependent bias when they leave a grid),
    its spread across phases in HU of the lung window; near 0 means no grid.
    """
    from scipy.ndimage import laplace

    power = lambda x: float(np.mean([laplace(s)[b].astype(np.float64).var() for s, b in zip(x, body)]))  # noqa: E731
    error = (estimate - truth).astype(np.float64)
    rows, cols = (truth.shape[1] // period) * period, (truth.shape[2] // period) * period
    phases = []
    for dj in range(period):
        for di in range(period):
            cut = error[:, dj:rows:period, di:cols:period]
            mask = body[:, dj:rows:period, di:cols:period]
            phases.append(cut[mask].mean())
    width = LUNG_WINDOW_HU[1] - LUNG_WINDOW_HU[0]
    return {"high_frequency_power_ratio": round(power(estimate) / max(power(truth), 1e-12), 4),
            "grid_phase_bias_hu": round(float(np.std(phases)) * width, 3),
            "spectrum_distance_db": round(spectrum_distance_db(estimate, truth, body, period), 3)}


SPECTRUM_BINS = 32


def radial_power_spectrum(image: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Radially averaged power spectrum of the body's bounding box, Hann-tapered, in
    ``SPECTRUM_BINS`` bins of 0 to 0.5 cycles per pixel (so boxes of any size compare)."""
    rows, cols = np.nonzero(body)
    if rows.size == 0:
        return np.full(SPECTRUM_BINS, np.nan)
    box = image[rows.min():rows.max() + 1, cols.min():cols.max() + 1].astype(np.float64)
    box = (box - box.mean()) * np.outer(np.hanning(box.shape[0]), np.hanning(box.shape[1]))
    power = np.abs(np.fft.fft2(box)) ** 2 / box.size
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(box.shape[0]), np.fft.fftfreq(box.shape[1]), indexing="ij"))
    bins = np.minimum((radius / 0.5 * SPECTRUM_BINS).astype(int), SPECTRUM_BINS)
    sums = np.bincount(bins.ravel(), power.ravel(), SPECTRUM_BINS + 1)[:SPECTRUM_BINS]
    counts = np.bincount(bins.ravel(), minlength=SPECTRUM_BINS + 1)[:SPECTRUM_BINS]
    return sums / np.maximum(counts, 1)


def spectrum_distance_db(estimate: np.ndarray, truth: np.ndarray, body: np.ndarray, scale: int) -> float:
    """How far the restored fine detail is from the real slices' noise-power spectrum.

    Mean over the frequency bins above the low-resolution Nyquist frequency (1 / (2 scale)
    to 0.5 cycles per pixel) of |10 log10(P_estimate / P_truth)|, the spectra averaged over
    slices.  0 dB is the truth's texture; over-smoothing (too little power) and grids or
    noise (too much) both raise it, unlike PSNR, which rewards smoothing.
    """
    spectra = [(radial_power_spectrum(e, b), radial_power_spectrum(t, b))
               for e, t, b in zip(estimate, truth, body) if b.any()]
    mean_estimate = np.mean([s[0] for s in spectra], axis=0)
    mean_truth = np.mean([s[1] for s in spectra], axis=0)
    lower_edges = np.arange(SPECTRUM_BINS) * 0.5 / SPECTRUM_BINS
    band = lower_edges >= 1.0 / (2 * scale)
    ratio = np.maximum(mean_estimate[band], 1e-20) / np.maximum(mean_truth[band], 1e-20)
    return float(np.mean(np.abs(10 * np.log10(ratio))))


def _interpolate_hu(low_hu: np.ndarray, scale: int, mode: str) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(low_hu, dtype=np.float32))[:, None]
    return F.interpolate(tensor, scale_factor=scale, mode=mode, align_corners=False)[:, 0].numpy()


def infection_flags(data_dir: Path, patient: str, positions_mm: np.ndarray) -> Optional[np.ndarray]:
    """Per-slice infection labels matched by slice location (labels.json is keyed by file)."""
    path = data_dir / HU_SERIES_FOLDER / "labels.json"
    if not path.exists():
        return None
    entry = json.loads(path.read_text(encoding="utf-8")).get(patient)
    if not entry:
        return None
    by_location = {round(float(v["slice_location"]), 1): int(v["infection"]) for v in entry["slices"].values()}
    flags = [by_location.get(round(float(p), 1)) for p in positions_mm]
    if any(f is None for f in flags):
        return None
    return np.array(flags, dtype=bool)


def evaluate(data_dir=None, patient: str = "P001", conditions=("x2", "x4", "x4_realistic"),
             models=("fidelity", "gan"), slice_step: int = 4, out_dir=None, device: str = "auto",
             weights_dir=None, log=print, lesion_check: bool = True, precision: str = "auto") -> dict:
    from ...io import load_ct
    from ...models import ModelStore

    models_store = ModelStore(weights_dir, device)
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    volume = load_ct(data_dir / HU_SERIES_FOLDER / patient)
    picks = np.arange(0, volume.num_slices, max(1, int(slice_step)))
    hr_hu = volume.voxels[picks].astype(np.float32)
    rows, cols = (hr_hu.shape[1] // 4) * 4, (hr_hu.shape[2] // 4) * 4
    hr_hu = hr_hu[:, :rows, :cols]
    truth = lung_window(hr_hu)
    body = body_mask(hr_hu)
    flags = infection_flags(data_dir, patient, volume.slice_positions_mm()[picks])
    rng = np.random.default_rng(0)
    results = {"patient": patient, "slices": [int(k) for k in picks], "slice_step": int(slice_step),
               "window_hu": [int(v) for v in LUNG_WINDOW_HU], "conditions": {}, "infection_slices": None if flags is None
               else int(flags.sum())}
    examples = {}
    for name in conditions:
        spec = CONDITIONS[name]
        source_hu = hr_hu
        if spec.thick_slices > 1:  # partial volume needs the neighbours of every picked slice
            source_hu = deg.thick_slices(volume.voxels.astype(np.float32), spec.thick_slices)[picks][:, :rows, :cols]
        low_hu = np.stack([deg.degrade_hu(s, spec, rng) for s in source_hu])
        low_volume = CTVolume(voxels=low_hu, spacing_mm=(volume.spacing_mm[0] * spec.scale,
                                                         volume.spacing_mm[1] * spec.scale, volume.spacing_mm[2]))
        bicubic_hu = _interpolate_hu(low_hu, spec.scale, "bicubic")
        estimates = {"bilinear": lung_window(_interpolate_hu(low_hu, spec.scale, "bilinear")),
                     "bicubic": lung_window(bicubic_hu)}
        estimates_hu = {"bicubic": bicubic_hu}
        infos = {}
        used_keys = set()
        for model in models:
            if MODEL_KEYS[(spec.scale, model)] in used_keys:
                continue  # e.g. x2 "gan" is the x2 fidelity model: do not score it twice
            used_keys.add(MODEL_KEYS[(spec.scale, model)])
            started = time.time()
            enhanced, info = enhance_volume(low_volume, scale=spec.scale, model=model, device=device,
                                            models=models_store, precision=precision)
            estimates[f"enhancer_{model}"] = lung_window(enhanced.voxels.astype(np.float32))
            estimates_hu[f"enhancer_{model}"] = enhanced.voxels.astype(np.float32)
            infos[f"enhancer_{model}"] = {"model_key": info["model_key"], "sha256": info["sha256"],
                                          "seconds": round(time.time() - started, 2)}
            log(f"{name}: {model} done in {time.time() - started:.1f}s")
        table, per_slice_body, per_slice_ssim = {}, {}, {}
        for method, estimate in estimates.items():
            per_slice = [slice_metrics(estimate[i], truth[i], body[i]) for i in range(len(picks))]
            summary = {key: round(float(np.mean([m[key] for m in per_slice])), 4) for key in per_slice[0]}
            if flags is not None and flags.any():
                for key in ("psnr_body", "ssim_body"):
                    summary[f"{key}_infection_slices"] = round(float(np.mean(
                        [m[key] for m, f in zip(per_slice, flags) if f])), 4)
            per_slice_body[method] = np.array([m["psnr_body"] for m in per_slice])
            per_slice_ssim[method] = np.array([m["ssim_body"] for m in per_slice])
            summary["texture"] = texture_metrics(estimate, truth, body, spec.scale)
            table[method] = summary
        base = table["bicubic"]
        for method, summary in table.items():
            if method.startswith("enhancer"):
                summary["gain_psnr_body_db"] = round(summary["psnr_body"] - base["psnr_body"], 4)
                summary["gain_ssim_body"] = round(summary["ssim_body"] - base["ssim_body"], 4)
                summary["slices_improved_fraction"] = round(float(np.mean(
                    per_slice_body[method] > per_slice_body["bicubic"])), 4)
                summary["gain_psnr_body_db_ci95"] = mean_ci(per_slice_body[method] - per_slice_body["bicubic"])
                summary["gain_ssim_body_ci95"] = mean_ci(per_slice_ssim[method] - per_slice_ssim["bicubic"])
                summary.update(infos[method])
        results["conditions"][name] = {"degradation": spec.to_dict(), "methods": table}
        examples[name] = (low_hu, estimates)
        if name == "x4" and lesion_check:
            results["lesion_preservation_x4"] = lesion_preservation(
                hr_hu, estimates_hu, volume.spacing_mm, flags, device, log)
    if out_dir:
        out_dir = Path(out_dir)
        from ...io import write_text_atomic

        results["outputs"] = [str(out_dir / "enhancer_evaluation.json")]
        if "x4" in examples:
            results["outputs"].append(str(out_dir / "enhancer_side_by_side_x4.png"))
            index = _example_index(flags, body)
            write_side_by_side(out_dir / "enhancer_side_by_side_x4.png", truth[index], examples["x4"], index,
                               body[index], f"{patient}, slice {int(picks[index])} (x4 area down-sampling)")
        write_text_atomic(out_dir / "enhancer_evaluation.json", json.dumps(results, indent=2) + "\n")

    return results


def lesion_preservation(hr_hu: np.ndarray, estimates_hu: dict, spacing_mm: tuple, flags, device, log) -> dict:
    """Do restored slices keep the classifier's view of the lesions?  (Needs the shipped classifier.)

    Per-slice COVID-19 scores of the original slices are compared with those of the
    bicubic and enhanced versions of their x4-degraded copies, all with the original's
    lung mask, so only the image content differs.
    """
    from ...errors import CovidCTError

    try:
        from ...classify.api import classify_volume, load_classifier
        from ...preprocess.lung_mask import compute_lung_mask

        classifier = load_classifier(device)
    except (ImportError, CovidCTError) as exc:
        return {"available": False, "reason": f"classifier not available: {exc}"}
    original = CTVolume(voxels=hr_hu, spacing_mm=spacing_mm)
    lung = compute_lung_mask(original)

    def scores(voxels: np.ndarray) -> np.ndarray:
        result = classify_volume(CTVolume(voxels=voxels, spacing_mm=spacing_mm), lung, classifier=classifier,
                                 cam_slices=[])
        return np.array([np.nan if s["covid19"] is None else s["covid19"] for s in result.per_slice], float)

    reference = scores(hr_hu)
    out = {"available": True, "classifier_sha256": classifier.info.get("sha256"),
           "original_mean_score": round(float(np.nanmean(reference)), 4), "methods": {}}
    for method, voxels in estimates_hu.items():
        values = scores(voxels[:, :hr_hu.shape[1], :hr_hu.shape[2]])
        keep = np.isfinite(values) & np.isfinite(reference)
        entry = {"mean_abs_score_difference": round(float(np.mean(np.abs(values[keep] - reference[keep]))), 4),
                 "mean_score": round(float(np.mean(values[keep])), 4)}
        if flags is not None and flags[keep].any() and (~flags[keep]).any():
            entry["mean_score_infection_slices"] = round(float(np.mean(values[keep][flags[keep]])), 4)
            entry["mean_score_other_slices"] = round(float(np.mean(values[keep][~flags[keep]])), 4)
        out["methods"][method] = entry
        log(f"lesion check x4 {method}: |score - original| {entry['mean_abs_score_difference']:.4f}")
    return out


def _example_index(flags, body) -> int:
    """A slice with infection (if labelled) and plenty of body in it, near the middle."""
    candidates = np.where(flags)[0] if flags is not None and flags.any() else np.arange(len(body))
    areas = np.array([body[i].sum() for i in candidates])
    good = candidates[areas >= 0.8 * areas.max()]
    return int(good[len(good) // 2])


def _lung_crop(truth: np.ndarray, body: np.ndarray, size: int = 128) -> tuple:
    """A square crop centred on the densest ground-glass-range area (a lesion, if any), for the zoom row.

    Ground-glass range: lung-window 0.4-0.7 (-750 to -300 HU); a 40-pixel density favours
    blobs over thin vessels.  The body is eroded so the chest wall's edge does not count.
    """
    from scipy.ndimage import binary_erosion, uniform_filter

    ggo = binary_erosion(body, iterations=10) & (truth > 0.4) & (truth < 0.7)
    density = uniform_filter(ggo.astype(np.float32), 40)
    j, i = np.unravel_index(int(np.argmax(density)), density.shape)
    j = int(np.clip(j - size // 2, 0, truth.shape[0] - size))
    i = int(np.clip(i - size // 2, 0, truth.shape[1] - size))
    return j, i, size


def write_side_by_side(path: Path, truth: np.ndarray, example: tuple, index: int, body: np.ndarray, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...io import atomic_path

    low_hu, estimates = example
    panels = [("original", truth), ("input x4 (nearest)", np.kron(lung_window(low_hu[index]), np.ones((4, 4)))),
              ("bicubic", estimates["bicubic"][index])]
    panels += [(name.replace("enhancer_", "enhancer "), est[index]) for name, est in estimates.items()
               if name.startswith("enhancer")]
    j, i, size = _lung_crop(truth, body)
    fig, axes = plt.subplots(2, len(panels), figsize=(3.2 * len(panels), 6.8))
    for column, (name, image) in enumerate(panels):
        image = image[:truth.shape[0], :truth.shape[1]]
        score = "" if name == "original" else f"\nPSNR {psnr(image, truth, body):.2f} dB (body)"
        axes[0, column].imshow(image, cmap="gray", vmin=0, vmax=1)
        axes[0, column].add_patch(plt.Rectangle((i, j), size, size, fill=False, edgecolor="yellow", linewidth=0.8))
        axes[0, column].set_title(name + score, fontsize=9)
        axes[1, column].imshow(image[j:j + size, i:i + size], cmap="gray", vmin=0, vmax=1,
                               interpolation="nearest")
        for row in (0, 1):
            axes[row, column].axis("off")
    fig.suptitle(title + f"; lung window {_window_text()} HU. Data: COVID-CT-MD (Afshar et al. 2021), CC BY 4.0",
                 fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def format_table(results: dict) -> str:
    lines = [f"Enhancer evaluation on held-out patient {results['patient']} "
             f"({len(results['slices'])} slices, every {results['slice_step']}th), lung window {_window_text()} HU",
             f"{'condition':<14}{'method':<20}{'PSNR slice':>11}{'SSIM slice':>11}{'PSNR body':>11}"
             f"{'SSIM body':>11}{'dPSNR body':>12}{'dSSIM body':>12}"]
    for name, condition in results["conditions"].items():
        for method, m in condition["methods"].items():
            gain = (f"{m['gain_psnr_body_db']:>+12.2f}{m['gain_ssim_body']:>+12.4f}"
                    if "gain_psnr_body_db" in m else "")
            lines.append(f"{name:<14}{method:<20}{m['psnr_slice']:>11.2f}{m['ssim_slice']:>11.4f}"
                         f"{m['psnr_body']:>11.2f}{m['ssim_body']:>11.4f}{gain}")
    lesion = results.get("lesion_preservation_x4")
    if lesion:
        if not lesion.get("available"):
            lines.append(f"lesion check: {lesion.get('reason')}")
        else:
            lines.append(f"lesion check x4 (classifier COVID-19 score; original slices mean "
                         f"{lesion['original_mean_score']:.3f}):")
            for method, m in lesion["methods"].items():
                lines.append(f"  {method:<20} mean |score - original| {m['mean_abs_score_difference']:.4f}  "
                             f"mean score {m['mean_score']:.3f}")
    return "\n".join(lines)
