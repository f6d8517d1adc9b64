"""``covidct enhance`` (training and evaluation commands: :mod:`covidct.research.cli_enhancer`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import OutputError, UnsupportedInputError
from .common import add_device_argument, add_json_argument, add_progress_argument, print_json, progress_from_args

IMAGE_OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "enhance", help="super-resolve a CT volume or 2D slice (HU in, HU out, geometry exact)",
        description="Multiply the in-plane matrix by the scale with the SRResNet/SRGAN enhancer. "
                    "Volumes keep HU, origin, direction and slice spacing; 2D images stay 2D images.")
    p.add_argument("input", help="DICOM folder, NRRD/NIfTI/MHA volume or PNG/JPEG/WebP slice")
    p.add_argument("-o", "--output", required=True,
                   help="output file: .nrrd/.nii.gz/.mha for volumes, .png/.tif also for 2D images")
    p.add_argument("--scale", default="auto", choices=("auto", "1", "2", "4"),
                   help="in-plane factor; auto brings the matrix to at least 512 (default)")
    p.add_argument("--model", default=None, choices=("fidelity", "gan"),
                   help="fidelity (pixel loss, default: most faithful) or gan (sharper texture)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_device_argument(p)
    add_json_argument(p)
    add_progress_argument(p)
    p.set_defaults(handler=run_enhance)


def run_enhance(args) -> int:
    import numpy as np

    from ..enhance import DEFAULT_MODEL, assess_quality, enhance_volume
    from ..io import atomic_path, load_ct, save_volume
    from ..progress import CancelToken

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise OutputError(f"{output} already exists; choose another name or pass --overwrite.")
    volume = load_ct(args.input)
    as_image = output.suffix.lower() in IMAGE_OUTPUT_SUFFIXES
    if as_image and volume.num_slices != 1:
        raise UnsupportedInputError(
            f"{output.name}: a {volume.num_slices}-slice volume cannot be written as a 2D image; "
            "use .nrrd, .nii.gz or .mha.")
    quality = assess_quality(volume)
    enhanced, info = enhance_volume(volume, scale=args.scale, model=args.model or DEFAULT_MODEL,
                                    device=args.device, progress=progress_from_args(args), cancel=CancelToken())
    if as_image:
        from PIL import Image

        pixels = enhanced.voxels[0].astype(np.float32)
        if volume.is_hounsfield:
            from ..preprocess.windowing import lung_window
            pixels = lung_window(pixels)
        grey = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
        with atomic_path(output) as tmp:
            Image.fromarray(grey).save(tmp, format=_pil_format(output))
    else:
        save_volume(enhanced, output)
    info.update({"input": str(args.input), "output": str(output), "quality": quality.to_dict(),
                 "output_spacing_mm": list(enhanced.spacing_mm), "output_origin_lps": list(enhanced.origin_lps)})
    if args.json:
        print_json(info)
    else:
        print(f"Enhanced x{info['scale']} ({info['scale_choice']}) with {info['model_key'] or 'no model'} "
              f"on {info['device'] or '-'} in {info['seconds']:.1f}s: {tuple(info['input_shape'])} -> "
              f"{tuple(info['output_shape'])}; wrote {output}")
    return 0


def _pil_format(path: Path) -> str:
    return {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF",
            ".tiff": "TIFF"}[path.suffix.lower()]
