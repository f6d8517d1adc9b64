"""A small fake analysis folder (what ``covidct analyze`` writes) for the report tests.

The CT is the DICOM phantom of :mod:`dicom_factory` (written with patient identifiers,
so tests can prove they never leak), with a lesion in the patient's left lung; the
heatmap peaks on the lesion; the "enhanced" volume is the CT on a grid twice as fine
in-plane (same physical extent), as the enhancer writes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import dicom_factory

ROWS = COLS = 96
SLICES = 16
SPACING_MM = 3.0
SLICE_MM = 10.0
LESION_SLICES = range(5, 10)
LESION_CENTRE = (ROWS // 2, int(COLS * 0.70))  # (row j, column i): the patient's left lung
HOT_SLICE = 7
PROBABILITY = 0.8731


def phantom_with_lesion() -> np.ndarray:
    hu = dicom_factory.phantom_hu(ROWS, COLS, SLICES)
    yy, xx = np.mgrid[0:ROWS, 0:COLS]
    lesion = (yy - LESION_CENTRE[0]) ** 2 + (xx - LESION_CENTRE[1]) ** 2 <= 5 ** 2
    for k in LESION_SLICES:
        hu[k][lesion] = -500.0
    return hu


def heatmap(shape) -> np.ndarray:
    kk, yy, xx = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    d2 = ((kk - HOT_SLICE) * 2.0) ** 2 + (yy - LESION_CENTRE[0]) ** 2 + (xx - LESION_CENTRE[1]) ** 2
    return np.exp(-d2 / (2 * 5.0 ** 2)).astype(np.float32)


def make_result_dir(tmp: Path, with_enhanced: bool = True, direction_flip_x: bool = False) -> dict:
    """Write ``tmp/dicom`` (the source series) and ``tmp/result`` (the analysis folder).

    ``result`` in the returned dict is the :class:`covidct.result.AnalysisResult` written.
    """
    from covidct.io import load_ct, save_volume
    from covidct.json_encoding import to_plain
    from covidct.preprocess.lung_mask import body_mask
    from covidct.quantify import quantify_lungs
    from covidct.result import (RESULT_NAME, ModelInfo, Models, OperatingPoint, Probabilities, Quality,
                                Quantification, Software, Study, example_result, slice_scores)

    tmp = Path(tmp)
    hu = phantom_with_lesion()
    dicom_dir = tmp / "dicom"
    origin = -SPACING_MM * COLS / 2
    paths = dicom_factory.write_series(dicom_dir, hu, spacing_mm=(SPACING_MM, SPACING_MM), slice_mm=SLICE_MM,
                                       origin_xy=(origin, origin))
    ct = load_ct(dicom_dir, include_identifiers=True)
    result_dir = tmp / "result"
    result_dir.mkdir(parents=True, exist_ok=True)
    save_volume(ct, result_dir / "input.nrrd")
    lungs = (ct.voxels < -400) & body_mask(ct.voxels.astype(np.float32))
    save_volume(ct.with_voxels(lungs.astype(np.uint8)), result_dir / "lung_mask.nrrd")
    save_volume(ct.with_voxels(heatmap(ct.shape)), result_dir / "heatmap.nrrd")
    if with_enhanced:
        fine = np.repeat(np.repeat(ct.voxels, 2, axis=1), 2, axis=2)
        spacing = (ct.spacing_mm[0] / 2, ct.spacing_mm[1] / 2, ct.spacing_mm[2])
        shift = ct.direction_lps @ np.array([-ct.spacing_mm[0] / 4, -ct.spacing_mm[1] / 4, 0.0])
        enhanced = ct.with_voxels(fine, spacing_mm=spacing, origin_lps=tuple(np.add(ct.origin_lps, shift)))
        save_volume(enhanced, result_dir / "enhanced.nrrd")
    scores = [round(0.15 + 0.75 * float(np.exp(-((k - HOT_SLICE) / 2.0) ** 2)), 4) for k in range(ct.num_slices)]
    quantification = Quantification.from_dict(to_plain(quantify_lungs(ct, lungs)))
    result = example_result(
        slice_scores(ct.slice_positions_mm(), scores),
        probabilities=Probabilities(PROBABILITY, 1 - PROBABILITY), decision="COVID-19", threshold=0.42,
        operating_point=OperatingPoint(sensitivity=0.91, specificity=0.64),
        key_slices=[HOT_SLICE, HOT_SLICE - 1, HOT_SLICE + 1],
        enhanced="enhanced.nrrd" if with_enhanced else None, lesions=None,
        quality=Quality(needs_enhancement=True, enhancement_applied=with_enhanced,
                        reasons=["slice thickness 10 mm > 3 mm"], measures={"slice_thickness_mm": 10.0}),
        quantification=quantification, timings_s={"total": 1.0},
        model=Models(classifier=ModelInfo(name="covid-resnet", version="0.3.1", sha256="ab" * 32),
                     enhancer=ModelInfo(name="srresnet-x4", version="1.0.0", sha256="cd" * 32)
                     if with_enhanced else None),
        # A careless writer left identifiers in: the report must still drop them by default.
        study=Study.from_facts(ct.facts, include_identifiers=True),
        software=Software("0.1.0"))
    (result_dir / RESULT_NAME).write_text(result.to_json(), encoding="utf-8")
    return {"result_dir": result_dir, "dicom_dir": dicom_dir, "ct": ct, "dicom_paths": paths,
            "result": result}
