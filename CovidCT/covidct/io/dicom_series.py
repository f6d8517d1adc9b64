"""Read one CT series from a DICOM folder into a :class:`CTVolume` in HU.

Why not just ``sitk.ImageSeriesReader``: file names and instance numbers lie (the
COVID-CT-MD scans are stored out of anatomical order), folders mix series, and clinics
send secondary captures and scouts alongside the CT.  So headers are read with pydicom,
series are grouped by SeriesInstanceUID, slices are ordered by ImagePositionPatient
projected on the slice normal, and every geometric inconsistency is reported in words a
user can act on.  Pixel data (JPEG-lossless included) is decoded by pydicom with the
pylibjpeg plug-ins, and rescale slope/intercept applied per slice.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InvalidCTError, MixedSeriesError, UnsupportedInputError
from ..volume import CTVolume, StudyFacts

MIN_SLICES = 5
# Relative tolerance on slice spacing before we call the series non-uniform.
SPACING_TOLERANCE = 0.05
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
HEADER_KEYWORDS = ("SOPClassUID", "SeriesInstanceUID", "Modality", "SeriesDescription",
                   "ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows",
                   "Columns", "SamplesPerPixel")
IMAGE_SOP_CLASSES_CT = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"}


@dataclass
class SeriesSummary:
    """What a folder holds, for choosing a series and for error messages."""

    series_instance_uid: str
    modality: str
    description: str
    num_files: int

    def __str__(self) -> str:
        return (f"{self.series_instance_uid} ({self.modality or '?'}, "
                f"'{self.description}', {self.num_files} images)")


def is_dicom_file(path: Path) -> bool:
    """True when the file carries the DICM preamble (or parses as DICOM)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            if handle.read(4) == b"DICM":
                return True
    except PermissionError:
        return True  # reported as unreadable by the header pass, never silently skipped
    except OSError:
        return False
    return path.suffix.lower() in (".dcm", ".dicom", ".ima")


def read_headers(folder: Path):
    """(path, header) of every DICOM image under ``folder`` (recursively), and the paths of
    the DICOM files that could not be parsed (never silently dropped)."""
    import pydicom

    headers = []
    unreadable = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if not is_dicom_file(path):
            continue
        try:
            with warnings.catch_warnings():  # garbage makes pydicom warn on stderr
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                media_class = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
                # pydicom converts values lazily: convert the ones we use now, so a
                # malformed value is reported here and not as a crash later.
                for keyword in HEADER_KEYWORDS:
                    getattr(ds, keyword, None)
        except Exception:  # noqa: BLE001 - any parse failure is "unreadable"
            unreadable.append(path)
            continue
        if media_class == MEDIA_STORAGE_DIRECTORY:
            continue  # a DICOMDIR index, not an image
        if "SOPClassUID" not in ds and "SeriesInstanceUID" not in ds:
            # pydicom parses random bytes after a DICM preamble without complaint.
            unreadable.append(path)
            continue
        if "SeriesInstanceUID" not in ds and "Rows" in ds:
            # An image that belongs to no series (a damaged header): grouping it as
            # "unknown" would drop it silently, and with it a slice of the scan.
            unreadable.append(path)
            continue
        headers.append((path, ds))
    return headers, unreadable


def summarize_series(headers) -> list[SeriesSummary]:
    groups = defaultdict(list)
    for path, ds in headers:
        groups[str(getattr(ds, "SeriesInstanceUID", "unknown"))].append(ds)
    return [
        SeriesSummary(uid, str(getattr(items[0], "Modality", "")),
                      str(getattr(items[0], "SeriesDescription", "")), len(items))
        for uid, items in groups.items()
    ]


