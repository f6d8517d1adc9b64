"""The ``result.json`` contract: one typed result (:mod:`covidct.result`) written by ``analyze``
and read by the report and the Slicer import, old files included."""

import dataclasses
import json

import pytest

from covidct.analyze import AnalysisOptions, analyze_scan
from covidct.errors import CovidCTError, ResultFileError
from covidct.result import (SCHEMA_VERSION, AnalysisResult, Corads, SliceScore, example_result, pick_key_slices,
                            slice_scores, suggest_corads_for)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, sample_scan):
    """The real pipeline on the bundled sample (no enhancement, no report: a few seconds)."""
    out = tmp_path_factory.mktemp("contract") / "sample"
    returned = analyze_scan(sample_scan, out, AnalysisOptions(device="cpu", enhance="off", report=False))
    return out, returned, (out / "result.json").read_text(encoding="utf-8")


def version_1(result: AnalysisResult) -> dict:
    """What a CovidCT before schema 2 wrote: no ``schema_version``, no ``corads``."""
    data = result.to_dict()
    del data["schema_version"], data["corads"]
    return data


def test_round_trip_is_lossless():
    result = example_result(warnings=["a warning"], timings_s={"load": 0.5})
    text = result.to_json()
    again = AnalysisResult.from_json(text)
    assert again == result
    assert again.to_json() == text
    assert json.loads(text)["schema_version"] == SCHEMA_VERSION


def test_unknown_keys_survive_a_round_trip():
    data = dict(example_result().to_dict(), written_by_a_later_minor="kept")
    data["quality"]["enhancement"]["device"] = "cpu"
    assert AnalysisResult.from_dict(data).to_dict() == data


def test_pipeline_result_parses_and_every_key_is_typed(analysed):
    out, returned, text = analysed
    on_disk = json.loads(text)
    parsed = AnalysisResult.from_json(text)
    assert parsed == returned, "analyze returns what it wrote"
    assert parsed.to_dict() == on_disk, "nothing the pipeline writes is lost or reshaped by the parser"
    assert parsed.extra == {} and parsed.model.classifier.extra == {}, "every key analyze writes has a field"
    assert on_disk["schema_version"] == SCHEMA_VERSION
    written_fields = {f.name for f in dataclasses.fields(AnalysisResult) if f.name != "extra"}
    assert set(on_disk) == written_fields - {"lung_mask_labels"}  # the only field analyze leaves out
    assert parsed.key_slices == pick_key_slices(parsed.per_slice, 6, parsed.geometry.spacing_mm[2])
    assert parsed.corads == suggest_corads_for(parsed), "the CO-RADS-style suggestion is made by analyze"


def test_report_and_slicer_import_read_the_same_result(analysed):
    pytest.importorskip("slicer")
    import slicer_scene_helpers  # noqa: F401  (puts CovidCTLib on the path)
    from CovidCTLib import result_import

    from covidct.report import load_result

    out, returned, _ = analysed
    imported = result_import.read_result(out)
    assert load_result(out) == imported.analysis == returned
    assert imported.key_slices == returned.key_slices
    assert imported.per_slice == [s.to_dict() for s in returned.per_slice]
    assert imported.volume_path("heatmap") == out / "heatmap.nrrd" and imported.volume_path("enhanced") is None


def test_report_reads_the_stored_corads_and_key_slices(analysed, tmp_path):
    from covidct.report import build_report

    out, returned, _ = analysed
    folder = tmp_path / "stored"
    folder.mkdir()
    for name in ("input.nrrd", "heatmap.nrrd", "lung_mask.nrrd", "lesions.nrrd"):
        (folder / name).symlink_to(out / name)
    stored = Corads(category=5, label="very high suspicion", reasons=["stored by analyze"], text="stored text")
    doctored = dataclasses.replace(returned, corads=stored, key_slices=[3, 1])
    (folder / "result.json").write_text(doctored.to_json(), encoding="utf-8")
    written = build_report(folder)
    measurements = json.loads(open(written["json"], encoding="utf-8").read())
    assert measurements["corads_style_suggestion"] == stored.to_dict()
    assert measurements["measurements"]["corads_style_suggestion"] == 5


