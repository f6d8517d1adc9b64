"""Quantification on synthetic phantoms whose band volumes are known exactly."""

import math

import numpy as np
import pytest

from covidct.errors import InvalidCTError
from covidct.quantify import DEFAULT_BANDS, NO_VESSEL_FILTER, HUBand, quantify_lungs
from covidct.quantify.hu_bands import validate_bands
from covidct.quantify.severity import zone_score
from covidct.volume import CTVolume

# Two 16 x 16 x 12 boxes of "lung" separated by a gap; spacing 1 mm.
SHAPE = (12, 20, 40)
RIGHT_COLS = slice(2, 18)   # small i = small LPS x = the patient's right (identity direction)
LEFT_COLS = slice(22, 38)
ROWS = slice(2, 18)


def box_phantom(direction=np.eye(3)):
    hu = np.full(SHAPE, 40.0, dtype=np.float32)  # soft tissue around
    mask = np.zeros(SHAPE, dtype=bool)
    mask[:, ROWS, RIGHT_COLS] = True
    mask[:, ROWS, LEFT_COLS] = True
    hu[mask] = -850.0                       # inflated
    hu[:, 2:6, RIGHT_COLS] = -600.0         # right: 4 of 16 rows infiltrated (25 %), all zones
    hu[0:2, ROWS, LEFT_COLS] = -200.0       # left: 2 of 12 slices collapsed (16.7 %), lowest slices
    hu[2:5, ROWS, LEFT_COLS] = -975.0       # left: 3 of 12 slices emphysematous (25 %)
    volume = CTVolume(hu, spacing_mm=(1.0, 1.0, 1.0), origin_lps=(0.0, 0.0, 0.0), direction_lps=direction)
    return volume, mask


def test_band_percentages_and_involvement_are_exact_per_side():
    volume, mask = box_phantom()
    q = quantify_lungs(volume, mask, vessel_filter=NO_VESSEL_FILTER)
    assert q["right"]["volume_ml"] == pytest.approx(16 * 16 * 12 / 1000.0)
    assert q["left"]["volume_ml"] == pytest.approx(16 * 16 * 12 / 1000.0)
    assert q["total"]["volume_ml"] == pytest.approx(2 * 16 * 16 * 12 / 1000.0)
    right, left, total = q["right"]["bands_percent"], q["left"]["bands_percent"], q["total"]["bands_percent"]
    assert right == pytest.approx({"emphysematous": 0, "inflated": 75, "infiltrated": 25, "collapsed": 0, "dense": 0})
    assert left == pytest.approx({"emphysematous": 25, "inflated": 100 * 7 / 12, "infiltrated": 0,
                                  "collapsed": 100 * 2 / 12, "dense": 0})
    assert total["infiltrated"] == pytest.approx(12.5)
    assert q["right"]["involvement_percent"] == pytest.approx(25.0)
    assert q["left"]["involvement_percent"] == pytest.approx(100 * 2 / 12)
    assert q["total"]["involvement_percent"] == pytest.approx(100 * (4 * 12 + 2 * 16) / (2 * 16 * 12))
    assert q["right"]["ground_glass_percent"] == pytest.approx(25.0)
    assert q["left"]["consolidation_percent"] == pytest.approx(100 * 2 / 12)
    assert q["total"]["involved_ml"] == pytest.approx((4 * 16 * 12 + 2 * 16 * 16) / 1000.0)


def test_zone_scores_follow_cranio_caudal_thirds():
    volume, mask = box_phantom()
    q = quantify_lungs(volume, mask, vessel_filter=NO_VESSEL_FILTER)
    # Identity direction: k grows toward superior, so slices 0-3 are the lower third.
    assert {z: q["right"]["zones"][z]["score"] for z in ("upper", "middle", "lower")} == \
        {"upper": 3, "middle": 3, "lower": 3}  # 25 % each -> 25-50 % band
    assert q["left"]["zones"]["lower"]["involvement_percent"] == pytest.approx(50.0)
    assert q["left"]["zones"]["lower"]["score"] == 4
    assert q["left"]["zones"]["upper"]["score"] == 0
    assert q["total"]["severity_score"] == 3 * 3 + 4
    assert q["total"]["severity_max"] == 30
    assert q["distribution"]["bilateral"] is True