def _choose_series(headers, series_uid: Optional[str]):
    summaries = summarize_series(headers)
    if series_uid is not None:
        chosen = [s for s in summaries if s.series_instance_uid == series_uid]
        if not chosen:
            raise MixedSeriesError(
                f"Series {series_uid} is not in this folder. Series found:\n  "
                + "\n  ".join(str(s) for s in summaries))
        uid = series_uid
    else:
        # Only CT series with enough slices are candidates for a scan.
        candidates = [s for s in summaries if s.modality == "CT" and s.num_files >= MIN_SLICES]
        if len(candidates) > 1:
            raise MixedSeriesError(
                "This folder holds several CT series; choose one with --series UID:\n  "
                + "\n  ".join(str(s) for s in candidates))
        if not candidates:
            modalities = sorted({s.modality or "?" for s in summaries})
            if "CT" not in modalities:
                raise InvalidCTError(
                    f"No CT series in this folder (modalities found: {', '.join(modalities)}). "
                    "CovidCT analyses chest CT only.")
            raise InvalidCTError(
                f"The CT series here has fewer than {MIN_SLICES} images; a chest CT scan is "
                "needed, not a single slice or scout. Series found:\n  "
                + "\n  ".join(str(s) for s in summaries))
        uid = candidates[0].series_instance_uid
    return [(p, ds) for p, ds in headers if str(getattr(ds, "SeriesInstanceUID", "unknown")) == uid]


def _float_list(value, n: int, what: str, name: str) -> np.ndarray:
    try:
        arr = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        arr = np.array([])
    if arr.shape != (n,):
        raise InvalidCTError(f"{name}: {what} is missing or malformed; the image cannot be placed in space.")
    return arr


def _int_attribute(ds, keyword: str, name: str, default=None) -> int:
    value = getattr(ds, keyword, default)
    try:
        number = int(value if value not in (None, "") else default)
    except (TypeError, ValueError):
        number = -1
    if number <= 0:
        raise InvalidCTError(f"{name}: {keyword} is missing or malformed; the image cannot be read.")
    return number


def sort_slices(series):
    """Order (path, dataset) pairs along the slice normal; return them with positions (mm)."""
    first = series[0][1]
    orientation = _float_list(getattr(first, "ImageOrientationPatient", None), 6,
                              "ImageOrientationPatient", series[0][0].name)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    keyed = []
    for path, ds in series:
        other = _float_list(getattr(ds, "ImageOrientationPatient", None), 6,
                            "ImageOrientationPatient", path.name)
        if not np.allclose(other, orientation, atol=1e-3):
            raise InvalidCTError(
                f"{path.name} has a different slice orientation from the rest of the series; "
                "the series mixes reconstructions and cannot be stacked into one volume.")
        position = _float_list(getattr(ds, "ImagePositionPatient", None), 3,
                               "ImagePositionPatient", path.name)
        keyed.append((float(np.dot(position, normal)), path, ds, position))
    keyed.sort(key=lambda item: item[0])
    return keyed, row_dir, col_dir, normal


# Largest in-plane drift of a slice's position (mm per mm along the normal) accepted
# before the series counts as sheared (gantry tilt): 0.01 is 0.6 degrees.
MAX_SHEAR = 0.01


def check_no_shear(keyed, normal: np.ndarray) -> None:
    """Refuse gantry-tilted series: stacking them along the normal would misplace voxels.

    With a tilted gantry the slice positions advance along the table (z) while the slice
    normal is tilted, so consecutive slices are shifted in-plane; a plain stack puts
    every voxel in the wrong place by up to the tilt times the scan length.
    """
    if len(keyed) < 2:
        return
    step = (keyed[-1][3] - keyed[0][3])
    along = float(np.dot(step, normal))
    if abs(along) < 1e-6:
        return
    in_plane = step - along * normal
    shear = float(np.linalg.norm(in_plane)) / abs(along)
    if shear > MAX_SHEAR:
        angle = float(np.degrees(np.arctan(shear)))
        raise InvalidCTError(
            f"The series is gantry-tilted or sheared ({angle:.1f} degrees): slice positions do not "
            "follow the slice normal, so stacking the slices would misplace the anatomy. Export an "
            "untilted (resampled) series, e.g. with Slicer's DICOM acquisition geometry "
            "regularization, and retry.")


