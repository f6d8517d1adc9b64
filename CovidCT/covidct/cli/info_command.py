"""``covidct info INPUT``: what was loaded, whether it is usable, and the lung volume."""

from __future__ import annotations

import numpy as np

from ..io import load_ct
from ..validation import validate_ct_volume
from .common import add_json_argument, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info", help="describe a CT (DICOM folder, NRRD, NIfTI, MHA) or a slice image",
        description="Load INPUT, check it is a usable chest CT and print its geometry, "
                    "HU range, study facts and lung volume.")
    parser.add_argument("input", help="DICOM folder, volume file or 2D slice image")
    parser.add_argument("--series", help="SeriesInstanceUID to pick when a folder holds several")
    parser.add_argument("--no-lung-mask", action="store_true", help="skip the lung segmentation")
    parser.add_argument("--include-identifiers", action="store_true",
                        help="also show patient name/ID/birth date (off by default)")
    add_json_argument(parser)
    parser.set_defaults(handler=run_info)


def describe(volume, with_lung_mask: bool = True, include_identifiers: bool = False) -> dict:
    """The facts ``info`` prints, as a JSON-ready dict."""
    voxels = volume.voxels
    info = {
        "kind": "CT volume (HU)" if volume.is_hounsfield else "2D slice image (8-bit export)",
        "shape_kji": list(volume.shape),
        "spacing_mm": [round(s, 4) for s in volume.spacing_mm],
        "origin_lps_mm": [round(o, 3) for o in volume.origin_lps],
        "direction_lps": np.round(volume.direction_lps, 5).tolist(),
        "intensity_range": [float(voxels.min()), float(voxels.max())],
        "study": volume.facts.to_dict(include_identifiers),
        "warnings": [],
    }
    if volume.is_hounsfield:
        info["warnings"] = validate_ct_volume(volume, require_3d=True)
        if with_lung_mask:
            from ..preprocess.lung_mask import compute_lung_mask
            from ..quantify.lung_volumes import side_volumes_ml

            mask = compute_lung_mask(volume)
            # The same left/right split as the quantification, so info and the report agree.
            info["lung_volume_ml"] = {k: round(v, 1) for k, v in side_volumes_ml(mask, volume).items()}
            info["slices_with_lung"] = int(mask.any(axis=(1, 2)).sum())
    return info


def run_info(args) -> int:
    volume = load_ct(args.input, series_uid=args.series, include_identifiers=args.include_identifiers)
    info = describe(volume, with_lung_mask=not args.no_lung_mask,
                    include_identifiers=args.include_identifiers)
    if args.json:
        print_json(info)
        return 0
    _print_human(info)
    return 0


STUDY_LABELS = {
    "modality": "Modality", "study_date": "Study date", "series_description": "Series",
    "manufacturer": "Manufacturer", "scanner_model": "Scanner", "slice_thickness_mm": "Thickness mm",
    "kvp": "kVp", "convolution_kernel": "Kernel", "patient_age": "Age", "patient_sex": "Sex",
    "body_part": "Body part", "source_format": "Format", "patient_name": "Name",
    "patient_id": "Patient ID", "patient_birth_date": "Birth date",
}


def _print_human(info: dict) -> None:
    k, j, i = info["shape_kji"]
    lines = [
        f"Kind:         {info['kind']}",
        f"Matrix:       {i} x {j} pixels x {k} slices",
        f"Spacing:      {' x '.join(f'{s:g}' for s in info['spacing_mm'])} mm",
        f"Origin (LPS): {', '.join(f'{o:g}' for o in info['origin_lps_mm'])} mm",
        f"Intensities:  {info['intensity_range'][0]:g} .. {info['intensity_range'][1]:g}",
    ]
    for key, value in info["study"].items():
        if value not in ("", None) and key in STUDY_LABELS:
            lines.append(f"{STUDY_LABELS[key] + ':':<14}{value}")
    if "lung_volume_ml" in info:
        vol = info["lung_volume_ml"]
        lines.append(f"Lung volume:  {vol['total_ml'] / 1000:.2f} l (right {vol['right_ml'] / 1000:.2f} l, "
                     f"left {vol['left_ml'] / 1000:.2f} l) on {info['slices_with_lung']} slices")
    for warning in info["warnings"]:
        lines.append(f"Warning:      {warning}")
    print("\n".join(lines))
