"""The report built from a fake analysis folder: PDF pages, text, tables, DICOM, identifiers."""

import csv
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

import dicom_factory
import report_testdata
from covidct import RESEARCH_USE_DISCLAIMER
from covidct.report import build_report

needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                                   reason="poppler-utils (pdftoppm, pdftotext) not installed")
SECRETS = (dicom_factory.PATIENT_NAME, dicom_factory.PATIENT_ID, dicom_factory.PATIENT_BIRTH_DATE, "Doe", "SECRET")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data = report_testdata.make_result_dir(tmp_path_factory.mktemp("report"))
    written = build_report(data["result_dir"], source_dicom_dir=data["dicom_dir"])
    return data, written


def pdf_text(path) -> str:
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True)
    return out.stdout


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_all_outputs_written(built):
    _, written = built
    assert set(written) == {"pdf", "key_slices", "slice_chart", "json", "csv", "per_slice_csv", "dicom",
                            "dicom_sr"}
    for path in written.values():
        with open(path, "rb") as handle:
            assert handle.read(1)


@needs_poppler
def test_pdf_pages_exist_and_show_content(built, tmp_path):
    from PIL import Image

    _, written = built
    subprocess.run(["pdftoppm", "-r", "40", "-png", written["pdf"], str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 2
    for page in pages:
        grey = np.asarray(Image.open(page).convert("L"))
        assert grey.shape[0] > grey.shape[1]              # portrait (A4)
        assert (grey < 200).mean() > 0.005, f"{page.name} looks blank"
    # The figure page holds the CT panels: lots of dark pixels.
    assert max((np.asarray(Image.open(p).convert("L")) < 100).mean() for p in pages) > 0.1
    info = subprocess.run(["pdfinfo", written["pdf"]], capture_output=True, text=True).stdout
    assert "A4" in info
    fonts = subprocess.run(["pdffonts", written["pdf"]], capture_output=True, text=True).stdout
    assert "DejaVuSans" in fonts
    for line in fonts.splitlines()[2:]:
        assert " yes " in line, f"font not embedded: {line}"


@needs_poppler
def test_pdf_text_has_probability_decision_volumes_and_disclaimer(built):
    data, written = built
    text = pdf_text(written["pdf"])
    flat = squash(text)
    assert "87.3 %" in flat
    assert "Decision at threshold 0.42: COVID-19" in flat
    assert "sensitivity 0.91" in flat and "specificity 0.64" in flat
    q = data["result"].quantification
    for side in ("right", "left", "total"):
        assert f"{q.side(side).volume_ml:.0f}" in flat
    assert squash(RESEARCH_USE_DISCLAIMER) in flat
    assert "Zone-based CT severity score" in flat
    assert "CO-RADS-style suggestion" in flat
    assert "covid-resnet" in flat and "0.3.1" in flat
    assert "Page 1 of" in flat
    assert "enhancement needed; applied" in flat
    assert "Signature" in flat


@needs_poppler
def test_no_identifiers_anywhere_by_default(built):
    import pydicom

    _, written = built
    texts = [pdf_text(written["pdf"])]
    for kind in ("json", "csv", "per_slice_csv"):
        with open(written[kind], encoding="utf-8") as handle:
            texts.append(handle.read())
    ds = pydicom.dcmread(written["dicom"])
    assert str(ds.PatientName) == "" and str(ds.PatientID) == "" and str(ds.PatientBirthDate) == ""
    with open(written["dicom"], "rb") as handle:
        texts.append(handle.read().decode("latin-1"))
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


@needs_poppler
def test_identifiers_only_when_asked(built, tmp_path):
    import pydicom

    data, _ = built
    written = build_report(data["result_dir"], output_pdf=tmp_path / "named.pdf", include_identifiers=True,
                           source_dicom_dir=data["dicom_dir"])
    assert dicom_factory.PATIENT_ID in pdf_text(written["pdf"])
    assert str(pydicom.dcmread(written["dicom"]).PatientID) == dicom_factory.PATIENT_ID


def test_dicom_encapsulated_pdf_references_the_source_study(built):
    import pydicom

    data, written = built
    ds = pydicom.dcmread(written["dicom"])
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in data["dicom_paths"]]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert ds.StudyInstanceUID == sources[0].StudyInstanceUID
    assert ds.SeriesInstanceUID != sources[0].SeriesInstanceUID
    assert ds.SOPInstanceUID not in {s.SOPInstanceUID for s in sources}
    assert ds.Modality == "DOC"
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    with open(written["pdf"], "rb") as handle:
        pdf = handle.read()
    assert bytes(ds.EncapsulatedDocument)[:ds.EncapsulatedDocumentLength] == pdf
    assert {item.ReferencedSOPInstanceUID for item in ds.SourceInstanceSequence} == \
        {s.SOPInstanceUID for s in sources}


def test_json_and_csv_carry_the_numbers(built):
    data, written = built
    with open(written["json"], encoding="utf-8") as handle:
        numbers = json.load(handle)
    record = numbers["measurements"]
    q = data["result"].quantification
    assert record["covid19_probability"] == pytest.approx(report_testdata.PROBABILITY)
    assert record["decision"] == "COVID-19"
    assert record["left_involvement_percent"] == pytest.approx(q.left.involvement_percent, abs=0.01)
    assert record["total_lung_volume_ml"] == pytest.approx(q.total.volume_ml, abs=0.1)
    assert numbers["corads_style_suggestion"]["category"] in range(0, 6)
    with open(written["csv"], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    assert float(rows[0]["right_lung_volume_ml"]) == pytest.approx(q.right.volume_ml, abs=0.1)
    with open(written["per_slice_csv"], encoding="utf-8", newline="") as handle:
        per_slice = list(csv.DictReader(handle))
    assert len(per_slice) == report_testdata.SLICES
    assert max(per_slice, key=lambda r: float(r["covid19_score"]))["index"] == str(report_testdata.HOT_SLICE)


def test_key_slice_figure_has_heat_on_the_lesion(built):
    from covidct.io import load_volume_file
    from covidct.report.figures import key_slice_images

    data, _ = built
    ct = load_volume_file(data["result_dir"] / "input.nrrd")
    heat = load_volume_file(data["result_dir"] / "heatmap.nrrd").voxels
    images = key_slice_images(ct, report_testdata.HOT_SLICE, heat,
                              load_volume_file(data["result_dir"] / "enhanced.nrrd"))
    assert images["enhanced"].shape[0] == 2 * images["original"].shape[0]
    row, col = images["overlay_orientation"].screen_position(*report_testdata.LESION_CENTRE, ct.shape[1:])
    r, g, b = images["overlay"][row, col]
    assert r - b > 0.1 and g > 0.5
    assert col > ct.shape[2] / 2  # the lesion is in the patient's left lung: screen right


def test_cli_report_and_missing_folder(built, tmp_path, capsys):
    from covidct.cli import main

    data, _ = built
    out_pdf = tmp_path / "cli" / "study.pdf"
    assert main(["report", str(data["result_dir"]), "-o", str(out_pdf), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pdf"] == str(out_pdf) and out_pdf.exists()
    assert "dicom" in printed  # study facts say DICOM: the study UID is referenced
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "covidct analyze" in capsys.readouterr().err


def test_report_without_enhanced_volume(tmp_path):
    data = report_testdata.make_result_dir(tmp_path, with_enhanced=False)
    written = build_report(data["result_dir"])
    assert "dicom" in written
    import pydicom

    ds = pydicom.dcmread(written["dicom"])
    assert ds.StudyInstanceUID == data["ct"].facts.study_instance_uid
    assert "SourceInstanceSequence" not in ds


def test_report_for_an_8bit_slice_image_without_quantification(tmp_path):
    from covidct.io import save_volume
    from covidct.result import Probabilities, SliceScore, Study, example_result
    from covidct.volume import CTVolume, StudyFacts

    image = CTVolume(np.tile(np.linspace(0, 255, 64, dtype=np.float32), (64, 1)), spacing_mm=(1, 1, 1),
                     facts=StudyFacts(source_format="image"), is_hounsfield=False)
    save_volume(image, tmp_path / "input.nrrd")
    save_volume(image.with_voxels(np.zeros(image.shape, np.float32)), tmp_path / "heatmap.nrrd")
    result = example_result([SliceScore(0, 0.0, 0.2, True)], probabilities=Probabilities(0.2, 0.8),
                            key_slices=[0], lung_mask=None, lesions=None, quality=None, quantification=None,
                            study=Study.from_facts(image.facts), corads=None)  # as written before schema 2
    (tmp_path / "result.json").write_text(result.to_json(), encoding="utf-8")
    written = build_report(tmp_path)
    assert "dicom" not in written
    with open(written["json"], encoding="utf-8") as handle:
        assert json.load(handle)["corads_style_suggestion"]["category"] == 0