def check_slice_spacing(positions_mm: np.ndarray) -> float:
    """Uniform spacing along the normal, or an :class:`InvalidCTError` naming the fault."""
    gaps = np.diff(positions_mm)
    if np.any(np.abs(gaps) < 1e-3):
        dup = int(np.argmin(np.abs(gaps)))
        raise InvalidCTError(
            f"Two slices share the same position ({positions_mm[dup]:.2f} mm): the folder holds "
            "duplicate images or two series with the same UID. Remove the duplicates and retry.")
    spacing = float(np.median(gaps))
    worst = float(np.max(np.abs(gaps - spacing)))
    if worst > SPACING_TOLERANCE * spacing:
        bad = int(np.argmax(np.abs(gaps - spacing)))
        raise InvalidCTError(
            f"Slice spacing is not uniform: {gaps[bad]:.2f} mm between slices {bad} and {bad + 1} "
            f"where the series otherwise uses {spacing:.2f} mm (a missing slice, or mixed "
            "reconstructions). Export the complete series and retry.")
    return spacing


def _decode_stored(path: Path):
    """Stored pixel values of one slice with its rescale slope and intercept."""
    import warnings

    import pydicom

    try:
        # pydicom warns (on stderr) before failing on mislabelled pixel data; the error
        # below is the one message the user needs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoding failures have many types
        raise InvalidCTError(
            f"Cannot decode the pixel data of {path.name} ({type(exc).__name__}: {exc}). "
            "The file may be truncated or use an unsupported compression.") from None
    try:
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    except Exception:  # noqa: BLE001 - malformed DS values raise several types
        raise InvalidCTError(
            f"{path.name}: RescaleSlope/RescaleIntercept is malformed, so its values cannot be "
            "converted to Hounsfield units.") from None
    if pixels.ndim != 2:
        raise InvalidCTError(
            f"{path.name} is not a single grey-scale slice (pixel array shape {pixels.shape}); "
            "RGB secondary captures and multi-frame objects are not CT slices.")
    return pixels, slope, intercept


def _exact_in_integers(pixels: np.ndarray, slope: float, intercept: float) -> bool:
    """True when ``pixels * slope + intercept`` in float32 is exact, so integers give the same."""
    return (pixels.dtype.kind in "iu" and pixels.dtype.itemsize <= 2 and slope == int(slope)
            and intercept == int(intercept) and abs(slope) * 65536 + abs(intercept) < 2 ** 24)


def _stack_hu(paths: list) -> np.ndarray:
    """Decode the slices into one HU volume: int16 when every value is a whole number that
    fits, float32 otherwise (the values of ``stored * slope + intercept`` in float32).

    Why not decode to float32 and convert: for the usual integer slope/intercept the
    float32 copy, the stack and the whole-number check cost about as much as the
    decoding; here each slice goes straight into a preallocated int16 volume.
    """
    whole = None  # int16 volume while every slice so far is whole-numbered and in range
    real = None   # float32 volume once one is not
    shape = None
    for index, path in enumerate(paths):
        pixels, slope, intercept = _decode_stored(path)
        shape = shape or pixels.shape
        if pixels.shape != shape:
            raise InvalidCTError(
                f"{path.name} decodes to {pixels.shape[0]} x {pixels.shape[1]} pixels where the series "
                f"has {shape[0]} x {shape[1]}; the file is damaged or mislabelled.")
        if real is None and _exact_in_integers(pixels, slope, intercept):
            hu = pixels.astype(np.int32) * int(slope) + int(intercept)
            if whole is None:
                whole = np.empty((len(paths),) + pixels.shape, dtype=np.int16)
            if hu.min() >= -32768 and hu.max() <= 32767:
                whole[index] = hu
                continue
        if real is None:
            real = np.empty((len(paths),) + pixels.shape, dtype=np.float32)
            if whole is not None:
                real[:index] = whole[:index]
        real[index] = pixels.astype(np.float32) * slope + intercept
    if real is None:
        return whole
    if np.all(np.abs(real - np.round(real)) < 1e-6) and real.min() >= -32768 and real.max() <= 32767:
        return real.astype(np.int16)
    return real


