"""The measurements as a DICOM Structured Report (TID 1500 Measurement Report).

Why: a PDF (even encapsulated) is for people; a PACS, a viewer or a research database
can only *use* numbers that are coded.  This SR carries lung volumes, involvement,
ground-glass and consolidation shares, the zone-based severity score and the COVID-19
classifier probability as coded measurements, goes into the source study (its Study
Instance UID) and lists the analysed images as evidence.

Codes: standard concepts where they exist (SNOMED CT ``SCT`` anatomy, ``SCT``
Volume, ``DCM`` observer/template concepts, LOINC ``LN`` procedure, UCUM units);
the measurements that have no standard concept use the private scheme ``99COVIDCT``
(listed in :data:`PRIVATE_CONCEPTS` and declared in the file's Coding Scheme
Identification Sequence).  The observer is the software (a device), never a person.

Identifiers follow the Encapsulated PDF's policy (:mod:`.dicom_export`).  highdicom
copies the whole patient and study modules from the first evidence image, so it is
given reduced copies of the source headers (UIDs, sex, age, study date and time) and
never sees the patient's name, ID and birth date, the accession number or the study
ID unless the caller asks for them (``include_identifiers=True``); the type-2
attributes are then present but empty, as the standard allows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

from ..result import AnalysisResult, ModelInfo, Quantification

SERIES_NUMBER = 9902
SERIES_DESCRIPTION = "CovidCT measurements (research use)"
PRIVATE_SCHEME = "99COVIDCT"
MANUFACTURER = "CovidCT"
RESEARCH_USE_NOTE = "Research use only; not for diagnosis."

# (code value, meaning) of the concepts that have no standard code.
PRIVATE_CONCEPTS = {
    "involvement": ("INVOLVED_PCT", "Lung involvement (lesion mask), percent of lung volume"),
    "ground_glass": ("GGO_PCT", "Ground-glass density, percent of lung volume"),
    "consolidation": ("CONSOL_PCT", "Consolidation density, percent of lung volume"),
    "severity": ("ZONE_SEV_SCORE", "Zone-based CT severity score (3 zones per lung, 0-5 each)"),
    "covid19_probability": ("C19_PROB", "COVID-19 classifier probability (research use only)"),
    "covid19_threshold": ("C19_THRESHOLD", "COVID-19 classifier decision threshold"),
}
# Copied only when identifiers are asked for (same list as the Encapsulated PDF); else empty.
IDENTIFYING_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "StudyID")
# Always copied from the source headers into the evidence highdicom sees; missing ones are left out.
KEPT_ATTRIBUTES = ("SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID",
                   "SeriesInstanceUID", "PatientSex", "PatientAge", "StudyDate", "StudyTime")

# Regions: side of the quantification -> (SCT code, meaning, laterality code or None).
REGIONS = (
    ("right", ("3341006", "Right lung"), None),
    ("left", ("44029006", "Left lung"), None),
    ("total", ("39607008", "Lung"), ("51440002", "Right and left")),
)


def highdicom_available() -> bool:
    try:
        import highdicom  # noqa: F401
    except ImportError:
        return False
    return True


def _finite(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def measurement_rows(quantification: Optional[Quantification], probability=None, threshold=None) -> list:
    """The numbers that go into the SR, as plain rows (region, quantity, value, unit).

    Pure Python so the content can be checked without highdicom; values missing or
    not finite are left out rather than written as 0.
    """
    rows = []
    for region, _, _ in REGIONS:
        entry = quantification.side(region) if quantification else None
        for quantity, key, unit in (("volume", "volume_ml", "ml"),
                                    ("involvement", "involvement_percent", "%"),
                                    ("ground_glass", "ground_glass_percent", "%"),
                                    ("consolidation", "consolidation_percent", "%"),
                                    ("severity", "severity_score", "{score}")):
            value = _finite(getattr(entry, key, None))
            if value is not None:
                rows.append({"region": region, "quantity": quantity, "value": value, "unit": unit})
    for quantity, value in (("covid19_probability", probability), ("covid19_threshold", threshold)):
        value = _finite(value)
        if value is not None:
            rows.append({"region": "total", "quantity": quantity, "value": value, "unit": "1"})
    return rows


def evidence_headers(source_headers: Sequence, include_identifiers: bool = False) -> list:
    """Reduced copies of the source headers: what the SR may inherit, and nothing else.

    The type-2 patient and study attributes highdicom reads are always present (empty
    when the source lacks them or identifiers are not wanted).
    """
    from pydicom.dataset import Dataset

    reduced = []
    for source in source_headers:
        if "SOPInstanceUID" not in source or "StudyInstanceUID" not in source or "SOPClassUID" not in source:
            continue
        ds = Dataset()
        for keyword in KEPT_ATTRIBUTES + (IDENTIFYING_ATTRIBUTES if include_identifiers else ()):
            if keyword in source:
                setattr(ds, keyword, source.data_element(keyword).value)
        for keyword in IDENTIFYING_ATTRIBUTES + ("PatientSex", "StudyDate", "StudyTime"):
            if keyword not in ds:
                setattr(ds, keyword, "")
        ds.ReferringPhysicianName = ""
        reduced.append(ds)
    return reduced


def _concepts():
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    names = {quantity: CodedConcept(value, PRIVATE_SCHEME, meaning)
             for quantity, (value, meaning) in PRIVATE_CONCEPTS.items()}
    names["volume"] = codes.SCT.Volume  # SCT 118565006
    units = {"ml": CodedConcept("ml", "UCUM", "milliliter"), "%": codes.UCUM.Percent,
             "{score}": CodedConcept("{score}", "UCUM", "score"), "1": CodedConcept("1", "UCUM", "no units")}
    return names, units


def _finding_site(code, laterality):
    from highdicom.sr import CodedConcept, FindingSite

    return FindingSite(CodedConcept(code[0], "SCT", code[1]),
                       laterality=CodedConcept(laterality[0], "SCT", laterality[1]) if laterality else None)


def _quantification_parameters(quantification: Optional[Quantification]) -> list:
    settings = quantification.settings if quantification else {}
    params = []
    if settings.get("ground_glass_range_hu"):
        params.append("ground glass [{}, {}) HU".format(*settings["ground_glass_range_hu"]))
    if settings.get("consolidation_range_hu"):
        params.append("consolidation [{}, {}) HU".format(*settings["consolidation_range_hu"]))
    severity = settings.get("severity") or {}
    if severity.get("scheme"):
        params.append(str(severity["scheme"]))
    if settings.get("zones"):
        params.append(f"zones: {settings['zones']}")
    return params + [RESEARCH_USE_NOTE]


def build_measurement_report(source_headers: Sequence, quantification: Optional[Quantification], probability=None,
                             threshold=None, classifier: Optional[ModelInfo] = None, software_version: str = "",
                             include_identifiers: bool = False):
    """A ``highdicom.sr.Comprehensive3DSR`` with the measurements, in the source study.

    ``source_headers``: pydicom datasets of the analysed images (headers are enough);
    they are the SR's evidence and give it its study and patient modules.
    """
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from ..errors import UnsupportedInputError

    evidence = evidence_headers(source_headers, include_identifiers)
    if not evidence:
        raise UnsupportedInputError("The DICOM measurement report needs the headers of the analysed DICOM "
                                    "images; none were given.")
    rows = measurement_rows(quantification, probability, threshold)
    if not rows:
        raise UnsupportedInputError("There are no measurements to put in a DICOM SR (no quantification and no "
                                    "classifier probability in the result).")
    version = software_version or "unknown"
    names, units = _concepts()
    # Same software version -> same observer UID, so a PACS sees one device across reports.
    device_uid = generate_uid(entropy_srcs=["CovidCT device observer", version])
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid, name=f"CovidCT {version}"[:64], manufacturer_name=MANUFACTURER,
            model_name="CovidCT"))
    context = hd.sr.ObservationContext(observer_device_context=observer)

    quant_algorithm = hd.sr.AlgorithmIdentification(
        name="CovidCT lung quantification", version=version,
        parameters=_quantification_parameters(quantification))
    classifier = classifier or ModelInfo()
    class_algorithm = hd.sr.AlgorithmIdentification(
        name=f"CovidCT classifier {classifier.name or ''}".strip()[:64],
        version=str(classifier.version or version),
        parameters=[p for p in (f"weights sha256 {classifier.sha256}" if classifier.sha256 else "",
                                RESEARCH_USE_NOTE) if p])

    groups = []
    for region, code, laterality in REGIONS:
        for kind, algorithm in (("quantification", quant_algorithm), ("classification", class_algorithm)):
            wanted = [r for r in rows if r["region"] == region
                      and (r["quantity"].startswith("covid19_")) == (kind == "classification")]
            if not wanted:
                continue
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(),
                                                             identifier=f"CovidCT {code[1].lower()} {kind}"),
                algorithm_id=algorithm,
                finding_sites=[_finding_site(code, laterality)],
                measurements=[hd.sr.Measurement(name=names[r["quantity"]], value=r["value"], unit=units[r["unit"]])
                              for r in wanted]))

    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=hd.sr.CodedConcept("24627-2", "LN", "CT Chest"),
        imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report, series_instance_uid=generate_uid(), series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        is_complete=True, is_final=False, is_verified=False)
    sr.SeriesDescription = SERIES_DESCRIPTION
    sr.SoftwareVersions = version
    sr.ManufacturerModelName = "CovidCT"

    scheme = Dataset()
    scheme.CodingSchemeDesignator = PRIVATE_SCHEME
    scheme.CodingSchemeName = "CovidCT private measurement concepts"
    scheme.CodingSchemeResponsibleOrganization = "CovidCT project"
    sr.CodingSchemeIdentificationSequence = DicomSequence([scheme])
    return sr


def _result_rows(result: AnalysisResult) -> list:
    return measurement_rows(result.quantification, result.probabilities.covid19, result.threshold)


def can_write_measurement_sr(reference: Optional[dict], result: AnalysisResult) -> bool:
    """True when the source image headers are at hand, highdicom is installed and there are numbers.

    A reference rebuilt from ``result.json``'s study facts has no image headers, so
    (unlike the Encapsulated PDF) no SR is written then: its evidence would be empty.
    """
    return bool(reference and reference.get("headers") and highdicom_available() and _result_rows(result))


def write_measurement_sr(output_path, source_headers: Sequence, result: AnalysisResult,
                         include_identifiers: bool = False) -> Path:
    """Write the SR for one analysis result next to the report (atomically)."""
    import pydicom

    from ..io import atomic_path

    sr = build_measurement_report(
        source_headers, result.quantification, probability=result.probabilities.covid19,
        threshold=result.threshold, classifier=result.model.classifier,
        software_version=result.software.covidct, include_identifiers=include_identifiers)
    output_path = Path(output_path)
    with atomic_path(output_path) as tmp:
        pydicom.dcmwrite(str(tmp), sr, enforce_file_format=True)
    return output_path