def test_sides_follow_patient_geometry_not_image_columns():
    flipped = np.diag([-1.0, 1.0, 1.0])  # image columns run toward the patient's right
    volume, mask = box_phantom(flipped)
    q = quantify_lungs(volume, mask, vessel_filter=NO_VESSEL_FILTER)
    assert q["left"]["involvement_percent"] == pytest.approx(25.0)  # the infiltrated box is now on the left
    assert q["right"]["bands_percent"]["collapsed"] == pytest.approx(100 * 2 / 12)


def test_zones_follow_superior_direction():
    upside_down = np.diag([1.0, 1.0, -1.0])  # k grows toward inferior: slices 0-1 are now the top
    volume, mask = box_phantom(upside_down)
    q = quantify_lungs(volume, mask, vessel_filter=NO_VESSEL_FILTER)
    assert q["left"]["zones"]["upper"]["score"] == 4
    assert q["left"]["zones"]["lower"]["score"] == 0


def test_quantification_does_not_modify_inputs_and_is_json_ready():
    import json

    volume, mask = box_phantom()
    hu_before, mask_before = volume.voxels.copy(), mask.copy()
    q = quantify_lungs(volume, mask)
    assert np.array_equal(volume.voxels, hu_before) and np.array_equal(mask, mask_before)
    text = json.dumps(q)
    assert "NaN" not in text and "Infinity" not in text
    assert tuple(HUBand.from_dict(band) for band in q["settings"]["bands"]) == DEFAULT_BANDS
    assert q["settings"]["vessel_filter"] == {"enabled": True}  # the one setting the filter has
    assert q["settings"]["severity"]["scheme"].startswith("zone-based")


def test_zone_score_bands():
    assert [zone_score(v) for v in (0.0, 0.5, 1.0, 4.9, 5.0, 24.9, 25.0, 49.9, 50.0, 74.9, 75.0, 100.0)] == \
        [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert zone_score(float("nan")) == 0
    assert zone_score(0.3, none_below_percent=0.0) == 1


def test_invalid_bands_and_inputs_are_refused():
    with pytest.raises(ValueError):
        validate_bands((HUBand("a", -900, -500, True), HUBand("b", -600, 0, True)))
    with pytest.raises(ValueError):
        validate_bands((HUBand("a", -900, -500, False),))
    volume, mask = box_phantom()
    with pytest.raises(InvalidCTError):
        quantify_lungs(volume, mask[:, :, :10])
    with pytest.raises(InvalidCTError):
        quantify_lungs(CTVolume(volume.voxels, is_hounsfield=False), mask)


def test_custom_bands_change_what_counts_as_involved():
    volume, mask = box_phantom()
    only_collapsed = (HUBand("aerated", -math.inf, -400.0), HUBand("collapsed", -400.0, 0.0, True),
                      HUBand("dense", 0.0, math.inf))
    q = quantify_lungs(volume, mask, bands=only_collapsed, vessel_filter=NO_VESSEL_FILTER)
    assert q["right"]["involvement_percent"] == pytest.approx(0.0)
    assert q["left"]["involvement_percent"] == pytest.approx(100 * 2 / 12)


def test_touching_lungs_are_split_at_the_mediastinum():
    """One connected lung mask (the lungs touch): the split follows the narrow bridge between them."""
    from covidct.quantify.lung_volumes import side_masks

    mask = np.zeros((4, 60, 240), dtype=bool)
    mask[:, 5:55, 10:110] = True    # small i = small LPS x: the patient's right
    mask[:, 5:55, 130:230] = True
    mask[:, 28:32, 110:130] = True  # a thin bridge joins them
    volume = CTVolume(np.zeros(mask.shape, dtype=np.float32), spacing_mm=(1.0, 1.0, 2.0))
    sides = side_masks(mask, volume)
    assert not sides["left"][:, :, :110].any()
    assert sides["left"][:, :, 130:].sum() == mask[:, :, 130:].sum()
    assert np.array_equal(sides["left"] | sides["right"], mask) and not (sides["left"] & sides["right"]).any()
