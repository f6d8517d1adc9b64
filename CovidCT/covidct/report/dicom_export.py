"""The PDF report as a DICOM Encapsulated PDF object that a PACS files with the source study.

Why: a report that stays on a workstation disk gets lost; stored in the PACS it sits
next to the images it describes.  The object gets new SOP Instance and Series UIDs but
the source's Study Instance UID, and lists the source images it was derived from
(Source Instance Sequence).  Patient name, ID and birth date are written only when the
caller asks (``include_identifiers=True``); otherwise those type-2 attributes are
present but empty, as the standard allows.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Optional

from ..errors import InputNotFoundError, UnsupportedInputError
from ..study import StudyFacts

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
SERIES_NUMBER = 9901


def read_source_reference(source_dicom_dir, series_instance_uid: str = "") -> dict:
    """Study-level attributes and the image references of one series in a DICOM folder.

    Picks ``series_instance_uid`` when given (and present), else the series with the
    most images.  Only headers are read.
    """
    import pydicom

    folder = Path(source_dicom_dir)
    if not folder.is_dir():
        raise InputNotFoundError(f"DICOM source folder {folder} does not exist; pass the folder the "
                                 "analysed series was loaded from.")
    series = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - non-DICOM files in the folder are skipped
            continue
        uid = str(ds.get("SeriesInstanceUID", ""))
        if not uid or "StudyInstanceUID" not in ds:
            continue
        series.setdefault(uid, []).append(ds)
    if not series:
        raise UnsupportedInputError(f"No DICOM images found in {folder}; the DICOM report needs the "
                                    "source series to reference.")
    chosen = series.get(series_instance_uid) or max(series.values(), key=len)
    first = chosen[0]
    return {
        "StudyInstanceUID": str(first.StudyInstanceUID),
        "SeriesInstanceUID": str(first.SeriesInstanceUID),
        "StudyDate": str(first.get("StudyDate", "")),
        "StudyTime": str(first.get("StudyTime", "")),
        "PatientSex": str(first.get("PatientSex", "")),
        "PatientAge": str(first.get("PatientAge", "")),
        "PatientName": str(first.get("PatientName", "")),
        "PatientID": str(first.get("PatientID", "")),
        "PatientBirthDate": str(first.get("PatientBirthDate", "")),
        "AccessionNumber": str(first.get("AccessionNumber", "")),
        "StudyID": str(first.get("StudyID", "")),
        "instances": [(str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in chosen
                      if "SOPClassUID" in ds and "SOPInstanceUID" in ds],
        # The headers themselves (no pixels): the DICOM SR's evidence (see dicom_sr.py).
        "headers": chosen,
    }


def reference_from_study_facts(study: StudyFacts) -> Optional[dict]:
    """A study-level reference from ``result.json``'s study facts, when the input was DICOM."""
    if not study.study_instance_uid:
        return None
    return {"StudyInstanceUID": study.study_instance_uid,
            "SeriesInstanceUID": study.series_instance_uid,
            "StudyDate": study.study_date, "StudyTime": "",
            "PatientSex": study.patient_sex, "PatientAge": study.patient_age,
            "PatientName": study.patient_name, "PatientID": study.patient_id,
            "PatientBirthDate": study.patient_birth_date,
            "AccessionNumber": "", "StudyID": "", "instances": []}


def write_encapsulated_pdf(pdf_path, output_path, reference: dict, include_identifiers: bool = False,
                           software_version: str = "", title: str = "CovidCT chest CT analysis") -> Path:
    """Write ``pdf_path`` as a DICOM Encapsulated PDF into ``output_path`` (atomically)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    from ..io import atomic_path

    pdf_bytes = Path(pdf_path).read_bytes()
    now = datetime.datetime.now()
    sop_instance_uid = generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = sop_instance_uid
    ds.StudyInstanceUID = reference["StudyInstanceUID"]
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DOC"
    ds.SeriesNumber = SERIES_NUMBER
    ds.InstanceNumber = 1
    ds.SeriesDescription = "CovidCT report (research use only)"
    # Patient module: type-2 attributes present, identifiers empty unless asked for.
    ds.PatientName = reference.get("PatientName", "") if include_identifiers else ""
    ds.PatientID = reference.get("PatientID", "") if include_identifiers else ""
    ds.PatientBirthDate = reference.get("PatientBirthDate", "") if include_identifiers else ""
    ds.PatientSex = reference.get("PatientSex", "")
    if reference.get("PatientAge"):
        ds.PatientAge = reference["PatientAge"]
    # General study module.
    ds.StudyDate = reference.get("StudyDate", "")
    ds.StudyTime = reference.get("StudyTime", "")
    ds.ReferringPhysicianName = ""
    ds.StudyID = reference.get("StudyID", "") if include_identifiers else ""
    ds.AccessionNumber = reference.get("AccessionNumber", "") if include_identifiers else ""
    # Equipment (SC equipment module).
    ds.ConversionType = "WSD"
    ds.Manufacturer = "CovidCT"
    ds.SoftwareVersions = software_version or "unknown"
    # Encapsulated document module.
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES" if include_identifiers else "NO"
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = Sequence([])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf_bytes)
    ds.EncapsulatedDocument = pdf_bytes + (b"\x00" if len(pdf_bytes) % 2 else b"")
    sources = []
    for sop_class, sop_instance in reference.get("instances", []):
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        sources.append(item)
    if sources:
        ds.SourceInstanceSequence = Sequence(sources)

    output_path = Path(output_path)
    with atomic_path(output_path) as tmp:
        pydicom.dcmwrite(str(tmp), ds, enforce_file_format=True)
    return output_path
