"""``covidct classify`` on a batch: every readable file scored, each refusal a per-file error.

Also the grey-in-disguise rule of :func:`read_slice_image`: a grey slice stored as RGB(A)
with compression noise between the channels is accepted, a genuinely coloured image is not.
"""

import json

import numpy as np
import pytest
from PIL import Image

from covidct.classify import classify_images
from covidct.cli import main
from covidct.cli.classify_commands import PARTIAL_FAILURE_EXIT_CODE
from covidct.errors import InvalidCTError, UnsupportedInputError
from covidct.io import read_slice_image

COLOUR_MESSAGE = "is a colour image"


def grey_slice(size: int = 128, seed: int = 0) -> np.ndarray:
    """An 8-bit lung-window-like slice: a bright body with two dark lungs, and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.full((size, size), 10.0)
    image[((yy - 0.5) / 0.42) ** 2 + ((xx - 0.5) / 0.46) ** 2 <= 1] = 170.0
    for cx in (0.32, 0.68):
        image[((yy - 0.5) / 0.28) ** 2 + ((xx - cx) / 0.13) ** 2 <= 1] = 40.0
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def as_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


def write_noisy_grey_jpeg(path, seed: int = 0):
    """A grey slice with per-channel noise of 3..7 levels either way, saved as JPEG quality 80."""
    rng = np.random.default_rng(seed)
    grey = grey_slice(seed=seed)
    noise = rng.integers(3, 8, grey.shape + (3,)) * rng.choice([-1, 1], grey.shape + (3,))
    Image.fromarray(np.clip(grey[..., None].astype(int) + noise, 0, 255).astype(np.uint8)).save(path, quality=80)
    return path


def write_colour_figure(path):
    """A slice with a red annotation box (an annotated figure from a paper)."""
    rgb = as_rgb(grey_slice(seed=3))
    rgb[20:50, 20:50] = (255, 0, 0)
    Image.fromarray(rgb).save(path, quality=95)
    return path


@pytest.fixture
def batch(tmp_path):
    """Five files in a fixed order: good, colour, corrupt, grey-in-RGB JPEG, good."""
    paths = [tmp_path / "a_good.png", tmp_path / "b_figure.jpg", tmp_path / "c_corrupt.png",
             tmp_path / "d_grey_rgb.jpg", tmp_path / "e_good.png"]
    Image.fromarray(grey_slice(seed=1)).save(paths[0])
    write_colour_figure(paths[1])
    paths[2].write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    write_noisy_grey_jpeg(paths[3])
    Image.fromarray(grey_slice(seed=2)).save(paths[4])
    return paths


def test_the_noisy_grey_jpeg_really_has_unequal_channels(tmp_path):
    decoded = np.asarray(Image.open(write_noisy_grey_jpeg(tmp_path / "g.jpg"))).astype(int)
    assert decoded.ndim == 3 and np.abs(decoded[..., 0] - decoded[..., 1]).max() > 0
    pixels = read_slice_image(tmp_path / "g.jpg")
    assert pixels.shape == decoded.shape[:2] and pixels.dtype == np.float32
    assert np.allclose(pixels, decoded.mean(axis=-1) / 255.0, atol=1e-6)   # mean, not channel 0


def test_rgba_grey_ignores_alpha_and_averages_the_channels(tmp_path):
    grey = grey_slice(size=64).astype(int)
    rgba = np.stack([grey, np.clip(grey + 1, 0, 255), np.clip(grey - 1, 0, 255),
                     np.full_like(grey, 40)], axis=-1).astype(np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "grey_rgba.png")
    pixels = read_slice_image(tmp_path / "grey_rgba.png")
    assert np.allclose(pixels, rgba[..., :3].astype(np.float32).mean(axis=-1) / 255.0, atol=1e-6)
    Image.fromarray(rgba[..., [0, 3]], mode="LA").save(tmp_path / "grey_la.png")
    assert np.allclose(read_slice_image(tmp_path / "grey_la.png"), grey / 255.0, atol=1e-6)


def test_genuinely_coloured_images_are_still_refused(tmp_path):
    from matplotlib import cm

    grey = grey_slice(size=256)
    cases = {"figure.jpg": write_colour_figure,
             "heatmap.png": lambda p: Image.fromarray((cm.jet(grey / 255.0)[..., :3] * 255).astype(np.uint8)).save(p),
             "tinted.png": lambda p: Image.fromarray(np.clip(
                 as_rgb(grey).astype(int) + np.array([30, 0, -30]), 0, 255).astype(np.uint8)).save(p)}

    def small_arrow(path):   # 0.2 % of the pixels: slips past the 99th percentile, not the share test
        rgb = as_rgb(grey)
        rgb[100:103, 60:104] = (255, 255, 0)
        Image.fromarray(rgb).save(path, quality=95)

    cases["arrow.jpg"] = small_arrow
    for name, write in cases.items():
        write(tmp_path / name)
        with pytest.raises(InvalidCTError, match=COLOUR_MESSAGE):
            read_slice_image(tmp_path / name)


def test_a_batch_scores_what_it_can_and_lists_each_refusal(batch):
    results = classify_images(batch, device="cpu")
    assert [r["path"] for r in results] == [str(p) for p in batch]          # input order kept
    good, figure, corrupt, grey_rgb, good2 = results
    for r in (good, grey_rgb, good2):
        assert "error" not in r
        assert 0.0 <= r["covid19"] <= 1.0 and r["non_covid"] == pytest.approx(1 - r["covid19"], abs=1e-4)
        assert r["decision"] in ("COVID-19", "non-COVID") and 0.0 < r["threshold"] < 1.0
    assert figure["error_type"] == "InvalidCTError" and figure["exit_code"] == InvalidCTError.exit_code
    assert COLOUR_MESSAGE in figure["error"] and "b_figure.jpg" in figure["error"]
    assert corrupt["error_type"] == "UnsupportedInputError" and corrupt["exit_code"] == UnsupportedInputError.exit_code
    assert "Cannot read c_corrupt.png as an image" in corrupt["error"]
    assert set(figure) == set(corrupt) == {"path", "error", "error_type", "exit_code"}


def test_cli_json_reports_partial_failure_with_its_own_exit_code(batch, capsys):
    code = main(["classify", *map(str, batch), "--device", "cpu", "--json"])
    out, err = capsys.readouterr()
    assert code == PARTIAL_FAILURE_EXIT_CODE == 8
    data = json.loads(out)
    assert data["scored"] == 3 and data["failed"] == 2 and len(data["results"]) == 5
    assert [("error" in r) for r in data["results"]] == [False, True, True, False, False]
    assert err.count("error") == 1 and err.startswith("covidct classify: error: 2 of 5 files")


def test_cli_text_prints_one_line_per_file_and_a_summary(batch, capsys):
    code = main(["classify", *map(str, batch), "--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    assert code == PARTIAL_FAILURE_EXIT_CODE
    assert len(lines) == 6 and [line.split(": ", 1)[0] for line in lines[:5]] == [str(p) for p in batch]
    assert lines[1].startswith(f"{batch[1]}: ERROR (") and COLOUR_MESSAGE in lines[1]
    assert lines[2].startswith(f"{batch[2]}: ERROR (Cannot read c_corrupt.png")
    assert "p(COVID-19) = " in lines[3]
    assert lines[5] == "scored 3 of 5 files; 2 failed"


def test_cli_all_scored_exits_zero(batch, capsys):
    assert main(["classify", str(batch[0]), str(batch[3]), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "scored 2 of 2 files; 0 failed"


def test_when_every_file_fails_the_first_error_code_is_the_exit_code_and_weights_stay_unloaded(
        batch, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "no_weights"
    empty.mkdir()
    monkeypatch.setenv("COVIDCT_WEIGHTS_DIR", str(empty))          # loading weights would fail (exit 5)
    results = classify_images([batch[2], batch[1]], device="cpu")
    assert [r["error_type"] for r in results] == ["UnsupportedInputError", "InvalidCTError"]
    assert main(["classify", str(batch[2]), str(batch[1]), "--device", "cpu"]) == UnsupportedInputError.exit_code
    assert main(["classify", str(batch[1]), "--device", "cpu"]) == InvalidCTError.exit_code
    err = capsys.readouterr().err
    assert f"covidct classify: error: {results[1]['error']}" in err            # one file: its own message
    assert main(["classify", str(batch[1]), str(batch[0]), "--device", "cpu"]) == 5   # a readable one: weights


def test_unexpected_exceptions_are_not_turned_into_per_file_errors(batch, monkeypatch):
    import covidct.io

    def broken(_path):
        raise RuntimeError("a bug, not a bad input")

    monkeypatch.setattr(covidct.io, "read_slice_image", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        classify_images(batch[:1], device="cpu")


def test_a_palette_png_is_read_through_its_palette(tmp_path):
    grey = (np.arange(64 * 64).reshape(64, 64) % 200 + 20).astype(np.uint8)
    path = tmp_path / "palette.png"
    Image.fromarray(grey, "L").convert("P").save(path)
    assert Image.open(path).mode == "P"
    assert np.allclose(read_slice_image(path) * 255, grey, atol=1)


@pytest.mark.parametrize("standardisation", ["harmonise", "harmonise_gated", "none"])
def test_each_export_window_is_estimated_once_and_reported_as_scored(tmp_path, monkeypatch, standardisation):
    from covidct.classify import harmonise
    from covidct.classify.input_normalisation import crop_and_resize
    from classifier_helpers import tiny_classifier

    paths = [tmp_path / f"{k}.png" for k in range(3)]
    for k, path in enumerate(paths):
        Image.fromarray(grey_slice(seed=k)).save(path)
    clf = tiny_classifier()
    clf.standardisation = standardisation
    real, estimated = harmonise.estimate, []
    monkeypatch.setattr(harmonise, "estimate", lambda unit: estimated.append(1) or real(unit))
    results = classify_images(paths, classifier=clf)
    assert len(estimated) == len(paths)
    monkeypatch.undo()
    for path, result in zip(paths, results):
        unit = crop_and_resize(read_slice_image(path), False, None, clf.size_px)[0]
        expected = harmonise.estimate(unit)
        if standardisation == "harmonise_gated":
            expected = harmonise.gate(expected)
        assert result["harmonisation"] == dict(expected.to_dict(), applied=standardisation != "none"
                                               and expected.weight > 0)
