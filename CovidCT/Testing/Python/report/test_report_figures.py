"""Key-slice panels: Slicer-like blending, orientation letters, heat at the right place."""

import numpy as np
import pytest

from covidct.report.figures import (HEAT_LOWER_THRESHOLD, HEAT_OPACITY, DisplayOrientation, blend_like_slicer,
                                    colour_table, key_slice_images, matching_slice, render_key_slices,
                                    render_slice_chart)
from covidct.preprocess.windowing import lung_window
from covidct.result import SliceScore
from covidct.volume import CTVolume


def test_blend_matches_slicer_compositing_formula():
    hu = np.array([[-1350.0, -600.0, 150.0, -600.0]])
    heat = np.array([[1.0, 0.0, HEAT_LOWER_THRESHOLD - 0.01, 1.0]])
    rgb = blend_like_slicer(hu, heat)
    grey = lung_window(hu)
    # Below the lower threshold: background untouched and grey.
    assert rgb[0, 1] == pytest.approx([grey[0, 1]] * 3)
    assert rgb[0, 2] == pytest.approx([1.0, 1.0, 1.0])
    # Above: (1 - opacity) * grey + opacity * colour.
    expected = (1 - HEAT_OPACITY) * grey[0, 3] + HEAT_OPACITY * colour_table(np.array([1.0]))[0]
    assert rgb[0, 3] == pytest.approx(expected, abs=1e-6)
    assert rgb[0, 0] == pytest.approx(HEAT_OPACITY * colour_table(np.array([1.0]))[0], abs=1e-6)


def test_colour_table_is_the_slicer_module_table():
    top = colour_table(np.array([1.0]))[0]
    bottom = colour_table(np.array([0.0]))[0]
    assert top[0] > 0.9 and top[1] > 0.9          # inferno ends bright yellow
    assert bottom.max() < 0.1                     # and starts black
    assert colour_table(np.array([2.0]))[0] == pytest.approx(top)  # clamped like VTK


def test_orientation_letters_and_flips():
    identity = DisplayOrientation(np.eye(3), (0.7, 0.8, 2.0))
    assert identity.letters() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert not identity.flip_cols and not identity.flip_rows and not identity.transpose
    assert (identity.col_spacing_mm, identity.row_spacing_mm) == (0.7, 0.8)
    flipped = DisplayOrientation(np.diag([-1.0, -1.0, 1.0]), (0.7, 0.8, 2.0))
    assert flipped.flip_cols and flipped.flip_rows
    assert flipped.letters() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    swapped = DisplayOrientation(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]]), (0.7, 0.8, 2.0))
    assert swapped.transpose
    assert (swapped.col_spacing_mm, swapped.row_spacing_mm) == (0.8, 0.7)
    image = np.arange(12).reshape(3, 4)
    assert swapped.apply(image).shape == (4, 3)
    assert swapped.screen_position(2, 1, (3, 4)) == (1, 2)


@pytest.mark.parametrize("direction", [np.eye(3), np.diag([-1.0, 1.0, 1.0]), np.diag([-1.0, -1.0, 1.0])])
def test_heat_colour_at_hotspot_on_the_patients_left(direction):
    ct = CTVolume(np.full((3, 40, 50), -800.0, dtype=np.float32), spacing_mm=(1, 1, 2), direction_lps=direction)
    heat = np.zeros(ct.shape, dtype=np.float32)
    j, i = 20, 10 if direction[0, 0] < 0 else 40   # always the patient's left (+x)
    heat[1, j - 2:j + 3, i - 2:i + 3] = 1.0
    images = key_slice_images(ct, 1, heat)
    overlay, orientation = images["overlay"], images["overlay_orientation"]
    row, col = orientation.screen_position(j, i, (40, 50))
    r, g, b = overlay[row, col]
    assert r - b > 0.1, "no heat colour at the top-scoring location"
    assert col > overlay.shape[1] / 2, "patient's left must be on the screen's right"
    assert np.allclose(overlay[5, 5], overlay[5, 5].mean())  # grey where there is no heat


def test_enhanced_slice_found_by_position():
    ct = CTVolume(np.zeros((10, 8, 8)), spacing_mm=(1, 1, 2), origin_lps=(0, 0, 0))
    fine = CTVolume(np.zeros((20, 16, 16)), spacing_mm=(0.5, 0.5, 1), origin_lps=(-0.25, -0.25, 0))
    assert matching_slice(ct, 3, fine) == 6
    assert matching_slice(ct, 3, ct) == 3
    shifted = CTVolume(np.zeros((2, 8, 8)), spacing_mm=(1, 1, 2), origin_lps=(0, 0, 100))
    assert matching_slice(ct, 0, shifted) is None


def test_rendered_figures_are_pngs_with_heat(tmp_path):
    from PIL import Image

    ct = CTVolume(np.full((4, 60, 60), -800.0, dtype=np.float32), spacing_mm=(2, 2, 5))
    heat = np.zeros(ct.shape, dtype=np.float32)
    heat[2, 25:35, 40:50] = 1.0
    def warm_pixels(heatmap, name):
        path = render_key_slices(ct, [2], tmp_path / name, heat=heatmap, slice_scores={2: 0.9})
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
        return int(((rgb[..., 0] - rgb[..., 2] > 20) & (rgb[..., 1] > 100)).sum())

    # Orientation letters are yellow too: the heat must add warm pixels on top of them.
    assert warm_pixels(heat, "keys.png") > warm_pixels(None, "plain.png") + 50
    chart = render_slice_chart([SliceScore(k, 5.0 * k, 0.2 * k, True) for k in range(4)],
                               tmp_path / "chart.png", threshold=0.5, key_slices=[2],
                               involvement_percent=[0.0, 1.0, 3.0, None])
    assert Image.open(chart).size[0] > 500
