"""The DICOM SR (TID 1500) of the measurements: study, evidence, coded values, observer, identifiers."""

import dataclasses
import math

import pydicom
import pytest

import dicom_factory
import report_testdata
from covidct.errors import UnsupportedInputError
from covidct.result import LungMeasures, ModelInfo, Models, Probabilities, Quantification, Software
from covidct.report.dicom_sr import (PRIVATE_CONCEPTS, PRIVATE_SCHEME, SERIES_DESCRIPTION, build_measurement_report,
                                     measurement_rows, write_measurement_sr)

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
SECRETS = (dicom_factory.PATIENT_NAME, dicom_factory.PATIENT_ID, dicom_factory.PATIENT_BIRTH_DATE, "Doe", "SECRET")
SITE_OF_REGION = {"right": "3341006", "left": "44029006", "total": "39607008"}
VERSION = "9.8.7-test"

try:
    import highdicom  # noqa: F401
    HAVE_HIGHDICOM = True
except ImportError:
    HAVE_HIGHDICOM = False
needs_highdicom = pytest.mark.skipif(not HAVE_HIGHDICOM, reason="highdicom is not installed")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    data = report_testdata.make_result_dir(tmp_path_factory.mktemp("sr"), with_enhanced=False)
    data["result"] = dataclasses.replace(
        data["result"], software=Software(VERSION),
        model=Models(classifier=ModelInfo(name="classifier", version="1.0.0", sha256="ab" * 32)))
    data["headers"] = [pydicom.dcmread(p, stop_before_pixels=True) for p in data["dicom_paths"]]
    return data


@pytest.fixture(scope="module")
def sr_file(source, tmp_path_factory):
    path = tmp_path_factory.mktemp("sr_out") / "report_measurements_sr.dcm"
    write_measurement_sr(path, source["headers"], source["result"])
    return path


def content_items(items):
    for item in items:
        yield item
        yield from content_items(item.get("ContentSequence", []))


def coded(item, keyword):
    code = item[keyword][0]
    return code.CodingSchemeDesignator, code.CodeValue


def measurement_groups(ds) -> list:
    """(finding-site SCT code, {concept (scheme, value): (number, unit)}) for each TID 1501 group."""
    groups = []
    for item in content_items(ds.ContentSequence):
        if item.ValueType != "CONTAINER" or coded(item, "ConceptNameCodeSequence") != ("DCM", "125007"):
            continue
        site, numbers = None, {}
        for child in item.ContentSequence:
            name = coded(child, "ConceptNameCodeSequence")
            if name == ("SCT", "363698007"):
                site = coded(child, "ConceptCodeSequence")[1]
            elif child.ValueType == "NUM":
                value = child.MeasuredValueSequence[0]
                number = float(value.get("FloatingPointValue", value.NumericValue))
                numbers[name] = (number, coded(value, "MeasurementUnitsCodeSequence")[1])
        groups.append((site, numbers))
    return groups


def values_by_site(ds) -> dict:
    merged = {}
    for site, numbers in measurement_groups(ds):
        merged.setdefault(site, {}).update(numbers)
    return merged


def private(quantity):
    return PRIVATE_SCHEME, PRIVATE_CONCEPTS[quantity][0]


@needs_highdicom
def test_sr_goes_into_the_source_study_as_a_new_series(source, sr_file):
    ds = pydicom.dcmread(sr_file)
    first = source["headers"][0]
    assert ds.SOPClassUID == COMPREHENSIVE_3D_SR == ds.file_meta.MediaStorageSOPClassUID
    assert ds.Modality == "SR"
    assert ds.StudyInstanceUID == first.StudyInstanceUID
    assert ds.SeriesInstanceUID != first.SeriesInstanceUID
    assert ds.SOPInstanceUID not in {h.SOPInstanceUID for h in source["headers"]}
    assert ds.SeriesDescription == SERIES_DESCRIPTION and "research" in ds.SeriesDescription
    assert ds.SoftwareVersions == VERSION
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"


@needs_highdicom
def test_evidence_lists_every_source_image(source, sr_file):
    ds = pydicom.dcmread(sr_file)
    (study,) = ds.CurrentRequestedProcedureEvidenceSequence
    assert study.StudyInstanceUID == source["headers"][0].StudyInstanceUID
    referenced = {(s.SeriesInstanceUID, i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID)
                  for s in study.ReferencedSeriesSequence for i in s.ReferencedSOPSequence}
    assert referenced == {(h.SeriesInstanceUID, h.SOPClassUID, h.SOPInstanceUID) for h in source["headers"]}