def facts_from_dataset(ds, include_identifiers: bool = False) -> StudyFacts:
    """The report's study facts; no identifying data unless asked for."""

    # Facts are informative only: a malformed value becomes empty, never a failure.
    def text(name):
        try:
            return str(getattr(ds, name, "") or "").strip()
        except Exception:  # noqa: BLE001 - pydicom conversion errors have many types
            return ""

    def number(name):
        try:
            return float(getattr(ds, name))
        except Exception:  # noqa: BLE001
            return None

    return StudyFacts(
        modality=text("Modality"),
        study_date=text("StudyDate"),
        series_description=text("SeriesDescription"),
        manufacturer=text("Manufacturer"),
        scanner_model=text("ManufacturerModelName"),
        slice_thickness_mm=number("SliceThickness"),
        kvp=number("KVP"),
        convolution_kernel=text("ConvolutionKernel"),
        patient_age=text("PatientAge"),
        patient_sex=text("PatientSex"),
        body_part=text("BodyPartExamined"),
        study_instance_uid=text("StudyInstanceUID"),
        series_instance_uid=text("SeriesInstanceUID"),
        frame_of_reference_uid=text("FrameOfReferenceUID"),
        source_format="DICOM",
        patient_name=text("PatientName") if include_identifiers else "",
        patient_id=text("PatientID") if include_identifiers else "",
        patient_birth_date=text("PatientBirthDate") if include_identifiers else "",
    )


def load_dicom_series(folder, series_uid: Optional[str] = None,
                      include_identifiers: bool = False) -> CTVolume:
    """Load the CT series in ``folder`` as an HU volume with exact LPS geometry."""
    folder = Path(folder)
    headers, unreadable = read_headers(folder)
    if not headers:
        detail = f" ({len(unreadable)} files could not be parsed)" if unreadable else ""
        raise UnsupportedInputError(f"No DICOM images found in {folder}{detail}.")
    series = _choose_series(headers, series_uid)
    first = series[0][1]
    modality = str(getattr(first, "Modality", ""))
    if modality != "CT":
        raise InvalidCTError(
            f"The series is {modality or 'of unknown modality'}, not CT. CovidCT analyses chest CT only.")
    if len(series) < MIN_SLICES:
        raise InvalidCTError(
            f"The series has only {len(series)} image(s); at least {MIN_SLICES} axial slices are needed.")
    if _int_attribute(first, "SamplesPerPixel", series[0][0].name, default=1) != 1:
        raise InvalidCTError("The series holds colour images (secondary captures), not CT slices.")

    if unreadable:
        # A corrupt file may be a slice of this series: loading the rest would silently
        # lose it (or shift the scan if it was at an end).
        names = ", ".join(sorted(p.name for p in unreadable)[:3]) + (" ..." if len(unreadable) > 3 else "")
        raise InvalidCTError(
            f"{len(unreadable)} DICOM file(s) in {folder.name} could not be read ({names}); the series "
            "may be incomplete. Remove or re-export the damaged files and retry.")

    keyed, row_dir, col_dir, normal = sort_slices(series)
    positions = np.array([k[0] for k in keyed])
    slice_spacing = check_slice_spacing(positions)
    check_no_shear(keyed, normal)

    shapes = {(_int_attribute(ds, "Rows", path.name), _int_attribute(ds, "Columns", path.name))
              for _, path, ds, _ in keyed}
    if len(shapes) != 1:
        raise InvalidCTError(f"Slices of the series have different matrix sizes {sorted(shapes)}.")
    pixel_spacing = _float_list(getattr(first, "PixelSpacing", None), 2, "PixelSpacing",
                                keyed[0][1].name)
    voxels = _stack_hu([path for _, path, _, _ in keyed])

    direction = np.column_stack([row_dir, col_dir, normal])
    return CTVolume(
        voxels=voxels,
        # PixelSpacing is (row spacing, column spacing) = (j, i).
        spacing_mm=(pixel_spacing[1], pixel_spacing[0], slice_spacing),
        origin_lps=tuple(keyed[0][3]),
        direction_lps=direction,
        facts=facts_from_dataset(first, include_identifiers),
        is_hounsfield=True,
    )