def test_version_1_result_loads_with_defaults():
    result = example_result()
    old = AnalysisResult.from_dict(version_1(result))
    assert old.schema_version == 1 and old.corads is None
    assert dataclasses.replace(old, schema_version=SCHEMA_VERSION, corads=result.corads) == result
    assert old.with_corads().corads == result.corads, "made for old results as analyze makes it"


def test_minimal_version_1_result_loads():
    """The fields the Slicer module always required, and nothing else (a hand-written old file)."""
    per_slice = [{"index": k, "z_mm": 2.0 * k, "covid19": 0.9 if k == 4 else 0.1, "in_lung": True} for k in range(12)]
    old = AnalysisResult.from_json(json.dumps({
        "probabilities": {"covid19": 0.9, "non_covid": 0.1}, "decision": "COVID-19", "threshold": 0.5,
        "per_slice": per_slice, "heatmap": "heatmap.nrrd", "enhanced": None,
        "quality": {}, "quantification": {}, "model": {}, "study": {}}))
    assert old.quantification is None and old.decision_basis is None and old.input is None
    assert old.model.classifier is None and old.study.source_format == ""
    # No key slices stored: chosen now by the one function analyze uses.
    assert old.key_slices == []
    assert old.chosen_key_slices() == pick_key_slices(old.per_slice, 6, 2.0) and old.chosen_key_slices()[0] == 4


def test_missing_required_field_is_a_clear_error():
    data = example_result().to_dict()
    del data["threshold"], data["heatmap"]
    with pytest.raises(ResultFileError, match=r"result\.json lacks threshold, heatmap.*Re-run the analysis") as info:
        AnalysisResult.from_dict(data)
    assert info.value.missing == ("threshold", "heatmap")
    assert isinstance(info.value, CovidCTError) and info.value.exit_code == 3

    data = example_result().to_dict()
    del data["per_slice"][2]["z_mm"]
    with pytest.raises(ResultFileError, match=r"lacks per_slice\[2\]\.z_mm"):
        AnalysisResult.from_dict(data)


def test_wrong_types_newer_schemas_and_broken_json_are_refused():
    data = example_result().to_dict()
    data["probabilities"]["covid19"] = "high"
    with pytest.raises(ResultFileError, match=r"probabilities\.covid19 is str 'high', expected a number"):
        AnalysisResult.from_dict(data)
    data["probabilities"]["covid19"] = 1.5
    with pytest.raises(ResultFileError, match="not within 0..1"):
        AnalysisResult.from_dict(data)
    with pytest.raises(ResultFileError, match="newer CovidCT"):
        AnalysisResult.from_dict(dict(example_result().to_dict(), schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(ResultFileError, match="not valid JSON"):
        AnalysisResult.from_json('{"decision": ')
    with pytest.raises(ResultFileError, match="expected an object"):
        AnalysisResult.from_json("[]")


def test_slicer_error_is_the_core_error():
    pytest.importorskip("slicer")
    import slicer_scene_helpers  # noqa: F401
    from CovidCTLib import result_import

    assert issubclass(result_import.ResultFormatError, ResultFileError)
    assert issubclass(result_import.ResultFormatError, ValueError)


def test_key_slices_fall_back_to_the_same_choice():
    per_slice = slice_scores([5.0 * k for k in range(10)], [None] + [0.1 * k for k in range(1, 10)])
    result = example_result(per_slice, key_slices=[])
    assert result.chosen_key_slices(3) == pick_key_slices(per_slice, 3, 5.0) == [9, 7, 5]
    assert per_slice[0] == SliceScore(0, 0.0, None, False)