@needs_highdicom
def test_measurements_equal_the_quantification(source, sr_file):
    ds = pydicom.dcmread(sr_file)
    q = source["result"].quantification.to_dict()
    by_site = values_by_site(ds)
    assert set(by_site) == set(SITE_OF_REGION.values())
    for region, site in SITE_OF_REGION.items():
        numbers = by_site[site]
        assert numbers[("SCT", "118565006")] == (pytest.approx(q[region]["volume_ml"], rel=1e-9), "ml")
        for quantity, key, unit in (("involvement", "involvement_percent", "%"),
                                    ("ground_glass", "ground_glass_percent", "%"),
                                    ("consolidation", "consolidation_percent", "%"),
                                    ("severity", "severity_score", "{score}")):
            assert numbers[private(quantity)] == (pytest.approx(q[region][key], rel=1e-9, abs=1e-12), unit)
    # The phantom's lesion is in the left lung: the SR must not swap the sides.
    assert by_site["44029006"][private("involvement")][0] > by_site["3341006"][private("involvement")][0]
    assert by_site["39607008"][private("severity")][0] == q["total"]["severity_score"] > 0


@needs_highdicom
def test_probability_and_threshold_are_unitless_measurements(source, sr_file):
    numbers = values_by_site(pydicom.dcmread(sr_file))["39607008"]
    assert numbers[private("covid19_probability")] == (pytest.approx(report_testdata.PROBABILITY), "1")
    assert numbers[private("covid19_threshold")] == (pytest.approx(source["result"].threshold), "1")
    assert "research use" in PRIVATE_CONCEPTS["covid19_probability"][1]


@needs_highdicom
def test_observer_is_the_software_not_a_person(sr_file):
    ds = pydicom.dcmread(sr_file)
    items = list(content_items(ds.ContentSequence))
    observer_types = [coded(i, "ConceptCodeSequence") for i in items
                      if coded(i, "ConceptNameCodeSequence") == ("DCM", "121005")]
    assert observer_types == [("DCM", "121007")]  # Observer Type = Device, once
    names = [i.TextValue for i in items if coded(i, "ConceptNameCodeSequence") == ("DCM", "121013")]
    assert names == [f"CovidCT {VERSION}"]
    assert not [i for i in items if coded(i, "ConceptNameCodeSequence") == ("DCM", "121008")]  # no person name
    versions = {i.TextValue for i in items if coded(i, "ConceptNameCodeSequence") == ("DCM", "111003")}
    assert versions == {VERSION, "1.0.0"}  # quantification and classifier algorithm versions


@needs_highdicom
def test_private_codes_are_declared_and_standard_ones_used_elsewhere(sr_file):
    ds = pydicom.dcmread(sr_file)
    assert [s.CodingSchemeDesignator for s in ds.CodingSchemeIdentificationSequence] == [PRIVATE_SCHEME]
    used = set()
    for item in content_items(ds.ContentSequence):
        for keyword in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
            if keyword in item and coded(item, keyword)[0] == PRIVATE_SCHEME:
                used.add(coded(item, keyword)[1])
    assert used == {value for value, _ in PRIVATE_CONCEPTS.values()}
    schemes = {coded(i, "ConceptNameCodeSequence")[0] for i in content_items(ds.ContentSequence)}
    assert {"DCM", "SCT"} <= schemes


@needs_highdicom
def test_no_identifiers_by_default(source, sr_file):
    ds = pydicom.dcmread(sr_file)
    assert str(ds.PatientName) == "" and str(ds.PatientID) == "" and str(ds.PatientBirthDate) == ""
    assert ds.PatientSex == source["headers"][0].PatientSex
    raw = sr_file.read_bytes().decode("latin-1")
    for secret in SECRETS:
        assert secret not in raw


@needs_highdicom
def test_identifiers_only_when_asked(source, tmp_path):
    path = write_measurement_sr(tmp_path / "named.dcm", source["headers"], source["result"],
                                include_identifiers=True)
    ds = pydicom.dcmread(path)
    assert str(ds.PatientID) == dicom_factory.PATIENT_ID
    assert str(ds.PatientName) == dicom_factory.PATIENT_NAME


