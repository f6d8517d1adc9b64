"""The three training sources, read once and cached as normalised-but-not-equalised slices.

Sources (see ``../shared/data/README.md`` for licences and label quirks):

* ``sars``: SARS-CoV-2 CT-scan set, 8-bit lung-window slices, no patient IDs (so any
  split of it leaks patients; its validation numbers are optimistic).  The byte-identical
  duplicates ``Covid_129`` and ``Covid_135`` are dropped.
* ``ucsd``: UCSD COVID-CT train+val slices from paper figures and public sources.  COVID
  images are grouped by the preprint they were cut from (a stand-in for patient).
* ``hu``: the DICOM scans that ``covid-ct-md/labels.json`` lists (in ``../shared/data`` the
  three COVID-CT-MD scans; a site adds its own by adding folders and entries); per-slice
  ``infection`` labels are keyed by DICOM file name and mapped to the volume's slice order.

A data folder may lack a source (a site evaluating on its own HU scans has no 8-bit sets):
the cache then holds none of its slices, and training on a source with no slices is refused.

Slice label for COVID vs non-COVID training: SARS/UCSD use their folder; for HU scans an
infected slice of a COVID-19 scan (P001) is COVID-19 (1), every slice of a non-COVID scan
(cap001, normal001) is non-COVID (0), and a COVID-19 scan's slices without infection are
``-1`` (excluded from training: a COVID patient's clear slice is not evidence for either
class) but kept for slice-level evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import InputNotFoundError
from ...classify.input_normalisation import INPUT_SIZE_PX, crop_and_resize, lung_fractions, lung_slices, slice_crop_boxes

# HU slices with less lung than this (fraction of the largest section) are not cached at all;
# each training config then applies its own, higher ``min_lung_fraction``.
CACHE_MIN_LUNG_FRACTION = 0.10

SARS_DUPLICATES = ("Covid_129", "Covid_135")
COVID_DIAGNOSES = ("COVID-19",)
IMAGE_SUFFIXES = (".webp", ".png", ".jpg", ".jpeg")


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputNotFoundError(
            f"{what} not found at {path}. Pass --data pointing at the folder that holds "
            "sars-cov-2-ct/, ucsd-covid-ct-trainval/ and covid-ct-md/.")
    return path


def _images(folder: Path) -> list:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def sars_slices(data_root) -> list[dict]:
    root = _require(Path(data_root) / "sars-cov-2-ct", "The SARS-CoV-2 CT-scan set")
    out = []
    for folder, label in (("COVID", 1), ("non-COVID", 0)):
        for path in _images(root / folder):
            if path.stem in SARS_DUPLICATES:
                continue
            out.append({"path": path, "label": label, "source": "sars", "group": path.stem})
    return out


def ucsd_group(path: Path) -> str:
    """Preprint id for COVID figures (``2020.02.10.20021584-p6-52_3`` -> ``2020.02.10.20021584``)."""
    stem = path.stem
    return stem.split("-p")[0] if stem.startswith("20") else stem


def ucsd_slices(data_root) -> list[dict]:
    root = _require(Path(data_root) / "ucsd-covid-ct-trainval", "The UCSD COVID-CT set")
    out = []
    for folder, label in (("COVID", 1), ("non-COVID", 0)):
        for path in _images(root / folder):
            out.append({"path": path, "label": label, "source": "ucsd",
                        "group": ("covid:" if label else "non:") + ucsd_group(path)})
    return out


def hu_scan_names(data_root) -> tuple:
    """The scans ``covid-ct-md/labels.json`` lists (``_``-keys are notes), sorted; () without one."""
    root = Path(data_root) / "covid-ct-md"
    labels_file = root / "labels.json"
    if not labels_file.exists():
        return ()
    labels = json.loads(labels_file.read_text(encoding="utf-8"))
    missing = [name for name in labels if not name.startswith("_") and not (root / name).is_dir()]
    if missing:
        raise InputNotFoundError(f"{labels_file} lists scans with no folder beside it: {', '.join(sorted(missing))}.")
    return tuple(sorted(name for name in labels if not name.startswith("_")))


def two_d_slices(data_root, progress=print) -> list[dict]:
    """SARS-CoV-2 and UCSD slices, each source only where its folder exists (said via ``progress``)."""
    items = []
    for name, read in (("sars-cov-2-ct", sars_slices), ("ucsd-covid-ct-trainval", ucsd_slices)):
        if (Path(data_root) / name).exists():
            items += read(data_root)
        else:
            progress(f"{name}/ not in {data_root}: its slices are left out")
    return items


def hu_scan_labels(data_root, scan: str) -> tuple:
    """(diagnosis, infection labels in the loaded volume's slice order)."""
    from ...io.dicom_series import read_headers, sort_slices

    root = _require(Path(data_root) / "covid-ct-md", "The COVID-CT-MD scans")
    labels = json.loads((root / "labels.json").read_text(encoding="utf-8"))[scan]
    headers, _ = read_headers(root / scan)
    keyed, *_ = sort_slices(headers)
    infection = np.array([labels["slices"][path.name]["infection"] for _, path, _, _ in keyed],
                         dtype=np.int8)
    return labels["diagnosis"], infection


def load_hu_scan(data_root, scan: str):
    """(volume, diagnosis, per-slice infection) for one COVID-CT-MD scan."""
    from ...io import load_ct

    volume = load_ct(Path(data_root) / "covid-ct-md" / scan)
    diagnosis, infection = hu_scan_labels(data_root, scan)
    if infection.size != volume.num_slices:
        raise InputNotFoundError(f"labels.json has {infection.size} slices for {scan}, the scan {volume.num_slices}.")
    return volume, diagnosis, infection


def build_cache(data_root, out_path, size_px: int = INPUT_SIZE_PX, progress=print, crop: str = "slice") -> Path:
    """Crop+resize every slice of every source once; write a compressed ``.npz``.

    Arrays: ``images`` (N, size, size) float16 in [0, 1] (not yet equalised, so training
    can augment first), ``label`` (1 COVID, 0 non-COVID, -1 unused for training),
    ``source``, ``group``, ``scan``, ``slice_index``, ``infection`` (HU only, else -1),
    ``lung_fraction`` (HU only, else 1), and the HU ``crop`` mode used.
    """
    from ...io import read_slice_image
    from ...io.atomic_write import atomic_path
    from ...preprocess.lung_mask import compute_lung_mask

    from ...errors import CovidCTError

    images, meta, skipped = [], [], []
    for item in two_d_slices(data_root, progress):
        try:
            pixels = read_slice_image(item["path"])
        except CovidCTError as exc:  # e.g. tiny thumbnails cut from figures
            skipped.append(f"{item['path'].name}: {exc}")
            continue
        cropped, _ = crop_and_resize(pixels, False, None, size_px)
        images.append(cropped)
        meta.append((item["label"], item["source"], item["group"], item["path"].name, -1, -1, 1.0))
    progress(f"2D slices: {len(images)} (skipped {len(skipped)}: {skipped})")
    scans = hu_scan_names(data_root)
    if not images and not scans:
        raise InputNotFoundError(f"No training or evaluation data in {data_root}: expected sars-cov-2-ct/, "
                                 "ucsd-covid-ct-trainval/ or covid-ct-md/ with labels.json.")
    for scan in scans:
        volume, diagnosis, infection = load_hu_scan(data_root, scan)
        mask = compute_lung_mask(volume)
        scored = np.flatnonzero(lung_slices(mask, CACHE_MIN_LUNG_FRACTION))
        boxes, fractions = slice_crop_boxes(mask, scored, crop), lung_fractions(mask)
        n = 0
        for k in scored:
            cropped, _ = crop_and_resize(volume.voxels[k], True, mask[k], size_px, boxes[k])
            if diagnosis in COVID_DIAGNOSES:
                label = 1 if infection[k] else -1
            else:
                label = 0
            images.append(cropped)
            meta.append((label, "hu", scan, scan, int(k), int(infection[k]), float(fractions[k])))
            n += 1
        progress(f"{scan}: {n} lung slices of {volume.num_slices}")
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:  # a training started beside this one never reads half a cache
        np.savez_compressed(
            tmp, images=np.stack(images).astype(np.float16), data_fingerprint=np.array(data_fingerprint(data_root)),
            label=np.array([m[0] for m in meta], np.int8),
            source=np.array([m[1] for m in meta]), group=np.array([m[2] for m in meta]),
            name=np.array([m[3] for m in meta]), slice_index=np.array([m[4] for m in meta], np.int32),
            infection=np.array([m[5] for m in meta], np.int8),
            lung_fraction=np.array([m[6] for m in meta], np.float32), size_px=np.int32(size_px), crop=np.array(crop))
    return out_path


def load_cache(path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def data_fingerprint(data_root) -> str:
    """sha256 over the sources' file names, sizes and labels: the same data in any folder."""
    import hashlib

    digest = hashlib.sha256()
    for source in ("sars-cov-2-ct", "ucsd-covid-ct-trainval", "covid-ct-md"):
        folder = Path(data_root) / source
        if folder.exists():
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                digest.update(f"{path.relative_to(data_root).as_posix()}\t{path.stat().st_size}\n".encode())
    labels = Path(data_root) / "covid-ct-md" / "labels.json"
    if labels.exists():
        digest.update(labels.read_bytes())
    return digest.hexdigest()


def cache_matches(cache: dict, size_px: int, crop: str, data_root=None) -> bool:
    """Was this cache built from this data, with the input size and HU crop mode a config asks for?

    The cache lives in one temporary folder whatever ``--data`` says, so a site's own data
    must not silently reuse a cache of the shared data.  Without ``data_root`` the data is
    not checked.
    """
    same_data = data_root is None or ("data_fingerprint" in cache
                                      and str(cache["data_fingerprint"]) == data_fingerprint(data_root))
    return (same_data and int(cache["size_px"]) == int(size_px) and "crop" in cache
            and str(cache["crop"]) == crop and "lung_fraction" in cache)


def ensure_cache(data_root, size_px: int, crop: str, cache_path=None) -> dict:
    """The slice cache for this input size and crop, rebuilt when missing or made from other data."""
    import tempfile

    cache_path = Path(cache_path) if cache_path else (
        Path(tempfile.gettempdir()) / "covidct_classifier_cache" / f"slices{size_px}_{crop}.npz")
    cache = load_cache(cache_path) if cache_path.exists() else None
    if cache is None or not cache_matches(cache, size_px, crop, data_root):
        build_cache(data_root, cache_path, size_px, crop=crop)
        cache = load_cache(cache_path)
    return cache
