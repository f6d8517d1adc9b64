"""Build small synthetic DICOM CT series for tests (valid, and broken in specific ways).

The phantom is a body-shaped ellipse of soft tissue with two air-filled "lungs" and is
asymmetric (the patient-left lung is smaller), so orientation errors show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "SECRET-ID-123"
PATIENT_BIRTH_DATE = "19700101"


def phantom_hu(rows: int = 64, cols: int = 64, slices: int = 8) -> np.ndarray:
    """Air outside, soft tissue body, two lungs (right bigger than left), in HU."""
    volume = np.full((slices, rows, cols), -1000.0, dtype=np.float32)
    yy, xx = np.mgrid[0:rows, 0:cols]
    body = ((yy - rows / 2) / (rows * 0.42)) ** 2 + ((xx - cols / 2) / (cols * 0.46)) ** 2 <= 1
    # Image column increases toward patient left (LPS +x): right lung has small column index.
    right_lung = ((yy - rows / 2) / (rows * 0.28)) ** 2 + ((xx - cols * 0.30) / (cols * 0.14)) ** 2 <= 1
    left_lung = ((yy - rows / 2) / (rows * 0.22)) ** 2 + ((xx - cols * 0.70) / (cols * 0.10)) ** 2 <= 1
    for k in range(slices):
        volume[k][body] = 40.0
        volume[k][right_lung | left_lung] = -850.0
        volume[k][rows // 2 + 2, cols // 2] = 700.0  # a "vertebra" voxel
    return volume


def write_series(folder, hu: np.ndarray | None = None, *, modality: str = "CT",
                 spacing_mm=(0.8, 0.8), slice_mm: float = 2.0, z_positions=None,
                 series_uid: str | None = None, study_uid: str | None = None,
                 shuffle_names: bool = True, rescale: bool = True, rgb: bool = False,
                 orientation=(1, 0, 0, 0, 1, 0), origin_xy=(-25.0, -25.0),
                 with_identifiers: bool = True, description: str = "Test Thorax") -> list[Path]:
    """Write one series; file names shuffled (they must not decide the order)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hu = phantom_hu() if hu is None else hu
    n = hu.shape[0]
    z_positions = list(np.arange(n) * slice_mm - 100.0) if z_positions is None else list(z_positions)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_uid = generate_uid()
    names = list(range(n))
    if shuffle_names:
        names = list(np.random.default_rng(0).permutation(n))
    row_dir = np.array(orientation[:3], dtype=float)
    col_dir = np.array(orientation[3:], dtype=float)
    normal = np.cross(row_dir, col_dir)
    paths = []
    for index in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"img_{names[index]:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = modality
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.SeriesDescription = description
        ds.StudyDate = "20200305"
        ds.Manufacturer = "TestVendor"
        ds.ManufacturerModelName = "Phantom 1"
        ds.SliceThickness = slice_mm
        ds.KVP = 120
        ds.ConvolutionKernel = "B30f"
        ds.PatientAge = "045Y"
        ds.PatientSex = "F"
        if with_identifiers:
            ds.PatientName = PATIENT_NAME
            ds.PatientID = PATIENT_ID
            ds.PatientBirthDate = PATIENT_BIRTH_DATE
        ds.InstanceNumber = int(names[index]) + 1
        position = (origin_xy[0] * row_dir + origin_xy[1] * col_dir) + z_positions[index] * normal
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.PixelSpacing = [spacing_mm[1], spacing_mm[0]]
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        if rgb:
            ds.SamplesPerPixel = 3
            ds.PhotometricInterpretation = "RGB"
            ds.PlanarConfiguration = 0
            ds.BitsAllocated = ds.BitsStored = 8
            ds.HighBit = 7
            ds.PixelRepresentation = 0
            grey = np.clip((hu[index] + 1000) / 8, 0, 255).astype(np.uint8)
            ds.PixelData = np.stack([grey] * 3, axis=-1).tobytes()
        else:
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.PixelRepresentation = 0
            if rescale:
                ds.RescaleIntercept = -1024
                ds.RescaleSlope = 1
                stored = np.round(hu[index] + 1024).astype(np.uint16)
            else:
                stored = np.round(np.clip(hu[index] + 1024, 0, None)).astype(np.uint16)
            ds.PixelData = stored.tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def read_back(path) -> Dataset:
    return pydicom.dcmread(path)