@needs_highdicom
def test_roundtrip_through_highdicom(source, sr_file):
    import highdicom as hd

    sr = hd.sr.srread(sr_file)
    (observer,) = sr.content.get_observer_contexts()
    assert observer.observer_type.value == "121007"
    groups = sr.content.get_image_measurement_groups()
    assert len(groups) == 4  # right, left, both lungs; classifier
    q = source["result"].quantification.to_dict()
    volumes = {g.finding_sites[0].value.value: m.value for g in groups for m in g.get_measurements()
               if m.name.value == "118565006"}
    assert volumes == {site: pytest.approx(q[region]["volume_ml"]) for region, site in SITE_OF_REGION.items()}


@needs_highdicom
def test_source_without_identifiers_or_study_attributes(tmp_path):
    """Real series often lack type-2 attributes (accession number, study ID): still an SR."""
    paths = dicom_factory.write_series(tmp_path / "dicom", with_identifiers=False)
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    for ds in headers:
        for keyword in ("StudyTime", "PatientSex"):
            if keyword in ds:
                delattr(ds, keyword)
    sr = build_measurement_report(headers, None, probability=0.25, threshold=0.5)
    assert sr.StudyInstanceUID == headers[0].StudyInstanceUID
    assert str(sr.PatientID) == "" and sr.AccessionNumber == ""
    numbers = values_by_site(sr)["39607008"]
    assert set(numbers) == {private("covid19_probability"), private("covid19_threshold")}


@needs_highdicom
def test_refuses_without_evidence_or_numbers(source):
    with pytest.raises(UnsupportedInputError, match="headers"):
        build_measurement_report([], source["result"].quantification)
    with pytest.raises(UnsupportedInputError, match="no measurements"):
        build_measurement_report(source["headers"], None)


def test_rows_leave_out_missing_and_non_finite_values():
    q = Quantification(right=LungMeasures(volume_ml=10.0, involvement_percent=math.nan),
                       left=LungMeasures(volume_ml=math.inf, involvement_percent=math.nan, severity_score=3),
                       total=LungMeasures(volume_ml=math.nan, involvement_percent=math.nan))
    rows = measurement_rows(q, probability=float("inf"), threshold=0.5)
    assert [(r["region"], r["quantity"], r["value"], r["unit"]) for r in rows] == [
        ("right", "volume", 10.0, "ml"), ("left", "severity", 3.0, "{score}"),
        ("total", "covid19_threshold", 0.5, "1")]


@needs_highdicom
def test_build_report_writes_the_sr_only_with_the_source_images(source, tmp_path):
    from covidct.report import build_report

    written = build_report(source["result_dir"], output_pdf=tmp_path / "with" / "study.pdf",
                           source_dicom_dir=source["dicom_dir"])
    assert written["dicom_sr"] == str(tmp_path / "with" / "study_measurements_sr.dcm")
    ds = pydicom.dcmread(written["dicom_sr"])
    assert ds.StudyInstanceUID == pydicom.dcmread(written["dicom"]).StudyInstanceUID
    # Study facts alone (no image headers): the Encapsulated PDF still, but no SR without evidence.
    written = build_report(source["result_dir"], output_pdf=tmp_path / "without" / "study.pdf")
    assert "dicom" in written and "dicom_sr" not in written
    assert not (tmp_path / "without" / "study_measurements_sr.dcm").exists()


def test_sr_is_skipped_without_highdicom_headers_or_numbers(source, monkeypatch):
    from covidct.report import dicom_sr

    reference = {"headers": source["headers"]}
    monkeypatch.setattr(dicom_sr, "highdicom_available", lambda: True)
    assert dicom_sr.can_write_measurement_sr(reference, source["result"])
    assert not dicom_sr.can_write_measurement_sr({"headers": []}, source["result"])
    nothing = dataclasses.replace(source["result"], quantification=None, threshold=math.nan,
                                  probabilities=Probabilities(math.nan, math.nan))
    assert not dicom_sr.can_write_measurement_sr(reference, nothing)
    monkeypatch.setattr(dicom_sr, "highdicom_available", lambda: False)  # e.g. Python 3.9
    assert not dicom_sr.can_write_measurement_sr(reference, source["result"])
